"""Our profile of HTTP Message Signatures (RFC 9421) for node API requests.

Every API request to a node is signed with the caller's ledger key. The
signature covers ``"@method" "@authority" "@path" "@query" "content-digest"``
and carries ``created``, ``expires``, ``nonce``, ``alg`` and ``keyid``
parameters. The algorithm is our own, :data:`ALGORITHM`: RFC 9421 registers no
secp256k1 algorithm, and a recoverable signature lets the verifier learn the
signer from the signature itself, so ``keyid`` (the signer's EIP-55 address)
needs no key directory lookup.

It rests on three modules, each usable alone: RFC 8941 structured fields
(structured_fields.py), the generic RFC 9421 signature base (signature_base.py)
and Content-Digest (RFC 9530, content_digest.py).

Everything is a pure function: the clock (``now_s``) and randomness
(``randbytes``) come in as arguments. Replay protection is not here: the node
must remember each accepted (signer, nonce) until its ``expires`` passes.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from medledger.crypto.errors import InvalidAddress, InvalidSignature
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    keccak256,
    recover_address,
    to_checksum_address,
)
from medledger.errors import UsageError
from medledger.node.content_digest import content_digest, verify_content_digest
from medledger.node.errors import (
    ContentDigestMissing,
    InvalidKeyId,
    InvalidNonce,
    MalformedHeader,
    SignatureExpired,
    SignatureLabelMissing,
    SignatureLifetimeTooLong,
    SignatureMismatch,
    SignatureMissing,
    SignatureNotYetValid,
    UnsupportedAlgorithm,
    WrongAuthority,
    WrongCoveredComponents,
)
from medledger.node.signature_base import HttpRequest, signature_base
from medledger.node.structured_fields import (
    KEY,
    BareItem,
    InnerList,
    Item,
    Params,
    Token,
    parse_dictionary,
    serialize_bare,
    serialize_inner_list,
    serialize_item,
)

__all__ = [
    "ALGORITHM",
    "COVERED_COMPONENTS",
    "SignatureLimits",
    "SignedRequest",
    "new_nonce",
    "sign_request",
    "verify_request",
]

ALGORITHM = "ecdsa-secp256k1-keccak256"
"""Our ``alg``, not IANA-registered: a 65-byte r||s||v secp256k1 signature over keccak256(base)."""

COVERED_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
"""What every request signature covers, in the order :func:`sign_request` lists them."""
_NONCE = re.compile(r"[A-Za-z0-9_\-]{16,128}")
_NONCE_BYTES = 16


@dataclass(frozen=True)
class SignatureLimits:
    """How far a node trusts signers' clocks and how long it lets a signature live."""

    clock_skew_s: int = 30
    max_lifetime_s: int = 300

    def __post_init__(self) -> None:
        if self.clock_skew_s < 0 or self.max_lifetime_s < 0:
            raise UsageError(
                f"limits must be >= 0, got clock_skew_s={self.clock_skew_s}, "
                f"max_lifetime_s={self.max_lifetime_s}"
            )


@dataclass(frozen=True)
class SignedRequest:
    """Who signed a verified request, and the nonce the node must not accept twice."""

    signer: Address
    nonce: str
    created: int
    expires: int


