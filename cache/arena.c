/* cache/arena.c - the memory tier's arena: one mapping of whole chunks (blocks). Normally a
 * memfd (memfd_create, close-on-exec) mapped shared, whose fresh pages are filled by pwrite
 * (arena_fill) and read by the kernel; where a memfd cannot be had, anonymous memory in
 * transparent huge pages with a thread that maps never-used chunks ahead of the allocations.
 *
 * Why. A cold stream into an empty memory tier puts every block in pages the process never
 * touched, while the same stream with the cache off reuses one warm buffer. On a virtual machine
 * with shadow page tables (this project's test VMs, PVM) the first user-space access to a page
 * costs a page fault and the host's work for the new page-table entry, and a fresh anonymous
 * page is zeroed first. Measured on those VMs (512 MiB, one process's CPU seconds a GiB, from
 * getrusage; a standalone program, 2026-12-07): memcpy into fresh 4 KiB anonymous pages
 * 3.7-4.5; into MADV_HUGEPAGE memory 0.9-2.3 (almost all of it the kernel zeroing the huge pages,
 * clear_page_erms, mostly the host's work for memory it had taken back); pwrite into a memfd
 * 0.2-0.4 (shmem does not zero a page that the write fills whole, and no user page-table entry
 * is made); then the read back, as the FUSE reply and the O_DIRECT disk write do it (the kernel
 * takes the pages by get_user_pages and copies through its own mapping): 0.3-0.6 from either,
 * against 2.0-5.1 when user space reads the memfd's pages through the mapping first. So the
 * arena is a memfd, and the cold path keeps user space off its fresh pages: the prefetch runs
 * fill slots with arena_fill and compute the page CRCs from the source's buffer (prefetch.c),
 * and the disk writer's staging copy reads a slot with pread (disk.c, cdisk_append_fd). What
 * still reads a slot through the mapping pays that first touch once a page, in the foreground
 * where the toucher used to pay it ahead: a hit copied out (cache_read; FUSE hits are sent by
 * reference, through the kernel) and a peer served from memory (p2p/server.c, send from the
 * pinned block). Measured in-process, 40,000 objects of 16 KiB, fake source, no disk tier, CPU
 * of all threads: cold fill 20-28 us an object (anonymous with the toucher: 32-45), the first
 * cache_read hit of each 29-35 us (1.4-1.6), later hits as before. The
 * memfd's pages count in the process's RssShmem once mapped (a FUSE reply maps what it sends),
 * and only as they are written: the memory still grows with use. Huge pages are not asked for:
 * shmem gives them only where the administrator has set shmem_enabled, and the fill is cheap
 * without them.
 *
 * Anonymous memory (no memfd: an old kernel, a seccomp policy, or ARENA_ANON): 2 MiB aligned and
 * MADV_HUGEPAGE, and the toucher takes never-used chunks from s3fifo.c one at a time
 * (s3fifo_fresh_take: no run can come from a chunk while it is taken), maps each
 * (MADV_POPULATE_WRITE, then a store of zero to each 4 KiB page, which the chunk still holds: the
 * store makes the mapping writable wherever it is cached, the hypervisor's tables included) and
 * hands it back as a free chunk used before (s3fifo_fresh_put), which the allocator takes before
 * any never-used one. It keeps at most AHEAD_BYTES (or an eighth of the arena) of such chunks
 * ready, so the process's memory grows with use (in 2 MiB steps), not to the configured size at
 * mount. It sleeps while that many are ready or every chunk has been used; arena_kick (after each
 * allocation) wakes it, taking a lock only when it sleeps and there is work. When the stream
 * outruns it the allocator takes never-used chunks as before, and the prefetcher's own
 * MADV_POPULATE_WRITE of the run's slots (prefetch.c, slot_prefault) maps them.
 *
 *     arena: | used chunks ...       | ready (mapped, free) | never used ...                 |
 *                                    ^ allocations take these first
 *                                                           ^ the toucher maps these next
 *
 * bench/cold-stream.sh --size-mib 512 --runs 2, 11 invocations of each build alternating on a
 * shared 2-CPU VM (2026-12-08), daemon CPU a GiB with the cache on: anonymous huge pages and the
 * toucher 1.2-4.0 s, median 2.6 (perf: clear_page_erms 39% of the daemon's samples, the FUSE
 * reply's copy out of the fresh huge pages 33%); the memfd 1.5-2.1, median 1.7 (perf: the disk
 * writer's staging pread and O_DIRECT write 26%, the fill's pwrite 16%, the FUSE reply 14%, the
 * socket reads 11%); the cache off 1.1-1.4. (3.2-3.5 with 4 KiB anonymous pages, earlier.)
 */
#define _GNU_SOURCE
#include "cache/arena.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache/s3fifo.h"
#include "util/log.h"

#define AHEAD_BYTES (64ull << 20)

struct arena {
    uint8_t *base;
    size_t len, chunk_bytes;
    int fd;              /* the memfd behind the mapping, or -1 (anonymous memory) */
    uint64_t fill_bytes; /* atomic: bytes arena_fill wrote through FD */
    struct s3fifo *q;
    uint32_t ahead; /* chunks kept ready */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;     /* lock */
    int sleeping; /* atomic: the toucher waits on cond */
    int started;
    pthread_t thread;
};

