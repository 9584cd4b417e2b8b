/* cache/disk.c - the disk tier's file: a log of regions in one file per cache directory, each
 * block stored as an item (item.c) of its own size, so that the disk holds as many blocks as
 * their bytes allow (a 10 GiB directory: 630,000 objects of 16 KiB, where block-sized slots of
 * 1 MiB held 10,240).
 *
 * Design (after CacheLib's Navy BlockCache): the file is cut into regions of about 16 MiB (a
 * sixteenth of the file when that is smaller, and at least two of the largest items). Items are
 * appended to the one open region; a block that gains pages is written again as a new item and
 * its old one becomes dead space. A full region is sealed: once the appends into it are done,
 * its summary (every item's place, identity, length and valid bitmap) is written at its end, so
 * that the start-up scan reads one summary per region rather than every item header. When no
 * region is free, the oldest sealed one is reused whole (FIFO): the index forgets its items
 * (through the owner's evict callback), its readers drain (cdisk_hold), and it becomes the new
 * open region. Items read since they were written are kept (Navy's reinsertion): copied,
 * compacted, to the start of the reused region under its new sequence number, and the index
 * told their new place, so that a stream as large as the tier passes through it without
 * flushing what is read again (a kept item must be read again to survive the next pass).
 * Eviction therefore weighs bytes: a region of small items gives back the same space as a
 * region of large ones.
 *
 * Writes bypass the page cache (O_DIRECT, a second descriptor): the kernel's copy of every
 * stored block into its page cache, and the write-back and reclaim after it, cost a cold stream
 * through the cache about a quarter of the daemon's CPU. An item is copied into the writing
 * thread's 4096-aligned staging buffer at its place in a 4096-byte block (its pages by pread from
 * the memory tier's memfd when they are a memory slot, cdisk_append_fd: user space never touches
 * a fresh slot's pages, see arena.c); the whole blocks in its
 * middle are written directly, the partial blocks at its two ends (shared with the neighbouring
 * items, 512-aligned) through the page cache, as are region headers and summaries, so that no
 * block is written both ways at once and items keep their 512-byte packing. Reads go through
 * the page cache. A tmpfs, a file system that refuses O_DIRECT or one whose direct I/O
 * alignment does not divide 4096 gets buffered writes only (open_direct).
 *
 * Nothing is fsync'd. A crash or power loss may leave an item whose pages never landed; the
 * per-page CRC (seeded with the block identity and page number) rejects them at read time. The
 * region open at a kill -9 has no summary: the scan then walks its item headers from its start,
 * stopping at the first that does not decode or carries another region sequence number (left
 * from the region's earlier use), so what was written before the kill is found again. Each
 * region header carries a sequence number that increases over the file's life; a summary
 * counts only if it carries the same one, so a reused region's stale summary is never believed.
 *
 * File layout (all integers little-endian):
 *
 *   offset 0            superblock, CDISK_SB_SIZE (4096) bytes
 *   offset data_off     regions: nregions x region_size (data_off = 4096)
 *
 *   superblock:
 *     0   8  magic "EFCCACHE"
 *     8   4  version (3; 2 had block-sized slots, 1 identities without the name space: an older
 *            file is reformatted, with a log line)
 *     12  4  superblock size (4096)
 *     16  4  block_size
 *     20  4  page_size
 *     24  4  region_size
 *     28  4  nregions
 *     32  8  data_off
 *     40  8  file_bytes (data_off + nregions * region_size)
 *     48  8  name space: XXH3-64 of the cache's name space ("<bucket>.<host>")
 *     56  8  CRC64 of bytes 0..55
 *     64     zero to 4096
 *
 *   region (region_size bytes):
 *     0        region header, RHDR (512) bytes:
 *                0 8 magic "EFCREGN1", 8 8 sequence number (> 0), 16 4 region index,
 *                20 4 region_size, 24..55 zero, 56 8 CRC64 of bytes 0..55
 *     512      items, each CITEM_ALIGN-aligned, back to back (item.c)
 *     ...      free
 *     sum_off  summary entries (written at seal), n x SE bytes, SE = 32 + 8W:
 *                0 4 item offset in the region (0: a dead entry, an append that failed),
 *                4 4 block length, 8 16 identity, 24 4 item length, 28 4 zero,
 *                32 8W valid-page bitmap
 *     rs-64    summary footer: 0 8 magic "EFCRSUM1", 8 8 the region's sequence number,
 *              16 4 n, 20 4 SE, 24 8 CRC64 of the entries, 32..55 zero,
 *              56 8 CRC64 of bytes 0..55; sum_off = rs - 64 - n x SE
 *
 * An append reserves its item's bytes and its summary entry's, so a region never overflows.
 */
#define _GNU_SOURCE
#include "cache/cache_i.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/crc64.h"
#include "util/le.h"
#include "util/log.h"
#include "util/vg.h"

#define SB_MAGIC       "EFCCACHE"
#define SB_VERSION     3
#define RING_DEPTH     64
#define MAX_BATCH      32          /* I/O requests submitted together */
#define FS_MARGIN_BASE (64u << 10) /* room left under the cap for the file system's metadata */
#define REGION_TARGET  (16u << 20)
#define RHDR           512u
#define FOOTER         64u
#define REG_MAGIC      "EFCREGN1"
#define SUM_MAGIC      "EFCRSUM1"
#define NIL            UINT32_MAX
#define READERS_WAIT_US                                                                            \
    10000000ull /* an evictor waits this long at most for a region's readers                       \
                 */

enum { R_FREE, R_OPEN, R_SEALED, R_SUMMARY, R_EVICTING };

struct creg {
    uint64_t seq;      /* 0: free */
    uint64_t used;     /* R_OPEN and until the summary is written: bytes of items, from 0 */
    uint8_t *sum;      /* its summary entries, until written */
    uint32_t nsum;     /* entries in sum */
    uint32_t inflight; /* appends reserved, not done */
    uint32_t readers;  /* atomic, and never reset: see creg_set */
    uint8_t state;     /* R_* */
};

struct cdisk {
    int fd;
    int dfd;         /* the same file opened O_DIRECT for writes, or -1 */
    int direct;      /* atomic: 1 while writes go through dfd */
    uint32_t dalign; /* direct I/O alignment of offsets, lengths and buffers */
    char *path;
    uint32_t block_size, page_size, npages, w, se;
    uint32_t region_size, nregions;
    uint64_t data_off, file_bytes;
    uint64_t ns_hash;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a region changed state, an append finished */
    struct creg *regs;
    uint32_t *fifo; /* sealed regions, oldest at fifo_head (a ring of nregions) */
    uint32_t fifo_head, fifo_n;
    uint32_t *freeq; /* free regions (a stack) */
    uint32_t nfree;
    uint32_t open; /* the open region, or NIL */
    int busy;      /* a thread opens or evicts a region: the others wait */
    uint64_t seq;  /* the last region sequence number given */
};

