"""Quoting helpers: values never escape their literal, identifiers never escape their quotes."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dc_to_core.emulator.schema import load_schema
from dc_to_core.emulator.soql import compile_soql
from dc_to_core.salesforce.sqltext import soql_identifier, soql_literal, sql_identifier, sql_literal


@given(st.text().filter(lambda s: "\x00" not in s))
def test_sql_literal_round_trips_through_sqlite(value):
    conn = sqlite3.connect(":memory:")
    assert conn.execute(f"SELECT {sql_literal(value)}").fetchone()[0] == value


@given(st.text(min_size=1).filter(lambda s: "\x00" not in s))
def test_sql_identifier_round_trips(name):
    conn = sqlite3.connect(":memory:")
    cur = conn.execute(f"SELECT 1 AS {sql_identifier(name)}")
    assert cur.description[0][0] == name


@given(st.text())
def test_soql_literal_round_trips_through_the_soql_parser(value):
    compiled = compile_soql(f"SELECT Id FROM Account WHERE Name = {soql_literal(value)}",
                            load_schema())
    assert compiled.params == [value]


def test_injection_attempts_stay_data():
    assert sql_literal("x' OR '1'='1") == "'x'' OR ''1''=''1'"
    assert soql_literal("x' OR Name != '") == "'x\\' OR Name != \\''"
    assert sql_literal(None) == "NULL" and soql_literal(None) == "null"
    with pytest.raises(ValueError):
        soql_identifier("Name FROM Account WHERE")
    with pytest.raises(ValueError):
        sql_literal("nul\x00")
