"""``medledger bench fhir``: the FHIR API of a local network, against its own floor.

Three node processes on the embedded orderer are founded in a temporary directory; a
hospital system is registered at hospital A as a SMART Backend Services client.

* Ingest: the system posts transaction Bundles of synthetic records for one patient to
  ``/fhir``, each sealed, stored and committed by the node (``resources_per_s``). The
  floor is the direct ingest of ``bench ingest`` (the writer and sealing workers in one
  process, no HTTP) measured in the same run; ``ratio`` is the one over the other.
* ``$everything``: a patient with ``chart`` records spread over the three vaults; the
  system, granted the patient's data, asks hospital A's node for the whole chart with a
  fresh token each time (a session keeps a chart for a minute), which lists every vault
  and opens every record through the custodians. Its p50, and the ledger transactions
  one such read added (receipts, one per custodian per 150 records).

* Bulk export: the same system exports every chart it may read (``Patient/$export``:
  the one patient above), from kick-off through polling to every NDJSON file downloaded,
  with a fresh token: ``export_resources_per_s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from jwcrypto import jwk, jwt

from medledger.access import care
from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.bench import ingest
from medledger.bench._network import UNLIMITED_REQUESTS
from medledger.bench.node import UNTHROTTLED, throwaway_passphrase
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import decrypt_keystore, encrypt_keystore
from medledger.ledger.contracts import identity
from medledger.node.api import ApprovalIn
from medledger.node.client import NodeClient
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.tokens import ASSERTION_TYPE
from medledger.node.identities import PASSPHRASE_ENV, patient_public_key, read_keystore
from medledger.node.network import INSTITUTIONS, NETWORK_ID, LocalNetwork, consecutive_free_ports
from medledger.node.uploads import upload_records
from medledger.records.categories import CATEGORIES
from medledger.records.synthetic import generate_patients

Progress = Callable[[str], None]
BUNDLE_ENTRIES = 500
IN_FLIGHT = 2
PATIENT_ALONE = {"approvers": {"patient": True}, "purposes": ["TREAT"], "max_duration_s": 86400}


def run(
    *, ingest_records: int = 5000, chart: int = 500, reads: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="medledger-bench-fhir-") as tmp, throwaway_passphrase():
        network = LocalNetwork(Path(tmp), base_port=consecutive_free_ports(3),
                               node_settings=UNTHROTTLED)  # fmt: skip
        network.found(scrypt_n=1024, settings=UNLIMITED_REQUESTS)
        say("starting three node processes (embedded orderer)")
        with network.running("embedded") as nodes:
            urls = [n.url for n in nodes]
            result = asyncio.run(_measure(network, urls, ingest_records=ingest_records,
                                          chart=chart, reads=reads, say=say))  # fmt: skip
    say(f"the floor: direct ingest of {ingest_records} records")
    floor = ingest.run(records=ingest_records)["records_per_s"]
    result["floor_direct_records_per_s"] = floor
    result["ratio"] = round(result["resources_per_s"] / floor, 3)
    return result


class _Cast:
    def __init__(self, network: LocalNetwork, urls: list[str]) -> None:
        passphrase = os.environ[PASSPHRASE_ENV]
        self.urls = urls
        self.members = [decrypt_keystore(read_keystore(network.key_path(name)), passphrase)
                        for name, _ in INSTITUTIONS]  # fmt: skip
        self.doctors = [PrivateKey.generate() for _ in urls]
        self.system = PrivateKey.generate()
        self.client_key = jwk.JWK.generate(kty="EC", crv="P-384", kid="bench")
        self.registry = ClientRegistry(network.root / "nodes" / INSTITUTIONS[0][0])
        self.registry.add(BackendClient(
            "bench-ehr", {"keys": [self.client_key.export_public(as_dict=True)]},
            encrypt_keystore(self.system, passphrase, scrypt_n=1024)))  # fmt: skip

    async def submit(self, signer: PrivateKey, tx_type: str, payload: dict[str, Any]) -> None:
        async with NodeClient(self.urls[0], signer) as client:
            await client.submit(tx_type, payload)

    async def patient(self) -> PrivateKey:
        patient = PrivateKey.generate()
        key = "0x" + patient_public_key(patient).hex()
        await self.submit(patient, identity.REGISTER_SUBJECT, {"encryption_key": key})
        for member in self.members:
            await self.submit(patient, care.ENROL, {"institution": member.address})
        return patient

    def token(self, http: httpx.Client, scope: str = "system/*.rs") -> str:
        url = self.urls[0] + "/auth/token"
        claims = {"iss": "bench-ehr", "sub": "bench-ehr", "aud": url,
                  "exp": int(time.time()) + 240, "jti": uuid.uuid4().hex}  # fmt: skip
        assertion = jwt.JWT(header={"alg": "ES384", "kid": "bench", "typ": "JWT"}, claims=claims)
        assertion.make_signed_token(self.client_key)
        form = {"grant_type": "client_credentials", "scope": scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion.serialize()}  # fmt: skip
        answer = http.post(url, data=form)
        answer.raise_for_status()
        return str(answer.json()["access_token"])


async def _measure(
    network: LocalNetwork, urls: list[str], *, ingest_records: int, chart: int, reads: int,
    say: Progress,
) -> dict[str, Any]:  # fmt: skip
    cast = _Cast(network, urls)
    say("registering staff, a hospital system and two patients")
    for member, doctor in zip(cast.members, cast.doctors, strict=True):
        await cast.submit(member, identity.REGISTER_PARTICIPANT,
                          {"address": doctor.address, "role": "doctor"})  # fmt: skip
    await cast.submit(cast.members[0], identity.REGISTER_PARTICIPANT,
                      {"address": cast.system.address, "role": "doctor"})  # fmt: skip
    written_to, charted = await cast.patient(), await cast.patient()
    for category in sorted(CATEGORIES):
        await cast.submit(charted, access.SET_POLICY,
                          {"category": category, "policy": PATIENT_ALONE})  # fmt: skip
    with httpx.Client(timeout=600) as http:
        say(f"posting {ingest_records} records as transaction Bundles")
        ingest_s = await _ingest(http, cast, written_to.address, ingest_records)
        say(f"writing a chart of {chart} records over {len(urls)} vaults")
        await _chart(cast, charted, chart)
        await _grant(cast, charted)
        say(f"reading the whole chart {reads} times, each with a fresh token")
        times, added = await _everything(http, cast, charted, reads, chart)
        say("exporting it with Patient/$export")
        export_s = _export(http, cast, chart)
    return {
        "benchmark": "fhir",
        "ingest_resources": ingest_records,
        "resources_per_s": round(ingest_records / ingest_s, 1),
        "chart_records": chart,
        "vaults": len(urls),
        "everything_p50_ms": round(statistics.median(times) * 1000, 1),
        "everything_ledger_txs": added,
        "export_resources_per_s": round(chart / export_s, 1),
        "cores": os.cpu_count(),
    }


async def _ingest(http: httpx.Client, cast: _Cast, patient: str, count: int) -> float:
    """Seconds to post ``count`` records as 500-entry transaction Bundles, two in flight,
    as a system feeding its node would: one is sealed while the other commits."""
    (history,) = generate_patients(1, seed=11, records_per_patient=count)
    resources = [_about(r, patient) for r in history.resources if r["resourceType"] != "Patient"]
    token = cast.token(http, scope="system/*.cruds")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    bodies = [
        json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources[at : at + BUNDLE_ENTRIES]]})
        for at in range(0, len(resources), BUNDLE_ENTRIES)
    ]  # fmt: skip

    queue = iter(bodies)
    async with httpx.AsyncClient(timeout=600) as client:

        async def poster() -> None:
            for body in queue:
                answer = await client.post(cast.urls[0] + "/fhir", content=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"a transaction was refused: {answer.text[:500]}")

        started = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(IN_FLIGHT)))
        return time.perf_counter() - started


def _about(resource: dict[str, Any], patient: str) -> dict[str, Any]:
    """The resource with its patient reference naming the patient as the server knows it."""
    element = next(e for e in ("subject", "patient", "beneficiary") if e in resource)
    return {**resource, element: {"reference": f"Patient/{patient}"}}


async def _chart(cast: _Cast, patient: PrivateKey, count: int) -> None:
    (history,) = generate_patients(1, seed=13, records_per_patient=count)
    share = -(-len(history.resources) // len(cast.urls))
    for i, (url, doctor) in enumerate(zip(cast.urls, cast.doctors, strict=True)):
        part = history.resources[i * share : (i + 1) * share]
        async with NodeClient(url, doctor) as client:
            sources = [(f"r{j}.json", r) for j, r in enumerate(part)]
            _, rejected = await upload_records(client, patient.address, sources)
            if rejected:
                raise RuntimeError(f"{len(rejected)} synthetic records were refused")


async def _grant(cast: _Cast, patient: PrivateKey) -> None:
    async with NodeClient(cast.urls[0], cast.system) as client:
        ask = {"patient": patient.address, "categories": sorted(CATEGORIES), "purpose": "TREAT",
               "duration_s": 3600}  # fmt: skip
        request = (await client.ask(ask)).request
    not_after = int(time.time() * 1000) + 600_000
    approval = Approval(NETWORK_ID, bytes.fromhex(request[2:]), patient.address,
                        cast.system.address, not_after)  # fmt: skip
    async with NodeClient(cast.urls[0], patient) as client:
        await client.approve(request, [ApprovalIn(**approval.signed_by(patient))])


async def _everything(
    http: httpx.Client, cast: _Cast, patient: PrivateKey, reads: int, chart: int
) -> tuple[list[float], int]:
    """Latencies of whole-chart reads, and the receipts the last one added to the ledger
    (counted in the patient's audit, which lists each receipt of each read)."""
    times, added = [], 0
    for _ in range(reads):
        token = cast.token(http)
        before = await _receipts(cast, patient)
        started = time.perf_counter()
        answer = http.get(f"{cast.urls[0]}/fhir/Patient/{patient.address}/$everything",
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        answer.raise_for_status()
        times.append(time.perf_counter() - started)
        if answer.json()["total"] != chart:
            raise RuntimeError(f"$everything found {answer.json()['total']} of {chart} records")
        added = len(await _receipts(cast, patient) - before)
    return times, added


async def _receipts(cast: _Cast, patient: PrivateKey) -> set[str]:
    async with NodeClient(cast.urls[0], patient) as client:
        audit = await client.audit(patient.address)
    return {receipt.receipt for read in audit.reads for receipt in read.receipts}


def _export(http: httpx.Client, cast: _Cast, chart: int) -> float:
    """Seconds from a bulk export's kick-off to its last file downloaded."""
    headers = {"Authorization": f"Bearer {cast.token(http)}"}
    started = time.perf_counter()
    kick_off = http.get(f"{cast.urls[0]}/fhir/Patient/$export",
                        headers={**headers, "Prefer": "respond-async"})  # fmt: skip
    if kick_off.status_code != 202:
        raise RuntimeError(f"the export was refused: {kick_off.text[:500]}")
    status_url = kick_off.headers["content-location"]
    while (status := http.get(status_url, headers=headers)).status_code == 202:
        time.sleep(0.1)
    status.raise_for_status()
    exported = sum(
        len(http.get(output["url"], headers=headers).raise_for_status().text.splitlines())
        for output in status.json()["output"]
    )
    elapsed = time.perf_counter() - started
    if exported != chart:
        raise RuntimeError(f"the export held {exported} of {chart} records")
    return elapsed
