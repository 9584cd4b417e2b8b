/* util/log.h - the one logging module.
 *
 * Levels follow syslog's order. efc_log() is a macro that tests the level before anything is
 * formatted, so a debug line on a hot path costs one load and a branch when debug is off.
 * Output goes to stderr (with a timestamp and level) or to a file opened by log_open_file().
 * Thread-safe: a line is written with one write(2). Never pass secrets to these calls.
 */
#ifndef EFC_UTIL_LOG_H
#define EFC_UTIL_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
    LOG_LVL_TRACE = 4,
};

extern int log_verbosity; /* messages above this level are dropped unformatted */

/* Parses "error", "warn", "info", "debug", "trace" or a digit; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_set_level(enum log_level lvl);
/* Sends later lines to PATH (appended); returns 0 or -errno. */
int log_open_file(const char *path);
/* Rotates the log file (log_open_file's) when a line would take it past MAX_BYTES (0: never),
 * keeping FILES files in all (PATH, PATH.1, ..., PATH.<FILES-1>; 1 to LOG_MAX_FILES). Several
 * processes may write and rotate one file. */
#define LOG_MAX_FILES 1000
void log_set_rotation(uint64_t max_bytes, unsigned files);
/* Prefix each line with this program name (not copied: pass a static string). */
void log_set_ident(const char *ident);

void log_write(enum log_level lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define efc_log(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((int)(lvl) <= log_verbosity)                                                           \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)

#define log_error(...) efc_log(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  efc_log(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  efc_log(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) efc_log(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_trace(...) efc_log(LOG_LVL_TRACE, __VA_ARGS__)

#endif
