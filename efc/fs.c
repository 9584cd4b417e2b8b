/* efc/fs.c - the FUSE low-level operations of the daemon; see efc.h.
 *
 * Design. Every operation reaches the daemon context as the session's user data. Names come from
 * the inode table (ns.c); listings from directory streams and the listing cache (dir.c); bytes
 * from the read path (read.h). The rules of DESIGN.md's "File-system semantics" are applied here:
 *
 * - lookup(parent, name) first asks the metadata cache when it is on (g_metadata_CacheEnable:
 *   positive and negative answers, kept until clear_metadata_cache), then the parent's most
 *   recent complete listing if it is fresh (listing_ttl_ms), and otherwise probes the store with
 *   one ListObjectsV2 of prefix "<key>", delimiter '/', a few keys: the file "<key>" sorts first
 *   among them and the directory "<key>/" follows, unless names such as "<key>-a" (bytes below
 *   '/') fill the page first, in which case a second listing of prefix "<key>/" settles the
 *   directory question. One request answers most lookups, for files and directories alike, and
 *   the directory wins over a file of the same name as the listing does. When names of one
 *   directory are probed one by one (EFC_PROBE_LIST_AFTER of them within EFC_PROBE_WINDOW_MS: a
 *   loader opening the files of an index), the directory is listed whole instead (up to
 *   EFC_PROBE_LIST_MAX entries) into the listing cache, which then answers the lookups of its
 *   other names as if `ls` had listed it; lookups of that directory that come while it is being
 *   listed wait for the listing (EFC_PROBE_WAIT_MS at most) instead of probing. A name missing
 *   from a listing is asked of the store unless the metadata cache is on: negative answers are
 *   cached only with it. The seed's consistency table follows: with the metadata cache off,
 *   reopening a file shows its new content and a new file is openable at once but shows in `ls`
 *   only after the readdir cache expires or is cleared; with it on, neither shows until it is
 *   cleared. With it on, the kernel keeps every name found and its attributes for
 *   EFC_META_KERNEL_S (or the attribute timeout if longer), so a warm open costs an open and a
 *   release, no lookup; clearing either cache takes them back (efc_fs_forget_kernel). Other
 *   answers, negative ones included, keep the attribute timeout: with the metadata cache off a
 *   name kept longer would skip the lookup that refreshes the kernel's attributes from the
 *   listing, and its permission check would then send a getattr, which HEADs (one more round
 *   trip than the lookup it saves).
 * - opendir replays the directory's cached listing while it is younger than
 *   g_readdircache_RemainTime (the readdir cache: at most MaxCount listings, MaxSize bytes),
 *   else starts a fresh listing stream, which fills the cache once complete.
 * - readdir/readdirplus stream: a page is fetched only when the kernel asks for an entry not yet
 *   seen, and the reply holds what is in memory, so `ls` of a huge directory starts after one
 *   page. Offsets are entry numbers: 0 ".", 1 "..", then the stream's entries from 2. readdirplus
 *   registers each entry it actually puts in the reply (one lookup each, as FUSE counts) with the
 *   listing's size, mtime and ETag, and takes them back if the reply cannot be sent.
 * - getattr serves a file's attributes while younger than the attribute timeout, else HEADs it.
 * - open revalidates (close-to-open) with one ranged GET of the first block (ask_store): for a
 *   small object whose first block the cache lacks, unconditional, its answer both the metadata
 *   and the bytes, which the read that follows finds in the cache (first_i.h); else with
 *   If-None-Match on the known ETag, 304 when nothing changed (HEAD only for archived objects).
 *   The bytes go to a buffer sized to the object as they arrive, never a whole block for a few
 *   KiB. A cluster node keeps no first block (its blocks come through the P2P layer): it asks
 *   for one byte, conditional when the ETag is known, and the headers answer.
 *   It refuses Archive-class objects not restored (EACCES), keeps the kernel's page cache only
 *   while the ETag is the one of the last open, and when the object changed invalidates the
 *   kernel's attributes (so the new size is read).
 * - Anything that writes answers EROFS, chmod/chown EPERM (on a read-only mount the kernel
 *   answers EROFS first), xattrs ENOSYS (the kernel then stops asking; callers see ENOTSUP).
 *
 * Locks (in the order they may be taken): a directory handle's mutex (held across a page fetch:
 * readers of one handle need that page anyway), then an inode-table shard lock or the listing
 * cache lock (leaves, never held across I/O). statfs_lock and fh_lock are leaves too, never held
 * across I/O. No other lock is held across a network call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/cache.h"
#include "efc/dir_i.h"
#include "efc/efc.h"
#include "efc/first_i.h"
#include "efc/handover_i.h"
#include "efc/journal_i.h"
#include "efc/meta_i.h"
#include "efc/ns_i.h"
#include "efc/origin.h"
#include "efc/read.h"
#include "efc/supervise_i.h"
#include "util/log.h"
#include "util/timeutil.h"

#define EFC_LCACHE_DIRS  4096
#define EFC_META_BYTES   (64ull << 20)  /* the metadata cache's memory bound */
#define EFC_DIRMEM_LIMIT (256ull << 20) /* directory pages in memory, all directories */
#define EFC_PROBE_KEYS   16             /* keys asked for by a lookup's probe */
/* With the metadata cache on, the kernel may keep the names and attributes it was given this
   long (s): the cache's answers hold until clear_metadata_cache, which takes them back
   (efc_fs_forget_kernel). A warm epoch's open then needs no lookup. */
#define EFC_META_KERNEL_S 3600.0
/* A directory whose names were probed one by one this often within EFC_PROBE_WINDOW_MS is listed
   whole instead (if it has at most EFC_PROBE_LIST_MAX entries), and the listing answers the
   lookups of its other names. 100 pages of a listing cost what 100 probes do, and a loader opens
   tens of thousands of names of one directory: the benchmark's 20,000-file epoch paid one LIST
   a file with a cap of 5,000. A directory past the cap costs EFC_PROBE_LIST_MAX / 1000 LIST
   pages a window for nothing. */
#define EFC_PROBE_LIST_AFTER 4
#define EFC_PROBE_WINDOW_MS  10000
#define EFC_PROBE_LIST_MAX   100000
#define EFC_PROBE_SLOTS      64
/* How long a lookup waits for another's listing of its directory before probing its name. */
#define EFC_PROBE_WAIT_MS 10000
#define EFC_STATFS_TTL_MS 60000
/* When GetBucketStat says nothing (S3, errors): 1 PiB, all of it free. */
#define EFC_STATFS_UNKNOWN_BLOCKS (1ull << 38)
#define EFC_STATFS_UNKNOWN_FILES  (1ull << 32)
#define EFC_BLOCK                 4096
#define EFC_MAX_BACKGROUND        64
/* The kernel's readahead window for the mount (its bdi), raised after INIT: with the FUSE
   default of 128 KiB every buffered read becomes 128 KiB requests. One max_read (1 MiB) lets each
   request be as large as FUSE allows; larger windows only put several 1 MiB requests in flight
   at once, which the read path's own readahead does better (it measured no faster on loopback,
   slightly slower at 4 MiB). */
#define EFC_KERNEL_READAHEAD_KB (EFC_MAX_READ / 1024)
#define EFC_READDIR_BUF_MAX     (1u << 20)
#define EFC_READ_MEM_LIMIT      (512ull << 20)

/* One open file or directory. */
struct efc_fh {
    struct efc_fh *prev, *next; /* in e->fh_list, protected by e->fh_lock */
    uint64_t num;               /* the handle number the kernel holds (fi->fh); 0 until linked */
    uint64_t ino;
    bool is_dir;
    /* files */
    struct efc_reader *reader;
    uint64_t size;
    char *etag; /* the ETag learnt at open ("" none), for a runtime update to reopen the reader */
    /* A newer open saw another ETag: this handle's reads answer ESTALE from now on, so no old
       byte reaches the page cache the inode shares with the new handle (see stale_older). */
    atomic_bool stale;
    /* 1 for the open, plus 1 for each read until it has replied: once a read is answered the
       kernel may release the handle while op_read still holds it. fh_put frees at 0. */
    atomic_uint refs;
    char *key; /* the object's or directory's key (fixed once linked) */
    size_t keylen;
    /* directories: everything below is protected by lock */
    pthread_mutex_t lock;
    struct efc_dir *dir;
    uint64_t parent;
    bool published; /* the completed listing went to the listing cache */
};

