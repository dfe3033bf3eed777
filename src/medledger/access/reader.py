"""Reading records under a grant (or as their patient): ask every custodian, combine t
shares, decrypt.

The reader makes a one-time X25519 key, signs one release request for a query's
records (up to :data:`MAX_RELEASE_RECORDS` at a time), and asks all custodians at
once; each writes one receipt for them before it answers. Any t shares of a record
rebuild its data key; with fewer, the reader learns which custodians refused and why,
and nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Protocol

from medledger.access.custodian import ReleaseAsk, ReleasedShares
from medledger.access.custody import Collected
from medledger.access.delegation import SignedDelegation, digest_of
from medledger.access.release import MAX_RELEASE_RECORDS, Release
from medledger.crypto import ecies
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import MedledgerError
from medledger.ledger.timestamps import NS_PER_MS
from medledger.records.proof import CommittedRecord

RELEASE_TTL_MS = 60_000


class CustodianEndpoint(Protocol):
    @property
    def address(self) -> Address: ...

    async def release(self, ask: ReleaseAsk) -> ReleasedShares: ...


async def read_record(
    reader: PrivateKey,
    grant: bytes,
    record: CommittedRecord,
    *,
    custodians: Sequence[CustodianEndpoint],
    threshold: int,
) -> bytes:
    """The record's canonical JSON, from ``threshold`` custodian shares."""
    (opened,) = await read_records(
        reader, grant, [record], custodians=custodians, threshold=threshold
    )
    return opened


async def read_records(
    reader: PrivateKey,
    grant: bytes,
    records: Sequence[CommittedRecord],
    *,
    custodians: Sequence[CustodianEndpoint],
    threshold: int,
    delegation: SignedDelegation | None = None,
) -> list[bytes]:
    """Each record's canonical JSON, in order: one release (so one receipt per custodian)
    for every :data:`MAX_RELEASE_RECORDS` records, the releases asked in parallel.
    ``reader`` is the grant's holder, or the node the holder's ``delegation`` names; with
    ``grant`` :data:`~medledger.access.release.OWNER_READ`, the records' patient or a
    guardian, or the node one of them delegated to (access/owner.py)."""
    chunks = [records[i : i + MAX_RELEASE_RECORDS]
              for i in range(0, len(records), MAX_RELEASE_RECORDS)]  # fmt: skip
    opened = await asyncio.gather(
        *(
            _read_chunk(
                reader, grant, chunk, custodians, threshold=threshold, delegation=delegation
            )
            for chunk in chunks
        )
    )
    return [plaintext for chunk in opened for plaintext in chunk]


async def _read_chunk(
    reader: PrivateKey,
    grant: bytes,
    records: Sequence[CommittedRecord],
    custodians: Sequence[CustodianEndpoint],
    *,
    threshold: int,
    delegation: SignedDelegation | None,
) -> list[bytes]:
    one_time = ecies.generate_private_key()
    release = Release.of(
        records[0].sealed.header.network_id,
        grant,
        [record.commitment for record in records],
        ecies.public_bytes(one_time),
        time.time_ns() // NS_PER_MS + RELEASE_TTL_MS,
        delegation=digest_of(delegation),
    )
    # Custodians need the headers and wrapped keys, not the ciphertexts.
    light = tuple(
        dataclasses.replace(r, sealed=dataclasses.replace(r.sealed, ciphertext=b""))
        for r in records
    )
    ask = ReleaseAsk(release, release.sign(reader), light, delegation)
    answers = await asyncio.gather(
        *(custodian.release(ask) for custodian in custodians), return_exceptions=True
    )
    opener = ecies.Opener(one_time)
    collected = [Collected(len(custodians)) for _ in records]
    for custodian, answer in zip(custodians, answers, strict=True):
        if isinstance(answer, ReleasedShares) and len(answer.sealed) == len(records):
            for record, got, sealed in zip(records, collected, answer.sealed, strict=True):
                try:
                    got.add_share(opener, release, custodian.address, record.commitment, sealed)
                except MedledgerError as exc:  # a share sealed for something else
                    got.refused(custodian.address, exc)
        elif isinstance(answer, ReleasedShares):
            for got in collected:
                got.refused(custodian.address, "answered for another number of records")
        elif isinstance(answer, MedledgerError):
            for got in collected:
                got.refused(custodian.address, answer)
        else:
            raise answer
    return [got.open_record(r.sealed, threshold) for r, got in zip(records, collected, strict=True)]
