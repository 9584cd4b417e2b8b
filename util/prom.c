/* util/prom.c - Prometheus text format writers; see prom.h.
 *
 * Each line is formatted completely before it is appended, so a buffer that runs out of room
 * never holds half a line: a scrape may then miss families but never sees a broken one.
 */
#include "util/prom.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
        return true;
    return !first && c >= '0' && c <= '9';
}

bool prom_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    for (size_t i = 0; name[i]; i++)
        if (!name_char(name[i], i == 0, true))
            return false;
    return true;
}

bool prom_label_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0' || strncmp(name, "__", 2) == 0)
        return false;
    for (size_t i = 0; name[i]; i++)
        if (!name_char(name[i], i == 0, false))
            return false;
    return true;
}

/* Appends S with backslash and newline escaped, and double quotes too when QUOTES. */
static int escape(struct buf *out, const char *s, bool quotes)
{
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (quotes && *p == '"')
            rep = "\\\"";
        int rc = rep ? buf_puts(out, rep) : buf_append(out, p, 1);
        if (rc)
            return rc;
    }
    return 0;
}

int prom_label_escape(struct buf *out, const char *value)
{
    return escape(out, value, true);
}

int prom_header(struct buf *out, const char *name, const char *help, const char *type)
{
    struct buf line;
    int rc;

    if (!prom_name_ok(name))
        return -EINVAL;
    buf_init(&line, 4096);
    rc = buf_printf(&line, "# HELP %s ", name);
    if (rc == 0)
        rc = escape(&line, help ? help : "", false);
    if (rc == 0)
        rc = buf_printf(&line, "\n# TYPE %s %s\n", name, type);
    if (rc == 0)
        rc = buf_append(out, line.data, line.len);
    buf_release(&line);
    return rc;
}

static int sample(struct buf *out, const char *name, const char *labels, const char *num)
{
    if (!prom_name_ok(name))
        return -EINVAL;
    if (labels && labels[0])
        return buf_printf(out, "%s{%s} %s\n", name, labels, num);
    return buf_printf(out, "%s %s\n", name, num);
}

int prom_sample_u64(struct buf *out, const char *name, const char *labels, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    return sample(out, name, labels, num);
}

int prom_sample_double(struct buf *out, const char *name, const char *labels, double v)
{
    char num[40];
    if (isnan(v))
        snprintf(num, sizeof(num), "NaN");
    else if (isinf(v))
        snprintf(num, sizeof(num), "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        /* The shortest of %.15g..%.17g that reads back exactly: 0.25, not 0.25000000000000000. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(num, sizeof(num), "%.*g", prec, v);
            if (strtod(num, NULL) == v)
                break;
        }
    }
    return sample(out, name, labels, num);
}

int prom_counter(struct buf *out, const char *name, const char *help, uint64_t v)
{
    int rc = prom_header(out, name, help, "counter");
    return rc ? rc : prom_sample_u64(out, name, NULL, v);
}

int prom_gauge(struct buf *out, const char *name, const char *help, double v)
{
    int rc = prom_header(out, name, help, "gauge");
    return rc ? rc : prom_sample_double(out, name, NULL, v);
}
