"""CSV in and out of the emulated Bulk API, with pyarrow: every cell a string, empty kept."""

from __future__ import annotations

import csv
import io

import pyarrow as pa
import pyarrow.csv as pacsv

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}


class CsvError(ValueError):
    """The uploaded data is not a CSV this job can read."""


def read_upload(data: bytes, delimiter: str = "COMMA") -> pa.Table:
    """Parse an uploaded CSV into a table of string columns ('' for empty cells, no nulls)."""
    sep = DELIMITERS[delimiter]
    end = data.find(b"\n")
    first = (data if end < 0 else data[:end]).decode("utf-8", errors="replace").rstrip("\r")
    if not first.strip():
        raise CsvError("InvalidBatch : The CSV has no header row")
    header = next(csv.reader([first], delimiter=sep))
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise CsvError(f"InvalidBatch : Duplicate field names in the header: {', '.join(dup)}")
    if b'"' in data:
        _check_quotes(data, sep)
    if end < 0 or not data[end + 1:].strip():
        return pa.table({h: pa.array([], pa.string()) for h in header})
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=sep, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise CsvError(f"InvalidBatch : Failed to parse CSV: {exc}") from exc


def _check_quotes(data: bytes, sep: str) -> None:
    """Refuse what pyarrow would read leniently: a quote inside an unquoted value, text after
    a closing quote, a quoted value never closed (RFC 4180, as Salesforce reads it)."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")
    reader = csv.reader(text, delimiter=sep, strict=True)
    try:
        for _row in reader:
            pass
    except csv.Error as exc:
        raise CsvError(f"InvalidBatch : Failed to parse CSV: line {reader.line_num}: Found "
                       f"unescaped quote or an unclosed quoted value ({exc})") from None


def write_csv(table: pa.Table, delimiter: str = ",", line_ending: str = "LF") -> bytes:
    """A result CSV: UTF-8, RFC 4180, every value quoted (as Salesforce does), nulls empty."""
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(
        quoting_style="all_valid", delimiter=delimiter,
        eol="\r\n" if line_ending == "CRLF" else "\n"))
    return sink.getvalue()
