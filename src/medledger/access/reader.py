"""Reading a record under a grant: ask every custodian, combine t shares, decrypt.

The reader makes a one-time X25519 key, signs a release request for it, and asks
all custodians at once; each writes its receipt before it answers. Any t shares
rebuild the data key; with fewer, the reader learns which custodians refused and
why, and nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Protocol

from medledger.access.custodian import ReleaseAsk, ReleasedShare
from medledger.access.custody import Collected
from medledger.access.release import Release
from medledger.crypto import ecies
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import MedledgerError
from medledger.ledger.timestamps import NS_PER_MS
from medledger.records.proof import CommittedRecord

RELEASE_TTL_MS = 60_000


class CustodianEndpoint(Protocol):
    @property
    def address(self) -> Address: ...

    async def release(self, ask: ReleaseAsk) -> ReleasedShare: ...


async def read_record(
    reader: PrivateKey,
    grant: bytes,
    record: CommittedRecord,
    *,
    custodians: Sequence[CustodianEndpoint],
    threshold: int,
) -> bytes:
    """The record's canonical JSON, from ``threshold`` custodian shares."""
    one_time = ecies.generate_private_key()
    release = Release(
        record.sealed.header.network_id,
        grant,
        record.commitment,
        ecies.public_bytes(one_time),
        time.time_ns() // NS_PER_MS + RELEASE_TTL_MS,
    )
    # Custodians need the header and wrapped keys, not the ciphertext.
    light = dataclasses.replace(record, sealed=dataclasses.replace(record.sealed, ciphertext=b""))
    ask = ReleaseAsk(release, release.sign(reader), light)
    answers = await asyncio.gather(
        *(custodian.release(ask) for custodian in custodians), return_exceptions=True
    )
    collected = Collected(len(custodians))
    for custodian, answer in zip(custodians, answers, strict=True):
        if isinstance(answer, ReleasedShare):
            collected.add_share(one_time, release, custodian.address, answer.sealed)
        elif isinstance(answer, MedledgerError):
            collected.refused(custodian.address, answer)
        else:
            raise answer
    return collected.open_record(record.sealed, threshold)
