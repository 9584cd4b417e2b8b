/* cache/arena.h - the memory tier's arena: its mapping, and a thread that maps never-used chunks
 * ahead of the allocations (see arena.c). */
#ifndef EFC_CACHE_ARENA_H
#define EFC_CACHE_ARENA_H

#include <stddef.h>
#include <stdint.h>

struct arena;
struct s3fifo;

#define ARENA_TOUCHER 1u /* anonymous memory: a thread maps never-used chunks ahead */
#define ARENA_ANON    2u /* anonymous memory even where a memfd can be had */

/* Maps NCHUNKS chunks of CHUNK_BYTES (nothing is touched), Q being their allocator: a memfd
 * mapped shared, unless FLAGS has ARENA_ANON or the memfd cannot be had (a log line), then
 * anonymous memory; with ARENA_TOUCHER, anonymous memory gets the thread that maps never-used
 * chunks ahead. NULL if no mapping can be had. */
struct arena *arena_new(size_t nchunks, size_t chunk_bytes, struct s3fifo *q, unsigned flags);
uint8_t *arena_base(const struct arena *a);
/* 1 if the arena is a memfd: its pages are best filled with arena_fill and read by the kernel
 * (a FUSE reply, an O_DIRECT write), not touched first by user-space stores or loads. */
int arena_is_file(const struct arena *a);
/* The memfd (owned by the arena, close-on-exec), or -1. */
int arena_fd(const struct arena *a);
/* Copies LEN bytes from SRC to DST, inside the arena: by pwrite into the memfd (the kernel
 * fills a fresh page without zeroing it first, and the process's page table is not touched),
 * or memcpy for anonymous memory. */
void arena_fill(struct arena *a, uint8_t *dst, const void *src, size_t len);
/* Bytes arena_fill wrote through the memfd, since arena_new. */
uint64_t arena_fill_bytes(const struct arena *a);
/* After an allocation from Q: wakes the toucher if it sleeps and has work. Cheap otherwise. */
void arena_kick(struct arena *a);
/* Stops the thread and unmaps. Q must outlive the call. */
void arena_free(struct arena *a);

#endif
