/* util/log.c - levelled logging to stderr or a file, with size-based rotation.
 *
 * A line is formatted into a stack buffer and written with a single write(2), so lines from
 * different threads never interleave and no lock is needed. Long lines are truncated with "...".
 *
 * Rotation (log_set_rotation: the CPFS client's logging_max_bytes and logging_file_count). Before
 * a line is written, the file's size is looked at (fstat); a line that would take it past the
 * bound rotates it: under an flock of the file (several processes write one log: the daemon, its
 * supervisor, a successor), PATH.(N-2) becomes PATH.(N-1), ..., PATH becomes PATH.1, and a new
 * PATH is opened onto the same descriptor (dup2, so a concurrent write goes to one file or the
 * other, whole). A process that finds PATH is no longer the file it writes (another rotated it)
 * just opens the new one; since a file is rotated away within a line of the bound, that is
 * looked for whenever the file is that near it. The bound is checked against the size before the
 * line, so a file may exceed it by one line.
 */
#define _GNU_SOURCE /* dup3 */
#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_verbosity = LOG_LVL_INFO;
static int log_fd = 2;
static const char *log_ident = "efc";
static char log_path[PATH_MAX];        /* the file log_fd was opened from; "" for stderr */
static _Atomic uint64_t rot_max_bytes; /* 0: no rotation */
static unsigned rot_files = 1;         /* files kept, the current one included */
#define LOG_LINE_MAX 2048

static pthread_mutex_t rot_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *s)
{
    if (s == NULL)
        return -1;
    if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0')
        return s[0] - '0';
    for (int i = 0; i <= LOG_LVL_TRACE; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return LOG_LVL_WARN;
    return -1;
}

void log_set_level(enum log_level lvl)
{
    log_verbosity = lvl;
}

void log_set_ident(const char *ident)
{
    log_ident = ident;
}

int log_open_file(const char *path)
{
    if (strlen(path) >= sizeof(log_path) - 12) /* room for ".<count>" */
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    pthread_mutex_lock(&rot_lock);
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    pthread_mutex_unlock(&rot_lock);
    return 0;
}

void log_set_rotation(uint64_t max_bytes, unsigned files)
{
    pthread_mutex_lock(&rot_lock);
    rot_max_bytes = max_bytes;
    rot_files = files < 1 ? 1 : files > LOG_MAX_FILES ? LOG_MAX_FILES : files;
    pthread_mutex_unlock(&rot_lock);
}

/* PATH.(N-2) -> PATH.(N-1), ..., PATH -> PATH.1 (with one file kept: PATH goes). */
static void rotate_files(void)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    if (rot_files == 1) {
        unlink(log_path);
        return;
    }
    for (unsigned i = rot_files - 1; i >= 1; i--) {
        snprintf(to, sizeof(to), "%s.%u", log_path, i);
        if (i == 1)
            snprintf(from, sizeof(from), "%s", log_path);
        else
            snprintf(from, sizeof(from), "%s.%u", log_path, i - 1);
        rename(from, to); /* ENOENT: fewer files so far */
    }
}

/* Called before a line of LEN bytes is written to the log file. */
static void maybe_rotate(size_t len)
{
    struct stat fst, pst;
    /* A file rotated away was within a line of the bound when it went: so a file that near it is
       looked at under the lock (is it still PATH?), even for a line that would fit. */
    if (rot_max_bytes == 0 || fstat(log_fd, &fst) != 0 ||
        (uint64_t)fst.st_size + LOG_LINE_MAX <= rot_max_bytes)
        return;
    pthread_mutex_lock(&rot_lock);
    if (log_fd > 2 && log_path[0] && flock(log_fd, LOCK_EX) == 0) {
        /* Under the lock, again: another thread or process may have rotated meanwhile. */
        bool ours = stat(log_path, &pst) == 0 && fstat(log_fd, &fst) == 0 &&
                    pst.st_ino == fst.st_ino && pst.st_dev == fst.st_dev;
        if (ours && (uint64_t)fst.st_size + len > rot_max_bytes)
            rotate_files();
        else if (ours) {
            flock(log_fd, LOCK_UN);
            pthread_mutex_unlock(&rot_lock);
            return;
        }
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd >= 0) {
            dup3(fd, log_fd, O_CLOEXEC); /* the old file's lock goes with its last descriptor */
            close(fd);
        } else {
            flock(log_fd, LOCK_UN); /* go on writing the old one */
        }
    }
    pthread_mutex_unlock(&rot_lock);
}

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
    char buf[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;
    int saved = errno;
    const char *base = strrchr(file, '/');

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%06ldZ %s[%d] %s %s:%d: ", (long)tv.tv_usec,
                          log_ident, (int)getpid(),
                          level_names[lvl < 0   ? 0
                                      : lvl > 4 ? 4
                                                : lvl],
                          base ? base + 1 : file, line);
    if (n < sizeof(buf)) {
        va_start(ap, fmt);
        int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += (size_t)m;
    }
    if (n >= sizeof(buf) - 1) {
        n = sizeof(buf) - 1;
        memcpy(buf + n - 3, "...", 3);
    }
    buf[n++] = '\n';
    if (log_fd > 2)
        maybe_rotate(n);
    ssize_t w = write(log_fd, buf, n);
    (void)w;
    errno = saved;
}
