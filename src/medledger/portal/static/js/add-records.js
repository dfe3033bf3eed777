// The "Add records" control under the patient's records: FHIR JSON and NDJSON files
// chosen here are sealed in this page (upload.js) and the list then shows them, written
// by the patient. What was written, what was set aside as institution-level and what was
// refused, and why, stay on show until the next upload.
import { READ } from './fhir-input.js';
import { showRecords } from './records.js';
import { call, session } from './session.js';
import { $, button, el, plural } from './ui.js';
import { addRecords } from './upload.js';

function showProgress(text, done, total) {
  const bar = $('add-progress');
  bar.hidden = false;
  bar.max = Math.max(total, 1);
  bar.value = done;
  $('add-status').textContent = text;
}

function summary({ written, refused, stopped }) {
  const amended = written.filter((w) => w.version > 1).length;
  const parts = [written.length === 0 ? 'Nothing was written.'
    : `Added ${plural(written.length, 'record')}${amended ? ` (${plural(amended, 'new version')} of records you wrote before)` : ''}.`];
  if (refused.length) parts.push(`${plural(refused.length, 'resource')} refused:`);
  if (stopped) parts.push(`The node refused the rest: ${stopped}`);
  return parts.join(' ');
}

// Institution-level resources (a practitioner, an organization, a medication) are about
// no one patient: set aside, as `records push` sets them aside, and nothing the patient
// did wrong, so they are listed apart from the refusals.
function showShared(shared) {
  $('add-shared-note').textContent = shared.length === 0 ? ''
    : `Not added: ${plural(shared.length, 'institution-level resource')}, about no one patient, so kept out of your chart:`;
  $('add-shared').replaceChildren(...shared.map((s) => el('li', 'shared', `${s.source}: ${s.resource}`)));
}

async function add() {
  const files = [...$('add-files').files];
  $('add-result').textContent = '';
  $('add-refused').replaceChildren();
  showShared([]);
  $('add-error').textContent = '';
  if (files.length === 0) {
    $('add-status').textContent = 'Choose one or more FHIR JSON or NDJSON files first.';
    return;
  }
  const context = { call, key: session.key, trust: session.trust, institution: session.status.name };
  let result;
  try {
    result = await addRecords(files, context, showProgress);
  } finally {
    $('add-progress').hidden = true;
    $('add-status').textContent = '';
  }
  $('add-result').textContent = summary(result);
  $('add-refused').replaceChildren(...result.refused.map((r) => el('li', 'refused', r.message)));
  showShared(result.shared);
  $('add-files').value = '';
  await showRecords();
}

export function setUpAddRecords() {
  // The picker offers what fhir-input.js reads, NDJSON included.
  $('add-files').accept = READ.join(',');
  button($('add-button'), 'Encrypt, sign and add', 'add', add, () => $('add-error'));
}
