"""Errors the connectors raise. Messages say what failed and where, and never carry secrets."""

from __future__ import annotations

import ssl


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


class ConfigurationError(SalesforceError):
    """A setting is missing or wrong (no credentials, a CA file that is not there, a
    certificate that does not verify): retrying cannot help, the message says what to set."""


def tls_verification_failed(exc: BaseException) -> str | None:
    """Why a connection error is a certificate that did not verify (permanent), or None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def untrusted_certificate(host: str, why: str, ca_bundle: str | None) -> ConfigurationError:
    trusted = f"the CA file {ca_bundle}" if ca_bundle else "the system's CAs"
    return ConfigurationError(
        f"the certificate of {host} does not verify against {trusted} ({why}); if the "
        "org's certificate is signed by a private CA, set DC_TO_CORE_CA_BUNDLE to that CA "
        "certificate (PEM; for the emulator: its tls/cert.pem). Retrying cannot help")


class BulkJobError(SalesforceError):
    """A Bulk API job ended in a state the caller asked to treat as an error."""


class SourceValueError(SalesforceError):
    """Data Cloud holds a value its column's type does not allow (e.g. a last-modified value
    that is no timestamp); the message names the object, the column, the value and a key."""