/* ---- I/O: a per-thread io_uring, pread/pwrite when there is none (or under valgrind) ---- */

struct tl_ring {
    struct io_uring ring;
    int ok;
    unsigned gen;   /* fork generation it was made in */
    uint8_t *stage; /* the thread's aligned staging buffer for direct writes (cdisk_append) */
    size_t stage_len;
};

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static int ring_key_ok;
/* A forked child inherits the thread's ring, whose queues are memory shared with the parent:
 * using it would corrupt the parent's. The child makes its own. */
static unsigned fork_gen;

static void ring_atfork_child(void)
{
    fork_gen++;
}

static void ring_destroy(void *p)
{
    struct tl_ring *r = p;
    if (r->ok)
        io_uring_queue_exit(&r->ring);
    free(r->stage);
    free(r);
}

static void ring_key_init(void)
{
    ring_key_ok = pthread_key_create(&ring_key, ring_destroy) == 0;
    pthread_atfork(NULL, NULL, ring_atfork_child);
}

static struct tl_ring *tl_get(void)
{
    if (efc_on_valgrind()) /* memcheck would not know what the kernel's reads wrote: util/vg.h */
        return NULL;
    pthread_once(&ring_once, ring_key_init);
    if (!ring_key_ok)
        return NULL;
    struct tl_ring *r = pthread_getspecific(ring_key);
    if (r && r->gen != fork_gen) {
        ring_destroy(r); /* unmaps and closes in this process only */
        r = NULL;
    }
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return NULL;
        r->gen = fork_gen;
        r->ok = io_uring_queue_init(RING_DEPTH, &r->ring, 0) == 0;
        if (!r->ok)
            log_warn("io_uring unavailable for the disk cache; using pread/pwrite");
        if (pthread_setspecific(ring_key, r) != 0) {
            ring_destroy(r);
            return NULL;
        }
    }
    return r;
}

static struct io_uring *ring_get(void)
{
    struct tl_ring *r = tl_get();
    return r && r->ok ? &r->ring : NULL;
}

/* The calling thread's staging buffer of at least LEN bytes, aligned for direct I/O (kept for
 * the thread's next append: one per writer thread, about a block), or NULL. */
static uint8_t *stage_get(size_t len, size_t align)
{
    struct tl_ring *r = tl_get();
    if (!r)
        return NULL;
    if (r->stage_len < len) {
        void *p = NULL;
        if (posix_memalign(&p, align, len) != 0)
            return NULL;
        free(r->stage);
        r->stage = p;
        r->stage_len = len;
    }
    return r->stage;
}

struct dio {
    void *buf;
    size_t len;
    uint64_t off;
    int direct; /* through the O_DIRECT descriptor (aligned buffer, offset and length) */
};

static int dio_fd(const struct cdisk *d, const struct dio *o)
{
    return o->direct ? d->dfd : d->fd;
}

