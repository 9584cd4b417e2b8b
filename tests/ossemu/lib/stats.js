'use strict';
/*
 * Request and byte counters of the S3/OSS port, served as JSON by the admin API (GET /stats):
 *   {"total":{"requests":N,"bytes":N},
 *    "by_key":{"<key>":{"requests":N,"get":N,"head":N,"not_modified":N,"bytes":N}},
 *    "list_requests":N,"stat_requests":N,"auth_failures":N,"by_status":{"200":N,...},
 *    "inflight":N,"max_inflight":N}
 * bytes are response-body bytes actually handed to the socket (headers excluded); a truncated or
 * aborted body counts only what was written. not_modified counts the GETs answered 304 (a
 * conditional GET that found the ETag it named: a revalidation, not a read of the object).
 * inflight counts the requests being answered now, max_inflight the most at once since the last
 * reset: the witness that a client really has several requests in flight. Admin calls are never
 * counted.
 */

class Stats {
  constructor() {
    this.reset();
  }

  reset() {
    this.total = { requests: 0, bytes: 0 };
    this.byKey = new Map();
    this.listRequests = 0;
    this.statRequests = 0;
    this.authFailures = 0;
    this.byStatus = new Map();
    this.maxInflight = this.inflight || 0;
    if (this.inflight === undefined) this.inflight = 0;
  }

  /** A request's answer began (begin) or its connection let go of it (end). */
  begin() {
    this.inflight++;
    if (this.inflight > this.maxInflight) this.maxInflight = this.inflight;
  }

  end() {
    this.inflight--;
  }

  keyEntry(key) {
    let e = this.byKey.get(key);
    if (!e) {
      e = { requests: 0, get: 0, head: 0, not_modified: 0, bytes: 0 };
      this.byKey.set(key, e);
    }
    return e;
  }

  /** A request arrived; KEY is its object key (undefined for bucket/service requests). */
  request(key, method) {
    this.total.requests++;
    if (typeof key === 'string' && key !== '') {
      const e = this.keyEntry(key);
      e.requests++;
      if (method === 'GET') e.get++;
      else if (method === 'HEAD') e.head++;
    }
  }

  bytes(key, n) {
    this.total.bytes += n;
    if (typeof key === 'string' && key !== '') this.keyEntry(key).bytes += n;
  }

  /** An answer of status CODE was sent; KEY and METHOD are its request's (undefined if unknown). */
  status(code, key, method) {
    if (code === 304 && method === 'GET' && typeof key === 'string' && key !== '') {
      this.keyEntry(key).not_modified++;
    }
    const k = String(code);
    this.byStatus.set(k, (this.byStatus.get(k) || 0) + 1);
  }

  toJSON() {
    const byKey = {};
    for (const [k, v] of this.byKey) byKey[k] = { ...v };
    const byStatus = {};
    for (const [k, v] of this.byStatus) byStatus[k] = v;
    return {
      total: { ...this.total },
      by_key: byKey,
      list_requests: this.listRequests,
      stat_requests: this.statRequests,
      auth_failures: this.authFailures,
      by_status: byStatus,
      inflight: this.inflight,
      max_inflight: this.maxInflight,
    };
  }
}

module.exports = { Stats };
