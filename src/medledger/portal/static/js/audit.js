// Who read the patient's records: one row per read (the receipts of the custodians that
// released a share of its key), naming the record as its author signed it, and a badge
// once the page has checked every receipt into a checkpoint the members cosigned.
import { verifyInclusion } from './crypto.js';
import { call, me } from './session.js';
import { $, badge, cell, el } from './ui.js';

async function receiptProven(receipt, checkpoint) {
  if (receipt.checkpoint === null || receipt.index >= checkpoint.size) return false;
  const proof = await call('GET', `/v1/ledger/proofs/inclusion?index=${receipt.index}&size=${checkpoint.size}`);
  const included = await verifyInclusion(new TextEncoder().encode(proof.transaction), receipt.index,
    checkpoint.size, proof.path, checkpoint.root);
  return included && JSON.parse(proof.transaction).type === 'access.receipt';
}

async function proofBadge(read, checkpoint) {
  if (checkpoint === null || read.receipts.some((r) => r.checkpoint === null || r.index >= checkpoint.size)) {
    return ['pending', 'not yet in a checkpoint'];
  }
  for (const receipt of read.receipts) {
    if (!(await receiptProven(receipt, checkpoint))) return ['failed', 'a receipt is not in the checkpoint'];
  }
  return ['proven', `✓ in checkpoint ${checkpoint.size}, cosigned by ${checkpoint.signers} of ${checkpoint.trusted}`];
}

// A ledger time (ns since the epoch) in UTC, to the second; ms precision is all a
// JavaScript number keeps of it, and all a person needs.
function utc(ns) {
  return new Date(Number(ns) / 1e6).toISOString().slice(0, 19).replace('T', ' ');
}

export async function showAudit(checkpoint) {
  const audit = await call('GET', `/v1/audit/${me()}`);
  const body = $('audit').tBodies[0];
  body.replaceChildren();
  $('audit-empty').hidden = audit.reads.length > 0;
  for (const read of audit.reads) {
    const row = body.insertRow();
    row.dataset.read = read.read;
    cell(row, utc(read.timestamp_ns));
    cell(row, read.reader, 'address');
    const record = cell(row, `${read.resource_type} v${read.version} `);
    record.appendChild(el('span', 'address', read.record_id));
    cell(row, read.category);
    cell(row, read.emergency ? `${read.purpose} (break-glass)` : read.purpose, read.emergency ? 'flag' : '');
    const [kind, text] = await proofBadge(read, checkpoint);
    row.insertCell().appendChild(badge(kind, text));
  }
  const notices = $('notices');
  notices.replaceChildren();
  for (const n of audit.break_glass) {
    notices.appendChild(el('li', 'flag', `Break-glass grant to ${n.requester} for ${n.categories.join(', ')} (${n.purpose})`));
  }
}
