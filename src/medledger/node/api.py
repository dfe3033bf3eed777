"""The node's HTTP API as types: what each route takes and answers.

The routes declare these as their bodies and answers (so the OpenAPI document says
them), and the client (node/client.py) reads every answer into them: one definition
for both sides of the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from medledger.access.release import MAX_RELEASE_RECORDS
from medledger.records.header import FIRST_VERSION, MAX_VERSION

if TYPE_CHECKING:
    # Only for a signature: the vault's SQL layer stays out of every client's start.
    from medledger.records.store import StoredRecord

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
HEX32 = r"^0x[0-9a-fA-F]{64}$"
SIGNATURE = r"^0x[0-9a-fA-F]{130}$"
RECORD_ID = r"^[0-9a-f]{32}$"
#: A FHIR id (R4 ``id``), all a client that validated the resource can send.
FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
MAX_RECORDS_PER_WRITE = 4096
MAX_APPROVALS = 16
MAX_EVIDENCE = 64


# -- ledger ----------------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    name: str
    network: int
    size: int


class Status(BaseModel):
    name: str
    member: str = Field(description="this node's institution, whose custodian it runs")
    network: int
    size: int
    root: str
    state_size: int = Field(description="the log size the state committer has reached")
    state_root: str = Field(description="the state root at state_size")
    members: list[str]
    custodian_threshold: int = Field(description="key shares a reader needs")
    checkpoint_threshold: int = Field(description="member cosignatures a checkpoint needs")
    checkpoint: int | None = Field(description="size of the latest cosigned checkpoint")


class Nonce(BaseModel):
    address: str
    next_nonce: int


class Outcome(BaseModel):
    tx_id: str
    index: int = Field(description="the transaction's position in the log")
    timestamp_ns: int


class WireTransaction(BaseModel):
    """A signed transaction in its wire form (ledger/tx.py)."""

    network: int = Field(ge=0)
    sender: str = Field(pattern=ADDRESS)
    nonce: int = Field(ge=0)
    type: str = Field(max_length=64)
    payload: dict[str, Any]
    signature: str = Field(pattern=SIGNATURE)


class TransactionIn(BaseModel):
    transaction: WireTransaction


class InclusionProof(BaseModel):
    index: int
    size: int
    root: str
    path: list[str]
    leaf: str = Field(description="the entry's leaf hash, SHA-256(0x00 || wire form)")
    transaction: str | None = Field(
        default=None,
        description="the logged transaction's wire form (JSON text), for its parties only",
    )


class SmtProofOut(BaseModel):
    path: str
    siblings: list[str] = Field(description="sibling hashes from the root down")
    leaf: list[str] | None = Field(
        description="the entry where the walk ends (path, value hash), or null: empty"
    )


class StateProofOut(BaseModel):
    """A state entry at a cosigned checkpoint's size, with its proof against that
    checkpoint's state root (crypto/smt.py)."""

    ns: str
    key: str
    size: int
    state_root: str
    encoded: str | None = Field(description="the stored value's exact text, which the leaf hashes")
    value: Any = Field(description="the entry's JSON value, or null if absent")
    proof: SmtProofOut


class ConsistencyProof(BaseModel):
    old_size: int
    new_size: int
    path: list[str]


class Genesis(BaseModel):
    genesis: str = Field(description="the network's genesis transaction, wire form (JSON text)")


# -- records ---------------------------------------------------------------------------------


class Custodian(BaseModel):
    address: str
    key: str = Field(description="X25519 public key, 0x-hex")


class Recipients(BaseModel):
    network: int
    threshold: int
    custodians: list[Custodian]
    patient: str
    patient_key: str
    max_records_per_write: int = Field(description="records one upload may carry")


class IncomingRecord(BaseModel):
    sealed: dict[str, Any] = Field(description="a sealed record (records/wire.py form)")
    fhir_id: str | None = Field(default=None, pattern=FHIR_ID)


class WriteIn(BaseModel):
    # The node's own limit is checked in the route (settings.max_records_per_write); this
    # bound only keeps a body too large for any node from being parsed at all.
    records: list[IncomingRecord] = Field(min_length=1, max_length=MAX_RECORDS_PER_WRITE)


