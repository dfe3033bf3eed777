// Whose chart the resources a patient adds go in: the rules of records/chart.py, applied
// in this page before anything is signed, so that a file picked by mistake (a family
// member's results, another patient's export, a server's answer to a search) is refused
// here as `records push` refuses it. They guard against mistakes, not against the
// patient: what the patient adds is their own account and reads as theirs.
//
// The rules are chart.py's, step for step; its lists (the institution-level resource
// types, the Bundle types that are no chart) are the node's (fhirRules), never copied here.
// * A file holding a Bundle that is no chart is refused whole.
// * Institution-level resources are set aside, not sealed: they belong to no one patient.
//   A Device is one unless it names a patient (an implant).
// * A chart holds one Patient resource. Who its patient is, in the files' terms: the
//   Patient the chart holds; else the files' one Patient; else the one patient their
//   references name. Files that name several, for a chart that holds none, are refused
//   whole: the page offers no `--source-patient` to say which.
// * A resource whose subject, patient or beneficiary (its own, or a contained
//   resource's) names another patient, or one no rule ties to this chart's, is refused.
//
// Where an import asks the institution's patient index which identifiers are this
// patient's, the page has none to ask: an identifier (of a contained Patient, a
// conditional or an identifier-only reference) is this patient's only if one of the
// chart's Patient records the page opened, or the chart's Patient among the added files,
// holds it. Nor can the page know an identifier the index holds for another patient.
import { Refused, isObject, resourceLabel } from './fhir-input.js';

// The elements by which R4 resources name the person they are about.
const ABOUT = ['subject', 'patient', 'beneficiary'];
const FHIR_ID = '[A-Za-z0-9\\-.]{1,64}';
// A literal reference, relative or absolute, with an optional version.
const LITERAL = new RegExp(`(?:^|/)([A-Z][A-Za-z]{1,63})/(${FHIR_ID})(?:/_history/${FHIR_ID})?$`);
const CONDITIONAL = /^Patient\?identifier=([^&|]*)\|([^&]+)$/;

// chart.py's words, so that the page and `records push` explain a refusal alike.
const ANOTHER = "names another patient than this chart's";
const NOT_SHOWN = "names a contained Patient that no identifier ties to this chart's patient";
const UNKNOWN_IDENTIFIER = "names a patient by an identifier not known as this chart's patient's";
const UNRESOLVED = 'is no reference this import can resolve';
const NO_CONTAINED = 'names a contained resource it does not hold';
const NO_ENTRY = 'names a Bundle entry its file does not hold';

const isPatient = (obj) => isObject(obj) && obj.resourceType === 'Patient';

// The files name several patients, the chart holds no Patient record, and the page has
// no way to be told which is the patient's: nothing is sealed.
export class AmbiguousChart extends Error {
  constructor(candidates) {
    const named = candidates.slice(0, 6).join(', ') + (candidates.length > 6 ? ` and ${candidates.length - 6} more` : '');
    super(`The files name ${candidates.length} patients (${named}) and nothing here says which one is you, `
      + 'so nothing was written. Add your own Patient record on its own first.');
    this.candidates = candidates;
  }
}

// An Identifier element as a key, (system, value), the system empty when it has none; null
// without a value.
function identifier(item) {
  const system = item.system === undefined ? '' : item.system;
  return typeof system === 'string' && typeof item.value === 'string' && item.value !== ''
    ? pair(system, item.value) : null;
}

// Two strings as one key of a Set or Map.
const pair = (a, b) => JSON.stringify([a, b]);

const identifiersOf = (value) =>
  (Array.isArray(value) ? value : []).filter(isObject).map(identifier).filter((i) => i !== null);

// What the page knows of the chart before an upload (chart.py's Chart): its Patient
// records, as opened with the patient's key. Their identifiers stand in for the index's.
export function chartOf(patients) {
  const opened = patients.filter(isObject);
  return {
    patientIds: new Set(opened.map((p) => p.id).filter((id) => typeof id === 'string')),
    hasPatient: opened.length > 0,
    ours: new Set(opened.flatMap((p) => identifiersOf(p.identifier))),
  };
}

