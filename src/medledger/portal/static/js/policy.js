// The patient's per-category access policies (medledger.access.policy and .rules), as the
// page reads and writes them: what the editor's fields mean, checked here first so that a
// mistake is explained in words before anything is signed, and how a rule in force reads.
// The ledger checks every policy again; these checks only spare the patient a refusal.
import { checksumAddress, unhex } from './crypto.js';

// medledger.records.fhir.CATEGORIES, in the order a patient thinks of them.
export const CATEGORIES = [
  ['labs', 'Lab results'], ['vital-signs', 'Vital signs'], ['imaging', 'Imaging'],
  ['medications', 'Medications'], ['immunizations', 'Immunizations'], ['allergies', 'Allergies'],
  ['conditions', 'Conditions'], ['procedures', 'Procedures'], ['encounters', 'Visits'],
  ['care-plans', 'Care plans'], ['documents', 'Documents'], ['mental-health', 'Mental health'],
  ['financial', 'Billing and insurance'], ['administrative', 'Administrative'],
  ['clinical', 'Other clinical data'],
];

// medledger.access.policy.PURPOSES, with HL7 v3-ActReason display names.
export const PURPOSES = [
  ['TREAT', 'treatment'], ['ETREAT', 'emergency treatment'], ['BTG', 'break the glass'],
  ['CAREMGT', 'care management'], ['COC', 'coordination of care'], ['POPHLTH', 'population health'],
  ['CLINTRL', 'clinical trial'], ['CLINTRCH', 'clinical trial research'], ['HRESCH', 'healthcare research'],
  ['HOPERAT', 'healthcare operations'], ['HPAYMT', 'healthcare payment'], ['COVERAGE', 'coverage'],
  ['PATRQT', 'requested by the patient'], ['FAMRQT', 'requested by family'],
  ['PWATRNY', 'power of attorney'], ['SUPNWK', 'support network'], ['PUBHLTH', 'public health'],
  ['HLEGAL', 'legal'],
];

export const MIN_DURATION_S = 60;
export const MAX_DURATION_S = 366 * 24 * 3600;
export const MAX_LEAVES = 64;
// What a category without a policy needs (medledger.access.policy.default_policy).
export const DEFAULT_POLICY = { approvers: { patient: true }, purposes: ['ETREAT', 'TREAT'], max_duration_s: 7 * 24 * 3600, condition: null };

const ROLE = /^[a-z][a-z0-9_-]{0,63}$/;
const purposeNames = new Map(PURPOSES);
const categoryNames = new Map(CATEGORIES);

export const categoryName = (category) => categoryNames.get(category) || category;
export const purposeName = (code) => (purposeNames.has(code) ? `${code} (${purposeNames.get(code)})` : code);

// A mistake in what the patient typed, named by the field it is in.
export class PolicyInputError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// An address as the ledger spells it (EIP-55). Mixed case carries a checksum, which a
// typo breaks: refused, as medledger.crypto.keys.to_checksum_address refuses it.
export function parseAddress(text, field = 'approvers') {
  const shown = text.length > 50 ? `${text.slice(0, 47)}…` : text;
  if (!/^0x/i.test(text)) throw new PolicyInputError(field, `"${shown}" is not an address: an address starts with 0x.`);
  const digits = text.slice(2);
  if (/[^0-9a-fA-F]/.test(digits)) {
    throw new PolicyInputError(field, `"${shown}" is not an address: after 0x only hex digits (0-9, a-f) may follow.`);
  }
  if (digits.length !== 40) {
    throw new PolicyInputError(field, `"${shown}" is not an address: an address has 40 hex digits after 0x, this has ${digits.length}.`);
  }
  const checked = checksumAddress(unhex(digits));
  const mixed = digits !== digits.toLowerCase() && digits !== digits.toUpperCase();
  if (mixed && checked.slice(2) !== digits) {
    throw new PolicyInputError(field, `"${text}" has a wrong checksum (its capital letters do not match): check it for a typo.`);
  }
  return checked;
}

function leafOf(entry, me, roles) {
  if (/^(me|patient)$/i.test(entry)) return { patient: true };
  if (/^0x/i.test(entry)) {
    const address = parseAddress(entry);
    return address === me ? { patient: true } : { person: address };
  }
  const [role, institution, ...rest] = entry.split('@');
  if (!ROLE.test(role) || rest.length) {
    throw new PolicyInputError('approvers', `"${entry}" is not "me", an address (0x…) or a role such as doctor or doctor@0x….`);
  }
  if (roles && !roles.includes(role)) {
    throw new PolicyInputError('approvers', `"${role}" is not a role on this network; its roles are ${roles.join(', ')}.`);
  }
  return institution === undefined ? { role } : { role, institution: parseAddress(institution) };
}

