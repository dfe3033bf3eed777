"""The credentials contracts on a real node: who may write what, and what is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk

from medledger.credentials import zk
from medledger.credentials.contract import (
    ISSUER_URL_NS,
    PUBLISH,
    REVOKE,
    STATUS,
    STATUS_NS,
    VERIFIED,
    document,
    document_id,
    issuer_id,
    status_head,
    status_key,
    verification,
)
from medledger.credentials.errors import (
    CredentialRevoked,
    DuplicateVerification,
    InvalidCredentialDocument,
    NotIssuer,
    UnrevocableCredential,
)
from medledger.credentials.issuer import signing_jwk
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity, membership
from medledger.ledger.errors import Conflict, InvalidPayload, Unauthorized
from medledger.ledger.executor import TxOutcome
from tests.credentials.scene import CHECKUP_URL, INSURER, Scene, now_ms, run
from tests.ledger.consortium import key
from tests.records.world import World, world

STRANGER = key("stranger")
CREDENTIAL = "0x" + "ab" * 16
REQUEST = "0x" + "11" * 32


def on_node(tmp_path: Path, body: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            await body(w)

    asyncio.run(main())


def now_s() -> int:
    return time.time_ns() // 1_000_000_000


async def publish(w: World, signer: PrivateKey, kind: str, name: str, text: str) -> TxOutcome:
    payload = {"kind": kind, "name": name, "document": text}
    return await w.node.submit_payload(signer, PUBLISH, payload)


def jwk_text(public: dict[str, Any], url: str | None = None) -> str:
    return json.dumps({"jwk": public, **({"url": url} if url else {})})


def public_of(signer: PrivateKey) -> tuple[dict[str, Any], str]:
    made = signing_jwk(signer)
    return json.loads(made.export_public()), made.thumbprint()


def edited(text: str, **changes: Any) -> str:
    return json.dumps({**json.loads(text), **changes})


# -- publish: JWKs and names -------------------------------------------------------


def test_only_members_publish_once_under_well_formed_names(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        member = w.consortium.keys[1]
        public, thumb = public_of(member)
        with pytest.raises(Unauthorized, match="not a member"):
            await publish(w, STRANGER, "jwk", public_of(STRANGER)[1],
                          jwk_text(public_of(STRANGER)[0]))  # fmt: skip
        with pytest.raises(InvalidPayload, match="kind: expected one of"):
            await publish(w, member, "did", thumb, jwk_text(public))
        # Letters and digits of other scripts would give ids that read like ASCII ones.
        for name in ("a/b", "x y", "../schema", "name:1", "-._", "h\u0435alth", "key\uff11"):
            with pytest.raises(InvalidPayload, match="name: letters"):
                await publish(w, member, "jwk", name, jwk_text(public))
        with pytest.raises(InvalidPayload, match="name: expected a string"):
            await publish(w, member, "jwk", "", jwk_text(public))

        done = await publish(w, member, "jwk", thumb, jwk_text(public))
        doc_id = document_id(member.address, "jwk", thumb)
        assert document(w.node.store, doc_id) == {
            "issuer": member.address, "kind": "jwk", "document": jwk_text(public),
            "index": done.index,
        }  # fmt: skip
        with pytest.raises(Conflict, match="already published"):
            await publish(w, member, "jwk", thumb, jwk_text(public))
        # The id names its publisher: another member's same name is another document.
        other = w.consortium.keys[2]
        other_public, other_thumb = public_of(other)
        assert other_thumb != thumb
        await publish(w, other, "jwk", other_thumb, jwk_text(other_public))

    on_node(tmp_path, body)


def _bad_jwks(member: PrivateKey) -> Iterator[tuple[str, str, str]]:
    """(name, document, message) of JWK documents the contract must refuse."""
    public, thumb = public_of(member)
    private = json.loads(signing_jwk(member).export_private())
    yield thumb, jwk_text(private), "private key must never be published"
    yield public_of(key("someone"))[1], jwk_text(public), "thumbprint"
    yield "not-a-thumbprint", jwk_text(public), "thumbprint"
    p384 = jwk.JWK.generate(kty="EC", crv="P-384")
    yield p384.thumbprint(), jwk_text(json.loads(p384.export_public())), "EC P-256"
    ed25519 = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    yield ed25519.thumbprint(), jwk_text(json.loads(ed25519.export_public())), "EC P-256"
    # A symmetric key on a public ledger would be a leaked secret.
    secret = jwk.JWK.generate(kty="oct", size=256)
    yield secret.thumbprint(), jwk_text(json.loads(secret.export())), "EC P-256"
    yield thumb, json.dumps({"key": public}), "EC P-256"
    yield thumb, jwk_text({k: v for k, v in public.items() if k != "y"}), "jwk: Missing"
    # Another spelling of the same point would be the same key under another thumbprint.
    x = base64.urlsafe_b64decode(public["x"] + "=")
    for spelled in (public["x"] + "=", base64.urlsafe_b64encode(b"\0" + x).decode().rstrip("=")):
        respelled = {**public, "x": spelled}
        yield jwk.JWK(**respelled).thumbprint(), jwk_text(respelled), "32 bytes"
    yield thumb, jwk_text({**public, "use": "enc"}), "jwk: Invalid usage"
    yield thumb, jwk_text(public, "http://checkup.example"), "https URL"
    yield thumb, json.dumps({"jwk": public, "url": 443}), "https URL"
    # One spelling per URL: these name https://bank.example, or a place under it, too.
    for url in ("https://Bank.example", "https://bank.example/", "https://bank.example.",
                "https://bank.example:443", "https://x@bank.example", "https://bank.example?",
                "https://bank.example/a/../b", "https://bank.example/%61"):  # fmt: skip
        yield thumb, jwk_text(public, url), "https URL"
    yield thumb, "{not json", "expected a JSON object"
    # Nested past the parser's recursion limit, yet well under MAX_DOCUMENT_CHARS.
    yield thumb, '{"jwk": ' + "[" * 20_000, "expected a JSON object"


def test_a_jwk_must_be_a_public_p256_key_named_by_its_thumbprint(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        member = w.consortium.keys[1]
        for name, text, message in _bad_jwks(member):
            with pytest.raises(InvalidCredentialDocument, match=message):
                await publish(w, member, "jwk", name, text)
            assert document(w.node.store, document_id(member.address, "jwk", name)) is None
        assert w.node.store.get(ISSUER_URL_NS, "http://checkup.example") is None
        # The same key, well formed, is accepted: the refusals were about the documents.
        public, thumb = public_of(member)
        await publish(w, member, "jwk", thumb, jwk_text(public, "https://bank.example"))

    on_node(tmp_path, body)


def test_an_issuer_url_belongs_to_the_first_member_that_claims_it(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        first, second = w.consortium.keys[2], w.consortium.keys[1]
        public, thumb = public_of(first)
        await publish(w, first, "jwk", thumb, jwk_text(public, CHECKUP_URL))
        theirs, their_thumb = public_of(second)
        with pytest.raises(Conflict, match=f"{CHECKUP_URL} is the issuer URL of {first.address}"):
            await publish(w, second, "jwk", their_thumb, jwk_text(theirs, CHECKUP_URL))
        # Nor under another spelling of it, which its issuer's cards would seem to name.
        for spelling in (CHECKUP_URL.upper().replace("HTTPS", "https"), CHECKUP_URL + "/"):
            with pytest.raises(InvalidCredentialDocument, match="https URL"):
                await publish(w, second, "jwk", their_thumb, jwk_text(theirs, spelling))
        assert document(w.node.store, document_id(second.address, "jwk", their_thumb)) is None
        # Key rotation: the owner may publish another key under its own URL.
        rotated = jwk.JWK.generate(kty="EC", crv="P-256")
        await publish(w, first, "jwk", rotated.thumbprint(),
                      jwk_text(json.loads(rotated.export_public()), CHECKUP_URL))  # fmt: skip
        assert Registry(w.node.store).issuer_address(CHECKUP_URL) == first.address

    on_node(tmp_path, body)


def _off_curve() -> dict[str, Any]:
    public = json.loads(jwk.JWK.generate(kty="EC", crv="P-256").export_public())
    return {**public, "y": public["x"]}


def _p384_labelled_p256() -> dict[str, Any]:
    public = json.loads(jwk.JWK.generate(kty="EC", crv="P-384").export_public())
    return {**public, "crv": "P-256"}


@pytest.mark.parametrize("make", [_off_curve, _p384_labelled_p256], ids=["off-curve", "p384"])
def test_a_jwk_whose_point_is_not_on_p256_is_refused(
    tmp_path: Path, make: Callable[[], dict[str, Any]]
) -> None:
    async def body(w: World) -> None:
        public = make()
        name = jwk.JWK(**public).thumbprint()
        with pytest.raises(InvalidCredentialDocument):
            await publish(w, w.consortium.keys[1], "jwk", name, jwk_text(public))

    on_node(tmp_path, body)


def test_a_document_that_is_a_json_array_is_refused(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        member = w.consortium.keys[1]
        public, thumb = public_of(member)
        with pytest.raises(InvalidCredentialDocument, match="JSON object"):
            await publish(w, member, "jwk", thumb, json.dumps([["jwk", public]]))

    on_node(tmp_path, body)


# -- publish: AnonCreds documents --------------------------------------------------


def test_anoncreds_documents_name_their_publisher_and_what_they_build_on(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        w, secrets = s.w, s.issuer.state.secrets
        owner, other = s.issuer.key, w.consortium.keys[1]
        registry = Registry(w.node.store)
        assert registry.document(secrets.schema_id) == secrets.schema
        assert registry.issuer_of(secrets.rev_reg_id) == owner.address

        for kind, text in (("schema", secrets.schema), ("cred_def", secrets.cred_def),
                           ("rev_reg", secrets.rev_reg)):  # fmt: skip
            with pytest.raises(InvalidCredentialDocument, match="issuerId: expected"):
                await publish(w, other, kind, "copied", text)
        with pytest.raises(Conflict, match="already published"):
            await publish(w, owner, "schema", "health-summary-1", secrets.schema)

        mine = issuer_id(owner.address)
        malformed = (
            json.dumps({"issuerId": mine, "name": "health-summary"}),
            json.dumps({"issuerId": mine, "name": "x", "version": "1", "attrNames": "hba1c"}),
        )
        for text in malformed:
            with pytest.raises(InvalidCredentialDocument, match="schema: "):
                await publish(w, owner, "schema", "malformed", text)
        with pytest.raises(InvalidCredentialDocument, match="expected a JSON object"):
            await publish(w, owner, "schema", "malformed", "not json")

        unpublished = document_id(owner.address, "schema", "never-published")
        with pytest.raises(InvalidCredentialDocument, match="schemaId: no such published schema"):
            await publish(w, owner, "cred_def", "orphan", edited(secrets.cred_def,
                                                                 schemaId=unpublished))  # fmt: skip
        with pytest.raises(InvalidCredentialDocument, match="is not a published cred_def"):
            await publish(w, owner, "rev_reg", "orphan",
                          edited(secrets.rev_reg, credDefId=secrets.schema_id))  # fmt: skip
        # A registry over another member's credential definition is not the other's to add.
        theirs = edited(secrets.rev_reg, issuerId=issuer_id(other.address))
        with pytest.raises(NotIssuer, match=f"published by {owner.address}"):
            await publish(w, other, "rev_reg", "borrowed", theirs)
        body_ = json.loads(secrets.rev_reg)
        body_["value"]["maxCredNum"] = 100_001
        with pytest.raises(InvalidCredentialDocument, match="maxCredNum: at most 100000"):
            await publish(w, owner, "rev_reg", "huge", json.dumps(body_))

        for kind, name in (("schema", "copied"), ("schema", "malformed"), ("cred_def", "orphan"),
                           ("rev_reg", "orphan"), ("rev_reg", "huge")):  # fmt: skip
            assert document(w.node.store, document_id(owner.address, kind, name)) is None
        assert document(w.node.store, document_id(other.address, "rev_reg", "borrowed")) is None

    run(tmp_path, tails_dir, body)


def test_a_cred_def_over_a_document_that_is_not_a_schema_is_refused(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        secrets = s.issuer.state.secrets
        not_a_schema = document_id(s.issuer.address, "jwk", s.issuer.jwk.thumbprint())
        assert document(s.w.node.store, not_a_schema) is not None
        with pytest.raises(InvalidCredentialDocument, match="schemaId"):
            await publish(s.w, s.issuer.key, "cred_def", "over-a-key",
                          edited(secrets.cred_def, schemaId=not_a_schema))  # fmt: skip

    run(tmp_path, tails_dir, body)


# -- status lists ------------------------------------------------------------------


async def post(s: Scene, signer: PrivateKey, text: str, rev_reg: str | None = None) -> TxOutcome:
    payload = {"rev_reg": rev_reg or s.issuer.state.secrets.rev_reg_id, "list": text}
    return await s.w.node.submit_payload(signer, STATUS, payload)


def test_a_status_list_comes_from_the_registry_owner_and_fits_the_registry(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        secrets, owner = s.issuer.state.secrets, s.issuer.key
        rev_reg = secrets.rev_reg_id
        head = status_head(s.w.node.store, rev_reg)
        assert head is not None
        later = edited(s.issuer.state.status_list, timestamp=head + 1)

        with pytest.raises(NotIssuer, match=f"was published by {owner.address}"):
            await post(s, s.w.consortium.keys[1], later)
        with pytest.raises(Unauthorized, match="not a member"):
            await post(s, STRANGER, later)
        with pytest.raises(InvalidCredentialDocument, match="is not a published rev_reg"):
            await post(s, owner, later, rev_reg=secrets.cred_def_id)
        with pytest.raises(InvalidCredentialDocument, match="is not a published rev_reg"):
            await post(s, owner, later, rev_reg=document_id(owner.address, "rev_reg", "other"))

        elsewhere = edited(later, revRegDefId=document_id(owner.address, "rev_reg", "other"))
        with pytest.raises(InvalidCredentialDocument, match="names another registry"):
            await post(s, owner, elsewhere)
        someone_elses = edited(later, issuerId=issuer_id(s.w.consortium.keys[1].address))
        with pytest.raises(InvalidCredentialDocument, match="names another registry"):
            await post(s, owner, someone_elses)

        bits = json.loads(later)["revocationList"]
        assert len(bits) == 64
        for wrong in (bits[:-1], [*bits, 0]):
            with pytest.raises(InvalidCredentialDocument, match="expected 64 entries"):
                await post(s, owner, edited(later, revocationList=wrong))
        with pytest.raises(InvalidCredentialDocument, match="revocation status list: "):
            await post(s, owner, edited(later, revocationList=[2] * 64))

        assert status_head(s.w.node.store, rev_reg) == head
        await post(s, owner, later)
        assert status_head(s.w.node.store, rev_reg) == head + 1
        assert Registry(s.w.node.store).current_status(rev_reg) == later

    run(tmp_path, tails_dir, body)


def test_status_timestamps_only_go_forward_and_a_revocation_is_never_undone(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        secrets, owner = s.issuer.state.secrets, s.issuer.key
        rev_reg = secrets.rev_reg_id
        store = s.w.node.store
        before = s.issuer.state.status_list
        head = status_head(store, rev_reg)
        assert head is not None and json.loads(before)["timestamp"] == head

        with pytest.raises(Conflict, match=f"timestamp {head} does not follow {head}"):
            await post(s, owner, before)
        with pytest.raises(Conflict, match="does not follow"):
            await post(s, owner, edited(before, timestamp=head - 1))
        with pytest.raises(InvalidCredentialDocument, match="in the future"):
            await post(s, owner, edited(before, timestamp=now_s() + 3600))
        with pytest.raises(InvalidCredentialDocument, match="timestamp missing"):
            await post(s, owner, json.dumps({k: v for k, v in json.loads(before).items()
                                             if k != "timestamp"}))  # fmt: skip
        assert status_head(store, rev_reg) == head

        credential_id = s.issue_anoncreds()
        index = int(s.issuer.state.issued[credential_id]["index"])
        await s.issuer.revoke(credential_id, now_s=now_s())
        revoked_head = status_head(store, rev_reg)
        assert revoked_head is not None and revoked_head > head
        assert json.loads(Registry(store).current_status(rev_reg))["revocationList"][index] == 1

        # The pre-revocation list, re-dated: valid on its own, but it brings the credential back.
        reinstating = edited(before, timestamp=revoked_head + 1)
        with pytest.raises(InvalidCredentialDocument, match="cannot be reinstated"):
            await post(s, owner, reinstating)
        assert store.get(STATUS_NS, status_key(rev_reg, revoked_head + 1)) is None

        # Revoking more is going forward: the earlier revocation is kept.
        more = zk.revoke(secrets, s.issuer.state.status_list, index + 1, revoked_head + 1)
        await post(s, owner, more)
        bits = json.loads(Registry(store).current_status(rev_reg))["revocationList"]
        assert (bits[index], bits[index + 1]) == (1, 1)

    run(tmp_path, tails_dir, body)


# -- revocation by id ----------------------------------------------------------------


async def register_insurer(w: World) -> None:
    payload = {"address": INSURER.address, "role": "verifier"}
    await w.node.submit_payload(w.consortium.keys[1], identity.REGISTER_PARTICIPANT, payload)


def test_a_member_revokes_its_own_credential_ids_once(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        issuer, other = w.consortium.keys[2], w.consortium.keys[1]
        registry = Registry(w.node.store)
        await register_insurer(w)
        for outsider in (STRANGER, INSURER):
            with pytest.raises(Unauthorized, match="not a member"):
                await w.node.submit_payload(outsider, REVOKE, {"credential": CREDENTIAL})
        # "0x  abab...": 34 characters that bytes.fromhex reads as 15 bytes.
        for bad in ("ab" * 16, "0x" + "ab" * 15, "0x" + "zz" * 16, 42, "0x  " + "ab" * 15,
                    "0X" + "ab" * 16):  # fmt: skip
            with pytest.raises(InvalidPayload, match="16 bytes"):
                await w.node.submit_payload(issuer, REVOKE, {"credential": bad})

        registry.check_not_revoked(issuer.address, CREDENTIAL)
        await w.node.submit_payload(issuer, REVOKE, {"credential": CREDENTIAL})
        with pytest.raises(CredentialRevoked, match=f"{issuer.address} revoked credential"):
            registry.check_not_revoked(issuer.address, CREDENTIAL)
        # Ids are per issuer: the same 16 bytes from another issuer are another credential.
        registry.check_not_revoked(other.address, CREDENTIAL)
        registry.check_not_revoked(issuer.address, "0x" + "cd" * 16)
        with pytest.raises(Conflict, match=f"credential {CREDENTIAL} is already revoked"):
            await w.node.submit_payload(issuer, REVOKE, {"credential": CREDENTIAL})
        # An id no revocation can be recorded under is not "not revoked".
        for unrevocable in ("0x" + "ab" * 15, "0x" + "ab" * 17, CREDENTIAL[2:], "0x  " + "ab" * 15):
            with pytest.raises(UnrevocableCredential, match="16 bytes as 0x-prefixed hex"):
                registry.check_not_revoked(other.address, unrevocable)

    on_node(tmp_path, body)


def test_a_credential_revoked_in_upper_case_hex_reads_as_revoked(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        issuer = w.consortium.keys[2]
        upper = "0x" + "AB" * 16
        await w.node.submit_payload(issuer, REVOKE, {"credential": upper})
        with pytest.raises(CredentialRevoked):
            Registry(w.node.store).check_not_revoked(issuer.address, upper)
        with pytest.raises(Conflict, match="already revoked"):
            await w.node.submit_payload(issuer, REVOKE, {"credential": upper.lower()})

    on_node(tmp_path, body)


# -- verifications -------------------------------------------------------------------


def record(request: str = REQUEST, **changes: Any) -> dict[str, Any]:
    return {"request": request, "purpose": "COVERAGE", "format": "anoncreds",
            "outcome": "accepted", **changes}  # fmt: skip


def test_a_verification_is_recorded_once_by_a_registered_verifier(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        node = w.node
        with pytest.raises(Unauthorized, match="neither a member nor a registered participant"):
            await node.submit_payload(STRANGER, VERIFIED, record())
        await register_insurer(w)
        for payload, message in (
            (record(purpose="MARKETING"), "PurposeOfUse"),
            (record(request="0x" + "11" * 31), "32 bytes"),
            (record(format="AnonCreds"), "lowercase identifier"),
            (record(outcome="accepted: hba1c 58"), "lowercase identifier"),
        ):
            with pytest.raises(InvalidPayload, match=message):
                await node.submit_payload(INSURER, VERIFIED, payload)
        assert verification(node.store, REQUEST) is None

        # A field the contract does not know is not stored, whatever it carries.
        done = await node.submit_payload(INSURER, VERIFIED, record(hba1c_x10="58"))
        entry = verification(node.store, REQUEST)
        assert entry == {"verifier": INSURER.address, "purpose": "COVERAGE",
                         "format": "anoncreds", "outcome": "accepted",
                         "index": done.index, "timestamp_ns": done.timestamp_ns}  # fmt: skip

        with pytest.raises(DuplicateVerification, match=f"request {REQUEST} was already verified"):
            await node.submit_payload(INSURER, VERIFIED, record(outcome="rejected-wrong_audience"))
        with pytest.raises(DuplicateVerification):
            await node.submit_payload(w.consortium.keys[0], VERIFIED, record())
        assert verification(node.store, REQUEST) == entry

        # Members verify without registering; a revoked participant no longer may.
        other = "0x" + "22" * 32
        await node.submit_payload(w.consortium.keys[0], VERIFIED, record(other, format="sd-jwt"))
        by_member = verification(node.store, other)
        assert by_member is not None and by_member["verifier"] == w.consortium.keys[0].address
        await node.submit_payload(w.consortium.keys[1], identity.REVOKE_PARTICIPANT,
                                  {"address": INSURER.address})  # fmt: skip
        with pytest.raises(Unauthorized, match="neither a member"):
            await node.submit_payload(INSURER, VERIFIED, record("0x" + "33" * 32))

    on_node(tmp_path, body)


def test_a_member_voted_out_records_no_verification(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        first, second, third = w.consortium.keys
        removal = {"action": "remove", "address": third.address}
        proposed = await w.node.submit_payload(first, membership.PROPOSE, removal)
        vote = {"proposal": "0x" + proposed.tx_id.hex()}
        await w.node.submit_payload(second, membership.VOTE, vote)
        with pytest.raises(Unauthorized, match="neither a member"):
            await w.node.submit_payload(third, VERIFIED, record())
        assert verification(w.node.store, REQUEST) is None

    on_node(tmp_path, body)


def test_a_verification_recorded_in_upper_case_hex_is_found_in_either_case(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> None:
        member = w.consortium.keys[0]
        upper = "0x" + "AB" * 32
        await w.node.submit_payload(member, VERIFIED, record(upper))
        entry = verification(w.node.store, upper)
        assert entry is not None and entry == verification(w.node.store, upper.lower())
        with pytest.raises(DuplicateVerification, match=f"request {upper.lower()} was already"):
            await w.node.submit_payload(member, VERIFIED, record(upper.lower()))
        for malformed in (upper[2:], upper[:-2], "0x  " + "ab" * 31):
            assert verification(w.node.store, malformed) is None

    on_node(tmp_path, body)


# -- privacy -------------------------------------------------------------------------


def _leaves(value: Any) -> Iterator[Any]:
    """Every scalar in a state value, looking inside documents stored as JSON text."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            yield from _leaves(parsed)
        else:
            yield value
    else:
        yield value


