/* cache/writer.c - the index's side of the disk tier: the disk writers (the queue of blocks to
 * write and the workers that append them to a directory's region log: disk.c, the item format
 * item.c's), and the start-up scan that makes the index name what the disk holds (scan_one).
 *
 * A fill (cache.c, prefetch.c) queues the pages it fetched, and a memory victim whose pages are
 * not on disk yet is demoted through the same queue (mem_evict); the reader never waits for a
 * write. A block in a memory slot is written from the slot itself, the entry pinned until then
 * (no copy); only a block without one (a scratch buffer's) and a demotion are copied, into a
 * block-sized buffer kept for reuse (wbuf_get, wbuf_put). The queue holds at most wq_max bytes
 * of pages; past that a write is dropped (disk_writes_dropped), never waited for:
 *
 *     queue_write -> wq_head ... wq_tail (job_lock; wq_bytes <= wq_max)
 *                      -> writer_main x DISK_WRITERS -> do_write -> disk_write_block
 *
 *     disk_write_block (one block, synchronous; cache_fill calls it too):
 *       shard lock: wait out another write of the block (F_DWRITING), set it; the pages new
 *                   to disk, and those only the old item has (its region held)
 *       no lock:    read the old item's other pages back (verified) into a copy; CRCs;
 *                   cdisk_append to the block's directory (a new block: pick_dir, the first of
 *                   its turn that is up) as one new item; the old one is dead space
 *       shard lock: the entry names the new item (counted in its directory), F_DWRITING off
 *       no lock:    cdisk_append_done (the region may be sealed now)
 *
 * At start-up cache_new has disk.c scan each directory (cdisk_scan, regions oldest first) and
 * scan_one names each item found: a later item of a block replaces an earlier one of the same
 * directory, and a whole item becomes a compact record (entry_maybe_free).
 *
 * Locks: shard lock, then job_lock; wbuf_lock is a leaf (job_free runs under job_lock). No lock
 * is held across I/O, and cdisk_append is called with no shard lock held (the region log's
 * eviction calls disk_forget, which takes shard locks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/arena.h"
#include "cache/index_i.h"

/* ---- background jobs ---- */

/* A block-sized buffer for a disk write's copy. Reused rather than malloc'd each time: glibc
 * maps a block-sized allocation afresh, and faulting in and zeroing its pages cost more CPU than
 * the copy itself (a cold 1 GiB stream into memory + disk: a quarter of the daemon's time). */
void *wbuf_get(struct cache *c)
{
    pthread_mutex_lock(&c->wbuf_lock);
    void *p = c->wbuf_free;
    if (p) {
        memcpy(&c->wbuf_free, p, sizeof(void *));
        c->wbuf_nfree--;
    }
    pthread_mutex_unlock(&c->wbuf_lock);
    return p ? p : malloc(c->bs);
}

void wbuf_put(struct cache *c, void *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&c->wbuf_lock);
    if (c->wbuf_nfree < c->wbuf_keep) {
        memcpy(p, &c->wbuf_free, sizeof(void *));
        c->wbuf_free = p;
        c->wbuf_nfree++;
        p = NULL;
    }
    pthread_mutex_unlock(&c->wbuf_lock);
    free(p);
}

void job_free(struct cache *c, struct job *j)
{
    if (!j)
        return;
    wbuf_put(c, j->data);
    free(j->crc);
    free(j->key);
    free(j->etag);
    free(j);
}

/* Queues PAGES of BUF for the disk tier; drops them when the queue is full. ENTRY NIL: BUF is
 * copied, and any locks may be held (job_lock is a leaf). Else BUF is ENTRY's memory slot, which
 * the caller has pinned and whose shard lock it does not hold: the job pins the entry in turn
 * (a pinned slot is neither evicted nor reused, and its valid pages never change) and the writer
 * writes from the slot, so a fetched block is never copied for the disk. */
void queue_write(struct cache *c, const uint64_t id[2], uint32_t blen, const uint64_t *pages,
                 const uint8_t *buf, uint32_t entry, uint64_t *crc)
{
    if (c->ndirs == 0 || !bm_any(pages, c->w)) {
        free(crc);
        return;
    }
    uint64_t bytes = bm_count(pages, c->w) * c->ps;
    pthread_mutex_lock(&c->job_lock);
    int full = c->wq_bytes + bytes > c->wq_max;
    if (!full)
        c->wq_bytes += bytes;
    pthread_mutex_unlock(&c->job_lock);
    if (full) {
        free(crc);
        STAT(c, disk_writes_dropped, 1);
        return;
    }
    struct job *j = calloc(1, sizeof(*j) + 8ull * c->w);
    uint8_t *data = j && entry == NIL ? wbuf_get(c) : NULL;
    if (!j || (entry == NIL && !data)) {
        free(j);
        free(crc);
        pthread_mutex_lock(&c->job_lock);
        c->wq_bytes -= bytes;
        pthread_mutex_unlock(&c->job_lock);
        STAT(c, disk_writes_dropped, 1);
        return;
    }
    j->kind = JOB_WRITE;
    j->id[0] = id[0];
    j->id[1] = id[1];
    j->blen = blen;
    j->data = data;
    j->entry = entry;
    j->crc = crc;
    memcpy(j->pages, pages, 8ull * c->w);
    if (entry != NIL) {
        struct shard *sh = shard_of(c, id);
        pthread_mutex_lock(&sh->lock);
        E(c, entry)->pins++;
        pthread_mutex_unlock(&sh->lock);
    } else {
        copy_pages(c, blen, pages, data, buf);
    }
    job_push(c, &c->wq_head, &c->wq_tail, &c->wq_cond, j);
}

