// Whom the page seals the patient's records to. The node names them, and a node that
// named keys of its own choosing could open what the page seals; so the page takes its
// word only as far as it checks out: the patient's key must be the one this browser
// derives from the patient's own, and the custodians and their threshold those the
// members cosigned (in the latest checkpoint, or in one covering the log when the latest
// predates a change of members).
import { x25519 } from '@noble/curves/ed25519.js';
import { hex, patientKey, unhex } from './crypto.js';

const MEMBER_NS = 'member';
const sameHex = (a, b) => a.replace(/^0x/, '').toLowerCase() === b.replace(/^0x/, '').toLowerCase();

// The answer of GET /v1/records/recipients, checked: { network, threshold, custodians:
// [{ address, key }], patientKey, maxPerWrite }, keys as bytes.
export async function checkedRecipients(recipients, key, trust) {
  if (recipients.patient !== key.address || !sameHex(recipients.patient_key, hex(x25519.getPublicKey(await patientKey(key))))) {
    throw new Error('the node would have your records sealed to a key that is not yours; nothing was written');
  }
  let checkpoint = await trust.latest();
  if (checkpoint === null || !(await cosigned(recipients, trust, checkpoint))) {
    checkpoint = await trust.covering();
    if (!(await cosigned(recipients, trust, checkpoint))) {
      throw new Error('the node names other custodians than the members cosigned; nothing was written');
    }
  }
  return {
    network: recipients.network,
    threshold: recipients.threshold,
    custodians: recipients.custodians.map((c) => ({ address: c.address, key: unhex(c.key) })),
    patientKey: unhex(recipients.patient_key),
    maxPerWrite: recipients.max_records_per_write,
  };
}

// Whether the custodians, in the ledger's order, and the threshold are the checkpoint's.
async function cosigned(recipients, trust, checkpoint) {
  const named = recipients.custodians.map((c) => c.address);
  if (recipients.network !== trust.network || recipients.threshold !== trust.config.custodian_threshold
      || named.join() !== trust.members.join()) return false;
  for (const custodian of recipients.custodians) {
    const member = await trust.proven(MEMBER_NS, custodian.address, checkpoint);
    if (member === null || member.status !== 'active' || !sameHex(member.custodian_key, custodian.key)) return false;
  }
  return true;
}
