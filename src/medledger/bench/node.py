"""``medledger bench node``: a bounded load test of one node's API over loopback.

A local network of three node processes on the embedded orderer is founded in a
temporary directory; a doctor at hospital A writes records for patients, and
asks for access to their labs. Then, from this process, a bounded asyncio
client keeps ``concurrency`` signed requests in flight against hospital A's node,
each signed before the clock starts and sent over a kept-alive connection:
``reads`` record fetches by the patients (authenticated, ciphertext and batch
path), then ``approvals`` patient approvals the node relays to the ledger, each
answered once its grant is executed. Failed requests are counted, not hidden. The floor is
the same client's rate of unauthenticated ``/v1/health`` calls in the same run:
what the HTTP stack alone allows on this machine now.

The nodes' per-key rate limits are set far above anything the run sends (the
doctor's setup alone makes three requests per access request, far beyond what a
clinic's defaults allow one key), so the figures measure the API, not the limit;
the limiter still runs on every request.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from medledger.access import care
from medledger.access.approval import Approval
from medledger.bench._network import UNLIMITED_REQUESTS
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import TransportError
from medledger.ledger.contracts import identity
from medledger.node.client import NodeClient
from medledger.node.identities import PASSPHRASE_ENV, patient_public_key, read_keystore
from medledger.node.network import NETWORK_ID, LocalNetwork, consecutive_free_ports
from medledger.node.signatures import new_nonce, sign_request
from medledger.node.uploads import upload_records
from medledger.records.synthetic import generate_patients

Progress = Callable[[str], None]
PATIENTS = 20
# Requests are signed before the clock starts; the node accepts at most 300 s.
SIGNED_FOR_S = 240
# Node settings of the measured network: no signing key here is ever throttled.
UNTHROTTLED = {"rate_limit_per_s": 1e9, "rate_limit_burst": 1_000_000_000}


def run(
    *, reads: int = 2000, approvals: int = 400, concurrency: int = 16,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="medledger-bench-node-") as tmp, throwaway_passphrase():
        network = LocalNetwork(
            Path(tmp), base_port=consecutive_free_ports(3), node_settings=UNTHROTTLED
        )
        network.found(scrypt_n=1024, settings=UNLIMITED_REQUESTS)
        say("starting three node processes (embedded orderer)")
        with network.running("embedded") as nodes:
            url = nodes[0].url
            member = decrypt_keystore(read_keystore(network.key_path("hospital-a")),
                                      os.environ[PASSPHRASE_ENV])  # fmt: skip
            return asyncio.run(
                _measure(url, member, reads=reads, approvals=approvals,
                         concurrency=concurrency, say=say)
            )  # fmt: skip


async def _measure(
    url: str, member: PrivateKey, *, reads: int, approvals: int, concurrency: int, say: Progress
) -> dict[str, Any]:
    doctor = PrivateKey.generate()
    patients = [PrivateKey.generate() for _ in range(PATIENTS)]
    say(f"registering a doctor and {PATIENTS} patients")
    await _submit(url, member, identity.REGISTER_PARTICIPANT,
                  {"address": doctor.address, "role": "doctor"})  # fmt: skip
    for patient in patients:
        payload = {"encryption_key": "0x" + patient_public_key(patient).hex()}
        await _submit(url, patient, identity.REGISTER_SUBJECT, payload)
        await _submit(url, patient, care.ENROL, {"institution": member.address})
    say("writing records, sealed on the doctor's side")
    records: list[tuple[PrivateKey, str]] = []
    histories = generate_patients(PATIENTS, seed=7, records_per_patient=10)
    async with NodeClient(url, doctor) as client:
        for patient, history in zip(patients, histories, strict=True):
            sources = [
                (f"r{i}.json", r) for i, r in enumerate(history.resources)
            ]
            written, _ = await upload_records(client, patient.address, sources)
            records += [(patient, w.record_id) for w in written]
    say(f"asking for access {approvals} times")
    pending = []
    for i in range(approvals):
        patient = patients[i % PATIENTS]
        ask = {"patient": patient.address, "categories": ["labs"], "purpose": "TREAT",
               "duration_s": 3600}  # fmt: skip
        async with NodeClient(url, doctor) as client:
            pending.append((patient, (await client.ask(ask)).request))

    target = httpx.URL(url)
    say(f"signing {reads} reads and {approvals} approvals ahead of the clock")
    read_requests = [
        _prepare(target, p, "GET", f"/v1/records/{rid}")
        for p, rid in (records[i % len(records)] for i in range(reads))
    ]
    not_after = int(time.time() * 1000) + 600_000
    approve_requests = [
        _prepare(target, p, "POST", f"/v1/access/requests/{rid}/approvals", json.dumps(
            {"approvals": [Approval(NETWORK_ID, bytes.fromhex(rid[2:]), p.address,
                                    doctor.address, not_after).signed_by(p)]}).encode())
        for p, rid in pending
    ]  # fmt: skip
    health = [_plain(target, "/v1/health")] * reads
    _, health_wall, health_errors = await _load(target, health, concurrency)
    if health_errors:
        raise TransportError(f"{health_errors} of {reads} health probes failed")
    say(f"{reads} record reads, {concurrency} in flight")
    read_times, read_wall, read_errors = await _load(target, read_requests, concurrency)
    say(f"{approvals} approvals relayed and granted, {concurrency} in flight")
    approve_times, approve_wall, approve_errors = await _load(target, approve_requests, concurrency)
    server = await _server_means(url)
    health_rate = reads / health_wall
    return {
        "benchmark": "node",
        "concurrency": concurrency,
        "reads": reads,
        "reads_per_s": round(reads / read_wall, 1),
        "read_p50_ms": _ms(statistics.median(read_times)),
        "read_p99_ms": _ms(_p99(read_times)),
        "approvals": approvals,
        "approvals_per_s": round(approvals / approve_wall, 1),
        "approval_p50_ms": _ms(statistics.median(approve_times)),
        "approval_p99_ms": _ms(_p99(approve_times)),
        "errors": read_errors + approve_errors,
        "server_read_ms": server.get(("GET", "/v1/records/{record_id}")),
        "server_approval_ms": server.get(("POST", "/v1/access/requests/{request_id}/approvals")),
        "floor_health_per_s": round(health_rate, 1),
        "reads_per_floor": round(reads / read_wall / health_rate, 3),
        "cores": os.cpu_count(),
    }


async def _submit(url: str, signer: PrivateKey, tx_type: str, payload: dict[str, Any]) -> None:
    async with NodeClient(url, signer) as client:
        await client.submit(tx_type, payload)


def _prepare(
    target: httpx.URL, key: PrivateKey, method: str, path: str, body: bytes = b""
) -> bytes:
    """A whole HTTP/1.1 request, signed now and valid for a few minutes."""
    now = int(time.time())
    url = f"http://{target.host}:{target.port}{path}"
    headers = sign_request(key, method=method, url=url, body=body, created=now,
                           expires=now + SIGNED_FOR_S, nonce=new_nonce())  # fmt: skip
    if body:
        headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return _plain(target, path, method, headers) + body


def _plain(
    target: httpx.URL, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _load(
    target: httpx.URL, requests: Sequence[bytes], concurrency: int
) -> tuple[list[float], float, int]:
    """Send every request over ``concurrency`` kept-alive connections, one in flight on
    each: the latencies of the 2xx answers, the wall time, and how many failed.

    A few lines of HTTP/1.1 over asyncio streams rather than a client library: the
    load generator shares the machine with the node and must cost it little.
    """
    times: list[float] = []
    failed = 0
    queue = iter(requests)

    async def connection() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(target.host, target.port)
        try:
            for raw in queue:
                started = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, raw)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    failed += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(target.host, target.port)
                    continue
                if status < 400:
                    times.append(time.perf_counter() - started)
                else:
                    failed += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return times, time.perf_counter() - started, failed


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _server_means(url: str) -> dict[tuple[str, str], float]:
    """Mean time the node spent per request, by method and route, from its own metrics:
    what a request costs the server, whatever the client adds."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "medledger_http_request_seconds":
            continue
        for sample in family.samples:
            key = (sample.labels["method"], sample.labels["route"])
            if sample.name.endswith("_sum"):
                sums[key] = sample.value
            elif sample.name.endswith("_count"):
                counts[key] = sample.value
    return {key: _ms(sums[key] / counts[key]) for key in sums if counts.get(key)}


def _p99(samples: list[float]) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * 0.99))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@contextmanager
def throwaway_passphrase() -> Iterator[None]:
    # The throwaway network's keystores: a fresh passphrase, restored afterwards.
    previous = os.environ.get(PASSPHRASE_ENV)
    os.environ[PASSPHRASE_ENV] = secrets.token_hex(16)
    try:
        yield
    finally:
        if previous is None:
            del os.environ[PASSPHRASE_ENV]
        else:
            os.environ[PASSPHRASE_ENV] = previous
