"""Quoting helpers: the only way dc_to_core puts values into Data Cloud SQL or SOQL text."""

from __future__ import annotations

import re

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sql_identifier(name: str) -> str:
    """A double-quoted Data Cloud SQL identifier (inner quotes doubled)."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str | int | float | None) -> str:
    """A Data Cloud SQL literal: strings single-quoted with inner quotes doubled."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if "\x00" in value:
        raise ValueError("a NUL character cannot appear in a SQL literal")
    return "'" + value.replace("'", "''") + "'"


_SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}


def soql_literal(value: str | int | float | None) -> str:
    """A SOQL literal: strings single-quoted with backslash escapes (SOQL's rule)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + "".join(_SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def soql_identifier(name: str) -> str:
    """A SOQL field or object name (``Account.External_Id__c`` allowed); never quoted, so it
    must be a plain identifier path."""
    if not all(_IDENT.match(part) for part in name.split(".")):
        raise ValueError(f"invalid SOQL field or object name {name!r}")
    return name
