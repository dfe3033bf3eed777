"""The portal seals records in the browser exactly as the Python side does: with the same
random bytes, Python's seal_record and the page's seal.js give byte-identical wire forms;
what the page seals opens with the patient's key and with any t custodian shares; the
page's canonical JSON is RFC 8785 as the Python side writes it, decimals as written; and
a record the Python side sealed shows its decimals in the page as written.

Runs in Chromium against the portal's files alone (no node)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from itertools import combinations
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.crypto import aead, ecies, shamir
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import NotCanonicalizable
from medledger.crypto.json_numbers import parse_json
from medledger.node.identities import CUSTODIAN_LABEL, PATIENT_LABEL, encryption_key
from medledger.records.header import NO_PREVIOUS, RecordHeader
from medledger.records.sealed import (
    PATIENT_INDEX,
    Custodians,
    Draft,
    KeyWrapper,
    _key_binding,
    open_as_patient,
    open_with_shares,
    seal_record,
    unwrap_share,
)
from medledger.records.wire import sealed_from_json, sealed_to_json
from tests.data import FHIR_EXAMPLES
from tests.ledger.consortium import key
from tests.portal.browser import browser_page, needs_browser, portal_only

pytestmark = needs_browser

NETWORK = 4242
PATIENT = key("seal-vectors:patient")


def _holders(count: int) -> list[Any]:
    """``count`` custodians' keys, in the ledger's order (by address)."""
    return sorted((key(f"seal-vectors:custodian-{i}") for i in range(count)),
                  key=lambda k: k.address)  # fmt: skip


CUSTODIANS = _holders(3)
THRESHOLD = 2
GLUCOSE = (FHIR_EXAMPLES / "observation-example2.json").read_text()
# Decimals, non-ASCII text, a key outside the Basic Multilingual Plane: the second record
# is the first one's next version, sealed by the same wrapper.
NOTE = json.dumps({
    "resourceType": "Observation", "id": "home-1", "status": "final",
    "category": [{"coding": [{"code": "vital-signs"}]}],
    "code": {"text": "Blutdruck \u2013 zu Hause"},
    "valueQuantity": {"value": 118.25, "unit": "mmHg"},
    "note": [{"text": "nach dem Aufstehen \u2028 ☕"}], "\U0001f600": 1e-7,
}, ensure_ascii=False)  # fmt: skip


def _patient_public() -> bytes:
    return ecies.public_bytes(encryption_key(PATIENT, PATIENT_LABEL))


def _custodian_private(custodian: Any) -> X25519PrivateKey:
    return encryption_key(custodian, CUSTODIAN_LABEL)


def _custodians(threshold: int = THRESHOLD, count: int = len(CUSTODIANS)) -> Custodians:
    holders = tuple((c.address, ecies.public_bytes(_custodian_private(c))) for c in _holders(count))
    return Custodians(threshold, holders)


class Stream:
    """Fixed random bytes, handed out in order; counts what was drawn."""

    def __init__(self, seed: bytes, size: int = 4096) -> None:
        blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32))
        self.data = b"".join(blocks)
        self.used = 0

    def __call__(self, n: int) -> bytes:
        if self.used + n > len(self.data):
            raise AssertionError("the fixed random bytes ran out")
        out = self.data[self.used : self.used + n]
        self.used += n
        return out


def _drafts(first_digest: bytes) -> list[Draft]:
    key_ = _patient_public()
    new = Draft(bytes(range(16)), 1, NO_PREVIOUS, PATIENT.address, key_, "Observation", "labs")
    amended = Draft(bytes(range(16, 32)), 2, first_digest, PATIENT.address, key_, "Observation",
                    "vital-signs")  # fmt: skip
    return [new, amended]


def _python_seal(
    monkeypatch: pytest.MonkeyPatch, stream: Stream, texts: list[str],
    custodians: Custodians | None = None,
) -> list[Any]:  # fmt: skip
    """seal_record with every random byte it draws, directly or below, from ``stream``."""

    def ephemeral() -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(stream(32))

    monkeypatch.setattr(ecies, "generate_private_key", ephemeral)
    monkeypatch.setattr(ecies, "os", SimpleNamespace(urandom=stream))
    monkeypatch.setattr(aead, "os", SimpleNamespace(urandom=stream))
    monkeypatch.setattr(shamir, "split", partial(shamir.split, randbytes=stream))
    wrapper = KeyWrapper(custodians or _custodians())
    sealed: list[Any] = []
    digest = bytes(32)
    for i, text in enumerate(texts):
        draft = _drafts(digest)[i]
        record = seal_record(draft, canonical_json(parse_json(text)), network_id=NETWORK,
                             author=PATIENT, wrapper=wrapper, randbytes=stream)  # fmt: skip
        digest = record.header.digest
        sealed.append(record)
    return sealed


# Seals the texts as the portal does: canonical JSON from the parsed text, one KeyWrapper
# for the group, each draft's previous the digest of the version before.
_JS_SEAL = """async ([args, fixed]) => {
    const crypto = await import('/portal/js/crypto.js');
    const { KeyWrapper, sealRecord, secureRandomBytes } = await import('/portal/js/seal.js');
    const { canonicalRecord, parseJson } = await import('/portal/js/fhir-input.js');
    const { headerDigest } = await import('/portal/js/record-header.js');
    let random = secureRandomBytes;
    let used = 0;
    if (fixed !== null) {
        const bytes = crypto.unhex(fixed);
        random = (n) => {
            if (used + n > bytes.length) throw new Error('the fixed random bytes ran out');
            used += n;
            return bytes.slice(used - n, used);
        };
    }
    const custodians = args.custodians.map(
        ([address, key]) => ({ address, key: crypto.unhex(key) }));
    const wrapper = await KeyWrapper.create({ threshold: args.threshold, custodians }, random);
    const author = new crypto.Key(crypto.unhex(args.author));
    const sealed = [];
    let previous = new Uint8Array(32);
    for (const [i, d] of args.drafts.entries()) {
        const draft = { ...d, recordId: crypto.unhex(d.recordId),
                        patientKey: crypto.unhex(d.patientKey),
                        previous: i === 0 ? crypto.unhex(d.previous) : previous };
        const canonical = new TextEncoder().encode(canonicalRecord(parseJson(args.texts[i])));
        const wire = await sealRecord(draft, canonical, { network: args.network, author, wrapper });
        previous = headerDigest(wire.header);
        sealed.push(JSON.stringify(wire));
    }
    return { sealed, used };
}"""


@pytest.fixture(scope="module")
def portal() -> Iterator[str]:
    with portal_only() as url:
        yield url


@pytest.fixture
def page(portal: str) -> Iterator[Any]:
    with browser_page() as (page, problems):
        page.goto(f"{portal}/portal/")
        yield page
    assert problems == [], problems


def _js_args(texts: list[str], custodians: Custodians | None = None) -> dict[str, Any]:
    custodians = custodians or _custodians()
    drafts = [
        {"recordId": d.record_id.hex(), "version": d.version, "previous": d.previous.hex(),
         "patient": d.patient, "patientKey": d.patient_key.hex(),
         "resourceType": d.resource_type, "category": d.category}
        for d in _drafts(bytes(32))
    ]  # fmt: skip
    return {
        "network": NETWORK, "threshold": custodians.threshold,
        "author": PATIENT.to_bytes().hex(),
        "custodians": [[a, k.hex()] for a, k in custodians.holders],
        "drafts": drafts[: len(texts)], "texts": texts,
    }  # fmt: skip


def test_python_and_the_page_seal_byte_identical_records_from_the_same_random_bytes(
    page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [GLUCOSE, NOTE]
    python = Stream(b"seal-vectors")
    expected = [json.dumps(sealed_to_json(s), separators=(",", ":"))
                for s in _python_seal(monkeypatch, python, texts)]  # fmt: skip
    js = page.evaluate(_JS_SEAL, [_js_args(texts), python.data.hex()])
    assert js["used"] == python.used
    assert js["sealed"] == expected


# The edges of the split: one share opens (t = 1), every share is needed (t = n), and a
# consortium larger than the usual three.
SPLITS = [(1, 1), (1, 3), (3, 3), (11, 20), (20, 20)]


@pytest.mark.parametrize(("threshold", "count"), SPLITS, ids=[f"{t}-of-{n}" for t, n in SPLITS])
def test_python_and_the_page_split_keys_alike_at_every_threshold(
    page: Any, monkeypatch: pytest.MonkeyPatch, threshold: int, count: int
) -> None:
    custodians = _custodians(threshold, count)
    python = Stream(b"seal-vectors:" + bytes((threshold, count)), size=8192)
    sealed = _python_seal(monkeypatch, python, [NOTE], custodians)
    expected = [json.dumps(sealed_to_json(s), separators=(",", ":")) for s in sealed]
    js = page.evaluate(_JS_SEAL, [_js_args([NOTE], custodians), python.data.hex()])
    assert js["used"] == python.used
    assert js["sealed"] == expected
    (record,) = sealed
    holders = _holders(count)
    shares = [unwrap_share(record, c.address, _custodian_private(c)) for c in holders]
    assert open_with_shares(record, shares[-threshold:]) == canonical_json(parse_json(NOTE))


def test_a_record_sealed_in_the_page_opens_with_the_patients_key_and_any_t_shares(
    page: Any,
) -> None:
    (wire,) = page.evaluate(_JS_SEAL, [_js_args([NOTE]), None])["sealed"]
    sealed = sealed_from_json(json.loads(wire))
    canonical = canonical_json(parse_json(NOTE))
    assert sealed.check() == PATIENT.address
    patient_private = encryption_key(PATIENT, PATIENT_LABEL)
    assert open_as_patient(sealed, patient_private) == canonical
    data_key = ecies.open_sealed(
        patient_private, sealed.keys.patient, _key_binding(sealed.header, PATIENT_INDEX)
    )
    shares = [unwrap_share(sealed, c.address, _custodian_private(c)) for c in CUSTODIANS]
    for pair in combinations(shares, THRESHOLD):
        assert shamir.combine(pair, THRESHOLD) == data_key
        assert open_with_shares(sealed, pair) == canonical


_DIGESTS = """async (headers) => {
    const crypto = await import('/portal/js/crypto.js');
    const { headerDigest } = await import('/portal/js/record-header.js');
    return headers.map((h) => crypto.hex(headerDigest(h)));
}"""


def test_the_pages_header_digest_is_the_python_sides_at_the_edges(page: Any) -> None:
    """Non-ASCII and astral text in the strings, the largest version, a network id near
    2^53: what the page signs is what the Python side recovers the author from."""
    base = RecordHeader(
        network_id=NETWORK, record_id=bytes(range(16)), version=1, previous=NO_PREVIOUS,
        patient=PATIENT.address, resource_type="Observation", category="labs",
        content=bytes(range(32)), ciphertext=bytes(range(1, 33)), keys=bytes(range(2, 34)),
    )  # fmt: skip
    headers = [
        base,
        replace(base, category="Pflege \u2013 Notiz \u2615 \U0001f600", resource_type="\u00c4"),
        replace(base, version=2**32 - 1, previous=bytes([0xFF]) * 32, network_id=2**53 - 1),
        replace(base, resource_type="", category=""),
    ]
    digests = page.evaluate(_DIGESTS, [h.to_json() for h in headers])
    assert digests == [h.digest.hex() for h in headers]


_CANONICAL = """async (texts) => {
    const { canonicalRecord, parseJson } = await import('/portal/js/fhir-input.js');
    return texts.map((text) => {
        try {
            return Array.from(new TextEncoder().encode(canonicalRecord(parseJson(text))));
        } catch (error) {
            return error.message;
        }
    });
}"""

CANONICAL_CASES = [
    '{"b": 1, "a": [1.5, -0.0, -0, 1e-7, 1e21, 123456789.125, 0.1, 100.0, 5E2, -5]}',
    '{"\\ud83d\\ude00": "a key beyond the BMP", "\\ue000": "a private-use key", "z": 0}',
    '{"text": "\\u00fc\\u2028\\u007f\\n\\t\\"\\\\\\u0001\\/", "nested": {"e": {}, "l": []}}',
    '{"same": 1, "same": 2, "n": null, "t": true, "f": false}',
    # Numbers at the edges of the double and of the safe integers, in every spelling: a
    # decimal is written as it was read, whatever a double would make of it.
    "[9007199254740991, -9007199254740991, 9007199254740993.0, 1E16, 1e+21, 1e-6, 5e-324,"
    " 1.7976931348623157e308, 0.000001234, -1e-400, 2E-7, 1e20, 4.35, 0.30000000000000004,"
    " 1e400, -1e309, 1.50E+3, 0.0000001, -0.0]",
    # FHIR decimals keep their precision: 100.0 is not 100, 7.20 not 7.2.
    '{"valueQuantity": {"value": 100.0, "unit": "kg"}, "low": 7.20, "high": 1e2, "n": 100}',
    '{"same": 1.0, "same": 2.50, "list": [0.10, [1.000e-3]]}',
    "3.140",
    # RFC 8785's own ordering example: UTF-16 code units, not code points.
    '{"\\u20ac": 1, "\\r": 2, "\\ufb33": 3, "1": 4, "\\ud83d\\ude02": 5, "\\u0080": 6,'
    ' "\\u00f6": 7}',
    '{"\\u0000\\u001f": "\\u00ad\\u2029\\ufeff\\ud83d\\ude02", "deep": '
    + "[" * 60
    + "{}"
    + "]" * 60
    + "}",
]
REFUSED_CASES = [
    '{"lone": "\\ud800"}',
    '{"big": 9007199254740993}',
    '{"big": 9007199254740992}',
    '{"big": -9007199254740992}',
    "[123456789012345680000]",
    '{"\\udc00": 1}',
]


def test_the_pages_canonical_json_is_the_python_sides(page: Any) -> None:
    outcomes = page.evaluate(_CANONICAL, CANONICAL_CASES + REFUSED_CASES)
    for text, got in zip(CANONICAL_CASES, outcomes, strict=False):
        assert bytes(got) == canonical_json(parse_json(text)), (text, got)
    for text, got in zip(REFUSED_CASES, outcomes[len(CANONICAL_CASES) :], strict=True):
        assert isinstance(got, str), text
        with pytest.raises(NotCanonicalizable):
            canonical_json(parse_json(text))
    big = REFUSED_CASES.index('{"big": 9007199254740993}')
    assert outcomes[len(CANONICAL_CASES) + big] == "an integer beyond 2^53"


# A home reading with decimals as a scale and a lab write them: each must reach every
# reader with its digits, not as the double it equals.
DECIMALS = (
    '{"resourceType": "Observation", "id": "decimals", "status": "final",'
    ' "code": {"text": "Weight"}, "valueQuantity": {"value": 100.0, "unit": "kg"},'
    ' "referenceRange": [{"low": {"value": 7.20, "unit": "kg"},'
    ' "high": {"value": 1e2, "unit": "kg"}}]}'
)


def test_decimals_the_page_seals_open_in_python_exactly_as_written(page: Any) -> None:
    (wire,) = page.evaluate(_JS_SEAL, [_js_args([DECIMALS]), None])["sealed"]
    opened = open_as_patient(
        sealed_from_json(json.loads(wire)), encryption_key(PATIENT, PATIENT_LABEL)
    )
    assert opened == (
        b'{"code":{"text":"Weight"},"id":"decimals","referenceRange":[{"high":{"unit":"kg",'
        b'"value":1e2},"low":{"unit":"kg","value":7.20}}],"resourceType":"Observation",'
        b'"status":"final","valueQuantity":{"unit":"kg","value":100.0}}'
    )
    assert opened == canonical_json(parse_json(DECIMALS))


# Opens a record as the records view does (crypto.js, then records-view.js): its card's
# facts and its JSON as "show JSON" shows it.
_SHOW = """async ([secret, sealed]) => {
    const crypto = await import('/portal/js/crypto.js');
    const view = await import('/portal/js/records-view.js');
    const { canonical } = await crypto.openAsPatient(new crypto.Key(crypto.unhex(secret)), sealed);
    const resource = view.parseRecord(canonical);
    const card = view.renderResource(resource);
    const facts = {};
    for (const dt of card.querySelectorAll('dl.facts dt')) {
        facts[dt.textContent] = dt.nextElementSibling.textContent;
    }
    return { facts, json: view.jsonForDisplay(resource) };
}"""


def test_a_record_sealed_in_python_shows_its_decimals_as_written_in_the_page(
    page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (record,) = _python_seal(monkeypatch, Stream(b"seal-vectors:show"), [DECIMALS])
    shown = page.evaluate(_SHOW, [PATIENT.to_bytes().hex(), sealed_to_json(record)])
    assert shown["facts"]["Value"] == "100.0 kg"
    assert shown["facts"]["Normal range"] == "7.20 kg to 1e2 kg"
    assert '"value": 100.0' in shown["json"] and '"value": 7.20' in shown["json"]
    assert '"value": 1e2' in shown["json"]
    # What is shown is the record: the same JSON, laid out for reading.
    assert canonical_json(parse_json(shown["json"])) == canonical_json(parse_json(DECIMALS))
