"""The apps a node launches for its users (SMART App Launch, public clients).

A public app holds no secret: it proves it is the app that began an authorization by
PKCE alone, and the node sends codes only to the redirect URIs registered for it, each
compared whole. A redirect URI is ``https``, or ``http`` on the loopback interface for
an app running on the user's own machine (RFC 8252 section 7.3), and has no fragment.
The registry is a file beside the backend clients', written by ``medledger fhir app
add`` and read at every authorization request, so a change needs no restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medledger.errors import UsageError
from medledger.node.fhir.clients import valid_client_id
from medledger.node.fhir.registry_file import RegistryFile

__all__ = ["AppRegistry", "PublicApp"]

REGISTRY_FILE = "fhir-apps.json"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
_MAX_REDIRECT_URI = 2000


@dataclass(frozen=True)
class PublicApp:
    client_id: str
    redirect_uris: tuple[str, ...]
    #: What the consent page calls the app (its client id when not given).
    name: str

    def __post_init__(self) -> None:
        if not valid_client_id(self.client_id):
            raise UsageError("client id: 1 to 128 letters, digits and . _ ~ -")
        if not self.redirect_uris:
            raise UsageError(f"app {self.client_id}: at least one redirect URI")
        for uri in self.redirect_uris:
            _check_redirect_uri(uri)
        if not _NAME.fullmatch(self.name):
            raise UsageError("app name: 1 to 80 printable characters")


def _check_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    if len(uri) > _MAX_REDIRECT_URI or not parts.hostname or not secure:
        raise UsageError("redirect URI: https, or http on the loopback interface")
    if parts.fragment or "#" in uri:
        raise UsageError("redirect URI: no fragment (RFC 6749 section 3.1.2)")
    # Browsers read a backslash as a slash where urlsplit does not, so with user information
    # the host a browser goes to, and the origin the consent page shows, could differ.
    if "@" in parts.netloc or "\\" in uri or not uri.isprintable() or " " in uri:
        raise UsageError("redirect URI: no user information, backslash or blank")


class AppRegistry:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / REGISTRY_FILE

    def _load(self) -> dict[str, Any]:
        return RegistryFile(self.path).load()

    def get(self, client_id: str) -> PublicApp | None:
        entry = self._load().get(client_id)
        if entry is None:
            return None
        return PublicApp(client_id, tuple(entry["redirect_uris"]), str(entry["name"]))

    def add(self, app: PublicApp) -> None:
        """Register or replace an app; written whole, then renamed, like the clients'."""
        apps = self._load()
        apps[app.client_id] = {"redirect_uris": list(app.redirect_uris), "name": app.name}
        RegistryFile(self.path).save(apps)

    def apps(self) -> list[PublicApp]:
        return [app for client_id in sorted(self._load()) if (app := self.get(client_id))]
