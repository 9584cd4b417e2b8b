'use strict';
/*
 * Test harness for ossemu's own tests (kept outside test/ so that `node --test test/` does not run
 * it as a test file).
 *
 * startServer() spawns server.js on a port chosen by the kernel, waits (bounded) for the ready
 * line and returns a handle whose stop() kills that pid (SIGTERM, then SIGKILL) — call it from an
 * after() hook so it runs even when a test fails. Requests are signed with the SDKs' CLIENT-side
 * code: ali-oss signUtils (V1 / V4, as the ali-oss client calls it) and @smithy/signature-v4 (S3),
 * then sent with node's http so every byte on the wire is under the test's control.
 */
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const signUtils = require('ali-oss/lib/common/signUtils');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

const SERVER = path.join(__dirname, '..', 'server.js');
const BUCKET = 'testbucket';
const REGION = 'cn-hangzhou';

/** A fresh temporary directory (removed by the returned cleanup()). */
function tmpRoot(tag) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ossemu-${tag}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Writes FILES ({relpath: Buffer|string}) under DIR, creating parents. */
function writeTree(dir, files) {
  for (const [rel, data] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
  }
}

/** Spawns ossemu on ROOT with extra ARGS; resolves to a server handle. */
function startServer(root, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER, '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`ossemu did not get ready in 15 s; stderr: ${err}`)), 15000);
    function finish(e, v) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) {
        child.kill('SIGKILL');
        reject(e);
      } else resolve(v);
    }
    child.stderr.on('data', d => {
      err += d;
      if (err.length > 1 << 20) err = err.slice(-(1 << 19));
    });
    child.stdout.on('data', d => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      let ready;
      try {
        ready = JSON.parse(out.slice(0, nl));
      } catch (e) {
        finish(new Error(`bad ready line: ${out}`));
        return;
      }
      const srv = {
        port: ready.port,
        adminPort: ready.admin_port,
        pid: ready.pid,
        child,
        ready,
        root,
        stdoutRest: () => out.slice(nl + 1),
        stderr: () => err,
        stop: () => stopChild(child),
      };
      finish(null, srv);
    });
    child.on('exit', code => finish(new Error(`ossemu exited (${code}) before ready; stderr: ${err}`)));
  });
}

function stopChild(child) {
  return new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', code => {
      clearTimeout(t);
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

/** Plain HTTP request; resolves {status, headers, body (Buffer)}; rejects on socket errors. */
function httpRequest({ port, method = 'GET', path: p = '/', headers = {}, timeout = 10000, agent = false, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent }, res => {
      const chunks = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', reject);
      res.on('aborted', () => reject(Object.assign(new Error('response aborted'), { code: 'ABORTED', partial: Buffer.concat(chunks), headers: res.headers })));
    });
    req.setTimeout(timeout, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function admin(srv, method, p, body) {
  const r = await httpRequest({
    port: srv.adminPort,
    method,
    path: p,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  let json = null;
  try {
    json = JSON.parse(r.body.toString());
  } catch (e) {
    /* not JSON */
  }
  return { status: r.status, json };
}

// ---- URL building (the encodings a careful client uses) ----

function encodeSeg(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function encodeKeyPath(key) {
  return key.split('/').map(encodeSeg).join('/');
}

/** QUERY {k: v}: v null -> "k", string -> "k=v". */
function buildQuery(query) {
  const parts = [];
  for (const [k, v] of Object.entries(query || {})) {
    parts.push(v === null || v === undefined ? encodeSeg(k) : `${encodeSeg(k)}=${encodeSeg(v)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function amzDate(ms) {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Sends a signed request. O: {scheme: 'v1'|'v4'|'s3', method, key ('' = bucket), query,
 * subres (v1: the sub-resources to sign; default: none), headers, ak, sk, token, vhost,
 * dateOffsetMs, region, additionalHeaders (v4), useDateHeader (v1: sign Date instead of
 * x-oss-date), bucket, timeout, agent}.
 */
async function signedRequest(srv, o) {
  const scheme = o.scheme || 'v4';
  const method = o.method || 'GET';
  const bucket = o.bucket || BUCKET;
  const key = o.key || '';
  const region = o.region || REGION;
  const ak = o.ak || 'testak';
  const sk = o.sk || 'testsk';
  const now = Date.now() + (o.dateOffsetMs || 0);
  const query = o.query || {};
  const headers = {};
  for (const [k, v] of Object.entries(o.headers || {})) headers[k.toLowerCase()] = v;

  const vhost = !!o.vhost;
  const reqPath = (vhost ? `/${encodeKeyPath(key)}` : `/${bucket}/${encodeKeyPath(key)}`) + buildQuery(query);
  headers.host = vhost ? `${bucket}.oss-${region}.aliyuncs.com` : `127.0.0.1:${srv.port}`;

  if (scheme === 'v1') {
    const date = new Date(now).toUTCString();
    if (o.useDateHeader) headers.date = date;
    else headers['x-oss-date'] = date;
    if (o.token) headers['x-oss-security-token'] = o.token;
    const resource = `/${bucket}/${key}`;
    const canonical = signUtils.buildCanonicalString(method, resource, { headers, parameters: o.subres }, o.useDateHeader ? date : undefined);
    headers.authorization = signUtils.authorization(ak, sk, canonical);
  } else if (scheme === 'v4') {
    headers['x-oss-date'] = amzDate(now);
    headers['x-oss-content-sha256'] = 'UNSIGNED-PAYLOAD';
    if (o.token) headers['x-oss-security-token'] = o.token;
    const fixed = signUtils.fixAdditionalHeaders(o.additionalHeaders);
    headers.authorization = signUtils.authorizationV4(ak, sk, region, method, { headers, queries: query }, bucket, key || undefined, fixed);
  } else if (scheme === 's3') {
    if (vhost) headers.host = `${bucket}.s3.${region}.local:${srv.port}`;
    if (o.payloadHash !== null) headers['x-amz-content-sha256'] = o.payloadHash || 'UNSIGNED-PAYLOAD';
    const signer = new SignatureV4({
      credentials: { accessKeyId: ak, secretAccessKey: sk, sessionToken: o.token },
      region,
      service: 's3',
      sha256: Sha256,
      uriEscapePath: false,
      applyChecksum: false,
    });
    const q = {};
    for (const [k, v] of Object.entries(query)) q[k] = v === null ? '' : v;
    const signed = await signer.sign(
      { method, protocol: 'http:', hostname: '127.0.0.1', port: srv.port, path: reqPath.split('?')[0], query: q, headers },
      { signingDate: new Date(now) },
    );
    Object.assign(headers, signed.headers);
  } else {
    throw new Error(`unknown scheme ${scheme}`);
  }
  return httpRequest({ port: srv.port, method, path: reqPath, headers, timeout: o.timeout, agent: o.agent });
}

/** The <Tag>value</Tag> text of the first TAG in XML (undefined if absent). */
function xmlTag(xml, tag) {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(String(xml));
  return m ? m[1] : undefined;
}

/** All <Tag>value</Tag> texts. */
function xmlTags(xml, tag) {
  const out = [];
  const re = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g');
  let m;
  while ((m = re.exec(String(xml)))) out.push(m[1]);
  return out;
}

function xmlUnescape(s) {
  return s.replace(/&#x([0-9A-Fa-f]+);/g, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

module.exports = {
  BUCKET, REGION, SERVER, tmpRoot, writeTree, startServer, httpRequest, admin, signedRequest,
  encodeKeyPath, buildQuery, amzDate, xmlTag, xmlTags, xmlUnescape,
};
