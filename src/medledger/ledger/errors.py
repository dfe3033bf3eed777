"""Why the ledger refused a transaction or a checkpoint.

Every refusal of a transaction is a :class:`TransactionRejected` with a stable
``code`` that nodes record deterministically, so all nodes agree on the outcome.
"""

from __future__ import annotations

from typing import ClassVar

from medledger.errors import InvalidInput, UsageError, VerificationError


class TransactionRejected(InvalidInput):
    """A transaction failed a check; ``code`` is stable and recorded in the log."""

    code: ClassVar[str] = "rejected"


class MalformedTransaction(TransactionRejected):
    code = "malformed"


class BadSignature(TransactionRejected, VerificationError):
    code = "bad_signature"


class WrongNetwork(TransactionRejected):
    code = "wrong_network"


class ReplayedTransaction(TransactionRejected):
    code = "replayed"


class NonceGap(TransactionRejected):
    code = "nonce_gap"


class UnknownTransactionType(TransactionRejected):
    code = "unknown_type"


class Unauthorized(TransactionRejected):
    code = "unauthorized"


class InvalidPayload(TransactionRejected):
    code = "invalid_payload"


class Conflict(TransactionRejected):
    """The transaction contradicts current state (already registered, already voted...)."""

    code = "conflict"


class DoubleVote(Conflict):
    code = "double_vote"


class NotInitialised(TransactionRejected):
    code = "not_initialised"


class GenesisMismatch(InvalidInput):
    """The ordered log starts with a genesis other than the one this node was given."""


class ProtocolMismatch(UsageError):
    """A node's contract set is not the protocol its network's genesis pins: replaying the
    log with it could reach another state than the other nodes."""


class LogBehindWitness(UsageError):
    """A node's log is shorter than, or differs from, a head the node itself signed: the
    ordering service lost or rewrote entries it had acknowledged. The node stops."""


class CheckpointError(VerificationError):
    """A signed tree head or checkpoint failed verification."""


class InsufficientCosigners(CheckpointError):
    """A checkpoint carries fewer valid member cosignatures than the threshold."""


class UnknownTransaction(InvalidInput):
    """No accepted transaction has the requested id or index."""


def rejection_from_code(code: str, message: str) -> TransactionRejected:
    """Rebuild the specific rejection a node recorded, from its code."""
    classes: list[type[TransactionRejected]] = [TransactionRejected]
    seen: dict[str, type[TransactionRejected]] = {}
    while classes:
        cls = classes.pop()
        seen.setdefault(cls.code, cls)
        classes.extend(cls.__subclasses__())
    return seen.get(code, TransactionRejected)(message)
