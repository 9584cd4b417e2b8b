'use strict';
// GetObject / HeadObject: ranges at the edges, conditionals, ETag/CRC, headers, bad input.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const net = require('net');
const H = require('../testlib/harness');
const { crc64 } = require('../lib/crc64');

const DATA = Buffer.from('0123456789abcdefghij'); // 20 bytes

describe('objects', () => {
  let srv;
  let tmp;
  before(async () => {
    tmp = H.tmpRoot('obj');
    H.writeTree(tmp.dir, { 'f.bin': DATA, 'empty': '', 'd/inner': 'in', 'change.txt': 'version one' });
    srv = await H.startServer(tmp.dir);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (tmp) tmp.cleanup();
  });

  const get = (key, headers, extra = {}) => H.signedRequest(srv, { scheme: 'v4', key, headers, ...extra });

  it('GET returns the body with ETag, CRC64, Last-Modified and the OSS headers', async () => {
    const r = await get('f.bin');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, DATA);
    assert.match(r.headers.etag, /^"[0-9A-F]{32}-1"$/);
    assert.equal(r.headers['x-oss-hash-crc64ecma'], crc64(DATA).toString());
    assert.equal(r.headers['content-length'], '20');
    assert.equal(r.headers['x-oss-object-type'], 'Normal');
    assert.equal(r.headers['x-oss-storage-class'], 'Standard');
    assert.equal(r.headers.server, 'AliyunOSS');
    assert.ok(Date.parse(r.headers['last-modified']) > 0);
    assert.ok(Math.abs(Date.parse(r.headers.date) - Date.now()) < 5000);
    assert.match(r.headers['x-oss-request-id'], /^[0-9A-F]{24}$/);
  });

  it('request ids are unique', async () => {
    const ids = new Set();
    for (let i = 0; i < 50; i++) ids.add((await get('f.bin', undefined, { method: 'HEAD' })).headers['x-oss-request-id']);
    assert.equal(ids.size, 50);
  });

  it('HEAD has Content-Length and no body', async () => {
    const r = await get('f.bin', undefined, { method: 'HEAD' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '20');
    assert.equal(r.body.length, 0);
  });

  const cases = [
    // [range, legacy status, legacy body, standard status, standard body]
    ['bytes=0-0', 206, '0', 206, '0'],
    ['bytes=19-19', 206, 'j', 206, 'j'],
    ['bytes=19-', 206, 'j', 206, 'j'],
    ['bytes=0-19', 206, DATA.toString(), 206, DATA.toString()],
    ['bytes=-1', 206, 'j', 206, 'j'],
    ['bytes=-20', 206, DATA.toString(), 206, DATA.toString()],
    ['bytes=-25', 200, DATA.toString(), 206, DATA.toString()],
    ['bytes=10-30', 200, DATA.toString(), 206, 'abcdefghij'],
    ['bytes=20-', 200, DATA.toString(), 416, null],
    ['bytes=20-30', 200, DATA.toString(), 416, null],
    ['bytes=-0', 200, DATA.toString(), 416, null],
    ['bytes=5-2', 200, DATA.toString(), 200, DATA.toString()],
    ['bytes=abc', 200, DATA.toString(), 200, DATA.toString()],
    ['byte=0-1', 200, DATA.toString(), 200, DATA.toString()],
    ['bytes=99999999999999999999999-', 200, DATA.toString(), 416, null],
  ];
  for (const [range, ls, lb, ss, sb] of cases) {
    it(`Range ${range}: legacy ${ls}, standard ${ss}`, async () => {
      let r = await get('f.bin', { Range: range });
      assert.equal(r.status, ls);
      assert.equal(r.body.toString(), lb);
      r = await get('f.bin', { Range: range, 'x-oss-range-behavior': 'standard' });
      assert.equal(r.status, ss);
      if (ss === 416) {
        assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidRange');
        assert.equal(r.headers['content-range'], 'bytes */20');
      } else assert.equal(r.body.toString(), sb);
      if (ss === 206) assert.match(r.headers['content-range'], /^bytes \d+-\d+\/20$/);
      // S3 always follows RFC 7233 (standard) semantics.
      const s = await H.signedRequest(srv, { scheme: 's3', key: 'f.bin', headers: { Range: range } });
      assert.equal(s.status, ss);
    });
  }

  it('zero-byte object: plain GET, ranges legacy (200) and standard (416)', async () => {
    let r = await get('empty');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers['x-oss-hash-crc64ecma'], '0');
    r = await get('empty', { Range: 'bytes=0-' });
    assert.equal(r.status, 200);
    r = await get('empty', { Range: 'bytes=0-', 'x-oss-range-behavior': 'standard' });
    assert.equal(r.status, 416);
    r = await get('empty', { Range: 'bytes=-5', 'x-oss-range-behavior': 'standard' });
    assert.equal(r.status, 416);
  });

  it('If-Match / If-None-Match', async () => {
    const etag = (await get('f.bin', undefined, { method: 'HEAD' })).headers.etag;
    let r = await get('f.bin', { 'If-Match': etag });
    assert.equal(r.status, 200);
    r = await get('f.bin', { 'If-Match': '"0000"' });
    assert.equal(r.status, 412);
    assert.equal(H.xmlTag(r.body, 'Code'), 'PreconditionFailed');
    r = await get('f.bin', { 'If-Match': '"0000"' }, { method: 'HEAD' });
    assert.equal(r.status, 412);
    assert.equal(H.xmlTag(Buffer.from(r.headers['x-oss-err'], 'base64'), 'Code'), 'PreconditionFailed');
    r = await get('f.bin', { 'If-Match': etag, Range: 'bytes=0-1' });
    assert.equal(r.status, 206);
    r = await get('f.bin', { 'If-None-Match': etag });
    assert.equal(r.status, 304);
  });

  it('a changed file gets a new ETag and CRC', async () => {
    const p = path.join(tmp.dir, 'change.txt');
    const a = await get('change.txt');
    fs.writeFileSync(p, 'version two!');
    const b = await get('change.txt');
    assert.equal(b.body.toString(), 'version two!');
    assert.notEqual(a.headers.etag, b.headers.etag);
    assert.notEqual(a.headers['x-oss-hash-crc64ecma'], b.headers['x-oss-hash-crc64ecma']);
    assert.equal(b.headers['x-oss-hash-crc64ecma'], crc64(Buffer.from('version two!')).toString());
    // If-Match with the old ETag now fails.
    const c = await get('change.txt', { 'If-Match': a.headers.etag });
    assert.equal(c.status, 412);
  });

  it('missing keys, directories and keys the file system cannot hold are NoSuchKey', async () => {
    for (const key of ['nope', 'd', 'd/', 'd//inner', 'd/./inner', 'd/../f.bin']) {
      const r = await get(key);
      assert.equal(r.status, 404, key);
      assert.equal(H.xmlTag(r.body, 'Code'), 'NoSuchKey', key);
    }
    const r = await get('nope', undefined, { method: 'HEAD' });
    assert.equal(r.status, 404);
    assert.equal(r.body.length, 0);
  });

  it('another bucket is NoSuchBucket', async () => {
    const r = await get('f.bin', undefined, { bucket: 'otherbucket' });
    assert.equal(r.status, 404);
    assert.equal(H.xmlTag(r.body, 'Code'), 'NoSuchBucket');
  });

  it('writes are refused: PUT/DELETE/POST -> 403 AccessDenied', async () => {
    for (const method of ['PUT', 'DELETE', 'POST']) {
      const r = await H.signedRequest(srv, { scheme: 'v4', method, key: 'f.bin' });
      assert.equal(r.status, 403, method);
      assert.equal(H.xmlTag(r.body, 'Code'), 'AccessDenied');
    }
  });

  it('unsupported sub-resources -> 501 NotImplemented; unknown parameters are ignored', async () => {
    let r = await H.signedRequest(srv, { scheme: 'v4', key: 'f.bin', query: { acl: null } });
    assert.equal(r.status, 501);
    assert.equal(H.xmlTag(r.body, 'Code'), 'NotImplemented');
    r = await H.signedRequest(srv, { scheme: 'v4', query: { versioning: null } });
    assert.equal(r.status, 501);
    r = await H.signedRequest(srv, { scheme: 'v4', key: 'f.bin', query: { 'x-id': 'GetObject', whatever: 'x' } });
    assert.equal(r.status, 200);
    r = await H.signedRequest(srv, { scheme: 'v4', key: 'f.bin', query: { 'response-content-type': 'text/plain' } });
    assert.equal(r.headers['content-type'], 'text/plain');
  });

  it('bad percent-encoding and invalid UTF-8 -> 400 InvalidArgument', async () => {
    for (const p of ['/testbucket/%zz', '/testbucket/a%', '/testbucket/%ff%fe', '/testbucket/?prefix=%G1']) {
      const r = await H.httpRequest({ port: srv.port, path: p });
      assert.equal(r.status, 400, p);
      assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidArgument', p);
    }
  });

  it('survives garbage: huge headers, raw junk, absolute URIs', async () => {
    const r = await H.httpRequest({ port: srv.port, path: '/testbucket/f.bin', headers: { 'x-big': 'a'.repeat(100000) } }).catch(e => e);
    assert.ok(r instanceof Error || r.status === 431 || r.status === 400);
    await new Promise(resolve => {
      const s = net.connect(srv.port, '127.0.0.1', () => s.end('GARBAGE \x00\x01 HTTP/9\r\n\r\n'));
      s.on('data', () => {});
      s.on('close', resolve);
      s.on('error', resolve);
    });
    const abs = await H.httpRequest({ port: srv.port, path: `http://127.0.0.1:${srv.port}/testbucket/f.bin` });
    assert.equal(abs.status, 403); // parsed fine, just unsigned
    const ok = await get('f.bin');
    assert.equal(ok.status, 200);
  });

  it('Archive objects: HEAD shows x-oss-restore, GET needs a finished restore', async () => {
    let a = await H.admin(srv, 'POST', '/objects', { key: 'f.bin', storage_class: 'Archive' });
    assert.equal(a.status, 200);
    try {
      let r = await get('f.bin', undefined, { method: 'HEAD' });
      assert.equal(r.headers['x-oss-storage-class'], 'Archive');
      r = await get('f.bin');
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidObjectState');
      a = await H.admin(srv, 'POST', '/objects', { key: 'f.bin', storage_class: 'Archive', restore: 'ongoing-request="true"' });
      r = await get('f.bin', undefined, { method: 'HEAD' });
      assert.equal(r.headers['x-oss-restore'], 'ongoing-request="true"');
      assert.equal((await get('f.bin')).status, 403);
      a = await H.admin(srv, 'POST', '/objects', { key: 'f.bin', storage_class: 'Archive', restore: 'ongoing-request="false", expiry-date="Sun, 16 Apr 2017 08:12:33 GMT"' });
      r = await get('f.bin');
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, DATA);
    } finally {
      a = await H.admin(srv, 'DELETE', `/objects?key=f.bin`);
      assert.equal(a.json.removed, true);
    }
    assert.equal((await get('f.bin')).headers['x-oss-storage-class'], 'Standard');
  });

  it('a virtual object hides a file of the same key and can hold keys a file system cannot', async () => {
    await H.admin(srv, 'POST', '/objects', { key: 'd//odd', data_base64: Buffer.from('odd').toString('base64') });
    await H.admin(srv, 'POST', '/objects', { key: 'd/inner', data_base64: Buffer.from('virtual').toString('base64') });
    try {
      let r = await get('d//odd');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'odd');
      assert.equal(r.headers['x-oss-hash-crc64ecma'], crc64(Buffer.from('odd')).toString());
      r = await get('d/inner', { Range: 'bytes=1-3' });
      assert.equal(r.status, 206);
      assert.equal(r.body.toString(), 'irt');
    } finally {
      await H.admin(srv, 'DELETE', `/objects?key=${encodeURIComponent('d//odd')}`);
      await H.admin(srv, 'DELETE', '/objects?key=d/inner');
    }
    assert.equal((await get('d/inner')).body.toString(), 'in');
  });

  it('--no-crc omits x-oss-hash-crc64ecma', async () => {
    const s2 = await H.startServer(tmp.dir, ['--no-crc']);
    try {
      const r = await H.signedRequest(s2, { scheme: 'v1', key: 'f.bin' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-oss-hash-crc64ecma'], undefined);
    } finally {
      await s2.stop();
    }
  });

  it('a client that goes away mid-body does not leak the file descriptor', async () => {
    const big = path.join(tmp.dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(32 << 20, 1));
    const fdCount = () => fs.readdirSync(`/proc/${srv.pid}/fd`).length;
    await get('big.bin', undefined, { method: 'HEAD' }); // CRC computed and cached
    const before = fdCount();
    for (let i = 0; i < 5; i++) {
      await new Promise(resolve => {
        const s = net.connect(srv.port, '127.0.0.1');
        // Ask for the big body with a raw socket and hang up after the first bytes.
        const sign = require('ali-oss/lib/common/signUtils');
        const headers = { 'x-oss-date': new Date().toUTCString(), host: `127.0.0.1:${srv.port}` };
        headers.authorization = sign.authorization('testak', 'testsk', sign.buildCanonicalString('GET', '/testbucket/big.bin', { headers }));
        const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n');
        s.write(`GET /testbucket/big.bin HTTP/1.1\r\n${lines}\r\n\r\n`);
        s.once('data', () => {
          s.destroy();
          resolve();
        });
        s.on('error', resolve);
      });
    }
    let n = fdCount();
    for (let i = 0; i < 50 && n > before; i++) {
      await new Promise(r => setTimeout(r, 50));
      n = fdCount();
    }
    assert.ok(n <= before, `fds before ${before}, after ${n}`);
    fs.unlinkSync(big);
  });
});
