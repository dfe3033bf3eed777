"""Attack table for the FHIR features of SMART App Launch, owner reads, bulk export and
NDJSON import, over three real node servers (127.0.0.1), with the cast of
tests/node/test_fhir_api.py: hospital B's system (client ``ehr-b``, reading as EHR_B, who
holds a grant on PATIENT), PATIENT (enrolled at A and B), OTHER (another patient), and
GUARDIAN, a patient PATIENT names as her guardian for one row.

Who attacks: a malicious public app, someone holding a stolen code or request id, an
outsider flooding the authorization endpoint, a patient (or a guardian) reaching past her
own chart, a system reaching another's exports. Each test is an attack and the answer it
must get; the rows that held before this table was written guard against regressions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import UsageError
from medledger.node.fhir import tokens as tokens_module
from medledger.node.fhir.apps import AppRegistry, PublicApp
from medledger.node.fhir.authorization import Authorizations, DecisionRefused, LaunchLimits
from medledger.node.fhir.charts import Charts, ServedChart
from medledger.node.fhir.clients import ClientRegistry
from medledger.node.fhir.export import EXPORT_DIR, ExportLimits, Exports
from medledger.node.fhir.pkce import s256
from medledger.node.fhir.tokens import Session, Tokens
from medledger.node.identities import PASSPHRASE_ENV
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.node.test_fhir_api import (
    EHR_B,
    OTHER,
    PASSPHRASE,
    PATIENT,
    SCENE,
    WRITE,
    _fhir,
    _get,
    _glucose,
    _set_up,
    _token,
    _vault_size,
)
from tests.node.test_fhir_export_pieces import (
    MEMBER,
    PATIENTS,
    _Charts,
    _request,
    _session,
)
from tests.node.test_fhir_export_pieces import _finished as _job_finished

GUARDIAN = key("fhir-launch-attack:guardian")
APP, OTHER_APP = "chart-viewer", "other-viewer"
CALLBACK, OTHER_CALLBACK = "http://127.0.0.1:9/cb", "http://127.0.0.1:9/other"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
SET_GUARDIANS = "access.set_guardians"
#: Stands for an expiry an hour past the one the request offered.
LATER = -1


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        with running_network(tmp_path_factory.mktemp("fhir-launch-attacks")) as network:
            asyncio.run(_set_up(network))
            asyncio.run(network.register_patient(GUARDIAN))
            for node in network.nodes.values():
                apps = AppRegistry(node.service.settings.data_dir)
                apps.add(PublicApp(APP, (CALLBACK,), "Chart Viewer"))
                apps.add(PublicApp(OTHER_APP, (OTHER_CALLBACK,), "Other Viewer"))
            yield network


@dataclasses.dataclass(frozen=True)
class Launch:
    """An authorization request begun at a node, as its consent page sees it."""

    base: str
    request_id: str
    verifier: str
    asked: dict[str, Any]

    def delegation(self, **changes: Any) -> Delegation:
        d = self.asked["delegation"]
        offered = Delegation(d["network_id"], d["delegate"], d["app"], d["types"],
                             d["not_after_ms"])  # fmt: skip
        return dataclasses.replace(offered, **changes)

    def decide(self, signer: PrivateKey, **changes: Any) -> httpx.Response:
        signed = SignedDelegation.sign(self.delegation(**changes), signer)
        body = {"request": self.request_id, "delegation": signed.to_json()}
        return httpx.post(f"{self.base}/auth/authorize/decision", json=body)


def _authorize(base: str, verifier: str, **changes: str) -> httpx.Response:
    asked = {"response_type": "code", "client_id": APP, "redirect_uri": CALLBACK,
             "scope": "patient/*.rs", "state": "st-1", "aud": base + "/fhir",
             "code_challenge": s256(verifier), "code_challenge_method": "S256",
             **changes}  # fmt: skip
    return httpx.get(f"{base}/auth/authorize?{urlencode(asked)}", follow_redirects=False)


def _begin(net: Network, node: str = "hospital-b", **changes: str) -> Launch:
    base, verifier = net.nodes[node].url, secrets.token_urlsafe(48)
    answer = _authorize(base, verifier, **changes)
    assert answer.status_code == 303, answer.text
    request_id = _query(answer.headers["location"])["request"]
    asked = httpx.get(f"{base}/auth/authorize/requests/{request_id}")
    assert asked.status_code == 200, asked.text
    return Launch(base, request_id, verifier, asked.json())


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _code(launch: Launch, signer: PrivateKey) -> str:
    decided = launch.decide(signer)
    assert decided.status_code == 200, decided.text
    return _query(decided.json()["redirect"])["code"]


def _exchange(launch: Launch, code: str, **changes: str) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "client_id": APP, "code_verifier": launch.verifier, **changes}  # fmt: skip
    return httpx.post(launch.base + "/auth/token", data=form)


def _launched(net: Network, person: PrivateKey, scope: str = "patient/*.rs") -> str:
    launch = _begin(net, scope=scope)
    answer = _exchange(launch, _code(launch, person))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


# A stolen code, a code presented by another app, a replayed request id.


@pytest.mark.parametrize(
    "presented",
    [{"client_id": OTHER_APP}, {"redirect_uri": OTHER_CALLBACK},
     {"code_verifier": secrets.token_urlsafe(48)}, {"code_verifier": ""}],
    ids=["by another app", "to another redirect URI", "with a guessed verifier",
         "without a verifier"],
)  # fmt: skip
def test_a_stolen_code_gets_nothing_and_is_spent(net: Network, presented: dict[str, str]) -> None:
    """Whoever holds the code but not all of the app's request gets invalid_grant, and
    the code is spent: the app itself cannot use it after (no guessing the verifier)."""
    launch = _begin(net)
    code = _code(launch, PATIENT)
    refused = _exchange(launch, code, **presented)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    again = _exchange(launch, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_request_is_answered_once(net: Network) -> None:
    """A request id seen in a history or a log cannot be answered again, not even by
    someone else's signature, nor denied after it was answered."""
    launch = _begin(net)
    _code(launch, PATIENT)
    assert launch.decide(OTHER).status_code == 404
    denied = httpx.post(f"{launch.base}/auth/authorize/decision",
                        json={"request": launch.request_id})  # fmt: skip
    assert denied.status_code == 404


