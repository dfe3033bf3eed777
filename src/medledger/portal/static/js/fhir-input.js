// FHIR JSON files a patient adds, as the Python side reads them (records/fhir_sources.py
// and the part of records/fhir.py a browser can apply): a Bundle is split into its
// entries' resources, as a hospital's "download my records" file is one; each resource
// is checked for a known resourceType and a FHIR id, labelled with the data category the
// node's own table gives it, and written as RFC 8785 canonical JSON. The structural
// validation of fhir.resources runs only in Python: the page checks less than
// `records push` does.
//
// A refusal names the file, the resource and the field, never a value from it.

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export class Refused extends Error {
  constructor(source, resource, field, problem) {
    super(`${source}: ${field ? `${resource}.${field}` : resource}: ${problem}`);
    this.source = source;
  }
}

export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// How refusals name a resource: Type/id, or the type alone if the id is not one.
export function resourceLabel(type, obj) {
  return typeof obj.id === 'string' && FHIR_ID.test(obj.id) ? `${type}/${obj.id}` : type;
}

// The node's answer to GET /v1/fhir/categories, made ready to look things up in.
export function fhirRules(served) {
  return {
    types: new Set(served.resource_types),
    bundleTypes: new Set(served.bundle_types),
    categories: new Map(Object.entries(served.types)),
    fallback: served.default,
  };
}

// [{ source, obj, fullUrl }] for every resource in a file's bytes: a Bundle's entries
// (recursively), or the file's one resource. Throws Refused for the whole file, as the
// Python side does, if it is not UTF-8 JSON or a Bundle in it is malformed.
export function resourcesOf(bytes, source, rules) {
  let obj;
  try {
    // Strict: a lenient decoder would turn bytes that are not UTF-8 into U+FFFD and seal
    // a text the file does not hold, where the Python side refuses the file.
    obj = parseJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    // The parser's own message may quote the file; a refusal never does.
    throw new Refused(source, 'file', '', 'not valid JSON');
  }
  return expand(obj, source, null, rules);
}

// An integer the Python side would read exactly but a double cannot hold: kept as a mark
// that canonicalRecord refuses, rather than the rounded number JSON.parse would sign.
const INEXACT = Symbol('inexact');

// JSON.parse, seeing each number's source text: 1e21 is a double in Python too and
// stays, 9007199254740993 is an integer there and is marked. A browser that does not
// pass the source text gets every such number marked: refused rather than rounded.
export function parseJson(text) {
  const integral = (context) => context?.source === undefined || /^-?[0-9]+$/.test(context.source);
  return JSON.parse(text, (key, value, context) =>
    (typeof value === 'number' && !Number.isSafeInteger(value) && integral(context) ? INEXACT : value));
}

function expand(obj, source, fullUrl, rules) {
  if (!isObject(obj) || obj.resourceType !== 'Bundle') return [{ source, obj, fullUrl }];
  const label = resourceLabel('Bundle', obj);
  if (obj.type === undefined || obj.type === null) throw new Refused(source, label, 'type', 'required');
  if (!rules.bundleTypes.has(obj.type)) {
    throw new Refused(source, label, 'type', `not one of ${[...rules.bundleTypes].join(', ')}`);
  }
  const entries = obj.entry === undefined ? [] : obj.entry;
  if (!Array.isArray(entries)) throw new Refused(source, label, 'entry', 'is not a JSON array');
  return entries.flatMap((entry, i) => {
    const resource = isObject(entry) ? entry.resource : undefined;
    if (resource === undefined || resource === null) throw new Refused(source, label, `entry[${i}].resource`, 'required');
    const url = typeof entry.fullUrl === 'string' ? entry.fullUrl : null;
    return expand(resource, `${source}#entry[${i}]`, url, rules);
  });
}

// What sealing needs of one resource: { resourceType, fhirId, category, canonical }.
export function checkResource(obj, source, rules) {
  if (!isObject(obj)) throw new Refused(source, 'Resource', '', 'is not a JSON object');
  const type = obj.resourceType;
  if (typeof type !== 'string' || !rules.types.has(type)) {
    const problem = type === undefined || type === null ? 'required' : 'unknown resource type';
    throw new Refused(source, 'Resource', 'resourceType', problem);
  }
  const label = resourceLabel(type, obj);
  if (Object.hasOwn(obj, 'id') && !(typeof obj.id === 'string' && FHIR_ID.test(obj.id))) {
    throw new Refused(source, label, 'id', 'not a FHIR id (1 to 64 letters, digits, - and .)');
  }
  let canonical;
  try {
    canonical = new TextEncoder().encode(canonicalRecord(obj));
  } catch (error) {
    throw new Refused(source, label, '', `not canonicalizable: ${error.message}`);
  }
  return { resourceType: type, fhirId: obj.id ?? null, category: categoryOf(type, obj, rules), canonical };
}

// records/fhir.py category_of, over the table the node served.
export function categoryOf(type, body, rules) {
  const rule = rules.categories.get(type);
  if (rule === undefined) return rules.fallback;
  const codes = new Set();
  for (const concept of Array.isArray(body.category) ? body.category : []) {
    const codings = isObject(concept) ? concept.coding : undefined;
    for (const coding of Array.isArray(codings) ? codings : []) {
      if (isObject(coding) && typeof coding.code === 'string') codes.add(coding.code);
    }
  }
  const refined = rule.refinements.find((r) => r.codes.some((c) => codes.has(c)));
  return refined ? refined.category : rule.category;
}

// RFC 8785 of a record read by parseJson. ECMAScript's own number and string forms are
// the ones the RFC prescribes, so what remains is what the Python side refuses: lone
// surrogates, numbers out of a double's range, and integers beyond 2^53.
export function canonicalRecord(value) {
  if (Array.isArray(value)) return '[' + value.map(canonicalRecord).join(',') + ']';
  if (isObject(value)) {
    return '{' + Object.keys(value).sort().map((k) => canonicalString(k) + ':' + canonicalRecord(value[k])).join(',') + '}';
  }
  if (typeof value === 'string') return canonicalString(value);
  if (value === INEXACT) throw new Error('an integer beyond 2^53');
  if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('a number out of range');
  return JSON.stringify(value);
}

function canonicalString(text) {
  if (!text.isWellFormed()) throw new Error('a string with a lone surrogate');
  return JSON.stringify(text);
}
