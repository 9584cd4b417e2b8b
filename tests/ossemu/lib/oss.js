'use strict';
/*
 * The S3/OSS port: one HTTP server speaking OSS (V1/V4) and S3 (SigV4) for one read-only bucket.
 *
 * Per request, in order:
 *   1. parse: strict percent-decoding of path and query (400 InvalidArgument when malformed);
 *      virtual-hosted style when Host is "<bucket>" or "<bucket>.*", path style otherwise;
 *   2. faults: decide() consumes the `next` queue / draws the rates (see faults.js); reset and
 *      stall act here, error answers here; truncate/corrupt/bandwidth act on the body later;
 *   3. latency (--latency-ms + latency_ms + a `latency` fault);
 *   4. bucket check (NoSuchBucket), read-only check (403 AccessDenied for writes), signature check
 *      (auth.js, with the SDKs' signing code);
 *   5. the operation: GetObject/HeadObject (Range, If-*), ListObjects v1/v2, GetBucketStat,
 *      GetBucketLocation, HeadBucket, ListBuckets; anything else 501 NotImplemented.
 * The answer's dialect follows the Authorization scheme: S3 requests get the S3 namespace, storage
 * class names and x-amz-* ids, and RFC 7233 range semantics; OSS requests get OSS's (a range the
 * object cannot satisfy returns the whole object unless x-oss-range-behavior: standard).
 * Every answer has Date (server clock incl. skew), x-oss-request-id and Server: AliyunOSS; error
 * answers to HEAD carry no body but an x-oss-err header (base64 of the error XML).
 */
const http = require('http');
const https = require('https');
const fs = require('fs');
const { schemeOf } = require('./auth');
const { sendResponse } = require('./send');
const { XML_DECL, S3_NS, esc, el, errorXml } = require('./xml');
const {
  BadInput, newRequestId, clock, httpDate, isoSeconds, percentDecode, parseQuery, urlEncodeKey,
  awsEncodePath, parseAnyDate,
} = require('./util');

const ARCHIVE_CLASSES = new Set(['Archive', 'ColdArchive', 'DeepColdArchive']);
const S3_CLASS = { Standard: 'STANDARD', IA: 'STANDARD_IA', Archive: 'GLACIER', ColdArchive: 'DEEP_ARCHIVE', DeepColdArchive: 'DEEP_ARCHIVE' };
const OWNER_ID = '1234567890123456';
const STATUS_CODES = { 500: 'InternalError', 503: 'ServiceUnavailable', 429: 'QpsLimitExceeded', 408: 'RequestTimeout' };

// Bucket sub-resources we recognise but do not implement (GET on them -> 501).
const BUCKET_UNSUPPORTED = new Set([
  'acl', 'cors', 'lifecycle', 'logging', 'website', 'referer', 'policy', 'versioning', 'versions',
  'uploads', 'tagging', 'encryption', 'replication', 'replicationProgress', 'replicationLocation',
  'inventory', 'bucketInfo', 'worm', 'requestPayment', 'transferAcceleration', 'qos', 'cname',
  'accessPoint', 'metaQuery', 'resourceGroup', 'style', 'object-lock', 'notification',
  'publicAccessBlock', 'ownershipControls', 'accelerate', 'analytics', 'metrics',
  'intelligent-tiering', 'policyStatus', 'delete', 'live', 'regionList',
]);
const OBJECT_UNSUPPORTED = new Set(['acl', 'tagging', 'symlink', 'uploadId', 'uploads', 'restore',
  'x-oss-process', 'torrent', 'attributes', 'retention', 'legal-hold', 'x-oss-async-process']);
const RESPONSE_OVERRIDES = {
  'response-content-type': 'Content-Type',
  'response-content-language': 'Content-Language',
  'response-expires': 'Expires',
  'response-cache-control': 'Cache-Control',
  'response-content-disposition': 'Content-Disposition',
  'response-content-encoding': 'Content-Encoding',
};