@pytest.mark.parametrize(
    ("signer", "changes", "scope"),
    [(PATIENT, {"app": OTHER_APP}, "patient/*.rs"),
     (PATIENT, {"resource_types": "AuditEvent,Observation"}, "patient/Observation.rs"),
     (PATIENT, {"delegate": OTHER.address}, "patient/*.rs"),
     (PATIENT, {"not_after_ms": LATER}, "patient/*.rs"),
     (EHR_B, {}, "patient/*.rs"),
     (PATIENT, {}, "user/*.rs")],
    ids=["for another app", "for more types", "to another node", "for longer",
         "a clinician's for a patient's launch", "a patient's for a clinician's launch"],
)  # fmt: skip
def test_a_signature_that_does_not_answer_the_request_gets_no_code(
    net: Network, signer: PrivateKey, changes: dict[str, Any], scope: str
) -> None:
    """The consent page's request names exactly the delegation it wants signed; the
    node refuses anything else, and who signed must fit the launch's context."""
    launch = _begin(net, scope=scope)
    if changes.get("not_after_ms") == LATER:
        changes = {"not_after_ms": launch.delegation().not_after_ms + 3_600_000}
    refused = launch.decide(signer, **changes)
    assert refused.status_code == 422, refused.text
    assert "code" not in refused.text


@pytest.mark.parametrize(
    "redirect_uri",
    [CALLBACK + "/x", CALLBACK + "?next=https://evil.example", "http://127.0.0.1:9/cb#x",
     "http://127.0.0.1:9@evil.example/cb", "HTTP://127.0.0.1:9/cb", "http://127.0.0.1:10/cb",
     "javascript:alert(1)"],
)  # fmt: skip
def test_no_redirect_uri_but_a_registered_one_is_ever_redirected_to(
    net: Network, redirect_uri: str
) -> None:
    """Open redirect: a URI that is not one registered, whole, gets a page and no
    Location, however close it comes."""
    answer = _authorize(net.nodes["hospital-b"].url, "v" * 43, redirect_uri=redirect_uri)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert answer.headers["content-security-policy"] == "default-src 'none'"