class WrittenRecord(BaseModel):
    record_id: str
    version: int
    commitment: str


class WriteOut(BaseModel):
    batch: int
    records: list[WrittenRecord]


class RecordSummary(BaseModel):
    record_id: str
    version: int
    resource_type: str
    category: str
    author: str
    batch: int
    commitment: str
    fhir_id: str | None = Field(description="the resource's own id, by which it is amended")
    digest: str = Field(description="the signed header's digest: a next version points to it")

    @classmethod
    def of(cls, stored: StoredRecord) -> RecordSummary:
        header = stored.sealed.header
        return cls(
            record_id=header.record_id.hex(), version=header.version,
            resource_type=header.resource_type, category=header.category, author=stored.author,
            batch=stored.batch, commitment="0x" + stored.commitment.hex(),
            fhir_id=stored.fhir_id, digest="0x" + header.digest.hex(),
        )  # fmt: skip


# -- access ----------------------------------------------------------------------------------


class RequestState(BaseModel):
    request: str
    requester: str
    patient: str
    categories: list[str]
    records: list[str]
    purpose: str
    duration_s: int
    emergency: bool
    status: str = Field(description="pending, granted or denied")
    grant_status: str | None = Field(
        description="once granted: active, expired, revoked or void (its holder lost standing)"
    )
    signers: list[str]


class ApprovalIn(BaseModel):
    signer: str = Field(pattern=ADDRESS)
    not_after_ms: int = Field(ge=0, lt=2**64)
    signature: str = Field(pattern=SIGNATURE)


class ApprovalsIn(BaseModel):
    approvals: list[ApprovalIn] = Field(min_length=1, max_length=MAX_APPROVALS)


class GrantState(BaseModel):
    grant: str
    requester: str
    patient: str
    categories: list[str]
    records: list[str]
    purpose: str
    approvers: list[str]
    granted_ns: int
    expires_ns: int
    emergency: bool
    status: str = Field(
        description="active, expired, revoked, or void (its holder lost standing)"
    )


# -- custodian -------------------------------------------------------------------------------


class ReleaseIn(BaseModel):
    grant: str = Field(pattern=HEX32)
    records: str = Field(pattern=HEX32, description="RFC 6962 root over the records' commitments")
    count: int = Field(ge=1, le=MAX_RELEASE_RECORDS, description="how many records")
    reader_key: str = Field(pattern=HEX32, description="the reader's one-time X25519 key")
    not_after_ms: int = Field(ge=0, lt=2**64)
    signature: str = Field(pattern=SIGNATURE)


class ReleaseAskIn(BaseModel):
    release: ReleaseIn
    committed: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_RELEASE_RECORDS,
        description="the records as committed (records/wire.py form), in the release's order; "
        "ciphertexts may be empty",
    )
    delegation: dict[str, Any] | None = Field(
        default=None, description="the grant holder's delegation, when a node asks for them"
    )


class ReleasedShareOut(BaseModel):
    custodian: str
    receipt: str = Field(description="the access.receipt transaction id")
    sealed: list[str] = Field(
        description="each record's share sealed to the reader's one-time key, base64, in order"
    )


# -- audit -----------------------------------------------------------------------------------


class ReceiptOut(BaseModel):
    receipt: str = Field(description="the access.receipt transaction id")
    custodian: str
    index: int = Field(description="the receipt's position in the log")
    timestamp_ns: int
    checkpoint: int | None = Field(description="size of the checkpoint it is proven in")
    proof: list[str] = Field(description="its inclusion proof in that checkpoint")


class ReadOut(BaseModel):
    read: str = Field(description="the digest of the reader's signed release")
    grant: str | None = Field(description="none when the patient or a guardian read")
    reader: str
    record_id: str
    version: int
    resource_type: str
    author: str
    category: str
    purpose: str
    emergency: bool
    via: str | None = Field(description="the member node a delegated read went through")
    app: str | None = Field(description="the app (client id) a delegated read served")
    timestamp_ns: int = Field(description="when the read began: its first receipt")
    proven: bool = Field(description="every receipt is proven in a cosigned checkpoint")
    complete: bool = Field(description="as many custodians released as a read needs")
    threshold: int
    receipts: list[ReceiptOut]


