'use strict';
/*
 * Small shared helpers: request ids, the (skewable) server clock and its date formats, strict
 * percent-decoding of request paths and query strings, the percent-encoding used by
 * encoding-type=url, and UTF-8 byte-order comparison of keys.
 *
 * Decoding is strict on purpose: a malformed escape or bytes that are not UTF-8 throw a BadInput
 * error, which the server answers with 400 InvalidArgument instead of guessing.
 */
const crypto = require('crypto');

class BadInput extends Error {
  constructor(message, argName, argValue) {
    super(message);
    this.argName = argName;
    this.argValue = argValue;
  }
}

// ---- request ids: 24 upper-case hex chars, unique per process (time + counter + random) ----
let ridCounter = 0;
const ridSalt = crypto.randomBytes(2).toString('hex').toUpperCase();
function newRequestId() {
  ridCounter = (ridCounter + 1) >>> 0;
  const t = Math.floor(Date.now() / 1000).toString(16).toUpperCase().padStart(8, '0').slice(-8);
  const c = ridCounter.toString(16).toUpperCase().padStart(8, '0');
  const r = crypto.randomBytes(2).toString('hex').toUpperCase();
  return t + c + ridSalt + r;
}

// ---- clock ----
const clock = {
  skewMs: 0,
  now() {
    return Date.now() + this.skewMs;
  },
};

/** RFC 1123 date ("Tue, 17 Nov 2015 17:27:45 GMT") of epoch milliseconds. */
function httpDate(ms) {
  return new Date(ms).toUTCString();
}

/** ISO 8601 with milliseconds forced to .000Z (OSS's LastModified format). */
function isoSeconds(ms) {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

/** Parses "yyyymmddTHHMMSSZ"; returns epoch ms or NaN. */
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

/** Parses an HTTP date (RFC 1123 and friends, what Date.parse accepts) or ISO 8601 basic. */
function parseAnyDate(s) {
  if (typeof s !== 'string' || s.length === 0 || s.length > 100) return NaN;
  const amz = parseAmzDate(s);
  if (!Number.isNaN(amz)) return amz;
  return Date.parse(s);
}

// ---- strict percent decoding ----
const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function hexVal(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Percent-decodes S (a raw URL component) into a UTF-8 string. PLUS_IS_SPACE: treat '+' as a
 * space (query strings). Throws BadInput on a malformed escape or invalid UTF-8.
 */
function percentDecode(s, plusIsSpace, what) {
  if (s.indexOf('%') < 0 && !(plusIsSpace && s.indexOf('+') >= 0)) {
    // Node already gave us a JS string of the raw bytes read as latin1 for anything non-ASCII;
    // a raw URL must be ASCII, so reject anything else.
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7e || s.charCodeAt(i) < 0x20) {
        return decodeRawBytes(s, plusIsSpace, what);
      }
    }
    return s;
  }
  return decodeRawBytes(s, plusIsSpace, what);
}

function decodeRawBytes(s, plusIsSpace, what) {
  const out = Buffer.allocUnsafe(s.length * 3);
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */) {
      const h = i + 2 < s.length ? hexVal(s.charCodeAt(i + 1)) : -1;
      const l = i + 2 < s.length ? hexVal(s.charCodeAt(i + 2)) : -1;
      if (h < 0 || l < 0) throw new BadInput(`malformed percent-encoding in ${what}`, what, s);
      out[n++] = (h << 4) | l;
      i += 2;
    } else if (c === 43 /* + */ && plusIsSpace) {
      out[n++] = 32;
    } else if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x100) {
      // Node hands raw non-ASCII request-line bytes over as latin1 characters.
      out[n++] = c;
    } else {
      n += out.write(s[i], n, 'utf8');
    }
  }
  try {
    return utf8Fatal.decode(out.subarray(0, n));
  } catch (e) {
    throw new BadInput(`${what} is not valid UTF-8`, what, s);
  }
}

/**
 * Parses a raw query string into an ordered list of [name, value, hadEquals] entries with
 * decoded names and values ('+' means space, as in every HTML-form-style decoder). Bounded.
 */
function parseQuery(raw) {
  const out = [];
  if (!raw) return out;
  const parts = raw.split('&');
  if (parts.length > 200) throw new BadInput('too many query parameters', 'query', '');
  for (const p of parts) {
    if (p === '') continue;
    const eq = p.indexOf('=');
    const k = percentDecode(eq < 0 ? p : p.slice(0, eq), true, 'query parameter name');
    const v = eq < 0 ? '' : percentDecode(p.slice(eq + 1), true, `query parameter ${k}`);
    out.push([k, v, eq >= 0]);
  }
  return out;
}

/**
 * Percent-encoding for encoding-type=url answers: every byte outside A-Z a-z 0-9 - _ . ~ and '/'
 * becomes %XX (upper case). Space is %20 and '+' is %2B, so decoders that treat '+' as a space
 * and decoders that do not agree on the result.
 */
function urlEncodeKey(s) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%2F/g, '/');
}

/** AWS URI encoding of one path (every byte but unreserved encoded, '/' kept). */
function awsEncodePath(s) {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase())
    .replace(/%2F/g, '/');
}

/** Compares two strings in UTF-8 byte order. */
function compareUtf8(a, b) {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

module.exports = {
  BadInput,
  newRequestId,
  clock,
  httpDate,
  isoSeconds,
  parseAmzDate,
  parseAnyDate,
  percentDecode,
  parseQuery,
  urlEncodeKey,
  awsEncodePath,
  compareUtf8,
};
