// The portal's cryptography, in the browser: the patient's key never leaves it.
// Keystores (scrypt, AES-128-CTR, Keccak MAC), secp256k1 recoverable signatures,
// EIP-712 digests for approvals and transactions, RFC 8785 for payloads, and
// X25519 + HKDF + AES-GCM to open the patient's copy of a record key. Every format
// here is the one the Python side defines; the portal's tests check both agree.
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';

const encoder = new TextEncoder();

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(text) {
  const clean = text.startsWith('0x') ? text.slice(2) : text;
  if (clean.length % 2 || /[^0-9a-fA-F]/.test(clean)) throw new Error('not hex');
  return Uint8Array.from(clean.match(/../g) || [], (b) => parseInt(b, 16));
}

export function unbase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function base64(bytes) {
  // In slices: spreading a whole record's ciphertext into one call overflows the stack.
  let text = '';
  for (let at = 0; at < bytes.length; at += 0x8000) text += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  return btoa(text);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

export const keccak = (bytes) => keccak_256(bytes);
export const utf8 = (text) => encoder.encode(text);

export function word(value) {
  // A uint256 (BigInt or number) as 32 big-endian bytes.
  let n = BigInt(value);
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i -= 1) { out[i] = Number(n & 0xffn); n >>= 8n; }
  return out;
}

export function addressWord(address) {
  return concat(new Uint8Array(12), unhex(address));
}

export function checksumAddress(raw) {
  const lower = hex(raw);
  const digest = hex(keccak(utf8(lower)));
  return '0x' + [...lower].map((c, i) => (parseInt(digest[i], 16) >= 8 ? c.toUpperCase() : c)).join('');
}

export class Key {
  constructor(secret) {
    this.secret = secret;
    const point = secp256k1.getPublicKey(secret, false);
    this.address = checksumAddress(keccak(point.slice(1)).slice(12));
  }

  // 65 bytes r || s || v, v in {27, 28}, low s: what medledger.crypto.keys signs.
  signDigest(digest) {
    const signed = secp256k1.sign(digest, this.secret, { prehash: false, format: 'recovered' });
    return concat(signed.slice(1), new Uint8Array([27 + signed[0]]));
  }
}

export async function openKeystore(document, passphrase) {
  const c = document.crypto || document.Crypto;
  if (!c || c.kdf !== 'scrypt' || c.cipher !== 'aes-128-ctr') throw new Error('not a scrypt keystore');
  const p = c.kdfparams;
  const derived = await scryptAsync(utf8(passphrase), unhex(p.salt), { N: p.n, r: p.r, p: p.p, dkLen: p.dklen });
  const ciphertext = unhex(c.ciphertext);
  if (hex(keccak(concat(derived.slice(16, 32), ciphertext))) !== c.mac.replace(/^0x/, '')) {
    throw new Error('wrong passphrase');
  }
  const aesKey = await crypto.subtle.importKey('raw', derived.slice(0, 16), 'AES-CTR', false, ['decrypt']);
  const counter = unhex(c.cipherparams.iv);
  const secret = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-CTR', counter, length: 128 }, aesKey, ciphertext));
  return new Key(secret);
}

// -- EIP-712 -----------------------------------------------------------------------

const DOMAIN_TYPE = keccak(utf8('EIP712Domain(string name,string version,uint256 chainId)'));
const APPROVAL_TYPE = keccak(utf8('Approval(bytes32 request,address patient,address requester,uint64 notAfter)'));
const TRANSACTION_TYPE = keccak(utf8('Transaction(uint256 network,address sender,uint64 nonce,string txType,bytes32 payloadHash)'));

function domainSeparator(name, network) {
  return keccak(concat(DOMAIN_TYPE, keccak(utf8(name)), keccak(utf8('1')), word(network)));
}

export function typedDigest(name, network, structHash) {
  return keccak(concat(new Uint8Array([0x19, 0x01]), domainSeparator(name, network), structHash));
}

export function approvalDigest(network, request, patient, requester, notAfterMs) {
  const struct = keccak(concat(APPROVAL_TYPE, unhex(request), addressWord(patient), addressWord(requester), word(notAfterMs)));
  return typedDigest('medledger access', network, struct);
}

// RFC 8785 for what a portal sends: objects, arrays, strings, integers, booleans, null.
export function canonicalJson(value) {
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  if (value !== null && typeof value === 'object') {
    return '{' + Object.keys(value).sort().map((k) => JSON.stringify(k) + ':' + canonicalJson(value[k])).join(',') + '}';
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error('integers only');
  return JSON.stringify(value);
}

// The EIP-712 digest a transaction's sender signs, which is also its id.
export function transactionDigest(network, sender, nonce, type, payload) {
  const payloadHash = keccak(utf8(canonicalJson(payload)));
  const struct = keccak(concat(TRANSACTION_TYPE, word(network), addressWord(sender), word(nonce), keccak(utf8(type)), payloadHash));
  return typedDigest('medledger', network, struct);
}

export function signTransaction(key, network, nonce, type, payload) {
  const signature = key.signDigest(transactionDigest(network, key.address, nonce, type, payload));
  return { network, sender: key.address, nonce, type, payload, signature: '0x' + hex(signature) };
}

// -- the patient's copy of a record ----------------------------------------------------

export async function hkdf(ikm, info, length) {
  const base = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info }, base, length * 8);
  return new Uint8Array(bits);
}

async function aesGcmOpen(key, sealed, associatedData) {
  const aes = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['decrypt']);
  const iv = sealed.slice(0, 12);
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: associatedData }, aes, sealed.slice(12)));
}

export const ECIES_LABEL = utf8('medledger/ecies/v1');

