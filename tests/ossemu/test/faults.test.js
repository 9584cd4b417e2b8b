'use strict';
// Every fault kind, the deterministic queue, match, down, bandwidth caps and validation.
const { describe, it, before, after, beforeEach } = require('node:test');
const assert = require('node:assert/strict');
const http = require('http');
const crypto = require('crypto');
const H = require('../testlib/harness');
const { crc64 } = require('../lib/crc64');

const BIG = crypto.randomBytes(10000);
const MB = crypto.randomBytes(1536 * 1024);

describe('faults', () => {
  let srv;
  let tmp;
  before(async () => {
    tmp = H.tmpRoot('faults');
    H.writeTree(tmp.dir, { 'big.bin': BIG, 'mb.bin': MB, 'hot/x': 'hot', 'cold/y': 'cold' });
    srv = await H.startServer(tmp.dir);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (tmp) tmp.cleanup();
  });
  beforeEach(async () => {
    const r = await H.admin(srv, 'POST', '/faults', {});
    assert.equal(r.status, 200);
  });

  const faults = async spec => {
    const r = await H.admin(srv, 'POST', '/faults', spec);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json;
  };
  const get = (key, extra = {}) => H.signedRequest(srv, { scheme: 'v4', key, ...extra });

  it('error: status and OSS code, then back to normal', async () => {
    await faults({ next: [{ kind: 'error', status: 503 }, { kind: 'error', status: 500 }, { kind: 'error', status: 429 }, { kind: 'error', status: 408 }] });
    for (const [st, code] of [[503, 'ServiceUnavailable'], [500, 'InternalError'], [429, 'QpsLimitExceeded'], [408, 'RequestTimeout']]) {
      const r = await get('big.bin');
      assert.equal(r.status, st);
      assert.equal(H.xmlTag(r.body, 'Code'), code);
    }
    assert.equal((await get('big.bin')).status, 200);
  });

  it('next is consumed one per request in order, HEAD and LIST included', async () => {
    await faults({ next: [{ kind: 'error', status: 503 }, { kind: 'error', status: 500 }, { kind: 'reset' }, { kind: 'latency', ms: 1 }] });
    const head = await get('big.bin', { method: 'HEAD' });
    assert.equal(head.status, 503);
    assert.equal(head.body.length, 0);
    assert.equal(H.xmlTag(Buffer.from(head.headers['x-oss-err'], 'base64'), 'Code'), 'ServiceUnavailable');
    const list = await H.signedRequest(srv, { query: { prefix: '' } });
    assert.equal(list.status, 500);
    await assert.rejects(get('big.bin'), e => ['ECONNRESET', 'EPIPE'].includes(e.code) || /socket hang up/.test(e.message));
    let f = (await H.admin(srv, 'GET', '/faults')).json;
    assert.deepEqual(f.next, [{ kind: 'latency', ms: 1 }]);
    assert.equal((await get('big.bin')).status, 200);
    f = (await H.admin(srv, 'GET', '/faults')).json;
    assert.deepEqual(f.next, []);
    assert.equal((await get('big.bin')).status, 200);
  });

  it('reset: the socket is destroyed before any answer', async () => {
    await faults({ next: [{ kind: 'reset' }] });
    await assert.rejects(get('big.bin'), e => e.code === 'ECONNRESET' || /socket hang up/.test(e.message));
  });

  it('truncate: full Content-Length, then the connection dies after `after` bytes (default half)', async () => {
    for (const [spec, n] of [[{ kind: 'truncate', after: 1000 }, 1000], [{ kind: 'truncate' }, 5000], [{ kind: 'truncate', after: 0 }, 0]]) {
      await faults({ next: [spec] });
      const e = await get('big.bin').then(() => null, err => err);
      assert.ok(e, 'the request must fail');
      assert.equal(e.code, 'ABORTED', e.message);
      assert.equal(e.headers['content-length'], '10000');
      assert.equal(e.partial.length, n);
      assert.deepEqual(e.partial, BIG.subarray(0, n));
    }
  });

  it('corrupt: one byte flipped, length intact, CRC64 header no longer matches', async () => {
    await faults({ next: [{ kind: 'corrupt' }] });
    const r = await get('big.bin');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, BIG.length);
    let diff = 0;
    for (let i = 0; i < BIG.length; i++) if (r.body[i] !== BIG[i]) diff++;
    assert.equal(diff, 1);
    assert.equal(r.headers['x-oss-hash-crc64ecma'], crc64(BIG).toString());
    assert.notEqual(crc64(r.body).toString(), r.headers['x-oss-hash-crc64ecma']);
    await faults({ next: [{ kind: 'corrupt', at: 0 }] });
    const r2 = await get('big.bin', { headers: { Range: 'bytes=100-199' } });
    assert.equal(r2.status, 206);
    assert.equal(r2.body[0], BIG[100] ^ 0xff);
    assert.deepEqual(r2.body.subarray(1), BIG.subarray(101, 200));
  });

  it('stall: never answered, the server keeps serving others', async () => {
    await faults({ next: [{ kind: 'stall' }] });
    await assert.rejects(get('big.bin', { timeout: 500 }), e => e.code === 'ETIMEDOUT');
    assert.equal((await get('big.bin')).status, 200);
  });

  it('latency: latency_ms on every request, a latency entry once', async () => {
    await faults({ latency_ms: 150 });
    let t0 = Date.now();
    await get('hot/x');
    assert.ok(Date.now() - t0 >= 140);
    // A one-shot latency long enough that a slow, loaded machine cannot be mistaken for it.
    await faults({ next: [{ kind: 'latency', ms: 2500 }] });
    t0 = Date.now();
    await get('hot/x');
    assert.ok(Date.now() - t0 >= 2490);
    t0 = Date.now();
    await get('hot/x');
    assert.ok(Date.now() - t0 < 1500, 'the one-shot latency applied twice');
  });

  it('match: only keys (or listing prefixes) under the prefix are affected', async () => {
    await faults({ match: 'hot/', error_rate: { 503: 1 } });
    assert.equal((await get('hot/x')).status, 503);
    assert.equal((await get('cold/y')).status, 200);
    assert.equal((await H.signedRequest(srv, { query: { prefix: 'hot/' } })).status, 503);
    assert.equal((await H.signedRequest(srv, { query: { prefix: 'cold/' } })).status, 200);
    // next entries are kept for matching requests.
    await faults({ match: 'hot/', next: [{ kind: 'error', status: 500 }] });
    assert.equal((await get('cold/y')).status, 200);
    assert.equal((await get('hot/x')).status, 500);
  });

  it('rates: 1.0 always fires, {} clears', async () => {
    await faults({ error_rate: { 429: 1 } });
    for (let i = 0; i < 3; i++) assert.equal((await get('big.bin')).status, 429);
    await faults({ reset_rate: 1 });
    await assert.rejects(get('big.bin'));
    await faults({ truncate_rate: 1 });
    await assert.rejects(get('big.bin'), e => e.code === 'ABORTED');
    await faults({ corrupt_rate: 1 });
    const c = await get('big.bin');
    assert.notDeepEqual(c.body, BIG);
    await faults({ stall_rate: 1 });
    await assert.rejects(get('big.bin', { timeout: 300 }), e => e.code === 'ETIMEDOUT');
    await faults({ error_rate: { 503: 0.5 } });
    let errors = 0;
    for (let i = 0; i < 60; i++) if ((await get('hot/x')).status === 503) errors++;
    assert.ok(errors > 5 && errors < 55, `${errors} errors of 60 at rate 0.5`);
    await faults({});
    assert.equal((await get('big.bin')).status, 200);
  });

  it('down: new connections die, open ones are destroyed, admin still answers', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await get('hot/x', { agent })).status, 200);
      const [sock] = Object.values(agent.freeSockets).flat();
      assert.ok(sock, 'a kept-alive socket');
      const closed = new Promise(resolve => sock.once('close', resolve));
      await faults({ down: true });
      await closed;
      await assert.rejects(get('hot/x'), e => ['ECONNRESET', 'EPIPE'].includes(e.code) || /socket hang up/.test(e.message));
      assert.equal((await H.admin(srv, 'GET', '/health')).json.ok, true);
      await faults({ down: false });
      assert.equal((await get('hot/x', { agent })).status, 200);
    } finally {
      agent.destroy();
    }
  });

  it('bw_per_conn caps one connection, not the server', async () => {
    await faults({ bw_per_conn: 1 << 20 }); // 1 MiB/s, 1.5 MiB object
    let t0 = Date.now();
    const r = await get('mb.bin');
    const one = Date.now() - t0;
    assert.deepEqual(r.body, MB);
    assert.ok(one > 1000 && one < 15000, `one connection took ${one} ms`);
    t0 = Date.now();
    const both = await Promise.all([get('mb.bin'), get('mb.bin')]);
    const two = Date.now() - t0;
    for (const b of both) assert.deepEqual(b.body, MB);
    assert.ok(two < one * 1.6, `two connections took ${two} ms, one ${one} ms`);
    await faults({});
    t0 = Date.now();
    await get('mb.bin');
    const free = Date.now() - t0;
    assert.ok(free < one / 3, `uncapped, the object took ${free} ms (capped, ${one} ms)`);
  });

  it('bw_bucket caps the server, whatever the connections', async () => {
    await faults({ bw_bucket: 1 << 20 }); // 1 MiB/s for everyone, 1.5 MiB objects
    let t0 = Date.now();
    const both = await Promise.all([get('mb.bin'), get('mb.bin')]);
    const two = Date.now() - t0;
    for (const b of both) assert.deepEqual(b.body, MB);
    // 3 MiB at 1 MiB/s (less the first tenth of a second's burst): about 3 s, not 1.5. (The
    // upper bounds are loose: a loaded machine slows everything, never speeds it up.)
    assert.ok(two > 2500 && two < 15000, `two connections took ${two} ms`);
    await faults({});
    t0 = Date.now();
    await get('mb.bin');
    const free = Date.now() - t0;
    assert.ok(free < two / 3, `uncapped, one object took ${free} ms (capped, two took ${two} ms)`);
  });

  it('--bw-per-conn and --faults on the command line', async () => {
    const s2 = await H.startServer(tmp.dir, ['--bw-per-conn', String(1 << 20), '--faults', JSON.stringify({ next: [{ kind: 'error', status: 429 }] })]);
    try {
      assert.equal((await H.signedRequest(s2, { key: 'mb.bin' })).status, 429);
      const t0 = Date.now();
      const r = await H.signedRequest(s2, { key: 'mb.bin' });
      assert.deepEqual(r.body, MB);
      assert.ok(Date.now() - t0 > 1000);
    } finally {
      await s2.stop();
    }
  });

  it('a stalled request does not keep the server from exiting on SIGTERM', async () => {
    const s2 = await H.startServer(tmp.dir, ['--faults', JSON.stringify({ stall_rate: 1 })]);
    const pending = H.signedRequest(s2, { key: 'hot/x', timeout: 20000 }).catch(e => e);
    await new Promise(r => setTimeout(r, 200));
    const t0 = Date.now();
    const code = await s2.stop();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 3000);
    const e = await pending;
    assert.ok(e instanceof Error);
  });

  it('bad fault sets are refused with 400 and leave the current set alone', async () => {
    await faults({ latency_ms: 1 });
    for (const bad of [{ bogus: 1 }, { error_rate: { 503: 2 } }, { error_rate: { 200: 0.1 } }, { reset_rate: -1 },
      { next: [{ kind: 'explode' }] }, { next: [{ kind: 'truncate', after: -5 }] }, { down: 'yes' }, [1, 2]]) {
      const r = await H.admin(srv, 'POST', '/faults', bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.ok(r.json.error);
    }
    const r = await H.admin(srv, 'POST', '/faults', '{not json');
    assert.equal(r.status, 400);
    assert.deepEqual((await H.admin(srv, 'GET', '/faults')).json, { latency_ms: 1 });
  });
});
