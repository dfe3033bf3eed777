"""A consortium founded across machines from the shell: each institution makes its keys
and card in its own directory, one founder signs the genesis from the cards, and a node
runs on it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from medledger.ledger.genesis import load_genesis
from medledger.ledger.light import TrustedConsortium
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.protocol import contract_set

PASSPHRASE = "consortium passphrase"


def medledger(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDLEDGER_PASSPHRASE": PASSPHRASE}
    return subprocess.run([sys.executable, "-m", "medledger", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def test_three_institutions_found_a_consortium_from_their_cards(tmp_path: Path) -> None:
    names = {"hospital-a": "Hospital A", "hospital-b": "Hospital B", "lab-c": "Lab C"}
    for ident, name in names.items():
        machine = tmp_path / ident
        machine.mkdir()
        made = medledger("institution", "init", ident, "--name", name, "--scrypt-n", "1024",
                         cwd=machine)  # fmt: skip
        assert made.returncode == 0, made.stderr
        again = medledger("institution", "init", ident, "--name", name, cwd=machine)
        assert again.returncode == 2 and "already exists" in again.stderr
    founder = tmp_path / "hospital-a"
    cards = [str(tmp_path / i / f"{i}.card.json") for i in names]
    created = medledger("genesis", "create", *(a for c in cards for a in ("--founder", c)),
                        "--key", "keys/hospital-a.json", "--network-id", "4242",
                        "--name", "Three of us", cwd=founder)  # fmt: skip
    assert created.returncode == 0, created.stderr
    shown = json.loads(medledger("genesis", "show", "--json", cwd=founder).stdout)
    assert shown["network"] == 4242 and shown["vote_threshold"] == 2
    assert [m["name"] for m in shown["members"]] == list(names.values())

    genesis = load_genesis(founder / "genesis.tx")
    trusted = TrustedConsortium.from_genesis(genesis)
    card_b = json.loads(Path(cards[1]).read_text())
    assert card_b["address"] in trusted.members and trusted.threshold == 2

    async def run_a_node() -> int:
        store = LedgerStore.open(str(tmp_path / "s.db"))
        orderer = EmbeddedOrderer(tmp_path / "o.db")
        node = LedgerNode(genesis=genesis, store=store, orderer=orderer, registry=contract_set())
        await node.start()
        try:
            return len(node.members())
        finally:
            await node.stop()
            node.store.close()

    assert asyncio.run(run_a_node()) == 3


def test_a_card_that_is_not_one_is_refused_with_its_reason(tmp_path: Path) -> None:
    made = medledger("institution", "init", "solo", "--name", "Solo", "--scrypt-n", "1024",
                     cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    card = json.loads((tmp_path / "solo.card.json").read_text())
    letter = next(i for i, c in enumerate(card["address"]) if i > 1 and c.isalpha())
    miscased = card["address"][:letter] + card["address"][letter].swapcase() + card["address"][
        letter + 1 :
    ]
    for name, broken in (("short.json", {**card, "custodian_key": "0x1234"}),
                         ("checksum.json", {**card, "address": miscased}),
                         ("extra.json", {**card, "role": "doctor"})):  # fmt: skip
        (tmp_path / name).write_text(json.dumps(broken))
        refused = medledger("genesis", "create", "--founder", name, "--key", "keys/solo.json",
                            "--network-id", "1", "--name", "x", cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 3 and name in refused.stderr, refused.stderr
    assert not (tmp_path / "genesis.tx").exists()
