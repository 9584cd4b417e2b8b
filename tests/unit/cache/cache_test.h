/* tests/unit/cache/cache_test.h - the environment shared by the cmocka cache tests (test_cache.c,
 * test_fill.c): a temporary directory holding two disk cache directories, a fake source, a cache
 * built over them, reads verified byte for byte, a small tmpfs for a disk that fills up, and a
 * child killed with SIGKILL. Header-only: each test file includes it once.
 */
#ifndef EFC_TEST_CACHE_TEST_H
#define EFC_TEST_CACHE_TEST_H

#include "fake_source.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <cmocka.h>

#define KiB 1024ull
#define MiB (1024ull * 1024ull)

struct env {
    char dir[64];
    char d1[96], d2[96];
    char dirs[200]; /* "d1:d2" */
    int tmpfs;      /* a tmpfs is mounted on d1 */
    int no_range;   /* mk() gives the cache no fetch_range: runs go through one buffer */
    struct fake f;
};

static inline int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    strcpy(e->dir, "/tmp/efc-cache-test-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    snprintf(e->d1, sizeof(e->d1), "%s/d1/", e->dir);
    snprintf(e->d2, sizeof(e->d2), "%s/d2/", e->dir);
    mkdir(e->d1, 0700);
    mkdir(e->d2, 0700);
    snprintf(e->dirs, sizeof(e->dirs), "%s:%s", e->d1, e->d2);
    e->f.block_size = 1 << 20;
    *state = e;
    return 0;
}

static inline int teardown(void **state)
{
    struct env *e = *state;
    if (e->tmpfs)
        umount2(e->d1, MNT_DETACH);
    rm_rf(e->dir);
    free(e);
    return 0;
}

/* A cache over E's fake source (which learns the block size BS); it must be created. */
static inline struct cache *mk(struct env *e, uint64_t mem, const char *dirs, uint64_t per_dir,
                               uint32_t bs)
{
    struct cache_config cfg = {.mem_bytes = mem,
                               .disk_dirs = dirs,
                               .disk_bytes_per_dir = per_dir,
                               .block_size = bs,
                               .page_size = 16 * KiB,
                               .io_threads = 2};
    struct cache_source src = fake_source(&e->f, !e->no_range);
    struct cache *c = NULL;
    char err[256];
    e->f.block_size = bs;
    int rc = cache_new(&cfg, &src, &c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "cache_new: %s\n", err);
    assert_int_equal(rc, 0);
    return c;
}

/* Reads [off, off+len) through the cache: the right length (clipped at SIZE), the right bytes. */
static inline void read_ok(struct cache *c, const char *key, const char *etag, uint64_t size,
                           uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len + 1);
    ssize_t n = cache_read(c, key, etag, size, off, len, buf);
    size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
    assert_int_equal(n, (ssize_t)want);
    assert_int_equal(fake_check(key, etag, off, buf, want), -1);
    free(buf);
}

/* Mounts a 2 MiB tmpfs on d1 (a disk that fills up), or skips the test where that cannot be done.
 * teardown() detaches it should the test fail before umount_tmpfs(). */
static inline void mount_small_tmpfs(struct env *e)
{
    if (mount("tmpfs", e->d1, "tmpfs", 0, "size=2m") != 0) {
        print_message("cannot mount tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    e->tmpfs = 1;
}

static inline void umount_tmpfs(struct env *e)
{
    umount2(e->d1, 0);
    e->tmpfs = 0;
}

/* Kills the child PID with SIGKILL and reaps it: it must have died of a signal (not exited
 * early of its own accord). */
static inline void kill9(pid_t pid)
{
    int status;
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
}

#endif
