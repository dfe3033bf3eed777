// A decrypted FHIR resource as a card a patient can read: what it is, when, its value,
// its status and its attachments. Real records are messy (fields missing, strings where
// objects belong, types this page has never heard of), so every read here tolerates any
// JSON and shows what it can; the exact JSON stays one click away. Nothing from a record
// reaches the page as markup.
import { isObject, parseJson } from './fhir-input.js';
import { el } from './ui.js';

const list = (v) => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);

// A scalar as text, a decimal as written; anything else is not shown rather than shown as
// "[object Object]".
function text(v) {
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (JSON.isRawJSON?.(v)) return v.rawJSON;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return '';
}

// A CodeableConcept's human text: its text, else the first coding's display, else the
// first code there is (better an opaque code than nothing).
export function conceptText(concept) {
  if (typeof concept === 'string') return concept.trim();
  if (!isObject(concept)) return '';
  if (text(concept.text)) return text(concept.text);
  const codings = list(concept.coding).filter(isObject);
  const shown = codings.find((c) => text(c.display));
  if (shown) return text(shown.display);
  const coded = codings.find((c) => text(c.code));
  return coded ? text(coded.code) : '';
}

const concepts = (v) => list(v).map(conceptText).filter(Boolean).join(', ');

// FHIR dates as written, made easier to read; a value of another shape is shown as it is.
export function dateText(v) {
  const s = text(v);
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(s);
  if (!m) return s;
  return `${m[1]} ${m[2]}${m[3] === 'Z' ? ' UTC' : m[3] ? ` (${m[3]})` : ''}`;
}

function periodText(p) {
  if (!isObject(p)) return dateText(p);
  const start = dateText(p.start);
  const end = dateText(p.end);
  if (start && end) return `${start} to ${end}`;
  return start ? `from ${start}` : end ? `until ${end}` : '';
}

export function quantityText(q) {
  if (!isObject(q)) return text(q);
  const value = text(q.value);
  const unit = text(q.unit) || text(q.code);
  if (!value) return unit;
  return `${text(q.comparator)}${value}${unit ? ` ${unit}` : ''}`;
}

function rangeText(r) {
  if (!isObject(r)) return '';
  const low = quantityText(r.low);
  const high = quantityText(r.high);
  const span = low && high ? `${low} to ${high}` : low ? `at least ${low}` : high ? `at most ${high}` : '';
  return [span, text(r.text)].filter(Boolean).join('; ');
}

// An Observation's (or component's) value[x], whichever kind it is.
export function valueText(holder) {
  if (!isObject(holder)) return '';
  if ('valueQuantity' in holder) return quantityText(holder.valueQuantity);
  if ('valueCodeableConcept' in holder) return conceptText(holder.valueCodeableConcept);
  if ('valueRange' in holder) return rangeText(holder.valueRange);
  if ('valueRatio' in holder && isObject(holder.valueRatio)) {
    return `${quantityText(holder.valueRatio.numerator)} / ${quantityText(holder.valueRatio.denominator)}`;
  }
  if ('valuePeriod' in holder) return periodText(holder.valuePeriod);
  if ('valueDateTime' in holder) return dateText(holder.valueDateTime);
  if ('valueSampledData' in holder) return 'a series of samples (see the JSON)';
  for (const key of ['valueString', 'valueInteger', 'valueBoolean', 'valueTime']) {
    if (key in holder) return text(holder[key]);
  }
  if ('dataAbsentReason' in holder) return `no value: ${conceptText(holder.dataAbsentReason)}`;
  return '';
}

function humanName(name) {
  if (!isObject(name)) return text(name);
  return text(name.text) || [...list(name.given).map(text), text(name.family)].filter(Boolean).join(' ');
}

const medication = (r) => conceptText(r.medicationCodeableConcept) || text(isObject(r.medicationReference) ? r.medicationReference.display : '');

// What the record is about, by resource type; an unknown type tries the usual places.
const SUBJECT = {
  Immunization: (r) => conceptText(r.vaccineCode),
  MedicationRequest: medication,
  MedicationStatement: medication,
  MedicationAdministration: medication,
  MedicationDispense: medication,
  DocumentReference: (r) => text(r.description) || conceptText(r.type),
  Media: (r) => conceptText(r.type) || conceptText(r.modality),
  Encounter: (r) => concepts(list(r.type).slice(0, 1)) || (isObject(r.class) ? text(r.class.display) || text(r.class.code) : ''),
  Patient: (r) => humanName(list(r.name)[0]),
  Practitioner: (r) => humanName(list(r.name)[0]),
  CarePlan: (r) => text(r.title) || concepts(list(r.category).slice(0, 1)),
  Goal: (r) => conceptText(r.description),
};
const genericSubject = (r) => conceptText(r.code) || concepts(list(r.type).slice(0, 1)) || text(r.title) || text(r.name);