// Sort the documents read (fhir-input.js documentsOf) for the chart: { records: [{ source,
// obj }], shared: [{ source, resource }], refused: [Refused] }. Throws AmbiguousChart.
export function sortChart(documents, chart, rules) {
  const result = { records: [], shared: [], refused: [] };
  const charts = [];
  for (const document of documents) {
    const other = document.bundles.find(([, type]) => rules.nonChartBundles.has(type));
    if (other === undefined) charts.push(document);
    else result.refused.push(new Refused(document.origin, other[0], 'type', `a ${other[1]} Bundle is not a chart`));
  }
  const patients = new Map(charts.flatMap((d) => d.entries).filter((e) => isPatient(e.obj)).map((e) => [e, patientOf(e)]));
  const anchor = anchorOf(charts, [...patients.values()], chart);
  const judge = new Judge(anchor, [...patients.values()], charts);
  for (const { origin, entries } of charts) {
    for (const entry of entries) {
      let refusal;
      if (patients.has(entry)) {
        refusal = judgePatient(patients.get(entry), anchor, chart);
      } else if (isShared(entry.obj, rules)) {
        result.shared.push({ source: entry.source, resource: resourceLabel(entry.obj.resourceType, entry.obj) });
        continue;
      } else {
        refusal = judge.resource(origin, entry);
      }
      if (refusal === null) result.records.push({ source: entry.source, obj: entry.obj });
      else result.refused.push(refusal);
    }
  }
  return result;
}

function isShared(obj, rules) {
  return isObject(obj) && (rules.shared.has(obj.resourceType)
    // A Device that names a patient is theirs (an implant); any other is equipment.
    || (obj.resourceType === 'Device' && !Object.hasOwn(obj, 'patient')));
}

function patientOf(entry) {
  const fhirId = typeof entry.obj.id === 'string' ? entry.obj.id : null;
  return {
    entry,
    fhirId,
    fullUrl: entry.fullUrl,
    identifiers: identifiersOf(entry.obj.identifier),
    // What makes two Patient entries one resource: its id, else the entry itself.
    key: fhirId !== null ? `id:${fhirId}` : `at:${entry.source}`,
    label: fhirId !== null ? `Patient/${fhirId}` : entry.source,
  };
}

// Who this chart's patient is, in the files' terms.
class Anchor {
  constructor(ids, urls, ours, resource) {
    this.ids = ids;
    this.urls = urls;
    this.ours = ours;
    // The key of the files' Patient resource that is the chart's, if any.
    this.resource = resource;
  }

  isPatient(patient) {
    return (patient.fhirId !== null && this.ids.has(patient.fhirId))
      || (patient.fullUrl !== null && this.urls.has(patient.fullUrl))
      || patient.identifiers.some((i) => this.ours.has(i));
  }
}

function anchorOf(documents, patients, chart) {
  const ids = new Set(chart.patientIds);
  const urls = new Set();
  // By key, in the order first seen, each the last entry of its key (chart.py's dict).
  const distinct = new Map(patients.map((p) => [p.key, p]));
  let chosen = null;
  if (chart.patientIds.size === 0) {
    if (distinct.size > 1) {
      // Those with an id first: the names a person can tell apart.
      const ordered = [...distinct.values()].sort((a, b) => (a.fhirId === null) - (b.fhirId === null));
      throw new AmbiguousChart(ordered.map((p) => p.label));
    }
    if (distinct.size === 1) {
      [chosen] = distinct.values();
    } else {
      const implied = [...new Set(namedIds(documents))].sort();
      if (implied.length > 1) throw new AmbiguousChart(implied.map((i) => `Patient/${i}`));
      implied.forEach((i) => ids.add(i));
    }
  }
  const ours = new Set(chart.ours);
  // The chosen Patient resource, and the files' versions of the chart's own, tie their
  // ids, fullUrls and identifiers to the chart's patient.
  for (const tied of distinct.values()) {
    if (tied === chosen || (tied.fhirId !== null && ids.has(tied.fhirId)) || (tied.fullUrl !== null && urls.has(tied.fullUrl))) {
      if (tied.fhirId !== null) ids.add(tied.fhirId);
      if (tied.fullUrl !== null) urls.add(tied.fullUrl);
      tied.identifiers.forEach((i) => ours.add(i));
    }
  }
  return new Anchor(ids, urls, ours, chosen === null ? null : chosen.key);
}

// The Patient ids the files' literal references name.
function* namedIds(documents) {
  for (const { entries } of documents) {
    for (const { obj } of entries) {
      if (!isObject(obj) || isPatient(obj)) continue;
      for (const resource of [obj, ...containedAt(obj).map(([, c]) => c)]) {
        for (const [, ref] of about(resource)) {
          const match = typeof ref.reference === 'string' ? LITERAL.exec(ref.reference) : null;
          if (match !== null && match[1] === 'Patient') yield match[2];
        }
      }
    }
  }
}

