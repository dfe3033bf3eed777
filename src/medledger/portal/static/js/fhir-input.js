// FHIR JSON and NDJSON files a patient adds, as the Python side reads them
// (records/fhir_sources.py and the part of records/fhir.py a browser can apply): a Bundle
// is split into its entries' resources, as a hospital's "download my records" file is
// one, and an NDJSON file (FHIR Bulk Data) into its lines, one resource a line; each
// resource is checked for a known resourceType and a FHIR id, labelled with the data
// category the node's own table gives it, and written as RFC 8785 canonical JSON with its
// decimals as written, as crypto/canonical.py writes it. The structural validation of
// fhir.resources runs only in Python: the page checks less than `records push` does.
//
// A refusal names the file (and line), the resource and the field, never a value from it.

const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export class Refused extends Error {
  constructor(source, resource, field, problem) {
    super(`${source}: ${field ? `${resource}.${field}` : resource}: ${problem}`);
    this.source = source;
  }
}

// A JSON object: not an array, and not a number kept as written (JSON.rawJSON's objects).
export const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !JSON.isRawJSON?.(v);

// How refusals name a resource: Type/id, or the type alone if the id is not one.
export function resourceLabel(type, obj) {
  return typeof obj.id === 'string' && FHIR_ID.test(obj.id) ? `${type}/${obj.id}` : type;
}

// The node's answer to GET /v1/fhir/categories, made ready to look things up in: the
// chart rules' lists (subject-check.js) come from it too, so that the page has no copy of
// them to drift from records/chart.py.
export function fhirRules(served) {
  const set = (values) => (values === null ? null : new Set(values));
  const refined = ({ category, refinements }) => ({
    category,
    refinements: refinements.map((r) => ({ element: r.element, codes: set(r.codes), systems: set(r.systems), category: r.category })),
  });
  return {
    types: new Set(served.resource_types),
    bundleTypes: new Set(served.bundle_types),
    categories: new Map(Object.entries(served.types).map(([type, rule]) => [type, refined(rule)])),
    fallback: served.default,
    shared: new Set(served.shared_types),
    nonChartBundles: new Set(served.non_chart_bundle_types),
  };
}

const NDJSON = '.ndjson';
// What a file is read as goes by its name, as for a file `records push` is given: NDJSON
// if it ends so, JSON otherwise. These are the names the file picker offers.
export const READ = ['.json', NDJSON];
// What Python's bytes.strip() removes: a line of these alone holds no resource.
const BLANK = new Set([0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]);

function isNdjson(name) {
  // Python's Path.suffix: a name's last dot, unless it starts the name.
  const dot = name.lastIndexOf('.');
  return dot > 0 && name.slice(dot).toLowerCase() === NDJSON;
}

// The documents in a file's bytes, as records/fhir_sources.py read_files gives them: the
// file, or each line of an NDJSON file, named `file:line`. A document is { origin,
// entries: [{ source, obj, fullUrl }], bundles: [[label, type]] }: its resources (a
// Bundle's entries, recursively), and every Bundle in it, outermost first, for the chart
// rules. One that cannot be read is a Refused in its place, so the others are still read.
export function documentsOf(bytes, name, rules) {
  if (!isNdjson(name)) return [documentOf(bytes, name, 'file', rules)];
  const documents = [];
  for (let start = 0, number = 1; start <= bytes.length; number += 1) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline === -1 ? bytes.length : newline;
    const line = bytes.subarray(start, end);
    if (!line.every((b) => BLANK.has(b))) documents.push(documentOf(line, `${name}:${number}`, 'line', rules));
    start = end + 1;
  }
  return documents;
}

function documentOf(bytes, origin, what, rules) {
  let obj;
  try {
    // Strict: a lenient decoder would turn bytes that are not UTF-8 into U+FFFD and seal
    // a text the file does not hold, where the Python side refuses the file.
    obj = parseJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    // The parser's own message may quote the file; a refusal never does.
    return new Refused(origin, what, '', 'not valid JSON');
  }
  const bundles = [];
  try {
    return { origin, entries: expand(obj, origin, null, bundles, rules), bundles };
  } catch (error) {
    if (!(error instanceof Refused)) throw error;
    return error;
  }
}