static inline struct efc *ctx(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static inline void count_op(struct efc *e, enum efc_fuse_op op)
{
    atomic_fetch_add_explicit(&e->fuse_ops[op], 1, memory_order_relaxed);
}

const char *efc_fuse_op_name(enum efc_fuse_op op)
{
    static const char *const names[EFC_FUSE_OPS] = {
        [EFC_FUSE_LOOKUP] = "lookup",   [EFC_FUSE_GETATTR] = "getattr",
        [EFC_FUSE_OPEN] = "open",       [EFC_FUSE_READ] = "read",
        [EFC_FUSE_RELEASE] = "release", [EFC_FUSE_FLUSH] = "flush",
        [EFC_FUSE_FORGET] = "forget",   [EFC_FUSE_OPENDIR] = "opendir",
        [EFC_FUSE_READDIR] = "readdir",
    };
    return (unsigned)op < EFC_FUSE_OPS ? names[op] : "?";
}

/* ---- handle numbers ---------------------------------------------------------------------------
 * fi->fh is a number, not a pointer, so that a runtime update (handover.c) can give a new process
 * the open handles under the numbers the kernel holds: (generation << 32) | slot. Slots live in
 * chunks allocated on demand and freed only at teardown, so a request finds its handle with two
 * loads and no lock (op_read's whole cost); the slot's generation, bumped at each reuse, makes a
 * number that outlived its handle miss instead of reaching another one. Taking and releasing a
 * slot holds fh_lock. */
#define FH_CHUNK_BITS 10
#define FH_CHUNK      (1u << FH_CHUNK_BITS)
#define FH_MAX_CHUNKS 4096 /* 4M handles open at once: EFC_HO_MAX_HANDLES */

struct fh_chunk {
    _Atomic(struct efc_fh *) slot[FH_CHUNK];
    uint32_t gen[FH_CHUNK]; /* protected by fh_lock */
};

struct efc_fh_table {
    _Atomic(struct fh_chunk *) chunk[FH_MAX_CHUNKS];
    /* protected by fh_lock */
    uint32_t next;  /* slots from here on were never used */
    uint32_t *free; /* released slots below next, reused first */
    size_t nfree, capfree;
};

/* The handle of number NUM, or NULL. The kernel sends a handle's number only between the open
   reply and the release, and the slot was filled before the reply: no lock is needed. */
static inline struct efc_fh *fh_of(struct efc *e, uint64_t num)
{
    uint32_t slot = (uint32_t)num;
    if ((slot >> FH_CHUNK_BITS) >= FH_MAX_CHUNKS)
        return NULL;
    struct fh_chunk *c =
        atomic_load_explicit(&e->fh_table->chunk[slot >> FH_CHUNK_BITS], memory_order_acquire);
    if (c == NULL)
        return NULL;
    struct efc_fh *fh = atomic_load_explicit(&c->slot[slot & (FH_CHUNK - 1)], memory_order_acquire);
    return fh && fh->num == num ? fh : NULL;
}

/* The chunk of SLOT, allocated if needed; NULL without memory. Under fh_lock. */
static struct fh_chunk *fh_chunk_get(struct efc_fh_table *t, uint32_t slot)
{
    struct fh_chunk *c =
        atomic_load_explicit(&t->chunk[slot >> FH_CHUNK_BITS], memory_order_relaxed);
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c)
            atomic_store_explicit(&t->chunk[slot >> FH_CHUNK_BITS], c, memory_order_release);
    }
    return c;
}

/* Puts FH in slot SLOT with generation GEN and in the list. Under fh_lock. */
static void fh_place(struct efc *e, struct efc_fh *fh, struct fh_chunk *c, uint32_t slot,
                     uint32_t gen)
{
    c->gen[slot & (FH_CHUNK - 1)] = gen;
    fh->num = ((uint64_t)gen << 32) | slot;
    atomic_store_explicit(&c->slot[slot & (FH_CHUNK - 1)], fh, memory_order_release);
    fh->prev = NULL;
    fh->next = e->fh_list;
    if (e->fh_list)
        e->fh_list->prev = fh;
    e->fh_list = fh;
}

/* The errno a FUSE reply carries for -RC from below: what an application can act on, EIO for
   what it cannot (a spent retry budget, a malformed answer). */
static int reply_errno(int rc)
{
    switch (-rc) {
    case ENOENT:
    case EACCES:
    case EPERM:
    case ESTALE:
    case ENOMEM:
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case EINVAL:
    case EROFS:
    case EINTR:
        return -rc;
    default:
        return EIO;
    }
}

static void attr_from_meta(struct efc_attr *a, const struct oss_object_meta *m, uint64_t t_ms)
{
    a->size = m->size;
    a->mtime = m->mtime;
    a->sc = m->storage_class;
    a->restored = m->restored;
    a->fetched_ms = t_ms;
    snprintf(a->etag, sizeof(a->etag), "%s", m->etag);
}

/* Attributes from a cached answer (a listing's entry, a metadata-cache entry): a directory has
 * only the time. */
static void attr_set(struct efc_attr *a, uint64_t t_ms, bool is_dir, uint64_t size, int64_t mtime,
                     unsigned sc, bool restored, const char *etag)
{
    memset(a, 0, sizeof(*a));
    a->fetched_ms = t_ms;
    if (is_dir)
        return;
    a->size = size;
    a->mtime = (time_t)mtime;
    a->sc = (enum oss_storage_class)sc;
    a->restored = restored;
    snprintf(a->etag, sizeof(a->etag), "%s", etag);
}

static void attr_from_dirent(struct efc_attr *a, const struct efc_dirent *d, uint64_t t_ms)
{
    attr_set(a, t_ms, d->is_dir, d->size, (int64_t)d->mtime, d->sc, false, d->etag);
}

/* ---- the metadata cache (g_metadata_CacheEnable; e->meta NULL when off) ------------------ */

static void attr_from_ment(struct efc_attr *a, const struct efc_meta_ent *m, uint64_t t_ms)
{
    attr_set(a, t_ms, m->is_dir, m->size, (int64_t)m->mtime, m->sc, m->restored, m->etag);
}

/* Remembers what the store said of KEY (a name's key, no trailing '/'): FOUND, IS_DIR, and for a
   file its attributes A. */
static void meta_remember(struct efc *e, const char *key, size_t keylen, bool found, bool is_dir,
                          const struct efc_attr *a, bool headed)
{
    struct efc_meta_ent m;

    if (e->meta == NULL)
        return;
    memset(&m, 0, sizeof(m));
    m.present = found;
    m.is_dir = is_dir;
    if (found && !is_dir && a) {
        m.size = a->size;
        m.mtime = (int64_t)a->mtime;
        m.sc = (uint8_t)a->sc;
        m.restored = a->restored;
        snprintf(m.etag, sizeof(m.etag), "%s", a->etag);
        m.headed = headed;
    }
    efc_meta_put(e->meta, key, keylen, &m);
}

/* A file's attributes from the metadata cache: true when it holds KEY as an existing file with
   attributes a HEAD gave. (Those a listing gave may be as old as the readdir cache: after
   clear_metadata_cache, a reopen must see the object's current version.) */
static bool meta_file(struct efc *e, const char *key, struct efc_attr *a, uint64_t now)
{
    struct efc_meta_ent m;

    if (e->meta == NULL || !efc_meta_get(e->meta, key, strlen(key), &m) || !m.present || m.is_dir ||
        !m.headed)
        return false;
    attr_from_ment(a, &m, now);
    return true;
}

/* A file whose object lost the ETag its metadata cache entry gave: forget the entry, so that the
   next open sees the object's current version instead of failing the same way again. */
static void meta_forget_ino(struct efc *e, uint64_t ino)
{
    struct efc_node_info n;
    if (e->meta && efc_ns_get(e->ns, ino, &n) == 0)
        efc_meta_drop(e->meta, n.key, n.keylen);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void fill_stat(const struct efc *e, uint64_t ino, bool is_dir, const struct efc_attr *a,
                      struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = 0;
    st->st_gid = 0;
    if (is_dir) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        st->st_size = EFC_BLOCK;
        st->st_blocks = EFC_BLOCK / 512;
        st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = e->mount_time;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)a->size;
        st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
        st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = a->mtime;
    }
    /* Tells cp, stdio and friends to read in large pieces: each FUSE request costs a round trip
       through the kernel, as network file systems (CephFS, Lustre) advertise their object size. */
    st->st_blksize = EFC_MAX_READ;
}

/* Raises the kernel's readahead for this mount once INIT is done (any request after INIT). */
static void kernel_readahead(struct efc *e)
{
    if (atomic_load_explicit(&e->readahead_set, memory_order_relaxed) ||
        atomic_exchange(&e->readahead_set, true))
        return;
    if (e->bdi[0] == '\0')
        return;
    char path[96], val[32];
    snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", e->bdi);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int n = snprintf(val, sizeof(val), "%u\n", EFC_KERNEL_READAHEAD_KB);
    if (fd < 0 || write(fd, val, (size_t)n) != n)
        log_info("cannot raise the kernel readahead in '%s': %s (reads stay small)", path,
                 strerror(errno));
    else
        log_debug("kernel readahead of %s set to %u KiB", e->bdi, EFC_KERNEL_READAHEAD_KB);
    if (fd >= 0)
        close(fd);
}

/* Gives FH a number (fh->num) and lists it. Returns 0, or -ENOMEM (also when every number of the
   table is in use). */
