"""A client of a node's API that signs every request with its ledger key.

Used by the CLI, by readers asking other institutions' custodians, and by the
load test. Only our own errors escape: a refusal is :class:`NodeRefused` with the
node's status and reason, an unreachable node is :class:`TransportError`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import httpx

from medledger.access.custodian import ReleaseAsk, ReleasedShare
from medledger.access.release_wire import ask_to_json, share_from_json
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput, TransportError, UsageError
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts.membership import MEMBERS_KEY
from medledger.ledger.errors import CheckpointError
from medledger.ledger.light import TrustedConsortium
from medledger.ledger.machine import CONFIG_KEY, NETWORK_NS
from medledger.ledger.state_proofs import StateProof
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.node.identities import PATIENT_LABEL, encryption_key
from medledger.node.signatures import new_nonce, sign_request
from medledger.records.errors import InvalidRecord
from medledger.records.importer import plan_pass
from medledger.records.pipeline import Job, SealingContext, seal_for_upload
from medledger.records.sealed import Custodians, open_salted_as_patient
from medledger.records.wire import committed_from_json, sealed_to_json

DEFAULT_LIFETIME_S = 60


class NodeRefused(InvalidInput):
    """The node answered with an error; ``status``, ``error`` and ``code`` say which."""

    def __init__(self, status: int, error: str, message: str, code: str | None = None) -> None:
        self.status, self.error, self.code = status, error, code
        super().__init__(f"{status} {error}: {message}")


class NodeClient:
    def __init__(
        self,
        base_url: str,
        key: PrivateKey,
        *,
        timeout_s: float = 30.0,
        lifetime_s: int = DEFAULT_LIFETIME_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.lifetime_s = lifetime_s
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    @property
    def address(self) -> Address:
        return self.key.address

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def transaction(self, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A transaction of this client's key with its next nonce, signed, in wire form."""
        network = int((await self.get("/v1/health"))["network"])
        nonce = int((await self.get(f"/v1/ledger/nonces/{self.address}"))["next_nonce"])
        tx = Transaction(network, self.address, nonce, tx_type, payload).sign(self.key)
        return dict(json.loads(tx.encode()))

    async def submit(self, tx_type: str, payload: dict[str, Any]) -> Any:
        """Sign a transaction with this client's key and have the node order it; the
        node answers once it is executed."""
        transaction = await self.transaction(tx_type, payload)
        return await self.post("/v1/ledger/transactions", {"transaction": transaction})

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body=body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        now_s: int | None = None,
    ) -> Any:
        url, content, headers = self.signed(method, path, params, body, now_s)
        try:
            response = await self._http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {url.path}: {type(exc).__name__}") from exc
        return answer(response)

    def signed(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        body: Any = None, now_s: int | None = None,
    ) -> tuple[httpx.URL, bytes, dict[str, str]]:  # fmt: skip
        """The URL, body and headers of a request signed now with this client's key."""
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = httpx.URL(self.base_url + path, params=params)
        created = int(time.time()) if now_s is None else now_s
        headers = sign_request(self.key, method=method, url=str(url), body=content,
                               created=created, expires=created + self.lifetime_s,
                               nonce=new_nonce())  # fmt: skip
        if body is not None:
            headers["Content-Type"] = "application/json"
        return url, content, headers

    async def download(self, path: str) -> bytes:
        url, _, headers = self.signed("GET", path)
        try:
            response = await self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {url.path}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            answer(response)
        return response.content


