/* cache/s3fifo.h - S3-FIFO replacement over a fixed array of slots (Yang et al., SOSP '23).
 *
 * Generic: it knows slots 0..n-1 and a 32-bit owner tag per slot, nothing of what they hold.
 * New owners enter a small FIFO (10% of the slots); one evicted from it unread goes to a ghost
 * set (fingerprints only) and is forgotten, one read at least once moves to the main FIFO, which
 * is a CLOCK with a 2-bit frequency. An owner whose fingerprint is in the ghost set enters main
 * directly. One-pass scans therefore flush only the small FIFO, not the working set.
 *
 * Threading: one internal mutex protects the queues; s3fifo_touch takes no lock (an atomic
 * store of the frequency). The evict callback runs with that mutex held: it must not call into
 * the same s3fifo, and may only trylock locks that are normally taken before s3fifo calls.
 * Memory: 10 bytes per slot plus a ghost set of 2-byte fingerprints (1 to 2 per slot).
 */
#ifndef EFC_CACHE_S3FIFO_H
#define EFC_CACHE_S3FIFO_H

#include <stdint.h>

#define S3FIFO_NIL UINT32_MAX

struct s3fifo;

/* What the evict callback answers for a victim. */
enum {
    S3FIFO_EVICTED = 0, /* the owner let the slot go: it becomes the new owner's */
    S3FIFO_BUSY = 1,    /* pinned or busy: skipped this time, asked again later */
    S3FIFO_KEEP = 2,    /* wanted soon (read ahead, not read yet): treated as accessed once */
};

/* Called on a victim (slot, its owner tag): returns one of the S3FIFO_* answers above, and for
 * S3FIFO_EVICTED sets *FP to the owner's fingerprint (as given to s3fifo_alloc; the slot does
 * not store it), for the ghost set. */
typedef int (*s3fifo_evict_fn)(void *arg, uint32_t slot, uint32_t owner, uint64_t *fp);

/* Returns NULL on ENOMEM. nslots may be 0 (every alloc fails). */
struct s3fifo *s3fifo_new(uint32_t nslots);
void s3fifo_free(struct s3fifo *q);
/* A slot for OWNER (fp: its fingerprint, for the ghost set), evicting if none is free; returns
 * S3FIFO_NIL when every candidate was skipped. *evicted is set to 1 if a victim was evicted.
 * HOT (warm-up: the owner is wanted, not merely seen once) skips probation: the owner enters
 * main, and the victim is taken from the small FIFO while it has any, so that a stream of hot
 * owners evicts the unproven and the oldest before it evicts its own earlier members. */
uint32_t s3fifo_alloc(struct s3fifo *q, uint64_t fp, uint32_t owner, int hot, s3fifo_evict_fn fn,
                      void *arg, int *evicted);
/* Takes a specific free slot (used when loading state from disk); it enters main. Only before
 * the first s3fifo_alloc. Returns 0 or -EBUSY if the slot is not free (or allocation began). */
int s3fifo_claim(struct s3fifo *q, uint32_t slot, uint32_t owner);
/* Gives a slot back (its owner dropped it). */
void s3fifo_release(struct s3fifo *q, uint32_t slot);
/* Records an access (lock-free). */
void s3fifo_touch(struct s3fifo *q, uint32_t slot);
uint32_t s3fifo_used(struct s3fifo *q);
uint32_t s3fifo_nslots(const struct s3fifo *q);
/* Bytes this structure costs. */
uint64_t s3fifo_bytes(const struct s3fifo *q);

#endif
