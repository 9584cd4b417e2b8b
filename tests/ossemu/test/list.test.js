'use strict';
// ListObjects v1/v2: pagination, byte order, delimiters, encoding-type=url, virtual objects,
// empty directories, cache invalidation, GetBucketStat.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const H = require('../testlib/harness');

const byteOrder = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function parseList(xml) {
  const s = xml.toString();
  const contents = [...s.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map(m => m[1]);
  return {
    keys: contents.map(c => H.xmlUnescape(H.xmlTag(c, 'Key'))),
    sizes: contents.map(c => Number(H.xmlTag(c, 'Size'))),
    contents,
    prefixes: [...s.matchAll(/<CommonPrefixes><Prefix>([\s\S]*?)<\/Prefix><\/CommonPrefixes>/g)].map(m => H.xmlUnescape(m[1])),
    truncated: H.xmlTag(s, 'IsTruncated') === 'true',
    nextMarker: H.xmlTag(s, 'NextMarker'),
    nextToken: H.xmlTag(s, 'NextContinuationToken'),
    keyCount: H.xmlTag(s, 'KeyCount'),
    xml: s,
  };
}

/** Lists everything page by page; returns {items: ['k:key' | 'p:prefix'], pages}. */
async function listAll(srv, { v2, prefix, delimiter, maxKeys, scheme = 'v4', url = false, startAfter }) {
  const items = [];
  let marker;
  let pages = 0;
  for (;;) {
    const query = {};
    if (v2) query['list-type'] = '2';
    if (prefix !== undefined) query.prefix = prefix;
    if (delimiter !== undefined) query.delimiter = delimiter;
    if (maxKeys !== undefined) query['max-keys'] = String(maxKeys);
    if (url) query['encoding-type'] = 'url';
    if (marker !== undefined) query[v2 ? 'continuation-token' : 'marker'] = marker;
    else if (startAfter !== undefined) query[v2 ? 'start-after' : 'marker'] = startAfter;
    // V1 signs the continuation token (a sub-resource), never the other listing parameters.
    const subres = v2 && marker !== undefined ? { 'continuation-token': marker } : undefined;
    const r = await H.signedRequest(srv, { scheme, query, subres });
    assert.equal(r.status, 200, r.body.toString());
    const p = parseList(r.body);
    const dec = s => (url ? decodeURIComponent(s) : s);
    // Contents come first, then CommonPrefixes; merge them back into one ordered page.
    const page = [...p.keys.map(k => `k:${dec(k)}`), ...p.prefixes.map(x => `p:${dec(x)}`)];
    page.sort((a, b) => byteOrder(a.slice(2), b.slice(2)));
    items.push(...page);
    if (v2) assert.equal(Number(p.keyCount), page.length);
    pages++;
    assert.ok(pages < 10000, 'runaway pagination');
    if (!p.truncated) break;
    marker = v2 ? p.nextToken : dec(p.nextMarker);
    assert.ok(marker, 'a truncated page names where to resume');
  }
  return { items, pages };
}

describe('listing', () => {
  let srv;
  let tmp;
  const many = [];
  let fileCount = 0;
  let fileBytes = 0;
  before(async () => {
    tmp = H.tmpRoot('list');
    const alphabet = ['a', 'B', 'z', '0', '-', '_', '.', '~', 'é', '中', 'ｚ', '😀', ' ', '+'];
    for (let i = 0; i < 2500; i++) {
      const name = `${alphabet[i % alphabet.length]}${alphabet[(i * 7) % alphabet.length]}-${i}`;
      many.push(`many/${name}`);
    }
    const files = {};
    for (const k of many) files[k] = 'x';
    Object.assign(files, {
      'top.txt': 'top',
      'mixed/f1': '1', 'mixed/f3': '333', 'mixed/d2/x': 'x', 'mixed/d2-x': 'dash', 'mixed/d4/deep/er/file': 'deep',
      'mixed/emptyparent/empty/.keep-not': null,
      'special/sp ace': 's', 'special/plus+': 'p', 'special/pct%25': 'c', 'special/tilde~': 't',
      'special/中文': 'u', 'special/amp&lt;': 'a', 'special/quote"\'': 'q', 'special/<tag>': 'g',
      'special/question?#hash': 'h', 'special/semi;colon=eq': 'e',
      'v/b/c': 'fs',
    });
    for (const [k, v] of Object.entries(files)) {
      if (v === null) fs.mkdirSync(path.join(tmp.dir, path.dirname(k)), { recursive: true });
      else {
        H.writeTree(tmp.dir, { [k]: v });
        fileCount++;
        fileBytes += Buffer.byteLength(v);
      }
    }
    fs.mkdirSync(path.join(tmp.dir, 'emptydir/sub'), { recursive: true });
    srv = await H.startServer(tmp.dir);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (tmp) tmp.cleanup();
  });

  const sortedMany = () => [...many].sort(byteOrder).map(k => `k:${k}`);

  for (const v2 of [false, true]) {
    it(`${v2 ? 'v2' : 'v1'}: 2,500 keys in pages of 1000, each exactly once, in byte order`, async () => {
      const { items, pages } = await listAll(srv, { v2, prefix: 'many/', maxKeys: 1000 });
      assert.equal(pages, 3);
      assert.deepEqual(items, sortedMany());
    });

    it(`${v2 ? 'v2' : 'v1'}: same with delimiter "/" (one directory) and odd page sizes`, async () => {
      for (const maxKeys of [7, 999]) {
        const { items } = await listAll(srv, { v2, prefix: 'many/', delimiter: '/', maxKeys });
        assert.deepEqual(items, sortedMany());
      }
    });

    it(`${v2 ? 'v2' : 'v1'}: keys and common prefixes interleave correctly across pages`, async () => {
      const want = ['k:mixed/d2-x', 'p:mixed/d2/', 'p:mixed/d4/', 'k:mixed/f1', 'k:mixed/f3'];
      for (const maxKeys of [1, 2, 3, 1000]) {
        const { items } = await listAll(srv, { v2, prefix: 'mixed/', delimiter: '/', maxKeys });
        assert.deepEqual(items, want, `max-keys ${maxKeys}`);
      }
      const root = await listAll(srv, { v2, delimiter: '/', maxKeys: 2 });
      assert.deepEqual(root.items, ['p:many/', 'p:mixed/', 'p:special/', 'k:top.txt', 'p:v/']);
    });

    it(`${v2 ? 'v2' : 'v1'}: a prefix that is not a directory, and other delimiters`, async () => {
      let r = await listAll(srv, { v2, prefix: 'mixed/d', delimiter: '/', maxKeys: 2 });
      assert.deepEqual(r.items, ['k:mixed/d2-x', 'p:mixed/d2/', 'p:mixed/d4/']);
      r = await listAll(srv, { v2, prefix: 'mixed/', maxKeys: 2 });
      assert.deepEqual(r.items, ['k:mixed/d2-x', 'k:mixed/d2/x', 'k:mixed/d4/deep/er/file', 'k:mixed/f1', 'k:mixed/f3']);
      r = await listAll(srv, { v2, prefix: 'mixed/', delimiter: '-', maxKeys: 2 });
      assert.deepEqual(r.items, ['k:mixed/d2/x', 'p:mixed/d2-', 'k:mixed/d4/deep/er/file', 'k:mixed/f1', 'k:mixed/f3'].sort((a, b) => byteOrder(a.slice(2), b.slice(2))));
      r = await listAll(srv, { v2, prefix: 'mixed/d4/', delimiter: 'er/', maxKeys: 1 });
      assert.deepEqual(r.items, ['p:mixed/d4/deep/er/']);
    });
  }

  it('v2 start-after and a v1 marker that is a common prefix resume after it', async () => {
    let r = await listAll(srv, { v2: true, prefix: 'mixed/', delimiter: '/', startAfter: 'mixed/d2/' });
    assert.deepEqual(r.items, ['p:mixed/d4/', 'k:mixed/f1', 'k:mixed/f3']);
    r = await listAll(srv, { v2: false, prefix: 'mixed/', delimiter: '/', startAfter: 'mixed/d2-x' });
    assert.deepEqual(r.items, ['p:mixed/d2/', 'p:mixed/d4/', 'k:mixed/f1', 'k:mixed/f3']);
    // A marker inside a common prefix: the rest of that prefix still shows it.
    r = await listAll(srv, { v2: false, prefix: 'mixed/', delimiter: '/', startAfter: 'mixed/d4/a' });
    assert.deepEqual(r.items, ['p:mixed/d4/', 'k:mixed/f1', 'k:mixed/f3']);
    r = await listAll(srv, { v2: false, prefix: 'mixed/', delimiter: '/', startAfter: 'mixed/d4/z' });
    assert.deepEqual(r.items, ['k:mixed/f1', 'k:mixed/f3']);
  });

  it('empty directories are not objects and do not list as common prefixes', async () => {
    const r = await listAll(srv, { v2: true, delimiter: '/' });
    assert.ok(!r.items.includes('p:emptydir/'));
    const m = await listAll(srv, { v2: true, prefix: 'mixed/', delimiter: '/' });
    assert.ok(!m.items.includes('p:mixed/emptyparent/'));
    const all = await listAll(srv, { v2: true, prefix: 'emptydir' });
    assert.deepEqual(all.items, []);
  });

  it('special and unicode keys round-trip through encoding-type=url and XML escaping', async () => {
    const want = ['special/sp ace', 'special/plus+', 'special/pct%25', 'special/tilde~', 'special/中文',
      'special/amp&lt;', 'special/quote"\'', 'special/<tag>', 'special/question?#hash', 'special/semi;colon=eq']
      .sort(byteOrder).map(k => `k:${k}`);
    for (const v2 of [false, true]) {
      for (const scheme of ['v1', 'v4', 's3']) {
        const enc = await listAll(srv, { v2, scheme, prefix: 'special/', url: true, maxKeys: 3 });
        assert.deepEqual(enc.items, want, `${scheme} url`);
        const plain = await listAll(srv, { v2, scheme, prefix: 'special/', maxKeys: 4 });
        assert.deepEqual(plain.items, want, `${scheme} plain`);
      }
    }
    // The encoded answer is pure ASCII with the prefix and delimiter encoded too.
    const r = await H.signedRequest(srv, { query: { 'list-type': '2', prefix: 'special/中', delimiter: '/', 'encoding-type': 'url' } });
    const p = parseList(r.body);
    assert.equal(H.xmlTag(p.xml, 'Prefix'), 'special/%E4%B8%AD');
    assert.equal(H.xmlTag(p.xml, 'EncodingType'), 'url');
    assert.deepEqual(p.keys, ['special/%E4%B8%AD%E6%96%87']);
    // And each key can be fetched by name.
    for (const item of want) {
      const g = await H.signedRequest(srv, { key: item.slice(2) });
      assert.equal(g.status, 200, item);
    }
  });

  it('virtual objects merge into listings (a//b, a/b beside a/b/c, control characters)', async () => {
    const put = (key, data) => H.admin(srv, 'POST', '/objects', { key, data_base64: Buffer.from(data).toString('base64') });
    assert.equal((await put('v//double', 'dd')).status, 200);
    assert.equal((await put('v/b', 'file beside dir')).status, 200);
    assert.equal((await put('v/ctl\u0001x', 'c')).status, 200);
    assert.equal((await put('/lead', 'l')).status, 200);
    try {
      let r = await listAll(srv, { v2: true, prefix: 'v/', delimiter: '/', maxKeys: 1 });
      assert.deepEqual(r.items, ['p:v//', 'k:v/b', 'p:v/b/', 'k:v/ctl\u0001x']);
      r = await listAll(srv, { v2: false, prefix: 'v/', maxKeys: 2 });
      assert.deepEqual(r.items, ['k:v//double', 'k:v/b', 'k:v/b/c', 'k:v/ctl\u0001x']);
      r = await listAll(srv, { v2: true, prefix: 'v/', url: true });
      assert.deepEqual(r.items, ['k:v//double', 'k:v/b', 'k:v/b/c', 'k:v/ctl\u0001x']);
      r = await listAll(srv, { v2: true, delimiter: '/' });
      assert.equal(r.items[0], 'p:/');
      const x = await H.signedRequest(srv, { query: { prefix: 'v/ctl' } });
      assert.match(x.body.toString(), /<Key>v\/ctl&#x1;x<\/Key>/);
    } finally {
      for (const k of ['v//double', 'v/b', 'v/ctl\u0001x', '/lead']) {
        await H.admin(srv, 'DELETE', `/objects?key=${encodeURIComponent(k)}`);
      }
    }
    const r = await listAll(srv, { v2: true, prefix: 'v/' });
    assert.deepEqual(r.items, ['k:v/b/c']);
  });

  it('listings see files added, changed and removed (including deep ones) at once', async () => {
    const p = path.join(tmp.dir, 'mixed/d4/deep/new');
    let r = await listAll(srv, { v2: true, prefix: 'mixed/' });
    fs.writeFileSync(p, 'fresh!');
    r = await listAll(srv, { v2: true, prefix: 'mixed/' });
    assert.ok(r.items.includes('k:mixed/d4/deep/new'));
    let l = parseList((await H.signedRequest(srv, { query: { prefix: 'mixed/d4/deep/new' } })).body);
    assert.deepEqual(l.sizes, [6]);
    fs.writeFileSync(p, 'fresher!!');
    l = parseList((await H.signedRequest(srv, { query: { prefix: 'mixed/d4/deep/new' } })).body);
    assert.deepEqual(l.sizes, [9]);
    fs.unlinkSync(p);
    r = await listAll(srv, { v2: true, prefix: 'mixed/' });
    assert.ok(!r.items.includes('k:mixed/d4/deep/new'));
    // A directory becomes a common prefix when its first (deep) file appears.
    fs.writeFileSync(path.join(tmp.dir, 'emptydir/sub/now'), 'n');
    r = await listAll(srv, { v2: true, delimiter: '/' });
    assert.ok(r.items.includes('p:emptydir/'));
    fs.unlinkSync(path.join(tmp.dir, 'emptydir/sub/now'));
    r = await listAll(srv, { v2: true, delimiter: '/' });
    assert.ok(!r.items.includes('p:emptydir/'));
  });

  it('Contents carry LastModified (.000Z), quoted ETag, Type, Size, StorageClass; Owner in v1 / fetch-owner', async () => {
    let r = parseList((await H.signedRequest(srv, { query: { prefix: 'top.txt' } })).body);
    const c = r.contents[0];
    assert.match(H.xmlTag(c, 'LastModified'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match(H.xmlTag(c, 'ETag'), /^&quot;[0-9A-F]{32}-1&quot;$/);
    assert.equal(H.xmlTag(c, 'Type'), 'Normal');
    assert.equal(H.xmlTag(c, 'Size'), '3');
    assert.equal(H.xmlTag(c, 'StorageClass'), 'Standard');
    assert.ok(H.xmlTag(c, 'Owner'));
    r = parseList((await H.signedRequest(srv, { query: { 'list-type': '2', prefix: 'top.txt' } })).body);
    assert.equal(H.xmlTag(r.contents[0], 'Owner'), undefined);
    r = parseList((await H.signedRequest(srv, { query: { 'list-type': '2', prefix: 'top.txt', 'fetch-owner': 'true' } })).body);
    assert.ok(H.xmlTag(r.contents[0], 'Owner'));
    for (const tag of ['Name', 'Prefix', 'MaxKeys', 'Delimiter', 'IsTruncated', 'KeyCount']) {
      assert.notEqual(H.xmlTag(r.xml, tag), undefined, tag);
    }
    // S3 flavour: STANDARD and no Type.
    r = parseList((await H.signedRequest(srv, { scheme: 's3', query: { 'list-type': '2', prefix: 'top.txt' } })).body);
    assert.equal(H.xmlTag(r.contents[0], 'StorageClass'), 'STANDARD');
  });

  it('max-keys: default 100 (OSS) / 1000 (S3), clamped to 1000, validated; encoding-type validated', async () => {
    let r = parseList((await H.signedRequest(srv, { query: { prefix: 'many/' } })).body);
    assert.equal(r.keys.length, 100);
    r = parseList((await H.signedRequest(srv, { scheme: 's3', query: { prefix: 'many/' } })).body);
    assert.equal(r.keys.length, 1000);
    r = parseList((await H.signedRequest(srv, { query: { prefix: 'many/', 'max-keys': '5000' } })).body);
    assert.equal(r.keys.length, 1000);
    assert.equal(H.xmlTag(r.xml, 'MaxKeys'), '1000');
    r = parseList((await H.signedRequest(srv, { query: { prefix: 'many/', 'max-keys': '0' } })).body);
    assert.equal(r.keys.length, 0);
    for (const [k, v] of [['max-keys', '-1'], ['max-keys', 'abc'], ['encoding-type', 'base64'], ['list-type', '3']]) {
      const e = await H.signedRequest(srv, { query: { [k]: v } });
      assert.equal(e.status, 400, `${k}=${v}`);
      assert.equal(H.xmlTag(e.body, 'Code'), 'InvalidArgument');
    }
    const e = await H.signedRequest(srv, { query: { 'list-type': '2', 'continuation-token': '!!!' } });
    assert.equal(e.status, 400);
  });

  it('GetBucketStat and GetBucketLocation', async () => {
    const r = await H.signedRequest(srv, { query: { stat: null } });
    assert.equal(r.status, 200);
    const s = r.body.toString();
    assert.equal(H.xmlTag(s, 'ObjectCount'), String(fileCount));
    assert.equal(H.xmlTag(s, 'Storage'), String(fileBytes));
    assert.equal(H.xmlTag(s, 'StandardStorage'), String(fileBytes));
    assert.equal(H.xmlTag(s, 'StandardObjectCount'), String(fileCount));
    assert.equal(H.xmlTag(s, 'MultipartUploadCount'), '0');
    const loc = await H.signedRequest(srv, { query: { location: null } });
    assert.equal(H.xmlTag(loc.body, 'LocationConstraint'), 'oss-cn-hangzhou');
    const head = await H.signedRequest(srv, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  it('a 20,000-entry directory lists quickly', async () => {
    const dir = path.join(tmp.dir, 'huge');
    fs.mkdirSync(dir);
    for (let i = 0; i < 20000; i++) fs.writeFileSync(path.join(dir, `file-${i}`), '');
    const t0 = Date.now();
    const { items, pages } = await listAll(srv, { v2: true, prefix: 'huge/', delimiter: '/', maxKeys: 1000 });
    const ms = Date.now() - t0;
    assert.equal(items.length, 20000);
    assert.equal(pages, 20);
    assert.ok(ms < 10000, `took ${ms} ms`);
  });
});
