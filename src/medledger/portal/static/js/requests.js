// Requests for the patient's data: new ones as notices at the top of the page (who asks,
// for what, why, for how long, with approve and deny), and every one in a table with its
// real state: a granted request shows its grant as the node judges it now (active,
// expired, revoked, void), so a revoked grant never reads as granted.
import { approvalDigest, hex } from './crypto.js';
import { describeParty } from './identity.js';
import { categoryName, purposeName } from './policy.js';
import { call, me, refresh, session, signedTransaction } from './session.js';
import { $, badge, button, cell, dateOfNs, duration, el, plural } from './ui.js';

const APPROVAL_TTL_MS = 10 * 60 * 1000;
const REQUEST_NS = 'access.request';

// What the checkpoint proves of a request the node lists: { entry, kind, text } for the
// badge beside it, entry being the proven state (null if not yet in a checkpoint).
async function provenRequest(r, checkpoint) {
  if (checkpoint === null) return { entry: null, kind: 'pending', text: 'not yet in a checkpoint' };
  try {
    const entry = await session.trust.proven(REQUEST_NS, r.request, checkpoint);
    if (entry === null) return { entry, kind: 'pending', text: 'not yet in a checkpoint' };
    if (entry.status !== r.status) return { entry, kind: 'pending', text: `at checkpoint ${checkpoint.size}: ${entry.status}` };
    return { entry, kind: 'proven', text: `✓ checkpoint ${checkpoint.size}` };
  } catch (error) {
    return { entry: null, kind: 'failed', text: error.message };
  }
}

// A request left unanswered lapses (request_ttl_s); the proven entry says when.
const lapsed = (proven) => proven.entry !== null && Number(proven.entry.expires_ns) / 1e6 <= Date.now();

async function grantOf(r) {
  if (r.status !== 'granted') return null;
  try {
    return await call('GET', `/v1/access/grants/${r.request}`);
  } catch (error) {
    return { status: 'unknown', error: error.message };
  }
}

async function requester(r, checkpoint) {
  try {
    return await describeParty(session.trust, r.requester, checkpoint);
  } catch {
    return null;
  }
}

export async function showRequests(checkpoint) {
  const requests = await call('GET', `/v1/access/requests?patient=${me()}`);
  const details = await Promise.all(requests.map(async (r) => ({
    r, proven: await provenRequest(r, checkpoint), grant: await grantOf(r), who: await requester(r, checkpoint),
  })));
  showNotices(details.filter(({ r, proven }) => r.status === 'pending' && !r.signers.includes(me()) && !lapsed(proven)));
  const body = $('requests').tBodies[0];
  body.replaceChildren();
  $('requests-empty').hidden = requests.length > 0;
  for (const { r, proven, grant, who } of details) {
    const row = body.insertRow();
    row.dataset.request = r.request;
    const asker = cell(row, r.requester, 'address');
    if (who) asker.appendChild(el('div', 'who', who));
    cell(row, r.categories.map(categoryName).join(', '));
    cell(row, r.emergency ? `${r.purpose} (break-glass)` : r.purpose, r.emergency ? 'flag' : '');
    cell(row, duration(r.duration_s));
    cell(row, statusText(r, proven, grant), 'status');
    row.insertCell().appendChild(badge(proven.kind, proven.text));
    const actions = row.insertCell();
    if (grant && grant.status === 'active') button(actions, 'Revoke', 'revoke', () => revoke(r));
  }
}

function statusText(r, proven, grant) {
  if (grant) {
    if (grant.status === 'active') return `active until ${dateOfNs(grant.expires_ns)}`;
    if (grant.status === 'expired') return `expired ${dateOfNs(grant.expires_ns)}`;
    if (grant.status === 'void') return 'void: its holder is no longer registered';
    if (grant.status === 'revoked') return 'revoked';
    return `grant status unknown (${grant.error || grant.status})`;
  }
  if (r.status === 'pending' && lapsed(proven)) return 'lapsed unanswered';
  if (r.status === 'pending' && r.signers.includes(me())) return 'pending: you approved; other approvers still needed';
  if (r.status === 'pending') return 'waiting for your answer';
  return r.status;
}

function showNotices(fresh) {
  const list = $('request-notices');
  list.replaceChildren();
  $('request-count').textContent = fresh.length ? plural(fresh.length, 'new request') : 'No new requests.';
  $('new-requests').classList.toggle('attention', fresh.length > 0);
  for (const { r, who } of fresh) {
    const item = el('li', 'notice');
    item.dataset.request = r.request;
    const heading = el('p', 'asker');
    heading.append(el('strong', null, who || 'someone the ledger does not yet show'), ' asks ');
    heading.append(el('span', 'address', r.requester));
    item.appendChild(heading);
    const terms = el('dl', 'terms');
    const term = (name, value, className) => terms.append(el('dt', null, name), el('dd', className, value));
    term('for', r.categories.map(categoryName).join(', '), 'categories');
    term('why', purposeName(r.purpose), 'purpose');
    term('how long', duration(r.duration_s), 'duration');
    if (r.records.length) term('only', plural(r.records.length, 'named record'));
    item.appendChild(terms);
    const actions = el('p', 'actions');
    if (r.emergency) {
      item.classList.add('flag');
      actions.appendChild(el('span', 'flag', 'Break-glass: an emergency request two clinicians decide on. '));
    } else {
      button(actions, 'Approve', 'approve', () => approve(r));
    }
    button(actions, 'Deny', 'deny', () => deny(r));
    item.appendChild(actions);
    list.appendChild(item);
  }
}

async function approve(r) {
  const notAfter = Date.now() + APPROVAL_TTL_MS;
  const digest = approvalDigest(session.network, r.request, r.patient, r.requester, notAfter);
  const signature = '0x' + hex(session.key.signDigest(digest));
  await call('POST', `/v1/access/requests/${r.request}/approvals`,
    { approvals: [{ signer: me(), not_after_ms: notAfter, signature }] });
  await refresh();
}

async function deny(r) {
  const transaction = await signedTransaction('access.deny', { request: r.request });
  await call('POST', `/v1/access/requests/${r.request}/deny`, { transaction });
  await refresh();
}

// The grant id is the id of the request it answered.
async function revoke(r) {
  const transaction = await signedTransaction('access.revoke', { grant: r.request });
  await call('POST', `/v1/access/grants/${r.request}/revoke`, { transaction });
  await refresh();
}