// What node accepts in a header value (anything else would throw in writeHead).
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function sleep(ms) {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/** Parses a Range header. Returns {kind: 'none'|'range'|'unsat', start, end}. */
function parseRange(h, size, standard) {
  const none = { kind: 'none' };
  if (typeof h !== 'string' || h.length > 1000) return none;
  const m0 = /^\s*bytes\s*=\s*(.*)$/i.exec(h);
  if (!m0) return none;
  const specs = m0[1].split(',');
  if (specs.length > 1 && standard) return { kind: 'unsat' }; // OSS supports a single range
  const m = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(specs[0]);
  if (!m || (m[1] === '' && m[2] === '')) return none;
  const big = s => (s.length > 15 ? Number.MAX_SAFE_INTEGER : Number(s));
  if (size === 0) return standard ? { kind: 'unsat' } : none;
  if (m[1] === '') {
    const n = big(m[2]);
    if (n === 0) return standard ? { kind: 'unsat' } : none;
    if (n > size) return standard ? { kind: 'range', start: 0, end: size - 1 } : none;
    return { kind: 'range', start: size - n, end: size - 1 };
  }
  const a = big(m[1]);
  if (a >= size) return standard ? { kind: 'unsat' } : none;
  if (m[2] === '') return { kind: 'range', start: a, end: size - 1 };
  const b = big(m[2]);
  if (b < a) return none; // syntactically invalid: ignored (RFC 7233 and OSS alike)
  if (b >= size) return standard ? { kind: 'range', start: a, end: size - 1 } : none;
  return { kind: 'range', start: a, end: b };
}

/** Splits an If-Match / If-None-Match list into bare ETag values ("*" stays "*"). */
function etagList(h) {
  return String(h)
    .split(',')
    .map(s => s.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1'))
    .filter(Boolean);
}

class OssServer {
  /**
   * @param {object} ctx {store, auth, faults, stats, opts: {bucket, region, latencyMs, bwPerConn, bwBucket,
   *   noCrc, verbose}, log}
   */
  constructor(ctx) {
    this.ctx = ctx;
    this.sockets = new Set();
    this.stalled = new Set();
    const handler = (req, res) => {
      this.handle(req, res).catch(err => {
        this.ctx.log(`internal error: ${err && err.stack ? err.stack : err}`);
        if (!res.headersSent && !res.destroyed) {
          this.sendError(this.rcOf(req, res), 500, 'InternalError', 'We encountered an internal error. Please try again.');
        } else res.destroy();
      });
    };
    // --tls-cert/--tls-key: serve HTTPS instead (for the client's TLS path and its CA checks).
    const o = ctx.opts;
    this.server = o.tlsCert
      ? https.createServer({ maxHeaderSize: 64 * 1024, cert: fs.readFileSync(o.tlsCert),
        key: fs.readFileSync(o.tlsKey) }, handler)
      : http.createServer({ maxHeaderSize: 64 * 1024 }, handler);
    this.server.keepAliveTimeout = 60000;
    this.server.headersTimeout = 65000;
    this.server.on('connection', sock => {
      if (this.ctx.faults.down) {
        sock.destroy();
        return;
      }
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    this.server.on('clientError', (err, sock) => {
      // Malformed request line / headers too large: answer if we still can, never crash.
      if (sock.writable && !sock.destroyed) {
        const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
        this.ctx.stats.status(code);
        sock.end(`HTTP/1.1 ${code} ${http.STATUS_CODES[code]}\r\nServer: AliyunOSS\r\n` +
          `Date: ${httpDate(clock.now())}\r\nx-oss-request-id: ${newRequestId()}\r\n` +
          'Connection: close\r\nContent-Length: 0\r\n\r\n');
      } else sock.destroy();
    });
  }

  listen(port, host) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address().port);
      });
    });
  }

  /** Destroys every open connection (fault "down", shutdown). */
  destroyAll() {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    for (const r of this.stalled) r.destroy();
    this.stalled.clear();
  }

  close() {
    return new Promise(resolve => {
      this.server.close(() => resolve());
      this.destroyAll();
    });
  }

  // ------------------------------------------------------------------ helpers

  rcOf(req, res) {
    if (!req.ossemu) {
      req.ossemu = { req, res, rid: newRequestId(), s3: false, key: undefined, fault: null };
    }
    return req.ossemu;
  }

  baseHeaders(rc) {
    const h = {
      Server: 'AliyunOSS',
      Date: httpDate(clock.now()),
      'x-oss-request-id': rc.rid,
    };
    if (rc.s3) {
      h['x-amz-request-id'] = rc.rid;
      h['x-amz-id-2'] = rc.rid;
    }
    if (rc.closeAfter) h.Connection = 'close';
    return h;
  }

  /** Sends a response, applying body faults / bandwidth and counting status and bytes. */
  send(rc, status, headers, body) {
    const { stats } = this.ctx;
    const f = rc.fault || {};
    const action = f.action || null;
    const o = {
      head: rc.req.method === 'HEAD',
      bw: (f.matched && f.bw) || this.ctx.opts.bwPerConn,
      bwBucket: (f.matched && f.bwBucket) || this.ctx.opts.bwBucket,
      onBytes: n => stats.bytes(rc.key, n),
    };
    const len = o.head ? 0 : body ? (Buffer.isBuffer(body) ? body.length : body.end - body.start + 1) : 0;
    if (action && action.kind === 'truncate') {
      o.truncateAfter = action.after !== undefined ? action.after : Math.floor(len / 2);
    }
    if (action && action.kind === 'corrupt') {
      o.corruptAt = action.at !== undefined ? action.at : Math.floor(len / 2);
    }
    stats.status(status, rc.key, rc.req.method);
    rc.status = status;
    if (this.ctx.opts.verbose) {
      this.ctx.log(`${rc.rid} ${rc.req.method} ${rc.req.url} -> ${status}${action ? ` [${action.kind}]` : ''}`);
    }
    sendResponse(rc.res, status, headers, body, o);
  }

  sendXml(rc, status, xml, extraHeaders) {
    const body = Buffer.from(xml);
    const h = { ...this.baseHeaders(rc), 'Content-Type': 'application/xml', 'Content-Length': body.length, ...extraHeaders };
    this.send(rc, status, h, body);
  }

  sendError(rc, status, code, message, extra, extraHeaders) {
    const host = rc.req.headers.host || '';
    const xml = errorXml(code, message, rc.rid, host, extra);
    const body = Buffer.from(xml);
    const h = { ...this.baseHeaders(rc), 'Content-Type': 'application/xml', ...extraHeaders };
    if (rc.req.method === 'HEAD') {
      h['x-oss-err'] = body.toString('base64');
      h['Content-Length'] = 0;
      this.send(rc, status, h, null);
    } else {
      h['Content-Length'] = body.length;
      this.send(rc, status, h, body);
    }
  }

  // ------------------------------------------------------------------ request flow

  /** Parses the request target. Throws BadInput. */
  parseTarget(req) {
    const { bucket } = this.ctx.opts;
    let raw = req.url || '/';
    if (raw.length > 16384) throw new BadInput('request URI too long', 'uri', '');
    const abs = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(raw);
    if (abs) raw = raw.slice(abs[0].length) || '/';
    if (!raw.startsWith('/')) throw new BadInput('the request target must be an absolute path', 'uri', raw.slice(0, 100));
    const qi = raw.indexOf('?');
    const rawPath = qi < 0 ? raw : raw.slice(0, qi);
    const rawQuery = qi < 0 ? '' : raw.slice(qi + 1);
    const path = percentDecode(rawPath, false, 'path');
    const query = parseQuery(rawQuery);
    const q = new Map();
    for (const [k, v] of query) q.set(k, v);

    let hostname = String(req.headers.host || '').toLowerCase();
    hostname = hostname.startsWith('[') ? hostname.slice(0, hostname.indexOf(']') + 1) : hostname.replace(/:\d*$/, '');
    let reqBucket;
    let key;
    if (hostname === bucket || hostname.startsWith(bucket + '.')) {
      reqBucket = bucket;
      key = path.slice(1);
    } else if (path === '/') {
      reqBucket = '';
      key = '';
    } else {
      const i = path.indexOf('/', 1);
      reqBucket = i < 0 ? path.slice(1) : path.slice(1, i);
      key = i < 0 ? '' : path.slice(i + 1);
    }
    return { path, query, q, bucket: reqBucket, key };
  }

  async handle(req, res) {
    const { stats, faults, opts, auth } = this.ctx;
    const rc = this.rcOf(req, res);
    const method = req.method;
    stats.begin();
    res.once('close', () => stats.end());
    rc.s3 = schemeOf(req.headers.authorization) === 's3';
    rc.closeAfter = method !== 'GET' && method !== 'HEAD';

    let t;
    try {
      t = this.parseTarget(req);
    } catch (e) {
      if (!(e instanceof BadInput)) throw e;
      stats.request(undefined, method);
      return this.sendError(rc, 400, 'InvalidArgument', e.message, [['ArgumentName', e.argName], ['ArgumentValue', e.argValue]]);
    }
    const isObject = t.bucket !== '' && t.key !== '';
    rc.key = isObject ? t.key : undefined;
    stats.request(rc.key, method);

    // Faults (keyed by the object key, or a listing's prefix).
    const faultKey = isObject ? t.key : t.bucket !== '' ? t.q.get('prefix') || '' : undefined;
    const f = faults.decide(faultKey);
    rc.fault = f;
    const latency = (opts.latencyMs || 0) + f.latencyMs;
    if (latency > 0) {
      await sleep(latency);
      if (res.destroyed) return;
    }
    const action = f.action;
    if (action) {
      if (opts.verbose) this.ctx.log(`${rc.rid} ${method} ${req.url} fault ${action.kind}`);
      if (action.kind === 'reset') {
        // A real TCP reset (RST) where the platform allows it.
        if (typeof req.socket.resetAndDestroy === 'function') req.socket.resetAndDestroy();
        else req.socket.destroy();
        return;
      }
      if (action.kind === 'stall') {
        this.stalled.add(req.socket);
        req.socket.once('close', () => this.stalled.delete(req.socket));
        return; // never answered; destroyed at shutdown
      }
      if (action.kind === 'error') {
        const st = action.status;
        const code = STATUS_CODES[st] || (st >= 500 ? 'InternalError' : 'InvalidRequest');
        return this.sendError(rc, st, code, `Injected fault: ${code}.`);
      }
    }

    if (t.bucket !== '' && t.bucket !== opts.bucket) {
      return this.sendError(rc, 404, 'NoSuchBucket', 'The specified bucket does not exist.', [['BucketName', t.bucket]]);
    }
    if (Buffer.byteLength(t.key) > 1023) {
      return this.sendError(rc, 400, 'InvalidObjectName', 'The object name is longer than 1023 bytes.');
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return this.sendError(rc, 403, 'AccessDenied', `ossemu serves a read-only bucket: ${method} is not allowed.`);
    }

    const v = await auth.verify({
      method,
      headers: req.headers,
      bucket: t.bucket,
      key: t.key,
      query: t.query,
      s3CanonicalPath: awsEncodePath(t.path),
    });
    if (!v.ok) {
      stats.authFailures++;
      if (opts.verbose) this.ctx.log(`${rc.rid} auth failed: ${v.code}: ${v.message}`);
      return this.sendError(rc, v.status, v.code, v.message, v.extra);
    }
    if (res.destroyed) return;

    if (t.bucket === '') return this.listBuckets(rc);
    if (isObject) return this.objectOp(rc, t);
    if (method === 'HEAD') {
      return this.send(rc, 200, { ...this.baseHeaders(rc), 'Content-Length': 0, 'x-amz-bucket-region': opts.region }, null);
    }
    return this.bucketGet(rc, t);
  }

  // ------------------------------------------------------------------ objects

  async objectOp(rc, t) {
    const { store, opts } = this.ctx;
    const req = rc.req;
    const isHead = req.method === 'HEAD';
    for (const [k] of t.query) {
      if (OBJECT_UNSUPPORTED.has(k)) {
        return this.sendError(rc, 501, 'NotImplemented', `ossemu does not implement the "${k}" sub-resource.`);
      }
    }
    const obj = await store.getObject(t.key);
    if (!obj) return this.sendError(rc, 404, 'NoSuchKey', 'The specified key does not exist.', [['Key', t.key]]);
    const version = t.q.get('versionId');
    if (version !== undefined && version !== 'null') {
      return this.sendError(rc, 404, 'NoSuchVersion', 'The specified version does not exist.', [['Key', t.key], ['VersionId', version]]);
    }

    const etag = `"${obj.etag}"`;
    const lastModified = httpDate(Math.floor(obj.mtimeMs / 1000) * 1000);
    const h = req.headers;
    const condHeaders = { ETag: etag, 'Last-Modified': lastModified };
    const mtimeSec = Math.floor(obj.mtimeMs / 1000) * 1000;
    if (h['if-match'] !== undefined) {
      const list = etagList(h['if-match']);
      if (!list.includes('*') && !list.includes(obj.etag)) {
        return this.sendError(rc, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', [['Condition', 'If-Match']], condHeaders);
      }
    } else if (h['if-unmodified-since'] !== undefined) {
      const d = parseAnyDate(h['if-unmodified-since']);
      if (!Number.isNaN(d) && mtimeSec > d) {
        return this.sendError(rc, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', [['Condition', 'If-Unmodified-Since']], condHeaders);
      }
    }
    if (h['if-none-match'] !== undefined) {
      const list = etagList(h['if-none-match']);
      if (list.includes('*') || list.includes(obj.etag)) {
        return this.send(rc, 304, { ...this.baseHeaders(rc), ...condHeaders }, null);
      }
    } else if (h['if-modified-since'] !== undefined) {
      const d = parseAnyDate(h['if-modified-since']);
      if (!Number.isNaN(d) && mtimeSec <= d) {
        return this.send(rc, 304, { ...this.baseHeaders(rc), ...condHeaders }, null);
      }
    }

    const restored = typeof obj.restore === 'string' && /ongoing-request="false"/.test(obj.restore);
    if (!isHead && ARCHIVE_CLASSES.has(obj.storageClass) && !restored) {
      return this.sendError(rc, 403, 'InvalidObjectState', 'The operation is not valid for the object\'s storage class.', [['Key', t.key]]);
    }

    const headers = {
      ...this.baseHeaders(rc),
      'Content-Type': 'application/octet-stream',
      ETag: etag,
      'Last-Modified': lastModified,
      'Accept-Ranges': 'bytes',
      'x-oss-object-type': 'Normal',
      'x-oss-storage-class': obj.storageClass,
    };
    if (rc.s3 && obj.storageClass !== 'Standard') headers['x-amz-storage-class'] = S3_CLASS[obj.storageClass];
    if (obj.restore !== undefined) {
      headers['x-oss-restore'] = obj.restore;
      if (rc.s3) headers['x-amz-restore'] = obj.restore;
    }
    if (!opts.noCrc) {
      headers['x-oss-hash-crc64ecma'] = await store.crc(obj);
      if (rc.res.destroyed) return;
    }
    for (const [param, header] of Object.entries(RESPONSE_OVERRIDES)) {
      const val = t.q.get(param);
      if (val !== undefined && HEADER_VALUE.test(val)) headers[header] = val;
    }

    const standard = rc.s3 || String(h['x-oss-range-behavior'] || '').toLowerCase() === 'standard';
    const range = h.range !== undefined ? parseRange(h.range, obj.size, standard) : { kind: 'none' };
    if (range.kind === 'unsat') {
      return this.sendError(rc, 416, 'InvalidRange', 'The requested range cannot be satisfied.', [['RangeRequested', h.range], ['ActualObjectSize', obj.size]], { 'Content-Range': `bytes */${obj.size}` });
    }
    let start = 0;
    let end = obj.size - 1;
    let status = 200;
    if (range.kind === 'range') {
      start = range.start;
      end = range.end;
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${obj.size}`;
    }
    headers['Content-Length'] = end - start + 1;
    let body = null;
    if (!isHead && end >= start) body = obj.virtual ? { data: obj.data, start, end } : { path: obj.path, start, end };
    return this.send(rc, status, headers, body);
  }

  // ------------------------------------------------------------------ bucket

  bucketGet(rc, t) {
    for (const [k] of t.query) {
      if (BUCKET_UNSUPPORTED.has(k)) {
        return this.sendError(rc, 501, 'NotImplemented', `ossemu does not implement the "${k}" sub-resource.`);
      }
    }
    if (t.q.has('location')) return this.location(rc);
    if (t.q.has('stat')) return this.bucketStat(rc);
    return this.listObjects(rc, t);
  }

  location(rc) {
    const { region } = this.ctx.opts;
    const xml = rc.s3
      ? `${XML_DECL}<LocationConstraint xmlns="${S3_NS}">${esc(region)}</LocationConstraint>\n`
      : `${XML_DECL}<LocationConstraint>oss-${esc(region)}</LocationConstraint>\n`;
    this.sendXml(rc, 200, xml);
  }

  listBuckets(rc) {
    const { bucket, region } = this.ctx.opts;
    const created = '2024-01-01T00:00:00.000Z';
    let xml;
    if (rc.s3) {
      xml = `${XML_DECL}<ListAllMyBucketsResult xmlns="${S3_NS}"><Owner>${el('ID', OWNER_ID)}${el('DisplayName', OWNER_ID)}</Owner>` +
        `<Buckets><Bucket>${el('Name', bucket)}${el('CreationDate', created)}</Bucket></Buckets></ListAllMyBucketsResult>\n`;
    } else {
      xml = `${XML_DECL}<ListAllMyBucketsResult><Owner>${el('ID', OWNER_ID)}${el('DisplayName', OWNER_ID)}</Owner><Buckets><Bucket>` +
        `${el('CreationDate', created)}${el('ExtranetEndpoint', `oss-${region}.aliyuncs.com`)}` +
        `${el('IntranetEndpoint', `oss-${region}-internal.aliyuncs.com`)}${el('Location', `oss-${region}`)}` +
        `${el('Name', bucket)}${el('Region', region)}${el('StorageClass', 'Standard')}</Bucket></Buckets></ListAllMyBucketsResult>\n`;
    }
    this.sendXml(rc, 200, xml);
  }

  async bucketStat(rc) {
    const { store, stats } = this.ctx;
    stats.statRequests++;
    const s = await store.stat();
    if (rc.res.destroyed) return;
    const c = s.byClass;
    const parts = [
      XML_DECL, '<BucketStat>',
      el('Storage', s.bytes), el('ObjectCount', s.count), el('MultipartUploadCount', 0),
      el('LiveChannelCount', 0), el('LastModifiedTime', Math.floor(s.lastModifiedMs / 1000)),
      el('StandardStorage', c.Standard.bytes), el('StandardObjectCount', c.Standard.count),
      el('InfrequentAccessStorage', c.IA.bytes), el('InfrequentAccessRealStorage', c.IA.bytes),
      el('InfrequentAccessObjectCount', c.IA.count),
      el('ArchiveStorage', c.Archive.bytes), el('ArchiveRealStorage', c.Archive.bytes),
      el('ArchiveObjectCount', c.Archive.count),
      el('ColdArchiveStorage', c.ColdArchive.bytes), el('ColdArchiveRealStorage', c.ColdArchive.bytes),
      el('ColdArchiveObjectCount', c.ColdArchive.count),
      el('DeepColdArchiveStorage', c.DeepColdArchive.bytes), el('DeepColdArchiveRealStorage', c.DeepColdArchive.bytes),
      el('DeepColdArchiveObjectCount', c.DeepColdArchive.count),
      el('MultipartPartCount', 0), el('DeleteMarkerCount', 0),
      '</BucketStat>\n',
    ];
    this.sendXml(rc, 200, parts.join(''));
  }

  async listObjects(rc, t) {
    const { store, stats, opts } = this.ctx;
    const q = t.q;
    stats.listRequests++;
    const bad = (name, value, why) => this.sendError(rc, 400, 'InvalidArgument', why, [['ArgumentName', name], ['ArgumentValue', value]]);

    const listType = q.get('list-type');
    if (listType !== undefined && listType !== '1' && listType !== '2') return bad('list-type', listType, 'list-type must be 1 or 2.');
    const v2 = listType === '2';
    const prefix = q.get('prefix') || '';
    const delimiter = q.get('delimiter') || '';
    if (Buffer.byteLength(prefix) > 1024) return bad('prefix', prefix, 'The prefix is longer than 1024 bytes.');
    if (Buffer.byteLength(delimiter) > 128) return bad('delimiter', delimiter, 'The delimiter is too long.');
    let maxKeys = rc.s3 ? 1000 : 100;
    const mk = q.get('max-keys');
    if (mk !== undefined && mk !== '') {
      if (!/^\d{1,10}$/.test(mk)) return bad('max-keys', mk, 'max-keys must be a non-negative integer.');
      maxKeys = Math.min(1000, Number(mk));
    }
    const enc = q.get('encoding-type');
    if (enc !== undefined && enc !== '' && enc !== 'url') return bad('encoding-type', enc, 'encoding-type must be "url".');
    const url = enc === 'url';
    const E = s => (url ? urlEncodeKey(s) : s);

    let marker = '';
    let token;
    let startAfter;
    if (v2) {
      token = q.get('continuation-token');
      startAfter = q.get('start-after');
      if (token !== undefined && token !== '') {
        if (!/^[A-Za-z0-9_-]+$/.test(token)) return bad('continuation-token', token, 'The continuation token is invalid.');
        marker = Buffer.from(token, 'base64url').toString('utf8');
      } else if (startAfter) marker = startAfter;
    } else {
      marker = q.get('marker') || '';
    }

    const result = maxKeys === 0
      ? { entries: [], truncated: false, last: null }
      : await store.list({ prefix, delimiter, marker, maxKeys });
    if (rc.res.destroyed) return;

    const fetchOwner = v2 ? q.get('fetch-owner') === 'true' : true;
    const parts = [XML_DECL, rc.s3 ? `<ListBucketResult xmlns="${S3_NS}">` : '<ListBucketResult>'];
    parts.push(el('Name', opts.bucket), el('Prefix', E(prefix)));
    if (v2) {
      if (token !== undefined) parts.push(el('ContinuationToken', token));
      if (startAfter !== undefined) parts.push(el('StartAfter', E(startAfter)));
    } else {
      parts.push(el('Marker', E(marker)));
    }
    parts.push(el('MaxKeys', maxKeys), el('Delimiter', E(delimiter)));
    if (url) parts.push(el('EncodingType', 'url'));
    parts.push(el('IsTruncated', result.truncated ? 'true' : 'false'));
    if (result.truncated && result.last !== null) {
      if (v2) parts.push(el('NextContinuationToken', Buffer.from(result.last).toString('base64url')));
      else parts.push(el('NextMarker', E(result.last)));
    }
    if (v2) parts.push(el('KeyCount', result.entries.length));
    const prefixes = [];
    for (const e of result.entries) {
      if (e.kind === 'prefix') {
        prefixes.push(e.prefix);
        continue;
      }
      const o = e.obj;
      parts.push('<Contents>', el('Key', E(o.key)), el('LastModified', isoSeconds(o.mtimeMs)),
        el('ETag', `"${o.etag}"`));
      if (!rc.s3) parts.push(el('Type', 'Normal'));
      parts.push(el('Size', o.size), el('StorageClass', rc.s3 ? S3_CLASS[o.storageClass] : o.storageClass));
      if (o.restore !== undefined && !rc.s3) parts.push(el('RestoreInfo', o.restore));
      if (fetchOwner) parts.push(`<Owner>${el('ID', OWNER_ID)}${el('DisplayName', OWNER_ID)}</Owner>`);
      parts.push('</Contents>');
    }
    for (const p of prefixes) parts.push(`<CommonPrefixes>${el('Prefix', E(p))}</CommonPrefixes>`);
    parts.push('</ListBucketResult>\n');
    this.sendXml(rc, 200, parts.join(''));
  }
}

module.exports = { OssServer, parseRange };
