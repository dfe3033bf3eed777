// Requests to the node, each signed with the patient's key (RFC 9421, the profile of
// medledger.node.signatures): method, authority, path, query and a SHA-256
// Content-Digest, with created, expires, a fresh nonce, our algorithm and the address.
import { base64, keccak } from './crypto.js';

const COVERED = ['@method', '@authority', '@path', '@query', 'content-digest'];
const ALGORITHM = 'ecdsa-secp256k1-keccak256';
const LIFETIME_S = 60;

function nonce() {
  return base64(crypto.getRandomValues(new Uint8Array(16))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export class NodeRefused extends Error {
  constructor(status, body, retryAfter = null) {
    super(`${status} ${body.error}: ${body.message}`);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

// A node holds each key to a request rate (node/limits.py) and answers 429 with
// Retry-After before it records the request's nonce or acts on it, so waiting and
// sending a freshly signed copy is safe for any request. A patient's sign-in makes a few
// dozen checked reads at once; clicking refresh again soon after should wait, not fail.
const MAX_RETRIES = 4;
const MAX_WAIT_S = 10;

export async function signedFetch(key, method, path, body) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await signedFetchOnce(key, method, path, body);
    } catch (error) {
      if (!(error instanceof NodeRefused) || error.status !== 429 || attempt >= MAX_RETRIES) throw error;
      const wait = Math.min(MAX_WAIT_S, Math.max(1, Number(error.retryAfter) || 1));
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
  }
}

async function signedFetchOnce(key, method, path, body) {
  const url = new URL(path, window.location.origin);
  const bytes = body === undefined ? new Uint8Array(0) : new TextEncoder().encode(JSON.stringify(body));
  const digest = 'sha-256=:' + base64(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))) + ':';
  const created = Math.floor(Date.now() / 1000);
  const params = `;created=${created};expires=${created + LIFETIME_S};nonce="${nonce()}";alg="${ALGORITHM}";keyid="${key.address}"`;
  const inner = '(' + COVERED.map((c) => `"${c}"`).join(' ') + ')' + params;
  const values = [method, url.host, url.pathname, url.search || '?', digest];
  const base = COVERED.map((c, i) => `"${c}": ${values[i]}`).join('\n') + `\n"@signature-params": ${inner}`;
  const signature = key.signDigest(keccak(new TextEncoder().encode(base)));
  const headers = { 'Content-Digest': digest, 'Signature-Input': `sig1=${inner}`, Signature: `sig1=:${base64(signature)}:` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : bytes });
  const answer = await response.json();
  if (!response.ok) throw new NodeRefused(response.status, answer, response.headers.get('Retry-After'));
  return answer;
}

export async function publicGet(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}
