'use strict';
/*
 * The bucket: a directory tree on disk plus "virtual" objects held in memory.
 *
 * Objects. Every regular file under the root (symlinks followed) is an object whose key is its
 * path relative to the root. Keys the file system cannot hold (`a//b`, `/x`, `a/b` beside
 * `a/b/c`) can be added in memory through the admin API; a virtual object with data hides a file
 * of the same key. A data-less entry only overrides the storage class / restore state of whatever
 * object has that key. ETag of a file = MD5 of "inode:size:mtime-ns" plus "-1" (a changed file gets
 * a new ETag without hashing its content; the multipart-style suffix stops S3 clients such as
 * rclone from checking it against the content's MD5); ETag of a virtual object = MD5 of its data.
 * CRC64 is computed on demand (streamed) and cached per ETag.
 *
 * Listing. Keys are ordered by UTF-8 bytes. Each directory's entries are read once and kept
 * sorted (directories as "name/", which sorts exactly where their keys would), keyed by the
 * directory's mtime, so a depth-first walk in entry order yields keys already in global byte order
 * and can start at any marker by binary search at each level: a page costs O(page) work, not
 * O(tree), even for 100,000-entry directories. With delimiter "/" a subdirectory becomes a common
 * prefix without being walked: we only look for its first object (a directory with no object,
 * however deep, is not listed). Other delimiters group keys generically. Virtual objects are merged
 * into the stream by byte order.
 *
 * Marker semantics (v1 marker, v2 start-after / continuation token): keys strictly after the
 * marker are listed and then grouped; a common prefix equal to the marker is not repeated, which
 * makes a returned common prefix a valid resume point.
 */
const fs = require('fs');
const fsp = fs.promises;
const path = require('path');
const crypto = require('crypto');
const { crc64File, crc64 } = require('./crc64');

const STORAGE_CLASSES = ['Standard', 'IA', 'Archive', 'ColdArchive', 'DeepColdArchive'];
const MAX_DEPTH = 64; // directory nesting we follow (also stops symlink loops)
const DIR_CACHE_MAX = 20000; // directories whose sorted entries we keep
const CRC_CACHE_MAX = 200000;
const STAT_CONCURRENCY = 64;

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function md5Upper(s) {
  return crypto.createHash('md5').update(s).digest('hex').toUpperCase();
}

/** Runs FN over ITEMS with at most LIMIT promises in flight; keeps order. */
async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(limit, items.length); i++) workers.push(worker());
  await Promise.all(workers);
  return out;
}