static int io_fallback(const struct cdisk *d, int write, struct dio *ops, int n)
{
    for (int i = 0; i < n; i++) {
        int fd = dio_fd(d, &ops[i]);
        size_t done = 0;
        while (done < ops[i].len) {
            ssize_t r = write ? pwrite(fd, (char *)ops[i].buf + done, ops[i].len - done,
                                       (off_t)(ops[i].off + done))
                              : pread(fd, (char *)ops[i].buf + done, ops[i].len - done,
                                      (off_t)(ops[i].off + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return -errno;
            if (r == 0)
                return write ? -EIO : -ENODATA;
            done += (size_t)r;
        }
    }
    return 0;
}

/* Runs N requests of one kind; with LINK each starts only after the previous one succeeded
 * (used to put data before the header). A short write is -EIO; a short read is -ENODATA: the
 * file ends early (truncated under us), which says nothing about the device. */
static int io_batch(const struct cdisk *d, int write, struct dio *ops, int n, int link)
{
    struct io_uring *ring = ring_get();
    if (!ring)
        return io_fallback(d, write, ops, n);
    int rc = 0;
    for (int base = 0; base < n && rc == 0; base += MAX_BATCH) {
        int m = n - base < MAX_BATCH ? n - base : MAX_BATCH;
        for (int i = 0; i < m; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            struct dio *o = &ops[base + i];
            if (!sqe) /* cannot happen: MAX_BATCH < RING_DEPTH and every batch is reaped */
                abort();
            if (write)
                io_uring_prep_write(sqe, dio_fd(d, o), o->buf, (unsigned)o->len, o->off);
            else
                io_uring_prep_read(sqe, dio_fd(d, o), o->buf, (unsigned)o->len, o->off);
            io_uring_sqe_set_data64(sqe, (uint64_t)(base + i));
            if (link && i + 1 < m)
                sqe->flags |= IOSQE_IO_LINK;
        }
        int s;
        do
            s = io_uring_submit(ring);
        while (s == -EINTR);
        if (s < 0)
            return s;
        for (int i = 0; i < m; i++) {
            struct io_uring_cqe *cqe;
            int w;
            do
                w = io_uring_wait_cqe(ring, &cqe);
            while (w == -EINTR);
            if (w < 0)
                return w; /* the ring is unusable now; later calls get -errno too */
            int res = cqe->res;
            uint64_t k = io_uring_cqe_get_data64(cqe);
            io_uring_cqe_seen(ring, cqe);
            if (rc == 0) {
                if (res < 0)
                    rc = res == -ECANCELED ? -EIO : res;
                else if ((size_t)res != ops[k].len)
                    rc = write ? -EIO : -ENODATA; /* ENOSPC half-way; the file cut short */
            }
        }
    }
    return rc;
}

/* Writes N requests as io_batch does. A direct write the file system refuses (EINVAL: an
 * alignment it did not report) turns direct writes off for good, with one log line, and the
 * requests are written again through the page cache. */
static int io_write(struct cdisk *d, struct dio *ops, int n, int link)
{
    int rc = io_batch(d, 1, ops, n, link), any = 0;
    for (int i = 0; i < n; i++)
        any |= ops[i].direct;
    if (rc != -EINVAL || !any)
        return rc;
    if (__atomic_exchange_n(&d->direct, 0, __ATOMIC_ACQ_REL))
        log_warn("disk cache '%s': a direct write failed (%s); writing through the page cache",
                 d->path, strerror(EINVAL));
    for (int i = 0; i < n; i++)
        ops[i].direct = 0;
    return io_batch(d, 1, ops, n, link);
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

/* The requests (at most 3, into OPS) that write LEN bytes at file offset OFF from BUF, whose
 * address is OFF modulo the direct I/O alignment: the whole aligned blocks in the middle through
 * the O_DIRECT descriptor, the partial blocks at either end (shared with the neighbouring items)
 * through the page cache, so that no block is written both ways at once. In the order middle,
 * tail, head: with LINK, the head, where an item's header is, lands last. */
static int span_ops(struct cdisk *d, uint8_t *buf, size_t len, uint64_t off, struct dio *ops)
{
    uint64_t a = d->dalign, m0 = round_up(off, a), m1 = (off + len) / a * a;
    if (!__atomic_load_n(&d->direct, __ATOMIC_ACQUIRE) || m1 <= m0) {
        ops[0] = (struct dio){buf, len, off, 0};
        return 1;
    }
    int n = 0;
    ops[n++] = (struct dio){buf + (m0 - off), m1 - m0, m0, 1};
    if (off + len > m1)
        ops[n++] = (struct dio){buf + (m1 - off), off + len - m1, m1, 0};
    if (m0 > off)
        ops[n++] = (struct dio){buf, m0 - off, off, 0};
    return n;
}

/* ---- superblock and opening ---- */

static void sb_encode(const struct cdisk *d, uint8_t *sb)
{
    memset(sb, 0, CDISK_SB_SIZE);
    memcpy(sb, SB_MAGIC, 8);
    le_put32(sb + 8, SB_VERSION);
    le_put32(sb + 12, CDISK_SB_SIZE);
    le_put32(sb + 16, d->block_size);
    le_put32(sb + 20, d->page_size);
    le_put32(sb + 24, d->region_size);
    le_put32(sb + 28, d->nregions);
    le_put64(sb + 32, d->data_off);
    le_put64(sb + 40, d->file_bytes);
    le_put64(sb + 48, d->ns_hash);
    le_put64(sb + 56, crc64_update(0, sb, 56));
}

/* NULL when SB is the superblock D would write, else why it is not (for the log). */
static const char *sb_mismatch(const struct cdisk *d, const uint8_t *sb)
{
    uint8_t want[CDISK_SB_SIZE];
    sb_encode(d, want);
    if (memcmp(want, sb, 64) == 0)
        return NULL;
    if (memcmp(sb, SB_MAGIC, 8) != 0 || le_get64(sb + 56) != crc64_update(0, sb, 56))
        return "superblock invalid";
    if (le_get32(sb + 8) != SB_VERSION)
        return le_get32(sb + 8) < SB_VERSION ? "written by an older efc (block-sized slots)"
                                             : "written by a newer efc";
    if (memcmp(want + 12, sb + 12, 48 - 12) != 0)
        return "geometry changed";
    return "it held the blocks of another bucket";
}

static uint64_t region_off(const struct cdisk *d, uint32_t r)
{
    return d->data_off + (uint64_t)r * d->region_size;
}

/* Opens D's file a second time with O_DIRECT, for the writes: written through the page cache,
 * the kernel's copy of every block stored cost about a fifth of a cold stream's CPU, and the
 * memory tier holds what is hot anyway. Reads stay buffered (an item's pages sit after its
 * header, at offsets no direct read could use without a bounce buffer; what is read twice is
 * then served by the page cache). Direct writes are aligned to 4096 (offsets, lengths, buffers):
 * a file system that refuses O_DIRECT (EINVAL at open), or whose alignment (statx
 * STATX_DIOALIGN) is not a divisor of 4096, leaves every write buffered, with one log line; so
 * does a tmpfs or ramfs, which takes O_DIRECT (since Linux 6.6) but copies into its page cache
 * all the same. */
static void open_direct(struct cdisk *d)
{
    struct statfs fs;
    if (fstatfs(d->fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) {
        log_info("disk cache '%s': on a tmpfs, where the page cache is the storage; writing "
                 "through it",
                 d->path);
        return;
    }
    int fd = open(d->path, O_RDWR | O_CLOEXEC | O_DIRECT);
    if (fd < 0) {
        log_info("disk cache '%s': the file system refuses O_DIRECT (%s); writing through the "
                 "page cache",
                 d->path, strerror(errno));
        return;
    }
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN)) {
        if (sx.stx_dio_offset_align == 0 || sx.stx_dio_offset_align > d->dalign ||
            sx.stx_dio_mem_align > d->dalign) {
            log_info("disk cache '%s': the file system's direct I/O alignment (%u, memory %u) "
                     "is not 4096 or a divisor of it; writing through the page cache",
                     d->path, sx.stx_dio_offset_align, sx.stx_dio_mem_align);
            close(fd);
            return;
        }
    }
    d->dfd = fd;
    d->direct = 1;
}

int cdisk_open(const char *dir, uint64_t cap, uint32_t block_size, uint32_t page_size,
               const char *ns, struct cdisk **out, char *err, size_t errlen)
{
    *out = NULL;
    struct cdisk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->fd = d->dfd = -1;
    d->dalign = 4096;
    d->open = NIL;
    d->block_size = block_size;
    d->page_size = page_size;
    d->npages = block_size / page_size;
    d->w = CSLOT_WORDS(d->npages);
    d->se = citem_sum_len(d->npages);
    d->ns_hash = XXH3_64bits(ns, strlen(ns));
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    size_t dl = strlen(dir);
    d->path = malloc(dl + sizeof(CDISK_FILE_NAME) + 2);
    if (!d->path) {
        cdisk_close(d);
        return -ENOMEM;
    }
    sprintf(d->path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", CDISK_FILE_NAME);

    /* Regions of about REGION_TARGET (a sixteenth of the cap when smaller: what rounding to whole
       regions and the open region leave unused stays small), each holding at least
       two of the largest items with their summary entries. The regions, the superblock and a
       margin for the file system's own blocks all fit under the cap. */
    uint64_t maxitem = citem_len(citem_hdr_len(d->npages, d->npages), block_size) + d->se;
    uint64_t target = cap / 16 < REGION_TARGET ? cap / 16 : REGION_TARGET;
    uint64_t k = target / block_size > 2 ? target / block_size : 2;
    uint64_t rs = round_up(RHDR + k * maxitem + FOOTER, 4096);
    uint64_t margin = FS_MARGIN_BASE + cap / 4096;
    uint64_t avail = cap > margin + CDISK_SB_SIZE ? cap - margin - CDISK_SB_SIZE : 0;
    uint64_t n = rs <= UINT32_MAX ? avail / rs : 0;
    if (n > (1u << 24))
        n = 1u << 24;
    d->region_size = (uint32_t)rs;
    d->nregions = (uint32_t)n;
    d->data_off = CDISK_SB_SIZE;
    d->file_bytes = d->data_off + n * rs;
    int rc;
    if (n < 2) {
        snprintf(err, errlen, "disk cache '%s': %llu bytes cannot hold two regions of %llu bytes",
                 dir, (unsigned long long)cap, (unsigned long long)rs);
        rc = -ENOSPC;
        goto fail;
    }
    d->regs = calloc(n, sizeof(*d->regs));
    d->fifo = calloc(n, sizeof(*d->fifo));
    d->freeq = calloc(n, sizeof(*d->freeq));
    if (!d->regs || !d->fifo || !d->freeq) {
        rc = -ENOMEM;
        snprintf(err, errlen, "disk cache '%s': out of memory", dir);
        goto fail;
    }
    d->fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open cache file '%s': %s", d->path, strerror(-rc));
        goto fail;
    }
    /* A process killed with requests in its io_uring holds the file (and so the lock) until
       the kernel has finished them, a moment after it is gone: wait up to 2 s for that. */
    int lk = -1;
    for (int tries = 0; tries < 200; tries++) {
        lk = flock(d->fd, LOCK_EX | LOCK_NB);
        if (lk == 0 || errno != EWOULDBLOCK)
            break;
        usleep(10000);
    }
    if (lk != 0) {
        rc = -errno;
        snprintf(err, errlen, "cache file '%s' is in use by another process", d->path);
        goto fail;
    }
    uint8_t sb[CDISK_SB_SIZE];
    ssize_t r = pread(d->fd, sb, sizeof(sb), 0);
    struct stat st;
    const char *why = r == (ssize_t)sizeof(sb) ? sb_mismatch(d, sb) : "superblock invalid";
    if (why || fstat(d->fd, &st) != 0 || (uint64_t)st.st_size > d->file_bytes) {
        /* New, or written with another geometry, format or name space: start empty. */
        if (r > 0)
            log_info("disk cache '%s': %s; starting empty", d->path, why ? why : "size invalid");
        sb_encode(d, sb);
        errno = 0;
        if (ftruncate(d->fd, 0) != 0 || pwrite(d->fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb)) {
            rc = errno ? -errno : -EIO;
            snprintf(err, errlen, "cannot initialise cache file '%s': %s", d->path, strerror(-rc));
            goto fail;
        }
    }
    open_direct(d);
    for (uint32_t i = 0; i < d->nregions; i++)
        d->freeq[d->nfree++] = d->nregions - 1 - i; /* region 0 on top: the file fills in order */
    *out = d;
    return 0;
fail:
    cdisk_close(d);
    return rc;
}

uint64_t cdisk_file_bytes(const struct cdisk *d)
{
    return d->file_bytes;
}

uint32_t cdisk_nregions(const struct cdisk *d)
{
    return d->nregions;
}

uint32_t cdisk_region_size(const struct cdisk *d)
{
    return d->region_size;
}

uint64_t cdisk_items_fit(const struct cdisk *d, uint64_t data_len)
{
    if (data_len == 0 || data_len > d->block_size)
        return 0;
    uint32_t nv = (uint32_t)((data_len + d->page_size - 1) / d->page_size);
    uint64_t one = citem_len(citem_hdr_len(d->npages, nv), data_len) + d->se;
    return (uint64_t)d->nregions * ((d->region_size - RHDR - FOOTER) / one);
}

int cdisk_direct(const struct cdisk *d)
{
    int fl = d->dfd >= 0 ? fcntl(d->dfd, F_GETFL) : -1;
    return __atomic_load_n(&d->direct, __ATOMIC_ACQUIRE) && fl >= 0 && (fl & O_DIRECT);
}

const char *cdisk_path(const struct cdisk *d)
{
    return d->path;
}

uint64_t cdisk_mem_bytes(const struct cdisk *d)
{
    return sizeof(*d) + (uint64_t)d->nregions * (sizeof(*d->regs) + 2 * sizeof(uint32_t));
}

/* ---- reading a region's items ---- */

static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ENODATA;
        got += (size_t)r;
    }
    return 0;
}

