"""``medledger credentials``: issuers set up, patients get and present, verifiers ask and check.

A wallet is a file encrypted under a key derived from the patient's own key
(credentials/wallet.py); requests and presentations travel as JSON files, the
way they would travel by mail, a web form or a QR code.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from medledger.cli.options import DEFAULT_NODE, JsonOption, KeyOption, NodeOption
from medledger.cli.output import out
from medledger.cli.target import acting, load_key, with_client
from medledger.errors import InvalidInput, UsageError

credentials_app = typer.Typer(no_args_is_help=True, help="Health credentials.")

WalletOption = Annotated[Path, typer.Option(help="Your wallet file (created if missing).")]
CARD_TYPES = {"Patient", "Immunization"}


@credentials_app.command("setup")
def setup(
    *, key: KeyOption, node: NodeOption = DEFAULT_NODE,
    max_credentials: Annotated[int, typer.Option(min=1)] = 1000,
) -> None:  # fmt: skip
    """Make your institution an issuer: AnonCreds keys and JWK published on the ledger."""
    answer = with_client(node, key, lambda c: c.credentials_setup(max_credentials))
    out.print(f"issuer {answer.issuer} is set up")


@credentials_app.command("get")
def get(
    *, kind: Annotated[str, typer.Option("--format", help="anoncreds, sd-jwt or health-card.")],
    wallet: WalletOption, key: KeyOption, node: NodeOption = DEFAULT_NODE,
    qr: Annotated[Path | None, typer.Option(help="health-card: write the QR code (SVG).")] = None,
) -> None:  # fmt: skip
    """Have the node's institution issue you a credential from the records it wrote."""
    from medledger.credentials.registry import Registry
    from medledger.credentials.wallet import Wallet
    from medledger.crypto.keys import Address
    from medledger.node.api import IssueIn
    from medledger.node.client import NodeClient
    from medledger.node.proven_state import ProvenState
    from medledger.node.uploads import gather_evidence

    if kind not in ("anoncreds", "sd-jwt", "health-card"):
        raise UsageError(f"--format must be anoncreds, sd-jwt or health-card, not {kind!r}")
    owner = load_key(key)

    async def work() -> str:
        async with NodeClient(node, owner) as client:
            held = Wallet(wallet, owner)
            state = ProvenState(client)
            registry = Registry(state)
            try:
                evidence = await gather_evidence(
                    client, CARD_TYPES if kind == "health-card" else None
                )
                asked = IssueIn.model_validate({"format": kind, "evidence": evidence})
                offer = await client.credential_offer()
                if kind == "anoncreds":
                    asked.offer = offer.offer
                    asked.request = held.request_anoncreds(offer.offer, registry)
                holder = Wallet.new_holder_key()
                if kind == "sd-jwt":
                    asked.holder_jwk = json.loads(holder.export_public())
                issued = await client.issue(asked)
                if kind == "anoncreds":
                    held.store_anoncreds(issued.credential, issued.credential_id, registry)
                elif kind == "sd-jwt":
                    held.store_sd_jwt(issued.credential, holder, issued.credential_id,
                                      registry, now_s=int(time.time()))  # fmt: skip
                else:
                    held.store_health_card(issued.credential, issued.credential_id,
                                           Address(offer.issuer))  # fmt: skip
                    if qr is not None and issued.qr is not None:
                        qr.write_text(issued.qr)
            finally:
                state.close()
            return issued.credential_id

    credential_id = asyncio.run(work())
    out.print(f"{kind} credential {credential_id} is in {wallet}")


@credentials_app.command("ask")
def ask(
    *, predicate: Annotated[list[str], typer.Option(help='e.g. "hba1c_x10 < 65" (repeatable)')],
    purpose: Annotated[str, typer.Option(help="HL7 PurposeOfUse code.")],
    issuer: Annotated[list[str], typer.Option(help="An issuer you accept (repeatable).")],
    request_file: Annotated[Path, typer.Option("--out", help="Where to write the request.")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE,
) -> None:  # fmt: skip
    """As a verifier: sign a presentation request with a fresh nonce, for the patient."""
    from medledger.credentials.request import Predicate, SignedRequest
    from medledger.credentials.verifier import Verifier
    from medledger.crypto.keys import to_checksum_address

    predicates = tuple(Predicate.parse(p) for p in predicate)

    async def work() -> SignedRequest:
        async with acting(patient=None, key=key, node=node, home=None) as target:
            return Verifier(target.ledger, target.key).request(
                purpose=purpose, fmt="anoncreds", now_ms=int(time.time() * 1000),
                predicates=predicates, issuers=[to_checksum_address(i) for i in issuer],
            )  # fmt: skip

    signed = asyncio.run(work())
    request_file.write_text(json.dumps(signed.to_json()))
    out.print(f"request {signed.request.id} written to {request_file}")


@credentials_app.command("present")
def present(
    request_file: Path, *, wallet: WalletOption,
    presentation: Annotated[Path, typer.Option("--out", help="Where to write the answer.")],
    key: KeyOption, node: NodeOption = DEFAULT_NODE,
) -> None:  # fmt: skip
    """Show who asks, why and for what, then prove exactly that from your wallet."""
    from medledger.credentials.registry import Registry
    from medledger.credentials.request import SignedRequest
    from medledger.credentials.wallet import Wallet
    from medledger.node.client import NodeClient
    from medledger.node.proven_state import ProvenState

    owner = load_key(key)
    signed = SignedRequest.from_json(_read_json(request_file))

    async def work() -> dict[str, Any]:
        async with NodeClient(node, owner) as client:
            state = ProvenState(client)
            registry = Registry(state)
            try:
                held = Wallet(wallet, owner)
                for line in held.describe(signed, registry):
                    out.print(line)
                tails = wallet.parent / "tails"
                tails.mkdir(exist_ok=True)
                for credential in held.credentials:
                    if credential.format == "anoncreds":
                        rev_reg = json.loads(registry.document(credential.held().rev_reg_id))
                        name = str(rev_reg["value"]["tailsHash"])
                        if not (tails / name).exists():
                            (tails / name).write_bytes(await client.tails(name))
                now_ms = int(time.time() * 1000)
                return await asyncio.to_thread(
                    held.present, signed, registry, now_ms=now_ms, tails_dir=tails
                )
            finally:
                state.close()

    envelope = asyncio.run(work())
    presentation.write_text(json.dumps(envelope))
    out.print(f"presentation written to {presentation}")


@credentials_app.command("verify")
def verify(
    request_file: Path, presentation: Path, *, key: KeyOption, node: NodeOption = DEFAULT_NODE,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """As the verifier that asked: check the answer; the outcome goes on the ledger."""
    from medledger.credentials.request import SignedRequest
    from medledger.credentials.verifier import Verifier

    signed = SignedRequest.from_json(_read_json(request_file))
    envelope = _read_json(presentation)

    async def work() -> Any:
        async with acting(patient=None, key=key, node=node, home=None) as target:
            return await Verifier(target.ledger, target.key).verify(
                signed, envelope, now_ms=int(time.time() * 1000)
            )

    result = asyncio.run(work())
    facts = {"request": result.request_id, "issuer": result.issuer, "facts": result.facts}
    if as_json:
        print(json.dumps(facts))
        return
    for fact, holds in result.facts.items():
        out.print(f"{fact}: {'true' if holds else 'false'}")
    out.print(f"issued by {result.issuer}; the outcome is on the ledger")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path.name}: not a JSON file: {exc}") from None
