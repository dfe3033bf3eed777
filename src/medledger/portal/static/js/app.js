// The patient portal: sign in with a keystore, see records, answer requests, see reads.
// Everything the node returns is shown as text, never as markup.
import {
  approvalDigest, base64, hex, openAsPatient, openKeystore, signTransaction, verifyInclusion,
} from './crypto.js';
import { publicGet, signedFetch } from './http.js';
import { Trust } from './trust.js';

const APPROVAL_TTL_MS = 10 * 60 * 1000;
const state = { key: null, network: null, status: null, trust: null };
const $ = (id) => document.getElementById(id);

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(td, label, className, action) {
  const b = document.createElement('button');
  b.textContent = label;
  b.className = className;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await action(); } catch (error) { $('error').textContent = error.message; } finally { b.disabled = false; }
  });
  td.appendChild(b);
  return b;
}

function duration(seconds) {
  return seconds % 3600 === 0 ? `${seconds / 3600} h` : `${Math.round(seconds / 60)} min`;
}

const me = () => state.key.address;
const call = (method, path, body) => signedFetch(state.key, method, path, body);

async function signIn(event) {
  event.preventDefault();
  $('signin-status').textContent = 'Opening your keystore…';
  try {
    const document_ = JSON.parse(await $('keystore').files[0].text());
    state.key = await openKeystore(document_, $('passphrase').value);
    $('passphrase').value = '';
    state.network = (await publicGet('/v1/health')).network;
    state.status = await call('GET', '/v1/ledger/status');
    state.trust = new Trust(call);
    await state.trust.start();
  } catch (error) {
    state.key = null;
    $('signin-status').textContent = `Could not sign in: ${error.message}`;
    return;
  }
  $('signin').hidden = true;
  $('signed-in').hidden = false;
  $('who').textContent = `Signed in as ${me()} at ${state.status.name}.`;
  await refresh();
}

async function refresh() {
  $('error').textContent = '';
  let checkpoint = null;
  try {
    checkpoint = await state.trust.latest();
  } catch (error) {
    $('error').textContent = `The latest checkpoint does not verify: ${error.message}`;
  }
  await Promise.all([showRequests(checkpoint), showRecords(), showAudit(checkpoint)]);
}

