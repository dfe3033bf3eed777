// The signed-in patient's session: their key (in memory only), the network, what the page
// trusts of the ledger, and signed calls to the node. The modules share this one object
// so that signing out forgets the key everywhere at once.
import { signTransaction } from './crypto.js';
import { signedFetch } from './http.js';

export const session = { key: null, network: null, status: null, trust: null };

let refresher = async () => {};

export const me = () => session.key.address;
export const call = (method, path, body) => signedFetch(session.key, method, path, body);

export function onRefresh(fn) { refresher = fn; }
export const refresh = () => refresher();

// A transaction signed here with the patient's key and the next nonce the node counts
// (including transactions of theirs still waiting to be ordered).
export async function signedTransaction(type, payload) {
  const { next_nonce: nonce } = await call('GET', `/v1/ledger/nonces/${me()}`);
  return signTransaction(session.key, session.network, nonce, type, payload);
}
