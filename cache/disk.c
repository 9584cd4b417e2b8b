/* cache/disk.c - the disk tier's on-disk format: one preallocated-by-size (sparse) slot file per
 * cache directory, a fixed array of block-sized slots, each described by its own header.
 *
 * Design: the index lives in memory (cache.c); the file only has to let a new process rebuild it
 * and to let every read prove that the bytes it got are the bytes that were written for that
 * block. So each slot carries a header with the block's identity, a valid-page bitmap and one
 * CRC64 per page; headers sit together at the front of the file, so the start-up scan is one
 * sequential read of nslots * hdr_size bytes. Nothing is fsync'd: a crash or power loss may
 * leave a header that claims pages whose data never landed (or the reverse), and the per-page
 * CRC (seeded with the block identity and page number) rejects them at read time. Data pages are
 * written before the header (linked io_uring requests), so after a kill -9 torn blocks are rare
 * and always detected. The file never grows past file_bytes, which is computed to keep headers,
 * data and a margin for file-system metadata under the configured cap.
 *
 * File layout (all integers little-endian):
 *
 *   offset 0                     superblock, CDISK_SB_SIZE (4096) bytes
 *   offset 4096                  slot headers: nslots x hdr_size
 *   offset data_off (4 KiB aligned) slot data: nslots x block_size
 *
 *   superblock:
 *     0   8  magic "EFCCACHE"
 *     8   4  version (2; 1 had identities without the name space)
 *     12  4  superblock size (4096)
 *     16  4  block_size
 *     20  4  page_size
 *     24  4  nslots
 *     28  4  hdr_size
 *     32  8  data_off
 *     40  8  file_bytes (data_off + nslots * block_size)
 *     48  8  name space: XXH3-64 of the cache's name space ("<bucket>.<host>")
 *     56  8  CRC64 of bytes 0..55
 *     64     zero to 4096
 *
 *   slot header (hdr_size = 64 + 8*W + 8*npages + 8 rounded up to 512; W = ceil(npages/64)):
 *     0   4  magic "EFCS" (0x53434645); 0 = empty slot
 *     4   2  version (1)
 *     6   2  flags (0)
 *     8   4  hdr_size
 *     12  4  block_size
 *     16  4  page_size
 *     20  4  npages (= block_size / page_size)
 *     24  16 identity: XXH3-128 of (name space, key, etag, block index), low word first
 *     40  4  block length (1..block_size; the last block of an object is short)
 *     44  4  spare (0)
 *     48  8  spare (0)
 *     56  8  sequence number (per directory, for diagnosis)
 *     64  8W valid-page bitmap (bit p of word p/64)
 *     ..  8*npages CRC64 per page, seeded with identity and page number, over the page's bytes
 *         inside the block (the last page of the last block is short)
 *     ..  spare, zero
 *     hdr_size-8  8  CRC64 of bytes 0..hdr_size-9
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
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "util/crc64.h"
#include "util/le.h"
#include "util/log.h"
#include "util/vg.h"

#define SB_MAGIC       "EFCCACHE"
#define SB_VERSION     2
#define RING_DEPTH     64
#define MAX_BATCH      32 /* I/O requests submitted together */
#define SCAN_CHUNK     (1u << 20)
#define FS_MARGIN_BASE (64u << 10) /* room left under the cap for the file system's metadata */

struct cdisk {
    int fd;
    char *path;
    uint32_t block_size, page_size, npages, hdr_size, nslots;
    uint64_t data_off, file_bytes;
    uint64_t ns_hash;
};

/* ---- slot header ---- */

uint32_t cslot_hdr_size(uint32_t npages)
{
    uint64_t n = CSLOT_FIXED + 8ull * CSLOT_WORDS(npages) + 8ull * npages + 8;
    return (uint32_t)((n + 511) & ~511ull);
}

uint64_t cslot_block_len(uint64_t obj_size, uint64_t index, uint32_t block_size)
{
    if (index >= obj_size / block_size + 1)
        return 0;
    uint64_t start = index * block_size;
    if (start >= obj_size)
        return 0;
    uint64_t left = obj_size - start;
    return left < block_size ? left : block_size;
}

uint64_t cslot_page_crc(const uint64_t id[2], uint32_t page, const void *data, size_t len)
{
    uint64_t seed = id[0] ^ (id[1] * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)page << 1);
    return crc64_update(seed, data, len);
}

