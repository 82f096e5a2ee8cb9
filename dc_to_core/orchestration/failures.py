"""Connector errors as Dagster failures that tell the operator what to do; permanent ones
skip the op's retries, transient ones are left to the op's RetryPolicy."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ..salesforce.errors import (
    AuthenticationError,
    ConfigurationError,
    JobRejectedError,
    OrgUnreachableError,
    SalesforceApiError,
)
from ..sync.budget import BudgetExceeded


@contextmanager
def operator_errors(what: str) -> Iterator[None]:
    """Turn connector errors into failures that tell the operator what to do; permanent ones
    skip the op's retries."""
    try:
        yield
    except ConfigurationError as exc:
        raise dg.Failure(f"{what}: {exc}.", allow_retries=False) from None
    except BudgetExceeded as exc:
        raise dg.Failure(f"{what}: {exc}.", allow_retries=False) from None
    except AuthenticationError as exc:
        raise dg.Failure(f"{what}: Salesforce refused the login. {exc}. Check the connected "
                         "app credentials (DC_TO_CORE_CLIENT_ID, DC_TO_CORE_CLIENT_SECRET or "
                         "DC_TO_CORE_PRIVATE_KEY).", allow_retries=False) from None
    except SalesforceApiError as exc:
        if exc.error_code == "REQUEST_LIMIT_EXCEEDED":
            raise dg.Failure(f"{what}: the org's API allocation is used up ({exc}). Wait for "
                             "the rolling 24 h window or raise the limit, then backfill the "
                             "failed partitions.", allow_retries=False) from None
        if exc.status >= 500 or exc.status == 429:
            raise  # transient: the op's RetryPolicy tries again
        raise dg.Failure(f"{what}: {exc}. This will not succeed by retrying; fix the sync "
                         "configuration or the data, then re-run the partition.",
                         allow_retries=False) from None
    except JobRejectedError as exc:
        raise dg.Failure(f"{what}: {exc}, then re-run the partition. Retrying cannot help: "
                         "the org refuses the job itself, not single rows.",
                         allow_retries=False) from None
    except OrgUnreachableError as exc:
        raise dg.Failure(f"{what}: {exc}. The op retries with backoff; if the org stays "
                         "unreachable, check the network and re-run the partition.") from None
