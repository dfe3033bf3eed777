// Adding the patient's own records at this institution, as `medledger records push` does
// from the shell (node/uploads.py upload_chart): read the files, keep to the patient's
// chart what is theirs (subject-check.js), check and seal each resource in this browser
// with the patient's key as author, and have the node commit them in batches of the size
// it takes. A resource whose type and FHIR id the patient already wrote here becomes that
// record's next version; a clinician's record of the same resource is never amended, as
// the vault keeps the two accounts apart.
import { hex, openAsPatient, unhex } from './crypto.js';
import { Refused, checkResource, documentsOf, fhirRules, isObject } from './fhir-input.js';
import { NodeRefused } from './http.js';
import { checkedRecipients } from './recipients.js';
import { authorOf, headerDigest } from './record-header.js';
import { KeyWrapper, sealRecord, secureRandomBytes } from './seal.js';
import { chartOf, sortChart } from './subject-check.js';

const NO_PREVIOUS = new Uint8Array(32);
const RECORD_ID_SIZE = 16;

// The node's FHIR table (GET /v1/fhir/categories) does not change while the page is open.
let table = null;

async function fhirTable(call) {
  if (table === null) table = fhirRules(await call('GET', '/v1/fhir/categories'));
  return table;
}

// Refusals of a resource are collected; anything else stops the upload.
function collect(refused, work) {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof Refused)) throw error;
    refused.push(error);
    return [];
  }
}

// `files`: File objects. `context`: { call, key, trust, institution }. `progress(text,
// done, total)` hears how far it got. Returns { written: [{ record_id, version }],
// refused: [Refused], shared: [{ source, resource }] (institution-level, set aside),
// stopped: the node's refusal of a batch, or null }: batches before a refused one stay
// written, as each is committed whole or not at all. Throws, with nothing written, when
// the page cannot seal for this institution at all, or cannot tell whose the files are
// (subject-check.js AmbiguousChart).
export async function addRecords(files, { call, key, trust, institution }, progress = () => {}) {
  const patient = key.address;
  const recipients = await checkedRecipients(await recipientsAt(call, patient, institution), key, trust);
  const rules = await fhirTable(call);
  const refused = [];
  const documents = [];
  for (const file of files) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    for (const read of documentsOf(bytes, file.name, rules)) (read instanceof Refused ? refused : documents).push(read);
  }
  const listed = await call('GET', `/v1/records?patient=${patient}`);
  const chart = sortChart(documents, chartOf(await chartPatients(listed, call, key)), rules);
  refused.push(...chart.refused);
  const resources = chart.records.flatMap((item) =>
    collect(refused, () => [{ source: item.source, ...checkResource(item.obj, item.source, rules) }]));
  const batches = await sealAll(resources, recipients, { call, key, listed }, progress);
  const written = [];
  for (const batch of batches) {
    progress('Sending to the node…', written.length, resources.length);
    try {
      written.push(...(await call('POST', '/v1/records', { records: batch })).records);
    } catch (error) {
      if (!(error instanceof NodeRefused)) throw error;
      return { written, refused, shared: chart.shared, stopped: error.body.message };
    }
  }
  return { written, refused, shared: chart.shared, stopped: null };
}

async function recipientsAt(call, patient, institution) {
  try {
    return await call('GET', `/v1/records/recipients?patient=${patient}`);
  } catch (error) {
    if (!(error instanceof NodeRefused) || error.status !== 403) throw error;
    // A signed-in patient is refused here for one reason: the vault keeps a patient's own
    // records only at institutions they enrolled at.
    throw new Error(`You are not enrolled at ${institution}, so it keeps no records you add; nothing was written. `
      + 'Add them at an institution you are enrolled at.');
  }
}

