"""``medledger policy``: a patient's access policies, as JSON or FHIR Consent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medledger.access import contract as access
from medledger.access.consent import from_consent, to_consent
from medledger.access.policy import Policy
from medledger.cli.options import HomeOption, PatientOption
from medledger.errors import InvalidInput, UsageError
from medledger.node.home import Home
from medledger.records.fhir import CATEGORIES

out = Console()
policy_app = typer.Typer(no_args_is_help=True, help="A patient's access policies.")

SigningPatientOption = Annotated[str, typer.Option(help="The patient's alias; their key signs.")]
CategoryOption = Annotated[str, typer.Option(help="A data category, e.g. labs.")]


def _category(category: str) -> str:
    if category not in CATEGORIES:
        raise UsageError(f"{category!r} is not a data category: {', '.join(sorted(CATEGORIES))}")
    return category


@policy_app.command("set")
def policy_set(
    path: Annotated[Path, typer.Argument(help="A policy (JSON) or a FHIR Consent.")],
    patient: SigningPatientOption,
    category: Annotated[str | None, typer.Option(help="Needed unless a Consent names it.")] = None,
    home: HomeOption = None,
) -> None:
    """Set the policy of one data category, signed by the patient."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    if isinstance(document, dict) and document.get("resourceType") == "Consent":
        named, policy = from_consent(document, path.name)
        if category is not None and _category(category) != named:
            raise UsageError(f"the Consent is for {named}, not {category}")
        category = named
    else:
        policy = Policy.from_json(document)
        if category is None:
            raise UsageError("--category is needed for a policy given as JSON")
    chosen = _category(category)
    here = Home.at(home)
    key = here.load_key(here.patient_name(patient))

    async def run() -> int:
        async with here.session() as session:
            payload = {"category": chosen, "policy": policy.to_json()}
            await session.node.submit_payload(key, access.SET_POLICY, payload)
            return access.current_policy(session.node.store, key.address, chosen)[1]

    version = asyncio.run(run())
    out.print(f"{patient}'s {chosen} policy is now version {version}.")


@policy_app.command("show")
def policy_show(
    patient: PatientOption,
    category: CategoryOption,
    home: HomeOption = None,
    consent: Annotated[bool, typer.Option("--consent", help="Print it as a FHIR Consent.")] = False,
) -> None:
    """Print the policy in force for one category (JSON, or a FHIR Consent)."""
    here = Home.at(home)
    address = here.address_of(here.patient_name(patient))
    chosen = _category(category)

    async def run() -> tuple[Policy, int]:
        async with here.session() as session:
            return access.current_policy(session.node.store, address, chosen)

    policy, version = asyncio.run(run())
    document: dict[str, Any] = (
        to_consent(policy, address, chosen)
        if consent
        else {"version": version, "policy": policy.to_json()}
    )
    print(json.dumps(document, indent=2))
