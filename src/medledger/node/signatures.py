"""HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530) for node API requests.

Every API request to a node is signed with the caller's ledger key. The
signature covers ``"@method" "@authority" "@path" "@query" "content-digest"``
and carries ``created``, ``expires``, ``nonce``, ``alg`` and ``keyid``
parameters. The algorithm is our own, :data:`ALGORITHM`: RFC 9421 registers no
secp256k1 algorithm, and a recoverable signature lets the verifier learn the
signer from the signature itself, so ``keyid`` (the signer's EIP-55 address)
needs no key directory lookup.

The module has three layers, each usable alone:

* a strict subset of RFC 8941 structured fields: dictionaries, inner lists,
  items with parameters; integers, strings, tokens, byte sequences, booleans
  (no decimals, which RFC 9421 never uses). Unlike RFC 8941, a repeated
  dictionary key or parameter is an error rather than "last one wins", so
  that no two readers of a header can disagree on what it says;
* the generic RFC 9421 signature base (section 2.5) over a request's
  derived components and fields;
* :func:`sign_request` and :func:`verify_request` for our profile.

Everything is a pure function: the clock (``now_s``) and randomness
(``randbytes``) come in as arguments. Replay protection is not here: the node
must remember each accepted (signer, nonce) until its ``expires`` passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NoReturn
from urllib.parse import urlsplit

from medledger.crypto.errors import InvalidAddress, InvalidSignature
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    keccak256,
    recover_address,
    to_checksum_address,
)
from medledger.errors import UsageError
from medledger.node.errors import (
    ContentDigestMismatch,
    ContentDigestMissing,
    InvalidKeyId,
    InvalidNonce,
    MalformedHeader,
    MalformedRequest,
    SignatureExpired,
    SignatureLabelMissing,
    SignatureLifetimeTooLong,
    SignatureMismatch,
    SignatureMissing,
    SignatureNotYetValid,
    UnsupportedAlgorithm,
    UnsupportedDigestAlgorithm,
    WrongAuthority,
    WrongCoveredComponents,
)

__all__ = [
    "ALGORITHM",
    "COVERED_COMPONENTS",
    "HttpRequest",
    "InnerList",
    "Item",
    "SignatureLimits",
    "SignedRequest",
    "Token",
    "content_digest",
    "new_nonce",
    "parse_dictionary",
    "serialize_inner_list",
    "serialize_item",
    "sign_request",
    "signature_base",
    "verify_content_digest",
    "verify_request",
]

ALGORITHM = "ecdsa-secp256k1-keccak256"
"""Our ``alg``, not IANA-registered: a 65-byte r||s||v secp256k1 signature over keccak256(base)."""

COVERED_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
"""What every request signature covers, in the order :func:`sign_request` lists them."""

# --- RFC 8941 structured fields ---------------------------------------------


class Token(str):
    """An RFC 8941 token, kept apart from a string because the two serialise differently."""

    __slots__ = ()


BareItem = int | bool | str | bytes
"""An RFC 8941 bare item: a Token is a str subclass; bool is tested before int."""

Params = tuple[tuple[str, BareItem], ...]
"""RFC 8941 parameters, in order; a key with the value True is written bare."""


@dataclass(frozen=True)
class Item:
    """An RFC 8941 item: a bare item with parameters."""

    value: BareItem
    params: Params = ()


@dataclass(frozen=True)
class InnerList:
    """An RFC 8941 inner list: items with parameters of the list itself."""

    items: tuple[Item, ...]
    params: Params = ()


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_INTEGER = re.compile(r"-?[0-9]{1,15}")
_PLAIN_STRING = re.compile(r'"([ !#-\[\]-~]*)"')
_PRINTABLE = re.compile(r"[ -~]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_MAX_INTEGER = 999_999_999_999_999


class _Reader:
    """A cursor over one header value; every failure names the header and offset."""

    def __init__(self, header: str, text: str) -> None:
        self.header = header
        self.text = text
        self.pos = 0

    def fail(self, problem: str) -> NoReturn:
        raise MalformedHeader(f"{self.header}: {problem} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            self.fail(f"expected {char!r}")
        self.pos += 1

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            self.fail(f"expected {what}")
        self.pos = found.end()
        return found.group()

    def key(self) -> str:
        return self.match(_KEY, "a lower-case key")

    def params(self) -> Params:
        params: list[tuple[str, BareItem]] = []
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            if any(key == seen for seen, _ in params):
                self.fail(f"parameter {key!r} repeated")
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params.append((key, value))
        return tuple(params)

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def member(self) -> Item | InnerList:
        if self.peek() != "(":
            return self.item()
        self.pos += 1
        items: list[Item] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                self.fail("expected ' ' or ')' in inner list")

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char and char in "-0123456789":
            return self.integer()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "*" or (char.isascii() and char.isalpha()):
            return Token(self.match(_TOKEN, "a token"))
        self.fail("expected an item")

    def integer(self) -> int:
        digits = self.match(_INTEGER, "an integer")
        if self.peek() == ".":
            self.fail("decimals are not supported")
        if self.peek() and self.peek() in "0123456789":
            self.fail("integer longer than 15 digits")
        return int(digits)

    def string(self) -> str:
        # Most strings have no escapes: take them in one match, else go character by character.
        plain = _PLAIN_STRING.match(self.text, self.pos)
        if plain is not None:
            self.pos = plain.end()
            return plain.group(1)
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                self.fail("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                char = self.peek()
                if char not in ('"', "\\") or not char:
                    self.fail("bad escape in string")
                self.pos += 1
            elif not " " <= char <= "~":
                self.fail("non-printable character in string")
            chars.append(char)

    def byte_sequence(self) -> bytes:
        self.pos += 1
        encoded = self.match(_BASE64, "base64")
        self.expect(":")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            self.fail("bad base64 padding")

    def boolean(self) -> bool:
        self.pos += 1
        digit = self.peek()
        if digit not in ("0", "1") or not digit:
            self.fail("expected ?0 or ?1")
        self.pos += 1
        return digit == "1"


def parse_dictionary(header: str, text: str) -> dict[str, Item | InnerList]:
    """Parse ``text``, the value of field ``header``, as an RFC 8941 dictionary.

    Raises MalformedHeader, naming ``header`` and the offset, on anything
    outside the subset described in the module docstring.
    """
    reader = _Reader(header, text.strip(" "))
    members: dict[str, Item | InnerList] = {}
    while reader.peek():
        key = reader.key()
        if key in members:
            reader.fail(f"key {key!r} repeated")
        if reader.peek() == "=":
            reader.pos += 1
            members[key] = reader.member()
        else:
            members[key] = Item(True, reader.params())
        reader.skip(" \t")
        if not reader.peek():
            break
        reader.expect(",")
        reader.skip(" \t")
        if not reader.peek():
            reader.fail("trailing comma")
    return members


def _serialize_bare(value: BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INTEGER:
            raise UsageError(f"integer {value} has more than 15 digits")
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        if _TOKEN.fullmatch(value) is None:
            raise UsageError(f"not an RFC 8941 token: {value[:50]!r}")
        return value
    if _PRINTABLE.fullmatch(value) is None:
        raise UsageError(f"RFC 8941 strings are printable ASCII: {value[:50]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _serialize_params(params: Params) -> str:
    return "".join(
        f";{key}" if value is True else f";{key}={_serialize_bare(value)}" for key, value in params
    )


def serialize_item(item: Item) -> str:
    """Serialise an RFC 8941 item with its parameters."""
    return _serialize_bare(item.value) + _serialize_params(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an RFC 8941 inner list with its parameters."""
    items = " ".join(serialize_item(item) for item in inner.items)
    return f"({items})" + _serialize_params(inner.params)


