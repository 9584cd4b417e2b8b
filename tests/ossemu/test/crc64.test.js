'use strict';
// CRC-64/XZ (x-oss-hash-crc64ecma): check value, chunking, streaming a file.
const { it } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const H = require('../testlib/harness');
const { crc64, Crc64, crc64File } = require('../lib/crc64');

/** Bit-at-a-time reference implementation. */
function reference(buf) {
  let c = 0xffffffffffffffffn;
  for (const b of buf) {
    c ^= BigInt(b);
    for (let i = 0; i < 8; i++) c = c & 1n ? (c >> 1n) ^ 0xc96c5795d7870f42n : c >> 1n;
  }
  return c ^ 0xffffffffffffffffn;
}

it('CRC-64/XZ check value: "123456789" -> 0x995dc9bbdf1939fa', () => {
  assert.equal(crc64(Buffer.from('123456789')), 0x995dc9bbdf1939fan);
  assert.equal(crc64(Buffer.alloc(0)), 0n);
});

it('matches the bitwise reference at every length and alignment', () => {
  const data = crypto.randomBytes(300);
  for (let off = 0; off < 9; off++) {
    for (const len of [0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200]) {
      const s = data.subarray(off, off + len);
      assert.equal(crc64(s), reference(s), `off ${off} len ${len}`);
    }
  }
});

it('is independent of how the data is chunked', () => {
  const data = crypto.randomBytes(1 << 20);
  const whole = crc64(data);
  const c = new Crc64();
  let off = 0;
  for (let i = 1; off < data.length; i = (i * 7 + 3) % 4099) {
    const n = Math.min(i + 1, data.length - off);
    c.update(data.subarray(off, off + n));
    off += n;
  }
  assert.equal(c.digest(), whole);
});

it('streams a file (crc64File) and is fast enough for big objects', async () => {
  const tmp = H.tmpRoot('crc');
  try {
    const p = path.join(tmp.dir, 'f');
    const data = crypto.randomBytes(64 << 20);
    fs.writeFileSync(p, data);
    const t0 = process.hrtime.bigint();
    const v = await crc64File(p);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    assert.equal(v, crc64(data));
    assert.ok(ms < 20000, `64 MiB took ${ms} ms`); // loose: a loaded machine slows it
  } finally {
    tmp.cleanup();
  }
});
