"""SMART Health Cards: issuance, verification, QR encoding and the spec's published example."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import segno
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from jwcrypto import jwk, jws

from medledger.credentials.errors import CredentialExpired, InvalidHealthCard, UnknownIssuer
from medledger.credentials.health_card import (
    HEALTH_CARD_TYPE,
    MAX_QR_JWS,
    card_bundle,
    health_card_qr,
    issue_health_card,
    jws_from_qr_text,
    qr_text,
    verify_health_card,
)
from medledger.errors import UsageError

ISSUER = "https://hospital.example/shc"
NOW = 1_735_689_600  # 2025-01-01T00:00:00Z
IMMUNIZATION = "https://smarthealth.cards#immunization"
SECRET = "ZZ-PLANTED-7.9-PERCENT"  # must never surface in an error
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
VECTORS = Path(__file__).parent / "vectors"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "pat-1",
    "meta": {"lastUpdated": "2024-10-01T09:00:00Z"},
    "text": {"status": "generated", "div": "<div>synthetic</div>"},
    "identifier": [{"system": "urn:example:mrn", "value": "SYNTH-0001"}],
    "name": [{"family": "Testperson", "given": ["Alex"]}],
    "gender": "other",
    "birthDate": "1970-01-01",
}
IMMUNIZATION_RESOURCE: dict[str, Any] = {
    "resourceType": "Immunization",
    "id": "imm-1",
    "meta": {
        "versionId": "3",
        "security": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                "code": "N",
                "display": "normal",
            }
        ],
    },
    "status": "completed",
    "vaccineCode": {
        "coding": [
            {
                "system": "http://hl7.org/fhir/sid/cvx",
                "code": "140",
                "display": "Influenza, seasonal, injectable, preservative free",
            }
        ],
        "text": "Flu shot",
    },
    "patient": {"reference": "Patient/pat-1"},
    "occurrenceDateTime": "2024-10-01",
    "performer": [{"actor": {"display": "Synthetic Clinic"}}],
    "lotNumber": "SYNTH-LOT-1",
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "obs-1",
    "text": {"status": "generated", "div": "<div>HbA1c</div>"},
    "status": "final",
    "code": {
        "coding": [
            {
                "system": "http://loinc.org",
                "code": "4548-4",
                "display": "Hemoglobin A1c/Hemoglobin.total in Blood",
            }
        ]
    },
    "subject": {"reference": "Patient/pat-1"},
    "effectiveDateTime": "2024-09-15",
    "valueQuantity": {
        "value": 5.4,
        "unit": "%",
        "system": "http://unitsofmeasure.org",
        "code": "%",
    },
    "note": [{"text": "synthetic record"}],
}


@pytest.fixture(scope="module")
def issuer_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-256")


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return card_bundle(PATIENT, [IMMUNIZATION_RESOURCE, OBSERVATION])


def public(key: jwk.JWK) -> jwk.JWK:
    return jwk.JWK(**key.export_public(as_dict=True))


def ledger(key: jwk.JWK) -> Callable[[str, str], jwk.JWK]:
    """A stand-in for the ledger's issuer registry holding one issuer and one key."""

    def issuer_key_for(iss: str, kid: str) -> jwk.JWK:
        if iss != ISSUER or kid != key.thumbprint():
            raise UnknownIssuer(f"no key {kid} registered for {iss}")
        return public(key)

    return issuer_key_for


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def inflate(text: str) -> bytes:
    return zlib.decompress(unb64(text), -15)


def claims(bundle: dict[str, Any], **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "nbf": NOW - 100,
        "vc": {
            "type": [HEALTH_CARD_TYPE, IMMUNIZATION],
            "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": bundle},
        },
    }
    return base | changes


def sign(key: jwk.JWK, payload: bytes, **header: Any) -> str:
    """A compact JWS over ``payload`` as given, with a header the card format may forbid."""
    protected = {"zip": "DEF", "alg": "ES256", "kid": key.thumbprint()} | header
    protected = {k: v for k, v in protected.items() if v is not None}
    token = jws.JWS(payload)
    token.add_signature(key, alg=protected["alg"], protected=json.dumps(protected))
    return str(token.serialize(compact=True))


