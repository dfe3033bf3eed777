"""Presentation requests: what a verifier asks a patient's wallet to prove, signed.

A verifier (insurer, bank, employer) signs, with its ledger key,

    PresentationRequest(address verifier, string purpose, bytes32 nonce,
                        string format, string query, address[] issuers, uint64 notAfter)

under the domain ``{name: "medledger credentials", version: "1", chainId: network}``.
``query`` is the canonical JSON of the predicates and disclosed claims asked for.
The request's EIP-712 digest is its id: the AnonCreds proof nonce and the SD-JWT
key-binding nonce are derived from it, so a presentation answers this request
(this verifier, purpose and nonce) and no other; the ledger's record of the
verification is keyed by it, so it is used once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from medledger.access.policy import PURPOSES
from medledger.credentials.claims import CLAIMS
from medledger.credentials.errors import BadPresentationRequest, RequestExpired
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.crypto.typed_message import Fields, TypedMessage
from medledger.errors import InvalidInput

__all__ = ["FORMATS", "OPERATORS", "Predicate", "PresentationRequest", "SignedRequest"]

DOMAIN_NAME = "medledger credentials"
DOMAIN_VERSION = "1"
FORMATS = frozenset({"anoncreds", "sd-jwt"})
OPERATORS = ("<=", ">=", "<", ">")
MAX_ISSUERS = 16
_PREDICATE = re.compile(r"\s*([a-z][a-z0-9_]*)\s*(<=|>=|<|>)\s*(-?\d{1,10})\s*")
_INT32 = 2**31
_UINT64 = 2**64
_UINT256 = 2**256


@dataclass(frozen=True)
class Predicate:
    """``claim op value`` on an integer claim, e.g. ``hba1c_x10 < 65``."""

    claim: str
    op: str
    value: int

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise BadPresentationRequest(f"predicate on unknown claim {self.claim!r}")
        if self.op not in OPERATORS:
            raise BadPresentationRequest(f"predicate operator {self.op!r} is not one of <,<=,>=,>")
        if type(self.value) is not int or not -_INT32 <= self.value < _INT32:
            raise BadPresentationRequest(f"predicate value on {self.claim} is not a 32-bit integer")

    @classmethod
    def parse(cls, text: str) -> Predicate:
        match = _PREDICATE.fullmatch(text)
        if match is None:
            raise BadPresentationRequest(f"{text!r} is not a predicate like 'hba1c_x10<65'")
        return cls(match[1], match[2], int(match[3]))

    def holds(self, value: int) -> bool:
        return {
            "<": value < self.value,
            "<=": value <= self.value,
            ">=": value >= self.value,
            ">": value > self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.claim} {self.op} {self.value}"


@dataclass(frozen=True)
class PresentationRequest(TypedMessage):
    """What a verifier asks; constructing one checks it."""

    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    DOMAIN_VERSION: ClassVar[str] = DOMAIN_VERSION
    PRIMARY_TYPE: ClassVar[str] = "PresentationRequest"
    FIELDS: ClassVar[Fields] = [
        {"name": "verifier", "type": "address"},
        {"name": "purpose", "type": "string"},
        {"name": "nonce", "type": "bytes32"},
        {"name": "format", "type": "string"},
        {"name": "query", "type": "string"},
        {"name": "issuers", "type": "address[]"},
        {"name": "notAfter", "type": "uint64"},
    ]

    network_id: int
    verifier: Address
    purpose: str
    nonce: bytes
    format: str
    predicates: tuple[Predicate, ...]
    disclose: tuple[str, ...]
    issuers: tuple[Address, ...]
    not_after_ms: int
    _query: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        # JSON integers within the EIP-712 types of chainId (uint256) and notAfter
        # (uint64): outside them there is no digest for a signature to be over.
        if type(self.network_id) is not int or not 0 <= self.network_id < _UINT256:
            raise BadPresentationRequest("network_id: expected an integer in [0, 2**256)")
        if type(self.not_after_ms) is not int or not 0 <= self.not_after_ms < _UINT64:
            raise BadPresentationRequest("not_after_ms: expected an integer in [0, 2**64)")
        if self.purpose not in PURPOSES:
            raise BadPresentationRequest(f"purpose {self.purpose!r} is not a PurposeOfUse code")
        if self.format not in FORMATS:
            raise BadPresentationRequest(f"format {self.format!r} is not one of {sorted(FORMATS)}")
        if len(self.nonce) != 32:
            raise BadPresentationRequest("nonce: expected 32 bytes")
        if not self.predicates and not self.disclose:
            raise BadPresentationRequest("a request must ask for at least one predicate or claim")
        if self.format == "sd-jwt" and self.predicates:
            raise BadPresentationRequest("SD-JWT cannot prove predicates: ask to disclose claims")
        unknown = [claim for claim in self.disclose if claim not in CLAIMS]
        if unknown or len(set(self.disclose)) != len(self.disclose):
            raise BadPresentationRequest(f"disclose: unknown or repeated claims {unknown}")
        if len(self.issuers) > MAX_ISSUERS:
            raise BadPresentationRequest(f"issuers: at most {MAX_ISSUERS}")
        query = {
            "predicates": [[p.claim, p.op, p.value] for p in self.predicates],
            "disclose": list(self.disclose),
        }
        object.__setattr__(self, "_query", canonical_json(query).decode())

    def message(self) -> dict[str, Any]:
        return {
            "verifier": self.verifier,
            "purpose": self.purpose,
            "nonce": self.nonce,
            "format": self.format,
            "query": self._query,
            "issuers": list(self.issuers),
            "notAfter": self.not_after_ms,
        }

    @property
    def id(self) -> str:
        """The request's id: its EIP-712 digest."""
        return "0x" + self.digest.hex()

    def check_fresh(self, now_ms: int) -> None:
        if now_ms > self.not_after_ms:
            raise RequestExpired(f"request {self.id} expired at {self.not_after_ms} ms")

    def signed_by(self, key: PrivateKey) -> SignedRequest:
        if key.address != self.verifier:
            raise InvalidInput("a request is signed by the verifier it names")
        return SignedRequest(self, self.sign(key))

    def to_json(self) -> dict[str, Any]:
        return {
            "network_id": self.network_id,
            "verifier": self.verifier,
            "purpose": self.purpose,
            "nonce": "0x" + self.nonce.hex(),
            "format": self.format,
            "predicates": [str(p) for p in self.predicates],
            "disclose": list(self.disclose),
            "issuers": list(self.issuers),
            "not_after_ms": self.not_after_ms,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PresentationRequest:
        try:
            return cls(
                network_id=obj["network_id"],
                verifier=to_checksum_address(obj["verifier"]),
                purpose=str(obj["purpose"]),
                nonce=bytes.fromhex(str(obj["nonce"]).removeprefix("0x")),
                format=str(obj["format"]),
                predicates=tuple(Predicate.parse(str(p)) for p in obj["predicates"]),
                disclose=tuple(str(c) for c in obj["disclose"]),
                issuers=tuple(to_checksum_address(a) for a in obj["issuers"]),
                not_after_ms=obj["not_after_ms"],
            )
        except BadPresentationRequest:
            raise
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise BadPresentationRequest(f"malformed presentation request: {exc}") from None


@dataclass(frozen=True)
class SignedRequest:
    """A request and its verifier's signature; :meth:`from_json` checks the signature."""

    request: PresentationRequest
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request.to_json(), "signature": "0x" + self.signature.hex()}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SignedRequest:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("request"), Mapping):
            raise BadPresentationRequest("expected {request, signature}")
        request = PresentationRequest.from_json(obj["request"])
        try:
            signature = bytes.fromhex(str(obj.get("signature", "")).removeprefix("0x"))
            signer = request.signer(signature)
        except (ValueError, InvalidSignature) as exc:
            raise BadPresentationRequest(f"request signature: {exc}") from None
        if signer != request.verifier:
            raise BadPresentationRequest(
                f"request names verifier {request.verifier} but is signed by {signer}"
            )
        return cls(request, signature)