static void chunk_map(struct arena *a, uint32_t ch)
{
    uint8_t *p = a->base + (size_t)ch * a->chunk_bytes;
    (void)madvise(p, a->chunk_bytes, MADV_POPULATE_WRITE); /* best effort: before Linux 5.14 the
                                                              stores below fault the pages in */
    for (size_t off = 0; off < a->chunk_bytes; off += 1u << S3FIFO_PAGE_SHIFT)
        *(volatile uint8_t *)(p + off) = 0; /* the chunk is ours until put back, and zero */
}

static void *toucher(void *arg)
{
    struct arena *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        /* The flag is raised before the take looks (under the s3fifo lock): an allocation
           that the take did not see comes after it under that lock, so its kick sees the flag
           and signals once this thread waits (the signal needs a->lock, held until then). */
        __atomic_store_n(&a->sleeping, 1, __ATOMIC_SEQ_CST);
        uint32_t ch = s3fifo_fresh_take(a->q, a->ahead);
        if (ch == S3FIFO_NIL) {
            pthread_cond_wait(&a->cond, &a->lock);
            continue;
        }
        __atomic_store_n(&a->sleeping, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&a->lock);
        chunk_map(a, ch);
        s3fifo_fresh_put(a->q, ch);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* A memfd of LEN bytes mapped shared at a 2 MiB boundary into A (fd and base); -1 if any step
 * fails (errno set), with nothing left open or mapped. */
static int map_memfd(struct arena *a)
{
    int fd = memfd_create("efc-memory-tier", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)a->len) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    size_t huge = 2u << 20, maplen = a->len + huge;
    uint8_t *raw =
        mmap(NULL, maplen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    uint8_t *at = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    uint8_t *p = mmap(at, a->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        munmap(raw, maplen);
        close(fd);
        errno = e;
        return -1;
    }
    if (at > raw)
        munmap(raw, (size_t)(at - raw));
    if (raw + maplen > at + a->len)
        munmap(at + a->len, (size_t)(raw + maplen - (at + a->len)));
    a->base = at;
    a->fd = fd;
    return 0;
}

struct arena *arena_new(size_t nchunks, size_t chunk_bytes, struct s3fifo *q, unsigned flags)
{
    struct arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->len = nchunks * chunk_bytes;
    a->chunk_bytes = chunk_bytes;
    a->q = q;
    a->fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    if (!(flags & ARENA_ANON)) {
        if (map_memfd(a) == 0)
            return a;
        log_warn("cache: no memfd for the memory tier (%s); using anonymous memory, whose fresh "
                 "pages cost more to fill",
                 strerror(errno));
    }
    /* 2 MiB aligned, so that the whole arena can be huge pages: map 2 MiB more, trim. */
    size_t huge = 2u << 20, maplen = a->len + huge;
    uint8_t *raw = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        pthread_mutex_destroy(&a->lock);
        pthread_cond_destroy(&a->cond);
        free(a);
        return NULL;
    }
    a->base = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a->base > raw)
        munmap(raw, (size_t)(a->base - raw));
    if (raw + maplen > a->base + a->len)
        munmap(a->base + a->len, (size_t)(raw + maplen - (a->base + a->len)));
    /* Best effort: without transparent huge pages (or with them set to "never") this fails or
       does nothing, and the pages are 4 KiB. */
    (void)madvise(a->base, a->len, MADV_HUGEPAGE);
    uint64_t ahead = AHEAD_BYTES < a->len / 8 ? AHEAD_BYTES : a->len / 8;
    a->ahead = (uint32_t)(ahead / chunk_bytes);
    if ((flags & ARENA_TOUCHER) && a->ahead > 0) {
        int rc = pthread_create(&a->thread, NULL, toucher, a);
        if (rc == 0)
            a->started = 1;
        else
            log_warn("cache: no thread to map the memory tier ahead (%s); pages fault in as "
                     "blocks arrive",
                     strerror(rc));
    }
    return a;
}

int arena_is_file(const struct arena *a)
{
    return a->fd >= 0;
}

int arena_fd(const struct arena *a)
{
    return a->fd;
}

void arena_fill(struct arena *a, uint8_t *dst, const void *src, size_t len)
{
    if (a->fd >= 0) {
        size_t done = 0;
        while (done < len) {
            ssize_t n = pwrite(a->fd, (const uint8_t *)src + done, len - done,
                               (off_t)(dst - a->base) + (off_t)done);
            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                break; /* cannot happen on a memfd short of memory: the mapping takes the rest */
            }
            done += (size_t)n;
        }
        __atomic_fetch_add(&a->fill_bytes, done, __ATOMIC_RELAXED);
        if (done < len)
            memcpy(dst + done, (const uint8_t *)src + done, len - done);
        return;
    }
    memcpy(dst, src, len);
}

uint64_t arena_fill_bytes(const struct arena *a)
{
    return __atomic_load_n(&a->fill_bytes, __ATOMIC_RELAXED);
}

uint8_t *arena_base(const struct arena *a)
{
    return a->base;
}

void arena_kick(struct arena *a)
{
    if (!a || !a->started || !__atomic_load_n(&a->sleeping, __ATOMIC_SEQ_CST) ||
        !s3fifo_fresh_wanted(a->q, a->ahead))
        return;
    pthread_mutex_lock(&a->lock);
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_signal(&a->cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
    munmap(a->base, a->len);
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}
