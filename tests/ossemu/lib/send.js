'use strict';
/*
 * Writing response bodies: fast when nothing interferes, faithful when a fault or a bandwidth cap
 * does.
 *
 * Fast path (no cap, no truncate/corrupt fault): a file body is fs.createReadStream(start..end,
 * 1 MiB reads) piped straight into the response; a buffer is written in one go. Nothing is ever
 * read whole into memory.
 *
 * Slow path: an async pump reads the same stream chunk by chunk, cuts the body short (truncate:
 * headers promise the full Content-Length, then the socket is destroyed after `after` bytes),
 * flips one byte (corrupt), and paces writes through a token bucket that belongs to the socket, so
 * the cap holds per connection across keep-alive requests, and through the server's one bucket
 * (bwBucket: OSS throttles a bucket's egress as a whole, whatever the connections). Writes respect
 * backpressure.
 *
 * Either way: a client that goes away stops the file stream (no leaked descriptors), a file that
 * shrinks under us ends the connection instead of leaving the client waiting for promised bytes,
 * and onBytes() sees every body byte handed to the socket.
 */
const fs = require('fs');

const READ_CHUNK = 1 << 20;
const kBucket = Symbol('ossemuBucket');

/** Per-connection token bucket (bytes). The rate is passed at each use: it may change. */
class TokenBucket {
  constructor() {
    this.tokens = 0;
    this.last = performance.now();
  }

  /** Takes N tokens at RATE bytes/s with at most BURST saved; returns the wait in ms (>= 0). */
  take(n, rate, burst) {
    const now = performance.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.last) * rate) / 1000);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens / rate) * 1000;
  }
}

const serverBucket = new TokenBucket(); /* bwBucket: every connection's bytes */

function bucketOf(socket) {
  if (!socket[kBucket]) socket[kBucket] = new TokenBucket();
  return socket[kBucket];
}

function bodyLength(body) {
  if (!body) return 0;
  if (Buffer.isBuffer(body)) return body.length;
  return body.end - body.start + 1;
}

function openBody(body, hwm) {
  if (body.path) {
    return fs.createReadStream(body.path, { start: body.start, end: body.end, highWaterMark: hwm });
  }
  // A slice of an in-memory object, served in pieces so the slow path can pace it.
  const data = body.data.subarray(body.start, body.end + 1);
  const { Readable } = require('stream');
  let off = 0;
  return new Readable({
    highWaterMark: hwm,
    read() {
      if (off >= data.length) {
        this.push(null);
        return;
      }
      const n = Math.min(hwm, data.length - off);
      this.push(data.subarray(off, off + n));
      off += n;
    },
  });
}

/**
 * Writes the status line, HEADERS and BODY to RES.
 *   body: null | Buffer | {path, start, end} | {data, start, end}   (end inclusive)
 *   o: {bw (bytes/s per connection, 0 = none), bwBucket (bytes/s for the whole server, 0 = none),
 *       truncateAfter, corruptAt, onBytes(n), head (no body)}
 * HEADERS must already hold Content-Length.
 */
function sendResponse(res, status, headers, body, o = {}) {
  const onBytes = o.onBytes || (() => {});
  if (res.destroyed || res.writableEnded) return;
  res.writeHead(status, headers);
  const len = o.head ? 0 : bodyLength(body);
  const truncating = o.truncateAfter !== undefined;

  if (len === 0) {
    res.end();
    if (truncating) res.on('finish', () => res.socket && res.socket.destroy());
    return;
  }

  const bw = o.bw || 0;
  const corrupting = o.corruptAt !== undefined && o.corruptAt < len;
  if (!bw && !o.bwBucket && !truncating && !corrupting) {
    if (Buffer.isBuffer(body)) {
      res.end(body);
      onBytes(body.length);
      return;
    }
    const src = openBody(body, READ_CHUNK);
    let sent = 0;
    src.on('data', c => {
      sent += c.length;
      onBytes(c.length);
    });
    src.on('end', () => {
      if (sent < len) res.destroy(); // the file shrank: do not leave the client waiting
    });
    src.on('error', () => res.destroy());
    res.on('close', () => src.destroy());
    src.pipe(res);
    return;
  }
  pumpSlow(res, body, len, o, onBytes).catch(() => res.destroy());
}

function sleep(ms, res) {
  return new Promise(resolve => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      res.off('close', done);
      resolve();
    }
    res.once('close', done);
  });
}

function waitDrain(res) {
  return new Promise(resolve => {
    function done() {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    }
    res.once('drain', done);
    res.once('close', done);
  });
}

async function pumpSlow(res, body, len, o, onBytes) {
  const bw = o.bw || 0;
  const bwb = o.bwBucket || 0;
  const limit = o.truncateAfter !== undefined ? Math.min(o.truncateAfter, len) : len;
  // Small pieces under a cap keep the pacing smooth; big ones otherwise.
  const cap = bw && bwb ? Math.min(bw, bwb) : bw || bwb;
  const piece = cap ? Math.max(1024, Math.min(READ_CHUNK, Math.floor(cap / 20))) : READ_CHUNK;
  const burst = Math.max(piece, bw / 10);
  const bucket = bw ? bucketOf(res.socket) : null;
  const src = Buffer.isBuffer(body) ? null : openBody(body, piece);
  let sent = 0;
  let lastWrite = Promise.resolve();
  const closed = new Promise(resolve => res.once('close', resolve));

  const writePiece = async chunk => {
    if (bucket) {
      const wait = bucket.take(chunk.length, bw, burst);
      if (wait > 0) await sleep(wait, res);
    }
    if (bwb) {
      // the server's bucket: taken when the piece would go, so waiting connections share it
      const wait = serverBucket.take(chunk.length, bwb, Math.max(piece, bwb / 10));
      if (wait > 0) await sleep(wait, res);
    }
    if (res.destroyed) return false;
    if (o.corruptAt !== undefined && o.corruptAt >= sent && o.corruptAt < sent + chunk.length) {
      chunk = Buffer.from(chunk); // never modify a shared buffer
      chunk[o.corruptAt - sent] ^= 0xff;
    }
    lastWrite = new Promise(resolve => res.write(chunk, () => resolve()));
    sent += chunk.length;
    onBytes(chunk.length);
    if (res.writableNeedDrain) await waitDrain(res);
    return !res.destroyed;
  };

  if (o.truncateAfter !== undefined) res.flushHeaders(); // headers go out even if no body byte does
  try {
    if (!src) {
      for (let off = 0; off < limit && !res.destroyed; off += piece) {
        if (!(await writePiece(body.subarray(off, Math.min(limit, off + piece))))) return;
      }
    } else {
      for await (const chunk of src) {
        let c = chunk;
        if (sent + c.length > limit) c = c.subarray(0, limit - sent);
        for (let off = 0; off < c.length; off += piece) {
          if (!(await writePiece(c.subarray(off, Math.min(c.length, off + piece))))) return;
        }
        if (sent >= limit) break;
      }
    }
  } finally {
    if (src) src.destroy();
  }
  if (res.destroyed) return;
  if (sent < len) {
    // Truncated on purpose (or the file shrank): let the bytes written reach the kernel, then cut.
    await Promise.race([lastWrite, closed]);
    const sock = res.socket;
    if (sock && !sock.destroyed) {
      // An empty write completes after everything queued before it (headers included).
      await Promise.race([new Promise(resolve => sock.write(Buffer.alloc(0), () => resolve())), closed]);
      sock.destroy();
    } else res.destroy();
    return;
  }
  res.end();
}

module.exports = { sendResponse, bodyLength };
