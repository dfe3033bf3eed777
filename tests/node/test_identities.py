"""Where a keystore's passphrase comes from: the environment, else asked once at a
terminal (never echoed), else a clear usage error; and keystores written together."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import UsageError
from medledger.node import identities
from medledger.node.identities import passphrase, read_keystore, write_keystores


@pytest.fixture(autouse=True)
def _no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(identities.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(identities, "_asked", [])


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(identities.PASSPHRASE_ENV, "from the environment")
    monkeypatch.setattr(identities.getpass, "getpass", lambda _: pytest.fail("asked"))
    assert passphrase() == "from the environment"


def test_a_terminal_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(identities.sys, "stdin", _Terminal())
    monkeypatch.setattr(identities.getpass, "getpass", lambda p: asked.append(p) or "typed")
    assert (passphrase(), passphrase()) == ("typed", "typed")
    assert asked == ["keystore passphrase: "]


def test_without_a_terminal_or_environment_it_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(identities.sys, "stdin", io.StringIO())
    with pytest.raises(UsageError, match=identities.PASSPHRASE_ENV):
        passphrase()


def test_keystores_written_together_each_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(identities.PASSPHRASE_ENV, "together")
    keys = {tmp_path / f"k{i}.json": PrivateKey.generate() for i in range(3)}
    write_keystores(keys, scrypt_n=1024)
    for path, key in keys.items():
        assert decrypt_keystore(read_keystore(path), "together").address == key.address
    with pytest.raises(UsageError, match="already exists"):
        write_keystores({next(iter(keys)): PrivateKey.generate()}, scrypt_n=1024)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