def sign_claims(key: jwk.JWK, payload: dict[str, Any], **header: Any) -> str:
    return sign(key, deflate(json.dumps(payload).encode()), **header)


def read_qr(qr: segno.QRCode) -> str:
    """Render the symbol to grayscale pixels and decode it with zxing-cpp, as a scanner would."""
    rows = [bytes(0 if dark else 255 for dark in row) for row in qr.matrix_iter(scale=3, border=4)]

    class Gray:
        __array_interface__ = {  # noqa: RUF012
            "shape": (len(rows), len(rows[0])),
            "typestr": "|u1",
            "data": b"".join(rows),
            "version": 3,
        }

    found = zxingcpp.read_barcodes(Gray())
    assert len(found) == 1, "the QR code did not decode"
    return found[0].text


def test_card_bundle_minimises_as_the_spec_asks(bundle: dict[str, Any]) -> None:
    assert bundle == {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "resource:0",
                "resource": {
                    "resourceType": "Patient",
                    "name": [{"family": "Testperson", "given": ["Alex"]}],
                    "birthDate": "1970-01-01",
                },
            },
            {
                "fullUrl": "resource:1",
                "resource": {
                    "resourceType": "Immunization",
                    "meta": {
                        "security": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                "code": "N",
                            }
                        ]
                    },
                    "status": "completed",
                    "vaccineCode": {
                        "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]
                    },
                    "patient": {"reference": "resource:0"},
                    "occurrenceDateTime": "2024-10-01",
                    "performer": [{"actor": {"display": "Synthetic Clinic"}}],
                    "lotNumber": "SYNTH-LOT-1",
                },
            },
            {
                "fullUrl": "resource:2",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                    "subject": {"reference": "resource:0"},
                    "effectiveDateTime": "2024-09-15",
                    "valueQuantity": {
                        "value": 5.4,
                        "unit": "%",
                        "system": "http://unitsofmeasure.org",
                        "code": "%",
                    },
                    "note": [{"text": "synthetic record"}],
                },
            },
        ],
    }


def test_card_bundle_refuses_a_reference_outside_the_card() -> None:
    observation = OBSERVATION | {"performer": [{"reference": "Practitioner/pr-9"}]}
    with pytest.raises(UsageError, match="not in the card"):
        card_bundle(PATIENT, [observation])


def test_a_health_card_verifies_with_jwcrypto_against_the_issuers_jwk(
    issuer_key: jwk.JWK, bundle: dict[str, Any]
) -> None:
    card = issue_health_card(
        issuer_key, issuer=ISSUER, bundle=bundle, types=[IMMUNIZATION], issued_at=NOW - 10
    )

    verified = verify_health_card(card, ledger(issuer_key), now=NOW)
    assert verified.issuer == ISSUER
    assert verified.key_id == issuer_key.thumbprint()
    assert verified.issued_at == NOW - 10
    assert verified.types == (HEALTH_CARD_TYPE, IMMUNIZATION)
    assert verified.bundle == bundle
    assert verified.revocation_id is None

    token = jws.JWS()
    token.deserialize(card)
    token.verify(public(issuer_key))
    assert token.jose_header == {"zip": "DEF", "alg": "ES256", "kid": issuer_key.thumbprint()}
    raw = zlib.decompress(token.payload, -15)
    payload = json.loads(raw)
    assert raw == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert payload["vc"]["credentialSubject"]["fhirBundle"] == bundle
    assert payload["nbf"] == NOW - 10


