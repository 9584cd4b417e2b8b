/* cache/blksrc.h - the block source: where bytes come from when no tier of this node holds them.
 *
 * One interface, several layers stacked behind it, as s3backer stacks its stores:
 *
 *     cache (cache.h)  --miss-->  p2p source (p2p/p2p.h: the block's owner)  --->  origin
 *                                                                                 (efc/origin.h)
 *
 * A single-node cache asks the origin directly; a cacheless reader (a plain mount, or an agent
 * that stores nothing) asks whichever source is at the top. Each layer counts its own traffic
 * and reports where the bytes it returns came from (enum blk_from), so that the cache can count
 * its reads as the guide's tier_* metrics describe: a block a peer had is a hit of the
 * distributed cache, one a peer (or this node) fetched from the origin is a miss, one read from
 * the origin after a peer failed is a direct read.
 *
 * Ranges are in blocks of the source's block_size: [index * block_size + off, + len). A range
 * may run past its first block into the following ones, never past the object's end. Every
 * function may be called from any number of threads at once.
 */
#ifndef EFC_CACHE_BLKSRC_H
#define EFC_CACHE_BLKSRC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where the bytes of a fetch came from. Ordered: a fetch that mixed several reports the
 * largest. */
enum blk_from {
    BLK_FROM_PEER = 0,        /* a peer's memory or disk: a hit of the distributed cache */
    BLK_FROM_ORIGIN = 1,      /* this node fetched them from the object store */
    BLK_FROM_PEER_ORIGIN = 2, /* a peer (the block's owner) fetched them from the object store */
    BLK_FROM_FALLBACK = 3,    /* a peer failed or refused; this node read the object store */
};

/* What to fetch: one object version, the block the range starts in. */
struct blkreq {
    const char *key;   /* the object's key */
    const char *etag;  /* its ETag, quotes included: the bytes must be of this version (-ESTALE
                          when the object no longer has it); "" or NULL: any version */
    uint64_t obj_size; /* the object's size at that version */
    uint64_t index;    /* the block the range starts in */
    unsigned flags;    /* BLKREQ_* */
};

/* The fetch serves a peer, or a warm-up at the block's owner: it must not be sent on to another
 * peer (two nodes whose memberships differ would otherwise ask each other round). */
#define BLKREQ_LOCAL 1u

/* Receives a range's bytes in order. FROM says where they came from. Returns 0 to go on, or
 * -errno to abort the fetch with that error. */
typedef int (*blk_sink_fn)(void *arg, const void *data, size_t n, enum blk_from from);

struct blksrc;

struct blksrc_ops {
    const char *name; /* "origin", "p2p": for logs */
    /* Bytes [index * block_size + off, + len) of RQ's object into BUF, clipped at the object's
     * end. Returns the bytes fetched (fewer than LEN only at the object's end) or -errno
     * (-ESTALE: the object lost RQ's ETag); *FROM says where they came from. */
    ssize_t (*fetch)(struct blksrc *s, const struct blkreq *rq, uint64_t off, size_t len, void *buf,
                     enum blk_from *from);
    /* Bytes [index * block_size, + len), clipped at the object's end, handed in order to SINK as
     * they arrive, so that a reader can use each block as soon as it is in. Returns 0 once the
     * range was delivered whole, else -errno (SINK's own error included). */
    int (*fetch_range)(struct blksrc *s, const struct blkreq *rq, uint64_t len, blk_sink_fn sink,
                       void *sink_arg);
};

/* Implementations embed this as their first member. */
struct blksrc {
    const struct blksrc_ops *ops;
    uint32_t block_size; /* the unit of index: every layer of one stack agrees on it */
};

static inline ssize_t blksrc_fetch(struct blksrc *s, const struct blkreq *rq, uint64_t off,
                                   size_t len, void *buf, enum blk_from *from)
{
    return s->ops->fetch(s, rq, off, len, buf, from);
}

static inline int blksrc_fetch_range(struct blksrc *s, const struct blkreq *rq, uint64_t len,
                                     blk_sink_fn sink, void *sink_arg)
{
    return s->ops->fetch_range(s, rq, len, sink, sink_arg);
}

/* The worse of two origins of bytes (see enum blk_from). */
static inline enum blk_from blk_from_worst(enum blk_from a, enum blk_from b)
{
    return a > b ? a : b;
}

#endif