@pytest.mark.parametrize(
    "redirect_uri",
    ["https://chart.example@evil.example/cb", "https://evil.example\\@chart.example/cb",
     "https://chart.example/c b", "https://chart.example/cb\n"],
    ids=["user information", "a backslash", "a blank", "a line break"],
)  # fmt: skip
def test_an_app_cannot_register_a_redirect_uri_that_reads_two_ways(redirect_uri: str) -> None:
    """A redirect URI that the consent page would show as one origin while a browser goes
    to another (``\\`` is ``/`` to a browser, not to urlsplit) is refused at registration."""
    with pytest.raises(UsageError, match="redirect URI"):
        PublicApp("sly-app", (redirect_uri,), "Sly App")


def test_markup_in_what_the_node_echoes_stays_text(net: Network) -> None:
    """Script injection through state goes back to the app only URL-encoded; a client id
    of markup is told on the error page as escaped text under a CSP that runs nothing."""
    base = net.nodes["hospital-b"].url
    script = "<script>alert(1)</script>"
    back = _authorize(base, "v" * 43, state=script, scope="system/*.rs")
    assert back.status_code == 303 and "<" not in back.headers["location"]
    assert _query(back.headers["location"])["state"] == script
    page = _authorize(base, "v" * 43, client_id=script)
    assert page.status_code == 400 and script not in page.text


def test_the_consent_page_cannot_be_framed_or_run_injected_script(net: Network) -> None:
    page = httpx.get(net.nodes["hospital-b"].url + "/portal/authorize.html")
    assert page.status_code == 200
    directives = page.headers["content-security-policy"].split(";")
    policy = dict(d.strip().split(" ", 1) for d in directives)
    assert policy["frame-ancestors"] == "'none'" and policy["form-action"] == "'none'"
    assert "unsafe" not in policy["script-src"] and policy["trusted-types"] == "'none'"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"  # the request id stays here


# Flooding the unauthenticated launch endpoints: one address must not push out the
# requests and codes of everyone else (the tables are bounded at LaunchLimits.max_kept).


def _flood(base: str, make: Any) -> int:
    """Begin (and maybe answer) requests until the node refuses; how many it took."""
    limits = LaunchLimits()
    with httpx.Client(base_url=base) as client:
        for sent in range(limits.max_kept + 1):
            if not make(client):
                return sent
    return limits.max_kept + 1