/** Index of the first element of ITEMS (sorted by .b) whose .b is > B (or >= B if INCL). */
function lowerBound(items, b, incl) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(items[mid].b, b);
    if (c < 0 || (c === 0 && !incl)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function startsWithBuf(buf, prefix) {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

class Store {
  /**
   * @param {string} root directory served
   * @param {{log: function}} opts
   */
  constructor(root, opts = {}) {
    this.root = path.resolve(root);
    this.log = opts.log || (() => {});
    this.noCrc = !!opts.noCrc;
    this.virtual = new Map(); // key -> {key, data|null, storageClass, restore, mtimeMs, etag}
    this.virtualSorted = null; // cached sorted array of {s, b, v} for entries with data
    this.dirCache = new Map(); // dir path -> {mtimeNs, ino, dev, items}
    this.dirLoading = new Map(); // dir path -> Promise of the entry being (re)validated
    this.crcCache = new Map(); // etag -> Promise<BigInt>
    this.warnedBadNames = new Set();
  }

  // ---------------------------------------------------------------- virtual objects

  /**
   * Adds/replaces a virtual object or override. SPEC: {key, data (Buffer|undefined),
   * storageClass, restore}. Throws Error with a message on bad input.
   */
  putVirtual(spec) {
    const key = spec.key;
    if (typeof key !== 'string' || key.length === 0) throw new Error('key must be a non-empty string');
    if (Buffer.byteLength(key) > 1023) throw new Error('key longer than 1023 bytes');
    if (spec.storageClass !== undefined && !STORAGE_CLASSES.includes(spec.storageClass)) {
      throw new Error(`storage_class must be one of ${STORAGE_CLASSES.join(', ')}`);
    }
    if (spec.restore !== undefined && (typeof spec.restore !== 'string' || !/^[\t\x20-\x7e]*$/.test(spec.restore))) {
      throw new Error('restore must be a string of printable ASCII (it is sent as a header)');
    }
    const data = spec.data === undefined ? null : spec.data;
    const entry = {
      key,
      data,
      storageClass: spec.storageClass,
      restore: spec.restore,
      mtimeMs: Date.now(),
      etag: data ? md5Upper(data) : null,
      crc: data ? crc64(data) : null,
    };
    this.virtual.set(key, entry);
    this.virtualSorted = null;
    return entry;
  }

  deleteVirtual(key) {
    const had = this.virtual.delete(key);
    this.virtualSorted = null;
    return had;
  }

  virtualList() {
    return [...this.virtual.values()].map(v => ({
      key: v.key,
      size: v.data ? v.data.length : null,
      storage_class: v.storageClass || null,
      restore: v.restore || null,
    }));
  }

  sortedVirtual() {
    if (!this.virtualSorted) {
      const arr = [];
      for (const v of this.virtual.values()) {
        if (v.data) arr.push({ s: v.key, b: Buffer.from(v.key), v });
      }
      arr.sort((x, y) => Buffer.compare(x.b, y.b));
      this.virtualSorted = arr;
    }
    return this.virtualSorted;
  }

  // ---------------------------------------------------------------- key <-> path

  /** File-system path of KEY, or null when the key cannot name a file under the root. */
  keyToPath(key) {
    if (!key || key.startsWith('/') || key.endsWith('/') || key.includes('\0')) return null;
    const segs = key.split('/');
    for (const s of segs) if (s === '' || s === '.' || s === '..') return null;
    return path.join(this.root, ...segs);
  }

  /** Directory path for a key prefix ending in '/' (or ''), or null. */
  prefixToDir(prefix) {
    if (prefix === '') return this.root;
    if (!prefix.endsWith('/')) return null;
    const body = prefix.slice(0, -1);
    if (body.startsWith('/') || body.includes('\0')) return null;
    const segs = body.split('/');
    for (const s of segs) if (s === '' || s === '.' || s === '..') return null;
    return path.join(this.root, ...segs);
  }

  // ---------------------------------------------------------------- objects

  applyOverride(obj) {
    const o = this.virtual.get(obj.key);
    if (o && !o.data) {
      if (o.storageClass) obj.storageClass = o.storageClass;
      if (o.restore !== undefined) obj.restore = o.restore;
    }
    return obj;
  }

  objFromStat(key, p, st) {
    return this.applyOverride({
      key,
      path: p,
      data: null,
      size: Number(st.size),
      mtimeMs: Number(st.mtimeNs / 1000000n),
      // "-1": multipart-style, so S3 clients (rclone) do not take it for the content MD5.
      etag: `${md5Upper(`${st.ino}:${st.size}:${st.mtimeNs}`)}-1`,
      storageClass: 'Standard',
      restore: undefined,
      virtual: false,
    });
  }

  objFromVirtual(v) {
    return {
      key: v.key,
      path: null,
      data: v.data,
      size: v.data.length,
      mtimeMs: v.mtimeMs,
      etag: v.etag,
      storageClass: v.storageClass || 'Standard',
      restore: v.restore,
      virtual: true,
      crc: v.crc,
    };
  }

  /** The object named KEY, or null. */
  async getObject(key) {
    const v = this.virtual.get(key);
    if (v && v.data) return this.objFromVirtual(v);
    const p = this.keyToPath(key);
    if (!p) return null;
    let st;
    try {
      st = await fsp.stat(p, { bigint: true });
    } catch (e) {
      return null;
    }
    if (!st.isFile()) return null;
    return this.objFromStat(key, p, st);
  }

  /** CRC64 of OBJ as a decimal string (cached per ETag). */
  async crc(obj) {
    if (obj.virtual) return obj.crc.toString();
    let p = this.crcCache.get(obj.etag);
    if (!p) {
      p = crc64File(obj.path, Number(obj.size));
      this.crcCache.set(obj.etag, p);
      if (this.crcCache.size > CRC_CACHE_MAX) {
        this.crcCache.delete(this.crcCache.keys().next().value);
      }
      p.catch(() => this.crcCache.delete(obj.etag));
    }
    return (await p).toString();
  }

  // ---------------------------------------------------------------- directories

  /**
   * Sorted entries of directory DIR: {mtimeNs, dev, ino, items:[{s, b, dir}]} where s is the name
   * ("name/" for directories) and b its UTF-8 bytes; null when DIR is not a directory.
   */
  async dirItems(dir) {
    // Concurrent first reads of one directory share a single readdir.
    const pending = this.dirLoading.get(dir);
    if (pending) return pending;
    const p = this.loadDirItems(dir);
    this.dirLoading.set(dir, p);
    try {
      return await p;
    } finally {
      this.dirLoading.delete(dir);
    }
  }

  async loadDirItems(dir) {
    let st;
    try {
      st = await fsp.stat(dir, { bigint: true });
    } catch (e) {
      return null;
    }
    if (!st.isDirectory()) return null;
    const cached = this.dirCache.get(dir);
    if (cached && cached.mtimeNs === st.mtimeNs && cached.ino === st.ino) {
      // refresh LRU position
      this.dirCache.delete(dir);
      this.dirCache.set(dir, cached);
      return cached;
    }
    let ents;
    try {
      ents = await fsp.readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    } catch (e) {
      return null;
    }
    const items = [];
    const links = [];
    for (const d of ents) {
      let name;
      try {
        name = utf8Fatal.decode(d.name);
      } catch (e) {
        if (!this.warnedBadNames.has(dir)) {
          this.warnedBadNames.add(dir);
          this.log(`skipping names that are not UTF-8 in ${dir}`);
        }
        continue;
      }
      if (d.isFile()) items.push({ s: name, b: d.name, dir: false });
      else if (d.isDirectory()) items.push({ s: name + '/', b: Buffer.concat([d.name, Buffer.from('/')]), dir: true });
      else if (d.isSymbolicLink()) links.push({ name, raw: d.name });
    }
    if (links.length > 0) {
      await mapLimit(links, STAT_CONCURRENCY, async l => {
        try {
          const ls = await fsp.stat(path.join(dir, l.name));
          if (ls.isFile()) items.push({ s: l.name, b: l.raw, dir: false });
          else if (ls.isDirectory()) {
            items.push({ s: l.name + '/', b: Buffer.concat([l.raw, Buffer.from('/')]), dir: true });
          }
        } catch (e) {
          /* dangling link: not an object */
        }
      });
    }
    items.sort((x, y) => Buffer.compare(x.b, y.b));
    const entry = { mtimeNs: st.mtimeNs, ino: st.ino, dev: st.dev, items };
    this.dirCache.delete(dir);
    this.dirCache.set(dir, entry);
    while (this.dirCache.size > DIR_CACHE_MAX) {
      this.dirCache.delete(this.dirCache.keys().next().value);
    }
    return entry;
  }

  /**
   * Walks the files under DIR depth-first in byte order, yielding {key, path} with
   * key = KEYPREFIX + relative path. Only keys > MARKER (when MARKER is a string) are produced.
   * TOPFILTER (optional string): at the top level only entries whose name starts with it.
   */
  async *walk(dir, keyPrefix, marker, topFilter, depth = 0, stack = null) {
    if (depth > MAX_DEPTH) return;
    const d = await this.dirItems(dir);
    if (!d) return;
    const id = `${d.dev}:${d.ino}`;
    stack = stack || new Set();
    if (stack.has(id)) return; // symlink loop
    stack.add(id);
    try {
      const items = d.items;
      let i = 0;
      let relMarker = null; // marker relative to this directory, when it falls inside it
      if (typeof marker === 'string' && marker !== '') {
        if (marker.startsWith(keyPrefix)) {
          relMarker = Buffer.from(marker.slice(keyPrefix.length));
          i = lowerBound(items, relMarker, false);
          // The marker may point inside the subdirectory just before i.
          if (i > 0 && items[i - 1].dir && startsWithBuf(relMarker, items[i - 1].b)) i--;
        } else if (Buffer.compare(Buffer.from(marker), Buffer.from(keyPrefix)) > 0) {
          return; // every key here sorts before the marker
        }
      }
      let filterB = null;
      if (topFilter) {
        filterB = Buffer.from(topFilter);
        i = Math.max(i, lowerBound(items, filterB, true));
      }
      for (; i < items.length; i++) {
        const it = items[i];
        if (filterB && !startsWithBuf(it.b, filterB)) break;
        const full = keyPrefix + it.s;
        if (it.dir) {
          const sub = path.join(dir, it.s.slice(0, -1));
          const subMarker = relMarker && startsWithBuf(relMarker, it.b) ? marker : null;
          yield* this.walk(sub, full, subMarker, null, depth + 1, stack);
        } else {
          if (relMarker && Buffer.compare(it.b, relMarker) <= 0) continue;
          yield { key: full, path: path.join(dir, it.s) };
        }
      }
    } finally {
      stack.delete(id);
    }
  }

  /** True when directory DIR (key prefix P) holds at least one object with key > MARKER. */
  async hasObjectAfter(dir, p, marker) {
    const it = this.walk(dir, p, marker, null);
    try {
      const r = await it.next();
      return !r.done;
    } finally {
      await it.return();
    }
  }

  // ---------------------------------------------------------------- listing

  /** File-system listing items in byte order: {s, kind: 'key'|'prefix', path?}. */
  async *fsItems(prefix, delimiter, marker) {
    const slash = prefix.lastIndexOf('/');
    const basePrefix = prefix.slice(0, slash + 1);
    const namePrefix = prefix.slice(slash + 1);
    const baseDir = this.prefixToDir(basePrefix);
    if (!baseDir) return;

    if (delimiter === '/') {
      // One directory: files are keys, subdirectories are common prefixes.
      const d = await this.dirItems(baseDir);
      if (!d) return;
      const items = d.items;
      let i = 0;
      let relMarker = null;
      if (typeof marker === 'string' && marker !== '') {
        if (marker.startsWith(basePrefix)) {
          relMarker = Buffer.from(marker.slice(basePrefix.length));
          i = lowerBound(items, relMarker, false);
          if (i > 0 && items[i - 1].dir && startsWithBuf(relMarker, items[i - 1].b)) i--;
        } else if (Buffer.compare(Buffer.from(marker), Buffer.from(basePrefix)) > 0) {
          return;
        }
      }
      const filterB = Buffer.from(namePrefix);
      if (namePrefix) i = Math.max(i, lowerBound(items, filterB, true));
      for (; i < items.length; i++) {
        const it = items[i];
        if (namePrefix && !startsWithBuf(it.b, filterB)) break;
        const full = basePrefix + it.s;
        if (!it.dir) {
          if (relMarker && Buffer.compare(it.b, relMarker) <= 0) continue;
          yield { s: full, kind: 'key', path: path.join(baseDir, it.s) };
          continue;
        }
        if (full === marker) continue;
        const sub = path.join(baseDir, it.s.slice(0, -1));
        const inside = relMarker && startsWithBuf(relMarker, it.b);
        if (await this.hasObjectAfter(sub, full, inside ? marker : null)) {
          yield { s: full, kind: 'prefix' };
        }
      }
      return;
    }

    // Any other delimiter (or none): walk and group.
    let lastCp = null;
    const m = typeof marker === 'string' && marker !== '' ? marker : null;
    for await (const f of this.walk(baseDir, basePrefix, m, namePrefix || null)) {
      if (delimiter) {
        const rest = f.key.slice(prefix.length);
        const idx = rest.indexOf(delimiter);
        if (idx >= 0) {
          const cp = prefix + rest.slice(0, idx + delimiter.length);
          if (cp === lastCp) continue;
          lastCp = cp;
          if (cp === marker) continue;
          yield { s: cp, kind: 'prefix' };
          continue;
        }
      }
      yield { s: f.key, kind: 'key', path: f.path };
    }
  }

  /** Virtual objects as listing items (same rules as fsItems). */
  *virtualItems(prefix, delimiter, marker) {
    const arr = this.sortedVirtual();
    let i = 0;
    if (typeof marker === 'string' && marker !== '') i = lowerBound(arr, Buffer.from(marker), false);
    const pb = Buffer.from(prefix);
    let lastCp = null;
    for (; i < arr.length; i++) {
      const e = arr[i];
      if (!startsWithBuf(e.b, pb)) {
        if (Buffer.compare(e.b, pb) > 0) break;
        continue;
      }
      if (delimiter) {
        const rest = e.s.slice(prefix.length);
        const idx = rest.indexOf(delimiter);
        if (idx >= 0) {
          const cp = prefix + rest.slice(0, idx + delimiter.length);
          if (cp === lastCp) continue;
          lastCp = cp;
          if (cp === marker) continue;
          yield { s: cp, kind: 'prefix' };
          continue;
        }
      }
      yield { s: e.s, kind: 'key', v: e.v };
    }
  }

  /**
   * One page of a listing. Returns {entries: [{kind:'key', obj} | {kind:'prefix', prefix}],
   * truncated, last} where last is the string of the last entry (the resume point).
   */
  async list({ prefix = '', delimiter = '', marker = '', maxKeys = 1000 }) {
    const fsIt = this.fsItems(prefix, delimiter, marker);
    const vIt = this.virtualItems(prefix, delimiter, marker);
    const picked = [];
    let truncated = false;
    let a = await fsIt.next();
    let b = vIt.next();
    let aB = a.done ? null : Buffer.from(a.value.s);
    let bB = b.done ? null : Buffer.from(b.value.s);
    try {
      // Bounded by maxKeys + 1 picks; each iteration consumes at least one item.
      while (!a.done || !b.done) {
        let take;
        if (a.done) take = 'b';
        else if (b.done) take = 'a';
        else {
          const c = Buffer.compare(aB, bB);
          if (c < 0) take = 'a';
          else if (c > 0) take = 'b';
          else take = a.value.kind === b.value.kind ? 'both' : 'a';
        }
        let item;
        if (take === 'a') item = a.value;
        else item = b.value; // 'b' or 'both': a virtual object hides a file of the same key
        if (picked.length >= maxKeys) {
          truncated = true;
          break;
        }
        picked.push(item);
        if (take === 'a' || take === 'both') {
          a = await fsIt.next();
          aB = a.done ? null : Buffer.from(a.value.s);
        }
        if (take === 'b' || take === 'both') {
          b = vIt.next();
          bB = b.done ? null : Buffer.from(b.value.s);
        }
      }
    } finally {
      await fsIt.return();
    }

    const entries = await mapLimit(picked, STAT_CONCURRENCY, async item => {
      if (item.kind === 'prefix') return { kind: 'prefix', prefix: item.s };
      if (item.v) return { kind: 'key', obj: this.objFromVirtual(item.v) };
      try {
        const st = await fsp.stat(item.path, { bigint: true });
        if (!st.isFile()) return null;
        return { kind: 'key', obj: this.objFromStat(item.s, item.path, st) };
      } catch (e) {
        return null; // vanished between readdir and stat
      }
    });
    return {
      entries: entries.filter(Boolean),
      truncated,
      last: picked.length ? picked[picked.length - 1].s : null,
    };
  }

  /** Totals for GetBucketStat: {count, bytes, byClass: {cls: {count, bytes}}, lastModifiedMs}. */
  async stat() {
    const byClass = {};
    for (const c of STORAGE_CLASSES) byClass[c] = { count: 0, bytes: 0 };
    let count = 0;
    let bytes = 0;
    let lastModifiedMs = 0;
    const add = obj => {
      count++;
      bytes += obj.size;
      byClass[obj.storageClass].count++;
      byClass[obj.storageClass].bytes += obj.size;
      if (obj.mtimeMs > lastModifiedMs) lastModifiedMs = obj.mtimeMs;
    };
    let batch = [];
    const flush = async () => {
      const objs = await mapLimit(batch, STAT_CONCURRENCY, async f => {
        if (this.virtual.has(f.key) && this.virtual.get(f.key).data) return null; // hidden
        try {
          const st = await fsp.stat(f.path, { bigint: true });
          return st.isFile() ? this.objFromStat(f.key, f.path, st) : null;
        } catch (e) {
          return null;
        }
      });
      for (const o of objs) if (o) add(o);
      batch = [];
    };
    for await (const f of this.walk(this.root, '', null, null)) {
      batch.push(f);
      if (batch.length >= 1024) await flush();
    }
    await flush();
    for (const v of this.virtual.values()) if (v.data) add(this.objFromVirtual(v));
    return { count, bytes, byClass, lastModifiedMs };
  }
}

module.exports = { Store, STORAGE_CLASSES };