class ProvenState:
    """Ledger state read through a node and believed only when proven (ledger/light.py):
    each entry's proof is checked against a checkpoint cosigned by members this client
    trusts. For a Registry away from any node (a wallet, a verifier's office) and the
    CLI: blocking, as the Registry's reads are.

    ``genesis`` is the network's genesis as the client got it out of band; without it,
    the client takes the genesis the node serves, the first time (trust on first use).
    """

    def __init__(self, client: NodeClient, genesis: SignedTransaction | None = None) -> None:
        self._client = client
        self._http = httpx.Client(timeout=30.0)
        self._trusted = None if genesis is None else TrustedConsortium.from_genesis(genesis)
        self._fetched_at = 0.0

    def get(self, ns: str, key: str) -> Any | None:
        """The entry's JSON value as of the latest checkpoint (None if absent, or not for
        this client to see)."""
        checkpoint = self.checkpoint()
        params = {"key": key, "size": checkpoint.head.size}
        found = self._get(f"/v1/ledger/state/{ns}", params)
        if found is None:
            return None
        return self.trusted.proven(StateProof.from_json(found), checkpoint)

    @property
    def trusted(self) -> TrustedConsortium:
        if self._trusted is None:
            wire = self._get("/v1/ledger/genesis", {})
            if wire is None:
                raise TransportError("the node serves no genesis")
            genesis = SignedTransaction.decode(str(wire["genesis"]).encode())
            self._trusted = TrustedConsortium.from_genesis(genesis)
        return self._trusted

    def checkpoint(self) -> Checkpoint:
        """A checkpoint covering the node's log as it stands, accepted by the members
        trusted: what the client reads is no older than what it asked after, nor than any
        checkpoint it accepted before (a node cannot take it back in time). Asked for
        again after a second."""
        trusted = self.trusted
        previous = trusted.latest
        if previous is not None and time.monotonic() - self._fetched_at < 1.0:
            return previous
        url, body, headers = self._client.signed("POST", "/v1/ledger/checkpoint", body={})
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {url.path}: {type(exc).__name__}") from exc
        checkpoint = Checkpoint.from_json(answer(response))
        trusted.accept(checkpoint)
        if previous is None or checkpoint.head.size > previous.head.size:
            size = {"size": checkpoint.head.size}
            members = self._get(f"/v1/ledger/state/{NETWORK_NS}", {"key": MEMBERS_KEY, **size})
            config = self._get(f"/v1/ledger/state/{NETWORK_NS}", {"key": CONFIG_KEY, **size})
            if members is None or config is None:
                raise CheckpointError("the node does not prove the member list")
            trusted.learn_members(StateProof.from_json(members), StateProof.from_json(config))
        self._fetched_at = time.monotonic()
        return trusted.latest or checkpoint

    def _get(self, path: str, params: Mapping[str, Any]) -> Any | None:
        url, _, headers = self._client.signed("GET", path, params)
        try:
            response = self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {url.path}: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        return answer(response)

    def close(self) -> None:
        self._http.close()


def answer(response: httpx.Response) -> Any:
    """The JSON body of a success; the node's refusal as an exception otherwise."""
    if response.status_code < 400:
        return response.json()
    try:
        problem = response.json()
        error, message = str(problem["error"]), str(problem["message"])
        code = problem.get("code")
    except (ValueError, KeyError, TypeError):
        error, message, code = "HTTPError", response.reason_phrase, None
    if response.status_code in (502, 503, 504):
        raise TransportError(f"{response.status_code} {error}: {message}")
    raise NodeRefused(response.status_code, error, message, code)


class RemoteCustodian:
    """A custodian at another node, asked over HTTP (access/reader.py's CustodianEndpoint)."""

    def __init__(self, client: NodeClient, address: Address) -> None:
        self.client = client
        self._address = address

    @property
    def address(self) -> Address:
        return self._address

    async def release(self, ask: ReleaseAsk) -> ReleasedShare:
        share = share_from_json(await self.client.post("/v1/custodian/release", ask_to_json(ask)))
        if share.custodian != self._address:
            raise InvalidInput(f"custodian {self._address} answered as {share.custodian}")
        return share



class _Listed(NamedTuple):
    """A version the node lists: what an amendment of it needs (importer.Latest)."""

    record_id: bytes
    version: int
    resource_type: str
    digest: bytes


async def _listed_versions(client: NodeClient, patient: Address) -> dict[tuple[str, str], _Listed]:
    """The patient's newest versions at this node by type and FHIR id, as far as the
    author may list them; an author who may list none writes new records, and the node
    judges whether they may write at all."""
    try:
        rows = await client.get("/v1/records", {"patient": patient})
    except NodeRefused as refused:
        if refused.status != 403:
            raise
        return {}
    latest: dict[tuple[str, str], _Listed] = {}
    own_account = client.address == patient
    for row in rows:
        # A patient's own records and the clinicians' are amended only by their own kind.
        if row["fhir_id"] is not None and (row["author"] == patient) == own_account:
            latest[row["resource_type"], row["fhir_id"]] = _Listed(
                bytes.fromhex(row["record_id"]), row["version"], row["resource_type"],
                bytes.fromhex(row["digest"][2:]),
            )  # fmt: skip
    return latest