// A number's source text with a fraction or an exponent: a decimal, kept as written.
const DECIMAL = /[.eE]/;
// Every number in a browser that does not pass JSON.parse's reviver the source text
// (before Chrome 114, Firefox 135, Safari 18.4): 100 may have been written 100.0.
const UNREADABLE = Symbol('unreadable');

// JSON.parse reading numbers as crypto/canonical.py parse_json does: a decimal, and an
// integer a double cannot hold, stays as written (a JSON.rawJSON, which JSON.stringify
// writes back verbatim), since FHIR decimals carry their precision in their digits
// (100.0 is not 100); any other integer is a number. Where the source text is not known
// the number is marked, for canonicalRecord to refuse rather than seal another number
// than the file holds.
export function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value !== 'number') return value;
    const source = context?.source;
    if (source === undefined) return UNREADABLE;
    return Number.isSafeInteger(value) && !DECIMAL.test(source) ? value : JSON.rawJSON(source);
  });
}

function expand(obj, source, fullUrl, bundles, rules) {
  if (!isObject(obj) || obj.resourceType !== 'Bundle') return [{ source, obj, fullUrl }];
  const label = resourceLabel('Bundle', obj);
  if (obj.type === undefined || obj.type === null) throw new Refused(source, label, 'type', 'required');
  if (!rules.bundleTypes.has(obj.type)) {
    throw new Refused(source, label, 'type', `not one of ${[...rules.bundleTypes].join(', ')}`);
  }
  bundles.push([label, obj.type]);
  const entries = obj.entry === undefined ? [] : obj.entry;
  if (!Array.isArray(entries)) throw new Refused(source, label, 'entry', 'is not a JSON array');
  return entries.flatMap((entry, i) => {
    const resource = isObject(entry) ? entry.resource : undefined;
    if (resource === undefined || resource === null) throw new Refused(source, label, `entry[${i}].resource`, 'required');
    const url = typeof entry.fullUrl === 'string' ? entry.fullUrl : null;
    return expand(resource, `${source}#entry[${i}]`, url, bundles, rules);
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

// records/categories.py category_of, over the table the node served: the type's category
// unless one of its refinements applies, the first in the table's order.
export function categoryOf(type, body, rules) {
  const rule = rules.categories.get(type);
  if (rule === undefined) return rules.fallback;
  const refined = rule.refinements.find((r) => applies(r, body));
  return refined ? refined.category : rule.category;
}

// Refinement.applies: with codes, a coding of the element (a concept, a list of them, or
// a Reference) has one of them, under one of the systems if the table names any; without,
// the element holds an object.
function applies(refinement, body) {
  const value = Object.hasOwn(body, refinement.element) ? body[refinement.element] : undefined;
  const items = Array.isArray(value) ? value : isObject(value) ? [value] : [];
  if (refinement.codes === null) return items.some(isObject);
  const counts = (coding) => isObject(coding) && typeof coding.code === 'string' && refinement.codes.has(coding.code)
    && (refinement.systems === null || (typeof coding.system === 'string' && refinement.systems.has(coding.system)));
  return items.some((concept) => isObject(concept) && Array.isArray(concept.coding) && concept.coding.some(counts));
}

// RFC 8785 of a record read by parseJson, decimals as written (crypto/canonical.py
// canonical_json). ECMAScript's own number and string forms are the ones the RFC
// prescribes, so what remains is what the Python side refuses: lone surrogates and
// integers beyond 2^53 (and numbers this browser cannot read as written).
export function canonicalRecord(value) {
  if (Array.isArray(value)) return '[' + value.map(canonicalRecord).join(',') + ']';
  if (isObject(value)) {
    return '{' + Object.keys(value).sort().map((k) => canonicalString(k) + ':' + canonicalRecord(value[k])).join(',') + '}';
  }
  if (typeof value === 'string') return canonicalString(value);
  if (value === UNREADABLE) throw new Error('a number this browser cannot read as written');
  if (JSON.isRawJSON?.(value) && !DECIMAL.test(value.rawJSON)) throw new Error('an integer beyond 2^53');
  return JSON.stringify(value);
}

function canonicalString(text) {
  if (!text.isWellFormed()) throw new Error('a string with a lone surrogate');
  return JSON.stringify(text);
}
