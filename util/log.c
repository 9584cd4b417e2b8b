/* util/log.c - levelled logging to stderr or a file.
 *
 * A line is formatted into a stack buffer and written with a single write(2), so lines from
 * different threads never interleave and no lock is needed. Long lines are truncated with "...".
 */
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_verbosity = LOG_LVL_INFO;
static int log_fd = 2;
static const char *log_ident = "efc";

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
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
    char buf[2048];
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
    ssize_t w = write(log_fd, buf, n);
    (void)w;
    errno = saved;
}
