/* efc/dir_i.h - directories: which names of a listing are visible, directory streams that fetch
 * ListObjectsV2 pages on demand, and completed listings kept for lookups.
 *
 * Visibility (DESIGN.md "File-system semantics"): a name is visible when it is not empty, not "."
 * or "..", holds no '/', and is at most EFC_NAME_MAX bytes. A key whose path has an empty
 * component (a leading '/', or "//") or a "."/".." component is therefore never reachable. When a
 * file "x" and a directory "x/" both exist, only the directory is visible.
 */
#ifndef EFC_DIR_I_H
#define EFC_DIR_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "oss/oss.h"

/* Longest visible name: NAME_MAX, what statfs reports and what applications size buffers for. */
#define EFC_NAME_MAX 255

/* Whether NAME (LEN bytes) may be a name in the tree (see above). */
bool efc_name_visible(const char *name, size_t len);

/* Compares KEY with "<P>/" (P being PLEN bytes) in the store's order (unsigned bytes): <0, 0 or
 * >0. A listing's keys arrive in this order, which is what the file-versus-directory rule needs. */
int efc_key_cmp_dir(const char *key, const char *p, size_t plen);

/* One visible directory entry, as the listing described it. */
struct efc_dirent {
    const char *name; /* NUL-terminated */
    const char *etag; /* "" for directories */
    uint64_t size;
    int64_t mtime;
    uint16_t namelen;
    bool is_dir;
    uint8_t sc; /* enum oss_storage_class */
};

/* ---- the filter: raw listing entries in, visible entries out ---------------------------------
 *
 * ListObjectsV2 with delimiter '/' pages through contents and common prefixes merged in key order
 * (each page's XML lists its contents first and its prefixes after; directory streams sort every
 * page back into key order before feeding it here). A file "x" sorts before the prefix "x/",
 * possibly pages apart, with keys such as "x-a" or "x.b" (characters below '/') in between. The
 * filter therefore holds a file back until it knows no "x/" follows: when a key greater than "x/"
 * arrives (release it), when "x/" itself arrives (drop it: the directory wins), or when the listing
 * ends (release it). Held files form a chain in which each is a proper prefix of the next, released
 * last-in first-out, so the hold-back stack is at most OSS_MAX_KEY_LEN deep. Emission order is not
 * key order; callers must not rely on it.
 */
struct efc_dirfilter;

/* Called with each visible entry; E's strings live until it returns. Return 0 or -errno (which
   stops the feed and is returned by it). */
typedef int (*efc_dirent_fn)(void *arg, const struct efc_dirent *e);

/* PREFIX is the directory's key ("" for the bucket's root, else ending in '/'). */
int efc_dirfilter_new(const char *prefix, struct efc_dirfilter **out);
void efc_dirfilter_free(struct efc_dirfilter *f);
/* Forgets everything held: the listing starts over. */
void efc_dirfilter_reset(struct efc_dirfilter *f);
/* Feeds one raw entry; entries must come in key order (unsigned bytes). Returns 0 or -errno. */
int efc_dirfilter_feed(struct efc_dirfilter *f, const struct oss_list_entry *e, efc_dirent_fn fn,
                       void *arg);
/* The listing ended: releases every held file. */
int efc_dirfilter_finish(struct efc_dirfilter *f, efc_dirent_fn fn, void *arg);

/* ---- memory accounting -----------------------------------------------------------------------
 * Every page of directory entries in memory (in open directory streams and in cached listings)
 * is charged here. Past the limit, streams keep only their last few pages (a seek back restarts
 * the listing) and completed listings are not kept for lookups. */
struct efc_dirmem {
    _Atomic uint64_t bytes;
    uint64_t limit;
};

/* ---- completed listings ----------------------------------------------------------------------
 * An immutable, reference-counted copy of a whole directory, sorted by name, for lookups. */
struct efc_listing;

/* The entry named NAME, or NULL. */
const struct efc_dirent *efc_listing_find(const struct efc_listing *l, const char *name,
                                          size_t len);
size_t efc_listing_count(const struct efc_listing *l);
/* time_mono_ms() when the listing's first page was requested: its entries are at least as new. */
uint64_t efc_listing_time(const struct efc_listing *l);
struct efc_listing *efc_listing_ref(struct efc_listing *l);
void efc_listing_unref(struct efc_listing *l);

