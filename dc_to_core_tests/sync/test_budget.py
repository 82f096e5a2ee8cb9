"""The limit budget: forecasts, the check and its message, a load stopped before the job that
would cross the budget, and the org's own ExceededQuota stopping a load (never re-passed)."""

from __future__ import annotations

import pytest

from dc_to_core.emulator.limits import BATCH
from dc_to_core.salesforce.rest import RestApi
from dc_to_core.sync.budget import API, BATCHES, Budget, BudgetExceeded, Need, forecast
from dc_to_core.sync.loading import LoadStats, LoadTarget, load_round, planned_jobs
from dc_to_core_tests.support import auth_for
from dc_to_core_tests.sync.test_loading import OPP, opportunities_of_one_parent


def limits(batches_used: int, api_used: int = 0, most: int = 1000) -> dict:
    return {BATCHES: {"Max": most, "Remaining": most - batches_used},
            API: {"Max": most, "Remaining": most - api_used}}


def test_a_forecast_counts_a_batch_per_started_10000_rows():
    need = forecast([10_000, 10_001, 1])
    assert (need.jobs, need.batches) == (3, 4)
    assert need.api_calls == 3 * 17


def test_the_budget_stops_at_its_share_of_the_daily_maximum_and_says_so():
    budget = Budget(0.8)
    budget.check(limits(790), Need(1, 10, 0), "Opportunity p00")  # 800 of 1000: fits
    with pytest.raises(BudgetExceeded) as err:
        budget.check(limits(791), Need(1, 10, 0), "Opportunity p00")
    message = str(err.value)
    assert message.startswith("Opportunity p00 needs 10 DailyBulkApiBatches but the org has "
                              "used 791 of 1,000 in the last 24 h and dc_to_core stops at 80 % "
                              .replace(" %", "%") + "of it (800)")
    assert "rolling 24 h window" in message and "DC_TO_CORE_LIMIT_SHARE" in message
    with pytest.raises(BudgetExceeded, match="DailyApiRequests"):
        budget.check(limits(0, api_used=799), Need(1, 1, 17), "Opportunity p00")


def test_a_load_that_would_cross_the_budget_mid_way_stops_before_its_next_job(make_server,
                                                                            tmp_path):
    """Two jobs fit when the load starts; someone else spends the org's batches while the
    first runs: the second is never created."""
    server = make_server(daily_bulk_batches=100)
    prepared, ledger, bulk = opportunities_of_one_parent(server, tmp_path, "MB", 30)
    bulk = bulk.model_copy(update={"chunk_rows": 20})  # 30 rows of one parent: two waves
    rest = RestApi(auth=auth_for(server))
    looks = []

    def read_limits() -> dict:
        looks.append(1)
        if len(looks) == 2:  # between the first job and the second
            server.org.limits.take(BATCH, 80)
        return rest.limits()

    target = LoadTarget(OPP, "p00", prepared.fingerprint, bulk, ledger, "run-1",
                        before_job=Budget(0.8).guard(read_limits, "Opportunity p00"))
    assert planned_jobs(target, prepared.ready) == [20, 10]
    jobs_before = len(bulk.list_jobs())
    with pytest.raises(BudgetExceeded, match=r"needs 1 DailyBulkApiBatches but the org has used "
                                             r"8[0-9] of 100") as stop:
        load_round(target, prepared.ready, 0, LoadStats())
    assert len(bulk.list_jobs()) == jobs_before + 1
    # what the first job did goes with the stop, for the sync state: its 20 rows, loaded
    assert len(stop.value.rows) == stop.value.outcome.num_rows == 20
    assert set(stop.value.outcome.column("status").to_pylist()) == {"loaded"}


def test_the_orgs_exceeded_quota_stops_the_load_instead_of_a_re_pass(make_server, tmp_path):
    server = make_server(daily_bulk_batches=3)
    prepared, ledger, bulk = opportunities_of_one_parent(server, tmp_path, "EQ", 5)
    server.org.limits.take(BATCH, server.org.limits.remaining(BATCH))  # all used
    target = LoadTarget(OPP, "p00", prepared.fingerprint, bulk, ledger, "run-1")
    with pytest.raises(BudgetExceeded, match="ExceededQuota") as stop:
        load_round(target, prepared.ready, 0, LoadStats())
    assert stop.value.outcome.num_rows == len(stop.value.rows) == 5  # each row's fate, kept
    # the failed job is not resumed by a later run: its rows go again in a new job
    assert ledger.submitted("Opportunity", "p00", prepared.fingerprint, 0) == []