function judgePatient(patient, anchor, chart) {
  const { source, obj } = patient.entry;
  const label = resourceLabel('Patient', obj);
  if (!anchor.isPatient(patient)) return new Refused(source, label, '', "is another patient than this chart's");
  // The chart's own Patient resource, or its next version: nothing else.
  const holds = chart.hasPatient || chart.patientIds.size > 0;
  const held = patient.fhirId !== null && chart.patientIds.has(patient.fhirId);
  if (!held && (holds || patient.key !== anchor.resource)) {
    return new Refused(source, label, '', 'is a second Patient resource: a chart holds one');
  }
  return null;
}

// Whether each resource is about the chart's patient.
class Judge {
  constructor(anchor, patients, documents) {
    this.anchor = anchor;
    // A fullUrl names an entry of its own document only.
    this.byUrl = new Map(documents.flatMap(({ origin, entries }) =>
      entries.filter((e) => e.fullUrl !== null).map((e) => [pair(origin, e.fullUrl), e.obj])));
    this.byId = new Map(patients.filter((p) => p.fhirId !== null).map((p) => [p.fhirId, p]));
    this.byObject = new Map(patients.map((p) => [p.entry.obj, p]));
  }

  // Why a resource is not this chart's (a Refused), or null.
  resource(origin, { source, obj }) {
    if (!isObject(obj)) return null; // checkResource refuses it, with its reason
    const label = resourceLabel(typeof obj.resourceType === 'string' ? obj.resourceType : 'Resource', obj);
    for (const [prefix, resource] of [['', obj], ...containedAt(obj)]) {
      if (prefix && isPatient(resource)) continue; // a contained Patient is judged where it is named
      for (const [path, ref] of about(resource)) {
        const problem = this.reference(origin, obj, ref);
        if (problem !== null) return new Refused(source, label, prefix + path + problem[0], problem[1]);
      }
    }
    return null;
  }

  // Why a reference does not name the chart's patient, [sub-path, problem], or null if it
  // does or names no patient.
  reference(origin, container, ref) {
    const tied = isObject(ref.identifier) ? identifier(ref.identifier) : null;
    if (typeof ref.reference === 'string') return this.literal(origin, container, ref.reference);
    // A display alone, or an identifier of another kind of thing, names no patient.
    if (tied === null || (ref.type === undefined ? 'Patient' : ref.type) !== 'Patient') return null;
    return this.anchor.ours.has(tied) ? null : ['.identifier', UNKNOWN_IDENTIFIER];
  }

  literal(origin, container, reference) {
    if (reference.startsWith('#')) {
      const local = reference.slice(1);
      const target = containedAt(container).map(([, c]) => c).find((c) => c.id === local);
      if (target === undefined) return reference === '#' ? null : ['.reference', NO_CONTAINED];
      if (target.resourceType !== 'Patient') return null;
      return identifiersOf(target.identifier).some((i) => this.anchor.ours.has(i)) ? null : ['.reference', NOT_SHOWN];
    }
    const entry = pair(origin, reference);
    if (this.byUrl.has(entry)) {
      const patient = this.byObject.get(this.byUrl.get(entry));
      return patient === undefined ? null : this.patient(patient);
    }
    const conditional = CONDITIONAL.exec(reference);
    if (conditional !== null) {
      return this.anchor.ours.has(pair(conditional[1], conditional[2])) ? null : ['.reference', UNKNOWN_IDENTIFIER];
    }
    if (reference.startsWith('urn:')) return ['.reference', NO_ENTRY];
    const match = LITERAL.exec(reference);
    if (match === null) return ['.reference', UNRESOLVED];
    if (match[1] !== 'Patient' || this.anchor.ids.has(match[2])) return null;
    const named = this.byId.get(match[2]);
    return named === undefined ? ['.reference', ANOTHER] : this.patient(named);
  }

  patient(patient) {
    return this.anchor.isPatient(patient) ? null : ['.reference', ANOTHER];
  }
}

// Each reference (by path) in the elements naming whom a resource is about.
function* about(resource) {
  for (const name of ABOUT) {
    const value = resource[name];
    if (isObject(value)) yield [name, value];
    else if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) if (isObject(v)) yield [`${name}[${i}]`, v];
    }
  }
}

function containedAt(obj) {
  const contained = Array.isArray(obj.contained) ? obj.contained : [];
  return contained.flatMap((item, i) => (isObject(item) ? [[`contained[${i}].`, item]] : []));
}
