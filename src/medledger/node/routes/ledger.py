"""Ledger routes: status, nonces, transactions, checkpoints and proofs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from medledger.access.visibility import may_read_state, may_read_transaction
from medledger.crypto import merkle
from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import to_checksum_address
from medledger.errors import InvalidInput
from medledger.ledger.executor import TxOutcome
from medledger.ledger.store import encode_value
from medledger.ledger.tx import SignedTransaction
from medledger.node.api import (
    ADDRESS,
    ConsistencyProof,
    Genesis,
    Health,
    InclusionProof,
    Nonce,
    Outcome,
    StateProofOut,
    Status,
    TransactionIn,
    WireTransaction,
)
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden, NotFound

router = APIRouter(prefix="/v1", tags=["ledger"])

#: Log sizes and indexes fit the databases' 64-bit integers.
MAX_SIZE = 2**63 - 1
#: How long a requested checkpoint may take to gather its cosignatures.
CHECKPOINT_WAIT_S = 30


def outcome_json(outcome: TxOutcome) -> Outcome:
    assert outcome.index is not None  # submit raises unless accepted
    return Outcome(
        tx_id="0x" + outcome.tx_id.hex(), index=outcome.index, timestamp_ns=outcome.timestamp_ns
    )


def decode_transaction(service: Service, wire: WireTransaction) -> SignedTransaction:
    try:
        raw = canonical_json(wire.model_dump())
    except InvalidInput as exc:
        raise InvalidInput(f"transaction: {exc}") from None
    return SignedTransaction.decode(raw, service.node.limits)


async def submit_own(
    service: Service,
    caller: AuthenticatedCaller,
    stx: SignedTransaction,
    tx_type: str | None = None,
) -> TxOutcome:
    """Submit a transaction the caller signed; ``tx_type`` pins what a route accepts."""
    if stx.tx.sender != caller.address:
        raise Forbidden(f"the transaction's sender {stx.tx.sender} did not sign this request")
    if tx_type is not None and stx.tx.tx_type != tx_type:
        raise InvalidInput(f"transaction: expected type {tx_type}, got {stx.tx.tx_type}")
    return await service.node.submit(stx)


async def submit_about(
    service: Service, caller: AuthenticatedCaller, wire: WireTransaction, tx_type: str, *,
    field: str, target: str,
) -> TxOutcome:  # fmt: skip
    """Submit the caller's ``tx_type`` transaction about the request or grant in the path:
    its payload's ``field`` must name ``target``."""
    stx = decode_transaction(service, wire)
    if str(stx.tx.payload.get(field, "")).lower() != target.lower():
        raise Forbidden(f"the transaction's {field} is not the one in the path")
    return await submit_own(service, caller, stx, tx_type)


@router.get("/health", response_model=Health, tags=["ledger"])
async def health(service: Service) -> Health:
    """Unauthenticated liveness: the node follows the log."""
    node = service.node
    return Health(status="ok", name=node.name, network=node.network_id, size=node.size)


@router.get("/ledger/status", response_model=Status)
async def status(service: Service, caller: AuthenticatedCaller) -> Status:
    node = service.node
    checkpoint = node.checkpoint()
    config = node.network_config()
    state_size, state_root = node.store.tree.latest() or (0, bytes(32))
    return Status(
        name=node.name,
        member=service.keys.member.address,
        network=node.network_id,
        size=node.size,
        root="0x" + node.root().hex(),
        state_size=state_size,
        state_root="0x" + state_root.hex(),
        members=list(node.members()),
        custodian_threshold=int(config["custodian_threshold"]),
        checkpoint_threshold=int(config["checkpoint_threshold"]),
        checkpoint=None if checkpoint is None else checkpoint.head.size,
    )


@router.get("/ledger/nonces/{address}", response_model=Nonce)
async def nonce(
    service: Service,
    caller: AuthenticatedCaller,
    address: Annotated[str, Path(pattern=ADDRESS)],
) -> Nonce:
    """The next transaction nonce of an address, counting transactions waiting here."""
    checked = to_checksum_address(address)
    return Nonce(address=checked, next_nonce=service.node.next_nonce(checked))