# --- RFC 9421 signature base ------------------------------------------------

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VISIBLE_URL = re.compile(r"[!-~]+")
_FIELD_VALUE = re.compile(r"[ \t!-~]*")


@dataclass(frozen=True)
class HttpRequest:
    """The parts of a request that RFC 9421 components are derived from."""

    method: str
    target_uri: str
    scheme: str
    authority: str
    path: str
    query: str
    fields: Mapping[str, str]
    """Field values by lower-case name: each trimmed, repeated ones joined with ", "."""

    @classmethod
    def parse(cls, method: str, url: str, fields: Iterable[tuple[str, str]]) -> HttpRequest:
        """Check and split ``method``, ``url`` (scheme://host[:port]/path[?query]) and fields.

        ``fields`` are the header lines in order, names in any case.
        """
        if _METHOD.fullmatch(method) is None:
            raise MalformedRequest(f"method is not an HTTP token: {method[:20]!r}")
        # urlsplit silently drops tabs and line breaks; such a URL must not verify.
        if _VISIBLE_URL.fullmatch(url) is None:
            raise MalformedRequest("URL is empty or has characters outside visible ASCII")
        try:
            parts = urlsplit(url)
        except ValueError:
            # An unbalanced '[' in the authority, e.g. a path's first byte changed to it.
            raise MalformedRequest("URL authority is not a host name or address") from None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise MalformedRequest(f"URL scheme must be http or https, got {parts.scheme[:10]!r}")
        if parts.username is not None or not parts.hostname:
            raise MalformedRequest("URL must name a host and no user")
        if "#" in url:
            raise MalformedRequest("URL must not have a fragment")
        try:
            port = parts.port
        except ValueError:
            raise MalformedRequest("URL port is not a number from 0 to 65535") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
        combined: dict[str, list[str]] = {}
        for name, value in fields:
            combined.setdefault(name.lower(), []).append(value.strip(" \t"))
        return cls(
            method=method,
            target_uri=url,
            scheme=scheme,
            authority=authority,
            path=parts.path or "/",
            query="?" + parts.query,
            fields=MappingProxyType({k: ", ".join(v) for k, v in combined.items()}),
        )

    def component(self, identifier: Item) -> str:
        """Return the value of one covered component, derived (``@...``) or a field."""
        name = identifier.value
        if not isinstance(name, str) or isinstance(name, Token):
            raise MalformedRequest("component identifiers must be strings")
        if identifier.params:
            raise MalformedRequest(f"component parameters are not supported: {name[:40]!r}")
        derived = {
            "@method": self.method,
            "@target-uri": self.target_uri,
            "@authority": self.authority,
            "@scheme": self.scheme,
            "@path": self.path,
            "@query": self.query,
        }
        if name.startswith("@"):
            if name not in derived:
                raise MalformedRequest(f"unsupported derived component {name[:40]!r}")
            return derived[name]
        if name != name.lower():
            raise MalformedRequest(f"field names must be lower-case: {name[:40]!r}")
        if name not in self.fields:
            raise MalformedRequest(f"covered field {name[:40]!r} is absent")
        return self.fields[name]


