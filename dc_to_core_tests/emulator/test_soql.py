"""The SOQL compiler: supported shapes, escapes, and clear errors for everything else."""

from __future__ import annotations

import pytest

from dc_to_core.emulator.errors import ApiError
from dc_to_core.emulator.schema import load_schema
from dc_to_core.emulator.soql import compile_soql

SCHEMA = load_schema()


def test_count_with_a_range_and_in_list():
    c = compile_soql("SELECT COUNT() FROM Opportunity WHERE External_Id__c >= 'A' AND "
                     "External_Id__c < 'B' AND StageName IN ('Prospecting', 'Closed Won')",
                     SCHEMA)
    assert c.count_only
    assert c.params == ["A", "B", "Prospecting", "Closed Won"]
    assert "count(*)" in c.sql and "IN (?, ?)" in c.sql


def test_fields_relationship_order_limit_offset():
    c = compile_soql("select id, name, account.external_id__c from opportunity "
                     "where amount > 10.5 order by external_id__c desc nulls last "
                     "limit 5 offset 2", SCHEMA)
    assert [col[2] for col in c.columns] == ["Id", "Name", "External_Id__c"]
    assert c.columns[2][0] == "Account"
    assert "LEFT JOIN" in c.sql and c.sql.endswith("LIMIT 5 OFFSET 2")
    assert c.params == [10.5]


def test_backslash_escapes_keep_quotes_as_data():
    c = compile_soql(r"SELECT Id FROM Account WHERE Name = 'O\'Brien \\ x' OR Name = ''", SCHEMA)
    assert c.params == ["O'Brien \\ x", ""]


@pytest.mark.parametrize("soql", [
    "SELECT Id FROM Account WHERE Name = 'x' OR 1=1",
    "SELECT Id FROM Account WHERE Name = 'x'; DELETE FROM Account",
    "SELECT Id FROM Account WHERE Name = 'unterminated",
    "SELECT COUNT(Id) FROM Account",
    "SELECT Id FROM Account GROUP BY Name",
    "SELECT Id, (SELECT Id FROM Opportunities) FROM Account",
    "SELECT COUNT() FROM Account ORDER BY Name",
    "SELECT Id FROM Account WHERE Name = 'a\\qb'",
    "",
])
def test_unsupported_or_malicious_shapes_are_malformed(soql):
    with pytest.raises(ApiError) as err:
        compile_soql(soql, SCHEMA)
    assert err.value.status == 400 and err.value.code == "MALFORMED_QUERY"


@pytest.mark.parametrize(("soql", "code"), [
    ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
    ("SELECT Owner.Name FROM Opportunity", "INVALID_FIELD"),
    ("SELECT Id FROM Nope__c", "INVALID_TYPE"),
])
def test_unknown_names(soql, code):
    with pytest.raises(ApiError) as err:
        compile_soql(soql, SCHEMA)
    assert err.value.code == code