/* The sequence number of region R's header, 0 if it has none that verifies. */
static uint64_t region_hdr_seq(struct cdisk *d, uint32_t r)
{
    uint8_t h[64];
    if (read_full(d->fd, h, sizeof(h), region_off(d, r)) != 0)
        return 0;
    if (memcmp(h, REG_MAGIC, 8) != 0 || le_get64(h + 56) != crc64_update(0, h, 56) ||
        le_get32(h + 16) != r || le_get32(h + 20) != d->region_size)
        return 0;
    return le_get64(h + 8);
}

/* Calls FN for each item of the summary of region R (sequence number SEQ). -ENOENT when it has
 * no summary that verifies (the caller walks the items instead). */
static int region_summary(struct cdisk *d, uint32_t r, uint64_t seq, cdisk_item_fn fn, void *arg,
                          uint64_t *valid)
{
    uint8_t f[FOOTER];
    uint64_t ro = region_off(d, r);
    if (read_full(d->fd, f, sizeof(f), ro + d->region_size - FOOTER) != 0)
        return -ENOENT;
    if (memcmp(f, SUM_MAGIC, 8) != 0 || le_get64(f + 56) != crc64_update(0, f, 56) ||
        le_get64(f + 8) != seq || le_get32(f + 20) != d->se)
        return -ENOENT;
    uint64_t n = le_get32(f + 16);
    if (n * d->se + FOOTER + RHDR > d->region_size)
        return -ENOENT;
    uint64_t sum_off = d->region_size - FOOTER - n * d->se;
    uint8_t *e = malloc(n * d->se + 1);
    if (!e)
        return -ENOMEM;
    int rc = read_full(d->fd, e, n * d->se, ro + sum_off);
    if (rc != 0 || le_get64(f + 24) != crc64_update(0, e, n * d->se)) {
        free(e);
        return -ENOENT;
    }
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        struct citem_hdr h = {.seq = seq, .valid = valid};
        uint32_t off;
        /* A dead entry (an append that failed) is skipped; a malformed one cannot be (the
           summary's CRC verified), and is skipped rather than trusted. */
        if (citem_sum_decode(e + i * d->se, d->se, d->block_size, d->page_size, RHDR, sum_off, &off,
                             &h) == 0)
            rc = fn(arg, r, off, &h);
    }
    free(e);
    return rc;
}

/* Calls FN for each item of region R (sequence number SEQ) found by reading the item headers
 * from its start (a region without a summary: open at a kill -9). */