def new_nonce(randbytes: Callable[[int], bytes] = os.urandom) -> str:
    """Return 16 bytes from ``randbytes`` as unpadded base64url (22 characters)."""
    raw = randbytes(_NONCE_BYTES)
    if len(raw) != _NONCE_BYTES:
        raise UsageError(f"randbytes({_NONCE_BYTES}) returned {len(raw)} bytes")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_request(
    key: PrivateKey,
    *,
    method: str,
    url: str,
    body: bytes,
    created: int,
    expires: int,
    nonce: str,
    label: str = "sig1",
    fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the Content-Digest, Signature-Input and Signature headers for a request.

    ``url`` is the full URL the request is sent to; ``created`` and ``expires``
    are Unix seconds; ``nonce`` is from :func:`new_nonce`. ``fields`` are further
    header fields the request carries that the signature covers too (after
    :data:`COVERED_COMPONENTS`, by their lower-case names).
    """
    if KEY.fullmatch(label) is None:
        raise UsageError(f"label must be an RFC 8941 key: {label[:40]!r}")
    if _NONCE.fullmatch(nonce) is None:
        raise UsageError("nonce must be 16 to 128 base64url characters")
    if expires < created:
        raise UsageError(f"expires {expires} is before created {created}")
    digest_header = content_digest(body)
    extra = [(name.lower(), value) for name, value in (fields or {}).items()]
    request = HttpRequest.parse(method, url, [("content-digest", digest_header), *extra])
    identifiers = tuple(Item(name) for name in (*COVERED_COMPONENTS, *(n for n, _ in extra)))
    params: Params = (
        ("created", created),
        ("expires", expires),
        ("nonce", nonce),
        ("alg", ALGORITHM),
        ("keyid", key.address),
    )
    base = signature_base([(i, request.component(i)) for i in identifiers], params)
    signature = key.sign_digest(keccak256(base))
    return {
        "Content-Digest": digest_header,
        "Signature-Input": f"{label}={serialize_inner_list(InnerList(identifiers, params))}",
        "Signature": f"{label}={serialize_bare(signature)}",
    }


def _string_param(params: Mapping[str, BareItem], name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) and not isinstance(value, Token) else None


def _integer_param(params: Mapping[str, BareItem], name: str, label: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedHeader(f"signature {label} has no integer {name} parameter")
    return value


def _covered_identifiers(
    inner: InnerList, label: str, present: tuple[str, ...] = ()
) -> tuple[Item, ...]:
    names = []
    for item in inner.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token) or item.params:
            raise WrongCoveredComponents(
                f"signature {label} covers {serialize_item(item)[:40]}, not a plain component"
            )
        names.append(item.value)
    expected = (*COVERED_COMPONENTS, *present)
    if len(names) != len(set(names)) or set(names) != set(expected):
        raise WrongCoveredComponents(
            f"signature {label} covers {' '.join(names)[:200]}, "
            f"expected each of {' '.join(expected)} once"
        )
    return inner.items


def _check_times(created: int, expires: int, now_s: int, limits: SignatureLimits) -> None:
    if created > now_s + limits.clock_skew_s:
        raise SignatureNotYetValid(
            f"signature created at {created}, now {now_s}: "
            f"more than {limits.clock_skew_s}s in the future"
        )
    if expires < now_s:
        raise SignatureExpired(f"signature expired at {expires}, now {now_s}")
    if expires < created:
        raise MalformedHeader(f"signature expires at {expires}, before it was created at {created}")
    if expires - created > limits.max_lifetime_s:
        raise SignatureLifetimeTooLong(
            f"signature lives {expires - created}s (created {created}, expires {expires}), "
            f"more than {limits.max_lifetime_s}s"
        )


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now_s: int,
    limits: SignatureLimits,
    label: str = "sig1",
    authority: str | None = None,
    covered_if_present: tuple[str, ...] = (),
) -> SignedRequest:
    """Check a request's signature under ``label``; return who signed it.

    ``headers`` names may be in any case. ``authority`` is the host[:port] the
    verifier answers to, normalised as :class:`HttpRequest` derives ``@authority``
    (lower case, no default port); a request addressed to any other is refused
    before its signature is checked. ``None`` skips that check, for verifying a
    request away from the server it was sent to. Raises a RequestNotAuthenticated
    subclass that says which check failed. The caller must still reject a
    (signer, nonce) pair it has accepted before. A header field named (lower case)
    in ``covered_if_present`` that the request carries must be covered too, so that
    nobody on the way can add, drop or swap it.
    """
    request = HttpRequest.parse(method, url, headers.items())
    if authority is not None and request.authority != authority:
        raise WrongAuthority(
            f"request is addressed to {request.authority[:100]}, this node answers to {authority}"
        )
    raw_input = request.fields.get("signature-input")
    raw_signature = request.fields.get("signature")
    if raw_input is None or raw_signature is None:
        missing = "Signature-Input" if raw_input is None else "Signature"
        raise SignatureMissing(f"request has no {missing} header")
    inputs = parse_dictionary("Signature-Input", raw_input)
    signatures = parse_dictionary("Signature", raw_signature)
    for header, members in (("Signature-Input", inputs), ("Signature", signatures)):
        if label not in members:
            raise SignatureLabelMissing(f"{header} has no signature labelled {label[:40]!r}")
    inner, signature = inputs[label], signatures[label]
    if not isinstance(inner, InnerList):
        raise MalformedHeader(f"Signature-Input {label} is not an inner list")
    if not isinstance(signature, Item) or not isinstance(signature.value, bytes):
        raise MalformedHeader(f"Signature {label} is not a byte sequence")

    present = tuple(name for name in covered_if_present if name in request.fields)
    identifiers = _covered_identifiers(inner, label, present)
    params = dict(inner.params)
    alg = _string_param(params, "alg")
    if alg != ALGORITHM:
        got = "no alg" if alg is None else f"alg {alg[:40]!r}"
        raise UnsupportedAlgorithm(f"signature {label} has {got}, expected {ALGORITHM!r}")
    keyid = _string_param(params, "keyid")
    if keyid is None:
        raise InvalidKeyId(f"signature {label} has no keyid string")
    try:
        signer = to_checksum_address(keyid)
    except InvalidAddress as exc:
        raise InvalidKeyId(f"signature {label} keyid is not an address: {exc}") from exc
    nonce = _string_param(params, "nonce")
    if nonce is None or _NONCE.fullmatch(nonce) is None:
        raise InvalidNonce(
            f"signature {label} nonce must be a string of 16 to 128 base64url characters"
        )
    created = _integer_param(params, "created", label)
    expires = _integer_param(params, "expires", label)
    _check_times(created, expires, now_s, limits)

    digest_header = request.fields.get("content-digest")
    if digest_header is None:
        raise ContentDigestMissing("request has no Content-Digest header")
    verify_content_digest(digest_header, body)

    base = signature_base([(i, request.component(i)) for i in identifiers], inner.params)
    try:
        recovered = recover_address(keccak256(base), signature.value, remember=False)
    except InvalidSignature as exc:
        raise SignatureMismatch(f"signature {label} is unusable: {exc}") from exc
    if recovered != signer:
        raise SignatureMismatch(f"signature {label} is by {recovered}, not keyid {signer}")
    return SignedRequest(signer=signer, nonce=nonce, created=created, expires=expires)
