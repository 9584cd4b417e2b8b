'use strict';
/*
 * Request authentication, with the official SDKs' own signing code doing the signing:
 *
 *   OSS V1  (Authorization: OSS ak:sig)            ali-oss lib/common/signUtils buildCanonicalString
 *                                                   + computeSignature
 *   OSS V4  (Authorization: OSS4-HMAC-SHA256 ...)  ali-oss signUtils getCanonicalRequest
 *                                                   + getStringToSign + getSignatureV4
 *   S3      (Authorization: AWS4-HMAC-SHA256 ...)  @smithy/signature-v4 SignatureV4 (the AWS SDK v3
 *                                                   signer) with @aws-crypto/sha256-js
 *
 * We rebuild, from the request as received (decoded path, decoded query, headers), the input each
 * SDK's client side would have signed, let the SDK compute the signature and compare it with the
 * one provided. What is rebuilt, and how, follows the server's view of each protocol:
 *   - V1: canonical resource "/bucket/key" with the key as raw UTF-8; only the sub-resources OSS
 *     signs (SIGNED_SUBRESOURCES, the aliyun-oss-go-sdk list, plus any x-oss-* parameter); the date
 *     line is the Date header or, failing that, x-oss-date (either is accepted).
 *   - V4: every query parameter; an empty value is tried as a bare "k" (Go v2 SDK, OSS docs) and,
 *     if that fails, as "k=" (ali-oss for query values); AdditionalHeaders as listed.
 *   - S3: canonical URI re-encoded from the decoded path (as S3 does), only the headers named in
 *     SignedHeaders, x-amz-content-sha256 as the payload hash (empty-body hash when absent).
 * Order of checks: key id, STS token, clock skew (15 min), signature.
 */
const crypto = require('crypto');
const signUtils = require('ali-oss/lib/common/signUtils');
const { SignatureV4, getCanonicalHeaders, getPayloadHash } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');
const { clock, parseAmzDate, parseAnyDate, isoSeconds } = require('./util');

const MAX_SKEW_MS = 15 * 60 * 1000;

// Sub-resources covered by a V1 signature (aliyun-oss-go-sdk oss/conn.go signKeyList).
const SIGNED_SUBRESOURCES = new Set([
  'acl', 'uploads', 'location', 'cors', 'logging', 'website', 'referer', 'lifecycle', 'delete',
  'append', 'tagging', 'objectMeta', 'uploadId', 'partNumber', 'security-token', 'position', 'img',
  'style', 'styleName', 'replication', 'replicationProgress', 'replicationLocation', 'cname',
  'bucketInfo', 'comp', 'qos', 'live', 'status', 'vod', 'startTime', 'endTime', 'symlink',
  'x-oss-process', 'response-content-type', 'x-oss-traffic-limit', 'response-content-language',
  'response-expires', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'udf', 'udfName', 'udfImage', 'udfId', 'udfImageDesc',
  'udfApplication', 'udfApplicationLog', 'restore', 'callback', 'callback-var', 'qosInfo',
  'policy', 'stat', 'encryption', 'versions', 'versioning', 'versionId', 'requestPayment',
  'x-oss-request-payer', 'sequential', 'inventory', 'inventoryId', 'continuation-token',
  'asyncFetch', 'worm', 'wormId', 'wormExtend', 'withHashContext', 'x-oss-enable-md5',
  'x-oss-enable-sha1', 'x-oss-enable-sha256', 'x-oss-hash-ctx', 'x-oss-md5-ctx',
  'transferAcceleration', 'regionList', 'cloudboxes', 'x-oss-ac-source-ip',
  'x-oss-ac-subnet-mask', 'x-oss-ac-vpc-id', 'x-oss-ac-forward-allow', 'metaQuery',
  'resourceGroup', 'rtc', 'x-oss-async-process', 'responseHeader',
]);

/** The accepted credentials: long-term keys, STS keys (with token) and expired tokens. */
class Credentials {
  constructor() {
    this.keys = new Map(); // ak -> {sk, token|null}
    this.expired = new Set();
  }

  /** Parses "AK:SK" / "AK:SK:TOKEN" (the secret may not contain ':'; the token may). */
  static parse(spec, withToken) {
    if (typeof spec !== 'string') throw new Error(`bad credential ${JSON.stringify(spec)}`);
    const a = spec.indexOf(':');
    if (a <= 0) throw new Error(`bad credential "${spec}" (want AK:SK${withToken ? ':TOKEN' : ''})`);
    const ak = spec.slice(0, a);
    const rest = spec.slice(a + 1);
    if (!withToken) {
      if (!rest) throw new Error(`bad credential "${spec}" (empty secret)`);
      return { ak, sk: rest, token: null };
    }
    const b = rest.indexOf(':');
    if (b <= 0 || b === rest.length - 1) throw new Error(`bad STS credential "${spec}" (want AK:SK:TOKEN)`);
    return { ak, sk: rest.slice(0, b), token: rest.slice(b + 1) };
  }