static int fh_link(struct efc *e, struct efc_fh *fh)
{
    struct efc_fh_table *t = e->fh_table;
    int rc = -ENOMEM;

    pthread_mutex_lock(&e->fh_lock);
    uint32_t slot = t->nfree ? t->free[t->nfree - 1] : t->next;
    struct fh_chunk *c = (slot >> FH_CHUNK_BITS) < FH_MAX_CHUNKS ? fh_chunk_get(t, slot) : NULL;
    if (c) {
        if (t->nfree)
            t->nfree--;
        else
            t->next++;
        uint32_t gen = c->gen[slot & (FH_CHUNK - 1)] + 1;
        fh_place(e, fh, c, slot, gen ? gen : 1); /* never 0: no number is 0 */
        rc = 0;
        if (e->journal) {
            struct efc_fh_record r = {.num = fh->num,
                                      .ino = fh->ino,
                                      .parent = fh->parent,
                                      .size = fh->size,
                                      .is_dir = fh->is_dir,
                                      .key = fh->key ? fh->key : "",
                                      .etag = fh->etag ? fh->etag : ""};
            efc_journal_open(e->journal, &r);
        }
    }
    pthread_mutex_unlock(&e->fh_lock);
    return rc;
}

static void fh_unlink(struct efc *e, struct efc_fh *fh)
{
    struct efc_fh_table *t = e->fh_table;

    pthread_mutex_lock(&e->fh_lock);
    if (fh->prev)
        fh->prev->next = fh->next;
    else if (e->fh_list == fh)
        e->fh_list = fh->next;
    if (fh->next)
        fh->next->prev = fh->prev;
    fh->prev = fh->next = NULL;
    if (fh->num) {
        efc_journal_close(e->journal, fh->num);
        uint32_t slot = (uint32_t)fh->num;
        struct fh_chunk *c = atomic_load(&t->chunk[slot >> FH_CHUNK_BITS]);
        atomic_store_explicit(&c->slot[slot & (FH_CHUNK - 1)], NULL, memory_order_release);
        if (t->nfree == t->capfree) {
            size_t cap = t->capfree ? 2 * t->capfree : 256;
            uint32_t *f = realloc(t->free, cap * sizeof(*f));
            if (f) {
                t->free = f;
                t->capfree = cap;
            }
        }
        if (t->nfree < t->capfree) /* else the slot is lost: harmless */
            t->free[t->nfree++] = slot;
    }
    pthread_mutex_unlock(&e->fh_lock);
}

/* An open found a new ETag for INO: mark the inode's other handles stale, then wait until their
 * reads in flight have replied. Only then may the open reply, which is when the kernel drops the
 * inode's pages: after it, no read of an old handle can put old bytes back. Reads are bounded by
 * the origin's retry budget; the wait is bounded by WAIT_MS in any case. */
static void stale_older(struct efc *e, uint64_t ino, uint64_t wait_ms)
{
    uint64_t deadline = time_mono_ms() + wait_ms;
    for (;;) {
        unsigned busy = 0;
        pthread_mutex_lock(&e->fh_lock);
        for (struct efc_fh *fh = e->fh_list; fh; fh = fh->next) {
            if (fh->is_dir || fh->ino != ino)
                continue;
            atomic_store(&fh->stale, true);
            busy += atomic_load(&fh->refs) - 1; /* the reads in flight */
        }
        pthread_mutex_unlock(&e->fh_lock);
        if (busy == 0)
            return;
        if (time_mono_ms() >= deadline) {
            log_warn("inode %llu changed while %u read(s) of its old version were still running",
                     (unsigned long long)ino, busy);
            return;
        }
        usleep(1000);
    }
}

static void fh_free(struct efc_fh *fh)
{
    if (fh->is_dir) {
        efc_dir_free(fh->dir);
        pthread_mutex_destroy(&fh->lock);
    } else {
        efc_reader_close(fh->reader);
        free(fh->etag);
    }
    free(fh->key);
    free(fh);
}

static void fh_put(struct efc_fh *fh)
{
    if (atomic_fetch_sub(&fh->refs, 1) == 1)
        fh_free(fh);
}

/* ---- init ---------------------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct efc *e = userdata;
    unsigned want =
        FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_ASYNC_DIO;

    conn->want |= want & conn->capable;
    /* Always readdirplus: `ls -l` and `find` then need no lookup per entry. Page-cache
       invalidation is ours (keep_cache at open), not the kernel's guess from mtime changes. */
    conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA |
                              FUSE_CAP_WRITEBACK_CACHE);
    e->want_parallel_dirops = (conn->want & FUSE_CAP_PARALLEL_DIROPS) != 0;
    conn->max_read = EFC_MAX_READ;
    /* max_readahead stays what the kernel offers, its maximum at INIT; kernel_readahead()
       raises the window afterwards. */
    conn->max_background = EFC_MAX_BACKGROUND;
    conn->congestion_threshold = EFC_MAX_BACKGROUND * 3 / 4;
    conn->time_gran = 1000000000; /* Last-Modified has whole seconds */
    log_info("fuse: protocol %u.%u, max_read %u, max_readahead %u, readdirplus %s, "
             "parallel dirops %s",
             conn->proto_major, conn->proto_minor, conn->max_read, conn->max_readahead,
             (conn->want & FUSE_CAP_READDIRPLUS) ? "on" : "off",
             (conn->want & FUSE_CAP_PARALLEL_DIROPS) ? "on" : "off");
}

/* ---- lookup -------------------------------------------------------------------------------- */

struct probe {
    const char *key;
    size_t keylen;
    bool file, dir, past;
    struct efc_attr *attr;
    uint64_t t_ms;
};

static int probe_entry(void *arg, const struct oss_list_entry *le)
{
    struct probe *p = arg;
    if (!le->is_prefix && strcmp(le->key, p->key) == 0) {
        p->file = true;
        p->attr->size = le->size;
        p->attr->mtime = le->mtime;
        p->attr->sc = le->storage_class;
        p->attr->restored = false;
        p->attr->fetched_ms = p->t_ms;
        snprintf(p->attr->etag, sizeof(p->attr->etag), "%s", le->etag ? le->etag : "");
        return 0;
    }
    int c = efc_key_cmp_dir(le->key, p->key, p->keylen);
    if (c == 0)
        p->dir = true;
    if (c >= 0)
        p->past = true;
    return 0;
}

static int count_entry(void *arg, const struct oss_list_entry *le)
{
    (void)le;
    (*(unsigned *)arg)++;
    return 0;
}

/* Asks the store whether KEY is a directory (some key starts with "KEY/"), a file, or nothing.
   The directory wins, as in listings. */
static int probe_key(struct efc *e, const char *key, size_t keylen, bool *found, bool *is_dir,
                     struct efc_attr *attr)
{
    struct probe p = {.key = key, .keylen = keylen, .attr = attr, .t_ms = time_mono_ms()};
    struct oss_list l = {.prefix = key, .delimiter = "/", .max_keys = EFC_PROBE_KEYS};
    int rc;

    rc = oss_list_page(e->oss, &l, probe_entry, &p);
    if (rc)
        return rc;
    if (!p.dir && !p.past && l.token[0] != '\0' && keylen < OSS_MAX_KEY_LEN) {
        /* Names between "KEY" and "KEY/" filled the page: ask about "KEY/" itself. */
        char dkey[OSS_MAX_KEY_LEN + 2];
        unsigned n = 0;
        memcpy(dkey, key, keylen);
        dkey[keylen] = '/';
        dkey[keylen + 1] = '\0';
        struct oss_list l2 = {.prefix = dkey, .max_keys = 1};
        rc = oss_list_page(e->oss, &l2, count_entry, &n);
        if (rc)
            return rc;
        p.dir = n > 0;
    }
    *found = p.dir || p.file;
    *is_dir = p.dir;
    return 0;
}

static int list_page(void *arg, struct oss_list *l, oss_list_fn fn, void *fnarg);

/* Lookups that probed names of one directory (fs.c's probes_in). */
struct efc_probe_slot {
    uint64_t dir;      /* the directory's inode; 0: free */
    unsigned probes;   /* names probed since FIRST_MS */
    uint64_t first_ms; /* start of the window */
    bool busy;         /* a lookup is listing the directory; others wait on probe_cond */
    uint64_t listings; /* listings done for lookups (a waiter's wake-up) */
    bool given_up;     /* too big or failed: not listed again in this window */
};

enum probe_plan {
    PROBE_ONE,   /* probe the name */
    PROBE_LIST,  /* list the directory whole, then call probes_listed() */
    PROBE_WAITED /* another lookup listed it meanwhile: the listing cache may answer now */
};

/* A lookup is about to probe a name of directory DIR: PROBE_LIST when it should list DIR whole
   instead (the EFC_PROBE_LIST_AFTER-th probe within the window, no other lookup listing it).
   When another lookup is listing DIR, waits for it (at most EFC_PROBE_WAIT_MS) and returns
   PROBE_WAITED: a probe meanwhile would ask the store what the listing is about to say (the
   benchmark's 20,000-file epoch sent 400 to 600 such probes while its 20 pages came). */