const DATES = [
  ['effectiveDateTime', 'Effective'], ['effectiveInstant', 'Effective'], ['effectivePeriod', 'Effective'],
  ['issued', 'Issued'], ['occurrenceDateTime', 'Date'], ['occurrencePeriod', 'Date'],
  ['performedDateTime', 'Performed'], ['performedPeriod', 'Performed'], ['onsetDateTime', 'Onset'],
  ['recordedDate', 'Recorded'], ['authoredOn', 'Ordered'], ['date', 'Date'], ['period', 'Period'],
  ['birthDate', 'Born'],
];

// The patient-facing facts of a resource, as [label, text] rows; empty ones are dropped.
function facts(r) {
  const rows = [];
  const add = (label, value) => { if (value) rows.push([label, value]); };
  for (const [key, label] of DATES) add(label, key.endsWith('Period') || key === 'period' ? periodText(r[key]) : dateText(r[key]));
  if (r.resourceType === 'Observation') {
    add('Value', valueText(r));
    add('Interpretation', concepts(r.interpretation));
    add('Normal range', list(r.referenceRange).map(rangeText).filter(Boolean).join('; '));
  }
  add('Status', text(r.status) || conceptText(r.clinicalStatus));
  if (r.resourceType === 'Condition') add('Verification', conceptText(r.verificationStatus));
  if (r.resourceType === 'AllergyIntolerance') {
    add('Criticality', text(r.criticality));
    add('Reactions', list(r.reaction).flatMap((x) => (isObject(x) ? list(x.manifestation) : [])).map(conceptText).filter(Boolean).join(', '));
  }
  if (r.resourceType === 'Patient') add('Gender', text(r.gender));
  add('Dosage', list(r.dosageInstruction || r.dosage).map((d) => (isObject(d) ? text(d.text) : '')).filter(Boolean).join('; '));
  add('Conclusion', text(r.conclusion));
  add('By', list(r.performer).map((p) => (isObject(p) ? text(p.display) || (isObject(p.actor) ? text(p.actor.display) : '') : '')).filter(Boolean).join(', '));
  add('Note', list(r.note).map((n) => (isObject(n) ? text(n.text) : '')).filter(Boolean).join(' '));
  return rows;
}

function components(r) {
  return list(r.component).filter(isObject).map((c) => [conceptText(c.code) || 'component', valueText(c) || 'no value']);
}

// Every Attachment in a resource, wherever its type keeps it (a report's presentedForm,
// a document's content, a Media's content, a Patient's photo, an extension...). FHIR
// requires a contentType beside data (att-1), so that is how one is recognised.
const isAttachment = (v) => isObject(v) && (typeof v.contentType === 'string' || (typeof v.data === 'string' && ('title' in v || 'size' in v || 'url' in v)));

// Where the common types keep theirs: found there even with nothing but a URL.
function placedAttachments(r) {
  if (r.resourceType === 'DiagnosticReport') return list(r.presentedForm);
  if (r.resourceType === 'DocumentReference') return list(r.content).map((c) => (isObject(c) ? c.attachment : null));
  if (r.resourceType === 'Media') return list(r.content);
  return [];
}

export function findAttachments(resource) {
  const found = isObject(resource) ? placedAttachments(resource).filter(isObject) : [];
  const walk = (v) => {
    if (Array.isArray(v)) { v.forEach(walk); return; }
    if (!isObject(v)) return;
    if (isAttachment(v) && !found.includes(v)) found.push(v);
    Object.values(v).forEach(walk);
  };
  walk(resource);
  return found;
}

// An opened record's canonical JSON as the card and the JSON view read it: numbers as
// written (a result of 7.20 is shown 7.20, not 7.2), where this browser can tell how a
// number was written, and as it reads them where it cannot.
export function parseRecord(canonical) {
  return typeof JSON.rawJSON === 'function' ? parseJson(canonical) : JSON.parse(canonical);
}

