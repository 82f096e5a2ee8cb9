"""Arrow helpers for Data Cloud pages."""

from __future__ import annotations

import pyarrow as pa

from dc_to_core.dc_arrow import joined_text


def test_joined_text_is_the_bytes_python_would_join():
    values = pa.array(["OPP-1", "", "Änderung ✓", "x" * 1000, "last"])
    for part in (values, values.slice(1, 3), values.slice(5)):
        expected = "\x1f".join(part.to_pylist()).encode()
        assert bytes(joined_text(part, "\x1f")) == expected
    assert bytes(joined_text(pa.array([], pa.string()), "\n")) == b""
