"""Patients found by their identifiers at an institution: an MRN to a pseudonym, off the ledger.

An institution knows its patients by the identifiers its own systems give them (a
medical record number, a national id); the ledger knows them by pseudonym (an
address). The index links the two, for one institution's staff only. It lives in the
institution's own database beside its vault, never on the ledger, and holds no
identifier in clear: each is kept as HMAC-SHA256 under the institution's index key,
derived from its ledger key, so a copy of the database (a backup, a replica) neither
shows who is a patient here nor can be searched by guessing identifiers.

Records are sealed on their author's client and the node never sees one in clear, so
the client computes the keyed hashes, from the chart's Patient resource it imports,
and hands its node only those. Staff get the key from their own node; another
institution's staff and patients get neither the key nor answers (node/routes).
What this does not stop: staff, and anyone who holds the key and a copy of the
database, can test identifiers they guess. A new ledger key means a new index.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import Column, Engine, Index, LargeBinary, MetaData, String, Table, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from medledger.crypto import ecies
from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput, TransportError, UsageError
from medledger.ledger.database import make_engine
from medledger.records.chart import Identifier

__all__ = [
    "DIGEST_SIZE", "IdentifierTaken", "PatientIndex", "identifier_digest", "index_key",
    "parse_identifier",
]  # fmt: skip

INDEX_LABEL = b"patient-index"
DIGEST_SIZE = 32
# Keeps each lookup within every database's limit on bound parameters.
_CHUNK = 500

_metadata = MetaData()
_identifiers = Table(
    "patient_identifiers",
    _metadata,
    Column("digest", LargeBinary(DIGEST_SIZE), primary_key=True),
    Column("patient", String(42), nullable=False),
    Index("patient_identifiers_patient", "patient"),
)


class IdentifierTaken(InvalidInput):
    """An identifier is already indexed for another patient at this institution."""


def index_key(institution: PrivateKey) -> bytes:
    """The institution's index key, derived from its ledger key."""
    return ecies.derive_secret(institution.to_bytes(), INDEX_LABEL)


def identifier_digest(key: bytes, identifier: Identifier) -> bytes:
    """How the index holds an identifier: HMAC-SHA256 of its (system, value), as RFC 8785
    JSON so that no two identifiers share one input."""
    if len(key) != DIGEST_SIZE:
        raise UsageError(f"an index key is {DIGEST_SIZE} bytes")
    return hmac.new(key, canonical_json(list(identifier)), hashlib.sha256).digest()


def parse_identifier(text: str) -> Identifier:
    """``SYSTEM|VALUE`` (FHIR's token form; ``|VALUE`` for an identifier without a system)."""
    system, bar, value = text.partition("|")
    if not bar or not value:
        # Never the text itself: it is someone's identifier.
        raise UsageError("an identifier is written SYSTEM|VALUE (|VALUE if it has no system)")
    return system, value


@contextmanager
def _sql(what: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise TransportError(f"patient index: cannot {what}: {type(exc).__name__}") from exc


class PatientIndex:
    """One institution's index: identifier digests to patient pseudonyms."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        with _sql("open"), engine.begin() as conn:
            _metadata.create_all(conn)

    @classmethod
    def open(cls, url: str) -> PatientIndex:
        """The index in the database at ``url`` (the vault's, see ledger/database.py)."""
        return cls(make_engine(url))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> PatientIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def owners(self, digests: Collection[bytes]) -> dict[bytes, Address]:
        """The patient each of ``digests`` is indexed for, where one is."""
        found: dict[bytes, Address] = {}
        wanted = sorted(set(digests))
        with _sql("look up identifiers"), self._engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                query = select(_identifiers.c.digest, _identifiers.c.patient).where(
                    _identifiers.c.digest.in_(chunk)
                )
                found.update((bytes(d), Address(p)) for d, p in conn.execute(query))
        return found

    def add(self, patient: Address, digests: Collection[bytes]) -> int:
        """Index ``digests`` for ``patient``; return how many were new. All or none: an
        identifier indexed for another patient refuses the whole call."""
        wanted = set(digests)
        for _ in range(2):  # once more if another writer added one of them meanwhile
            added = self._add(patient, wanted)
            if added is not None:
                return added
        raise IdentifierTaken("an identifier is already indexed for another patient here")

    def _add(self, patient: Address, digests: set[bytes]) -> int | None:
        """How many were new; None if another writer indexed one of them meanwhile."""
        held = self.owners(digests)
        if any(owner != patient for owner in held.values()):
            raise IdentifierTaken("an identifier is already indexed for another patient here")
        new = [{"digest": d, "patient": patient} for d in sorted(digests - held.keys())]
        if not new:
            return 0
        try:
            with self._engine.begin() as conn:
                conn.execute(_identifiers.insert(), new)
        except IntegrityError:
            return None
        except SQLAlchemyError as exc:
            raise TransportError(f"patient index: cannot add: {type(exc).__name__}") from exc
        return len(new)