def signature_base(covered: Sequence[tuple[Item, str]], params: Params) -> bytes:
    """Build the RFC 9421 (section 2.5) signature base.

    ``covered`` holds each component identifier with its value, in the order
    the signature lists them; ``params`` are the signature parameters in the
    order they are to be serialised.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for identifier, value in covered:
        line_id = serialize_item(identifier)
        if identifier.value == "@signature-params":
            raise WrongCoveredComponents("@signature-params cannot be a covered component")
        if line_id in seen:
            raise WrongCoveredComponents(f"component {line_id[:40]} covered twice")
        seen.add(line_id)
        # A line break would let one component's value forge the next line.
        if _FIELD_VALUE.fullmatch(value) is None:
            raise MalformedRequest(f"value of {line_id[:40]} is not visible ASCII")
        lines.append(f"{line_id}: {value}")
    signature_params = serialize_inner_list(InnerList(tuple(i for i, _ in covered), params))
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("ascii")


# --- Content-Digest (RFC 9530) ----------------------------------------------

_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}


def content_digest(body: bytes) -> str:
    """Return the RFC 9530 Content-Digest value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=" + _serialize_bare(_DIGESTS["sha-256"](body))


def verify_content_digest(value: str, body: bytes) -> None:
    """Raise unless the Content-Digest header ``value`` matches ``body``.

    Every sha-256 and sha-512 digest present must match, and at least one must
    be present; digests by other algorithms are ignored.
    """
    members = parse_dictionary("Content-Digest", value)
    checked = []
    for algorithm, member in members.items():
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise MalformedHeader(f"Content-Digest {algorithm} is not a byte sequence")
        digest = _DIGESTS.get(algorithm)
        if digest is None:
            continue
        if not hmac.compare_digest(member.value, digest(body)):
            raise ContentDigestMismatch(
                f"Content-Digest {algorithm} does not match the {len(body)}-byte body"
            )
        checked.append(algorithm)
    if not checked:
        names = ", ".join(key[:20] for key in members) or "none"
        raise UnsupportedDigestAlgorithm(
            f"Content-Digest has no sha-256 or sha-512 digest (has {names[:100]})"
        )


