'use strict';
/*
 * The admin port (127.0.0.1 only, JSON in and out, no auth). It steers the S3/OSS port: stats,
 * faults, credentials, clock skew and virtual objects. Successful calls answer 200 with a JSON
 * object; bad input answers 400 {"error": "..."}; unknown routes 404. Faults never apply here and
 * admin calls are never counted in the stats.
 */
const http = require('http');
const { clock } = require('./util');

const MAX_BODY = 256 << 20; // virtual objects travel as base64 in the body

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', c => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(new Error(`request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function reply(res, status, obj) {
  const body = Buffer.from(JSON.stringify(obj) + '\n');
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
  res.end(body);
}

class AdminServer {
  /** @param {object} ctx {store, creds, faults, stats, oss (OssServer), log} */
  constructor(ctx) {
    this.ctx = ctx;
    this.sockets = new Set();
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch(err => {
        if (!res.headersSent) reply(res, 400, { error: err.message });
        else res.destroy();
      });
    });
    this.server.on('connection', s => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  listen(port) {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve(this.server.address().port);
      });
    });
  }

  close() {
    return new Promise(resolve => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  async json(req) {
    const text = await readBody(req);
    if (text.trim() === '') return {};
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error(`body is not valid JSON: ${e.message}`);
    }
  }

  async handle(req, res) {
    const { store, creds, faults, stats, oss } = this.ctx;
    const u = new URL(req.url, 'http://admin');
    const route = `${req.method} ${u.pathname.replace(/\/+$/, '') || '/'}`;
    switch (route) {
      case 'GET /health':
        return reply(res, 200, { ok: true });
      case 'GET /stats':
        return reply(res, 200, stats.toJSON());
      case 'POST /stats/reset':
        await readBody(req);
        stats.reset();
        return reply(res, 200, { ok: true });
      case 'GET /faults':
        return reply(res, 200, faults.toJSON());
      case 'POST /faults': {
        const spec = await this.json(req);
        const out = faults.set(spec);
        if (out.down) oss.destroyAll();
        this.ctx.log(`faults: ${JSON.stringify(out).slice(0, 500)}`);
        return reply(res, 200, out);
      }
      case 'GET /creds':
        return reply(res, 200, creds.toJSON());
      case 'POST /creds': {
        const spec = await this.json(req);
        if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new Error('body must be a JSON object');
        creds.replace(spec);
        return reply(res, 200, { ok: true, ...creds.toJSON() });
      }
      case 'GET /clock':
        return reply(res, 200, { skew_ms: clock.skewMs, now: new Date(clock.now()).toISOString() });
      case 'POST /clock': {
        const spec = await this.json(req);
        const n = spec && spec.skew_ms;
        if (typeof n !== 'number' || !Number.isFinite(n) || Math.abs(n) > 10 * 365 * 86400000) {
          throw new Error('skew_ms must be a finite number of milliseconds');
        }
        clock.skewMs = Math.trunc(n);
        return reply(res, 200, { ok: true, skew_ms: clock.skewMs });
      }
      case 'GET /objects':
        return reply(res, 200, { objects: store.virtualList() });
      case 'POST /objects': {
        const spec = await this.json(req);
        if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new Error('body must be a JSON object');
        const known = ['key', 'data_base64', 'storage_class', 'restore'];
        for (const k of Object.keys(spec)) if (!known.includes(k)) throw new Error(`unknown field "${k}"`);
        let data;
        if (spec.data_base64 !== undefined) {
          if (typeof spec.data_base64 !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(spec.data_base64)) {
            throw new Error('data_base64 must be a base64 string');
          }
          data = Buffer.from(spec.data_base64, 'base64');
        }
        const e = store.putVirtual({ key: spec.key, data, storageClass: spec.storage_class, restore: spec.restore });
        return reply(res, 200, { ok: true, key: e.key, etag: e.etag ? `"${e.etag}"` : null, size: data ? data.length : null });
      }
      case 'DELETE /objects': {
        const key = u.searchParams.get('key');
        if (key === null) throw new Error('DELETE /objects needs ?key=K');
        return reply(res, 200, { ok: true, removed: store.deleteVirtual(key) });
      }
      default:
        await readBody(req).catch(() => {});
        return reply(res, 404, { error: `no such admin call: ${route}` });
    }
  }
}

module.exports = { AdminServer };
