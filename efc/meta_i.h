/* efc/meta_i.h - the metadata cache (g_metadata_CacheEnable, off by default).
 *
 * What a lookup, getattr or open learnt about a key from the store — the object exists with this
 * size, ETag, mtime and storage class; it is a directory; or nothing is there — kept without
 * expiry until /v1/action/clear_metadata_cache (or eviction under the memory bound), as the seed's
 * consistency table says: with the metadata cache on, neither changed nor new objects are seen
 * until it is cleared. Keys are object keys without a trailing '/' ("a/b" for the file or the
 * directory a/b/).
 *
 * Bounded by bytes (entries and their strings), least recently used first out per shard; 64
 * shards, each with its own mutex (a leaf lock), so lookups of different names do not contend.
 */
#ifndef EFC_META_I_H
#define EFC_META_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oss/oss.h"

struct efc_meta_ent {
    bool present; /* false: a negative entry (nothing has this name) */
    bool is_dir;
    bool restored;
    bool headed; /* the attributes came from a HEAD (open may trust them), not a listing */
    uint8_t sc;  /* enum oss_storage_class */
    uint64_t size;
    int64_t mtime;
    char etag[OSS_MAX_ETAG_LEN + 1];
};

struct efc_meta;

/* MAX_BYTES: the bound on memory (0: 64 MiB). */
int efc_meta_new(uint64_t max_bytes, struct efc_meta **out);
void efc_meta_free(struct efc_meta *m);
/* 1 and *OUT filled when KEY has an entry, else 0. */
int efc_meta_get(struct efc_meta *m, const char *key, size_t klen, struct efc_meta_ent *out);
void efc_meta_put(struct efc_meta *m, const char *key, size_t klen, const struct efc_meta_ent *e);
void efc_meta_drop(struct efc_meta *m, const char *key, size_t klen);
/* Drops every entry; returns how many there were. */
uint64_t efc_meta_clear(struct efc_meta *m);

struct efc_meta_stats {
    uint64_t entries, bytes;                       /* gauges */
    uint64_t hits, misses, negative_hits, evicted; /* counters */
};
void efc_meta_get_stats(struct efc_meta *m, struct efc_meta_stats *st);

#endif
