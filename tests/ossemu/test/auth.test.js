'use strict';
// Signature acceptance (each SDK's client-side signer) and every rejection path.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const OSS = require('ali-oss');
const H = require('../testlib/harness');

describe('authentication', () => {
  let srv;
  let tmp;
  before(async () => {
    tmp = H.tmpRoot('auth');
    H.writeTree(tmp.dir, { 'a.txt': 'hello', 'dir/中文 +%~.bin': 'unicode', 'dir/x': 'x' });
    srv = await H.startServer(tmp.dir, ['--sts', 'stsak:stssk:TOKEN1', '--sts', 'oldak:oldsk:OLDTOKEN']);
    const r = await H.admin(srv, 'POST', '/creds', { expired_tokens: ['OLDTOKEN'] });
    assert.equal(r.status, 200);
  });
  after(async () => {
    if (srv) await srv.stop();
    if (tmp) tmp.cleanup();
  });

  const client = (v4, extra = {}) => new OSS({
    accessKeyId: 'testak',
    accessKeySecret: 'testsk',
    bucket: H.BUCKET,
    endpoint: `http://127.0.0.1:${srv.port}`,
    region: `oss-${H.REGION}`,
    authorizationV4: v4,
    retryMax: 0,
    ...extra,
  });

  for (const v4 of [false, true]) {
    it(`ali-oss client (${v4 ? 'V4' : 'V1'}) can get, head and list`, async () => {
      const c = client(v4);
      const g = await c.get('a.txt');
      assert.equal(g.res.status, 200);
      assert.equal(g.content.toString(), 'hello');
      const h = await c.head('dir/中文 +%~.bin');
      assert.equal(h.res.status, 200);
      assert.equal(h.res.headers['content-length'], '7');
      const l = await c.listV2({ prefix: 'dir/', 'max-keys': 10 });
      assert.deepEqual(l.objects.map(o => o.name), ['dir/x', 'dir/中文 +%~.bin']);
      const l1 = await c.list({ delimiter: '/' });
      assert.deepEqual(l1.prefixes, ['dir/']);
      const s = await c.getBucketStat(H.BUCKET);
      assert.equal(s.stat.ObjectCount, '3');
    });

    it(`ali-oss client (${v4 ? 'V4' : 'V1'}) with an STS token`, async () => {
      const c = client(v4, { accessKeyId: 'stsak', accessKeySecret: 'stssk', stsToken: 'TOKEN1' });
      const g = await c.get('a.txt');
      assert.equal(g.content.toString(), 'hello');
    });
  }

  it('V1 signed over the Date header (no x-oss-date), path and virtual-host style', async () => {
    for (const vhost of [false, true]) {
      const r = await H.signedRequest(srv, { scheme: 'v1', key: 'dir/中文 +%~.bin', useDateHeader: true, vhost });
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.body.toString(), 'unicode');
    }
  });

  it('V1 signs sub-resources only (?stat signed, list parameters not)', async () => {
    let r = await H.signedRequest(srv, { scheme: 'v1', query: { stat: null }, subres: { stat: null } });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 'v1', query: { prefix: 'dir/', 'max-keys': '5', delimiter: '/' } });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 'v1', query: { 'list-type': '2', 'continuation-token': Buffer.from('a.txt').toString('base64url') }, subres: { 'continuation-token': Buffer.from('a.txt').toString('base64url') } });
    assert.equal(r.status, 200, r.body.toString());
    // Forgetting to sign a sub-resource is a signature mismatch.
    r = await H.signedRequest(srv, { scheme: 'v1', query: { stat: null } });
    assert.equal(r.status, 403);
    assert.equal(H.xmlTag(r.body, 'Code'), 'SignatureDoesNotMatch');
    assert.match(H.xmlTag(r.body, 'StringToSign'), /\/testbucket\/\?stat$/);
  });

  it('V4 with every query parameter signed, empty values, AdditionalHeaders', async () => {
    let r = await H.signedRequest(srv, { scheme: 'v4', query: { 'list-type': '2', prefix: 'dir/', 'encoding-type': 'url', 'max-keys': '100' } });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 'v4', query: { stat: null } });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 'v4', query: { prefix: '' } });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 'v4', key: 'dir/中文 +%~.bin', headers: { Range: 'bytes=0-2' }, additionalHeaders: ['host', 'range'] });
    assert.equal(r.status, 206, r.body.toString());
    assert.equal(r.body.toString(), 'uni');
    r = await H.signedRequest(srv, { scheme: 'v4', key: 'a.txt', vhost: true, additionalHeaders: ['host'] });
    assert.equal(r.status, 200, r.body.toString());
  });

  it('S3 SigV4 (smithy signer): path style, virtual host, payload hashes, session token', async () => {
    let r = await H.signedRequest(srv, { scheme: 's3', key: 'dir/中文 +%~.bin' });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.body.toString(), 'unicode');
    assert.ok(r.headers['x-amz-request-id']);
    r = await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', vhost: true, payloadHash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', payloadHash: null }); // no x-amz-content-sha256 at all
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 's3', query: { 'list-type': '2', prefix: 'dir/', delimiter: '/', 'encoding-type': 'url' } });
    assert.equal(r.status, 200, r.body.toString());
    assert.match(r.body.toString(), /xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/"/);
    r = await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', headers: { Range: 'bytes=1-2' } });
    assert.equal(r.status, 206);
    assert.equal(r.body.toString(), 'el');
    r = await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', ak: 'stsak', sk: 'stssk', token: 'TOKEN1' });
    assert.equal(r.status, 200, r.body.toString());
    r = await H.signedRequest(srv, { scheme: 's3', query: { location: '' } });
    assert.equal(r.status, 200);
    assert.equal(H.xmlTag(r.body.toString().replace(/ xmlns="[^"]*"/, ''), 'LocationConstraint'), 'cn-hangzhou');
  });

  it('S3 SigV4 with the wrong region is AuthorizationHeaderMalformed naming the region', async () => {
    const r = await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', region: 'us-east-1' });
    assert.equal(r.status, 400);
    assert.equal(H.xmlTag(r.body, 'Code'), 'AuthorizationHeaderMalformed');
    assert.equal(H.xmlTag(r.body, 'Region'), 'cn-hangzhou');
  });

  for (const scheme of ['v1', 'v4', 's3']) {
    it(`${scheme}: wrong secret -> 403 SignatureDoesNotMatch`, async () => {
      const r = await H.signedRequest(srv, { scheme, key: 'a.txt', sk: 'wrong' });
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'SignatureDoesNotMatch');
      assert.match(H.xmlTag(r.body, 'RequestId'), /^[0-9A-F]{24}$/);
    });

    it(`${scheme}: unknown key id -> 403 InvalidAccessKeyId`, async () => {
      const r = await H.signedRequest(srv, { scheme, key: 'a.txt', ak: 'nobody' });
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidAccessKeyId');
    });

    it(`${scheme}: STS key without its token -> InvalidAccessKeyId; wrong token too`, async () => {
      let r = await H.signedRequest(srv, { scheme, key: 'a.txt', ak: 'stsak', sk: 'stssk' });
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidAccessKeyId');
      r = await H.signedRequest(srv, { scheme, key: 'a.txt', ak: 'stsak', sk: 'stssk', token: 'OTHER' });
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'InvalidAccessKeyId');
    });

    it(`${scheme}: expired token -> 403 SecurityTokenExpired`, async () => {
      const r = await H.signedRequest(srv, { scheme, key: 'a.txt', ak: 'oldak', sk: 'oldsk', token: 'OLDTOKEN' });
      assert.equal(r.status, 403);
      assert.equal(H.xmlTag(r.body, 'Code'), 'SecurityTokenExpired');
    });

    it(`${scheme}: date 16 min off -> 403 RequestTimeTooSkewed with ServerTime; 14 min is fine`, async () => {
      for (const off of [16 * 60000, -16 * 60000]) {
        const r = await H.signedRequest(srv, { scheme, key: 'a.txt', dateOffsetMs: off });
        assert.equal(r.status, 403);
        assert.equal(H.xmlTag(r.body, 'Code'), 'RequestTimeTooSkewed');
        const st = Date.parse(H.xmlTag(r.body, 'ServerTime'));
        assert.ok(Math.abs(st - Date.now()) < 5000, 'ServerTime is the server clock');
      }
      const ok = await H.signedRequest(srv, { scheme, key: 'a.txt', dateOffsetMs: 14 * 60000 });
      assert.equal(ok.status, 200);
    });
  }

  it('server clock skew (POST /clock) makes a correct request skewed; Date header follows it', async () => {
    let r = await H.admin(srv, 'POST', '/clock', { skew_ms: 3600000 });
    assert.equal(r.status, 200);
    try {
      const g = await H.signedRequest(srv, { scheme: 'v4', key: 'a.txt' });
      assert.equal(g.status, 403);
      assert.equal(H.xmlTag(g.body, 'Code'), 'RequestTimeTooSkewed');
      const serverDate = Date.parse(g.headers.date);
      assert.ok(Math.abs(serverDate - (Date.now() + 3600000)) < 5000);
      // A client that corrects its clock from Date gets through.
      const ok = await H.signedRequest(srv, { scheme: 'v4', key: 'a.txt', dateOffsetMs: serverDate - Date.now() });
      assert.equal(ok.status, 200);
    } finally {
      r = await H.admin(srv, 'POST', '/clock', { skew_ms: 0 });
      assert.equal(r.status, 200);
    }
  });

  it('no Authorization -> 403 AccessDenied; HEAD errors have no body but x-oss-err', async () => {
    let r = await H.httpRequest({ port: srv.port, path: '/testbucket/a.txt' });
    assert.equal(r.status, 403);
    assert.equal(H.xmlTag(r.body, 'Code'), 'AccessDenied');
    r = await H.signedRequest(srv, { scheme: 'v4', method: 'HEAD', key: 'a.txt', sk: 'bad' });
    assert.equal(r.status, 403);
    assert.equal(r.body.length, 0);
    const xml = Buffer.from(r.headers['x-oss-err'], 'base64').toString();
    assert.equal(H.xmlTag(xml, 'Code'), 'SignatureDoesNotMatch');
    assert.match(r.headers['x-oss-request-id'], /^[0-9A-F]{24}$/);
  });

  it('POST /creds replaces the accepted keys', async () => {
    let r = await H.admin(srv, 'POST', '/creds', { creds: ['newak:newsk'] });
    assert.equal(r.status, 200);
    try {
      let g = await H.signedRequest(srv, { scheme: 'v1', key: 'a.txt' });
      assert.equal(H.xmlTag(g.body, 'Code'), 'InvalidAccessKeyId');
      g = await H.signedRequest(srv, { scheme: 'v1', key: 'a.txt', ak: 'newak', sk: 'newsk' });
      assert.equal(g.status, 200);
      // STS keys were kept (not mentioned in the call).
      g = await H.signedRequest(srv, { scheme: 'v1', key: 'a.txt', ak: 'stsak', sk: 'stssk', token: 'TOKEN1' });
      assert.equal(g.status, 200);
    } finally {
      r = await H.admin(srv, 'POST', '/creds', { creds: ['testak:testsk'] });
      assert.equal(r.status, 200);
    }
    r = await H.admin(srv, 'POST', '/creds', { creds: ['nocolon'] });
    assert.equal(r.status, 400);
  });

  it('counts auth failures', async () => {
    await H.admin(srv, 'POST', '/stats/reset', {});
    await H.signedRequest(srv, { scheme: 'v1', key: 'a.txt', sk: 'bad' });
    await H.signedRequest(srv, { scheme: 's3', key: 'a.txt', ak: 'nobody' });
    await H.signedRequest(srv, { scheme: 'v4', key: 'a.txt' });
    const s = (await H.admin(srv, 'GET', '/stats')).json;
    assert.equal(s.auth_failures, 2);
    assert.equal(s.by_status['403'], 2);
    assert.equal(s.by_status['200'], 1);
  });
});