static enum probe_plan probes_in(struct efc *e, uint64_t dir, uint64_t now)
{
    struct efc_probe_slot *ps = &e->probe_slots[dir % EFC_PROBE_SLOTS];
    enum probe_plan plan = PROBE_ONE;

    pthread_mutex_lock(&e->probe_lock);
    if (ps->busy && ps->dir != dir) {
        pthread_mutex_unlock(&e->probe_lock); /* the slot is another directory's for now */
        return PROBE_ONE;
    }
    if (ps->busy) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += EFC_PROBE_WAIT_MS / 1000;
        until.tv_nsec += (long)(EFC_PROBE_WAIT_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        uint64_t gen = ps->listings;
        while (ps->busy && ps->dir == dir && ps->listings == gen &&
               pthread_cond_timedwait(&e->probe_cond, &e->probe_lock, &until) == 0)
            ;
        pthread_mutex_unlock(&e->probe_lock);
        return PROBE_WAITED;
    }
    if (ps->dir != dir || now - ps->first_ms > EFC_PROBE_WINDOW_MS) {
        memset(ps, 0, sizeof(*ps));
        ps->dir = dir;
        ps->first_ms = now;
    }
    if (++ps->probes >= EFC_PROBE_LIST_AFTER && !ps->given_up) {
        ps->busy = true;
        plan = PROBE_LIST;
    }
    pthread_mutex_unlock(&e->probe_lock);
    return plan;
}

/* The listing of DIR that probes_in() asked for is done (OK: it is in the listing cache). */
static void probes_listed(struct efc *e, uint64_t dir, bool ok)
{
    struct efc_probe_slot *ps = &e->probe_slots[dir % EFC_PROBE_SLOTS];

    pthread_mutex_lock(&e->probe_lock);
    if (ps->dir == dir) {
        ps->busy = false;
        ps->given_up = !ok;
        ps->probes = 0;
        ps->listings++;
    }
    pthread_cond_broadcast(&e->probe_cond);
    pthread_mutex_unlock(&e->probe_lock);
}

/* Lists directory DKEY whole, if it has at most EFC_PROBE_LIST_MAX entries, into the listing
   cache: the listing (a new reference), or NULL. */
static struct efc_listing *list_for_lookups(struct efc *e, const char *dkey)
{
    struct efc_dir *d;
    struct efc_listing *l = NULL;

    if (efc_dir_new(dkey, list_page, e->oss, e->dirmem, &d) != 0)
        return NULL;
    if (efc_dir_seek(d, EFC_PROBE_LIST_MAX) == 0 && efc_dir_complete(d)) {
        l = efc_dir_listing(d);
        if (l)
            efc_lcache_put(e->lcache, dkey, l);
    }
    efc_dir_free(d);
    log_debug("lookups of names in '%s': %s", dkey,
              l ? "listed whole for them" : "too big or failed to list; probing on");
    return l;
}