// The resource's JSON for the "show JSON" view, exactly as stored (decimals as written,
// when read by parseRecord) but for attachments' base64 data, which is a download on the
// card and would only flood the page here.
export function jsonForDisplay(resource) {
  const attachments = new Set(findAttachments(resource));
  return JSON.stringify(resource, function hideData(key, value) {
    if (key === 'data' && typeof value === 'string' && attachments.has(this)) {
      const bytes = decodeBase64(value);
      return `(${bytes ? bytesText(bytes.length) : 'invalid'} base64 data, not shown: download it from the card)`;
    }
    return value;
  }, 2);
}

function bytesText(n) {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function decodeBase64(data) {
  try {
    return Uint8Array.from(atob(data.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

function fileName(title, contentType) {
  const base = (title || 'attachment').replace(/[^A-Za-z0-9._ -]+/g, '_').trim().slice(0, 80) || 'attachment';
  const extension = { 'application/pdf': '.pdf', 'text/plain': '.txt', 'image/png': '.png', 'image/jpeg': '.jpg' }[contentType];
  return extension && !/\.[A-Za-z0-9]{1,5}$/.test(base) ? base + extension : base;
}

// One attachment: its title, type and size, and its data as a download, never as text on
// the page. The blob is typed application/octet-stream whatever the record claims, so the
// browser saves it rather than rendering it in the portal's origin.
function attachmentView(a, urls) {
  const item = el('li', 'attachment');
  if (!isObject(a)) { item.textContent = 'an attachment this page cannot read (see the JSON)'; return item; }
  const title = text(a.title) || 'untitled attachment';
  const type = text(a.contentType) || 'unknown type';
  item.appendChild(el('strong', 'title', title));
  const data = typeof a.data === 'string' ? decodeBase64(a.data) : null;
  const size = data ? data.length : typeof a.size === 'number' ? a.size : null;
  item.append(` · ${type}${size === null ? '' : ` · ${bytesText(size)}`}`);
  if (text(a.creation)) item.append(` · ${dateText(a.creation)}`);
  if (data) {
    const url = URL.createObjectURL(new Blob([data], { type: 'application/octet-stream' }));
    urls.push(url);
    const link = el('a', 'download', 'Download');
    link.href = url;
    link.download = fileName(text(a.title), text(a.contentType));
    item.append(' ', link);
  } else if (typeof a.data === 'string') {
    item.append(el('span', 'error', ' · its data is not valid base64'));
  }
  if (text(a.url)) item.append(el('div', 'muted', `Stored elsewhere: ${text(a.url)}`));
  return item;
}

function definitionList(rows, className) {
  const dl = el('dl', className);
  for (const [label, value] of rows) dl.append(el('dt', null, label), el('dd', null, value));
  return dl;
}

// The card of one resource; object URLs made for its downloads are pushed onto `urls`,
// for the caller to revoke when the card goes.
export function renderResource(resource, urls = []) {
  const card = el('article', 'fhir-card');
  if (!isObject(resource)) {
    card.appendChild(el('p', 'muted', 'This record is not a FHIR resource this page can read; see the JSON.'));
    return card;
  }
  const type = text(resource.resourceType) || 'Resource';
  const known = type in SUBJECT || ['Observation', 'DiagnosticReport', 'Condition', 'Procedure', 'AllergyIntolerance', 'Medication'].includes(type);
  card.dataset.resourceType = type;
  card.classList.add(known ? 'known' : 'generic');
  const subject = (SUBJECT[type] || genericSubject)(resource);
  const heading = el('h4', 'card-title');
  heading.append(el('span', 'resource-type', type));
  if (subject) heading.append(': ', el('span', 'code', subject));
  card.appendChild(heading);
  const rows = facts(resource);
  if (rows.length) card.appendChild(definitionList(rows, 'facts'));
  const parts = components(resource);
  if (parts.length) {
    card.appendChild(el('p', 'label', 'Components'));
    card.appendChild(definitionList(parts, 'components'));
  }
  const attachments = findAttachments(resource);
  if (attachments.length) {
    const ul = el('ul', 'attachments');
    for (const a of attachments) ul.appendChild(attachmentView(a, urls));
    card.appendChild(ul);
  }
  if (!known) card.appendChild(el('p', 'muted', `No summary for ${type} records here; "show JSON" has everything it holds.`));
  return card;
}
