/* tests/unit/cache/cache_test.h - the environment shared by the cmocka cache tests (test_cache.c,
 * test_fill.c): a temporary directory holding two disk cache directories, a fake source, a cache
 * built over them, reads verified byte for byte, a small tmpfs for a disk that fills up, waits for
 * a state with a deadline, and a child that reports its progress through a pipe before it is
 * killed with SIGKILL. Header-only: each test file includes it once.
 *
 * Waiting: a test never sleeps a fixed time in the hope that the cache got somewhere; it waits
 * for the state it needs (WAIT_UNTIL, wait_report) and fails, saying what it waited for, when
 * WAIT_SECONDS pass first. The deadline is generous because the same tests run under TSan.
 */
#ifndef EFC_TEST_CACHE_TEST_H
#define EFC_TEST_CACHE_TEST_H

#include "fake_source.h"

#include <fcntl.h>
#include <poll.h>
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
    int no_range;   /* mk(): the source delivers ranges in one piece */
    pid_t child;    /* a forked child still to be killed (teardown kills it if a test failed) */
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
    if (e->child > 0) {
        kill(e->child, SIGKILL);
        waitpid(e->child, NULL, 0);
    }
    if (e->tmpfs)
        umount2(e->d1, MNT_DETACH);
    rm_rf(e->dir);
    free(e);
    return 0;
}

/* How long a test waits for a state before it fails. */
#define WAIT_SECONDS 60

/* Polls COND (an expression) every millisecond until it holds; fails the test, quoting COND, if
 * it still does not after WAIT_SECONDS. COND is evaluated once more after the deadline. */
#define WAIT_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double wait_end_ = now_sec() + WAIT_SECONDS;                                               \
        for (;;) {                                                                                 \
            int wait_late_ = now_sec() > wait_end_;                                                \
            if (cond)                                                                              \
                break;                                                                             \
            if (wait_late_)                                                                        \
                fail_msg("still not so after %d s: %s", WAIT_SECONDS, #cond);                      \
            usleep(1000);                                                                          \
        }                                                                                          \
    } while (0)

/* A cache over E's fake source (which learns the block size BS), or NULL with the reason on
 * stderr. */
static inline struct cache *mk_or_null(struct env *e, uint64_t mem, const char *dirs,
                                       uint64_t per_dir, uint32_t bs)
{
    struct cache_config cfg = {.mem_bytes = mem,
                               .disk_dirs = dirs,
                               .disk_bytes_per_dir = per_dir,
                               .block_size = bs,
                               .page_size = 16 * KiB,
                               .io_threads = 2};
    struct cache *c = NULL;
    char err[256];
    e->f.block_size = bs;
    int rc = cache_new(&cfg, fake_source(&e->f, !e->no_range), &c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "cache_new: %s\n", err);
    return c;
}

/* The same, which must be created. */
static inline struct cache *mk(struct env *e, uint64_t mem, const char *dirs, uint64_t per_dir,
                               uint32_t bs)
{
    struct cache *c = mk_or_null(e, mem, dirs, per_dir, bs);
    assert_non_null(c);
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

/* ---- a child that reports its progress, then is killed -------------------------------------
 *
 * The child writes a count that only grows (blocks written, fills done) into a pipe, one native
 * uint64_t per write (atomic: under PIPE_BUF); the parent waits until the count is high enough,
 * then kills the child. A child must not use cmocka's assertions (a failure would unwind into the
 * child's copy of the test runner): it _exits with a code of its own instead, which the parent
 * reports. */

/* Forks a child with a progress pipe: returns 0 in the child (which writes to FDS[1]), the pid in
 * the parent (which reads FDS[0]; E->child is set, so that teardown kills it should the test fail
 * before kill9). The child's end does not block: a report that does not fit is dropped, and the
 * child goes on with its work (the parent reads what came before it). */
static inline pid_t fork_reporting_child(struct env *e, int fds[2])
{
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        return 0;
    }
    close(fds[1]);
    e->child = pid;
    return pid;
}

/* In the child: reports N. */
static inline void report(int fd, uint64_t n)
{
    (void)!write(fd, &n, sizeof(n));
}

/* In the parent: waits until E's child reports at least WANT (WHAT names the count in messages)
 * through FD and returns the count reported. Fails the test if the child ends first or
 * WAIT_SECONDS pass. */
static inline uint64_t wait_report(struct env *e, int fd, uint64_t want, const char *what)
{
    uint64_t last = 0;
    double end = now_sec() + WAIT_SECONDS;
    for (;;) {
        double left = end - now_sec();
        if (left <= 0)
            fail_msg("child %d reported %llu %s in %d s, the test waits for %llu", (int)e->child,
                     (unsigned long long)last, what, WAIT_SECONDS, (unsigned long long)want);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n <= 0)
            continue; /* EINTR, or the deadline (checked above) */
        uint64_t v;
        ssize_t r = read(fd, &v, sizeof(v));
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r == 0) {
            int status = 0;
            waitpid(e->child, &status, 0);
            e->child = 0;
            fail_msg("child ended (%s %d) after it reported %llu %s, before %llu",
                     WIFSIGNALED(status) ? "signal" : "exit code",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                     (unsigned long long)last, what, (unsigned long long)want);
        }
        if (r != (ssize_t)sizeof(v))
            fail_msg("short read of the child's report: %zd", r);
        last = v;
        if (v >= want)
            return v;
    }
}

/* Kills E's child with SIGKILL and reaps it: it must have died of that signal (not exited early
 * of its own accord). */
static inline void kill9(struct env *e)
{
    int status;
    pid_t pid = e->child;
    assert_true(pid > 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    e->child = 0;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child %d was to be killed, but it %s %d", (int)pid,
                 WIFSIGNALED(status) ? "died of signal" : "exited with",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

#endif
