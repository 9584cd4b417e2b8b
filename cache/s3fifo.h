/* cache/s3fifo.h - the memory tier's space: an arena of 4 KiB pages handed out in runs by size
 * class, replaced by S3-FIFO weighted by bytes (Yang et al., SOSP '23).
 *
 * Generic: it knows pages 0..n-1 grouped in chunks (one block each) and a 32-bit owner tag per
 * run, nothing of what the runs hold. A run is a size class of pages (1 to 16, then four steps
 * per power of two: 20, 24, 28, 32, 40, ...), at most a chunk; a chunk is cut into runs of one
 * class, and goes back to the pool of free chunks when its last run is freed, so the classes
 * rebalance as the mix of sizes changes. New owners enter a small FIFO (10% of the pages); one
 * evicted from it unread goes to a ghost set (fingerprints only) and is forgotten, one read at
 * least once moves to the main FIFO, which is a CLOCK with a 2-bit frequency. An owner whose
 * fingerprint is in the ghost set enters main directly. One-pass scans therefore flush only the
 * small FIFO, not the working set. Sizes count pages: a run of 16 pages weighs 16 in the queues,
 * and an allocation evicts until a run of its class is free.
 *
 * Threading: one internal mutex protects the queues; s3fifo_touch takes no lock (an atomic
 * store of the frequency). The evict callback runs with that mutex held: it must not call into
 * the same s3fifo, and may only trylock locks that are normally taken before s3fifo calls.
 * Memory: 10 bytes per page (the queues are indexed by a run's first page) plus 1 for the ghost
 * set, and about 13 bytes plus a bit a page per chunk.
 */
#ifndef EFC_CACHE_S3FIFO_H
#define EFC_CACHE_S3FIFO_H

#include <stdint.h>

#define S3FIFO_NIL        UINT32_MAX
#define S3FIFO_PAGE_SHIFT 12 /* 4 KiB pages */

struct s3fifo;

/* What the evict callback answers for a victim. */
enum {
    S3FIFO_EVICTED = 0, /* the owner let the run go */
    S3FIFO_BUSY = 1,    /* pinned or busy: skipped this time, asked again later */
    S3FIFO_KEEP = 2,    /* wanted soon (read ahead, not read yet): treated as accessed once */
};

/* Called on a victim (the run's first page, its owner tag): returns one of the S3FIFO_* answers
 * above, and for S3FIFO_EVICTED sets *FP to the owner's fingerprint (as given to s3fifo_alloc;
 * the run does not store it), for the ghost set. */
typedef int (*s3fifo_evict_fn)(void *arg, uint32_t page, uint32_t owner, uint64_t *fp);

/* NCHUNKS chunks of CHUNK_PAGES pages (a power of two, at most 2^15); at most 2^31 pages in
 * all. Returns NULL on ENOMEM or bad sizes. nchunks may be 0 (every alloc fails). */
struct s3fifo *s3fifo_new(uint32_t nchunks, uint32_t chunk_pages);
void s3fifo_free(struct s3fifo *q);
/* The pages a run for NPAGES pages takes: its size class (NPAGES <= a chunk). */
uint32_t s3fifo_run_pages(uint32_t npages);
/* A run of at least NPAGES pages (1 to a chunk) for OWNER (fp: its fingerprint, for the ghost
 * set), evicting until one is free; returns its first page, or S3FIFO_NIL when every candidate
 * was skipped. *EVICTED is set to the number of victims evicted. HOT (warm-up: the owner is
 * wanted, not merely seen once) skips probation: the owner enters main, and victims are taken
 * from the small FIFO while it has any, so that a stream of hot owners evicts the unproven and
 * the oldest before it evicts its own earlier members. */
uint32_t s3fifo_alloc(struct s3fifo *q, uint64_t fp, uint32_t owner, uint32_t npages, int hot,
                      s3fifo_evict_fn fn, void *arg, int *evicted);
/* Gives a run back (its owner dropped it). */
void s3fifo_release(struct s3fifo *q, uint32_t page);
/* Records an access to the run at PAGE (lock-free). */
void s3fifo_touch(struct s3fifo *q, uint32_t page);
/* Pages in runs with a live owner, and those runs. */
uint64_t s3fifo_used(struct s3fifo *q);
uint64_t s3fifo_items(struct s3fifo *q);
uint64_t s3fifo_npages(const struct s3fifo *q);
/* Preparing never-used chunks (arena.c maps their pages ahead of need). Runs come from free
 * chunks used before (or prepared) while there are any, and from never-used ones only after.
 * s3fifo_fresh_take hands out the lowest never-used chunk, which no run can then come from, while
 * fewer than MAX_FREE chunks are free and used before (else NIL); s3fifo_fresh_put makes it a
 * free chunk used before. s3fifo_fresh_wanted says, lock-free and approximately, whether a take
 * would give one. */
int s3fifo_fresh_wanted(struct s3fifo *q, uint32_t max_free);
uint32_t s3fifo_fresh_take(struct s3fifo *q, uint32_t max_free);
void s3fifo_fresh_put(struct s3fifo *q, uint32_t chunk);
/* Bytes this structure costs. */
uint64_t s3fifo_bytes(const struct s3fifo *q);

#endif
