/* tests/integration/ossemu_ctl.h - start, steer and stop tests/ossemu from C tests.
 *
 * ossemu_start() spawns `node server.js` with its stdout on a pipe, waits (bounded) for the ready
 * line, and arranges for the server to die with the test process (PR_SET_PDEATHSIG), so a crashed
 * test never leaves a server behind. ossemu_stop() kills it by pid and reaps it.
 */
#ifndef EFC_TESTS_OSSEMU_CTL_H
#define EFC_TESTS_OSSEMU_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ossemu {
    pid_t pid;
    int port;
    int admin_port;
    char log_path[256];
};

/* ARGS: extra command-line arguments, NULL-terminated (may be NULL). Returns 0 or -1. */
int ossemu_start(const char *root, const char *const *args, struct ossemu *out);
void ossemu_stop(struct ossemu *e);

/* Admin call; returns the parsed JSON answer (json_decref it) or NULL on failure. */
json_t *ossemu_admin(const struct ossemu *e, const char *method, const char *path,
                     const char *body);
/* Convenience: POST /faults with BODY; returns 0 or -1. */
int ossemu_faults(const struct ossemu *e, const char *body);
/* Requests counted for KEY (GET + HEAD), or for the whole server when KEY is NULL. */
uint64_t ossemu_requests(const struct ossemu *e, const char *key);
int ossemu_reset_stats(const struct ossemu *e);
/* The most requests the server answered at once since the last reset (UINT64_MAX on failure). */
uint64_t ossemu_max_inflight(const struct ossemu *e);

/* Temporary directories and files for a served root. */
char *tmpdir_new(const char *tag); /* mkdtemp under $TMPDIR or /tmp; free() it */
void tmpdir_remove(char *dir);     /* rm -rf and free() */
int write_file(const char *dir, const char *rel, const void *data, size_t len); /* makes parents */
int write_pattern_file(const char *dir, const char *rel, uint64_t size, uint32_t seed);
/* Byte I of the pattern written by write_pattern_file with SEED. */
uint8_t pattern_byte(uint64_t i, uint32_t seed);
/* Bytes OFF .. OFF + N - 1 of that pattern into DST. */
void pattern_fill(uint8_t *dst, uint64_t off, size_t n, uint32_t seed);

/* MS times $EFC_TIME_SCALE (a factor of 1 to 1000; 1 when unset or not such a number), for an
 * upper bound on a time that code under test, not ossemu, spends: tests/valgrind.sh runs these
 * tests under memcheck, 20 to 50 times slower. */
uint64_t it_scaled_ms(uint64_t ms);

#endif
