// A record's signed header (medledger.records.header): the EIP-712 digest its author
// signs, and the check anyone can make of a sealed record without a key, that the
// ciphertext and wrapped keys are the ones the header binds and who signed it.
import {
  addressWord, concat, hex, keccak, recoverAddress, sha256, typedDigest, unbase64, unhex, utf8, word,
} from './crypto.js';

const RECORD_TYPE = keccak(utf8('Record(bytes16 recordId,uint32 version,bytes32 previous,address patient,'
  + 'string resourceType,string category,bytes32 content,bytes32 ciphertext,bytes32 keys)'));

// The header in its wire form (records/wire.py), as a node serves it or the page made it.
export function headerDigest(header) {
  const recordId = new Uint8Array(32);
  recordId.set(unhex(header.recordId));
  const struct = keccak(concat(RECORD_TYPE, recordId, word(header.version), unhex(header.previous),
    addressWord(header.patient), keccak(utf8(header.resourceType)), keccak(utf8(header.category)),
    unhex(header.content), unhex(header.ciphertext), unhex(header.keys)));
  return typedDigest('medledger records', header.network, struct);
}

// The author of a sealed record (wire form), once its ciphertext and keys are found to be
// the ones its header binds; throws, naming what does not match, otherwise.
export async function authorOf(sealed) {
  const { header } = sealed;
  if (hex(await sha256(unbase64(sealed.ciphertext))) !== header.ciphertext.replace(/^0x/, '')) {
    throw new Error(`record ${header.recordId} v${header.version}: the ciphertext does not match its signed header`);
  }
  if (hex(await sha256(unbase64(sealed.keys))) !== header.keys.replace(/^0x/, '')) {
    throw new Error(`record ${header.recordId} v${header.version}: the wrapped keys do not match its signed header`);
  }
  return recoverAddress(headerDigest(header), unhex(sealed.signature));
}