def test_the_ledger_holds_no_claim_value_after_the_insurer_case(
    tmp_path: Path, tails_dir: Path
) -> None:
    async def body(s: Scene) -> None:
        s.issue_anoncreds()
        asked = (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1"))
        signed = s.verifier.request(purpose="COVERAGE", fmt="anoncreds", now_ms=now_ms(),
                                    predicates=asked, issuers=[s.issuer.address])  # fmt: skip
        envelope = s.wallet.present(signed, s.registry, now_ms=now_ms(), tails_dir=s.tails_dir)
        await s.verifier.verify(signed, envelope, now_ms=now_ms())

        # 0 and 1 (the flags) are also every revocation bit: only the other claims can be
        # told apart, and they are the ones that would identify a patient.
        claims = {name: str(v) for name, v in s.claims().values.items() if v not in (0, 1)}
        assert {"hba1c_x10", "bmi_x10", "birthdate", "checkup_date"} <= set(claims)

        entry = verification(s.w.node.store, signed.request.id)
        assert entry is not None
        assert set(entry) == {"verifier", "purpose", "format", "outcome", "index", "timestamp_ns"}
        stored = (entry["verifier"], entry["purpose"], entry["format"], entry["outcome"])
        assert stored == (INSURER.address, "COVERAGE", "anoncreds", "accepted")
        for field in ("verifier", "purpose", "format", "outcome"):
            assert [n for n, v in claims.items() if v in str(entry[field])] == []

        written = [(ns, k, json.loads(v)) for ns, k, v in s.w.node.store.state_entries()
                   if ns.startswith("credentials.")]  # fmt: skip
        assert {ns for ns, _, _ in written} >= {"credentials.document", "credentials.status",
                                                "credentials.verified"}  # fmt: skip
        found = [(ns, k, name) for ns, k, value in written for leaf in _leaves(value)
                 for name, v in claims.items() if str(leaf) == v]  # fmt: skip
        assert found == []

    run(tmp_path, tails_dir, body)