@router.post("/ledger/transactions", response_model=Outcome)
async def submit(
    service: Service, caller: AuthenticatedCaller, body: Annotated[TransactionIn, Body()]
) -> Outcome:
    """Order and execute a transaction the caller signed; its refusal is the error."""
    stx = decode_transaction(service, body.transaction)
    return outcome_json(await submit_own(service, caller, stx))


@router.get("/ledger/genesis", response_model=Genesis)
async def genesis(service: Service, caller: AuthenticatedCaller) -> Genesis:
    """The genesis this node follows. A client that got it out of band compares; one that
    did not trusts it from then on (ledger/light.py)."""
    return Genesis(genesis=service.node.genesis.encode().decode())


@router.post("/ledger/checkpoint")
async def checkpoint_now(service: Service, caller: AuthenticatedCaller) -> dict[str, Any]:
    """A checkpoint covering the log as it stands (cosignatures aside): the latest if it
    does, else one this node proposes now, once the other members cosigned it. For a
    client that must not read state older than what it just did (a verifier checking a
    revocation, a wallet reading a document just published)."""
    if caller.kind == "unknown":
        raise Forbidden("checkpoints are made for registered parties")
    covering = await service.covering_checkpoint(timeout_s=CHECKPOINT_WAIT_S)
    return covering.to_json()


@router.get("/ledger/checkpoint")
async def checkpoint(service: Service, caller: AuthenticatedCaller) -> dict[str, Any]:
    """The latest checkpoint cosigned by the threshold of members."""
    latest = service.node.checkpoint()
    if latest is None:
        raise NotFound("no checkpoint has been cosigned yet")
    return latest.to_json()


@router.get("/ledger/proofs/inclusion", response_model=InclusionProof)
async def inclusion(
    service: Service,
    caller: AuthenticatedCaller,
    index: Annotated[int, Query(ge=0, le=MAX_SIZE)],
    size: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None,
) -> InclusionProof:
    node = service.node
    size = node.size if size is None else size
    path = node.inclusion_proof(index, size)
    logged = node.store.tx_by_index(index)
    tx = SignedTransaction.decode(logged.raw, node.limits).tx
    visible = may_read_transaction(node.store, caller.address, tx)
    return InclusionProof(
        index=index,
        size=size,
        root="0x" + merkle.root(node.store, size).hex(),
        path=["0x" + p.hex() for p in path],
        leaf="0x" + logged.leaf.hex(),
        transaction=logged.raw.decode() if visible else None,
    )


@router.get("/ledger/state/{namespace}", response_model=StateProofOut)
async def state_entry(
    service: Service,
    caller: AuthenticatedCaller,
    namespace: Annotated[str, Path(max_length=64)],
    key: Annotated[str, Query(max_length=256)],
    size: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None,
) -> StateProofOut:
    """An entry of the ledger state the caller may see, proven at the latest cosigned
    checkpoint (or at ``size``, a version this node still keeps)."""
    node = service.node
    if not may_read_state(node.store, caller.address, namespace, key):
        raise NotFound(f"nothing to show at {namespace}")
    if size is None:
        checkpoint = node.checkpoint()
        if checkpoint is None:
            raise NotFound("no checkpoint has been cosigned yet")
        size = checkpoint.head.size
    current = node.store.get(namespace, key)
    try:
        proven = node.store.tree.prove(
            namespace, key, size, None if current is None else encode_value(current)
        )
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    return StateProofOut.model_validate(proven.to_json())


@router.get("/ledger/proofs/consistency", response_model=ConsistencyProof)
async def consistency(
    service: Service,
    caller: AuthenticatedCaller,
    old_size: Annotated[int, Query(ge=1, le=MAX_SIZE)],
    new_size: Annotated[int | None, Query(ge=1, le=MAX_SIZE)] = None,
) -> ConsistencyProof:
    node = service.node
    new_size = node.size if new_size is None else new_size
    if not old_size <= new_size <= node.size:
        raise NotFound(f"no consistency proof from {old_size} to {new_size} (log has {node.size})")
    path = node.consistency_proof(old_size, new_size)
    return ConsistencyProof(
        old_size=old_size, new_size=new_size, path=["0x" + p.hex() for p in path]
    )
