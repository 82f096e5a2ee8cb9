"""Demo data for the emulated org's Data Cloud: accounts and opportunities, deterministic.

Opportunity ExternalIds are uncorrelated with their parents (the realistic, hard case: sorting
by external id scatters every account's children over the whole key range). Parent skew is
uniform, Zipf, or one giant parent. A share of rows is bad, spread evenly over the kinds in
``BAD_KINDS``; the report says which rows are bad and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .storage import Storage

STAGES = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
          "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
          "Negotiation/Review", "Closed Won", "Closed Lost"]
PROBABILITY = [10, 10, 20, 50, 60, 70, 75, 90, 100, 0]
SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
INDUSTRIES = ["Banking", "Energy", "Healthcare", "Manufacturing", "Retail", "Technology"]
BAD_KINDS = ("missing_name", "long_name", "bad_picklist", "bad_date", "missing_parent",
             "duplicate_external_id", "missing_external_id")
ACCOUNTS, OPPORTUNITIES = "Account_Staging__dlm", "Opportunity_Staging__dlm"
BASE_TIME = dt.datetime(2026, 11, 1, 1, 0, tzinfo=dt.UTC)


@dataclass
class SeedSpec:
    accounts: int = 1000
    opportunities: int = 200_000
    skew: Literal["uniform", "zipf", "giant"] = "uniform"
    giant_children: int | None = None   # children of the giant parent (default: a quarter)
    zipf_s: float = 1.1
    bad_share: float = 0.0
    seed: int = 42


@dataclass
class SeedReport:
    accounts: int
    opportunities: int
    bad_rows: dict[str, list[str]] = field(default_factory=dict)  # kind -> external ids
    largest_parent: int = 0

    def summary(self) -> dict:
        return {"accounts": self.accounts, "opportunities": self.opportunities,
                "bad_rows": {k: len(v) for k, v in self.bad_rows.items()},
                "largest_parent_children": self.largest_parent}


def account_key(i: int) -> str:
    return f"ACC-{i:07d}"


def opportunity_key(i: int) -> str:
    return f"OPP-{i:09d}"


def _parents(spec: SeedSpec, rng: np.random.Generator) -> np.ndarray:
    n, a = spec.opportunities, spec.accounts
    if spec.skew == "uniform":
        return rng.integers(0, a, n)
    if spec.skew == "zipf":
        weights = 1.0 / np.arange(1, a + 1) ** spec.zipf_s
        ranks = rng.choice(a, n, p=weights / weights.sum())
        return rng.permutation(a)[ranks]
    giant = spec.giant_children if spec.giant_children is not None else n // 4
    parents = rng.integers(0, a, n)
    parents[rng.choice(n, min(giant, n), replace=False)] = int(rng.integers(0, a))
    return parents


def _timestamps(rng: np.random.Generator, n: int) -> list[str]:
    """Last-modified times in the month before BASE_TIME, as Data Cloud renders them."""
    base = np.datetime64(BASE_TIME.replace(tzinfo=None), "ms")
    stamps = base - rng.integers(0, 86_400 * 30, n).astype("timedelta64[s]")
    return np.char.add(np.datetime_as_string(stamps, unit="ms"), "+00:00").tolist()


def _account_rows(spec: SeedSpec, rng: np.random.Generator) -> Iterator[tuple]:
    industries = rng.choice(INDUSTRIES, spec.accounts)
    revenue = np.round(rng.uniform(1e5, 1e9, spec.accounts), 2)
    employees = rng.integers(1, 100_000, spec.accounts)
    stamps = _timestamps(rng, spec.accounts)
    for i in range(spec.accounts):
        yield (account_key(i), f"Account {i}", str(industries[i]), float(revenue[i]),
               int(employees[i]), stamps[i])


def _told(rows: Iterable[tuple], progress: Callable[[int], None] | None, before: int = 0,
          every: int = 10_000) -> Iterator[tuple]:
    """``rows``, telling ``progress`` the rows written so far (``before`` these) every
    ``every`` rows."""
    for n, row in enumerate(rows, before + 1):
        if progress and n % every == 0:
            progress(n)
        yield row


def seed_datacloud(storage: Storage, spec: SeedSpec,
                   progress: Callable[[int], None] | None = None) -> SeedReport:
    """Replace the two staging objects' rows with generated data; Core is left alone.
    ``progress`` is told the rows written so far (of ``spec.accounts + spec.opportunities``).
    """
    rng = np.random.default_rng(spec.seed)
    n = spec.opportunities
    with storage.write_lock:
        for table in (ACCOUNTS, OPPORTUNITIES):
            storage.dc.execute(f'DELETE FROM "{table}"')
    storage.insert_dc_rows(ACCOUNTS, ["ExternalId__c", "Name__c", "Industry__c",
                                      "AnnualRevenue__c", "NumberOfEmployees__c",
                                      "LastModifiedDate__c"],
                           _told(_account_rows(spec, rng), progress))
    parents = _parents(spec, rng)
    stage_idx = rng.integers(0, len(STAGES), n)
    days = rng.integers(0, 730, n)
    amounts = np.round(rng.uniform(1_000, 1_000_000, n), 2)
    sources = rng.integers(0, len(SOURCES), n)
    keys = [opportunity_key(i) for i in range(n)]
    names = [f"Opportunity {i}" for i in range(n)]
    parent_keys = [account_key(int(p)) for p in parents]
    dates = np.datetime_as_string(np.datetime64("2025-01-01") + days.astype("timedelta64[D]"),
                                  unit="D").tolist()
    stages = [STAGES[i] for i in stage_idx]
    report = SeedReport(spec.accounts, n, largest_parent=int(np.bincount(parents).max())
                        if n else 0)
    bad_n = round(n * spec.bad_share)
    chosen = rng.choice(n, bad_n, replace=False) if bad_n else np.array([], dtype=int)
    for j, i in enumerate(chosen.tolist()):
        kind = BAD_KINDS[j % len(BAD_KINDS)]
        report.bad_rows.setdefault(kind, []).append(keys[i])
        if kind == "missing_name":
            names[i] = None  # type: ignore[call-overload]
        elif kind == "long_name":
            names[i] = "Opportunity with a name far too long " + "x" * 120
        elif kind == "bad_picklist":
            stages[i] = "Closed Maybe"
        elif kind == "bad_date":
            dates[i] = "1600-01-01"
        elif kind == "missing_parent":
            parent_keys[i] = f"ACC-MISSING-{i}"
        elif kind == "duplicate_external_id":
            keys[i] = keys[(i + 1) % n]
        else:
            keys[i] = None  # type: ignore[call-overload]
    stamps = _timestamps(rng, n)
    rows = zip(keys, names, stages, dates, amounts.tolist(),
               (PROBABILITY[s] for s in stage_idx.tolist()),
               (SOURCES[s] for s in sources.tolist()), (None for _ in range(n)), parent_keys,
               stamps, strict=True)
    storage.insert_dc_rows(OPPORTUNITIES, [
        "ExternalId__c", "Name__c", "StageName__c", "CloseDate__c", "Amount__c",
        "Probability__c", "LeadSource__c", "Description__c", "AccountExternalId__c",
        "LastModifiedDate__c"], _told(rows, progress, spec.accounts))
    if progress:
        progress(spec.accounts + n)
    return report


def reset_core(storage: Storage) -> None:
    """Empty every Core table and forget all ingest jobs (a fresh org)."""
    with storage.write_lock:
        storage.core.execute("BEGIN")
        for name in storage.schema.core:
            storage.core.execute(f'DELETE FROM "{name}"')
        storage.core.execute("DELETE FROM ingest_result")
        storage.core.execute("DELETE FROM ingest_job")
        storage.core.execute("DELETE FROM usage")
        storage.core.execute("COMMIT")
    for path in (storage.data_dir / "jobs").glob("*.csv"):
        path.unlink()