  /** Replaces the parts present in SPEC ({creds, sts, expired_tokens}); absent parts are kept. */
  replace(spec) {
    const keys = new Map();
    const has = k => Object.prototype.hasOwnProperty.call(spec, k);
    for (const field of ['creds', 'sts', 'expired_tokens']) {
      if (has(field) && !Array.isArray(spec[field])) throw new Error(`${field} must be an array`);
    }
    if (has('creds')) {
      for (const c of spec.creds) {
        const p = Credentials.parse(c, false);
        keys.set(p.ak, p);
      }
    } else {
      for (const [ak, v] of this.keys) if (!v.token) keys.set(ak, v);
    }
    if (has('sts')) {
      for (const c of spec.sts) {
        const p = Credentials.parse(c, true);
        keys.set(p.ak, p);
      }
    } else {
      for (const [ak, v] of this.keys) if (v.token) keys.set(ak, v);
    }
    let expired = this.expired;
    if (has('expired_tokens')) {
      for (const t of spec.expired_tokens) if (typeof t !== 'string') throw new Error('expired_tokens must hold strings');
      expired = new Set(spec.expired_tokens);
    }
    this.keys = keys;
    this.expired = expired;
  }

  toJSON() {
    const creds = [];
    const sts = [];
    for (const v of this.keys.values()) {
      if (v.token) sts.push(`${v.ak}:${v.sk}:${v.token}`);
      else creds.push(`${v.ak}:${v.sk}`);
    }
    return { creds, sts, expired_tokens: [...this.expired] };
  }
}

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function fail(status, code, message, extra) {
  return { ok: false, status, code, message, extra: extra || [] };
}

