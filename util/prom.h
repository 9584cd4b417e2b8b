/* util/prom.h - writers for the Prometheus text exposition format, version 0.0.4.
 *
 * A metric family is a "# HELP" and a "# TYPE" line followed by its samples, each on its own
 * line: `name{label="value",...} number`. These helpers append such lines to a bounded buffer
 * (util/buf.h), escape HELP text and label values as the format requires, and refuse names
 * that the format does not allow, so every module writes its metrics the same way. Generic:
 * they know nothing of the metrics themselves.
 *
 * Every function returns 0 or the buffer's error (-E2BIG past its limit, -ENOMEM), or -EINVAL
 * for a bad metric name; callers may ignore it and check the buffer at the end, as a failed
 * append leaves it unchanged.
 */
#ifndef EFC_UTIL_PROM_H
#define EFC_UTIL_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
bool prom_name_ok(const char *name);
/* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved) */
bool prom_label_name_ok(const char *name);

/* "# HELP NAME HELP\n# TYPE NAME TYPE\n"; TYPE is counter, gauge, histogram, summary or
 * untyped. HELP is escaped (backslash, newline). */
int prom_header(struct buf *out, const char *name, const char *help, const char *type);

/* One sample line. LABELS is NULL, "" or the inside of the braces, already escaped
 * (`tier="memory"`; build it with prom_label_escape for values from outside). */
int prom_sample_u64(struct buf *out, const char *name, const char *labels, uint64_t v);
/* Doubles print as the shortest exact form; NaN and infinities as "NaN", "+Inf", "-Inf". */
int prom_sample_double(struct buf *out, const char *name, const char *labels, double v);

/* A whole family of one unlabelled sample: header + sample. */
int prom_counter(struct buf *out, const char *name, const char *help, uint64_t v);
int prom_gauge(struct buf *out, const char *name, const char *help, double v);

/* Appends VALUE escaped for use inside a label's quotes (backslash, double quote, newline). */
int prom_label_escape(struct buf *out, const char *value);

#endif