def test_revocation_id_is_carried_in_vc_rid(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(
        issuer_key,
        issuer=ISSUER,
        bundle=bundle,
        types=[],
        issued_at=NOW,
        revocation_id="AQPCj4wwk6Mt",
    )
    assert json.loads(inflate(card.split(".")[1]))["vc"]["rid"] == "AQPCj4wwk6Mt"
    assert verify_health_card(card, ledger(issuer_key), now=NOW).revocation_id == "AQPCj4wwk6Mt"
    with pytest.raises(UsageError, match="revocation id"):
        issue_health_card(
            issuer_key, issuer=ISSUER, bundle=bundle, types=[], issued_at=NOW, revocation_id="a.b"
        )


def test_qr_round_trip(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(
        issuer_key, issuer=ISSUER, bundle=bundle, types=[IMMUNIZATION], issued_at=NOW
    )
    text = qr_text(card)
    qr = health_card_qr(card)
    assert isinstance(qr.version, int)
    assert qr.version <= 22
    assert qr.error == "L"
    assert qr.mode is None  # segno's word for a symbol of more than one segment

    scanned = read_qr(qr)
    assert scanned == text
    assert scanned.startswith("shc:/")
    assert jws_from_qr_text(scanned) == card
    assert (
        verify_health_card(jws_from_qr_text(scanned), ledger(issuer_key), now=NOW).bundle == bundle
    )


def test_longest_single_chunk_card_fits_version_22_only_with_a_numeric_segment() -> None:
    longest = ("eyJ" + "A" * MAX_QR_JWS)[: MAX_QR_JWS - 2] + ".x"
    qr = health_card_qr(longest)
    assert (qr.version, qr.error) == (22, "L")
    assert read_qr(qr) == qr_text(longest)
    # One byte-mode segment for the whole text would need a far larger symbol.
    with pytest.raises(segno.DataOverflowError):
        segno.make(qr_text(longest), error="l", mode="byte", version=22)
    with pytest.raises(InvalidHealthCard, match="1195"):
        qr_text(longest + "A")


def test_published_example_verifies_with_the_published_key() -> None:
    vector = json.loads((VECTORS / "shc_example_00.json").read_text(encoding="utf-8"))
    published = jwk.JWK(**vector["jwks"]["keys"][0])
    looked_up: list[tuple[str, str]] = []

    def issuer_key_for(iss: str, kid: str) -> jwk.JWK:
        looked_up.append((iss, kid))
        return published

    nbf = vector["nbf"]
    verified = verify_health_card(vector["jws"], issuer_key_for, now=int(nbf) + 86_400)
    assert looked_up == [(vector["issuer"], published.thumbprint())]
    assert verified.issuer == vector["issuer"]
    assert verified.issued_at == int(nbf)
    assert HEALTH_CARD_TYPE in verified.types
    assert verified.bundle["entry"][1]["resource"]["vaccineCode"]["coding"][0]["code"] == "207"

    assert jws_from_qr_text(vector["qr_numeric"]) == vector["jws"]
    assert qr_text(vector["jws"]) == vector["qr_numeric"]
    with pytest.raises(InvalidHealthCard, match="nbf is in the future"):
        verify_health_card(vector["jws"], issuer_key_for, now=int(nbf) - 3600)


def test_flipped_signature_byte_is_rejected(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(issuer_key, issuer=ISSUER, bundle=bundle, types=[], issued_at=NOW)
    header, payload, signature = card.split(".")
    # Flipped in the decoded bytes: the last base64url character also holds padding bits.
    raw = bytearray(unb64(signature))
    raw[10] ^= 0x01
    with pytest.raises(InvalidHealthCard, match="signature does not verify"):
        verify_health_card(f"{header}.{payload}.{b64(bytes(raw))}", ledger(issuer_key), now=NOW)


def test_tampered_payload_is_rejected(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(issuer_key, issuer=ISSUER, bundle=bundle, types=[], issued_at=NOW)
    header, payload, signature = card.split(".")
    forged = inflate(payload).replace(b"SYNTH-LOT-1", b"SYNTH-LOT-2")
    assert forged != inflate(payload)
    with pytest.raises(InvalidHealthCard, match="signature does not verify"):
        verify_health_card(
            f"{header}.{b64(deflate(forged))}.{signature}", ledger(issuer_key), now=NOW
        )


def test_signature_by_another_key_is_rejected(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    forger = jwk.JWK.generate(kty="EC", crv="P-256")
    # The forger claims the issuer's kid, so the lookup hands back the issuer's key.
    card = sign_claims(forger, claims(bundle), kid=issuer_key.thumbprint())
    with pytest.raises(InvalidHealthCard, match="signature does not verify"):
        verify_health_card(card, ledger(issuer_key), now=NOW)
    # Under its own kid the ledger does not know it at all.
    with pytest.raises(UnknownIssuer):
        verify_health_card(sign_claims(forger, claims(bundle)), ledger(issuer_key), now=NOW)


def test_kid_that_is_not_the_keys_thumbprint_is_rejected(
    issuer_key: jwk.JWK, bundle: dict[str, Any]
) -> None:
    card = sign_claims(issuer_key, claims(bundle), kid="k1")
    with pytest.raises(InvalidHealthCard, match="thumbprint"):
        verify_health_card(card, lambda iss, kid: public(issuer_key), now=NOW)


@pytest.mark.parametrize(
    ("header", "check"),
    [
        ({"zip": None}, "zip"),
        ({"zip": "GZIP"}, "zip"),
        ({"kid": None}, "kid"),
    ],
)
def test_header_checks(
    issuer_key: jwk.JWK, bundle: dict[str, Any], header: dict[str, Any], check: str
) -> None:
    card = sign_claims(issuer_key, claims(bundle), **header)
    with pytest.raises(InvalidHealthCard, match=f"header {check}|header has no {check}"):
        verify_health_card(card, ledger(issuer_key), now=NOW)


def test_wrong_alg_is_rejected(bundle: dict[str, Any]) -> None:
    p384 = jwk.JWK.generate(kty="EC", crv="P-384")
    card = sign_claims(p384, claims(bundle), alg="ES384")
    with pytest.raises(InvalidHealthCard, match="alg is not ES256"):
        verify_health_card(card, ledger(p384), now=NOW)


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        (zlib.compress(b'{"iss":"x"}'), "raw DEFLATE"),
        (b'{"iss":"x"}', "raw DEFLATE"),
        (deflate(b'{"iss":"x"}') + b"tail", "raw DEFLATE"),
        (deflate(b" " * (2 << 20)), "size cap"),
        (deflate(b'{"iss": "' + SECRET.encode()), "payload is not a JSON object"),
        (deflate(b"[1, 2]"), "payload is not a JSON object"),
        (deflate(b'{"nbf": 1}'), "no iss"),
    ],
)
def test_payload_encoding_checks(issuer_key: jwk.JWK, payload: bytes, check: str) -> None:
    with pytest.raises(InvalidHealthCard, match=check):
        verify_health_card(sign(issuer_key, payload), ledger(issuer_key), now=NOW)


@pytest.mark.parametrize("text", ["", "abc", "a.b", "a..c", "a.b.c.d", "a.b.c=", "a b.c.d"])
def test_not_a_compact_jws(issuer_key: jwk.JWK, text: str) -> None:
    with pytest.raises(InvalidHealthCard, match="compact JWS"):
        verify_health_card(text, ledger(issuer_key), now=NOW)


def missing(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, leaf = path.split(".")

    def drop(payload: dict[str, Any]) -> None:
        for name in parents:
            payload = payload[name]
        del payload[leaf]

    return drop


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, leaf = path.split(".")

    def put(payload: dict[str, Any]) -> None:
        for name in parents:
            payload = payload[name]
        payload[leaf] = value

    return put


CLAIM_CHECKS = [
    (missing("iss"), "no iss"),
    (missing("nbf"), "no nbf"),
    (setting("nbf", "yesterday"), "nbf is not a number"),
    (setting("nbf", True), "nbf is not a number"),
    (setting("nbf", NOW + 3600), "nbf is in the future"),
    (setting("exp", "soon"), "exp is not a number"),
    (missing("vc"), "no vc"),
    (setting("vc.type", ["VerifiableCredential", IMMUNIZATION]), "health-card type"),
    (setting("vc.type", HEALTH_CARD_TYPE), "vc.type is not a list"),
    (missing("vc.credentialSubject"), "no fhirBundle"),
    (missing("vc.credentialSubject.fhirBundle"), "no fhirBundle"),
    (setting("vc.credentialSubject.fhirVersion", "5.0.0"), "fhirVersion is not 4.x"),
    (missing("vc.credentialSubject.fhirVersion"), "fhirVersion is not 4.x"),
    (setting("vc.rid", 7), "rid is not a string"),
]


@pytest.mark.parametrize(("change", "check"), CLAIM_CHECKS)
def test_claim_checks(
    issuer_key: jwk.JWK,
    bundle: dict[str, Any],
    change: Callable[[dict[str, Any]], None],
    check: str,
) -> None:
    payload = json.loads(json.dumps(claims(bundle)))
    change(payload)
    with pytest.raises(InvalidHealthCard, match=check):
        verify_health_card(sign_claims(issuer_key, payload), ledger(issuer_key), now=NOW)


def test_nbf_within_leeway_is_accepted(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(issuer_key, issuer=ISSUER, bundle=bundle, types=[], issued_at=NOW + 30)
    assert verify_health_card(card, ledger(issuer_key), now=NOW).issued_at == NOW + 30
    with pytest.raises(InvalidHealthCard, match="nbf is in the future"):
        verify_health_card(card, ledger(issuer_key), now=NOW, leeway_s=0)


def test_expired_card_is_rejected(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = sign_claims(issuer_key, claims(bundle, nbf=NOW - 7200, exp=NOW - 3600))
    with pytest.raises(CredentialExpired):
        verify_health_card(card, ledger(issuer_key), now=NOW)
    assert verify_health_card(card, ledger(issuer_key), now=NOW - 3600).issuer == ISSUER


def test_unknown_issuer_propagates(issuer_key: jwk.JWK, bundle: dict[str, Any]) -> None:
    card = issue_health_card(
        issuer_key, issuer="https://other.example", bundle=bundle, types=[], issued_at=NOW
    )
    with pytest.raises(UnknownIssuer):
        verify_health_card(card, ledger(issuer_key), now=NOW)


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ("shc/5676", "start with shc:/"),
        ("SHC:/5676", "start with shc:/"),
        ("shc:/567", "odd number"),
        ("shc:/5678", "pair above 77"),
        ("shc:/1/2/5676", "all digits"),
        ("shc:/56 76", "all digits"),
    ],
)
def test_bad_qr_text(text: str, check: str) -> None:
    with pytest.raises(InvalidHealthCard, match=check):
        jws_from_qr_text(text)


@pytest.mark.parametrize("text", ["a b.c.d", "ab.cd.é", "a+b.c/d.e="])
def test_qr_text_refuses_non_jws_characters(text: str) -> None:
    with pytest.raises(InvalidHealthCard, match="outside base64url"):
        qr_text(text)


def exception_chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_no_bundle_value_appears_in_an_error(issuer_key: jwk.JWK) -> None:
    observation = OBSERVATION | {"note": [{"text": SECRET}]}
    bundle = card_bundle(PATIENT, [observation])
    card = issue_health_card(issuer_key, issuer=ISSUER, bundle=bundle, types=[], issued_at=NOW)
    header, payload, signature = card.split(".")
    tampered = inflate(payload).replace(b"final", b"amend")
    failures: list[Callable[[], object]] = [
        lambda: verify_health_card(
            f"{header}.{b64(deflate(tampered))}.{signature}", ledger(issuer_key), now=NOW
        ),
        lambda: verify_health_card(card, ledger(issuer_key), now=NOW - 3600),
        lambda: verify_health_card(
            card, lambda iss, kid: public(jwk.JWK.generate(kty="EC", crv="P-256")), now=NOW
        ),
        lambda: verify_health_card(
            sign(issuer_key, deflate(b'{"iss": "' + SECRET.encode())), ledger(issuer_key), now=NOW
        ),
    ]
    for change, _ in CLAIM_CHECKS:
        changed = json.loads(json.dumps(claims(bundle)))
        change(changed)
        signed = sign_claims(issuer_key, changed)
        failures.append(partial(verify_health_card, signed, ledger(issuer_key), now=NOW))
    for failure in failures:
        with pytest.raises(InvalidHealthCard) as caught:
            failure()
        for exc in exception_chain(caught.value):
            assert SECRET not in str(exc)
            assert SECRET not in repr(exc.args)
            assert SECRET not in repr(vars(exc))  # json's decode error keeps its document here


@given(st.text(alphabet=B64URL + ".", max_size=MAX_QR_JWS))
def test_qr_numeric_encoding_round_trips(text: str) -> None:
    encoded = qr_text(text)
    assert encoded[5:].isdigit() or not text
    assert jws_from_qr_text(encoded) == text
