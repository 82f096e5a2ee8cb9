"""Errors the connectors raise. Messages say what failed and where, and never carry secrets."""

from __future__ import annotations


class SalesforceError(Exception):
    """Base of every error talking to Salesforce."""


class AuthenticationError(SalesforceError):
    """Login or token exchange refused (bad credentials, app not authorised…)."""


class SalesforceApiError(SalesforceError):
    """An API call answered with an error the caller must act on."""

    def __init__(self, status: int, error_code: str, message: str, method: str, where: str
                 ) -> None:
        super().__init__(f"{method} {where} failed with HTTP {status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.method = method
        self.where = where


class JobRejectedError(SalesforceError):
    """The org refused a whole ingest job for what it holds (``InvalidBatch``: an unknown
    field, a bad header). Retrying the same rows cannot succeed."""


class OrgUnreachableError(SalesforceError):
    """The org could not be reached (network, TLS, timeouts) after every retry."""


class BulkJobError(SalesforceError):
    """A Bulk API job ended in a state the caller asked to treat as an error."""


class SourceValueError(SalesforceError):
    """Data Cloud holds a value its column's type does not allow (e.g. a last-modified value
    that is no timestamp); the message names the object, the column, the value and a key."""