static int region_walk(struct cdisk *d, uint32_t r, uint64_t seq, cdisk_item_fn fn, void *arg,
                       uint64_t *valid, uint64_t *crc)
{
    uint32_t maxhl = citem_hdr_len(d->npages, d->npages);
    uint8_t *buf = malloc(maxhl);
    if (!buf)
        return -ENOMEM;
    uint64_t ro = region_off(d, r), off = RHDR;
    int rc = 0;
    while (rc == 0 && off + CITEM_FIXED + FOOTER <= d->region_size) {
        size_t want = d->region_size - FOOTER - off < maxhl ? d->region_size - FOOTER - off : maxhl;
        struct citem_hdr h = {.valid = valid, .crc = crc};
        if (read_full(d->fd, buf, CITEM_FIXED, ro + off) != 0)
            break;
        int dr = citem_hdr_decode(buf, CITEM_FIXED, d->block_size, d->page_size, &h);
        if (dr != -EAGAIN)
            break;
        uint32_t hl = citem_hdr_len(d->npages, h.nvalid);
        if (hl > want || read_full(d->fd, buf, hl, ro + off) != 0)
            break;
        if (citem_hdr_decode(buf, hl, d->block_size, d->page_size, &h) != 0 || h.seq != seq ||
            off + h.item_len > d->region_size - FOOTER)
            break;
        rc = fn(arg, r, (uint32_t)off, &h);
        off += h.item_len;
    }
    free(buf);
    return rc;
}

static int region_items(struct cdisk *d, uint32_t r, uint64_t seq, cdisk_item_fn fn, void *arg)
{
    uint64_t *valid = malloc(8ull * d->w), *crc = malloc(8ull * d->npages);
    int rc = -ENOMEM;
    if (valid && crc) {
        rc = region_summary(d, r, seq, fn, arg, valid);
        if (rc == -ENOENT)
            rc = region_walk(d, r, seq, fn, arg, valid, crc);
    }
    free(valid);
    free(crc);
    return rc;
}

struct byseq {
    uint64_t seq;
    uint32_t r;
};

static int byseq_cmp(const void *a, const void *b)
{
    const struct byseq *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int cdisk_scan(struct cdisk *d, cdisk_item_fn fn, void *arg)
{
    struct byseq *s = malloc(sizeof(*s) * d->nregions);
    if (!s)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint32_t r = 0; r < d->nregions; r++) {
        uint64_t seq = region_hdr_seq(d, r);
        if (seq != 0)
            s[n++] = (struct byseq){seq, r};
    }
    qsort(s, n, sizeof(*s), byseq_cmp);
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    d->nfree = 0;
    d->fifo_head = d->fifo_n = 0;
    for (uint32_t i = 0; i < n; i++) {
        d->regs[s[i].r].seq = s[i].seq;
        d->regs[s[i].r].state = R_SEALED;
        d->fifo[d->fifo_n++] = s[i].r;
        if (s[i].seq > d->seq)
            d->seq = s[i].seq;
    }
    for (uint32_t r = d->nregions; r-- > 0;)
        if (d->regs[r].state == R_FREE)
            d->freeq[d->nfree++] = r;
    pthread_mutex_unlock(&d->lock);
    for (uint32_t i = 0; i < n && rc == 0; i++)
        rc = region_items(d, s[i].r, s[i].seq, fn, arg);
    free(s);
    return rc;
}

/* ---- reading pages ---- */

static int bit(const uint64_t *m, uint32_t p)
{
    return (int)(m[p / 64] >> (p % 64) & 1);
}

void cdisk_hold(struct cdisk *d, uint32_t region)
{
    __atomic_fetch_add(&d->regs[region].readers, 1, __ATOMIC_ACQ_REL);
}

void cdisk_unhold(struct cdisk *d, uint32_t region)
{
    __atomic_fetch_sub(&d->regs[region].readers, 1, __ATOMIC_ACQ_REL);
}

int cdisk_item_is(struct cdisk *d, uint32_t region, uint32_t off, const uint64_t id[2],
                  uint64_t blen, void *buf, size_t len)
{
    uint8_t *h = buf;
    if (len < CITEM_FIXED)
        return -EINVAL;
    if ((uint64_t)off + len > d->region_size)
        len = d->region_size - off;
    int rc = read_full(d->fd, h, len, region_off(d, region) + off);
    if (rc != 0)
        return rc; /* -ENODATA: the file was cut short under us */
    if (le_get32(h) != CITEM_MAGIC)
        return -ENODATA;
    return le_get64(h + 24) == id[0] && le_get64(h + 32) == id[1] && le_get32(h + 40) == blen;
}

int cdisk_read_pages(struct cdisk *d, uint32_t region, uint32_t off, const uint64_t id[2],
                     uint64_t blen, const uint64_t *valid, const uint64_t *mask, void *buf,
                     uint64_t *bad)
{
    uint32_t have = (uint32_t)((blen + d->page_size - 1) / d->page_size);
    uint32_t first = UINT32_MAX, last = 0, runs = 0, nvalid = 0;
    uint32_t rfirst = 0, rlast = 0; /* ranks of first and last among the item's pages */
    for (uint32_t p = 0; p < have; p++) {
        if (bit(mask, p)) {
            if (first == UINT32_MAX) {
                first = p;
                rfirst = nvalid;
            }
            if (p == 0 || !bit(mask, p - 1))
                runs++;
            last = p;
            rlast = nvalid;
        }
        nvalid += (uint32_t)bit(valid, p);
    }
    if (first == UINT32_MAX)
        return 0;
    uint64_t io = region_off(d, region) + off;
    uint32_t hl = citem_hdr_len(d->npages, nvalid), ncrc = rlast - rfirst + 1;
    uint8_t raw_stack[64 * 8];
    struct dio ops_stack[8];
    uint8_t *raw = ncrc <= 64 ? raw_stack : malloc(8ull * ncrc);
    struct dio *ops = runs < 8 ? ops_stack : malloc(sizeof(*ops) * (runs + 1));
    int rc = 0;
    if (!raw || !ops) {
        rc = -ENOMEM;
        goto out;
    }
    int n = 0;
    ops[n++] = (struct dio){raw, 8ull * ncrc, io + CITEM_FIXED + 8ull * d->w + 8ull * rfirst, 0};
    /* Page p of the mask, the k-th page of the item, is at hl + k * page_size: contiguous pages
       of the mask are contiguous in the item (the mask lies within the item's pages). */
    uint32_t rank = 0;
    for (uint32_t p = 0; p <= last;) {
        if (!bit(mask, p)) {
            rank += (uint32_t)bit(valid, p);
            p++;
            continue;
        }
        uint32_t q = p;
        while (q + 1 <= last && bit(mask, q + 1))
            q++;
        uint64_t s = (uint64_t)p * d->page_size, e = ((uint64_t)q + 1) * d->page_size;
        if (e > blen)
            e = blen;
        ops[n++] = (struct dio){(char *)buf + s, e - s, io + hl + (uint64_t)rank * d->page_size, 0};
        rank += q - p + 1;
        p = q + 1;
    }
    rc = io_batch(d, 0, ops, n, 0);
    int cut = rc == -ENODATA; /* pages past the file's end: missing, as corrupt ones are */
    uint32_t k = 0;           /* the rank of p among the item's pages, minus rfirst */
    for (uint32_t p = first; p <= last; k += (uint32_t)bit(valid, p), p++) {
        if (!bit(mask, p))
            continue;
        uint64_t po = (uint64_t)p * d->page_size;
        uint64_t pl = blen - po < d->page_size ? blen - po : d->page_size;
        if (rc != 0 || cslot_page_crc(id, p, (char *)buf + po, pl) != le_get64(raw + 8 * k))
            bad[p / 64] |= 1ull << (p % 64);
    }
    if (cut)
        rc = 0;
out:
    if (raw && raw != raw_stack)
        free(raw);
    if (ops && ops != ops_stack)
        free(ops);
    return rc;
}