export async function patientKey(key) {
  return hkdf(key.secret, concat(ECIES_LABEL, utf8('/patient')), 32);
}

async function eciesOpen(privateKey, sealed, associatedData) {
  const ephemeral = sealed.slice(0, 32);
  const shared = x25519.getSharedSecret(privateKey, ephemeral);
  const aesKey = await hkdf(shared, concat(ECIES_LABEL, ephemeral, x25519.getPublicKey(privateKey)), 32);
  return aesGcmOpen(aesKey, sealed.slice(32), associatedData);
}

export function binding(label, header) {
  const version = new Uint8Array(4);
  new DataView(version.buffer).setUint32(0, header.version);
  return concat(utf8(label), unhex(header.recordId), version, unhex(header.patient));
}

function patientShare(keys) {
  // format, threshold, count, then per custodian: address (20), u16 length, share; then the patient's.
  const view = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
  let at = 3;
  for (let i = 0; i < keys[2]; i += 1) at += 20 + 2 + view.getUint16(at + 20);
  const length = view.getUint16(at);
  return keys.slice(at + 2, at + 2 + length);
}

// The record's canonical FHIR JSON, checked against the content its author signed, and
// the content's salt: together they let an issuer check the record (credentials).
export async function openAsPatient(key, sealed) {
  const header = sealed.header;
  const keys = unbase64(sealed.keys);
  const dataKey = await eciesOpen(await patientKey(key), patientShare(keys),
    concat(binding('medledger/record-key/v1', header), new Uint8Array([0])));
  const plaintext = await aesGcmOpen(dataKey, unbase64(sealed.ciphertext), binding('medledger/record-body/v1', header));
  const salt = plaintext.slice(0, 32);
  const canonical = plaintext.slice(32);
  const content = new Uint8Array(await crypto.subtle.digest('SHA-256', concat(utf8('medledger/record-content/v1'), salt, canonical)));
  if (hex(content) !== header.content.slice(2)) throw new Error('the record does not match what its author signed');
  return { canonical: new TextDecoder().decode(canonical), salt: '0x' + hex(salt), bytes: canonical };
}

// -- checkpoints and inclusion proofs (RFC 6962 / 9162) --------------------------------

const HEAD_TYPE = keccak(utf8('TreeHead(uint256 network,uint64 size,bytes32 root,bytes32 stateRoot,uint64 timestamp)'));

export function recoverAddress(digest, signature) {
  const recovered = concat(new Uint8Array([signature[64] - 27]), signature.slice(0, 64));
  const point = secp256k1.Signature.fromBytes(recovered, 'recovered').recoverPublicKey(digest);
  return checksumAddress(keccak(point.toBytes(false).slice(1)).slice(12));
}

// Who of the current members cosigned the checkpoint's head; the caller compares the
// count with the network's threshold.
export function checkpointSigners(checkpoint, members) {
  const struct = keccak(concat(HEAD_TYPE, word(checkpoint.network), word(checkpoint.size),
    unhex(checkpoint.root), unhex(checkpoint.state_root), word(checkpoint.timestamp_ms)));
  const digest = typedDigest('medledger', checkpoint.network, struct);
  return Object.entries(checkpoint.cosignatures).filter(([address, signature]) => {
    try {
      return members.includes(address) && recoverAddress(digest, unhex(signature)) === address;
    } catch {
      return false;
    }
  }).map(([address]) => address);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

export async function verifyInclusion(leafData, index, size, path, root) {
  let hash = await sha256(concat(new Uint8Array([0]), leafData));
  let fn = index;
  let sn = size - 1;
  for (const sibling of path.map(unhex)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = await sha256(concat(new Uint8Array([1]), sibling, hash));
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      hash = await sha256(concat(new Uint8Array([1]), hash, sibling));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hex(hash) === root.replace(/^0x/, '');
}

// -- state proofs (medledger.crypto.smt) ----------------------------------------------

const ZERO = new Uint8Array(32);
const STATE_LABEL = utf8('medledger/state/v1\u0000');

async function sha256Of(...parts) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)));
}

const bitAt = (path, i) => (path[i >> 3] >> (7 - (i & 7))) & 1;

// Whether a state proof, as a node serves it, shows its entry holding the value whose
// exact stored text is `proof.encoded` (absent when null) under `stateRoot`.
export async function verifyStateProof(proof, stateRoot) {
  const path = await sha256Of(STATE_LABEL, utf8(proof.ns), new Uint8Array([0]), utf8(proof.key));
  if (hex(path) !== proof.proof.path.replace(/^0x/, '')) return false;
  const siblings = proof.proof.siblings.map(unhex);
  if (siblings.length > 256 || siblings.some((s) => s.length !== 32)) return false;
  const leaf = proof.proof.leaf;
  let hash;
  if (leaf === null) {
    if (proof.encoded !== null) return false;
    hash = ZERO;
  } else {
    const [leafPath, leafValue] = leaf.map(unhex);
    if (hex(leafPath) === hex(path)) {
      if (proof.encoded === null) return false;
      if (hex(await sha256Of(utf8(proof.encoded))) !== hex(leafValue)) return false;
    } else {
      if (proof.encoded !== null) return false;
      for (let i = 0; i < siblings.length; i += 1) if (bitAt(leafPath, i) !== bitAt(path, i)) return false;
    }
    hash = await sha256Of(new Uint8Array([0]), leafPath, leafValue);
  }
  for (let level = siblings.length - 1; level >= 0; level -= 1) {
    hash = bitAt(path, level)
      ? await sha256Of(new Uint8Array([1]), siblings[level], hash)
      : await sha256Of(new Uint8Array([1]), hash, siblings[level]);
  }
  return hex(hash) === stateRoot.replace(/^0x/, '');
}