/* ---- the disk writer ---- */

static int pick_dir(struct cache *c, const uint64_t id[2])
{
    uint64_t now = now_ns();
    for (int k = 0; k < c->ndirs; k++) {
        int d = (int)((id[0] + (uint64_t)k) % (uint64_t)c->ndirs);
        if (__atomic_load_n(&c->dirs[d].down_until, __ATOMIC_RELAXED) <= now)
            return d;
    }
    return -1;
}

/* Writes the pages in PAGES of block ID (BLEN long) from DATA (a block buffer) to the disk tier,
 * synchronously: as a new item (disk.c) holding them and the pages the block's item already has
 * (read back and checked), whose old item becomes dead space in its region. Pages already on
 * disk are skipped. HOT (a warm-up's) is not used: the region log keeps what is read again. Returns
 * 0 when the pages are on disk, 1 when there was no place for them, -errno when the write failed.
 * No lock held. */
int disk_write_block(struct cache *c, const uint64_t id[2], uint32_t blen, const uint8_t *data,
                     const uint64_t *pages, const uint64_t *pcrc, int hot)
{
    (void)hot;
    uint32_t w = c->w;
    uint64_t newp[MAXW], dv[MAXW], oldonly[MAXW], all[MAXW], bad[MAXW];
    struct shard *sh = shard_of(c, id);
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, id);
    if (i == NIL)
        i = entry_new(c, sh, id, blen);
    if (i == NIL) {
        pthread_mutex_unlock(&sh->lock);
        STAT(c, disk_writes_dropped, 1);
        return 1;
    }
    struct centry *e = E(c, i);
    e->pins++;
    while (e->flags & F_DWRITING)
        pthread_cond_wait(&sh->cond, &sh->lock);
    e->pins--;
    ent_get(c, e, DV, dv);
    int more = 0;
    for (uint32_t k = 0; k < w; k++) {
        newp[k] = pages[k] & ~dv[k];
        oldonly[k] = dv[k] & ~pages[k];
        more |= oldonly[k] != 0;
    }
    if (!bm_any(newp, w)) {
        entry_maybe_free(c, sh, i);
        pthread_mutex_unlock(&sh->lock);
        return 0;
    }
    e->flags |= F_DWRITING;
    struct dloc old = {e->dreg, e->doff, e->ddir, {0}};
    memcpy(old.valid, dv, sizeof(dv));
    more = more && old.reg != NIL;
    if (more)
        cdisk_hold(c->dirs[old.dir].d, old.reg);
    pthread_mutex_unlock(&sh->lock);

    /* The block's directory, or (a new block) the first of its turn that is up. */
    int ddir = old.reg != NIL ? old.dir : pick_dir(c, id), rc = 0;
    struct cdir *dir = ddir >= 0 ? &c->dirs[ddir] : NULL;
    const uint8_t *src = data;
    uint8_t *tmp = NULL;
    uint64_t *crc = NULL;
    memcpy(all, pages, 8ull * w);
    if (!dir || !dir_up(dir)) {
        rc = 1; /* nowhere to put it, or its directory rests: not now, not an error */
    } else if (more) {
        /* Pages on disk that PAGES lacks: read back into a copy, to go into the new item. */
        tmp = malloc(c->bs);
        if (!tmp) {
            rc = -ENOMEM;
        } else {
            memset(bad, 0, sizeof(bad));
            copy_pages(c, blen, pages, tmp, data);
            int r =
                cdisk_read_pages(dir->d, old.reg, old.off, id, blen, old.valid, oldonly, tmp, bad);
            if (r < 0)
                dir_failed(c, dir, "read", r);
            for (uint32_t k = 0; k < w; k++)
                all[k] |= r < 0 ? 0 : oldonly[k] & ~bad[k];
            src = tmp;
        }
    }
    if (more)
        cdisk_unhold(c->dirs[old.dir].d, old.reg);
    uint32_t reg = NIL, off = 0, ilen = 0;
    if (rc == 0 && (crc = malloc(8ull * c->np)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        for (uint32_t p = 0; p < c->np; p++) {
            if (!bm_test(all, p))
                continue;
            uint64_t o = (uint64_t)p * c->ps;
            if (pcrc && bm_test(pages, p)) /* computed as the page was fetched */
                crc[p] = pcrc[p];
            else
                crc[p] = cslot_page_crc(id, p, src + o, blen - o < c->ps ? blen - o : c->ps);
        }
        struct citem_hdr h = {.id = {id[0], id[1]}, .blen = blen, .valid = all, .crc = crc};
        /* A memory slot of a memfd-backed arena: the disk write reads it through the fd. */
        int fd = -1;
        uint64_t foff = 0;
        if (c->ar && arena_fd(c->ar) >= 0 && src >= c->arena && src < c->arena + c->arena_len) {
            fd = arena_fd(c->ar);
            foff = (uint64_t)(src - c->arena);
        }
        rc = cdisk_append_fd(dir->d, &h, src, fd, foff, &dir->own, &reg, &off);
        if (rc < 0) {
            dir_failed(c, dir, "write", rc);
        } else if (rc == 0) {
            dir_worked(dir);
            ilen = h.item_len;
        }
    }
    if (rc == -ENOMEM)
        STAT(c, disk_writes_dropped, 1);

    pthread_mutex_lock(&sh->lock);
    if (rc == 0) {
        disk_drop_locked(c, e); /* the old item, if the index still names it: dead space now */
        e->dreg = reg;
        e->doff = off;
        e->ddir = (uint8_t)ddir;
        ent_put(c, e, DV, all);
        disk_count_locked(c, e, 1);
    }
    e->flags &= (uint8_t)~F_DWRITING;
    pthread_cond_broadcast(&sh->cond);
    entry_maybe_free(c, sh, i);
    pthread_mutex_unlock(&sh->lock);
    if (rc == 0) {
        cdisk_append_done(dir->d, reg); /* after the index names it: see cdisk_append */
        STAT(c, disk_writes, 1);        /* counted once the index names it (tests wait on it) */
        STAT(c, disk_write_bytes, ilen);
    }
    free(tmp);
    free(crc);
    return rc;
}