const leafKey = (leaf) => JSON.stringify(leaf);

// The approver rule of "k of these", one entry a line (or comma-separated).
export function approversRule(kText, listText, me, roles) {
  const entries = listText.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
  if (!entries.length) throw new PolicyInputError('approvers', 'Name at least one approver ("me" for yourself).');
  if (entries.length > MAX_LEAVES) throw new PolicyInputError('approvers', `At most ${MAX_LEAVES} approvers.`);
  const leaves = entries.map((entry) => leafOf(entry, me, roles));
  const seen = new Set();
  leaves.forEach((leaf, i) => {
    if (seen.has(leafKey(leaf))) {
      throw new PolicyInputError('approvers', `"${entries[i]}" is named twice: each approver counts once.`);
    }
    seen.add(leafKey(leaf));
  });
  const k = String(kText).trim();
  if (!/^\d+$/.test(k) || Number(k) < 1) {
    throw new PolicyInputError('k', `The number of approvals needed must be a whole number of at least 1, not "${k}".`);
  }
  const n = leaves.length;
  if (Number(k) > n) {
    throw new PolicyInputError('k', `${k} approvals needed, but only ${n} approver${n === 1 ? ' is' : 's are'} named: ${k} of ${n} could never be met.`);
  }
  return n === 1 ? leaves[0] : { k_of: Number(k), of: leaves };
}

const UNIT_S = { minutes: 60, hours: 3600, days: 86400 };

// The policy JSON (medledger.access.policy.Policy.from_json) of the editor's fields.
export function policyFromForm(form, me, roles) {
  const approvers = approversRule(form.k, form.approvers, me, roles);
  if (!form.purposes.length) throw new PolicyInputError('purposes', 'Choose at least one purpose a request may state.');
  const unknown = form.purposes.filter((p) => !purposeNames.has(p));
  if (unknown.length) throw new PolicyInputError('purposes', `Not purposes this network knows: ${unknown.join(', ')}.`);
  const amount = Number(String(form.duration).trim());
  const seconds = Math.round(amount * (UNIT_S[form.unit] || NaN));
  if (!Number.isFinite(seconds) || seconds < MIN_DURATION_S || seconds > MAX_DURATION_S) {
    throw new PolicyInputError('duration', 'The longest grant must be between 1 minute and 366 days.');
  }
  const policy = { approvers, purposes: [...new Set(form.purposes)].sort(), max_duration_s: seconds };
  const condition = (form.condition || '').trim();
  if (condition) policy.condition = condition;
  return policy;
}

// The editor's fields for a rule in force, or null for a nested rule the one-level
// editor cannot show (saving then replaces it).
export function ruleToForm(rule, me) {
  const line = (leaf) => {
    if (leaf.patient) return 'me';
    if (leaf.person) return leaf.person === me ? 'me' : leaf.person;
    if (leaf.role) return leaf.institution ? `${leaf.role}@${leaf.institution}` : leaf.role;
    return null;
  };
  const group = rule.all || rule.any || rule.of;
  if (!group) return { k: 1, approvers: line(rule) };
  const lines = group.map(line);
  if (lines.includes(null)) return null;
  const k = rule.all ? group.length : rule.any ? 1 : rule.k_of;
  return { k, approvers: lines.join('\n') };
}

export function durationForm(seconds) {
  if (seconds % 86400 === 0) return { duration: seconds / 86400, unit: 'days' };
  if (seconds % 3600 === 0) return { duration: seconds / 3600, unit: 'hours' };
  return { duration: Math.round(seconds / 60), unit: 'minutes' };
}

// Every address a rule names (people and institutions), to be described beside it.
export function addressesIn(rule) {
  if (rule.person) return [rule.person];
  if (rule.role) return rule.institution ? [rule.institution] : [];
  return (rule.all || rule.any || rule.of || []).flatMap(addressesIn);
}

// A rule in words: "2 of: me, 0xAb… (doctor at Hospital B), any nurse".
export function describeRule(rule, me, names = new Map()) {
  const named = (address) => (names.get(address) ? `${address} (${names.get(address)})` : address);
  if (rule.patient) return 'me';
  if (rule.person) return rule.person === me ? 'me' : named(rule.person);
  if (rule.role) return `any ${rule.role}${rule.institution ? ` at ${named(rule.institution)}` : ''}`;
  const group = rule.all || rule.any || rule.of || [];
  const parts = group.map((child) => {
    const text = describeRule(child, me, names);
    return child.all || child.any || child.of ? `(${text})` : text;
  });
  if (group.length === 1) return parts[0];
  const k = rule.all ? 'all' : rule.any ? 'any 1' : String(rule.k_of);
  return `${k} of: ${parts.join(', ')}`;
}
