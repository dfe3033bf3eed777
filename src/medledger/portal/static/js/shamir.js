// Shamir t-of-n splitting over GF(256), exactly as medledger.crypto.shamir: the AES
// polynomial 0x11B, one polynomial per secret byte, share i is the point x = i.
// Coefficient rows are drawn lowest degree first, each for the whole secret, so that
// the same random bytes give the Python side's shares (the known-answer tests).
// Only splitting lives here: the page seals keys, the custodians' side combines them.

const POLY = 0x11b;
// 3 generates the multiplicative group of this field; 2 does not.
const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
for (let power = 0, value = 1; power < 255; power += 1) {
  EXP[power] = value;
  LOG[value] = power;
  let doubled = value << 1;
  if (doubled & 0x100) doubled ^= POLY;
  value ^= doubled;
}
EXP.set(EXP.subarray(0, 255), 255);

const mul = (a, b) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

export const MAX_SHARES = 255;

// [{ index, value }] for x = 1..count; any `threshold` of them give back `secret`.
export function split(secret, threshold, count, randomBytes) {
  if (!(threshold >= 1 && threshold <= count && count <= MAX_SHARES)) {
    throw new Error(`cannot split ${threshold} of ${count}`);
  }
  const rows = [secret];
  // The top coefficient may be zero: forcing it non-zero would leak a little.
  for (let j = 1; j < threshold; j += 1) rows.push(randomBytes(secret.length));
  const shares = [];
  for (let x = 1; x <= count; x += 1) {
    const value = Uint8Array.from(rows[rows.length - 1]);
    for (let j = rows.length - 2; j >= 0; j -= 1) {
      for (let i = 0; i < value.length; i += 1) value[i] = mul(value[i], x) ^ rows[j][i];
    }
    shares.push({ index: x, value });
  }
  return shares;
}