function badge(kind, text) {
  const span = document.createElement('span');
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

// What the checkpoint proves of a request the node lists: the page shows the node's word
// and, beside it, whether the members' cosigned state agrees.
async function requestBadge(r, checkpoint) {
  if (checkpoint === null) return badge('pending', 'not yet in a checkpoint');
  try {
    const proven = await state.trust.proven('access.request', r.request, checkpoint);
    if (proven === null) return badge('pending', 'not yet in a checkpoint');
    if (proven.status !== r.status) return badge('pending', `at checkpoint ${checkpoint.size}: ${proven.status}`);
    return badge('proven', `✓ checkpoint ${checkpoint.size}`);
  } catch (error) {
    return badge('failed', error.message);
  }
}

async function showRequests(checkpoint) {
  const requests = await call('GET', `/v1/access/requests?patient=${me()}`);
  const body = $('requests').tBodies[0];
  body.replaceChildren();
  $('requests-empty').hidden = requests.length > 0;
  for (const r of requests) {
    const row = body.insertRow();
    row.dataset.request = r.request;
    cell(row, r.requester, 'address');
    cell(row, r.categories.join(', '));
    cell(row, r.emergency ? `${r.purpose} (break-glass)` : r.purpose, r.emergency ? 'flag' : '');
    cell(row, duration(r.duration_s));
    cell(row, r.status, 'status');
    row.insertCell().appendChild(await requestBadge(r, checkpoint));
    const actions = row.insertCell();
    if (r.status === 'pending' && !r.signers.includes(me())) {
      button(actions, 'Approve', 'approve', () => approve(r));
      button(actions, 'Deny', 'deny', () => deny(r));
    }
  }
}

async function approve(r) {
  const notAfter = Date.now() + APPROVAL_TTL_MS;
  const digest = approvalDigest(state.network, r.request, r.patient, r.requester, notAfter);
  const signature = '0x' + hex(state.key.signDigest(digest));
  await call('POST', `/v1/access/requests/${r.request}/approvals`,
    { approvals: [{ signer: me(), not_after_ms: notAfter, signature }] });
  await refresh();
}

async function deny(r) {
  const { next_nonce: nonce } = await call('GET', `/v1/ledger/nonces/${me()}`);
  const transaction = signTransaction(state.key, state.network, nonce, 'access.deny', { request: r.request });
  await call('POST', `/v1/access/requests/${r.request}/deny`, { transaction });
  await refresh();
}

async function showRecords() {
  const records = await call('GET', `/v1/records?patient=${me()}`);
  const body = $('records').tBodies[0];
  body.replaceChildren();
  $('records-empty').hidden = records.length > 0;
  for (const r of records) {
    const row = body.insertRow();
    row.dataset.record = r.record_id;
    cell(row, r.resource_type);
    cell(row, r.category);
    cell(row, String(r.version));
    cell(row, r.author, 'address');
    button(row.insertCell(), 'Open', 'open', () => openRecord(r));
  }
}

async function openRecord(r) {
  const committed = await call('GET', `/v1/records/${r.record_id}?version=${r.version}`);
  const { canonical } = await openAsPatient(state.key, committed.sealed);
  $('record-title').textContent = `${r.resource_type} · ${r.category} · version ${r.version}`;
  $('record-json').textContent = JSON.stringify(JSON.parse(canonical), null, 2);
  $('record-detail').hidden = false;
}

// A SMART Health Card of the patient's vaccinations, issued by this institution from the
// records it wrote: the page opens them and shows them to the issuer, which checks each
// against what its vault committed; the card comes back as a QR code to show anyone.
async function shareHealthCard() {
  const latest = new Map();
  for (const r of await call('GET', `/v1/records?patient=${me()}`)) {
    if (!latest.has(r.record_id) || latest.get(r.record_id).version < r.version) latest.set(r.record_id, r);
  }
  const chosen = [...latest.values()].filter((r) => ['Patient', 'Immunization'].includes(r.resource_type));
  if (!chosen.some((r) => r.resource_type === 'Patient')) {
    throw new Error('this institution holds no Patient record of yours to put on a card');
  }
  const evidence = [];
  for (const r of chosen) {
    const committed = await call('GET', `/v1/records/${r.record_id}?version=${r.version}`);
    const opened = await openAsPatient(state.key, committed.sealed);
    evidence.push({ record_id: r.record_id, version: r.version, salt: opened.salt, resource: base64(opened.bytes) });
  }
  const card = await call('POST', '/v1/credentials/issue', { format: 'health-card', evidence });
  const image = $('card-qr');
  image.src = 'data:image/svg+xml;base64,' + btoa(card.qr);
  image.dataset.text = card.qr_text;
  $('card').hidden = false;
}

async function proofBadge(read, checkpoint) {
  if (read.checkpoint === null || checkpoint === null || read.index >= checkpoint.size) {
    return ['pending', 'not yet in a checkpoint'];
  }
  const proof = await call('GET', `/v1/ledger/proofs/inclusion?index=${read.index}&size=${checkpoint.size}`);
  const included = await verifyInclusion(new TextEncoder().encode(proof.transaction), read.index,
    checkpoint.size, proof.path, checkpoint.root);
  const receipt = JSON.parse(proof.transaction);
  if (!included || receipt.type !== 'access.receipt') return ['failed', 'the receipt is not in the checkpoint'];
  return ['proven', `✓ in checkpoint ${checkpoint.size}, cosigned by ${checkpoint.signers} of ${checkpoint.trusted}`];
}

async function showAudit(checkpoint) {
  const audit = await call('GET', `/v1/audit/${me()}`);
  const body = $('audit').tBodies[0];
  body.replaceChildren();
  $('audit-empty').hidden = audit.reads.length > 0;
  for (const read of audit.reads) {
    const row = body.insertRow();
    cell(row, String(read.index));
    cell(row, read.reader, 'address');
    cell(row, read.category);
    cell(row, read.emergency ? `${read.purpose} (break-glass)` : read.purpose, read.emergency ? 'flag' : '');
    const [kind, text] = await proofBadge(read, checkpoint);
    row.insertCell().appendChild(badge(kind, text));
  }
  const notices = $('notices');
  notices.replaceChildren();
  for (const n of audit.break_glass) {
    const li = document.createElement('li');
    li.className = 'flag';
    li.textContent = `Break-glass grant to ${n.requester} for ${n.categories.join(', ')} (${n.purpose})`;
    notices.appendChild(li);
  }
}

$('signin-form').addEventListener('submit', signIn);
button($('share'), 'Show a health card of my vaccinations', 'share', shareHealthCard);