void cslot_hdr_encode(const struct cslot_hdr *h, uint8_t *out)
{
    uint32_t hs = cslot_hdr_size(h->npages), w = CSLOT_WORDS(h->npages);
    memset(out, 0, hs);
    le_put32(out, CSLOT_MAGIC);
    le_put16(out + 4, CSLOT_VERSION);
    le_put16(out + 6, 0);
    le_put32(out + 8, hs);
    le_put32(out + 12, h->block_size);
    le_put32(out + 16, h->page_size);
    le_put32(out + 20, h->npages);
    le_put64(out + 24, h->id[0]);
    le_put64(out + 32, h->id[1]);
    le_put32(out + 40, h->blen);
    le_put64(out + 56, h->seq);
    for (uint32_t i = 0; i < w; i++)
        le_put64(out + CSLOT_FIXED + 8 * i, h->valid[i]);
    for (uint32_t p = 0; p < h->npages; p++)
        le_put64(out + CSLOT_FIXED + 8 * w + 8 * p, h->crc[p]);
    le_put64(out + hs - 8, crc64_update(0, out, hs - 8));
}

int cslot_hdr_decode(const uint8_t *in, size_t len, uint32_t block_size, uint32_t page_size,
                     struct cslot_hdr *h)
{
    if (len < CSLOT_FIXED)
        return -EBADMSG;
    uint32_t magic = le_get32(in);
    if (magic == 0)
        return -ENOENT;
    if (magic != CSLOT_MAGIC || le_get16(in + 4) != CSLOT_VERSION)
        return -EBADMSG;
    if (page_size == 0 || block_size < page_size || block_size % page_size != 0)
        return -EINVAL;
    uint32_t np = block_size / page_size;
    if (np > CSLOT_MAX_PAGES)
        return -EINVAL;
    uint32_t hs = le_get32(in + 8);
    if (hs != cslot_hdr_size(np) || hs > len || le_get32(in + 12) != block_size ||
        le_get32(in + 16) != page_size || le_get32(in + 20) != np)
        return -EBADMSG;
    if (le_get64(in + hs - 8) != crc64_update(0, in, hs - 8))
        return -EBADMSG;
    h->block_size = block_size;
    h->page_size = page_size;
    h->npages = np;
    h->id[0] = le_get64(in + 24);
    h->id[1] = le_get64(in + 32);
    h->blen = le_get32(in + 40);
    h->seq = le_get64(in + 56);
    uint64_t blen = h->blen;
    if (blen == 0 || blen > block_size)
        return -EBADMSG;
    uint32_t have = (uint32_t)((blen + page_size - 1) / page_size); /* pages inside the block */
    uint32_t w = CSLOT_WORDS(np);
    for (uint32_t i = 0; i < w; i++) {
        uint64_t v = le_get64(in + CSLOT_FIXED + 8 * i);
        /* No bit may name a page past the block's end. */
        for (uint32_t b = 0; b < 64; b++)
            if ((v >> b & 1) && i * 64 + b >= have)
                return -EBADMSG;
        h->valid[i] = v;
    }
    for (uint32_t p = 0; p < np; p++)
        h->crc[p] = le_get64(in + CSLOT_FIXED + 8 * w + 8 * p);
    return 0;
}

/* ---- I/O: a per-thread io_uring, pread/pwrite when there is none (or under valgrind) ---- */

struct tl_ring {
    struct io_uring ring;
    int ok;
    unsigned gen; /* fork generation it was made in */
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
    free(r);
}

static void ring_key_init(void)
{
    ring_key_ok = pthread_key_create(&ring_key, ring_destroy) == 0;
    pthread_atfork(NULL, NULL, ring_atfork_child);
}

static struct io_uring *ring_get(void)
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
    return r->ok ? &r->ring : NULL;
}

struct dio {
    void *buf;
    size_t len;
    uint64_t off;
};

