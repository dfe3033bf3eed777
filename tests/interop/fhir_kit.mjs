// Drives a node's FHIR API with fhir-kit-client, as a JavaScript EHR would. Reads its
// settings as JSON on stdin ({base, clientId, jwk, patient, bundle}) and prints what it
// saw as JSON on stdout, for tests/node/test_fhir_interop.py to check.
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { Client } from 'fhir-kit-client';

const settings = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));

function base64url(bytes) {
  return Buffer.from(bytes).toString('base64url');
}

// A SMART Backend Services client assertion (RFC 7523), ES384 as SMART requires.
function assertion(tokenUrl) {
  const header = { alg: 'ES384', typ: 'JWT', kid: settings.jwk.kid };
  const claims = {
    iss: settings.clientId, sub: settings.clientId, aud: tokenUrl,
    exp: Math.floor(Date.now() / 1000) + 240, jti: randomUUID(),
  };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const key = createPrivateKey({ key: settings.jwk, format: 'jwk' });
  const signature = sign('sha384', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}

async function token(tokenUrl, scope) {
  const form = new URLSearchParams({
    grant_type: 'client_credentials', scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: assertion(tokenUrl),
  });
  const answer = await fetch(tokenUrl, { method: 'POST', body: form });
  if (!answer.ok) throw new Error(`token: ${answer.status} ${await answer.text()}`);
  return (await answer.json()).access_token;
}

const client = new Client({ baseUrl: `${settings.base}/fhir` });
const auth = await client.smartAuthMetadata();
const bearer = await token(auth.tokenUrl, 'system/*.rs');
client.bearerToken = bearer;

const pages = [];
let page = await client.search({
  resourceType: 'Observation', searchParams: { patient: settings.patient, _count: 2 },
});
while (page) {
  pages.push((page.entry || []).map((e) => e.resource.id));
  page = client.nextPage({ bundle: page });
  if (page) page = await page;
}

const everything = await client.operation({
  name: '$everything', resourceType: 'Patient', id: settings.patient, method: 'get',
});

// Bulk Data: kick-off, status polled until the manifest, then each NDJSON file.
const kickOff = await client.request('Patient/$export?_type=Observation,Condition', {
  options: { headers: { Prefer: 'respond-async', Accept: 'application/fhir+json' } },
});
const statusUrl = Client.httpFor(kickOff).response.headers.get('content-location');
let manifest = null;
for (let tries = 0; !manifest && tries < 600; tries += 1) {
  const status = await client.request(statusUrl);
  if (Client.httpFor(status).response.status === 200) manifest = status;
  else await new Promise((resolve) => setTimeout(resolve, 100));
}
const exported = {};
for (const output of manifest.output) {
  const file = await fetch(output.url, {
    headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/fhir+ndjson' },
  });
  const lines = (await file.text()).split('\n').filter((line) => line);
  exported[output.type] = (exported[output.type] || 0) + lines.length;
}

client.bearerToken = await token(auth.tokenUrl, 'system/*.cruds');
const transaction = await client.transaction({ body: settings.bundle });

let refused = null;
try {
  await client.read({ resourceType: 'Observation', id: '0'.repeat(32) });
} catch (error) {
  refused = { status: error.response.status, resourceType: error.response.data.resourceType };
}

process.stdout.write(JSON.stringify({
  tokenUrl: auth.tokenUrl,
  pages,
  everything: everything.entry.map((e) => e.resource.meta.source),
  total: everything.total,
  exported,
  transaction: transaction.entry.map((e) => e.response.status),
  refused,
}));