/* ---- appending ---- */

/* Writes region R's summary (its entries SUM, N of them) and frees SUM. No lock held. */
static int write_summary(struct cdisk *d, uint32_t r, uint64_t seq, uint8_t *sum, uint32_t n)
{
    uint8_t f[FOOTER] = {0};
    memcpy(f, SUM_MAGIC, 8);
    le_put64(f + 8, seq);
    le_put32(f + 16, n);
    le_put32(f + 20, d->se);
    le_put64(f + 24, crc64_update(0, sum, (size_t)n * d->se));
    le_put64(f + 56, crc64_update(0, f, 56));
    uint64_t ro = region_off(d, r);
    struct dio ops[2] = {
        {sum, (size_t)n * d->se, ro + d->region_size - FOOTER - (uint64_t)n * d->se, 0},
        {f, FOOTER, ro + d->region_size - FOOTER, 0}};
    int rc = n ? io_write(d, ops, 2, 1) : io_write(d, ops + 1, 1, 0);
    free(sum);
    if (rc != 0)
        log_warn("disk cache '%s': region %u's summary not written: %s; the next start-up reads "
                 "its items one by one",
                 d->path, r, strerror(-rc));
    return rc;
}

/* Region R is sealed and its appends are done: writes its summary. Lock held (dropped for the
 * write). */
static void summary_locked(struct cdisk *d, uint32_t r)
{
    struct creg *g = &d->regs[r];
    if (g->state != R_SEALED || g->inflight > 0 || !g->sum)
        return;
    uint8_t *sum = g->sum;
    uint32_t n = g->nsum;
    g->sum = NULL;
    g->state = R_SUMMARY;
    pthread_mutex_unlock(&d->lock);
    (void)write_summary(d, r, g->seq, sum, n);
    pthread_mutex_lock(&d->lock);
    g->state = R_SEALED;
    pthread_cond_broadcast(&d->cond);
}

/* Gives region G a new life (lock held). Every field but readers: a read of an item the region
 * keeps (reinsertion) may hold it at any moment, also while it is reused (cdisk_hold). */
static void creg_set(struct creg *g, uint64_t seq, uint64_t used, uint8_t *sum, uint32_t nsum,
                     uint8_t state)
{
    g->seq = seq;
    g->used = used;
    g->sum = sum;
    g->nsum = nsum;
    g->inflight = 0;
    g->state = state;
}

static void seal_locked(struct cdisk *d)
{
    uint32_t r = d->open;
    d->open = NIL;
    d->regs[r].state = R_SEALED;
    d->fifo[(d->fifo_head + d->fifo_n) % d->nregions] = r;
    d->fifo_n++;
    summary_locked(d, r);
}

/* The items of a region being reused that its owner keeps (read since written). */
struct evict_ctx {
    struct cdisk *d;
    const struct cdisk_owner *o;
    uint32_t n, cap;
    struct kept {
        uint32_t off, len, blen;
        uint64_t id[2];
    } * k;
    uint64_t *valid; /* n x W words */
};

static int evict_item(void *arg, uint32_t region, uint32_t off, const struct citem_hdr *h)
{
    struct evict_ctx *x = arg;
    if (!x->o->evict(x->o->arg, region, off, h))
        return 0;
    if (x->n == x->cap) {
        uint32_t cap = x->cap ? 2 * x->cap : 64;
        struct kept *k = realloc(x->k, sizeof(*k) * cap);
        uint64_t *v = k ? realloc(x->valid, 8ull * x->d->w * cap) : NULL;
        if (k)
            x->k = k;
        if (!v)
            return 0; /* not kept after all: the index has forgotten it already */
        x->valid = v;
        x->cap = cap;
    }
    x->k[x->n] = (struct kept){off, h->item_len, h->blen, {h->id[0], h->id[1]}};
    memcpy(x->valid + (size_t)x->n * x->d->w, h->valid, 8ull * x->d->w);
    x->n++;
    return 0;
}

/* Opens a free region: a new sequence number in its header. Lock held (dropped for the write),
 * d->busy set by the caller. */
static int open_region_locked(struct cdisk *d)
{
    uint32_t r = d->freeq[--d->nfree];
    uint64_t seq = ++d->seq;
    pthread_mutex_unlock(&d->lock);
    uint8_t h[RHDR] = {0};
    memcpy(h, REG_MAGIC, 8);
    le_put64(h + 8, seq);
    le_put32(h + 16, r);
    le_put32(h + 20, d->region_size);
    le_put64(h + 56, crc64_update(0, h, 56));
    struct dio op = {h, RHDR, region_off(d, r), 0};
    int rc = io_write(d, &op, 1, 0);
    uint8_t *sum = rc == 0 ? malloc(d->se * 64ull) : NULL;
    pthread_mutex_lock(&d->lock);
    if (rc == 0 && !sum)
        rc = -ENOMEM;
    if (rc != 0) {
        d->freeq[d->nfree++] = r;
        free(sum);
        return rc;
    }
    creg_set(&d->regs[r], seq, RHDR, sum, 0, R_OPEN);
    d->open = r;
    return 0;
}

/* Reopens region R (its items forgotten, its readers gone) with the items X kept written again
 * at its start, compacted, under sequence number SEQ: one write of the new region's head. Returns
 * the bytes used, or 0 when it could not (then no item is kept). No lock held. */