static int io_fallback(int fd, int write, struct dio *ops, int n)
{
    for (int i = 0; i < n; i++) {
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
static int io_batch(int fd, int write, struct dio *ops, int n, int link)
{
    struct io_uring *ring = ring_get();
    if (!ring)
        return io_fallback(fd, write, ops, n);
    int rc = 0;
    for (int base = 0; base < n && rc == 0; base += MAX_BATCH) {
        int m = n - base < MAX_BATCH ? n - base : MAX_BATCH;
        for (int i = 0; i < m; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            struct dio *o = &ops[base + i];
            if (!sqe) /* cannot happen: MAX_BATCH < RING_DEPTH and every batch is reaped */
                abort();
            if (write)
                io_uring_prep_write(sqe, fd, o->buf, (unsigned)o->len, o->off);
            else
                io_uring_prep_read(sqe, fd, o->buf, (unsigned)o->len, o->off);
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

/* ---- superblock and opening ---- */

static void sb_encode(const struct cdisk *d, uint8_t *sb)
{
    memset(sb, 0, CDISK_SB_SIZE);
    memcpy(sb, SB_MAGIC, 8);
    le_put32(sb + 8, SB_VERSION);
    le_put32(sb + 12, CDISK_SB_SIZE);
    le_put32(sb + 16, d->block_size);
    le_put32(sb + 20, d->page_size);
    le_put32(sb + 24, d->nslots);
    le_put32(sb + 28, d->hdr_size);
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
        return "written by another version of efc";
    if (memcmp(want + 12, sb + 12, 48 - 12) != 0)
        return "geometry changed";
    return "it held the blocks of another bucket";
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

int cdisk_open(const char *dir, uint64_t cap, uint32_t block_size, uint32_t page_size,
               const char *ns, struct cdisk **out, char *err, size_t errlen)
{
    *out = NULL;
    struct cdisk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->fd = -1;
    d->block_size = block_size;
    d->page_size = page_size;
    d->npages = block_size / page_size;
    d->hdr_size = cslot_hdr_size(d->npages);
    d->ns_hash = XXH3_64bits(ns, strlen(ns));
    size_t dl = strlen(dir);
    d->path = malloc(dl + sizeof(CDISK_FILE_NAME) + 2);
    if (!d->path) {
        free(d);
        return -ENOMEM;
    }
    sprintf(d->path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", CDISK_FILE_NAME);

    /* Headers, data, the superblock and a margin for the file system's own blocks all fit. */
    uint64_t margin = FS_MARGIN_BASE + cap / 4096;
    uint64_t avail = cap > margin ? cap - margin : 0;
    uint64_t n =
        avail > 2 * CDISK_SB_SIZE ? (avail - 2 * CDISK_SB_SIZE) / (d->hdr_size + block_size) : 0;
    if (n > (1u << 30))
        n = 1u << 30;
    d->nslots = (uint32_t)n;
    d->data_off = round_up(CDISK_SB_SIZE + n * d->hdr_size, 4096);
    d->file_bytes = d->data_off + n * block_size;
    int rc;
    if (n == 0) {
        snprintf(err, errlen, "disk cache '%s': %llu bytes cannot hold one block", dir,
                 (unsigned long long)cap);
        rc = -ENOSPC;
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
        if (ftruncate(d->fd, 0) != 0 || pwrite(d->fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb)) {
            rc = errno ? -errno : -EIO;
            snprintf(err, errlen, "cannot initialise cache file '%s': %s", d->path, strerror(-rc));
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    cdisk_close(d);
    return rc;
}

void cdisk_close(struct cdisk *d)
{
    if (!d)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d->path);
    free(d);
}

uint32_t cdisk_nslots(const struct cdisk *d)
{
    return d->nslots;
}

uint64_t cdisk_file_bytes(const struct cdisk *d)
{
    return d->file_bytes;
}

const char *cdisk_path(const struct cdisk *d)
{
    return d->path;
}

static uint64_t hdr_off(const struct cdisk *d, uint32_t slot)
{
    return CDISK_SB_SIZE + (uint64_t)slot * d->hdr_size;
}

static uint64_t data_off(const struct cdisk *d, uint32_t slot)
{
    return d->data_off + (uint64_t)slot * d->block_size;
}

int cdisk_scan(struct cdisk *d, cdisk_scan_fn fn, void *arg)
{
    uint32_t per = SCAN_CHUNK / d->hdr_size ? SCAN_CHUNK / d->hdr_size : 1;
    size_t chunk = (size_t)per * d->hdr_size;
    uint8_t *buf = malloc(chunk);
    uint32_t w = CSLOT_WORDS(d->npages);
    uint64_t *valid = malloc(8 * w), *crc = malloc(8ull * d->npages);
    int rc = 0;
    if (!buf || !valid || !crc) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t s0 = 0; s0 < d->nslots && rc == 0; s0 += per) {
        uint32_t m = d->nslots - s0 < per ? d->nslots - s0 : per;
        size_t want = (size_t)m * d->hdr_size, got = 0;
        while (got < want) {
            ssize_t r = pread(d->fd, buf + got, want - got, (off_t)(hdr_off(d, s0) + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = -errno;
                goto out;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        memset(buf + got, 0, want - got); /* past the end of the file: empty slots */
        for (uint32_t i = 0; i < m && rc == 0; i++) {
            struct cslot_hdr h = {.valid = valid, .crc = crc};
            if (cslot_hdr_decode(buf + (size_t)i * d->hdr_size, d->hdr_size, d->block_size,
                                 d->page_size, &h) == 0)
                rc = fn(arg, s0 + i, &h);
        }
    }
out:
    free(buf);
    free(valid);
    free(crc);
    return rc;
}

int cdisk_read_hdr(struct cdisk *d, uint32_t slot, struct cslot_hdr *h)
{
    uint8_t *buf = malloc(d->hdr_size);
    if (!buf)
        return -ENOMEM;
    struct dio op = {buf, d->hdr_size, hdr_off(d, slot)};
    int rc = io_batch(d->fd, 0, &op, 1, 0);
    if (rc == 0)
        rc = cslot_hdr_decode(buf, d->hdr_size, d->block_size, d->page_size, h);
    free(buf);
    return rc;
}

static int bit(const uint64_t *m, uint32_t p)
{
    return (int)(m[p / 64] >> (p % 64) & 1);
}

int cdisk_read_pages(struct cdisk *d, uint32_t slot, const uint64_t id[2], uint64_t blen,
                     const uint64_t *mask, void *buf, uint64_t *bad)
{
    uint32_t have = (uint32_t)((blen + d->page_size - 1) / d->page_size);
    uint32_t first = UINT32_MAX, last = 0, runs = 0;
    for (uint32_t p = 0; p < have; p++)
        if (bit(mask, p)) {
            if (first == UINT32_MAX)
                first = p;
            if (p == 0 || !bit(mask, p - 1))
                runs++;
            last = p;
        }
    if (first == UINT32_MAX)
        return 0;
    uint32_t np = last - first + 1;
    /* Only the pages asked for are read: the ones between may be valid in the caller's buffer
       (and being read by others) while their disk copy is not. */
    uint8_t raw_stack[64 * 8];
    struct dio ops_stack[8];
    uint8_t *raw = np <= 64 ? raw_stack : malloc(8ull * np);
    struct dio *ops = runs < 8 ? ops_stack : malloc(sizeof(*ops) * (runs + 1));
    int rc = 0;
    if (!raw || !ops) {
        rc = -ENOMEM;
        goto out;
    }
    int n = 0;
    ops[n++] =
        (struct dio){raw, 8ull * np,
                     hdr_off(d, slot) + CSLOT_FIXED + 8ull * CSLOT_WORDS(d->npages) + 8ull * first};
    for (uint32_t p = first; p <= last;) {
        if (!bit(mask, p)) {
            p++;
            continue;
        }
        uint32_t q = p;
        while (q + 1 <= last && bit(mask, q + 1))
            q++;
        uint64_t s = (uint64_t)p * d->page_size, e = ((uint64_t)q + 1) * d->page_size;
        if (e > blen)
            e = blen;
        ops[n++] = (struct dio){(char *)buf + s, e - s, data_off(d, slot) + s};
        p = q + 1;
    }
    rc = io_batch(d->fd, 0, ops, n, 0);
    int cut = rc == -ENODATA; /* pages past the file's end: missing, as corrupt ones are */
    for (uint32_t p = first; p <= last; p++) {
        if (!bit(mask, p))
            continue;
        uint64_t po = (uint64_t)p * d->page_size;
        uint64_t pl = blen - po < d->page_size ? blen - po : d->page_size;
        if (rc != 0 ||
            cslot_page_crc(id, p, (char *)buf + po, pl) != le_get64(raw + 8 * (p - first)))
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

int cdisk_write(struct cdisk *d, uint32_t slot, const struct cslot_hdr *h, const void *buf,
                const uint64_t *newpages, uint64_t blen)
{
    uint32_t have = (uint32_t)((blen + d->page_size - 1) / d->page_size);
    uint8_t *hdr = malloc(d->hdr_size);
    int nops = 0, cap = 8;
    struct dio *ops = malloc(sizeof(*ops) * (size_t)cap);
    int rc = 0;
    if (!hdr || !ops) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t p = 0; p < have;) {
        if (!bit(newpages, p)) {
            p++;
            continue;
        }
        uint32_t q = p;
        while (q + 1 < have && bit(newpages, q + 1))
            q++;
        uint64_t s = (uint64_t)p * d->page_size, e = ((uint64_t)q + 1) * d->page_size;
        if (e > blen)
            e = blen;
        if (nops + 1 >= cap) {
            cap *= 2;
            struct dio *n = realloc(ops, sizeof(*ops) * (size_t)cap);
            if (!n) {
                rc = -ENOMEM;
                goto out;
            }
            ops = n;
        }
        ops[nops++] = (struct dio){(char *)buf + s, e - s, data_off(d, slot) + s};
        p = q + 1;
    }
    cslot_hdr_encode(h, hdr);
    ops[nops++] = (struct dio){hdr, d->hdr_size, hdr_off(d, slot)};
    rc = io_batch(d->fd, 1, ops, nops, 1);
out:
    free(hdr);
    free(ops);
    return rc;
}