static void reply_negative(fuse_req_t req, struct efc *e)
{
    if (opt_bool(&e->opts, OPT_METADATA_CACHEENABLE) && e->attr_timeout > 0) {
        struct fuse_entry_param ep;
        memset(&ep, 0, sizeof(ep));
        ep.entry_timeout = e->attr_timeout; /* ino 0: a negative entry the kernel may keep */
        fuse_reply_entry(req, &ep);
        return;
    }
    fuse_reply_err(req, ENOENT);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct efc *e = ctx(req);
    struct efc_node_info p;
    struct efc_attr a;
    size_t nl = strlen(name);
    bool found = false, is_dir = false, answered = false;
    int rc;

    count_op(e, EFC_FUSE_LOOKUP);
    if (parent == EFC_ROOT_INO && nl == sizeof(EFC_WATCHDOG_NAME) - 1 &&
        memcmp(name, EFC_WATCHDOG_NAME, nl) == 0) {
        /* The supervisor's liveness probe (supervise.c): answered at once, without the origin,
           and never cached by the kernel (an error reply leaves no timed entry). */
        fuse_reply_err(req, ENOENT);
        return;
    }
    kernel_readahead(e);
    if (nl > EFC_NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    if (!efc_name_visible(name, nl)) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    rc = efc_ns_get(e->ns, parent, &p);
    if (rc) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (!p.is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    /* The full key, with room for the '/' a directory's key ends in. */
    char key[OSS_MAX_KEY_LEN + 2];
    size_t keylen = p.keylen + nl;
    if (keylen > OSS_MAX_KEY_LEN) {
        fuse_reply_err(req, ENOENT); /* no object can have this key */
        return;
    }
    memcpy(key, p.key, p.keylen);
    memcpy(key + p.keylen, name, nl + 1);
    memset(&a, 0, sizeof(a));

    uint64_t now = time_mono_ms();
    struct efc_meta_ent me;
    bool from_meta = false;
    if (e->meta && efc_meta_get(e->meta, key, keylen, &me)) {
        /* The metadata cache answers until it is cleared, negatively too. */
        found = me.present;
        is_dir = me.is_dir;
        if (found)
            attr_from_ment(&a, &me, now);
        answered = from_meta = true;
    }
    if (!answered && e->listing_ttl_ms > 0) {
        struct efc_listing *l = efc_lcache_get(e->lcache, p.key, e->listing_ttl_ms, now);
        enum probe_plan plan = l ? PROBE_ONE : probes_in(e, parent, now);
        if (plan == PROBE_LIST) {
            /* Many names of this directory asked one by one: one listing answers them all. */
            l = list_for_lookups(e, p.key);
            probes_listed(e, parent, l != NULL);
        } else if (plan == PROBE_WAITED) {
            l = efc_lcache_get(e->lcache, p.key, e->listing_ttl_ms, time_mono_ms());
        }
        if (l) {
            const struct efc_dirent *d = efc_listing_find(l, name, nl);
            if (d) {
                found = answered = true;
                is_dir = d->is_dir;
                attr_from_dirent(&a, d, efc_listing_time(l));
            } else if (e->meta) {
                /* A name the listing lacks is absent; only the metadata cache may say so
                   without asking the store (negative lookups are cached only with it). */
                answered = true;
            }
            efc_listing_unref(l);
        }
    }
    if (!answered) {
        rc = probe_key(e, key, keylen, &found, &is_dir, &a);
        if (rc) {
            log_warn("lookup of '%s' failed: %s", key, oss_last_error());
            fuse_reply_err(req, reply_errno(rc));
            return;
        }
    }
    if (!from_meta)
        meta_remember(e, key, keylen, found, is_dir, &a, false);
    if (!found) {
        reply_negative(req, e);
        return;
    }
    if (is_dir) {
        if (keylen + 1 > OSS_MAX_KEY_LEN) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        key[keylen++] = '/';
        key[keylen] = '\0';
        memset(&a, 0, sizeof(a));
        a.fetched_ms = time_mono_ms();
    }

    struct fuse_entry_param ep;
    uint64_t ino;
    memset(&ep, 0, sizeof(ep));
    rc = efc_ns_add(e->ns, parent, name, nl, key, is_dir, &a, &ino, &a);
    if (rc) {
        fuse_reply_err(req, reply_errno(rc));
        return;
    }
    ep.ino = ino;
    ep.generation = 0; /* inode numbers are never reused */
    ep.attr_timeout = e->found_timeout;
    ep.entry_timeout = e->found_timeout;
    fill_stat(e, ino, is_dir, &a, &ep.attr);
    log_trace("lookup '%s' -> %llu (%s)", key, (unsigned long long)ino, is_dir ? "dir" : "file");
    if (fuse_reply_entry(req, &ep) != 0)
        efc_ns_forget(e->ns, ino, 1); /* the kernel never got it */
}

static void forget_one(struct efc *e, fuse_ino_t ino, uint64_t n)
{
    efc_ns_forget(e->ns, ino, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    count_op(ctx(req), EFC_FUSE_FORGET);
    forget_one(ctx(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct efc *e = ctx(req);
    atomic_fetch_add_explicit(&e->fuse_ops[EFC_FUSE_FORGET], count, memory_order_relaxed);
    for (size_t i = 0; i < count; i++)
        forget_one(e, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* ---- attributes ---------------------------------------------------------------------------- */

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct efc *e = ctx(req);
    struct efc_node_info n;
    struct stat st;
    int rc;

    (void)fi;
    count_op(e, EFC_FUSE_GETATTR);
    kernel_readahead(e);
    rc = efc_ns_get(e->ns, ino, &n);
    if (rc) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    uint64_t now = time_mono_ms();
    if (!n.is_dir && (n.attr.fetched_ms == 0 || now - n.attr.fetched_ms >= e->attr_ttl_ms) &&
        meta_file(e, n.key, &n.attr, now)) {
        efc_ns_set_attr(e->ns, ino, &n.attr);
    } else if (!n.is_dir && (n.attr.fetched_ms == 0 || now - n.attr.fetched_ms >= e->attr_ttl_ms)) {
        struct oss_object_meta m;
        rc = oss_head(e->oss, n.key, &m);
        if (rc) {
            if (rc != -ENOENT)
                log_warn("getattr of '%s' failed: %s", n.key, oss_last_error());
            fuse_reply_err(req, reply_errno(rc));
            return;
        }
        attr_from_meta(&n.attr, &m, now);
        efc_ns_set_attr(e->ns, ino, &n.attr);
        meta_remember(e, n.key, n.keylen, true, false, &n.attr, true);
    }
    fill_stat(e, ino, n.is_dir, &n.attr, &st);
    fuse_reply_attr(req, &st, e->found_timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    (void)ino;
    (void)attr;
    (void)fi;
    /* Ownership and modes are fixed (root, 0444/0555): refusing is a permission matter. Any
       other change (size, times) would write. */
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        fuse_reply_err(req, EPERM);
    else
        fuse_reply_err(req, EROFS);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    (void)ino;
    fuse_reply_err(req, (mask & W_OK) ? EROFS : 0);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    fuse_reply_err(req, EINVAL); /* there are no symbolic links */
}

/* ---- everything that would write ----------------------------------------------------------- */

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    fuse_reply_err(req, EROFS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
                               struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
                               struct fuse_file_info *fi_out, size_t len, int flags)
{
    fuse_reply_err(req, EROFS);
}

/* Objects have no extended attributes. ENOSYS (not ENODATA) makes the kernel remember and stop
   asking for every file `ls -l` shows; applications see ENOTSUP. */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    fuse_reply_err(req, ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    fuse_reply_err(req, ENOSYS);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    fuse_reply_err(req, EROFS);
}

/* ---- files --------------------------------------------------------------------------------- */

/* Whether the cache holds the first bytes of the version N's attributes name (an object of no
   bytes has none to hold: its ETag alone is the question). */
static bool holds_first(struct efc *e, const struct efc_node_info *n)
{
    uint8_t b;
    if (n->attr.size == 0)
        return true;
    return e->cache &&
           cache_read_local(e->cache, n->key, n->attr.etag, n->attr.size, 0, 1, &b) == 1;
}

/* Where the first-block GET of open puts its bytes: a buffer allocated at the first byte (a 304
   brings none), of the size the object is believed to have (HINT), grown as more arrive up to
   MAX (the block). A small object's open does not allocate and fault in a whole block to keep a
   few KiB of it. */
struct first_buf {
    char *data;
    size_t cap, len, max, hint;
};

#define EFC_FIRST_BUF_MIN (16u << 10)

static int first_buf_sink(void *arg, uint64_t off, const void *data, size_t len)
{
    struct first_buf *b = arg;
    if (off > b->max || len > b->max - off)
        return -EOVERFLOW; /* oss_get never delivers past the range asked for */
    size_t need = (size_t)off + len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : b->hint > EFC_FIRST_BUF_MIN ? b->hint : EFC_FIRST_BUF_MIN;
        if (cap > b->max)
            cap = b->max;
        while (cap < need)
            cap = cap > b->max / 2 ? b->max : cap * 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + off, data, len);
    if (need > b->len)
        b->len = need;
    return 0;
}

/* open's question to the store about file N, in one request (close-to-open), into *A:
 * - N's attributes name an archived object (a listing cannot say whether it was restored):
 *   HEAD, which tells;
 * - the first block of the version N knows is not held and is all of a small object's bytes (or
 *   N knows no ETag): a GET of the first block, whose answer is both the object's metadata and
 *   those bytes;
 * - else a GET of the first block with If-None-Match on the known ETag: 304 says N's attributes
 *   (and every block the cache holds of that version) are current; an object that changed
 *   answers with its new version's first block instead.
 * A first block that came goes to the first-block layer (first_i.h), with the cache's prefetch
 * of it: the read that follows finds it there. Without that layer (a cluster node: its blocks
 * come through the P2P layer, which owns them) no byte would be kept, so the GET asks for one
 * byte only, conditional when the ETag is known: the answer's headers are the metadata.
 * Returns 0 or -errno (-ENOENT: no such object). */
static int ask_store(struct efc *e, const struct efc_node_info *n, struct efc_attr *a, uint64_t t)
{
    struct oss_object_meta m;
    struct oss_get_result res;
    int rc;

    memset(&res, 0, sizeof(res));
    if (!oss_storage_class_readable(n->attr.sc) || e->origin == NULL) {
        rc = oss_head(e->oss, n->key, &m);
        if (rc == 0)
            attr_from_meta(a, &m, t);
        return rc;
    }
    const char *inm = n->attr.etag[0] ? n->attr.etag : NULL;
    if (e->first == NULL) {
        uint8_t one;
        rc = efc_origin_get_first(e->origin, n->key, inm, &one, 1, &res);
        if (rc == 0 && res.not_modified) {
            *a = n->attr;
            a->fetched_ms = t;
        } else if (rc == 0) {
            attr_from_meta(a, &res.meta, t);
        }
        return rc;
    }
    uint32_t bs = efc_origin_src(e->origin)->block_size;
    bool cond = inm && (n->attr.size > bs || holds_first(e, n));
    struct first_buf b = {.max = bs, .hint = n->attr.size < bs ? (size_t)n->attr.size : bs};
    rc = efc_origin_get_first_sink(e->origin, n->key, cond ? inm : NULL, bs, first_buf_sink, &b,
                                   &res);
    if (rc == 0 && res.not_modified) {
        *a = n->attr;
        a->fetched_ms = t;
    } else if (rc == 0) {
        attr_from_meta(a, &res.meta, t);
    }
    uint64_t whole = res.meta.size < bs ? res.meta.size : bs;
    if (rc == 0 && !res.not_modified && whole > 0 && res.bytes == whole && b.len == whole) {
        if (whole < b.cap / 2) {
            void *small = realloc(b.data, (size_t)whole); /* give the rest back */
            b.data = small ? small : b.data;
        }
        if (efc_first_put(e->first, n->key, a->etag, a->size, b.data, (size_t)whole) == 0 &&
            e->cache)
            cache_prefetch(e->cache, n->key, a->etag, a->size, 0, whole, 0);
        b.data = NULL; /* efc_first_put owns it */
    }
    free(b.data);
    return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct efc *e = ctx(req);
    struct efc_node_info n;
    struct efc_attr a;
    bool same = false, changed = false;
    int rc;

    count_op(e, EFC_FUSE_OPEN);
    kernel_readahead(e);
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
        fuse_reply_err(req, EROFS);
        return;
    }
    rc = efc_ns_get(e->ns, ino, &n);
    if (rc) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (n.is_dir) {
        fuse_reply_err(req, EISDIR);
        return;
    }
    /* Close-to-open: whatever the kernel, a lookup or the listing said, ask the store now
       (ask_store); with the metadata cache on, it answers instead until cleared (the seed's
       consistency table). No lookup's answer is taken instead, however recent: FUSE does not
       say which lookup an open follows, and one made for a stat(2) just before the object
       changed would serve the old version to the open after the change. */
    uint64_t t = time_mono_ms();
    if (!meta_file(e, n.key, &a, t)) {
        rc = ask_store(e, &n, &a, t);
        if (rc) {
            if (rc != -ENOENT && rc != -EACCES)
                log_warn("open of '%s' failed: %s", n.key, oss_last_error());
            else if (rc == -ENOENT)
                meta_remember(e, n.key, n.keylen, false, false, NULL, true);
            fuse_reply_err(req, reply_errno(rc));
            return;
        }
        meta_remember(e, n.key, n.keylen, true, false, &a, true);
    }
    if (!oss_storage_class_readable(a.sc) && !a.restored) {
        log_debug("open of '%s' refused: an archived object that is not restored", n.key);
        fuse_reply_err(req, EACCES);
        return;
    }
    rc = efc_ns_opened(e->ns, ino, &a, &same, &changed);
    if (rc) {
        fuse_reply_err(req, reply_errno(rc));
        return;
    }
    if (changed) {
        stale_older(e, ino, (uint64_t)opt_int(&e->opts, OPT_OSS_RETRYBUDGETMS) + 5000);
        /* The kernel may hold the old size: drop its attributes (not its pages: without
           keep_cache the open itself drops them). Attributes only, so no lock is at stake. */
        int nrc = fuse_lowlevel_notify_inval_inode(e->se, ino, -1, 0);
        if (nrc && nrc != -ENOENT)
            log_debug("cannot invalidate the attributes of inode %llu: %s", (unsigned long long)ino,
                      strerror(-nrc));
    }

    struct efc_fh *fh = calloc(1, sizeof(*fh));
    if (fh == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    atomic_init(&fh->refs, 1);
    fh->ino = ino;
    fh->size = a.size;
    fh->keylen = n.keylen;
    fh->key = strdup(n.key);
    fh->etag = strdup(a.etag);
    rc = fh->key && fh->etag ? efc_reader_open(e->readers, n.key, a.etag, a.size, &fh->reader)
                             : -ENOMEM;
    if (rc == 0)
        rc = fh_link(e, fh);
    if (rc) {
        fh_free(fh);
        fuse_reply_err(req, reply_errno(rc));
        return;
    }
    fi->fh = fh->num;
    fi->keep_cache = same;
    /* No FOPEN_DIRECT_IO for an O_DIRECT open: the kernel then reads it through its own O_DIRECT
       path, as for any file system (the null FUSE ceiling of bench/ does the same), with the
       async direct I/O asked for at INIT (FUSE_CAP_ASYNC_DIO), and a read past the kernel's
       cached size refreshes that size first, as a buffered read does; every read still reaches
       the daemon. FOPEN_DIRECT_IO would put such reads on FUSE's synchronous
       request path and refuse a MAP_SHARED mmap of the descriptor (ENODEV). */
    fi->noflush = 1;
    log_trace("open '%s' etag %s size %llu keep_cache %d", n.key, a.etag,
              (unsigned long long)a.size, (int)same);
    if (fuse_reply_open(req, fi) != 0) {
        fh_unlink(e, fh);
        fh_free(fh);
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct efc *e = ctx(req);
    struct efc_fh *fh = fh_of(e, fi->fh);
    uint64_t o = (uint64_t)off;
    uint64_t t0 = mono_us();

    (void)ino;
    count_op(e, EFC_FUSE_READ);
    if (fh == NULL || fh->is_dir) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (o >= fh->size || size == 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (size > fh->size - o)
        size = (size_t)(fh->size - o);
    if (size > EFC_MAX_READ)
        size = EFC_MAX_READ;
    /* The kernel sends no release while this read is unanswered, so the open's reference still
       holds here: the early puts below never free. */
    atomic_fetch_add(&fh->refs, 1);
    if (atomic_load(&fh->stale)) {
        fh_put(fh);
        fuse_reply_err(req, ESTALE);
        return;
    }
    /* A memory-tier hit is sent straight from the cache's pinned block (no copy); the pin is
       released once the reply is written. NO_SPLICE: splicing memory would copy it again. */
    struct efc_read_ref rr;
    ssize_t n = efc_reader_read_ref(fh->reader, o, size, &rr);
    if (n < 0) {
        log_warn("read of inode %llu at %llu (%zu bytes) failed: %s", (unsigned long long)ino,
                 (unsigned long long)o, size, strerror((int)-n));
        fuse_reply_err(req, reply_errno((int)n));
        if (n == -ESTALE)
            meta_forget_ino(e, fh->ino); /* the next open asks the store */
    } else if (n == 0) {
        fuse_reply_buf(req, NULL, 0);
    } else {
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT((size_t)n);
        bv.buf[0].mem = (void *)rr.data;
        fuse_reply_data(req, &bv, FUSE_BUF_NO_SPLICE);
    }
    efc_reader_ref_put(fh->reader, &rr);
    fh_put(fh); /* after the reply: the bytes are in the page cache by now */
    histo_observe(&e->read_latency, mono_us() - t0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct efc *e = ctx(req);
    struct efc_fh *fh = fh_of(e, fi->fh);

    (void)ino;
    count_op(e, EFC_FUSE_RELEASE);
    if (fh) {
        fh_unlink(e, fh);
        fh_put(fh);
    }
    fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    count_op(ctx(req), EFC_FUSE_FLUSH);
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);
}

/* ---- directories --------------------------------------------------------------------------- */

static int list_page(void *arg, struct oss_list *l, oss_list_fn fn, void *fnarg)
{
    int rc = oss_list_page(arg, l, fn, fnarg);
    if (rc)
        log_warn("listing of '%s' failed: %s", l->prefix, oss_last_error());
    return rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct efc *e = ctx(req);
    struct efc_node_info n;
    int rc;

    count_op(e, EFC_FUSE_OPENDIR);
    kernel_readahead(e);
    rc = efc_ns_get(e->ns, ino, &n);
    if (rc) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    if (!n.is_dir) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    struct efc_fh *fh = calloc(1, sizeof(*fh));
    if (fh == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    atomic_init(&fh->refs, 1);
    fh->is_dir = true;
    fh->ino = ino;
    fh->parent = n.parent;
    fh->keylen = n.keylen;
    fh->key = strdup(n.key);
    pthread_mutex_init(&fh->lock, NULL);
    struct efc_listing *cached = NULL;
    if (fh->key && e->readdir_ttl_ms > 0)
        cached = efc_lcache_get(e->lcache, n.key, e->readdir_ttl_ms, time_mono_ms());
    if (cached) {
        /* The readdir cache: the listing replays without a request until it expires or is
           cleared (g_readdircache_RemainTime, /v1/action/clear_readdir_cache). */
        rc = efc_dir_from_listing(n.key, cached, list_page, e->oss, e->dirmem, &fh->dir);
        fh->published = true;
        efc_listing_unref(cached);
    } else {
        rc = fh->key ? efc_dir_new(n.key, list_page, e->oss, e->dirmem, &fh->dir) : -ENOMEM;
    }
    if (rc == 0)
        rc = fh_link(e, fh);
    if (rc) {
        fh_free(fh);
        fuse_reply_err(req, reply_errno(rc));
        return;
    }
    fi->fh = fh->num;
    if (fuse_reply_open(req, fi) != 0) {
        fh_unlink(e, fh);
        fh_free(fh);
    }
}

/* d_ino for plain readdir: the entry's inode if it has one, else a number no inode can have
   (they stay below 2^63) and never 0, which readdir(3) would skip. */
static uint64_t plain_ino(struct efc *e, uint64_t parent, const struct efc_dirent *d)
{
    uint64_t ino = efc_ns_find(e->ns, parent, d->name, d->namelen);
    if (ino)
        return ino;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < d->namelen; i++) {
        h ^= (unsigned char)d->name[i];
        h *= 1099511628211ull;
    }
    return h | (1ull << 63);
}

static void publish_listing(struct efc *e, struct efc_fh *fh)
{
    if (fh->published || e->listing_ttl_ms == 0 || !efc_dir_complete(fh->dir))
        return;
    fh->published = true;
    struct efc_listing *l = efc_dir_listing(fh->dir);
    if (l) {
        efc_lcache_put(e->lcache, fh->key, l);
        efc_listing_unref(l);
    }
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
    struct efc *e = ctx(req);
    struct efc_fh *fh = fh_of(e, fi->fh);
    uint64_t *added = NULL;
    size_t nadded = 0, pos = 0;
    bool real = false; /* an entry of the stream (not "." or "..") is in the reply */

    count_op(e, EFC_FUSE_READDIR);
    int err = 0;

    if (fh == NULL || !fh->is_dir) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (size > EFC_READDIR_BUF_MAX)
        size = EFC_READDIR_BUF_MAX;
    char *buf = malloc(size ? size : 1);
    /* A readdirplus entry takes well over 64 bytes, so this bounds the entries of one reply. */
    if (buf == NULL || (plus && (added = malloc((size / 64 + 2) * sizeof(*added))) == NULL)) {
        free(buf);
        fuse_reply_err(req, ENOMEM);
        return;
    }

    pthread_mutex_lock(&fh->lock);
    for (uint64_t i = (uint64_t)off;; i++) {
        const struct efc_dirent *d = NULL;
        const char *name;
        struct fuse_entry_param ep;
        size_t need;

        memset(&ep, 0, sizeof(ep));
        if (i < 2) {
            name = i == 0 ? "." : "..";
            ep.attr.st_ino = i == 0 ? fh->ino : fh->parent;
            ep.attr.st_mode = S_IFDIR | 0555;
            /* ep.ino stays 0: the kernel takes no reference for "." and "..". */
        } else {
            d = efc_dir_get(fh->dir, i - 2);
            if (d == NULL) {
                /* Fetch only when the reply would otherwise say nothing new; else answer now
                   and let the kernel come back for more. */
                if (real)
                    break;
                int rc = efc_dir_seek(fh->dir, i - 2);
                if (rc < 0) {
                    err = reply_errno(rc);
                    break;
                }
                if (rc == 0)
                    break; /* the end */
                d = efc_dir_get(fh->dir, i - 2);
            }
            name = d->name;
        }
        need = plus ? fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0)
                    : fuse_add_direntry(req, NULL, 0, name, NULL, 0);
        if (pos + need > size)
            break;
        if (d && plus) {
            char key[OSS_MAX_KEY_LEN + 2];
            size_t keylen = fh->keylen + d->namelen + (d->is_dir ? 1 : 0);
            struct efc_attr a;
            attr_from_dirent(&a, d, efc_dir_entry_time(fh->dir, i - 2));
            if (keylen <= OSS_MAX_KEY_LEN) {
                uint64_t ino;
                memcpy(key, fh->key, fh->keylen);
                memcpy(key + fh->keylen, d->name, d->namelen);
                if (d->is_dir)
                    key[keylen - 1] = '/';
                key[keylen] = '\0';
                int arc =
                    efc_ns_add(e->ns, fh->ino, d->name, d->namelen, key, d->is_dir, &a, &ino, &a);
                if (arc == 0) {
                    ep.ino = ino;
                    added[nadded++] = ino;
                }
            }
            fill_stat(e, ep.ino, d->is_dir, &a, &ep.attr);
            if (ep.ino == 0)
                ep.attr.st_ino = plain_ino(e, fh->ino, d);
            ep.attr_timeout = e->attr_timeout;
            ep.entry_timeout = e->attr_timeout;
        } else if (d) {
            ep.attr.st_ino = plain_ino(e, fh->ino, d);
            ep.attr.st_mode = d->is_dir ? S_IFDIR : S_IFREG;
        }
        pos += plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, name, &ep, (off_t)(i + 1))
                    : fuse_add_direntry(req, buf + pos, size - pos, name, &ep.attr, (off_t)(i + 1));
        if (d)
            real = true;
    }
    publish_listing(e, fh);
    pthread_mutex_unlock(&fh->lock);

    if (err && !real) {
        fuse_reply_err(req, err);
        for (size_t k = 0; k < nadded; k++)
            efc_ns_forget(e->ns, added[k], 1);
    } else if (fuse_reply_buf(req, buf, pos) != 0) {
        /* The kernel did not take the entries: it holds no reference to them. */
        for (size_t k = 0; k < nadded; k++)
            efc_ns_forget(e->ns, added[k], 1);
    }
    free(added);
    free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, size, off, fi, true);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    fuse_reply_err(req, 0);
}

/* ---- statfs -------------------------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct efc *e = ctx(req);
    struct statvfs sv;
    bool fetch = false, valid;
    struct oss_bucket_stat bs;

    (void)ino;
    kernel_readahead(e);
    pthread_mutex_lock(&e->statfs_lock);
    uint64_t now = time_mono_ms();
    if (!e->statfs_busy && !e->statfs_unsupported &&
        (e->statfs_ms == 0 || now - e->statfs_ms >= EFC_STATFS_TTL_MS)) {
        e->statfs_busy = true;
        fetch = true;
    }
    pthread_mutex_unlock(&e->statfs_lock);

    if (fetch) {
        int rc = oss_bucket_stat(e->oss, &bs);
        if (rc && rc != -ENOTSUP)
            log_warn("GetBucketStat failed (df shows %s): %s",
                     e->statfs_valid ? "the last answer" : "a fixed size", oss_last_error());
        pthread_mutex_lock(&e->statfs_lock);
        e->statfs_busy = false;
        e->statfs_ms = time_mono_ms();
        if (rc == 0) {
            e->statfs = bs;
            e->statfs_valid = true;
        } else if (rc == -ENOTSUP) {
            e->statfs_unsupported = true;
        }
        pthread_mutex_unlock(&e->statfs_lock);
    }

    pthread_mutex_lock(&e->statfs_lock);
    valid = e->statfs_valid;
    bs = e->statfs;
    pthread_mutex_unlock(&e->statfs_lock);

    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = EFC_BLOCK;
    sv.f_frsize = EFC_BLOCK;
    sv.f_namemax = EFC_NAME_MAX;
    if (valid) {
        /* A read-only bucket: its size is what it holds, nothing is free (as ISO 9660 or
           squashfs). Never zero blocks, or df hides the mount as a pseudo file system. */
        uint64_t blocks = (bs.storage + EFC_BLOCK - 1) / EFC_BLOCK;
        sv.f_blocks = blocks ? blocks : 1;
        sv.f_files = bs.object_count ? bs.object_count : 1;
    } else {
        sv.f_blocks = sv.f_bfree = sv.f_bavail = EFC_STATFS_UNKNOWN_BLOCKS;
        sv.f_files = sv.f_ffree = sv.f_favail = EFC_STATFS_UNKNOWN_FILES;
    }
    fuse_reply_statfs(req, &sv);
}

/* ---- the table ----------------------------------------------------------------------------- */

static const struct fuse_lowlevel_ops efc_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_release,
    .fsyncdir = op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .access = op_access,
    .create = op_create,
    .fallocate = op_fallocate,
    .copy_file_range = op_copy_file_range,
};

const struct fuse_lowlevel_ops *efc_fs_ops(void)
{
    return &efc_ops;
}

/* ---- taking back what the kernel holds ------------------------------------------------------ */

/* A node the kernel may hold a name or attributes of, copied out of the inode table so that the
   kernel is told with no table lock held (a notification waits for the directory's lock, which a
   lookup in flight holds while it waits for a table lock). */
struct kernel_name {
    uint64_t ino, parent;
    bool named;
    size_t namelen; /* its name: the next NAMELEN bytes of the list's NAMES */
};

struct kernel_names {
    struct kernel_name *v;
    size_t n, cap;
    char *names;
    size_t names_len, names_cap;
};

static int kernel_name_cb(void *arg, const struct efc_ns_record *r)
{
    struct kernel_names *l = arg;
    if (r->ino == EFC_ROOT_INO)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct kernel_name *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    size_t namelen = r->named ? r->namelen : 0;
    if (namelen > l->names_cap - l->names_len) {
        size_t cap = l->names_cap ? l->names_cap : 64u << 10;
        while (namelen > cap - l->names_len)
            cap *= 2;
        char *names = realloc(l->names, cap);
        if (names == NULL)
            return -ENOMEM;
        l->names = names;
        l->names_cap = cap;
    }
    /* The name is the key's tail, before a directory's '/'. */
    const char *name = r->key + r->keylen - r->namelen - (r->is_dir ? 1 : 0);
    memcpy(l->names + l->names_len, name, namelen);
    l->v[l->n++] = (struct kernel_name){
        .ino = r->ino, .parent = r->parent, .named = r->named, .namelen = namelen};
    l->names_len += namelen;
    return 0;
}

int efc_fs_forget_kernel(struct efc *e)
{
    struct kernel_names l = {0};
    uint64_t next_seq;
    int rc;

    if (e->se == NULL)
        return 0;
    rc = efc_ns_export(e->ns, kernel_name_cb, &l, &next_seq);
    if (rc == 0) {
        size_t off = 0;
        for (size_t i = 0; i < l.n; i++) {
            struct kernel_name *k = &l.v[i];
            /* Attributes first, then the name: the next path walk looks the name up again and
               an open descriptor's fstat asks for the attributes. -ENOENT: the kernel no longer
               has it. */
            int nrc = fuse_lowlevel_notify_inval_inode(e->se, k->ino, -1, 0);
            if (nrc == 0 && k->named)
                nrc = fuse_lowlevel_notify_inval_entry(e->se, k->parent, l.names + off, k->namelen);
            if (nrc && nrc != -ENOENT)
                log_debug("cannot take back inode %llu from the kernel: %s",
                          (unsigned long long)k->ino, strerror(-nrc));
            off += k->namelen;
        }
        rc = l.n > INT32_MAX ? INT32_MAX : (int)l.n;
    }
    free(l.v);
    free(l.names);
    return rc;
}

/* ---- set-up and teardown ------------------------------------------------------------------- */

int efc_fs_setup(struct efc *e)
{
    int64_t at = opt_int(&e->opts, OPT_FUSE_ATTRTIMEOUTSEC);
    int rc;

    e->attr_timeout = (double)at;
    e->found_timeout = e->attr_timeout;
    if (opt_bool(&e->opts, OPT_METADATA_CACHEENABLE) && e->found_timeout < EFC_META_KERNEL_S)
        e->found_timeout = EFC_META_KERNEL_S;
    e->attr_ttl_ms = (uint64_t)at * 1000;
    /* The readdir cache replays a directory's listing for RemainTime; the same listings answer
       lookups of the names they hold for as long (or for the attribute timeout without it). */
    e->readdir_ttl_ms = 0;
    if (opt_bool(&e->opts, OPT_READDIRCACHE_ENABLE))
        e->readdir_ttl_ms = (uint64_t)opt_int(&e->opts, OPT_READDIRCACHE_REMAINTIME) * 1000;
    e->listing_ttl_ms = e->readdir_ttl_ms > e->attr_ttl_ms ? e->readdir_ttl_ms : e->attr_ttl_ms;
    pthread_mutex_init(&e->statfs_lock, NULL);
    pthread_mutex_init(&e->fh_lock, NULL);
    pthread_mutex_init(&e->probe_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->probe_cond, &ca);
    pthread_condattr_destroy(&ca);
    e->fh_table = calloc(1, sizeof(*e->fh_table));
    e->probe_slots = calloc(EFC_PROBE_SLOTS, sizeof(*e->probe_slots));
    if (e->fh_table == NULL || e->probe_slots == NULL)
        return -ENOMEM;

    e->dirmem = calloc(1, sizeof(*e->dirmem));
    if (e->dirmem == NULL)
        return -ENOMEM;
    atomic_init(&e->dirmem->bytes, 0);
    uint64_t max_count = (uint64_t)opt_int(&e->opts, OPT_READDIRCACHE_MAXCOUNT);
    uint64_t max_size = (uint64_t)opt_int(&e->opts, OPT_READDIRCACHE_MAXSIZE);
    if (e->readdir_ttl_ms == 0) {
        /* Without the readdir cache, listings serve lookups for the attribute timeout only. */
        max_count = EFC_LCACHE_DIRS;
        max_size = EFC_DIRMEM_LIMIT / 4;
    }
    /* Open directory streams have EFC_DIRMEM_LIMIT besides what the readdir cache may hold. */
    e->dirmem->limit = EFC_DIRMEM_LIMIT + 2 * max_size;
    rc = efc_lcache_new(max_count > UINT_MAX ? UINT_MAX : (unsigned)max_count, max_size, e->dirmem,
                        &e->lcache);
    if (rc)
        return rc;
    if (opt_bool(&e->opts, OPT_METADATA_CACHEENABLE)) {
        rc = efc_meta_new(EFC_META_BYTES, &e->meta);
        if (rc)
            return rc;
    }
    rc = efc_ns_new(e->remote.prefix, &e->ns);
    if (rc)
        return rc;
    return 0;
}

int efc_fs_start(struct efc *e, char *err, size_t errlen)
{
    struct efc_read_config rc;
    uint64_t ahead = (uint64_t)opt_int(&e->opts, OPT_READ_AHEADKB) * 1024;
    int64_t conns = opt_int(&e->opts, OPT_OSS_MAXCONNECTIONS);

    int crc = efc_chain_start(e, err, errlen);
    if (crc)
        return crc;
    memset(&rc, 0, sizeof(rc));
    rc.cache = e->cache;
    rc.ahead_bytes = ahead;
    rc.max_inflight = (unsigned)opt_int(&e->opts, OPT_READ_MAXINFLIGHT);
    /* One worker per connection at most: more could only wait for a connection. */
    rc.threads = (unsigned)(conns < 256 ? conns : 256);
    rc.mem_limit = EFC_READ_MEM_LIMIT > 2 * ahead ? EFC_READ_MEM_LIMIT : 2 * ahead;
    int prc = efc_reader_pool_new(e->top, &rc, &e->readers);
    if (prc)
        snprintf(err, errlen, "cannot start the read path: %s", strerror(-prc));
    return prc;
}

void efc_fs_teardown(struct efc *e)
{
    /* Handles the kernel never released (a lazy unmount with files still open). */
    for (;;) {
        pthread_mutex_lock(&e->fh_lock);
        struct efc_fh *fh = e->fh_list;
        if (fh)
            e->fh_list = fh->next;
        pthread_mutex_unlock(&e->fh_lock);
        if (fh == NULL)
            break;
        fh_free(fh);
    }
    if (e->fh_table) {
        for (size_t i = 0; i < FH_MAX_CHUNKS; i++)
            free(atomic_load(&e->fh_table->chunk[i]));
        free(e->fh_table->free);
        free(e->fh_table);
        e->fh_table = NULL;
    }
    efc_reader_pool_free(e->readers);
    e->readers = NULL;
    efc_chain_stop(e); /* after the pool: no reader uses it any more */
    efc_lcache_free(e->lcache);
    e->lcache = NULL;
    efc_meta_free(e->meta);
    e->meta = NULL;
    if (e->ns) {
        struct efc_ns_stats st;
        efc_ns_get_stats(e->ns, &st);
        log_info("namespace: %llu inodes handed out, %llu forgotten, %llu held at exit",
                 (unsigned long long)st.created, (unsigned long long)st.freed,
                 (unsigned long long)st.nodes);
    }
    efc_ns_free(e->ns);
    e->ns = NULL;
    if (e->dirmem && atomic_load(&e->dirmem->bytes) != 0)
        log_debug("directory memory still charged at exit: %llu bytes",
                  (unsigned long long)atomic_load(&e->dirmem->bytes));
    free(e->dirmem);
    e->dirmem = NULL;
    free(e->probe_slots);
    e->probe_slots = NULL;
    pthread_mutex_destroy(&e->statfs_lock);
    pthread_mutex_destroy(&e->fh_lock);
    pthread_mutex_destroy(&e->probe_lock);
    pthread_cond_destroy(&e->probe_cond);
}

/* ---- runtime update (handover.c): handles out and in, read path off and on ----------------- */

int efc_fs_export_handles(struct efc *e, int (*fn)(void *arg, const struct efc_fh_record *r),
                          void *arg)
{
    int rc = 0;

    pthread_mutex_lock(&e->fh_lock);
    for (struct efc_fh *fh = e->fh_list; fh && rc == 0; fh = fh->next) {
        struct efc_fh_record r = {
            .num = fh->num,
            .ino = fh->ino,
            .parent = fh->parent,
            .size = fh->size,
            .is_dir = fh->is_dir,
            .stale = !fh->is_dir && atomic_load(&fh->stale),
            .key = fh->key ? fh->key : "",
            .etag = fh->etag ? fh->etag : "",
        };
        if (fh->num)
            rc = fn(arg, &r);
    }
    pthread_mutex_unlock(&e->fh_lock);
    return rc;
}

int efc_fs_import_handle(struct efc *e, const struct efc_fh_record *r)
{
    struct efc_fh_table *t = e->fh_table;
    uint32_t slot = (uint32_t)r->num, gen = (uint32_t)(r->num >> 32);
    int rc;

    if (gen == 0 || (slot >> FH_CHUNK_BITS) >= FH_MAX_CHUNKS || r->key == NULL)
        return -EINVAL;
    struct efc_fh *fh = calloc(1, sizeof(*fh));
    if (fh == NULL)
        return -ENOMEM;
    atomic_init(&fh->refs, 1);
    fh->ino = r->ino;
    fh->is_dir = r->is_dir;
    fh->parent = r->parent;
    fh->size = r->size;
    fh->keylen = strlen(r->key);
    fh->key = strdup(r->key);
    if (fh->is_dir) {
        /* A fresh listing: readdir offsets are entry numbers, and a replayed listing numbers
           its entries the same way unless the directory changed meanwhile. */
        pthread_mutex_init(&fh->lock, NULL);
        rc = fh->key ? efc_dir_new(fh->key, list_page, e->oss, e->dirmem, &fh->dir) : -ENOMEM;
    } else {
        fh->etag = strdup(r->etag ? r->etag : "");
        atomic_init(&fh->stale, r->stale);
        rc = fh->key && fh->etag
                 ? efc_reader_open(e->readers, fh->key, fh->etag, fh->size, &fh->reader)
                 : -ENOMEM;
    }
    if (rc) {
        fh_free(fh);
        return rc;
    }
    pthread_mutex_lock(&e->fh_lock);
    struct fh_chunk *c = fh_chunk_get(t, slot);
    if (c == NULL || atomic_load(&c->slot[slot & (FH_CHUNK - 1)]) != NULL) {
        pthread_mutex_unlock(&e->fh_lock);
        fh_free(fh);
        return c ? -EINVAL : -ENOMEM;
    }
    fh_place(e, fh, c, slot, gen);
    if (slot >= t->next)
        t->next = slot + 1;
    pthread_mutex_unlock(&e->fh_lock);
    return 0;
}

void efc_fs_import_done(struct efc *e)
{
    struct efc_fh_table *t = e->fh_table;

    pthread_mutex_lock(&e->fh_lock);
    t->nfree = 0;
    for (uint32_t s = t->next; s-- > 0;) {
        struct fh_chunk *c = fh_chunk_get(t, s);
        if (c == NULL || atomic_load(&c->slot[s & (FH_CHUNK - 1)]) != NULL)
            continue;
        if (t->nfree == t->capfree) {
            size_t cap = t->capfree ? 2 * t->capfree : 256;
            uint32_t *f = realloc(t->free, cap * sizeof(*f));
            if (f == NULL)
                break; /* the slots not listed stay unused: harmless */
            t->free = f;
            t->capfree = cap;
        }
        t->free[t->nfree++] = s;
    }
    pthread_mutex_unlock(&e->fh_lock);
}

/* Both run while handover.c holds every FUSE request: nothing else opens or releases handles,
   so the list is walked without fh_lock (a leaf, not to be held across the read path's calls). */
void efc_fs_suspend(struct efc *e)
{
    for (struct efc_fh *fh = e->fh_list; fh; fh = fh->next) {
        if (!fh->is_dir) {
            efc_reader_close(fh->reader);
            fh->reader = NULL;
        }
    }
    efc_reader_pool_free(e->readers);
    e->readers = NULL;
    efc_chain_stop(e); /* flushes the disk writes, so the next process finds the blocks */
}

int efc_fs_resume(struct efc *e, char *err, size_t errlen)
{
    int rc = efc_fs_start(e, err, errlen);
    for (struct efc_fh *fh = e->fh_list; fh; fh = fh->next) {
        if (fh->is_dir || fh->reader)
            continue;
        if (rc || efc_reader_open(e->readers, fh->key, fh->etag, fh->size, &fh->reader) != 0) {
            /* Without a reader the handle can only fail: it answers ESTALE, and a reopen
               gets a working one. */
            fh->reader = NULL;
            atomic_store(&fh->stale, true);
        }
    }
    return rc;
}
