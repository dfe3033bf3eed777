"""A client of a node's API that signs every request with its ledger key.

One method per route, each answering in the API's own types (node/api.py), so a
caller never spells a path or reads a field by its string name. Used by the CLI,
by readers asking other institutions' custodians, and by the load test. Only our
own errors escape: a refusal is :class:`NodeRefused` with the node's status and
reason, an unreachable node is :class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from medledger.access.contract import DENY, REQUEST, REVOKE
from medledger.access.custodian import ReleaseAsk, ReleasedShares
from medledger.access.delegation import HEADER as DELEGATION_HEADER
from medledger.access.delegation import SignedDelegation
from medledger.access.release_wire import ask_to_json, share_from_json
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput, TransportError
from medledger.ledger.tx import Transaction
from medledger.node import api
from medledger.node.signatures import new_nonce, sign_request
from medledger.records.pipeline import Incoming
from medledger.records.proof import CommittedRecord, RecordProof
from medledger.records.wire import committed_from_json, sealed_to_json

DEFAULT_LIFETIME_S = 60
# A node answers 429 with Retry-After before it records the request's nonce or acts on
# it (node/limits.py), so waiting and sending a freshly signed copy is safe for any
# request; the portal's http.js waits the same way.
MAX_RETRIES = 4
MAX_WAIT_S = 10.0


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
        delegation: SignedDelegation | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        #: Sent with every request: this node's key reads as the delegation's principal.
        self.delegation = delegation
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
        for attempt in range(MAX_RETRIES + 1):
            url, content, headers = self.signed(method, path, params, body, now_s)
            try:
                response = await self._http.request(method, url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise TransportError(f"{method} {url.path}: {type(exc).__name__}") from exc
            if response.status_code != 429 or attempt == MAX_RETRIES:
                break
            await asyncio.sleep(_retry_after(response))
        return answer(response)

    def signed(
        self, method: str, path: str, params: Mapping[str, Any] | None = None,
        body: Any = None, now_s: int | None = None,
    ) -> tuple[httpx.URL, bytes, dict[str, str]]:  # fmt: skip
        """The URL, body and headers of a request signed now with this client's key."""
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        url = httpx.URL(self.base_url + path, params=params)
        created = int(time.time()) if now_s is None else now_s
        # The delegation is signed with the rest: nobody on the way can swap or drop it.
        covered = {} if self.delegation is None else {
            DELEGATION_HEADER: self.delegation.to_header()}  # fmt: skip
        headers = sign_request(self.key, method=method, url=str(url), body=content,
                               created=created, expires=created + self.lifetime_s,
                               nonce=new_nonce(), fields=covered)  # fmt: skip
        headers.update(covered)
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

    # -- ledger ----------------------------------------------------------------

    async def health(self) -> api.Health:
        return api.Health.model_validate(await self.get("/v1/health"))

    async def status(self) -> api.Status:
        return api.Status.model_validate(await self.get("/v1/ledger/status"))

    async def next_nonce(self, address: Address) -> int:
        return api.Nonce.model_validate(await self.get(f"/v1/ledger/nonces/{address}")).next_nonce

    async def transaction(self, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A transaction of this client's key with its next nonce, signed, in wire form."""
        network = (await self.health()).network
        nonce = await self.next_nonce(self.address)
        tx = Transaction(network, self.address, nonce, tx_type, payload).sign(self.key)
        return dict(json.loads(tx.encode()))

    async def submit(self, tx_type: str, payload: dict[str, Any]) -> api.Outcome:
        """Sign a transaction with this client's key and have the node order it; the
        node answers once it is executed."""
        return api.Outcome.model_validate(
            await self.post("/v1/ledger/transactions", await self._signed_tx(tx_type, payload))
        )

    async def _signed_tx(self, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"transaction": await self.transaction(tx_type, payload)}

    # -- records ---------------------------------------------------------------

    async def recipients(self, patient: Address) -> api.Recipients:
        """Whom a new record of ``patient`` is sealed to, and how many one write may carry."""
        answer = await self.get("/v1/records/recipients", {"patient": patient})
        return api.Recipients.model_validate(answer)

    async def records(self, patient: Address, grant: str | None = None) -> list[api.RecordSummary]:
        """Every version of ``patient``'s records here that the caller may see (with
        ``grant``: that the grant covers), oldest first."""
        params = {"patient": patient} | ({"grant": grant} if grant else {})
        return [api.RecordSummary.model_validate(r) for r in await self.get("/v1/records", params)]

    async def committed_records(
        self, patient: Address, grant: str | None = None
    ) -> list[CommittedRecord]:
        """The latest version of each of ``patient``'s records here the caller may see,
        sealed and with its commitment's path: a whole chart for the custodians."""
        params = {"patient": patient} | ({"grant": grant} if grant else {})
        return [committed_from_json(r) for r in await self.get("/v1/records/committed", params)]

    async def record(
        self, record_id: str, version: int | None = None, grant: str | None = None
    ) -> CommittedRecord:
        """A sealed record version with the path of its commitment into the log."""
        answer = await self.get(f"/v1/records/{record_id}", _present(version=version, grant=grant))
        return committed_from_json(answer)

    async def record_proof(self, record_id: str, version: int | None = None) -> RecordProof:
        """A record version's proof up to the latest cosigned checkpoint."""
        answer = await self.get(f"/v1/records/{record_id}/proof", _present(version=version))
        return RecordProof.from_json(answer)

    async def write_records(self, records: Sequence[Incoming]) -> api.WriteOut:
        """Have the node check and commit records sealed here, as one batch."""
        body = {"records": [{"sealed": sealed_to_json(r.sealed), "fhir_id": r.fhir_id}
                            for r in records]}  # fmt: skip
        return api.WriteOut.model_validate(await self.post("/v1/records", body))

    # -- patients --------------------------------------------------------------

    async def patient_index_key(self) -> bytes:
        """The key this node's institution hashes patient identifiers under (its staff only)."""
        answer = api.IndexKey.model_validate(await self.get("/v1/patients/index-key"))
        return bytes.fromhex(answer.key[2:])

    async def add_patient_identifiers(self, patient: Address, digests: Sequence[bytes]) -> int:
        """Have the node index identifier digests for ``patient``; how many were new."""
        body = api.IdentifiersIn(patient=patient, digests=["0x" + d.hex() for d in digests])
        answer = await self.post("/v1/patients/identifiers", body.model_dump())
        return api.IdentifiersOut.model_validate(answer).added

    async def find_patients(self, digests: Sequence[bytes]) -> dict[bytes, api.PatientFound]:
        """The patients the node's institution indexed under any of ``digests``."""
        found: dict[bytes, api.PatientFound] = {}
        for start in range(0, len(digests), api.MAX_IDENTIFIERS):
            chunk = ["0x" + d.hex() for d in digests[start : start + api.MAX_IDENTIFIERS]]
            answer = await self.post("/v1/patients/find", api.FindIn(digests=chunk).model_dump())
            for row in answer:
                match = api.PatientFound.model_validate(row)
                found[bytes.fromhex(match.digest[2:])] = match
        return found

    # -- access ----------------------------------------------------------------

    async def ask(self, payload: dict[str, Any]) -> api.RequestState:
        """Ask for a patient's data: an ``access.request`` signed with this client's key."""
        body = await self._signed_tx(REQUEST, payload)
        return api.RequestState.model_validate(await self.post("/v1/access/requests", body))

    async def requests_of(self, patient: Address) -> list[api.RequestState]:
        """Every request made of the patient's data, newest first."""
        asked = await self.get("/v1/access/requests", {"patient": patient})
        return [api.RequestState.model_validate(r) for r in asked]

    async def access_request(self, request_id: str) -> api.RequestState:
        answer = await self.get(f"/v1/access/requests/{request_id}")
        return api.RequestState.model_validate(answer)

    async def approve(
        self, request_id: str, approvals: Sequence[api.ApprovalIn]
    ) -> api.RequestState:
        """Have the node relay approvals (EIP-712 signatures) of the request."""
        body = api.ApprovalsIn(approvals=list(approvals)).model_dump()
        answer = await self.post(f"/v1/access/requests/{request_id}/approvals", body)
        return api.RequestState.model_validate(answer)

    async def deny(self, request_id: str) -> api.RequestState:
        body = await self._signed_tx(DENY, {"request": request_id})
        answer = await self.post(f"/v1/access/requests/{request_id}/deny", body)
        return api.RequestState.model_validate(answer)

    async def grant(self, grant_id: str) -> api.GrantState:
        return api.GrantState.model_validate(await self.get(f"/v1/access/grants/{grant_id}"))

    async def revoke(self, grant_id: str) -> api.Outcome:
        body = await self._signed_tx(REVOKE, {"grant": grant_id})
        answer = await self.post(f"/v1/access/grants/{grant_id}/revoke", body)
        return api.Outcome.model_validate(answer)

    async def audit(self, patient: Address) -> api.Audit:
        """Every read of the patient's data, each with its receipts, and break-glass grants."""
        return api.Audit.model_validate(await self.get(f"/v1/audit/{patient}"))

    async def release(self, ask: ReleaseAsk) -> ReleasedShares:
        """This node's custodian's key shares of a release's records, under a grant."""
        return share_from_json(await self.post("/v1/custodian/release", ask_to_json(ask)))

    # -- credentials -----------------------------------------------------------

    async def credentials_setup(self, max_credentials: int) -> api.IssuerOut:
        body = api.SetupIn(max_credentials=max_credentials).model_dump()
        return api.IssuerOut.model_validate(await self.post("/v1/credentials/setup", body))

    async def credential_offer(self) -> api.IssuerOut:
        return api.IssuerOut.model_validate(await self.get("/v1/credentials/offer"))

    async def issue(self, asked: api.IssueIn) -> api.IssueOut:
        body = asked.model_dump(exclude_none=True)
        return api.IssueOut.model_validate(await self.post("/v1/credentials/issue", body))

    async def tails(self, name: str) -> bytes:
        """A revocation registry's tails file, as the issuer published it."""
        return await self.download(f"/v1/credentials/tails/{name}")


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _retry_after(response: httpx.Response) -> float:
    try:
        wait = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        wait = 1.0
    return min(MAX_WAIT_S, max(1.0, wait))


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

    async def release(self, ask: ReleaseAsk) -> ReleasedShares:
        share = await self.client.release(ask)
        if share.custodian != self._address:
            raise InvalidInput(f"custodian {self._address} answered as {share.custodian}")
        return share



