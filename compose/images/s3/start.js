'use strict';
// s3rver with the lab's own credentials instead of its built-in S3RVER/S3RVER pair, every
// request's Signature V4 checked against the secret (s3rver itself checks only the key id),
// TLS 1.3 from the mounted certificate. The bucket is made by `harness up`.
const crypto = require('crypto');
const fs = require('fs');
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`s3: ${name} is not set (harness up generates it into .env)`);
    process.exit(2);
  }
  return value;
}

const tls = process.env.S3_TLS_DIR || '/etc/gardenlab/tls';
const directory = process.env.S3_DIRECTORY || '/var/lib/s3';
try {
  fs.accessSync(directory, fs.constants.W_OK);
} catch {
  // a `backups` volume from before the S3 repository holds pgBackRest's files, owned by postgres
  console.error(`s3: ${directory} is not writable: a \`backups\` volume from before the S3 ` +
    'repository? `harness down`, `docker volume rm <project>_backups`, `harness up`');
  process.exit(2);
}
DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
DUMMY_ACCOUNT.createKeyPair(required('S3_ACCESS_KEY'), required('S3_SECRET_KEY'));

const ACCESS_KEY = required('S3_ACCESS_KEY');
const SECRET_KEY = required('S3_SECRET_KEY');

const hmac = (key, text) => crypto.createHmac('sha256', key).update(text).digest();
const sha256 = (text) => crypto.createHash('sha256').update(text).digest('hex');
const encode = (text) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const decode = (text) => decodeURIComponent(text.replace(/\+/g, '%20'));

// The signature AWS would compute for this request (header authorization, Signature V4).
function expectedSignature(req, auth) {
  const [rawPath, rawQuery = ''] = req.url.split(/\?(.*)/s);
  const query = rawQuery
    .split('&')
    .filter(Boolean)
    .map((part) => {
      const [name, ...value] = part.split('=');
      return [encode(decode(name)), encode(decode(value.join('=')))];
    })
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const names = auth.signedHeaders.split(';');
  const headers = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`);
  const canonical = [req.method, rawPath, query, headers.join(''), auth.signedHeaders,
    req.headers['x-amz-content-sha256'] || 'UNSIGNED-PAYLOAD'].join('\n');
  const [day, region, service] = auth.scope.split('/');
  const toSign = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], auth.scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${SECRET_KEY}`, day);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  return crypto.createHmac('sha256', key).update(toSign).digest('hex');
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/;

function refuse(ctx, code, message) {
  ctx.status = 403;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}

// Every request signed with the lab's key: s3rver would serve an unsigned one anonymously.
async function verifySignature(ctx, next) {
  const match = AUTH.exec(ctx.get('authorization'));
  if (!match) return refuse(ctx, 'AccessDenied', 'Requests must be signed (Signature V4).');
  const [, key, scope, signedHeaders, signature] = match;
  if (key !== ACCESS_KEY) return refuse(ctx, 'InvalidAccessKeyId', 'Unknown access key.');
  if (expectedSignature(ctx.req, { scope, signedHeaders }) !== signature) {
    return refuse(ctx, 'SignatureDoesNotMatch', 'The request signature does not match.');
  }
  return next();
}

const server = new S3rver({
  address: '0.0.0.0',
  port: Number(process.env.S3_PORT || 9000),
  directory,
  key: fs.readFileSync(`${tls}/tls.key`),
  cert: fs.readFileSync(`${tls}/tls.crt`),
  minVersion: 'TLSv1.3',
  vhostBuckets: false,
  silent: process.env.S3_LOG !== '1',
});
server.middleware.unshift(verifySignature);
server
  .run()
  .then(({ address, port }) => console.log(`s3: listening on ${address}:${port} (TLS)`))
  .catch((err) => {
    console.error(`s3: ${err.message}`);
    process.exit(1);
  });
