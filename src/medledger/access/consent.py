"""Policies as FHIR R4 Consent resources, and back.

A policy becomes an active, permit Consent: the data category is the
provision's ``class``, the allowed purposes its ``purpose``. What Consent cannot
say natively travels in extensions: the approver rule (k-of-n over people, the
patient and roles, as its JSON), the longest grant (a Duration in seconds) and
the CEL condition (an Expression). A Consent without an approver rule means the
patient alone approves: their own consent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from medledger.access.errors import InvalidPolicy
from medledger.access.policy import PURPOSE_SYSTEM, Policy
from medledger.access.rules import Patient, parse_rule, rule_to_json
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.records.categories import CATEGORIES
from medledger.records.fhir import validate_resource

CATEGORY_SYSTEM = "urn:medledger:data-category"
PATIENT_SYSTEM = "urn:medledger:patient-address"
APPROVERS_URL = "urn:medledger:fhir:consent-approvers"
MAX_DURATION_URL = "urn:medledger:fhir:consent-max-duration"
CONDITION_URL = "urn:medledger:fhir:consent-condition"
CEL_MEDIA_TYPE = "text/cel"


def to_consent(policy: Policy, patient: Address, category: str) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [
        {"url": APPROVERS_URL, "valueString": json.dumps(rule_to_json(policy.approvers))},
        {
            "url": MAX_DURATION_URL,
            "valueDuration": {
                "value": policy.max_duration_s,
                "unit": "s",
                "system": "http://unitsofmeasure.org",
                "code": "s",
            },
        },
    ]
    if policy.condition is not None:
        extensions.append(
            {
                "url": CONDITION_URL,
                "valueExpression": {"language": CEL_MEDIA_TYPE, "expression": policy.condition},
            }
        )
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": PATIENT_SYSTEM, "value": patient}},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {
            "type": "permit",
            "extension": extensions,
            "purpose": [
                {"system": PURPOSE_SYSTEM, "code": code} for code in sorted(policy.purposes)
            ],
            "class": [{"system": CATEGORY_SYSTEM, "code": category}],
        },
    }


def from_consent(obj: object, source: str = "consent") -> tuple[str, Policy]:
    """The data category and policy a Consent states; InvalidPolicy says what is wrong."""
    try:
        resource = validate_resource(obj, source)
    except InvalidInput as exc:
        raise InvalidPolicy(str(exc)) from None
    if resource.resource_type != "Consent":
        raise InvalidPolicy(f"{source}: a {resource.resource_type}, not a Consent")
    body = resource.body
    if body.get("status") != "active":
        raise InvalidPolicy(f"{source}: status must be active")
    provision = body.get("provision")
    if not isinstance(provision, dict) or provision.get("type") != "permit":
        raise InvalidPolicy(f"{source}: provision.type must be permit")
    if provision.get("provision"):
        raise InvalidPolicy(f"{source}: nested provisions are not supported")
    classes = [c for c in provision.get("class", []) if c.get("system") == CATEGORY_SYSTEM]
    if len(classes) != 1 or classes[0].get("code") not in CATEGORIES:
        raise InvalidPolicy(f"{source}: provision.class must name one data category")
    purposes = [
        p.get("code") for p in provision.get("purpose", []) if p.get("system") == PURPOSE_SYSTEM
    ]
    extensions = {e["url"]: e for e in provision.get("extension", [])}
    return str(classes[0]["code"]), Policy.from_json(
        {
            "approvers": _approvers(extensions, source),
            "purposes": purposes,
            "max_duration_s": _max_duration(extensions, source),
            "condition": _condition(extensions, source),
        }
    )


def _approvers(extensions: Mapping[str, Any], source: str) -> Any:
    entry = extensions.get(APPROVERS_URL)
    if entry is None:
        return rule_to_json(Patient())
    try:
        return rule_to_json(parse_rule(json.loads(entry.get("valueString", "")), "approvers"))
    except ValueError:
        raise InvalidPolicy(f"{source}: the approvers extension is not JSON") from None


def _max_duration(extensions: Mapping[str, Any], source: str) -> Any:
    entry = extensions.get(MAX_DURATION_URL)
    duration = entry.get("valueDuration") if entry else None
    if not isinstance(duration, dict) or duration.get("code") != "s":
        raise InvalidPolicy(f"{source}: the max-duration extension must be a Duration in s")
    value = duration.get("value")
    return int(value) if isinstance(value, int | float) and float(value).is_integer() else value


def _condition(extensions: Mapping[str, Any], source: str) -> str | None:
    entry = extensions.get(CONDITION_URL)
    if entry is None:
        return None
    expression = entry.get("valueExpression", {})
    if expression.get("language") != CEL_MEDIA_TYPE:
        raise InvalidPolicy(f"{source}: the condition must be an Expression in {CEL_MEDIA_TYPE}")
    return str(expression.get("expression", ""))