def _flood_requests(base: str) -> Any:
    challenge = s256("v" * 43)
    asked = {"response_type": "code", "client_id": APP, "redirect_uri": CALLBACK,
             "scope": "patient/*.rs", "state": "flood", "aud": base + "/fhir",
             "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip

    def begin(client: httpx.Client) -> str | None:
        answer = client.get("/auth/authorize", params=asked)
        location = answer.headers["location"]
        return None if "error=" in location else _query(location)["request"]

    return begin


def _flood_codes(base: str) -> Any:
    begin = _flood_requests(base)

    def code(client: httpx.Client) -> bool:
        request_id = begin(client)
        if request_id is None:
            return False
        d = client.get(f"/auth/authorize/requests/{request_id}").json()["delegation"]
        delegation = Delegation(d["network_id"], d["delegate"], d["app"], d["types"],
                                d["not_after_ms"])  # fmt: skip
        signed = SignedDelegation.sign(delegation, OTHER).to_json()
        answer = client.post("/auth/authorize/decision",
                             json={"request": request_id, "delegation": signed})  # fmt: skip
        return answer.status_code == 200

    return code


@pytest.mark.parametrize(
    ("node", "flood"),
    [("hospital-a", _flood_requests), ("insurer", _flood_codes)],
    ids=["requests nobody answers", "codes nobody exchanges"],
)  # fmt: skip
def test_one_address_cannot_flood_out_others_launches(net: Network, node: str, flood: Any) -> None:
    """An outsider begins a thousand requests, or a registered patient mints a thousand
    codes, from one address: the node refuses past LaunchLimits.per_client, and a
    patient's launch under way goes through."""
    base = net.nodes[node].url
    launch = _begin(net, node)
    code = _code(launch, PATIENT) if flood is _flood_codes else None
    sent = _flood(base, flood(base))
    if code is None:
        assert httpx.get(f"{base}/auth/authorize/requests/{launch.request_id}").status_code == 200
    else:
        assert _exchange(launch, code).status_code == 200
    assert sent < LaunchLimits().per_client


def test_one_user_of_a_public_app_cannot_push_out_its_other_users(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered patient launches the same public app over and over (begin, decide and
    exchange at once, which the bound per address does not stop) until the token table
    is full: her own oldest tokens go, never another user's of the same app. Before,
    the app holding the most tokens gave up its oldest, so the flood evicted everyone
    who used it (the table is 10,000 tokens; 30 here, which is the same attack)."""
    monkeypatch.setattr(tokens_module, "_MAX_SESSIONS", 30)
    victim = _launched(net, GUARDIAN)
    for _ in range(2 * tokens_module._MAX_SESSIONS):
        _launched(net, OTHER)
    _fhir(_get(net, "/Observation", victim, patient=GUARDIAN.address))


def test_an_address_past_its_bound_answers_no_request_begun_elsewhere(net: Network) -> None:
    """The bound holds for codes too when the flood answers requests begun at other
    addresses: the address answering past its bound gets no code."""
    node = net.nodes["hospital-b"]
    auth = Authorizations(AppRegistry(node.service.settings.data_dir), member=node.member.address,
                          network_id=3131, fhir_base=node.url + "/fhir",
                          limits=LaunchLimits(per_client=1))  # fmt: skip
    asked = {"response_type": "code", "client_id": APP, "redirect_uri": CALLBACK,
             "scope": "patient/*.rs", "state": "s", "aud": node.url + "/fhir",
             "code_challenge": s256("v" * 43), "code_challenge_method": "S256"}  # fmt: skip
    auth.begin(asked, client="flooder")
    elsewhere = auth.begin(asked, client="elsewhere")
    signed = SignedDelegation.sign(elsewhere.delegation, OTHER)
    with pytest.raises(DecisionRefused, match="too many"):
        auth.decide(elsewhere.request_id, signed, node.service.node.store, client="flooder")
    assert "code=" in auth.decide(elsewhere.request_id, signed, node.service.node.store,
                                  client="elsewhere")  # fmt: skip


# A patient's token, a guardian's token: her chart and her trail only, while she says so.


def test_a_patient_s_token_reads_no_other_patient(net: Network) -> None:
    """OTHER launches an app for herself and names PATIENT: no chart, no record by its
    id, no provenance, no trail."""
    token = _launched(net, OTHER)
    bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
    assert bundle["total"] == 0 and "entry" not in bundle
    lab = SCENE.records_b["lab3.json"]
    _fhir(_get(net, f"/Observation/{lab}", token), 404)
    _fhir(_get(net, f"/Provenance/{lab}-1", token), 404)
    _fhir(_get(net, "/AuditEvent", token, patient=PATIENT.address), 403)
    _fhir(_get(net, f"/AuditEvent/{PATIENT.address[2:].lower()}-{'0' * 22}", token), 403)


def test_a_removed_guardian_reads_nothing_more(net: Network) -> None:
    """A guardian's app reads the patient's chart and trail while she names him (which the
    consent page of a patient's launch says: its delegation speaks for every patient
    whose guardian signs it); once she removes him, the same token (and its kept chart)
    shows nothing of hers."""
    node = "hospital-a"
    asyncio.run(net.submit(node, PATIENT, SET_GUARDIANS, {"guardians": [GUARDIAN.address]}))
    try:
        asks = _begin(net).asked["asks"]
        assert "do the same for every patient who named you their guardian" in asks
        token = _launched(net, GUARDIAN)
        bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
        assert bundle["total"] > 0
        _fhir(_get(net, "/AuditEvent", token, patient=PATIENT.address))
    finally:
        asyncio.run(net.submit(node, PATIENT, SET_GUARDIANS, {"guardians": []}))
    bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
    assert bundle["total"] == 0
    _fhir(_get(net, "/AuditEvent", token, patient=PATIENT.address), 403)


def _import(net: Network, token: str, body: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+ndjson"}
    return httpx.post(net.nodes["hospital-b"].url + "/fhir/$import", content=body,
                      headers=headers, timeout=60)  # fmt: skip


def test_a_launched_app_never_writes_or_imports(net: Network) -> None:
    token = _launched(net, PATIENT)
    before = _vault_size(net)
    line = json.dumps(_glucose(40, f"Patient/{PATIENT.address}"))
    imported = _import(net, token, line + "\n")
    _fhir(imported, 403)
    assert _vault_size(net) == before


def test_an_import_with_one_bad_line_writes_nothing(net: Network) -> None:
    """A line for a patient the system may not write for (OTHER is not in B's care)
    refuses the whole import, by its line, and the good line before it is not kept."""
    token = _token(net, scope=WRITE)
    before = _vault_size(net)
    lines = [_glucose(41, f"Patient/{PATIENT.address}"), _glucose(42, f"Patient/{OTHER.address}")]
    body = "".join(json.dumps(line) + "\n" for line in lines)
    imported = _import(net, token, body)
    assert imported.status_code in (403, 422), imported.text
    assert _vault_size(net) == before


# Bulk export: another's jobs and files, names that climb out, and the disk.


def _kick_off(net: Network, token: str) -> str:
    answer = httpx.get(net.nodes["hospital-b"].url + "/fhir/Patient/$export",
                       headers={"Authorization": f"Bearer {token}", **ASYNC})  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.headers["content-location"]


def _finished(status_url: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(status_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        if answer.status_code != 202:
            assert answer.status_code == 200, answer.text
            return dict(answer.json())
        assert time.monotonic() < deadline, "the export did not finish in a minute"
        time.sleep(0.1)


def test_another_principal_reads_no_export_and_names_climb_nowhere(net: Network) -> None:
    """The patient's own app (another principal and app) finds no job of EHR_B's system;
    the system itself reaches no file outside its job's, however it spells the name."""
    token = _token(net)
    status_url = _kick_off(net, token)
    manifest = _finished(status_url, token)
    assert manifest["output"]
    theirs = _launched(net, PATIENT)
    headers = {"Authorization": f"Bearer {theirs}"}
    assert httpx.get(status_url, headers=headers).status_code == 404
    assert httpx.get(manifest["output"][0]["url"], headers=headers).status_code == 404
    assert httpx.delete(status_url, headers=headers).status_code == 404
    own = {"Authorization": f"Bearer {token}"}
    names = ("..%2F..%2Ffhir-apps.json", "..%2Ffhir-apps.json", "%2E%2E", "Observation-9.ndjson")
    for name in names:
        assert httpx.get(f"{status_url}/{name}", headers=own).status_code == 404


def test_exports_of_kept_charts_cannot_fill_the_disk(net: Network) -> None:
    """Exporting over and over costs a system nothing while its charts are kept in
    memory, and every export's files were kept an hour: a system keeps the files of at
    most ExportLimits.kept_per_principal finished exports, its oldest going first."""
    token = _token(net)
    root = net.nodes["hospital-b"].service.settings.data_dir / EXPORT_DIR
    kept = ExportLimits(1, 1, 1).kept_per_principal
    started = [_kick_off(net, token)]
    for _ in range(kept + 2):
        _finished(started[-1], token)
        started.append(_kick_off(net, token))
    _finished(started[-1], token)
    deadline = time.monotonic() + 5
    while len(list(root.iterdir())) > kept and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(root.iterdir())) <= kept
    oldest = httpx.get(started[0], headers={"Authorization": f"Bearer {token}"})
    assert oldest.status_code == 404


class _Counted(_Charts):
    def __init__(self) -> None:
        super().__init__()
        self.read: list[Address] = []

    async def chart(self, session: Session, patient: Address) -> ServedChart:
        self.read.append(patient)
        return await super().chart(session, patient)


def test_an_export_stops_reading_once_its_token_is_revoked(tmp_path: Path) -> None:
    """A code presented twice revokes the token the first presentation got (RFC 6749
    10.5), as stolen; an export begun with it must not go on reading charts, leaving
    receipts in the app's name, until its delegation ends an hour later. In process: a
    revocation between two charts is not a moment real nodes hold still for."""

    async def scenario() -> None:
        charts = _Counted()
        charts.gate.clear()
        exports = Exports(tmp_path, cast(Charts, charts), ExportLimits(1024, 60, 1))
        tokens, session = Tokens(ClientRegistry(tmp_path), MEMBER.address, 3131), _session()
        token = tokens.issue(session)
        job = exports.start(session, _request(), PATIENTS)
        await asyncio.sleep(0.05)  # the first chart is being read
        tokens.revoke(token)
        charts.gate.set()
        await _job_finished(exports, session, job.id)
        assert charts.read == PATIENTS[:1]
        (errors,) = exports.manifest(job, "https://node/fhir/_export")["error"]
        issues = (tmp_path / EXPORT_DIR / job.id / "errors-1.ndjson").read_text().splitlines()
        assert errors["count"] == len(PATIENTS) - 1 and all("revoked" in i for i in issues)
        await exports.close()

    asyncio.run(scenario())