/** Splits "k1=v1, k2=v2" (after the algorithm name) into a map. */
function parseAuthParams(s) {
  const out = {};
  for (const part of s.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) return null;
    out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

/** Which scheme the Authorization header uses: 'v1', 'v4', 's3' or null. */
function schemeOf(authorization) {
  if (typeof authorization !== 'string') return null;
  if (authorization.startsWith('OSS4-HMAC-SHA256 ')) return 'v4';
  if (authorization.startsWith('AWS4-HMAC-SHA256 ')) return 's3';
  if (authorization.startsWith('OSS ')) return 'v1';
  return null;
}

class Authenticator {
  /**
   * @param {Credentials} creds
   * @param {string} region region V4 and SigV4 signatures must use
   */
  constructor(creds, region) {
    this.creds = creds;
    this.region = region;
  }

  /**
   * Verifies request R: {method, headers (lower-case names), bucket, key, query ([[k, v]...]),
   * s3Path (decoded path as received)}. Returns {ok: true, ak} or {ok: false, status, code,
   * message, extra}.
   */
  async verify(r) {
    const auth = r.headers.authorization;
    if (auth === undefined) {
      return fail(403, 'AccessDenied', 'AccessDenied: no Authorization header (anonymous access is not allowed).');
    }
    const scheme = schemeOf(auth);
    if (scheme === 'v1') return this.verifyV1(r, auth);
    if (scheme === 'v4') return this.verifyV4(r, auth);
    if (scheme === 's3') return this.verifyS3(r, auth);
    return fail(400, 'InvalidArgument', 'Authorization header is invalid (unknown scheme).',
      [['ArgumentName', 'Authorization'], ['ArgumentValue', auth.slice(0, 64)]]);
  }

  /** Key lookup, STS token, clock. Returns {cred} or a failure. */
  checkKeyTokenTime(ak, token, dateMs, dateStr, akTag) {
    const cred = this.creds.keys.get(ak);
    if (!cred) {
      return fail(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.', [[akTag, ak]]);
    }
    if (token !== undefined && this.creds.expired.has(token)) {
      return fail(403, 'SecurityTokenExpired', 'The security token you provided has expired.', [[akTag, ak]]);
    }
    if (cred.token) {
      if (token === undefined) {
        return fail(403, 'InvalidAccessKeyId', 'The access key id is a temporary one: the request must carry its security token.', [[akTag, ak]]);
      }
      if (token !== cred.token) {
        return fail(403, 'InvalidAccessKeyId', 'The security token does not match the access key id.', [[akTag, ak]]);
      }
    }
    if (Number.isNaN(dateMs)) {
      return fail(403, 'AccessDenied', `The request must carry a valid date (got ${JSON.stringify(dateStr || '')}).`);
    }
    const now = clock.now();
    if (Math.abs(dateMs - now) > MAX_SKEW_MS) {
      return fail(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', [
        ['RequestTime', isoSeconds(dateMs)],
        ['ServerTime', isoSeconds(now)],
        ['MaxAllowedSkewMilliseconds', String(MAX_SKEW_MS)],
      ]);
    }
    return { cred };
  }

  // ------------------------------------------------------------------ OSS V1

  verifyV1(r, auth) {
    const m = /^OSS ([^:\s]+):(\S+)$/.exec(auth);
    if (!m) {
      return fail(400, 'InvalidArgument', 'Authorization header is invalid: want "OSS AccessKeyId:Signature".',
        [['ArgumentName', 'Authorization'], ['ArgumentValue', auth.slice(0, 128)]]);
    }
    const [, ak, provided] = m;
    const h = r.headers;
    const dateStr = h['x-oss-date'] !== undefined ? h['x-oss-date'] : h.date;
    const c = this.checkKeyTokenTime(ak, h['x-oss-security-token'], parseAnyDate(dateStr), dateStr, 'OSSAccessKeyId');
    if (!c.cred) return c;

    const resource = r.bucket ? `/${r.bucket}/${r.key}` : '/';
    const parameters = {};
    for (const [k, v] of r.query) {
      if (SIGNED_SUBRESOURCES.has(k) || k.startsWith('x-oss-')) parameters[k] = v === '' ? null : v;
    }
    const candidates = [];
    if (h.date !== undefined) candidates.push(h.date);
    if (h['x-oss-date'] !== undefined && h['x-oss-date'] !== h.date) candidates.push(h['x-oss-date']);
    let first = null;
    for (const date of candidates) {
      const sts = signUtils.buildCanonicalString(r.method, resource, { headers: h, parameters }, date);
      const sig = signUtils.computeSignature(c.cred.sk, sts);
      if (safeEqual(sig, provided)) return { ok: true, ak, scheme: 'v1' };
      if (first === null) first = sts;
    }
    return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', [
      ['OSSAccessKeyId', ak],
      ['SignatureProvided', provided],
      ['StringToSign', first],
      ['StringToSignBytes', first === null ? null : Buffer.from(first).toString('hex').replace(/(..)/g, '$1 ').trim()],
    ]);
  }

  // ------------------------------------------------------------------ OSS V4

  verifyV4(r, auth) {
    const p = parseAuthParams(auth.slice('OSS4-HMAC-SHA256 '.length));
    const bad = why => fail(400, 'InvalidArgument', `Authorization header is invalid: ${why}.`,
      [['ArgumentName', 'Authorization'], ['ArgumentValue', auth.slice(0, 256)]]);
    if (!p || !p.Credential || !p.Signature) return bad('want Credential=...,Signature=...');
    const scope = p.Credential.split('/');
    if (scope.length !== 5) return bad('Credential must be AK/date/region/oss/aliyun_v4_request');
    const [ak, scopeDate, scopeRegion, product, terminator] = scope;
    const h = r.headers;
    const xdate = h['x-oss-date'];
    const dateMs = parseAmzDate(xdate);
    const c = this.checkKeyTokenTime(ak, h['x-oss-security-token'], dateMs, xdate, 'OSSAccessKeyId');
    if (!c.cred) return c;

    const mismatch = (message, canonical, sts) => fail(403, 'SignatureDoesNotMatch', message, [
      ['OSSAccessKeyId', ak],
      ['SignatureProvided', p.Signature],
      ['StringToSign', sts],
      ['CanonicalRequest', canonical],
    ]);
    if (product !== 'oss' || terminator !== 'aliyun_v4_request') {
      return mismatch(`Invalid credential scope: want .../oss/aliyun_v4_request, got .../${product}/${terminator}.`);
    }
    if (scopeRegion !== this.region) {
      return mismatch(`Invalid signing region in Authorization header: got ${scopeRegion}, expected ${this.region}.`);
    }
    if (scopeDate !== xdate.slice(0, 8)) {
      return mismatch(`The credential date ${scopeDate} is not the date of x-oss-date (${xdate}).`);
    }
    const additional = p.AdditionalHeaders ? p.AdditionalHeaders.split(';').map(s => s.trim().toLowerCase()).filter(Boolean) : [];

    // Query variants: empty values as bare keys first, then as "k=".
    const bare = {};
    const withEq = {};
    let hasEmpty = false;
    for (const [k, v] of r.query) {
      bare[k] = v === '' ? null : v;
      withEq[k] = v;
      if (v === '') hasEmpty = true;
    }
    const variants = hasEmpty ? [bare, withEq] : [bare];
    let first = null;
    for (const queries of variants) {
      let canonical;
      try {
        canonical = signUtils.getCanonicalRequest(r.method, { headers: h, queries }, r.bucket || undefined, r.key || undefined, additional);
      } catch (e) {
        return mismatch(`Cannot build the canonical request: ${e.message}`);
      }
      const sts = signUtils.getStringToSign(this.region, xdate, canonical);
      const sig = signUtils.getSignatureV4(c.cred.sk, scopeDate, this.region, sts);
      if (safeEqual(sig, p.Signature)) return { ok: true, ak, scheme: 'v4' };
      if (!first) first = { canonical, sts };
    }
    return mismatch('The request signature we calculated does not match the signature you provided. Check your key and signing method.', first.canonical, first.sts);
  }

  // ------------------------------------------------------------------ AWS SigV4

  async verifyS3(r, auth) {
    const p = parseAuthParams(auth.slice('AWS4-HMAC-SHA256 '.length));
    const bad = why => fail(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; ${why}.`, [['Region', this.region]]);
    if (!p || !p.Credential || !p.SignedHeaders || !p.Signature) return bad('want Credential=..., SignedHeaders=..., Signature=...');
    const scope = p.Credential.split('/');
    if (scope.length !== 5) return bad('Credential must be AK/date/region/service/aws4_request');
    const [ak, scopeDate, scopeRegion, service, terminator] = scope;
    if (scopeRegion !== this.region) {
      return bad(`the region '${scopeRegion}' is wrong; expecting '${this.region}'`);
    }
    if (service !== 's3' || terminator !== 'aws4_request') return bad('the credential scope must end in /s3/aws4_request');
    const h = r.headers;
    const xdate = h['x-amz-date'];
    if (xdate === undefined) {
      return fail(403, 'AccessDenied', 'AWS authentication requires an x-amz-date header.');
    }
    const dateMs = parseAmzDate(xdate);
    const c = this.checkKeyTokenTime(ak, h['x-amz-security-token'], dateMs, xdate, 'AWSAccessKeyId');
    if (!c.cred) return c;

    const signed = p.SignedHeaders.split(';').map(s => s.trim().toLowerCase());
    const headers = {};
    for (const name of signed) {
      if (h[name] === undefined) {
        return fail(403, 'SignatureDoesNotMatch', `Header ${name} is listed in SignedHeaders but was not sent.`, [['AWSAccessKeyId', ak]]);
      }
      headers[name] = h[name];
    }
    const sha = h['x-amz-content-sha256'];
    const unsignable = new Set();
    if (sha !== undefined && !signed.includes('x-amz-content-sha256')) {
      headers['x-amz-content-sha256'] = sha; // payload hash, but not a signed header
      unsignable.add('x-amz-content-sha256');
    }
    const query = {};
    for (const [k, v] of r.query) {
      if (Object.prototype.hasOwnProperty.call(query, k)) {
        query[k] = [].concat(query[k], v);
      } else query[k] = v;
    }
    const hostHeader = h.host || '';
    const request = {
      method: r.method,
      protocol: 'http:',
      hostname: hostHeader.replace(/:\d+$/, ''),
      path: r.s3CanonicalPath,
      query,
      headers,
    };
    const signer = new SignatureV4({
      credentials: { accessKeyId: ak, secretAccessKey: c.cred.sk },
      region: this.region,
      service: 's3',
      sha256: Sha256,
      uriEscapePath: false, // S3: the canonical URI is the (once-)encoded path
      applyChecksum: false, // never add an x-amz-content-sha256 the client did not send
    });
    const signingDate = new Date(dateMs);
    const out = await signer.sign(request, {
      signingDate,
      signableHeaders: new Set(signed),
      unsignableHeaders: unsignable,
    });
    const m = /Signature=([0-9a-f]+)/.exec(out.headers.authorization || '');
    if (m && safeEqual(m[1], p.Signature)) return { ok: true, ak, scheme: 's3' };

    // For the error document: the canonical request and string to sign, from the same SDK code.
    let canonical = null;
    let sts = null;
    try {
      const probe = { ...request, headers: { ...headers, 'x-amz-date': xdate } };
      const ch = getCanonicalHeaders(probe, unsignable, new Set(signed));
      canonical = signer.createCanonicalRequest(probe, ch, await getPayloadHash(probe, Sha256));
      sts = await signer.createStringToSign(xdate, `${scopeDate}/${this.region}/s3/aws4_request`, canonical, 'AWS4-HMAC-SHA256');
    } catch (e) {
      /* diagnostics only */
    }
    return fail(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', [
      ['AWSAccessKeyId', ak],
      ['SignatureProvided', p.Signature],
      ['StringToSign', sts],
      ['CanonicalRequest', canonical],
    ]);
  }
}

module.exports = { Authenticator, Credentials, SIGNED_SUBRESOURCES, schemeOf, MAX_SKEW_MS };