async def _check_amended(client: NodeClient, job: Job) -> None:
    """Before the author signs a next version, check that the version it follows is the
    one the node listed: signed, of this patient and type, with this digest. A node
    cannot steer an author into amending a record of its choosing."""
    answer = await client.get(f"/v1/records/{job.record_id.hex()}", {"version": job.version - 1})
    sealed = committed_from_json(answer).sealed
    sealed.check()
    header = sealed.header
    if (header.record_id, header.version, header.digest, header.patient) != (
        job.record_id, job.version - 1, job.previous, job.patient
    ) or (job.resource_type is not None and header.resource_type != job.resource_type):
        listed = f"{job.record_id.hex()} v{job.version - 1}"
        raise InvalidInput(f"the node lists record {listed} other than it serves it")


async def upload_records(
    client: NodeClient, patient: Address, sources: Sequence[tuple[str, object]],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], list[InvalidRecord]]:  # fmt: skip
    """Seal FHIR resources on this machine with the client's key as author and have the
    node commit them, as many to a batch as the node says it takes; returns what was
    written and what failed validation. A resource whose type and FHIR id the patient has
    at this node becomes its next version, as an import does. ``progress`` hears how many
    resources are done so far."""
    r = await client.get("/v1/records/recipients", {"patient": patient})
    custodians = Custodians(
        int(r["threshold"]),
        tuple((c["address"], bytes.fromhex(c["key"][2:])) for c in r["custodians"]),
    )
    context = SealingContext(int(r["network"]), client.key.to_bytes(), custodians)
    key = bytes.fromhex(r["patient_key"][2:])
    latest = await _listed_versions(client, patient)
    batch = int(r["max_records_per_write"])
    written: list[dict[str, Any]] = []
    rejected: list[InvalidRecord] = []
    checked: set[tuple[bytes, int]] = set()
    for start in range(0, len(sources), batch):
        remaining: list[tuple[str, object] | InvalidRecord] = list(
            sources[start : start + batch]
        )
        while remaining:
            jobs, remaining = plan_pass(lambda kind, fhir_id: latest.get((kind, fhir_id)),
                                        patient, key, remaining)  # fmt: skip
            rejected += [job for job in jobs if isinstance(job, InvalidRecord)]
            planned = [j for j in jobs if isinstance(j, Job)]
            for job in planned:
                if job.version > 1 and (job.record_id, job.version) not in checked:
                    await _check_amended(client, job)
                    checked.add((job.record_id, job.version))
            ready = []
            for sealed in seal_for_upload(context, planned):
                if isinstance(sealed, InvalidRecord):
                    rejected.append(sealed)
                    continue
                header = sealed.sealed.header
                if sealed.fhir_id is not None:
                    latest[header.resource_type, sealed.fhir_id] = _Listed(
                        header.record_id, header.version, header.resource_type, header.digest
                    )
                ready.append({"sealed": sealed_to_json(sealed.sealed), "fhir_id": sealed.fhir_id})
            if ready:
                written += (await client.post("/v1/records", {"records": ready}))["records"]
        if progress is not None:
            progress(min(start + batch, len(sources)))
    return written, rejected


class RemoteLedger:
    """A node's ledger as a verifier elsewhere sees it (ledger/port.Ledger): the
    credentials state to read, and transactions signed here to submit."""

    def __init__(self, client: NodeClient, network_id: int) -> None:
        self.client = client
        self.network_id = network_id
        self.store = ProvenState(client)

    async def submit_payload(self, key: PrivateKey, tx_type: str, payload: dict[str, Any]) -> Any:
        if key.address != self.client.address:
            raise UsageError("a remote ledger submits for its client's own key only")
        return await self.client.submit(tx_type, payload)

    def close(self) -> None:
        self.store.close()


async def gather_evidence(
    client: NodeClient, resource_types: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The client's records at the node that its staff wrote (latest versions, of
    ``resource_types`` if given), opened with the patient's key: what an issuer checks
    (credentials/evidence.py)."""
    own = encryption_key(client.key, PATIENT_LABEL)
    latest: dict[str, dict[str, Any]] = {}
    for row in await client.get("/v1/records", {"patient": client.address}):
        if resource_types is not None and row["resource_type"] not in resource_types:
            continue
        if row["author"] == client.address:
            continue  # the patient's own account is no issuer's evidence
        if row["record_id"] not in latest or latest[row["record_id"]]["version"] < row["version"]:
            latest[row["record_id"]] = row
    evidence = []
    for row in latest.values():
        fetched = await client.get(f"/v1/records/{row['record_id']}", {"version": row["version"]})
        salt, canonical = open_salted_as_patient(committed_from_json(fetched).sealed, own)
        evidence.append({"record_id": row["record_id"], "version": row["version"],
                         "salt": "0x" + salt.hex(),
                         "resource": base64.b64encode(canonical).decode()})  # fmt: skip
    return evidence
