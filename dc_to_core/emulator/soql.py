"""The SOQL the project needs, translated to SQLite over the Core tables.

Supported: ``SELECT COUNT() | field, Parent.field, … FROM Object [WHERE …] [ORDER BY …]
[LIMIT n] [OFFSET n]`` with ``= != <> < <= > >= LIKE [NOT] IN (…)``, ``AND OR NOT`` and
parentheses; string (backslash escapes), number, date, datetime, ``null``, ``true``/``false``
literals. Anything else is a 400 ``MALFORMED_QUERY`` (or ``INVALID_FIELD`` for an unknown
field) — never a silently wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .errors import ApiError
from .schema import SYSTEM_FIELDS, CoreField, CoreObject, OrgSchema
from .storage import quote_ident

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<num>[+-]?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
""", re.VERBOSE)
KEYWORDS = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc",
            "desc", "nulls", "first", "last", "limit", "offset", "null", "true", "false",
            "count"}
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"',
           "\\": "\\", "_": "\\_", "%": "\\%"}


def malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)


@dataclass
class Compiled:
    """A SOQL query as SQL, with what the REST layer needs to shape records."""

    obj: CoreObject
    count_only: bool
    sql: str
    params: list = field(default_factory=list)
    columns: list[tuple[str | None, CoreField | None, str]] = field(default_factory=list)
    # (relationship or None, field definition or None for system fields, field name)


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in ESCAPES:
                raise malformed(f"invalid escape sequence in {literal}")
            out.append(ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(soql: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(soql):
        m = TOKEN.match(soql, pos)
        if not m:
            raise malformed(f"unexpected character at position {pos}: {soql[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        text = m.group()
        if kind == "name" and text.lower() in KEYWORDS:
            kind, text = "kw", text.lower()
        tokens.append((kind, text))
    return tokens


class _Parser:
    def __init__(self, soql: str, schema: OrgSchema) -> None:
        self.tokens = tokenize(soql)
        self.i = 0
        self.schema = schema
        self.params: list = []
        self.joins: dict[str, CoreField] = {}
        self.obj: CoreObject | None = None

    # -- token helpers ---------------------------------------------------------------------
    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("eof", "")

    def take(self, kind: str, text: str | None = None) -> str:
        k, t = self.peek()
        if k != kind or (text is not None and t != text):
            want = text or kind
            raise malformed(f"expected {want!r} but found {t or 'end of query'!r}")
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> bool:
        k, t = self.peek()
        if k == kind and (text is None or t == text):
            self.i += 1
            return True
        return False

    # -- fields --------------------------------------------------------------------------------
    def resolve(self, name: str) -> tuple[str | None, CoreField | None, str, str]:
        """(relationship, field def, canonical name, SQL expression) of a field reference."""
        assert self.obj is not None
        rel, _, fname = name.rpartition(".")
        obj, prefix = self.obj, "t"
        if rel:
            ref = obj.relationship(rel) or next(
                (f for f in obj.fields.values() if f.relationship and
                 f.relationship.lower() == rel.lower()), None)
            if ref is None:
                raise ApiError(400, "INVALID_FIELD", (
                    f"Didn't understand relationship '{rel}' in field path. "
                    f"No such relationship on entity '{obj.name}'"))
            rel = ref.relationship or rel
            self.joins[rel] = ref
            target = self.schema.core[ref.to or ""]
            obj, prefix = target, f"r_{rel}"
        system = next((s for s in SYSTEM_FIELDS if s.lower() == fname.lower()), None)
        fdef = next((f for f in obj.fields.values() if f.name.lower() == fname.lower()), None)
        if system is None and fdef is None:
            raise ApiError(400, "INVALID_FIELD",
                           f"No such column '{fname}' on entity '{obj.name}'")
        canonical = system or (fdef.name if fdef else fname)
        return rel or None, fdef, canonical, f"{prefix}.{quote_ident(canonical)}"

    # -- grammar ---------------------------------------------------------------------------
    def query(self) -> Compiled:
        self.take("kw", "select")
        count_only, names = False, []
        if self.accept("kw", "count"):
            self.take("punct", "(")
            self.take("punct", ")")
            count_only = True
        else:
            names.append(self.take("name"))
            while self.accept("punct", ","):
                names.append(self.take("name"))
        self.take("kw", "from")
        obj_name = self.take("name")
        self.obj = self.schema.object(obj_name)
        if self.obj is None:
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{obj_name}' is not supported.")
        columns = [self.resolve(n) for n in names]
        where = self.condition() if self.accept("kw", "where") else ""
        order = self.order_by() if self.accept("kw", "order") else ""
        limit = ""
        if self.accept("kw", "limit"):
            limit = f" LIMIT {int(self.take('num'))}"
        if self.accept("kw", "offset"):
            limit = (limit or " LIMIT -1") + f" OFFSET {int(self.take('num'))}"
        if self.peek()[0] != "eof":
            raise malformed(f"unexpected token {self.peek()[1]!r}")
        if count_only and order:
            raise malformed("COUNT() can't be used with ORDER BY")
        select = "count(*)" if count_only else ", ".join(c[3] for c in columns)
        joins = "".join(
            f" LEFT JOIN {quote_ident(ref.to or '')} AS r_{rel} "
            f"ON r_{rel}.Id = t.{quote_ident(ref.name)}" for rel, ref in self.joins.items())
        sql = (f"SELECT {select} FROM {quote_ident(self.obj.name)} AS t{joins}"
               f"{' WHERE ' + where if where else ''}{order}{limit}")
        return Compiled(self.obj, count_only, sql, self.params,
                        [(c[0], c[1], c[2]) for c in columns])

    def condition(self) -> str:
        parts = [self.conjunction()]
        while self.accept("kw", "or"):
            parts.append(self.conjunction())
        return " OR ".join(parts) if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while self.accept("kw", "and"):
            parts.append(self.negation())
        return " AND ".join(parts) if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        if self.accept("kw", "not"):
            return f"NOT ({self.negation()})"
        if self.accept("punct", "("):
            inner = self.condition()
            self.take("punct", ")")
            return f"({inner})"
        return self.comparison()

    def comparison(self) -> str:
        _, fdef, _, expr = self.resolve(self.take("name"))
        negate = self.accept("kw", "not")
        if self.accept("kw", "in"):
            self.take("punct", "(")
            values = [self.value(fdef)]
            while self.accept("punct", ","):
                values.append(self.value(fdef))
            self.take("punct", ")")
            marks = ", ".join("?" for _ in values)
            self.params.extend(values)
            return f"{expr} {'NOT IN' if negate else 'IN'} ({marks})"
        if negate:
            raise malformed("NOT must be followed by IN here")
        if self.accept("kw", "like"):
            self.params.append(self.value(fdef))
            return f"{expr} LIKE ? ESCAPE '\\'"
        op = self.take("op")
        value = self.value(fdef)
        if value is None:
            if op not in ("=", "!=", "<>"):
                raise malformed(f"null can only be compared with = or != (got {op})")
            return f"{expr} IS {'NOT ' if op != '=' else ''}NULL"
        self.params.append(value)
        return f"{expr} {'!=' if op == '<>' else op} ?"

    def value(self, fdef: CoreField | None) -> object:
        kind, text = self.peek()
        self.i += 1
        if kind == "str":
            return _unescape(text)
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "date":
            return text
        if kind == "datetime":  # compare in the stored form: 2024-01-31T10:00:00.000Z
            dt = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
            return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
        if kind == "kw" and text in ("null", "true", "false"):
            return None if text == "null" else int(text == "true")
        raise malformed(f"expected a value but found {text or 'end of query'!r}")

    def order_by(self) -> str:
        self.take("kw", "by")
        items = []
        while True:
            expr = self.resolve(self.take("name"))[3]
            direction = "DESC" if self.accept("kw", "desc") else (
                self.accept("kw", "asc") and "ASC") or "ASC"
            nulls = "NULLS FIRST" if direction == "ASC" else "NULLS LAST"
            if self.accept("kw", "nulls"):
                nulls = "NULLS FIRST" if self.accept("kw", "first") else (
                    self.take("kw", "last") and "NULLS LAST")
            items.append(f"{expr} {direction} {nulls}")
            if not self.accept("punct", ","):
                break
        return " ORDER BY " + ", ".join(items)


def compile_soql(soql: str, schema: OrgSchema) -> Compiled:
    """Translate SOQL to SQLite, or raise a 400 ApiError saying what is wrong."""
    if not soql.strip():
        raise malformed("the query is empty")
    return _Parser(soql, schema).query()