# --- our profile ------------------------------------------------------------

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
) -> dict[str, str]:
    """Return the Content-Digest, Signature-Input and Signature headers for a request.

    ``url`` is the full URL the request is sent to; ``created`` and ``expires``
    are Unix seconds; ``nonce`` is from :func:`new_nonce`.
    """
    if _KEY.fullmatch(label) is None:
        raise UsageError(f"label must be an RFC 8941 key: {label[:40]!r}")
    if _NONCE.fullmatch(nonce) is None:
        raise UsageError("nonce must be 16 to 128 base64url characters")
    if expires < created:
        raise UsageError(f"expires {expires} is before created {created}")
    digest_header = content_digest(body)
    request = HttpRequest.parse(method, url, [("content-digest", digest_header)])
    identifiers = tuple(Item(name) for name in COVERED_COMPONENTS)
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
        "Signature": f"{label}={_serialize_bare(signature)}",
    }


def _string_param(params: Mapping[str, BareItem], name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) and not isinstance(value, Token) else None


def _integer_param(params: Mapping[str, BareItem], name: str, label: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedHeader(f"signature {label} has no integer {name} parameter")
    return value


def _covered_identifiers(inner: InnerList, label: str) -> tuple[Item, ...]:
    names = []
    for item in inner.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token) or item.params:
            raise WrongCoveredComponents(
                f"signature {label} covers {serialize_item(item)[:40]}, not a plain component"
            )
        names.append(item.value)
    if len(names) != len(set(names)) or set(names) != set(COVERED_COMPONENTS):
        raise WrongCoveredComponents(
            f"signature {label} covers {' '.join(names)[:200]}, "
            f"expected each of {' '.join(COVERED_COMPONENTS)} once"
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
) -> SignedRequest:
    """Check a request's signature under ``label``; return who signed it.

    ``headers`` names may be in any case. ``authority`` is the host[:port] the
    verifier answers to, normalised as :class:`HttpRequest` derives ``@authority``
    (lower case, no default port); a request addressed to any other is refused
    before its signature is checked. ``None`` skips that check, for verifying a
    request away from the server it was sent to. Raises a RequestNotAuthenticated
    subclass that says which check failed. The caller must still reject a
    (signer, nonce) pair it has accepted before.
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

    identifiers = _covered_identifiers(inner, label)
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
        recovered = recover_address(keccak256(base), signature.value)
    except InvalidSignature as exc:
        raise SignatureMismatch(f"signature {label} is unusable: {exc}") from exc
    if recovered != signer:
        raise SignatureMismatch(f"signature {label} is by {recovered}, not keyid {signer}")
    return SignedRequest(signer=signer, nonce=nonce, created=created, expires=expires)