class BreakGlassOut(BaseModel):
    grant: str
    requester: str
    categories: list[str]
    purpose: str
    approvers: list[str]
    granted_ns: int
    expires_ns: int


class Audit(BaseModel):
    patient: str
    reads: list[ReadOut]
    break_glass: list[BreakGlassOut]


# -- credentials -----------------------------------------------------------------------------


class SetupIn(BaseModel):
    max_credentials: int = Field(default=1000, ge=1, le=100_000)


class IssuerOut(BaseModel):
    issuer: str
    offer: str = Field(description="an AnonCreds credential offer")


class EvidenceIn(BaseModel):
    record_id: str = Field(pattern=RECORD_ID)
    version: int = Field(ge=FIRST_VERSION, le=MAX_VERSION)
    salt: str = Field(pattern=HEX32)
    resource: str = Field(description="the record's canonical JSON, base64")


class IssueIn(BaseModel):
    format: Literal["anoncreds", "sd-jwt", "health-card"]
    evidence: list[EvidenceIn] = Field(min_length=1, max_length=MAX_EVIDENCE)
    offer: str | None = Field(default=None, description="anoncreds: the offer answered")
    request: str | None = Field(default=None, description="anoncreds: the wallet's request")
    holder_jwk: dict[str, Any] | None = Field(default=None, description="sd-jwt: holder key")


class IssueOut(BaseModel):
    format: str
    credential_id: str
    credential: str
    qr: str | None = Field(default=None, description="health card: the QR code, SVG")
    qr_text: str | None = Field(default=None, description="health card: the QR's shc:/ text")


# -- fhir ------------------------------------------------------------------------------------


class Refinement(BaseModel):
    element: str = Field(
        description="the top-level element read: a CodeableConcept, a list of them (a lone one "
        "counts as a list of one), or a Reference"
    )
    codes: list[str] | None = Field(
        description="a coding of the element with any of these codes applies; null: the "
        "element holding a JSON object (a Reference) applies"
    )
    systems: list[str] | None = Field(
        description="the code systems a code counts under; null: any system, or none"
    )
    category: str


class TypeCategory(BaseModel):
    category: str
    refinements: list[Refinement] = Field(description="tried in order; the first that applies wins")


class Categories(BaseModel):
    resource_types: list[str] = Field(description="every resource type the node validates")
    default: str = Field(description="the category of a type the table does not name")
    types: dict[str, TypeCategory]
    bundle_types: list[str] = Field(description="Bundle.type codes a Bundle may have")
    shared_types: list[str] = Field(
        description="institution-level resource types (records/chart.py SHARED): never "
        "sealed into a patient's chart"
    )
    non_chart_bundle_types: list[str] = Field(
        description="Bundle.type codes of Bundles that are no chart (a search's or a "
        "server's answer): a file holding one is refused whole"
    )


# -- patients --------------------------------------------------------------------------------

#: Identifier digests one call may carry: a Patient resource holds a handful.
MAX_IDENTIFIERS = 1024
Digest = Annotated[str, Field(pattern=HEX32)]


class IndexKey(BaseModel):
    institution: str
    key: str = Field(
        description="the institution's patient index key (HMAC-SHA256), 0x-hex: its staff's "
        "clients hash identifiers under it, so the node never sees one"
    )


class IdentifiersIn(BaseModel):
    patient: str = Field(pattern=ADDRESS)
    digests: list[Digest] = Field(min_length=1, max_length=MAX_IDENTIFIERS)


class IdentifiersOut(BaseModel):
    patient: str
    added: int = Field(description="digests this call indexed that were not yet")


class FindIn(BaseModel):
    digests: list[Digest] = Field(min_length=1, max_length=MAX_IDENTIFIERS)


class PatientFound(BaseModel):
    digest: str
    patient: str
    enrolled: bool = Field(description="whether the patient is enrolled here now")


# -- SMART on FHIR ---------------------------------------------------------------------------


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds the token lives")
    scope: str = Field(description="the scopes granted: the readable part of those asked")
    patient: str | None = Field(None, description="the patient in context (a patient's launch)")


class OAuthError(BaseModel):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str
