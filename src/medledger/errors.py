"""The exception hierarchy shared by every layer.

Each error says where the failure came from: untrusted input that failed a check,
a transport (network, database) that failed, or a caller that misused an API.
Messages name the offending value but never carry a secret or health data.
"""


class MedledgerError(Exception):
    """Base class of every error medledger raises on purpose."""


class InvalidInput(MedledgerError):
    """Untrusted input failed a check: malformed, forged, replayed, unauthorised."""


class VerificationError(InvalidInput):
    """A signature, proof or cosignature did not verify."""


class TransportError(MedledgerError):
    """A server (NATS, PostgreSQL, HTTP) failed or could not be reached.

    The original exception is kept as ``__cause__``.
    """


class UsageError(MedledgerError):
    """The caller used an API in a way it does not support."""
