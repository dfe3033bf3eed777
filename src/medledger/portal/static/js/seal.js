// Sealing one record version in the browser, byte for byte as medledger.records.sealed
// seal_record does, so that the node, the custodians and every reader treat a record
// the patient sealed here as one sealed by the Python side: a fresh AES-256-GCM data key
// over salt || canonical JSON, bound to record id, version and patient; the key split
// t-of-n across the custodians, each share ECIES-sealed to one of them, and the whole
// key sealed to the patient; a header that binds all of it by hash, signed by the author.
//
// Randomness comes from the `randomBytes(n)` a KeyWrapper is made with (the records
// sealed with one wrapper share it), drawn in the order the Python side draws it
// (KeyWrapper: one ephemeral key per custodian; then per record: data key, content salt,
// body nonce, Shamir rows, share nonces, the patient's ephemeral key the first time,
// the patient's nonce, the commitment salt), so fixed bytes give identical output.
import { x25519 } from '@noble/curves/ed25519.js';
import { ECIES_LABEL, base64, binding, concat, hex, hkdf, sha256, unhex, utf8 } from './crypto.js';
import { headerDigest } from './record-header.js';
import { split } from './shamir.js';

const SALT_SIZE = 32;
const KEY_SIZE = 32;
const NONCE_SIZE = 12;
const KEYS_FORMAT = 1;
const PATIENT_INDEX = 0;

export const secureRandomBytes = (n) => crypto.getRandomValues(new Uint8Array(n));

async function aesGcmSeal(key, nonce, plaintext, associatedData) {
  const aes = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt']);
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: associatedData }, aes, plaintext);
  return concat(nonce, new Uint8Array(sealed));
}

// ECIES to one recipient under one ephemeral key (medledger.crypto.ecies.Sealer): the
// exchange and key derivation once, a fresh nonce per value.
class Sealer {
  static async create(recipient, ephemeralSecret) {
    if (recipient.length !== 32) throw new Error('an X25519 public key has 32 bytes');
    const ephemeral = x25519.getPublicKey(ephemeralSecret);
    const shared = x25519.getSharedSecret(ephemeralSecret, recipient);
    // Only a low-order point gives an all-zero secret: a key anyone could compute.
    if (shared.every((b) => b === 0)) throw new Error('the recipient key is a low-order point');
    const sealer = new Sealer();
    sealer.ephemeral = ephemeral;
    sealer.key = await hkdf(shared, concat(ECIES_LABEL, ephemeral, recipient), KEY_SIZE);
    return sealer;
  }

  async seal(plaintext, associatedData, nonce) {
    return concat(this.ephemeral, await aesGcmSeal(this.key, nonce, plaintext, associatedData));
  }
}

function u16(n) {
  return new Uint8Array([n >> 8, n & 0xff]);
}

// WrappedKeys.encoded: format, t, n; per custodian its address, then its sized share;
// then the patient's sized copy.
function encodeKeys(threshold, custodians, shares, patient) {
  const parts = [new Uint8Array([KEYS_FORMAT, threshold, custodians.length])];
  custodians.forEach((c, i) => parts.push(unhex(c.address), u16(shares[i].length), shares[i]));
  parts.push(u16(patient.length), patient);
  return concat(...parts);
}

// Wraps the data keys of records sealed together for one set of custodians
// ({ threshold, custodians: [{ address, key }] }, keys as bytes, in the ledger's order).
export class KeyWrapper {
  static async create({ threshold, custodians }, randomBytes = secureRandomBytes) {
    const wrapper = new KeyWrapper();
    wrapper.threshold = threshold;
    wrapper.custodians = custodians;
    wrapper.random = randomBytes;
    wrapper.sealers = [];
    for (const c of custodians) wrapper.sealers.push(await Sealer.create(c.key, randomBytes(KEY_SIZE)));
    wrapper.patients = new Map();
    return wrapper;
  }

  async wrap(dataKey, draft, keyBinding) {
    const points = split(dataKey, this.threshold, this.sealers.length, this.random);
    const shares = [];
    for (const [i, sealer] of this.sealers.entries()) {
      const point = points[i];
      const associatedData = concat(keyBinding, new Uint8Array([point.index]));
      shares.push(await sealer.seal(point.value, associatedData, this.random(NONCE_SIZE)));
    }
    const id = hex(draft.patientKey);
    if (!this.patients.has(id)) this.patients.set(id, await Sealer.create(draft.patientKey, this.random(KEY_SIZE)));
    const patient = await this.patients.get(id).seal(dataKey, concat(keyBinding, new Uint8Array([PATIENT_INDEX])),
      this.random(NONCE_SIZE));
    return encodeKeys(this.threshold, this.custodians, shares, patient);
  }
}

// One record version, sealed and signed by `author` (a crypto.js Key), in the wire form
// of medledger.records.wire.sealed_to_json. `draft`: { recordId, version, previous,
// patient, patientKey, resourceType, category }, ids and keys as bytes; `canonical`: the
// resource's RFC 8785 bytes.
export async function sealRecord(draft, canonical, { network, author, wrapper }) {
  const random = wrapper.random;
  const named = { recordId: hex(draft.recordId), version: draft.version, patient: draft.patient };
  const dataKey = random(KEY_SIZE);
  const contentSalt = random(SALT_SIZE);
  const ciphertext = await aesGcmSeal(dataKey, random(NONCE_SIZE), concat(contentSalt, canonical),
    binding('medledger/record-body/v1', named));
  const keys = await wrapper.wrap(dataKey, draft, binding('medledger/record-key/v1', named));
  const content = await sha256(concat(utf8('medledger/record-content/v1'), contentSalt, canonical));
  const header = {
    network,
    recordId: '0x' + hex(draft.recordId),
    version: draft.version,
    previous: '0x' + hex(draft.previous),
    patient: draft.patient,
    resourceType: draft.resourceType,
    category: draft.category,
    content: '0x' + hex(content),
    ciphertext: '0x' + hex(await sha256(ciphertext)),
    keys: '0x' + hex(await sha256(keys)),
  };
  const signature = author.signDigest(headerDigest(header));
  return {
    header,
    signature: '0x' + hex(signature),
    salt: '0x' + hex(random(SALT_SIZE)),
    keys: base64(keys),
    ciphertext: base64(ciphertext),
  };
}
