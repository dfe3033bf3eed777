"""An institution's patient index (records/patient_index.py): keyed hashes of identifiers to
pseudonyms, all or none, no identifier in clear, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import Address
from medledger.errors import UsageError
from medledger.records.patient_index import (
    IdentifierTaken,
    PatientIndex,
    identifier_digest,
    index_key,
    parse_identifier,
)
from tests.ledger.consortium import key

MRN = "urn:oid:2.16.840.1.113883.19.5"
SECRET = "SECRET-MRN-0042"
ALICE, BOB = Address(key("index:alice").address), Address(key("index:bob").address)
HOSPITAL, CLINIC = key("index:hospital"), key("index:clinic")


def test_the_index_key_is_the_institution_s_own() -> None:
    assert len(index_key(HOSPITAL)) == 32
    assert index_key(HOSPITAL) == index_key(key("index:hospital"))
    assert index_key(HOSPITAL) != index_key(CLINIC)


def test_a_digest_is_hmac_sha256_of_the_identifier_s_canonical_json() -> None:
    secret = index_key(HOSPITAL)
    expected = hmac.new(secret, canonical_json([MRN, SECRET]), hashlib.sha256).digest()
    assert identifier_digest(secret, (MRN, SECRET)) == expected
    # No two identifiers share an input: a bar in a system or a value stays where it was.
    assert identifier_digest(secret, ("a|b", "c")) != identifier_digest(secret, ("a", "b|c"))
    assert identifier_digest(secret, (MRN, "1")) != identifier_digest(index_key(CLINIC), (MRN, "1"))
    with pytest.raises(UsageError):
        identifier_digest(b"short", (MRN, "1"))


@pytest.mark.parametrize(
    ("text", "identifier"),
    [(f"{MRN}|{SECRET}", (MRN, SECRET)), (f"|{SECRET}", ("", SECRET)), ("s|a|b", ("s", "a|b"))],
)
def test_identifiers_are_written_as_fhir_tokens(text: str, identifier: tuple[str, str]) -> None:
    assert parse_identifier(text) == identifier


@pytest.mark.parametrize("text", [SECRET, f"{MRN}|", ""])
def test_a_malformed_identifier_is_refused_without_repeating_it(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_identifier(text)
    assert SECRET not in str(caught.value) and "SYSTEM|VALUE" in str(caught.value)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "vault.db")
    from tests.conftest import new_postgres_database

    return new_postgres_database(request.getfixturevalue("postgres_url"))


def test_identifiers_find_their_patient_all_or_none(index_url: str) -> None:
    secret = index_key(HOSPITAL)
    mrn, passport = identifier_digest(secret, (MRN, "1")), identifier_digest(secret, ("p", "2"))
    other = identifier_digest(secret, (MRN, "3"))
    with PatientIndex.open(index_url) as index:
        assert index.owners([mrn, passport]) == {}
        assert index.add(ALICE, [mrn]) == 1
        assert index.add(ALICE, [mrn, passport]) == 1  # one of them was new
        assert index.add(ALICE, [mrn]) == 0
        assert index.owners([mrn, passport, other]) == {mrn: ALICE, passport: ALICE}
        with pytest.raises(IdentifierTaken) as caught:
            index.add(BOB, [other, mrn])
        assert "another patient" in str(caught.value)
        # Nothing of the refused call was indexed.
        assert index.owners([other]) == {}
        assert index.add(BOB, [other]) == 1
    # Kept in the database, not in the object.
    with PatientIndex.open(index_url) as again:
        assert again.owners([mrn, other]) == {mrn: ALICE, other: BOB}


def test_many_identifiers_are_looked_up_in_chunks(tmp_path: Path) -> None:
    secret = index_key(HOSPITAL)
    digests = [identifier_digest(secret, (MRN, str(n))) for n in range(1200)]
    with PatientIndex.open(str(tmp_path / "vault.db")) as index:
        assert index.add(ALICE, digests) == 1200
        assert len(index.owners(digests)) == 1200


def test_no_identifier_is_stored_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    secret = index_key(HOSPITAL)
    with PatientIndex.open(str(path)) as index:
        index.add(ALICE, [identifier_digest(secret, (MRN, SECRET))])
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("vault"))
    assert identifier_digest(secret, (MRN, SECRET)) in stored  # the check can see a value
    assert SECRET.encode() not in stored and MRN.encode() not in stored
