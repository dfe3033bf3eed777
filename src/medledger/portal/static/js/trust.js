// What the page believes of the ledger (medledger.ledger.light): the members and
// checkpoint threshold its network's genesis founded, a checkpoint only when that many
// of them cosigned it, and an entry of state only with a proof against such a
// checkpoint's state root. The page came from this node, so it takes the genesis from
// it too; the members it trusts after that change only through checkpoints the members
// it already trusts cosigned.
import { checkpointSigners, hex, transactionDigest, verifyStateProof } from './crypto.js';

export class Trust {
  constructor(call) {
    this.call = call;
    this.network = null;
    this.genesisId = null;
    this.members = null;
    this.threshold = null;
    this.checkpoint = null;
    this.config = null;
    // Proofs at one checkpoint never change: each entry is fetched and checked once per
    // checkpoint, which keeps a refresh within the node's per-key rate limit.
    this.cache = { at: null, entries: new Map() };
  }

  async start() {
    const { genesis } = await this.call('GET', '/v1/ledger/genesis');
    const tx = JSON.parse(genesis);
    this.network = tx.network;
    this.genesisId = '0x' + hex(transactionDigest(tx.network, tx.sender, tx.nonce, tx.type, tx.payload));
    this.members = tx.payload.members.map((m) => m.address);
    this.threshold = tx.payload.checkpoint_threshold;
  }

  // The latest checkpoint, if the members trusted cosigned it and it is not older than
  // one accepted before; then what it proves of the members is trusted for the next one.
  async latest() {
    let checkpoint;
    try { checkpoint = await this.call('GET', '/v1/ledger/checkpoint'); } catch { return this.checkpoint; }
    return this.accept(checkpoint);
  }

  // A checkpoint covering everything in the log now, which the node has the members
  // cosign if the latest does not: after the patient's own write, so that what the page
  // shows as proven includes it.
  async covering() {
    return this.accept(await this.call('POST', '/v1/ledger/checkpoint', {}));
  }

  async accept(checkpoint) {
    if (checkpoint.network !== this.network) {
      throw new Error(`a checkpoint of network ${checkpoint.network}, not ${this.network}`);
    }
    const signers = checkpointSigners(checkpoint, this.members);
    if (signers.length < this.threshold) {
      throw new Error(`checkpoint cosigned by ${signers.length} trusted members, ${this.threshold} needed`);
    }
    if (this.checkpoint !== null && checkpoint.size <= this.checkpoint.size) return this.checkpoint;
    const members = await this.proven('network', 'members', checkpoint);
    const config = await this.proven('network', 'config', checkpoint);
    if (config === null || config.genesis !== this.genesisId) {
      throw new Error('the proven configuration is of another network\'s genesis');
    }
    this.checkpoint = { ...checkpoint, signers: signers.length, trusted: this.members.length };
    this.members = members;
    this.threshold = config.checkpoint_threshold;
    this.config = config;
    return this.checkpoint;
  }

  // An entry of state as of `checkpoint`, or an error if its proof does not hold.
  proven(ns, key, checkpoint) {
    const at = `${checkpoint.size}/${checkpoint.state_root}`;
    if (this.cache.at !== at) this.cache = { at, entries: new Map() };
    const id = `${ns}\n${key}`;
    let entry = this.cache.entries.get(id);
    if (entry === undefined) {
      entry = this.fetchProven(ns, key, checkpoint);
      this.cache.entries.set(id, entry);
      entry.catch(() => this.cache.entries.delete(id));
    }
    return entry;
  }

  async fetchProven(ns, key, checkpoint) {
    const query = `key=${encodeURIComponent(key)}&size=${checkpoint.size}`;
    const proof = await this.call('GET', `/v1/ledger/state/${ns}?${query}`);
    // The proof names the entry it proves: a valid proof of another entry (another
    // member's, with a key the node holds) must not answer for this one.
    if (proof.ns !== ns || proof.key !== key || proof.size !== checkpoint.size
        || !(await verifyStateProof(proof, checkpoint.state_root))) {
      throw new Error(`the proof of ${ns} does not hold`);
    }
    return proof.encoded === null ? null : JSON.parse(proof.encoded);
  }
}
