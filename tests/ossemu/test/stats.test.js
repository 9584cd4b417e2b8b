'use strict';
// The admin API's counters: requests, per-key get/head, body bytes, lists, stats, statuses.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const H = require('../testlib/harness');

describe('stats', () => {
  let srv;
  let tmp;
  before(async () => {
    tmp = H.tmpRoot('stats');
    H.writeTree(tmp.dir, { 'a.bin': Buffer.alloc(1000, 7), 'dir/b': 'bbbb' });
    srv = await H.startServer(tmp.dir);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (tmp) tmp.cleanup();
  });

  it('counts requests, gets, heads and body bytes per key and in total', async () => {
    assert.equal((await H.admin(srv, 'POST', '/stats/reset', {})).status, 200);
    await H.signedRequest(srv, { key: 'a.bin' });
    await H.signedRequest(srv, { key: 'a.bin', headers: { Range: 'bytes=0-99' } });
    await H.signedRequest(srv, { key: 'a.bin', method: 'HEAD' });
    await H.signedRequest(srv, { scheme: 's3', key: 'dir/b' });
    const nf = await H.signedRequest(srv, { key: 'missing' });
    const list = await H.signedRequest(srv, { query: { prefix: 'dir/' } });
    const stat = await H.signedRequest(srv, { query: { stat: null } });
    await H.admin(srv, 'GET', '/health'); // admin calls never count
    const s = (await H.admin(srv, 'GET', '/stats')).json;
    assert.deepEqual(s.by_key['a.bin'], { requests: 3, get: 2, head: 1, not_modified: 0, bytes: 1100 });
    assert.deepEqual(s.by_key['dir/b'], { requests: 1, get: 1, head: 0, not_modified: 0, bytes: 4 });
    assert.equal(s.by_key.missing.requests, 1);
    assert.equal(s.by_key.missing.bytes, nf.body.length);
    assert.equal(s.total.requests, 7);
    assert.equal(s.total.bytes, 1100 + 4 + nf.body.length + list.body.length + stat.body.length);
    assert.equal(s.list_requests, 1);
    assert.equal(s.stat_requests, 1);
    assert.equal(s.auth_failures, 0);
    assert.deepEqual(s.by_status, { 200: 5, 206: 1, 404: 1 });
  });

  it('counts GETs answered 304 per key, with no body bytes', async () => {
    await H.admin(srv, 'POST', '/stats/reset', {});
    const first = await H.signedRequest(srv, { key: 'a.bin', headers: { Range: 'bytes=0-9' } });
    const etag = first.headers.etag;
    const nm = await H.signedRequest(srv, { key: 'a.bin', headers: { Range: 'bytes=0-9', 'If-None-Match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.etag, etag);
    const other = await H.signedRequest(srv, { key: 'a.bin', headers: { Range: 'bytes=0-9', 'If-None-Match': '"0"' } });
    assert.equal(other.status, 206);
    await H.signedRequest(srv, { key: 'a.bin', method: 'HEAD', headers: { 'If-None-Match': etag } });
    const s = (await H.admin(srv, 'GET', '/stats')).json;
    assert.deepEqual(s.by_key['a.bin'], { requests: 4, get: 3, head: 1, not_modified: 1, bytes: 20 });
    assert.deepEqual(s.by_status, { 206: 2, 304: 2 });
  });

  it('a truncated body counts only the bytes written; faulted requests still count', async () => {
    await H.admin(srv, 'POST', '/stats/reset', {});
    await H.admin(srv, 'POST', '/faults', { next: [{ kind: 'truncate', after: 300 }, { kind: 'reset' }] });
    await assert.rejects(H.signedRequest(srv, { key: 'a.bin' }));
    await assert.rejects(H.signedRequest(srv, { key: 'a.bin' }));
    const s = (await H.admin(srv, 'GET', '/stats')).json;
    assert.deepEqual(s.by_key['a.bin'], { requests: 2, get: 2, head: 0, not_modified: 0, bytes: 300 });
    assert.deepEqual(s.by_status, { 200: 1 });
  });

  it('reset zeroes everything', async () => {
    await H.signedRequest(srv, { key: 'a.bin' });
    await H.admin(srv, 'POST', '/stats/reset', {});
    const { inflight, max_inflight: maxInflight, ...s } = (await H.admin(srv, 'GET', '/stats')).json;
    assert.deepEqual(s, { total: { requests: 0, bytes: 0 }, by_key: {}, list_requests: 0, stat_requests: 0, auth_failures: 0, by_status: {} });
    assert.equal(inflight, 0);
    assert.ok(maxInflight <= 1, `max_inflight ${maxInflight} after a reset with nothing in flight`);
  });

  it('max_inflight is the most requests answered at once', async () => {
    await H.admin(srv, 'POST', '/faults', { latency_ms: 300 });
    await H.admin(srv, 'POST', '/stats/reset', {});
    await Promise.all([0, 1, 2].map(() => H.signedRequest(srv, { key: 'a.bin' })));
    await H.signedRequest(srv, { key: 'a.bin' });
    await H.admin(srv, 'POST', '/faults', {});
    const s = (await H.admin(srv, 'GET', '/stats')).json;
    assert.equal(s.max_inflight, 3);
    assert.equal(s.total.requests, 4);
  });

  it('admin answers 404 for unknown calls and validates input', async () => {
    assert.equal((await H.admin(srv, 'GET', '/nope')).status, 404);
    assert.equal((await H.admin(srv, 'POST', '/clock', { skew_ms: 'x' })).status, 400);
    assert.equal((await H.admin(srv, 'POST', '/objects', { key: '' })).status, 400);
    assert.equal((await H.admin(srv, 'POST', '/objects', { key: 'k', storage_class: 'Gold' })).status, 400);
    assert.equal((await H.admin(srv, 'DELETE', '/objects')).status, 400);
    assert.equal((await H.admin(srv, 'GET', '/health')).json.ok, true);
  });
});