// The chart's Patient resources (latest versions), opened with the patient's key: who
// the patient is in FHIR terms, for the chart rules. Opened, not taken from the listing:
// their ids and identifiers are what their authors signed.
async function chartPatients(listed, call, key) {
  const patients = latestBy(listed.filter((r) => r.resource_type === 'Patient'), (r) => r.record_id);
  const opened = [];
  for (const r of patients.values()) {
    const committed = await call('GET', `/v1/records/${r.record_id}?version=${r.version}`);
    opened.push(JSON.parse((await openAsPatient(key, committed.sealed)).canonical));
  }
  return opened;
}

function latestBy(rows, keyOf) {
  const latest = new Map();
  for (const r of rows) if (!latest.has(keyOf(r)) || latest.get(keyOf(r)).version < r.version) latest.set(keyOf(r), r);
  return latest;
}

const identityOf = (type, fhirId) => `${type}/${fhirId}`;

// Seal every resource, each new one as version 1 and each the patient already wrote (or
// wrote earlier in this upload) as the next version; batches the node takes: at most its
// limit, and never two versions of one record.
async function sealAll(resources, recipients, { call, key, listed }, progress) {
  const own = listed.filter((r) => r.fhir_id !== null && r.author === key.address);
  const latest = new Map();
  for (const [id, r] of latestBy(own, (r) => identityOf(r.resource_type, r.fhir_id))) latest.set(id, { ...r, listed: true });
  const wrapper = await KeyWrapper.create(recipients);
  const batches = [[]];
  for (const [i, r] of resources.entries()) {
    progress('Encrypting and signing in this browser…', i, resources.length);
    const id = r.fhirId === null ? null : identityOf(r.resourceType, r.fhirId);
    const before = id === null ? undefined : latest.get(id);
    if (before !== undefined && before.listed) await checkListed(call, before, key);
    const draft = {
      recordId: before ? unhex(before.record_id) : secureRandomBytes(RECORD_ID_SIZE),
      version: before ? before.version + 1 : 1,
      previous: before ? unhex(before.digest) : NO_PREVIOUS,
      patient: key.address,
      patientKey: recipients.patientKey,
      resourceType: r.resourceType,
      category: r.category,
    };
    const sealed = await sealRecord(draft, r.canonical, { network: recipients.network, author: key, wrapper });
    const recordId = hex(draft.recordId);
    if (id !== null) {
      latest.set(id, { record_id: recordId, version: draft.version, resource_type: r.resourceType,
        digest: '0x' + hex(headerDigest(sealed.header)), listed: false });
    }
    let batch = batches[batches.length - 1];
    if (batch.length >= recipients.maxPerWrite || batch.some((b) => b.sealed.header.recordId === '0x' + recordId)) {
      batches.push(batch = []);
    }
    batch.push({ sealed, fhir_id: r.fhirId });
  }
  return batches.filter((b) => b.length > 0);
}

// Before the patient signs a next version, the version it follows must be the one the
// node listed: signed by the patient, of this patient and type, with the listed digest
// (node/uploads.py _check_amended), and, opened with the patient's key, the resource of
// this type and FHIR id: the FHIR id is not in what the author signs, so a node could
// otherwise list another record of the patient's under it. A node cannot steer the page
// into amending a record of its choosing.
async function checkListed(call, listed, key) {
  const { sealed } = await call('GET', `/v1/records/${listed.record_id}?version=${listed.version}`);
  const header = sealed.header;
  const refused = new Error(`the node lists record ${listed.record_id} v${listed.version} other than it serves it; nothing was written`);
  const author = await authorOf(sealed);
  if (header.recordId !== '0x' + listed.record_id || header.version !== listed.version
      || '0x' + hex(headerDigest(header)) !== listed.digest || header.patient !== key.address
      || header.resourceType !== listed.resource_type || author !== key.address) {
    throw refused;
  }
  let resource;
  try {
    resource = JSON.parse((await openAsPatient(key, sealed)).canonical);
  } catch {
    throw refused;
  }
  if (!isObject(resource) || resource.resourceType !== listed.resource_type || resource.id !== listed.fhir_id) {
    throw refused;
  }
}
