'use strict';
/*
 * CRC-64/XZ (the CRC behind OSS's x-oss-hash-crc64ecma): ECMA-182 polynomial, reflected
 * (0xC96C5795D7870F42), init and xorout all ones. "123456789" -> 0x995dc9bbdf1939fa.
 *
 * JavaScript has no fast 64-bit integers, so the running CRC is kept as two unsigned 32-bit halves
 * (lo, hi) and the tables as pairs of Uint32Arrays. The bulk of the data goes through slice-by-8
 * (eight table lookups per 8 input bytes, reading the input as two little-endian 32-bit words
 * through an aligned Uint32Array view); the ragged head and tail go byte by byte. No BigInt is
 * touched per byte: BigInt appears only when the final value is formatted.
 *
 * API: new Crc64().update(buf)...digest() -> BigInt; crc64(buf) -> BigInt;
 * crc64File(path[, size]) -> Promise<BigInt> (streams the file, constant memory).
 */
const fs = require('fs');

const POLY_LO = 0xd7870f42;
const POLY_HI = 0xc96c5795;

// TLO[k * 256 + i], THI[k * 256 + i]: table k of slice-by-8 (k = 0 is the classic byte table).
const TLO = new Uint32Array(8 * 256);
const THI = new Uint32Array(8 * 256);

(function buildTables() {
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let b = 0; b < 8; b++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi >>>= 1;
      if (carry) {
        lo = (lo ^ POLY_LO) >>> 0;
        hi = (hi ^ POLY_HI) >>> 0;
      }
    }
    TLO[i] = lo;
    THI[i] = hi;
  }
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const plo = TLO[(k - 1) * 256 + i];
      const phi = THI[(k - 1) * 256 + i];
      const idx = plo & 0xff;
      // (prev >>> 8) ^ T0[prev & 0xff]
      TLO[k * 256 + i] = (((plo >>> 8) | (phi << 24)) ^ TLO[idx]) >>> 0;
      THI[k * 256 + i] = ((phi >>> 8) ^ THI[idx]) >>> 0;
    }
  }
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

class Crc64 {
  constructor() {
    // Running register (already inverted by init = all ones).
    this.lo = 0xffffffff;
    this.hi = 0xffffffff;
  }

  /** Feeds BUF (Buffer / Uint8Array); returns this. */
  update(buf) {
    let lo = this.lo;
    let hi = this.hi;
    const n = buf.length;
    let i = 0;

    // Byte-wise until the data is 4-byte aligned for the Uint32Array view.
    const misalign = (buf.byteOffset + i) & 3;
    let head = misalign === 0 ? 0 : 4 - misalign;
    if (head > n) head = n;
    if (!LITTLE_ENDIAN) head = n; // portable fallback (never on x86/arm64 Linux)
    for (; i < head; i++) {
      const idx = (lo ^ buf[i]) & 0xff;
      lo = (((lo >>> 8) | (hi << 24)) ^ TLO[idx]) >>> 0;
      hi = ((hi >>> 8) ^ THI[idx]) >>> 0;
    }

    const words = (n - i) >>> 3; // number of 8-byte blocks
    if (words > 0) {
      const w = new Uint32Array(buf.buffer, buf.byteOffset + i, words * 2);
      const end = words * 2;
      for (let j = 0; j < end; j += 2) {
        const a = (lo ^ w[j]) >>> 0;
        const b = (hi ^ w[j + 1]) >>> 0;
        lo =
          TLO[1792 + (a & 0xff)] ^
          TLO[1536 + ((a >>> 8) & 0xff)] ^
          TLO[1280 + ((a >>> 16) & 0xff)] ^
          TLO[1024 + (a >>> 24)] ^
          TLO[768 + (b & 0xff)] ^
          TLO[512 + ((b >>> 8) & 0xff)] ^
          TLO[256 + ((b >>> 16) & 0xff)] ^
          TLO[b >>> 24];
        hi =
          THI[1792 + (a & 0xff)] ^
          THI[1536 + ((a >>> 8) & 0xff)] ^
          THI[1280 + ((a >>> 16) & 0xff)] ^
          THI[1024 + (a >>> 24)] ^
          THI[768 + (b & 0xff)] ^
          THI[512 + ((b >>> 8) & 0xff)] ^
          THI[256 + ((b >>> 16) & 0xff)] ^
          THI[b >>> 24];
      }
      lo >>>= 0;
      hi >>>= 0;
      i += words * 8;
    }

    for (; i < n; i++) {
      const idx = (lo ^ buf[i]) & 0xff;
      lo = (((lo >>> 8) | (hi << 24)) ^ TLO[idx]) >>> 0;
      hi = ((hi >>> 8) ^ THI[idx]) >>> 0;
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }

  /** The CRC of everything fed so far, as a BigInt (the object stays usable). */
  digest() {
    const lo = (this.lo ^ 0xffffffff) >>> 0;
    const hi = (this.hi ^ 0xffffffff) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
}

/** CRC-64/XZ of a whole buffer, as a BigInt. */
function crc64(buf) {
  return new Crc64().update(buf).digest();
}

const READ_MAX = 4 << 20;
const READ_MIN = 64 << 10;

/**
 * CRC-64/XZ of a file, streamed with big reads; resolves to a BigInt. SIZE (the file's size, if
 * known) sizes the read buffer: each read allocates a buffer of that size, and a 4 MiB one per
 * 16 KiB object made the garbage collector a fifth of the server's time in a small-file epoch.
 */
function crc64File(path, size) {
  let hwm = READ_MAX;
  if (Number.isSafeInteger(size) && size >= 0) hwm = Math.min(READ_MAX, Math.max(READ_MIN, size + 1));
  return new Promise((resolve, reject) => {
    const c = new Crc64();
    const s = fs.createReadStream(path, { highWaterMark: hwm });
    s.on('data', chunk => c.update(chunk));
    s.on('error', reject);
    s.on('end', () => resolve(c.digest()));
  });
}

module.exports = { Crc64, crc64, crc64File };
