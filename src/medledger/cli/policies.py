"""``medledger policy``: a patient's access policies, as JSON or FHIR Consent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medledger.cli.options import (
    DEFAULT_NODE,
    HomeOption,
    HomePatientOption,
    JsonOption,
    NodeOption,
    OptionalKeyOption,
)
from medledger.cli.output import out
from medledger.cli.target import acting
from medledger.errors import InvalidInput, UsageError

if TYPE_CHECKING:
    from medledger.access.policy import Policy
    from medledger.crypto.keys import Address

policy_app = typer.Typer(no_args_is_help=True, help="A patient's access policies.")

CategoryOption = Annotated[str, typer.Option(help="A data category, e.g. labs.")]


def _read_policy(path: Path) -> tuple[str | None, Policy]:
    """The policy in a file, and the category it names if it is a FHIR Consent."""
    from medledger.access.consent import from_consent
    from medledger.access.policy import Policy

    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    if isinstance(document, dict) and document.get("resourceType") == "Consent":
        return from_consent(document, path.name)
    return None, Policy.from_json(document)


def _from_options(approvers: str, purposes: list[str] | None, max_duration_s: int | None) -> Policy:
    """The default policy's terms, with the approvers (and purposes, duration) given."""
    from medledger.access.policy import Policy, default_policy
    from medledger.access.rule_text import parse_rule_text

    default = default_policy()
    return Policy(
        parse_rule_text(approvers),
        frozenset(purposes) if purposes else default.purposes,
        default.max_duration_s if max_duration_s is None else max_duration_s,
    )


def _category(category: str) -> str:
    from medledger.records.categories import CATEGORIES

    if category not in CATEGORIES:
        raise UsageError(f"{category!r} is not a data category: {', '.join(sorted(CATEGORIES))}")
    return category


@policy_app.command("set")
def policy_set(
    path: Annotated[
        Path | None, typer.Argument(help="A policy (JSON) or a FHIR Consent; or use --approvers.")
    ] = None,
    *,
    category: Annotated[str | None, typer.Option(help="Needed unless a Consent names it.")] = None,
    approvers: Annotated[
        str | None, typer.Option(help='Who must approve, e.g. "2 of patient, doctor, nurse".')
    ] = None,
    purposes: Annotated[
        list[str] | None, typer.Option("--purpose", help="With --approvers: a PurposeOfUse code.")
    ] = None,
    max_duration_s: Annotated[
        int | None, typer.Option(help="With --approvers: the longest grant, in seconds.")
    ] = None,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
) -> None:
    """Set the policy of one data category, signed by the patient."""
    from medledger.access.contract import SET_POLICY, current_policy

    if (path is None) == (approvers is None):
        raise UsageError("give a policy file or --approvers, not both or neither")
    if path is None:
        policy = _from_options(str(approvers), purposes, max_duration_s)
    else:
        if purposes or max_duration_s is not None:
            raise UsageError("--purpose and --max-duration-s go with --approvers, not a file")
        named, policy = _read_policy(path)
        if named is not None and category is not None and _category(category) != named:
            raise UsageError(f"the Consent is for {named}, not {category}")
        category = category or named
    if category is None:
        raise UsageError("--category is needed for a policy given as JSON")
    chosen = _category(category)

    async def run() -> int:
        async with acting(patient=patient, key=key, node=node, home=home) as who:
            payload = {"category": chosen, "policy": policy.to_json()}
            await who.ledger.submit_payload(who.key, SET_POLICY, payload)
            return current_policy(who.ledger.store, who.key.address, chosen)[1]

    version = asyncio.run(run())
    whose = f"{patient}'s" if patient else "Your"
    out.print(f"{whose} {chosen} policy is now version {version}.")


@policy_app.command("show")
def policy_show(
    *,
    category: CategoryOption,
    patient: HomePatientOption = None,
    key: OptionalKeyOption = None,
    node: NodeOption = DEFAULT_NODE,
    home: HomeOption = None,
    consent: Annotated[bool, typer.Option("--consent", help="Print it as a FHIR Consent.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The policy in force for one category (or as JSON, or a FHIR Consent).

    Against a node, as proven at a checkpoint the members cosigned."""
    from medledger.access.consent import to_consent
    from medledger.access.contract import current_policy

    chosen = _category(category)

    async def run() -> tuple[Address, Policy, int]:
        async with acting(patient=patient, key=key, node=node, home=home) as who:
            address = who.key.address
            return address, *current_policy(who.ledger.store, address, chosen)

    address, policy, version = asyncio.run(run())
    if consent:
        print(json.dumps(to_consent(policy, address, chosen), indent=2))
    elif as_json:
        print(json.dumps({"version": version, "policy": policy.to_json()}))
    else:
        out.print(f"{chosen}: {describe_policy(policy)} (version {version})")


def describe_policy(policy: Policy) -> str:
    """One line a patient can read: who approves, for what, for how long, on what condition."""
    from medledger.access.errors import InvalidPolicy
    from medledger.access.rule_text import rule_to_text
    from medledger.access.rules import rule_to_json

    try:
        who = rule_to_text(policy.approvers)
    except InvalidPolicy:
        who = json.dumps(rule_to_json(policy.approvers))
    text = (f"approved by {who}; for {', '.join(sorted(policy.purposes))}; "
            f"grants of at most {policy.max_duration_s} s")  # fmt: skip
    return text + (f"; only if {policy.condition}" if policy.condition else "")
