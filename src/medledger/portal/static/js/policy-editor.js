// The policy editor: each category's policy in force, as the members' cosigned state
// shows it, and a form that signs an access.set_policy transaction with the patient's
// key. The node relays the transaction; every node checks it again.
import { describeParty } from './identity.js';
import {
  CATEGORIES, DEFAULT_POLICY, PURPOSES, PolicyInputError, addressesIn, categoryName,
  describeRule, durationForm, policyFromForm, purposeName, ruleToForm,
} from './policy.js';
import { call, me, session, signedTransaction } from './session.js';
import { $, badge, button, cell, duration, el } from './ui.js';

const SET_POLICY = 'access.set_policy';
const POLICY_NS = 'access.policy';

// category -> the stored entry ({policy, version, index, set_by}), null (no policy set)
// or undefined (its proof failed: the page does not know what is in force).
const inForce = new Map();
let editing = null;

async function namesFor(policies, checkpoint) {
  const addresses = [...new Set(policies.flatMap((p) => addressesIn(p.approvers)))];
  const names = new Map();
  await Promise.all(addresses.map(async (address) => {
    try {
      const text = await describeParty(session.trust, address, checkpoint);
      if (text) names.set(address, text);
    } catch { /* an approver the proofs do not describe is shown by address alone */ }
  }));
  return names;
}

export async function showPolicies(checkpoint) {
  const body = $('policy-table').tBodies[0];
  $('policies-status').textContent = '';
  if (checkpoint === null) {
    $('policies-proven').textContent = 'No checkpoint has been cosigned yet: your policies show once one is.';
    body.replaceChildren();
    return;
  }
  const entries = await Promise.all(CATEGORIES.map(async ([category]) => {
    try {
      return [category, await session.trust.proven(POLICY_NS, `${me()}/${category}`, checkpoint), null];
    } catch (error) {
      return [category, null, error];
    }
  }));
  const names = await namesFor(entries.filter(([, e]) => e).map(([, e]) => e.policy), checkpoint);
  $('policies-proven').textContent = `As the ledger holds them at checkpoint ${checkpoint.size}, cosigned by ${checkpoint.signers} of ${checkpoint.trusted} members.`;
  body.replaceChildren();
  for (const [category, entry, error] of entries) {
    inForce.set(category, error ? undefined : entry);
    const row = body.insertRow();
    row.dataset.category = category;
    cell(row, categoryName(category));
    const rule = row.insertCell();
    rule.className = 'rule';
    if (error) {
      rule.appendChild(badge('failed', `not proven: ${error.message}`));
    } else if (entry === null) {
      rule.textContent = 'the patient alone (you have set no policy)';
    } else {
      rule.textContent = describeRule(entry.policy.approvers, me(), names);
      const by = entry.set_by === me() ? '' : ` by your guardian ${entry.set_by}`;
      rule.appendChild(el('div', 'muted', `version ${entry.version}, set at log entry ${entry.index}${by}`));
    }
    const policy = error ? null : entry ? entry.policy : DEFAULT_POLICY;
    cell(row, policy ? policy.purposes.map(purposeName).join(', ') + (policy.condition ? `; only if ${policy.condition}` : '') : '');
    cell(row, policy ? duration(policy.max_duration_s) : '');
    button(row.insertCell(), 'Change', 'edit', () => openEditor(category));
  }
}

function purposeBoxes() {
  const box = $('policy-purposes');
  if (box.querySelector('input')) return;
  for (const [code, name] of PURPOSES) {
    const label = el('label', 'purpose');
    const input = el('input');
    input.type = 'checkbox';
    input.name = 'purpose';
    input.value = code;
    label.append(input, ` ${code} (${name})`);
    box.appendChild(label);
  }
}

function openEditor(category) {
  purposeBoxes();
  editing = category;
  const entry = inForce.get(category);
  const policy = entry ? entry.policy : DEFAULT_POLICY;
  const form = ruleToForm(policy.approvers, me());
  $('policy-form-title').textContent = `Change who may approve: ${categoryName(category)}`;
  $('policy-form-note').textContent = entry === undefined
    ? 'The policy in force could not be proven, so this form starts from the default; saving replaces whatever is in force.'
    : form === null
      ? 'The rule in force nests groups of approvers, which this form cannot show; saving replaces it.'
      : 'Requests for this data need this many of these approvers. Each approver counts once.';
  $('policy-k').value = form === null ? '1' : String(form.k);
  $('policy-approvers').value = form === null ? 'me' : form.approvers;
  for (const box of document.querySelectorAll('#policy-purposes input')) box.checked = policy.purposes.includes(box.value);
  const { duration: amount, unit } = durationForm(policy.max_duration_s);
  $('policy-duration').value = String(amount);
  $('policy-unit').value = unit;
  $('policy-condition').value = policy.condition || '';
  $('policy-status').textContent = '';
  $('policy-error').textContent = '';
  $('policy-form').dataset.category = category;
  $('policy-form').hidden = false;
  $('policy-approvers').focus();
}

function readForm() {
  return {
    k: $('policy-k').value,
    approvers: $('policy-approvers').value,
    purposes: [...document.querySelectorAll('#policy-purposes input:checked')].map((b) => b.value),
    duration: $('policy-duration').value,
    unit: $('policy-unit').value,
    condition: $('policy-condition').value,
  };
}

const FIELDS = { k: 'policy-k', approvers: 'policy-approvers', duration: 'policy-duration', purposes: 'policy-purposes' };

async function save(event) {
  event.preventDefault();
  const category = editing;
  $('policy-status').textContent = '';
  $('policy-error').textContent = '';
  let policy;
  try {
    policy = policyFromForm(readForm(), me(), session.trust.config ? session.trust.config.roles : null);
  } catch (error) {
    if (!(error instanceof PolicyInputError)) throw error;
    $('policy-error').textContent = `Not saved: ${error.message}`;
    const field = $(FIELDS[error.field]);
    if (field && field.focus) field.focus();
    return;
  }
  $('policy-save').disabled = true;
  try {
    $('policy-status').textContent = 'Signing with your key…';
    const transaction = await signedTransaction(SET_POLICY, { category, policy });
    const outcome = await call('POST', '/v1/ledger/transactions', { transaction });
    $('policy-status').textContent = `Saved at log entry ${outcome.index}; waiting for the members to cosign it…`;
    let checkpoint;
    try {
      checkpoint = await session.trust.covering();
    } catch (error) {
      $('policy-status').textContent = `Saved at log entry ${outcome.index}. It shows here once a checkpoint includes it (${error.message}).`;
      return;
    }
    $('policy-form').hidden = true;
    await showPolicies(checkpoint);
    $('policies-status').textContent = `${categoryName(category)}: your new policy is in force (log entry ${outcome.index}).`;
  } catch (error) {
    $('policy-error').textContent = `Not saved: ${error.message}`;
  } finally {
    $('policy-save').disabled = false;
  }
}

export function setUpPolicyEditor() {
  $('policy-form').addEventListener('submit', (event) => {
    save(event).catch((error) => { $('policy-error').textContent = error.message; });
  });
  $('policy-cancel').addEventListener('click', () => { $('policy-form').hidden = true; });
}
