"""A delegation: a grant's holder lets one member's node read for them, through one app.

A FHIR app (SMART on FHIR) holds no ledger key and decrypts nothing: the node it talks
to asks the custodians and opens the records for it. The holder signs, once per session,

    Delegation(address delegate, string app, string types, uint64 notAfter)

under the domain ``{name: "medledger access", version: "1", chainId: network}``: this
member's node (``delegate``, its member address), for this app (its client id), may
ask for releases under the holder's grants, of these resource types only (``*`` or a
sorted comma-separated list: the SMART scopes the holder allowed), until ``notAfter``
(ms, at most :data:`MAX_DELEGATION_LIFETIME_MS` ahead). The node then signs each
release itself; custodians and every node check the delegation against the grant's
holder and the release's signer, and each record's type against ``types``, so a
node's scopes narrow what a grant allows and can never widen it. The receipt names
the holder as reader, the node it read through and the app.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from medledger.access.approval import DOMAIN_NAME, DOMAIN_VERSION
from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.crypto.typed_message import Fields, TypedMessage
from medledger.errors import InvalidInput, UsageError
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.membership import is_member
from medledger.ledger.timestamps import NS_PER_MS

ALL_TYPES = "*"
#: What a release names as its delegation when its reader signs it themself.
NO_DELEGATION = bytes(32)
#: The HTTP header in which a delegated node presents the delegation it acts under.
HEADER = "Medledger-Delegation"
#: A delegation is a session, not a standing order.
MAX_DELEGATION_LIFETIME_MS = 12 * 3600 * 1000
SIGNATURE_SIZE = 65
_APP = re.compile(r"[A-Za-z0-9._~:/\-]{1,128}")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")


@dataclass(frozen=True)
class Delegation(TypedMessage):
    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    DOMAIN_VERSION: ClassVar[str] = DOMAIN_VERSION
    PRIMARY_TYPE: ClassVar[str] = "Delegation"
    FIELDS: ClassVar[Fields] = [
        {"name": "delegate", "type": "address"},
        {"name": "app", "type": "string"},
        {"name": "types", "type": "string"},
        {"name": "notAfter", "type": "uint64"},
    ]

    network_id: int
    delegate: Address
    app: str
    resource_types: str
    not_after_ms: int

    def __post_init__(self) -> None:
        if not _APP.fullmatch(self.app):
            raise UsageError("delegation: the app must be a client id of 1 to 128 URL-safe chars")
        if self.resource_types != ALL_TYPES:
            names = self.resource_types.split(",")
            if names != sorted(set(names)) or not all(_TYPE.fullmatch(n) for n in names):
                raise UsageError("delegation: types must be * or sorted, distinct resource types")

    @classmethod
    def of_types(
        cls, network_id: int, delegate: Address, app: str, types: set[str] | None,
        not_after_ms: int,
    ) -> Delegation:  # fmt: skip
        """``types`` None allows every resource type."""
        spelled = ALL_TYPES if types is None else ",".join(sorted(types))
        return cls(network_id, delegate, app, spelled, not_after_ms)

    def message(self) -> dict[str, Any]:
        return {
            "delegate": self.delegate,
            "app": self.app,
            "types": self.resource_types,
            "notAfter": self.not_after_ms,
        }

    def allows(self, resource_type: str) -> bool:
        return self.resource_types == ALL_TYPES or resource_type in self.resource_types.split(",")


@dataclass(frozen=True)
class SignedDelegation:
    delegation: Delegation
    signature: bytes

    @classmethod
    def sign(cls, delegation: Delegation, holder: PrivateKey) -> SignedDelegation:
        return cls(delegation, delegation.sign(holder))

    def to_json(self) -> dict[str, Any]:
        d = self.delegation
        return {
            "delegate": d.delegate,
            "app": d.app,
            "types": d.resource_types,
            "not_after_ms": d.not_after_ms,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: object, network_id: int) -> SignedDelegation:
        """Parse :meth:`to_json`'s form; InvalidInput names what is malformed."""
        if not isinstance(obj, Mapping):
            raise InvalidInput("delegation: expected an object")
        try:
            not_after = obj["not_after_ms"]
            if not isinstance(not_after, int) or isinstance(not_after, bool) or not_after < 0:
                raise ValueError("not_after_ms: expected a non-negative integer")
            delegation = Delegation(network_id, to_checksum_address(str(obj["delegate"])),
                                    str(obj["app"]), str(obj["types"]), not_after)  # fmt: skip
            return cls(delegation, parse_hex(str(obj["signature"]), SIGNATURE_SIZE))
        except KeyError as exc:
            raise InvalidInput(f"delegation: missing field {exc}") from None
        except (ValueError, UsageError) as exc:
            raise InvalidInput(f"delegation: malformed: {exc}") from None

    def principal(self) -> Address:
        """Who delegated; BadApproval if no one can have signed it."""
        try:
            return self.delegation.signer(self.signature)
        except InvalidSignature as exc:
            raise BadApproval(f"delegation: {exc}") from None

    def to_header(self) -> str:
        """The form a delegated node's requests carry (:data:`HEADER`)."""
        return base64.urlsafe_b64encode(json.dumps(self.to_json()).encode()).decode()

    @classmethod
    def from_header(cls, value: str, network_id: int) -> SignedDelegation:
        try:
            obj = json.loads(base64.urlsafe_b64decode(value.encode()))
        except (ValueError, binascii.Error):
            raise InvalidInput("delegation: not base64url JSON") from None
        return cls.from_json(obj, network_id)

    def check(self, *, holder: Address, release_signer: Address, now_ns: int) -> None:
        """That the grant's ``holder`` signed this delegation to the release's signer, and
        that it is still in force; BadApproval or ApprovalExpired otherwise."""
        d = self.delegation
        if self.principal() != holder:
            raise BadApproval("delegation not signed by the grant's holder")
        if d.delegate != release_signer:
            raise BadApproval("release request not signed by the delegated node")
        if d.not_after_ms * NS_PER_MS < now_ns:
            raise ApprovalExpired("delegation expired")
        if d.not_after_ms * NS_PER_MS > now_ns + MAX_DELEGATION_LIFETIME_MS * NS_PER_MS:
            raise BadApproval("delegation lives too long: a session, not a standing order")

    def require_type(self, resource_type: str, label: str) -> None:
        if not self.delegation.allows(resource_type):
            raise OutOfScope(f"record {label}: the delegation does not reach {resource_type}")


def digest_of(delegation: SignedDelegation | None) -> bytes:
    """What a release names as the delegation it is asked under (access/release.py): a
    custodian cannot log a delegated read under another delegation of the same holder
    and node (another app), as the reader signed this one."""
    return NO_DELEGATION if delegation is None else delegation.delegation.digest


def check_reader(
    view: StateView, release_signer: Address, delegation: SignedDelegation | None, *,
    holder: Address, now_ns: int,
) -> None:  # fmt: skip
    """Check that a release was asked by the grant's holder, or by a current member's node
    the holder delegated to."""
    if delegation is None:
        if release_signer != holder:
            raise BadApproval(f"release request signed by {release_signer}, not the grant's holder")
        return
    delegation.check(holder=holder, release_signer=release_signer, now_ns=now_ns)
    if not is_member(view, delegation.delegation.delegate):
        raise BadApproval("delegation to a node that is no member of the consortium")
