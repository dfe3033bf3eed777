// The patient portal: sign in with a keystore, then, all in this page: new requests at
// the top, answered with the patient's own signature; every request and grant, and
// revoking a grant; the policies in force per category, and changing them; records
// opened with the patient's key; reads of them, each with a proof the page checks.
// Everything the node returns is shown as text, never as markup.
import { setUpAddRecords } from './add-records.js';
import { showAudit } from './audit.js';
import { openKeystore } from './crypto.js';
import { publicGet } from './http.js';
import { whoAmI } from './identity.js';
import { setUpPolicyEditor, showPolicies } from './policy-editor.js';
import { shareHealthCard, showRecords } from './records.js';
import { showRequests } from './requests.js';
import { call, me, onRefresh, session } from './session.js';
import { Trust } from './trust.js';
import { $, button } from './ui.js';

async function signIn(event) {
  event.preventDefault();
  $('signin-status').textContent = 'Opening your keystore…';
  let identity;
  try {
    const document_ = JSON.parse(await $('keystore').files[0].text());
    session.key = await openKeystore(document_, $('passphrase').value);
    $('passphrase').value = '';
    session.network = (await publicGet('/v1/health')).network;
    session.status = await call('GET', '/v1/ledger/status');
    session.trust = new Trust(call);
    await session.trust.start();
    $('signin-status').textContent = 'Looking your key up on the ledger…';
    identity = await whoAmI(session.trust, me());
  } catch (error) {
    session.key = null;
    $('signin-status').textContent = `Could not sign in: ${error.message}`;
    return;
  }
  $('signin').hidden = true;
  if (identity.kind !== 'patient') {
    // Nothing on this page is for a key that is not a patient's: say what it is and
    // forget it, rather than show an empty patient page.
    const address = me();
    session.key = null;
    $('not-patient-text').textContent = identity.text;
    $('not-patient').hidden = false;
    $('who').textContent = `${address} is not a patient on ${session.status.name}'s network.`;
    return;
  }
  $('signed-in').hidden = false;
  $('who').textContent = `Signed in as ${me()} at ${session.status.name}.`;
  await refresh();
}

function signInAgain() {
  $('not-patient').hidden = true;
  $('signin-status').textContent = '';
  $('keystore').value = '';
  $('signin').hidden = false;
  $('who').textContent = 'Not signed in. Your key stays in this browser.';
}

async function refresh() {
  $('error').textContent = '';
  let checkpoint = null;
  try {
    checkpoint = await session.trust.latest();
  } catch (error) {
    $('error').textContent = `The latest checkpoint does not verify: ${error.message}`;
  }
  // One part failing (a node refusing one call) leaves the others on show.
  const parts = await Promise.allSettled([showRequests(checkpoint), showPolicies(checkpoint), showRecords(), showAudit(checkpoint)]);
  const failed = parts.filter((p) => p.status === 'rejected').map((p) => p.reason.message);
  if (failed.length) $('error').textContent = [$('error').textContent, ...failed].filter(Boolean).join(' · ');
}

onRefresh(refresh);
$('signin-form').addEventListener('submit', signIn);
$('signin-again').addEventListener('click', signInAgain);
button($('refresh'), 'Refresh', 'refresh', refresh);
button($('share'), 'Show a health card of my vaccinations', 'share', shareHealthCard);
setUpPolicyEditor();
setUpAddRecords();
