// The consent page of SMART App Launch: what an app asks, in words, and the user's answer.
// Allowing signs, in this browser, the Delegation the node's authorization request names
// (access/delegation.py: this node, this app, these resource types, this expiry); the key
// opens and signs here and is forgotten, and the node only ever sees the signature.
import { addressWord, concat, hex, keccak, openKeystore, typedDigest, utf8, word } from './crypto.js';
import { $, el } from './ui.js';

const DELEGATION_TYPE = keccak(utf8('Delegation(address delegate,string app,string types,uint64 notAfter)'));
const DECISION = '/auth/authorize/decision';

// The EIP-712 digest of medledger.access.delegation.Delegation.
export function delegationDigest(d) {
  const struct = keccak(concat(DELEGATION_TYPE, addressWord(d.delegate), keccak(utf8(d.app)), keccak(utf8(d.types)), word(d.not_after_ms)));
  return typedDigest('medledger access', d.network_id, struct);
}

async function answered(response) {
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || `${response.status}`);
  return body;
}

async function decide(requestId, delegation) {
  const response = await fetch(DECISION, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ request: requestId, delegation }),
  });
  const { redirect } = await answered(response);
  $('status').textContent = 'Going back to the app…';
  window.location.assign(redirect);
}

async function allow(event, requestId, asked) {
  event.preventDefault();
  $('error').textContent = '';
  $('status').textContent = 'Opening your keystore…';
  try {
    const key = await openKeystore(JSON.parse(await $('keystore').files[0].text()), $('passphrase').value);
    $('passphrase').value = '';
    const d = asked.delegation;
    const signature = key.signDigest(delegationDigest(d));
    $('status').textContent = `Signed as ${key.address}.`;
    await decide(requestId, { delegate: d.delegate, app: d.app, types: d.types, not_after_ms: d.not_after_ms, signature: '0x' + hex(signature) });
  } catch (error) {
    $('status').textContent = '';
    $('error').textContent = `Not allowed: ${error.message}`;
  }
}

async function start() {
  const requestId = new URLSearchParams(window.location.search).get('request') || '';
  let asked;
  try {
    asked = await answered(await fetch(`/auth/authorize/requests/${encodeURIComponent(requestId)}`));
  } catch (error) {
    $('error').textContent = `This authorization request cannot be answered: ${error.message}`;
    return;
  }
  $('app-name').textContent = asked.app_name;
  $('app-id').textContent = asked.app;
  $('app-origin').textContent = asked.redirect_origin;
  $('node').textContent = asked.delegation.delegate;
  $('until').textContent = new Date(asked.delegation.not_after_ms).toLocaleString();
  for (const words of asked.asks) $('asks').appendChild(el('li', null, words));
  $('request').hidden = false;
  $('decide').hidden = false;
  $('allow-form').addEventListener('submit', (event) => allow(event, requestId, asked));
  $('deny').addEventListener('click', () => decide(requestId, null).catch((error) => { $('error').textContent = error.message; }));
}

start();