/* ---- directory streams -----------------------------------------------------------------------
 * A stream numbers the visible entries of one directory 0, 1, 2, ... in the order they were
 * emitted, and fetches pages only when an index not yet seen is asked for, so a reader sees the
 * first entries after the first page. Numbers are stable for the life of the stream (a restart
 * after memory pressure replays the listing and so gives the same numbers unless the directory
 * changed meanwhile). Not thread-safe: the caller serialises calls on one stream. */
struct efc_dir;

/* Fetches one page, as oss_list_page() (which is what the daemon passes). */
typedef int (*efc_lister_fn)(void *arg, struct oss_list *l, oss_list_fn fn, void *fnarg);

int efc_dir_new(const char *prefix, efc_lister_fn lister, void *lister_arg, struct efc_dirmem *mem,
                struct efc_dir **out);
void efc_dir_free(struct efc_dir *d);

/* Makes entry INDEX available, fetching pages as needed. Returns 1 when it is, 0 when the
 * directory has fewer entries, or -errno (the stream stays usable: a later call retries). */
int efc_dir_seek(struct efc_dir *d, uint64_t index);
/* Entry INDEX if it is in memory (no I/O), else NULL. Valid until the next efc_dir_seek(). */
const struct efc_dirent *efc_dir_get(struct efc_dir *d, uint64_t index);
/* Whether the whole listing has been read (every index is known). */
bool efc_dir_complete(const struct efc_dir *d);
/* The page-fetch time (time_mono_ms()) of entry INDEX, which must be in memory. */
uint64_t efc_dir_entry_time(const struct efc_dir *d, uint64_t index);
/* Once complete with every entry still in memory, the whole listing (a new reference), else NULL
 * (also when the memory limit is reached). */
struct efc_listing *efc_dir_listing(struct efc_dir *d);

struct efc_dir_stats {
    uint64_t pages;    /* ListObjectsV2 pages fetched */
    uint64_t restarts; /* listings replayed from the start */
    uint64_t entries;  /* visible entries emitted */
};
void efc_dir_get_stats(const struct efc_dir *d, struct efc_dir_stats *st);

/* ---- the listing cache ----------------------------------------------------------------------
 * The readdir cache of the seed (g_readdircache_*): completed listings by directory key ("" or
 * "a/b/"), so they outlive the kernel's inodes. At most MAX_DIRS listings (g_readdircache_MaxCount)
 * and MAX_BYTES bytes of listings (g_readdircache_MaxSize; 0: no byte limit), least recently used
 * first out; listings are also let go while the pages charged to MEM pass half its limit.
 * Thread-safe; its mutex is a leaf lock. */
struct efc_lcache;

int efc_lcache_new(unsigned max_dirs, uint64_t max_bytes, struct efc_dirmem *mem,
                   struct efc_lcache **out);
void efc_lcache_free(struct efc_lcache *c);
/* Keeps L (takes a new reference) as the listing of directory KEY, replacing an older one. A
   listing larger than MAX_BYTES is not kept (and the older one is dropped). */
void efc_lcache_put(struct efc_lcache *c, const char *key, struct efc_listing *l);
/* The listing of KEY if it is at most MAX_AGE_MS old at NOW_MS (a new reference), else NULL. */
struct efc_listing *efc_lcache_get(struct efc_lcache *c, const char *key, uint64_t max_age_ms,
                                   uint64_t now_ms);
void efc_lcache_drop(struct efc_lcache *c, const char *key);
/* Drops every listing; returns how many there were. */
uint64_t efc_lcache_clear(struct efc_lcache *c);

struct efc_lcache_stats {
    uint64_t dirs, bytes;                  /* gauges */
    uint64_t hits, misses, expired, evicted; /* counters */
};
void efc_lcache_get_stats(struct efc_lcache *c, struct efc_lcache_stats *st);

/* Bytes a listing holds in memory: its index and its pages. */
size_t efc_listing_bytes(const struct efc_listing *l);

/* A stream that replays listing L (a cached, complete listing of PREFIX) without any request:
 * complete from the start, the same entries in the same order as the stream that built L. */
int efc_dir_from_listing(const char *prefix, struct efc_listing *l, efc_lister_fn lister,
                         void *lister_arg, struct efc_dirmem *mem, struct efc_dir **out);

#endif
