'use strict';
/*
 * Fault injection for the S3/OSS port (never the admin port).
 *
 * The fault set is replaced as a whole by POST /faults (validated strictly: an unknown field or an
 * out-of-range value is an error, so a typo cannot silently disable a test's fault). For each
 * request, decide() returns what to do to it:
 *   - requests whose key (or, for listings, whose prefix parameter) does not start with `match`
 *     are left alone entirely;
 *   - otherwise the first entry of the deterministic `next` queue is consumed and applied;
 *   - with the queue empty, the random rates are drawn (error, reset, stall, truncate, corrupt;
 *     first hit wins);
 *   - `latency_ms`, `bw_per_conn` and `bw_bucket` apply to every matching request in addition.
 * `down` is not per request: the server destroys every socket while it is set.
 */

const KINDS = ['reset', 'error', 'truncate', 'stall', 'corrupt', 'latency'];
const FIELDS = ['latency_ms', 'bw_per_conn', 'bw_bucket', 'error_rate', 'reset_rate', 'truncate_rate',
  'corrupt_rate', 'stall_rate', 'down', 'next', 'match'];
const MAX_NEXT = 100000;

function isNum(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

function checkRate(name, v) {
  if (!isNum(v) || v < 0 || v > 1) throw new Error(`${name} must be a number in 0..1`);
}

function checkNonNeg(name, v, max) {
  if (!isNum(v) || v < 0 || v > max) throw new Error(`${name} must be a number in 0..${max}`);
}

/** Validates and normalises a fault-set object; throws Error with a message on bad input. */
function normalize(spec) {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new Error('the fault set must be a JSON object');
  }
  for (const k of Object.keys(spec)) {
    if (!FIELDS.includes(k)) throw new Error(`unknown fault field "${k}" (known: ${FIELDS.join(', ')})`);
  }
  const out = {};
  if (spec.latency_ms !== undefined) {
    checkNonNeg('latency_ms', spec.latency_ms, 3600000);
    out.latency_ms = spec.latency_ms;
  }
  if (spec.bw_per_conn !== undefined) {
    checkNonNeg('bw_per_conn', spec.bw_per_conn, 1e12);
    out.bw_per_conn = spec.bw_per_conn;
  }
  if (spec.bw_bucket !== undefined) {
    checkNonNeg('bw_bucket', spec.bw_bucket, 1e12);
    out.bw_bucket = spec.bw_bucket;
  }
  if (spec.error_rate !== undefined) {
    const er = spec.error_rate;
    if (er === null || typeof er !== 'object' || Array.isArray(er)) {
      throw new Error('error_rate must be an object {"<status>": rate}');
    }
    out.error_rate = {};
    let sum = 0;
    for (const [st, rate] of Object.entries(er)) {
      const n = Number(st);
      if (!/^\d{3}$/.test(st) || n < 400 || n > 599) throw new Error(`error_rate status "${st}" must be 400..599`);
      checkRate(`error_rate["${st}"]`, rate);
      sum += rate;
      out.error_rate[st] = rate;
    }
    if (sum > 1 + 1e-9) throw new Error('error_rate rates add up to more than 1');
  }
  for (const k of ['reset_rate', 'truncate_rate', 'corrupt_rate', 'stall_rate']) {
    if (spec[k] !== undefined) {
      checkRate(k, spec[k]);
      out[k] = spec[k];
    }
  }
  if (spec.down !== undefined) {
    if (typeof spec.down !== 'boolean') throw new Error('down must be true or false');
    out.down = spec.down;
  }
  if (spec.match !== undefined) {
    if (typeof spec.match !== 'string') throw new Error('match must be a string');
    out.match = spec.match;
  }
  if (spec.next !== undefined) {
    if (!Array.isArray(spec.next)) throw new Error('next must be an array');
    if (spec.next.length > MAX_NEXT) throw new Error(`next holds at most ${MAX_NEXT} entries`);
    out.next = spec.next.map((e, i) => {
      if (e === null || typeof e !== 'object' || !KINDS.includes(e.kind)) {
        throw new Error(`next[${i}].kind must be one of ${KINDS.join(', ')}`);
      }
      const n = { kind: e.kind };
      for (const k of Object.keys(e)) {
        const ok = k === 'kind' || (e.kind === 'error' && k === 'status') ||
          (e.kind === 'truncate' && k === 'after') || (e.kind === 'latency' && k === 'ms') ||
          (e.kind === 'corrupt' && k === 'at');
        if (!ok) throw new Error(`next[${i}]: unexpected field "${k}" for kind ${e.kind}`);
      }
      if (e.kind === 'error') {
        const st = e.status === undefined ? 503 : e.status;
        if (!Number.isInteger(st) || st < 400 || st > 599) throw new Error(`next[${i}].status must be 400..599`);
        n.status = st;
      }
      if (e.kind === 'truncate' && e.after !== undefined) {
        checkNonNeg(`next[${i}].after`, e.after, Number.MAX_SAFE_INTEGER);
        n.after = Math.floor(e.after);
      }
      if (e.kind === 'corrupt' && e.at !== undefined) {
        checkNonNeg(`next[${i}].at`, e.at, Number.MAX_SAFE_INTEGER);
        n.at = Math.floor(e.at);
      }
      if (e.kind === 'latency') {
        checkNonNeg(`next[${i}].ms`, e.ms === undefined ? 0 : e.ms, 3600000);
        n.ms = e.ms === undefined ? 0 : e.ms;
      }
      return n;
    });
  }
  return out;
}

class Faults {
  constructor(random = Math.random) {
    this.spec = {};
    this.random = random;
  }

  /** Replaces the fault set (validated); returns the normalised set. */
  set(spec) {
    this.spec = normalize(spec);
    return this.spec;
  }

  get down() {
    return !!this.spec.down;
  }

  toJSON() {
    return this.spec;
  }

  /**
   * The treatment of a request whose key (or listing prefix) is KEY (undefined when it has none).
   * Returns {matched, latencyMs, bw, bwBucket, action: null | {kind, status?, after?, at?}}.
   */
  decide(key) {
    const s = this.spec;
    const res = { matched: false, latencyMs: 0, bw: 0, bwBucket: 0, action: null };
    if (s.match !== undefined && (typeof key !== 'string' || !key.startsWith(s.match))) return res;
    res.matched = true;
    res.latencyMs = s.latency_ms || 0;
    res.bw = s.bw_per_conn || 0;
    res.bwBucket = s.bw_bucket || 0;
    if (s.next && s.next.length > 0) {
      const e = s.next.shift();
      if (e.kind === 'latency') res.latencyMs += e.ms;
      else res.action = e;
      return res;
    }
    if (s.error_rate) {
      const r = this.random();
      let cum = 0;
      for (const [st, rate] of Object.entries(s.error_rate)) {
        cum += rate;
        if (r < cum) {
          res.action = { kind: 'error', status: Number(st) };
          return res;
        }
      }
    }
    for (const [field, kind] of [['reset_rate', 'reset'], ['stall_rate', 'stall'],
      ['truncate_rate', 'truncate'], ['corrupt_rate', 'corrupt']]) {
      if (s[field] && this.random() < s[field]) {
        res.action = { kind };
        return res;
      }
    }
    return res;
  }
}

module.exports = { Faults, normalize };
