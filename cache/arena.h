/* cache/arena.h - the memory tier's arena: its mapping, and a thread that maps never-used chunks
 * ahead of the allocations (see arena.c). */
#ifndef EFC_CACHE_ARENA_H
#define EFC_CACHE_ARENA_H

#include <stddef.h>
#include <stdint.h>

struct arena;
struct s3fifo;

/* Maps NCHUNKS chunks of CHUNK_BYTES (nothing is touched), Q being their allocator; with
 * TOUCHER_ON, starts the thread that maps never-used chunks ahead. NULL if the mapping fails. */
struct arena *arena_new(size_t nchunks, size_t chunk_bytes, struct s3fifo *q, int toucher_on);
uint8_t *arena_base(const struct arena *a);
/* After an allocation from Q: wakes the toucher if it sleeps and has work. Cheap otherwise. */
void arena_kick(struct arena *a);
/* Stops the thread and unmaps. Q must outlive the call. */
void arena_free(struct arena *a);

#endif