static uint64_t reinsert(struct cdisk *d, uint32_t r, uint64_t oldseq, uint64_t seq,
                         struct evict_ctx *x, uint8_t *sum)
{
    uint64_t ro = region_off(d, r), pos = RHDR;
    void *mem = NULL;
    if (posix_memalign(&mem, d->dalign, d->region_size) != 0)
        return 0;
    uint8_t *buf = mem;
    memset(buf, 0, RHDR);
    memcpy(buf, REG_MAGIC, 8);
    le_put64(buf + 8, seq);
    le_put32(buf + 16, r);
    le_put32(buf + 20, d->region_size);
    le_put64(buf + 56, crc64_update(0, buf, 56));
    uint32_t n = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        struct kept *k = &x->k[i];
        uint8_t *it = buf + pos;
        if (k->len < CITEM_FIXED || read_full(d->fd, it, k->len, ro + k->off) != 0)
            continue;
        uint32_t hl = le_get32(it + 8);
        if (hl < CITEM_FIXED + 8 || hl > k->len || le_get64(it + 16) != oldseq ||
            le_get64(it + hl - 8) != crc64_update(0, it, hl - 8))
            continue; /* not the item the summary said: not kept */
        le_put64(it + 16, seq);
        le_put64(it + hl - 8, crc64_update(0, it, hl - 8));
        x->k[n] = *k;
        x->k[n].off = (uint32_t)pos;
        memmove(x->valid + (size_t)n * d->w, x->valid + (size_t)i * d->w, 8ull * d->w);
        struct citem_hdr h = {.id = {k->id[0], k->id[1]},
                              .blen = k->blen,
                              .npages = d->npages,
                              .item_len = k->len,
                              .valid = x->valid + (size_t)n * d->w};
        citem_sum_encode(&h, (uint32_t)pos, sum + (size_t)n * d->se);
        pos += k->len;
        n++;
    }
    struct dio ops[3];
    int rc = io_write(d, ops, span_ops(d, buf, pos, ro, ops), 1);
    free(buf);
    x->n = rc == 0 ? n : 0;
    return rc == 0 ? pos : 0;
}

/* Reuses the oldest sealed region: its items are forgotten (those read since written are kept
 * and written again at its start), its readers drained; it becomes the open region, or a free
 * one. Lock held (dropped meanwhile), d->busy set by the caller. */
static void evict_region_locked(struct cdisk *d, const struct cdisk_owner *o)
{
    uint32_t r = d->fifo[d->fifo_head];
    d->fifo_head = (d->fifo_head + 1) % d->nregions;
    d->fifo_n--;
    struct creg *g = &d->regs[r];
    g->state = R_EVICTING;
    uint64_t oldseq = g->seq;
    pthread_mutex_unlock(&d->lock);
    struct evict_ctx x = {.d = d, .o = o};
    int rc = region_items(d, r, oldseq, evict_item, &x);
    if (rc != 0)
        log_warn("disk cache '%s': region %u's items could not be listed (%s); reads of them fail "
                 "their CRC and are refetched",
                 d->path, r, strerror(-rc));
    /* The index no longer names the region's items: wait for the reads already under way. */
    for (uint64_t us = 0;
         __atomic_load_n(&g->readers, __ATOMIC_ACQUIRE) > 0 && us < READERS_WAIT_US; us += 100)
        usleep(100);
    uint64_t used = 0, seq = 0;
    uint8_t *sum = NULL;
    if (x.n > 0) {
        pthread_mutex_lock(&d->lock);
        seq = ++d->seq;
        pthread_mutex_unlock(&d->lock);
        size_t scap = ((size_t)x.n + 64) / 64 * 64;
        sum = malloc(scap * d->se);
        used = sum ? reinsert(d, r, oldseq, seq, &x, sum) : 0;
        for (uint32_t i = 0; used && i < x.n; i++) {
            struct citem_hdr h = {.id = {x.k[i].id[0], x.k[i].id[1]},
                                  .seq = seq,
                                  .blen = x.k[i].blen,
                                  .block_size = d->block_size,
                                  .page_size = d->page_size,
                                  .npages = d->npages,
                                  .item_len = x.k[i].len,
                                  .valid = x.valid + (size_t)i * d->w};
            o->moved(o->arg, &h, r, x.k[i].off);
        }
    }
    free(x.k);
    free(x.valid);
    pthread_mutex_lock(&d->lock);
    if (used) {
        creg_set(g, seq, used, sum, x.n, R_OPEN);
        d->open = r;
    } else {
        free(sum);
        creg_set(g, 0, 0, NULL, 0, R_FREE);
        d->freeq[d->nfree++] = r;
    }
}

/* The next run of consecutive pages of item H's valid ones at or after *P (of HAVE): its bytes
 * [*S, *E) in the block, *P moved past it; 0 when there is none. */
static int valid_run(const struct cdisk *d, const struct citem_hdr *h, uint32_t have, uint32_t *p,
                     uint64_t *s, uint64_t *e)
{
    while (*p < have && !bit(h->valid, *p))
        (*p)++;
    if (*p >= have)
        return 0;
    uint32_t q = *p;
    while (q + 1 < have && bit(h->valid, q + 1))
        q++;
    *s = (uint64_t)*p * d->page_size;
    *e = ((uint64_t)q + 1) * d->page_size;
    if (*e > h->blen)
        *e = h->blen;
    *p = q + 1;
    return 1;
}

/* Copies LEN bytes at block offset S of BUF to DST: by pread from FD at FOFF + S when FD >= 0
 * (BUF's bytes are there too: a memfd-backed memory tier, whose pages the process then never
 * touches itself), else (or should the read fall short) by memcpy. */
