// Who an address is on the ledger, from state proven at a checkpoint: the signed-in key
// (a patient, or someone who opened the patient portal by mistake) and the people who
// ask for the patient's data. The node's word alone would let it dress up a requester
// as someone the patient trusts; the members' cosigned state does not.
import { NodeRefused } from './http.js';

const SUBJECT_NS = 'subject';
const PARTICIPANT_NS = 'participant';
const MEMBER_NS = 'member';

async function institution(trust, address, checkpoint, withAddress = false) {
  const member = await trust.proven(MEMBER_NS, address, checkpoint);
  if (member === null) return address;
  return withAddress ? `${member.name} (${address})` : member.name;
}

async function lookUp(trust, address, checkpoint) {
  const [subject, participant, member] = await Promise.all(
    [SUBJECT_NS, PARTICIPANT_NS, MEMBER_NS].map((ns) => trust.proven(ns, address, checkpoint)));
  return { subject, participant, member };
}

// A node answers an unregistered key's reads of state as missing and refuses it a
// checkpoint: that refusal is how the page learns the key is unknown, since no proof of
// absence is served to it.
const refusedAsStranger = (error) => error instanceof NodeRefused && [403, 404].includes(error.status);

// What the signed-in key is: { kind: 'patient' | 'participant' | 'member' | 'unknown',
// text, checkpoint }. The latest checkpoint may predate a registration just made, so a key
// not found there is looked up again at a checkpoint covering the log as it stands.
export async function whoAmI(trust, address) {
  let found = null;
  let checkpoint = null;
  try {
    checkpoint = await trust.latest();
    if (checkpoint !== null) found = await lookUp(trust, address, checkpoint);
  } catch (error) {
    if (!refusedAsStranger(error)) throw error;
  }
  if (found === null || (!found.subject && !found.participant && !found.member)) {
    try {
      checkpoint = await trust.covering();
      found = await lookUp(trust, address, checkpoint);
    } catch (error) {
      if (!refusedAsStranger(error)) throw error;
      return { kind: 'unknown', checkpoint: null, text: unknownText(address) };
    }
  }
  if (found.subject) return { kind: 'patient', checkpoint, text: '' };
  const { participant, member } = found;
  if (member && member.status === 'active') {
    return { kind: 'member', checkpoint, text: `This key is the institution ${member.name}'s own member key, not a patient's. The portal is for patients: sign in with your own keystore.` };
  }
  if (participant) {
    const where = await institution(trust, participant.institution, checkpoint, true);
    const standing = participant.status === 'active' ? `is registered as ${participant.role} at ${where}`
      : `was registered as ${participant.role} at ${where} (no longer active)`;
    return { kind: 'participant', checkpoint, text: `This key ${standing}, not as a patient. The portal is for patients: sign in with your own keystore.` };
  }
  return { kind: 'unknown', checkpoint, text: unknownText(address) };
}

function unknownText(address) {
  return `This key (${address}) is not registered on this network: the node knows no patient, staff member or institution by it. Register as a patient first, or sign in with the keystore you registered.`;
}

// Who asks, as the checkpoint proves: "doctor at Hospital B", or null when the
// checkpoint does not show them (registered since, or gone).
export async function describeParty(trust, address, checkpoint) {
  if (checkpoint === null) return null;
  // Staff and institutions are told apart by the ledger (register_participant refuses a
  // member's address), so an address found as staff needs no second look-up.
  const participant = await trust.proven(PARTICIPANT_NS, address, checkpoint);
  if (participant) {
    const where = await institution(trust, participant.institution, checkpoint);
    return participant.status === 'active' ? `${participant.role} at ${where}` : `formerly ${participant.role} at ${where}`;
  }
  const member = await trust.proven(MEMBER_NS, address, checkpoint);
  if (member) return `the institution ${member.name}`;
  return null;
}
