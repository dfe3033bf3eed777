// The patient's records at this institution: listed, opened in the page with the
// patient's key (checked against what the author signed), shown as a readable card with
// the exact JSON behind a toggle; and a SMART Health Card made from them.
import { base64, openAsPatient } from './crypto.js';
import { categoryName } from './policy.js';
import { jsonForDisplay, parseRecord, renderResource } from './records-view.js';
import { call, me, session } from './session.js';
import { $, button, cell } from './ui.js';

// Download links of the card on show: an object URL holds its bytes until revoked.
let objectUrls = [];

export async function showRecords() {
  const records = await call('GET', `/v1/records?patient=${me()}`);
  const body = $('records').tBodies[0];
  body.replaceChildren();
  $('records-empty').hidden = records.length > 0;
  for (const r of records) {
    const row = body.insertRow();
    Object.assign(row.dataset, { record: r.record_id, version: r.version, author: r.author });
    cell(row, r.resource_type);
    cell(row, categoryName(r.category));
    cell(row, String(r.version));
    cell(row, r.author === me() ? 'you' : r.author, 'address');
    button(row.insertCell(), 'Open', 'open', () => openRecord(r));
  }
}

async function openRecord(r) {
  const committed = await call('GET', `/v1/records/${r.record_id}?version=${r.version}`);
  const { canonical } = await openAsPatient(session.key, committed.sealed);
  let resource;
  try {
    resource = parseRecord(canonical);
  } catch {
    resource = null;
  }
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls = [];
  $('record-title').textContent = `${r.resource_type} · ${categoryName(r.category)} · version ${r.version}`;
  $('record-card').replaceChildren(renderResource(resource, objectUrls));
  $('record-json').textContent = resource === null ? canonical : jsonForDisplay(resource);
  $('record-raw').open = false;
  $('record-detail').hidden = false;
}

// A SMART Health Card of the patient's vaccinations, issued by this institution from the
// records it wrote: the page opens them and shows them to the issuer, which checks each
// against what its vault committed; the card comes back as a QR code to show anyone.
export async function shareHealthCard() {
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
    const opened = await openAsPatient(session.key, committed.sealed);
    evidence.push({ record_id: r.record_id, version: r.version, salt: opened.salt, resource: base64(opened.bytes) });
  }
  const card = await call('POST', '/v1/credentials/issue', { format: 'health-card', evidence });
  const image = $('card-qr');
  image.src = 'data:image/svg+xml;base64,' + btoa(card.qr);
  image.dataset.text = card.qr_text;
  $('card').hidden = false;
}
