/* mgmt/warmup_i.h - warm-up internals exposed to the unit tests and the fuzz target. */
#ifndef EFC_MGMT_WARMUP_I_H
#define EFC_MGMT_WARMUP_I_H

#include <stddef.h>
#include <stdint.h>

#include "mgmt/warmup.h"

/* Files a task's walk may queue ahead of the workers; the walk waits beyond it. */
#define WARMUP_QUEUE_MAX 256
/* Tasks whose walks run at once (one thread each); more tasks wait for a walker. */
#define WARMUP_WALKERS_MAX 16
/* The nodes a pattern may expand to in regcomp() (see warmup_pattern_check in warmup.c). */
#define WARMUP_PATTERN_COST_MAX 1000

/* Replaces CLOCK_REALTIME (microseconds) for submit times, preceding_s and max_age_s. Call before
 * the first warmup_load. NOW NULL restores the real clock. */
void warmup_set_clock_for_test(struct warmup *w, uint64_t (*now)(void *arg), void *arg);

/* Refuses a pattern regcomp() would make too big or too slow, or regexec() too slow: longer than
 * WARMUP_PATTERN_MAX, back-references, a repetition of a repetition ("(a?){1,30}+"), or more than
 * WARMUP_PATTERN_COST_MAX nodes once bounded repetitions are expanded. Does not compile it.
 * Returns 0 or -EINVAL with a reason in ERR. */
int warmup_pattern_check(const char *pattern, char *err, size_t errlen);

#endif
