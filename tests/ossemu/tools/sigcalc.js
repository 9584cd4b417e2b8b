#!/usr/bin/env node
// tests/ossemu/tools/sigcalc.js - Authorization values computed by the official SDKs' signing
// code, for efc's signer unit test (tests/unit/oss/test_sign.c) to compare against.
//
// stdin: a JSON array of cases; stdout: a JSON array, one entry per case:
//   {"authorization": "...", "canonical": "..."}   or   {"error": "..."}
// ("canonical" is the SDK's V1 string to sign or V4/SigV4 canonical request, for diagnostics.)
//
// A case:
//   version             1 | 4 (OSS, ali-oss lib/common/signUtils.js) | "s3" (@smithy/signature-v4)
//   method              "GET"
//   bucket, key         raw (OSS); null or absent for none
//   path                s3 only: the raw, unencoded request path ("/bucket/a b")
//   query               {name: value | null}, raw; null = a bare "?name"
//   headers             {name: value} as efc sends them
//   additional_headers  V4: ["host", ...] or null
//   subres              V1 only, optional: the query names to sign, instead of the list below
//   region, service     V4 / s3 (service defaults to "s3")
//   ak, sk              credentials; the date comes from x-oss-date / Date / x-amz-date
//
// The request is first put in the shape ossemu's verifier hands the SDK code: header names
// lower-cased and values trimmed (what Node's HTTP parser does), and for s3 a bare "?name" read
// as "" (what URLSearchParams does; smithy drops null-valued parameters).
'use strict';

const path = require('path');
const modules = path.join(__dirname, '..', 'node_modules');
const signUtils = require(path.join(modules, 'ali-oss', 'lib', 'common', 'signUtils'));
const { SignatureV4, prepareRequest, getPayloadHash, getCanonicalHeaders } = require(
  path.join(modules, '@smithy', 'signature-v4'));
const { Sha256 } = require(path.join(modules, '@aws-crypto', 'sha256-js'));
const { HttpRequest, escapeUri } = require(path.join(modules, '@smithy', 'core', 'protocols'));

// ali-oss has no sub-resource table: each client method passes its own `subres`. These are the
// names its methods pass (grep of ali-oss 6.23.0 lib/: acl, bucketInfo, location, stat, ...,
// listV2's continuation-token, get's x-oss-process and response-*), plus resourceGroup (the Go v2
// SDK signs it, one of its vectors needs it). Any x-oss-* parameter is signed as well.
const ALI_SUBRES = new Set([
  'acl', 'asyncFetch', 'bucketInfo', 'comp', 'continuation-token', 'cors', 'delete', 'encryption',
  'inventory', 'inventoryId', 'lifecycle', 'live', 'location', 'logging', 'objectMeta',
  'partNumber', 'policy', 'referer', 'requestPayment', 'resourceGroup', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding', 'response-content-language',
  'response-content-type', 'response-expires', 'restore', 'security-token', 'stat', 'symlink',
  'tagging', 'uploadId', 'uploads', 'versionId', 'versioning', 'versions', 'website', 'worm',
  'wormExtend', 'wormId',
]);

function nodeHeaders(h) {
  const out = {};
  for (const [k, v] of Object.entries(h || {})) out[k.toLowerCase()] = String(v).trim();
  return out;
}

function signV1(c) {
  const headers = nodeHeaders(c.headers);
  const query = c.query || {};
  const subres = {};
  for (const k of Object.keys(query)) {
    const signed = c.subres ? c.subres.includes(k) : ALI_SUBRES.has(k) || k.startsWith('x-oss-');
    if (signed) subres[k] = query[k] === null ? '' : query[k];
  }
  // ali-oss client.js _getResource()
  let resource = '/';
  if (c.bucket) resource += `${c.bucket}/`;
  if (c.key) resource += c.key;
  const canonical = signUtils.buildCanonicalString(c.method, resource, { headers, parameters: subres });
  return { authorization: signUtils.authorization(c.ak, c.sk, canonical), canonical };
}

function signV4(c) {
  const headers = nodeHeaders(c.headers);
  const queries = Object.assign({}, c.query || {});
  const request = { headers, queries };
  const bucket = c.bucket || undefined;
  const key = c.key || undefined;
  const add = c.additional_headers || undefined;
  const canonical = signUtils.getCanonicalRequest(c.method, request, bucket, key,
    signUtils.fixAdditionalHeaders(add));
  const authorization = signUtils.authorizationV4(c.ak, c.sk, c.region, c.method, request, bucket, key, add);
  return { authorization, canonical };
}

function amzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) throw new Error(`bad or missing x-amz-date '${s}'`);
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

async function signS3(c) {
  const headers = nodeHeaders(c.headers);
  const query = {};
  for (const [k, v] of Object.entries(c.query || {})) query[k] = v === null ? '' : v;
  // The AWS SDK's S3 client encodes the key per path segment (extendedEncodeURIComponent).
  const encodedPath = (c.path || '/').split('/').map(escapeUri).join('/');
  const credentials = { accessKeyId: c.ak, secretAccessKey: c.sk };
  if (headers['x-amz-security-token']) credentials.sessionToken = headers['x-amz-security-token'];
  const service = c.service || 's3';
  const signer = new SignatureV4({
    credentials, region: c.region, service, sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const signingDate = amzDate(headers['x-amz-date']);
  const req = new HttpRequest({
    method: c.method, protocol: 'https:', hostname: headers.host, path: encodedPath, query, headers,
  });
  const signed = await signer.sign(req, { signingDate });

  // The canonical request, as signRequest() builds it, for diagnostics.
  const prepared = prepareRequest(req);
  prepared.headers['x-amz-date'] = headers['x-amz-date'];
  if (credentials.sessionToken) prepared.headers['x-amz-security-token'] = credentials.sessionToken;
  const payloadHash = await getPayloadHash(prepared, Sha256);
  const canonical = signer.createCanonicalRequest(prepared, getCanonicalHeaders(prepared), payloadHash);
  return { authorization: signed.headers.authorization, canonical };
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = [];
  for (const c of cases) {
    try {
      if (c.version === 1) results.push(signV1(c));
      else if (c.version === 4) results.push(signV4(c));
      else if (c.version === 's3') results.push(await signS3(c));
      else throw new Error(`unknown version ${JSON.stringify(c.version)}`);
    } catch (err) {
      results.push({ error: String(err && err.message ? err.message : err) });
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().catch(err => {
  process.stderr.write(`sigcalc: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
