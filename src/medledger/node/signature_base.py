"""The generic RFC 9421 signature base (section 2.5) over a request's derived
components and fields: what an HTTP message signature signs, whatever the algorithm."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from medledger.node.errors import MalformedRequest, WrongCoveredComponents
from medledger.node.structured_fields import (
    InnerList,
    Item,
    Params,
    Token,
    serialize_inner_list,
    serialize_item,
)

__all__ = ["HttpRequest", "signature_base"]

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