/* Unpins the entry of a write job that wrote from its memory slot. No lock held. */
void job_unpin(struct cache *c, struct job *j)
{
    struct shard *sh = shard_of(c, j->id);
    pthread_mutex_lock(&sh->lock);
    E(c, j->entry)->pins--;
    entry_maybe_free(c, sh, j->entry);
    pthread_mutex_unlock(&sh->lock);
}

void do_write(struct cache *c, struct job *j)
{
    if (j->data) {
        (void)disk_write_block(c, j->id, j->blen, j->data, j->pages, j->crc, 0);
        return;
    }
    /* The pinned entry keeps its memory slot: read it once, write from it. */
    struct shard *sh = shard_of(c, j->id);
    pthread_mutex_lock(&sh->lock);
    const uint8_t *src = MEM_AT(c, E(c, j->entry)->mslot);
    pthread_mutex_unlock(&sh->lock);
    (void)disk_write_block(c, j->id, j->blen, src, j->pages, j->crc, 0);
    job_unpin(c, j);
}

void *writer_main(void *arg)
{
    struct cache *c = arg;
    pthread_mutex_lock(&c->job_lock);
    for (;;) {
        struct job *j = c->wq_head;
        if (!j) {
            if (c->writers_stop)
                break;
            pthread_cond_wait(&c->wq_cond, &c->job_lock);
            continue;
        }
        c->wq_head = j->next;
        if (!c->wq_head)
            c->wq_tail = NULL;
        pthread_mutex_unlock(&c->job_lock);
        do_write(c, j);
        pthread_mutex_lock(&c->job_lock);
        c->wq_bytes -= bm_count(j->pages, c->w) * c->ps;
        job_free(c, j);
    }
    pthread_mutex_unlock(&c->job_lock);
    return NULL;
}

/* ---- start-up scan ---- */

/* An item found on disk at start-up (regions oldest first, so a later item of a block replaces
 * an earlier one of the same directory; a copy in another directory is left alone: the first
 * found serves). */
int scan_one(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    struct cdir *dir = arg;
    struct cache *c = dir->c;
    struct shard *sh = shard_of(c, h->id);
    pthread_mutex_lock(&sh->lock);
    uint32_t i = lookup(c, sh, h->id);
    if (i != NIL) {
        struct centry *e = E(c, i);
        if (e->dreg == NIL || &c->dirs[e->ddir] != dir || e->blen != h->blen) {
            pthread_mutex_unlock(&sh->lock);
            return 0;
        }
        disk_drop_locked(c, e);
        c->scan_blocks--;
    } else if ((i = entry_new(c, sh, h->id, h->blen)) == NIL) {
        pthread_mutex_unlock(&sh->lock);
        return 0;
    }
    struct centry *e = E(c, i);
    e->dreg = region;
    e->doff = off;
    e->ddir = (uint8_t)(dir - c->dirs);
    ent_put(c, e, DV, h->valid);
    disk_count_locked(c, e, 1);
    c->scan_blocks++;
    entry_maybe_free(c, sh, i); /* a whole item: a compact record */
    pthread_mutex_unlock(&sh->lock);
    return 0;
}
