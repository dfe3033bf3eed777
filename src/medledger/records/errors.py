"""Errors raised by the records layer.

Messages name the file, the resource and the field that failed, never a value
taken from the record: a rejected resource may still hold health data.
"""

from __future__ import annotations

from medledger.errors import InvalidInput, VerificationError

__all__ = ["InvalidRecord", "RecordTampered", "RejectedRecord", "UnknownRecord"]


class InvalidRecord(InvalidInput):
    """A FHIR resource failed validation.

    ``source`` names the file (and bundle entry), ``resource`` the resource type and
    id, ``field`` the dotted path of the offending element (empty when the whole
    resource is at fault).
    """

    def __init__(self, source: str, resource: str, field: str, problem: str) -> None:
        self.source = source
        self.resource = resource
        self.field = field
        self.problem = problem
        where = f"{resource}.{field}" if field else resource
        super().__init__(f"{source}: {where}: {problem}")

    def __reduce__(self) -> tuple[type[InvalidRecord], tuple[str, str, str, str]]:
        # Rejections come back from sealing workers: rebuild them from their parts.
        return (InvalidRecord, (self.source, self.resource, self.field, self.problem))


class RecordTampered(VerificationError):
    """A stored record no longer matches what its author signed or the ledger committed.

    ``subject`` names the record (id and version) or batch, ``check`` the check that
    failed (ciphertext, keys, signature, content, commitment, unreadable, ...).
    """

    def __init__(self, subject: str, check: str, detail: str) -> None:
        self.subject = subject
        self.check = check
        self.detail = detail
        super().__init__(f"{subject}: {check}: {detail}")

    def __reduce__(self) -> tuple[type[RecordTampered], tuple[str, str, str]]:
        return (RecordTampered, (self.subject, self.check, self.detail))


class UnknownRecord(InvalidInput):
    """No record with that id (and version) is in this vault."""

    @classmethod
    def not_held(cls, record_id: str, version: int | None = None) -> UnknownRecord:
        """The refusal for a record the vault does not hold; a node answers a record the
        caller may not see in the very same words."""
        what = record_id if version is None else f"{record_id} v{version}"
        return cls(f"no record {what} in this vault")


class RejectedRecord(InvalidInput):
    """A record sealed elsewhere cannot go into this vault as it is.

    ``subject`` names the record (id and version), ``check`` the check that failed
    (network, author, patient, keys, version, duplicate).
    """

    def __init__(self, subject: str, check: str, detail: str) -> None:
        self.subject = subject
        self.check = check
        self.detail = detail
        super().__init__(f"{subject}: {check}: {detail}")