static void copy_in(uint8_t *dst, const void *buf, int fd, uint64_t foff, uint64_t s, uint64_t len)
{
    uint64_t done = 0;
    while (fd >= 0 && done < len) {
        ssize_t n = pread(fd, dst + done, len - done, (off_t)(foff + s + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (uint64_t)n;
    }
    if (done < len)
        memcpy(dst + done, (const char *)buf + s + done, len - done);
}

/* Writes item H (its header HDR, HL bytes, and BUF's valid pages, read from FD at FOFF when
 * FD >= 0: copy_in) of ILEN bytes at file offset IO with direct writes: the item is copied into
 * the thread's aligned staging buffer at IO's place in a 4096-byte block (a copy in this thread
 * is cheaper than the kernel's into its page cache), the zero padding up to ILEN included, then
 * written as span_ops says. */
static int append_direct(struct cdisk *d, const struct citem_hdr *h, const uint8_t *hdr,
                         uint32_t hl, const void *buf, int fd, uint64_t foff, uint64_t io,
                         uint64_t ilen)
{
    size_t lead = io % d->dalign;
    uint8_t *st = stage_get(round_up(lead + ilen, d->dalign), d->dalign);
    if (!st)
        return -ENOMEM;
    uint8_t *it = st + lead;
    memcpy(it, hdr, hl);
    uint64_t pos = hl;
    uint32_t have = (h->blen + d->page_size - 1) / d->page_size;
    uint64_t s, e;
    for (uint32_t p = 0; valid_run(d, h, have, &p, &s, &e);) { /* a run of pages, one copy */
        copy_in(it + pos, buf, fd, foff, s, e - s);
        pos += e - s;
    }
    memset(it + pos, 0, ilen - pos);
    struct dio ops[3];
    return io_write(d, ops, span_ops(d, it, ilen, io, ops), 1);
}

int cdisk_append(struct cdisk *d, struct citem_hdr *h, const void *buf,
                 const struct cdisk_owner *owner, uint32_t *region, uint32_t *off)
{
    return cdisk_append_fd(d, h, buf, -1, 0, owner, region, off);
}

int cdisk_append_fd(struct cdisk *d, struct citem_hdr *h, const void *buf, int fd, uint64_t foff,
                    const struct cdisk_owner *owner, uint32_t *region, uint32_t *off)
{
    h->block_size = d->block_size;
    h->page_size = d->page_size;
    h->npages = d->npages;
    uint32_t nv = 0;
    for (uint32_t k = 0; k < d->w; k++)
        nv += (uint32_t)__builtin_popcountll(h->valid[k]);
    uint32_t hl = citem_hdr_len(d->npages, nv);
    uint64_t ilen = citem_len(hl, citem_data_len(h->blen, d->page_size, d->npages, h->valid));
    uint8_t *hdr = malloc(hl);
    if (!hdr)
        return -ENOMEM;
    pthread_mutex_lock(&d->lock);
    uint32_t r = NIL, k = 0;
    int rc = 0;
    for (uint64_t tries = 0; r == NIL; tries++) {
        if (d->open != NIL) {
            struct creg *g = &d->regs[d->open];
            if (g->used + ilen + (uint64_t)(g->nsum + 1) * d->se + FOOTER <= d->region_size) {
                if ((g->nsum & 63) == 0 && g->nsum > 0) {
                    uint8_t *s = realloc(g->sum, (size_t)(g->nsum + 64) * d->se);
                    if (!s) {
                        rc = -ENOMEM;
                        break;
                    }
                    g->sum = s;
                }
                r = d->open;
                *off = (uint32_t)g->used;
                k = g->nsum++;
                g->used += ilen;
                g->inflight++;
                h->seq = g->seq;
                h->item_len = (uint32_t)ilen;
                citem_sum_encode(h, *off, g->sum + (size_t)k * d->se);
                break;
            }
            seal_locked(d);
            continue;
        }
        if (d->busy) {
            pthread_cond_wait(&d->cond, &d->lock);
            continue;
        }
        if (d->nfree > 0) {
            d->busy = 1;
            rc = open_region_locked(d);
            d->busy = 0;
            pthread_cond_broadcast(&d->cond);
            if (rc != 0)
                break;
            continue;
        }
        if (d->fifo_n == 0 || tries > 4ull * d->nregions + 16) {
            rc = 1; /* every region is being written or summarised */
            break;
        }
        struct creg *old = &d->regs[d->fifo[d->fifo_head]];
        if (old->state != R_SEALED || old->inflight > 0) {
            pthread_cond_wait(&d->cond, &d->lock);
            continue;
        }
        d->busy = 1;
        evict_region_locked(d, owner);
        d->busy = 0;
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
    if (r == NIL) {
        free(hdr);
        return rc;
    }
    *region = r;
    citem_hdr_encode(h, hdr);
    uint64_t io = region_off(d, r) + *off;
    if (__atomic_load_n(&d->direct, __ATOMIC_ACQUIRE)) {
        rc = append_direct(d, h, hdr, hl, buf, fd, foff, io, ilen);
        free(hdr);
        goto done;
    }

    /* The pages, then the header (linked: the header lands only after its data). */
    uint32_t have = (h->blen + d->page_size - 1) / d->page_size;
    struct dio ops_stack[9], *ops = ops_stack;
    int nops = 0, cap = 9;
    uint64_t pos = hl, s, e;
    for (uint32_t p = 0; rc == 0 && valid_run(d, h, have, &p, &s, &e);) {
        if (nops + 1 >= cap) {
            cap *= 2;
            struct dio *m = malloc(sizeof(*ops) * (size_t)cap);
            if (!m) {
                rc = -ENOMEM;
                break;
            }
            memcpy(m, ops, sizeof(*ops) * (size_t)nops);
            if (ops != ops_stack)
                free(ops);
            ops = m;
        }
        ops[nops++] = (struct dio){(char *)buf + s, e - s, io + pos, 0};
        pos += e - s;
    }
    if (rc == 0) {
        ops[nops++] = (struct dio){hdr, hl, io, 0};
        rc = io_write(d, ops, nops, 1);
    }
    if (ops != ops_stack)
        free(ops);
    free(hdr);
done:
    if (rc != 0) {
        pthread_mutex_lock(&d->lock);
        struct creg *g = &d->regs[r];
        if (g->sum)
            le_put32(g->sum + (size_t)k * d->se, 0); /* a dead entry: the scan skips it */
        pthread_mutex_unlock(&d->lock);
        cdisk_append_done(d, r);
    }
    return rc;
}

void cdisk_append_done(struct cdisk *d, uint32_t region)
{
    pthread_mutex_lock(&d->lock);
    struct creg *g = &d->regs[region];
    g->inflight--;
    if (g->inflight == 0) {
        summary_locked(d, region);
        pthread_cond_broadcast(&d->cond);
    }
    pthread_mutex_unlock(&d->lock);
}

void cdisk_close(struct cdisk *d)
{
    if (!d)
        return;
    if (d->fd >= 0 && d->regs) {
        pthread_mutex_lock(&d->lock);
        if (d->open != NIL)
            seal_locked(d);
        pthread_mutex_unlock(&d->lock);
    }
    if (d->regs)
        for (uint32_t r = 0; r < d->nregions; r++)
            free(d->regs[r].sum);
    if (d->fd >= 0)
        close(d->fd);
    if (d->dfd >= 0)
        close(d->dfd);
    free(d->regs);
    free(d->fifo);
    free(d->freeq);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d->path);
    free(d);
}
