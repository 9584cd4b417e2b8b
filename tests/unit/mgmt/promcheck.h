/* tests/unit/mgmt/promcheck.h - a strict checker of the Prometheus text format (0.0.4), for tests.
 *
 * Stricter than Prometheus itself where our writers promise more: every family has exactly one
 * HELP and one TYPE line, both before its first sample; a family's samples are contiguous; no
 * sample (name + label set) repeats; counters are non-negative. Sample lines follow the format's
 * grammar: metric name [a-zA-Z_:][a-zA-Z0-9_:]*, optional {label="value",...} with label names
 * [a-zA-Z_][a-zA-Z0-9_]* (no duplicates) and values using only the \\, \" and \n escapes, one
 * space, a float (or NaN, +Inf, -Inf), an optional integer timestamp. Histograms: per label set,
 * _bucket lines with an le label, le strictly increasing and ending at +Inf, cumulative counts
 * non-decreasing, then _sum and _count, _count equal to the +Inf bucket.
 *
 * prom_check(text, err, errlen) returns 0, or -1 with the line number and the reason in ERR.
 */
#ifndef EFC_TESTS_PROMCHECK_H
#define EFC_TESTS_PROMCHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PC_MAX_FAMILIES 256
#define PC_MAX_SAMPLES  4096
#define PC_MAX_SERIES   128

struct pc_family {
    char name[128];
    char type[16];
    bool help, typed, sampled, closed;
};

struct pc_series { /* one histogram's label set (without le) */
    char family[128];
    char labels[512];
    double last_le, last_count, inf_count;
    bool any_bucket, inf, sum, count;
    double count_value;
};

struct pc_state {
    struct pc_family fam[PC_MAX_FAMILIES];
    int nfam;
    char (*seen)[640]; /* name{sorted labels} of every sample */
    int nseen;
    struct pc_series ser[PC_MAX_SERIES];
    int nser;
    int cur; /* family of the previous sample, -1 */
    int line;
    char *err;
    size_t errlen;
};

static int pc_fail(struct pc_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pc_fail(struct pc_state *s, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(s->err, s->errlen, "line %d: %s", s->line, msg);
    return -1;
}

static bool pc_name_ok(const char *p, size_t n, bool colon)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool pc_float(const char *p, double *v)
{
    if (strcmp(p, "NaN") == 0) {
        *v = NAN;
        return true;
    }
    if (strcmp(p, "+Inf") == 0) {
        *v = INFINITY;
        return true;
    }
    if (strcmp(p, "-Inf") == 0) {
        *v = -INFINITY;
        return true;
    }
    if (*p == '\0' || strchr("+-.0123456789", *p) == NULL)
        return false;
    char *end;
    *v = strtod(p, &end);
    return *end == '\0' && !isnan(*v) && !isinf(*v);
}

static int pc_family_find(struct pc_state *s, const char *name)
{
    for (int i = 0; i < s->nfam; i++)
        if (strcmp(s->fam[i].name, name) == 0)
            return i;
    return -1;
}

static int pc_family_get(struct pc_state *s, const char *name)
{
    int i = pc_family_find(s, name);
    if (i >= 0)
        return i;
    if (s->nfam >= PC_MAX_FAMILIES || strlen(name) >= sizeof(s->fam[0].name))
        return -1;
    memset(&s->fam[s->nfam], 0, sizeof(s->fam[0]));
    snprintf(s->fam[s->nfam].name, sizeof(s->fam[0].name), "%s", name);
    return s->nfam++;
}

static int pc_comment(struct pc_state *s, const char *l)
{
    bool help = strncmp(l, "# HELP ", 7) == 0, type = strncmp(l, "# TYPE ", 7) == 0;
    if (!help && !type)
        return pc_fail(s, "a comment that is neither HELP nor TYPE: '%.60s'", l);
    const char *name = l + 7;
    const char *sp = strchr(name, ' ');
    if (sp == NULL)
        return pc_fail(s, "HELP/TYPE without text");
    char nm[128];
    if ((size_t)(sp - name) >= sizeof(nm) || !pc_name_ok(name, (size_t)(sp - name), true))
        return pc_fail(s, "bad metric name in '%.60s'", l);
    snprintf(nm, sizeof(nm), "%.*s", (int)(sp - name), name);
    int f = pc_family_get(s, nm);
    if (f < 0)
        return pc_fail(s, "too many families");
    struct pc_family *fm = &s->fam[f];
    if (fm->sampled)
        return pc_fail(s, "HELP/TYPE of '%s' after its samples", nm);
    if (help) {
        if (fm->help)
            return pc_fail(s, "second HELP for '%s'", nm);
        fm->help = true;
        for (const char *p = sp + 1; *p; p++)
            if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
                return pc_fail(s, "bad escape in HELP of '%s'", nm);
            else if (*p == '\\')
                p++;
        return 0;
    }
    if (fm->typed)
        return pc_fail(s, "second TYPE for '%s'", nm);
    const char *t = sp + 1;
    if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") &&
        strcmp(t, "summary") && strcmp(t, "untyped"))
        return pc_fail(s, "unknown type '%s'", t);
    fm->typed = true;
    snprintf(fm->type, sizeof(fm->type), "%s", t);
    return 0;
}

struct pc_label {
    char name[64];
    char value[256];
};

static int pc_label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pc_label *)a)->name, ((const struct pc_label *)b)->name);
}

/* Which family a sample belongs to: the sample's name, or for a histogram its base. */
static int pc_owner(struct pc_state *s, const char *name, const char **suffix)
{
    *suffix = "";
    int f = pc_family_find(s, name);
    if (f >= 0 && strcmp(s->fam[f].type, "histogram") != 0)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(sfx[i]);
        if (n > k && strcmp(name + n - k, sfx[i]) == 0) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(n - k), name);
            int b = pc_family_find(s, base);
            if (b >= 0 && strcmp(s->fam[b].type, "histogram") == 0) {
                *suffix = sfx[i];
                return b;
            }
        }
    }
    return f;
}

static int pc_sample(struct pc_state *s, const char *l)
{
    const char *p = l;
    while (*p && *p != '{' && *p != ' ')
        p++;
    char name[128];
    if ((size_t)(p - l) >= sizeof(name) || !pc_name_ok(l, (size_t)(p - l), true))
        return pc_fail(s, "bad metric name in '%.60s'", l);
    snprintf(name, sizeof(name), "%.*s", (int)(p - l), l);

    struct pc_label lb[16];
    int nl = 0;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            const char *n0 = p;
            while (*p && *p != '=')
                p++;
            if (*p != '=' || nl >= 16 || (size_t)(p - n0) >= sizeof(lb[0].name) ||
                !pc_name_ok(n0, (size_t)(p - n0), false))
                return pc_fail(s, "bad label name in '%.60s'", l);
            snprintf(lb[nl].name, sizeof(lb[0].name), "%.*s", (int)(p - n0), n0);
            if (p[1] != '"')
                return pc_fail(s, "label value not quoted in '%.60s'", l);
            p += 2;
            size_t o = 0;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    return pc_fail(s, "unterminated label value");
                char c = *p;
                if (c == '\\') {
                    p++;
                    if (*p == 'n')
                        c = '\n';
                    else if (*p == '\\' || *p == '"')
                        c = *p;
                    else
                        return pc_fail(s, "bad escape in a label value");
                }
                if (o + 1 >= sizeof(lb[0].value))
                    return pc_fail(s, "label value too long");
                lb[nl].value[o++] = c;
                p++;
            }
            lb[nl].value[o] = '\0';
            for (int j = 0; j < nl; j++)
                if (strcmp(lb[j].name, lb[nl].name) == 0)
                    return pc_fail(s, "duplicate label '%s'", lb[nl].name);
            nl++;
            p++; /* closing quote */
            if (*p == ',')
                p++;
            else if (*p != '}')
                return pc_fail(s, "expected ',' or '}' after a label in '%.60s'", l);
        }
        p++;
    }
    if (*p != ' ')
        return pc_fail(s, "expected one space before the value in '%.60s'", l);
    p++;
    char val[64];
    const char *sp = strchr(p, ' ');
    size_t vn = sp ? (size_t)(sp - p) : strlen(p);
    if (vn == 0 || vn >= sizeof(val))
        return pc_fail(s, "bad value in '%.60s'", l);
    snprintf(val, sizeof(val), "%.*s", (int)vn, p);
    double v;
    if (!pc_float(val, &v))
        return pc_fail(s, "value '%s' is not a float", val);
    if (sp) {
        const char *t = sp + 1;
        if (*t == '-')
            t++;
        if (*t == '\0' || strspn(t, "0123456789") != strlen(t))
            return pc_fail(s, "bad timestamp in '%.60s'", l);
    }

    const char *suffix;
    int f = pc_owner(s, name, &suffix);
    if (f < 0 || !s->fam[f].help || !s->fam[f].typed)
        return pc_fail(s, "sample '%s' before (or without) its HELP and TYPE", name);
    struct pc_family *fm = &s->fam[f];
    if (fm->closed)
        return pc_fail(s, "samples of '%s' are not contiguous", fm->name);
    if (s->cur >= 0 && s->cur != f)
        s->fam[s->cur].closed = true;
    s->cur = f;
    fm->sampled = true;
    if (strcmp(fm->type, "counter") == 0 && !(v >= 0))
        return pc_fail(s, "counter '%s' is negative or NaN", name);

    /* Uniqueness of name + sorted labels. */
    qsort(lb, (size_t)nl, sizeof(lb[0]), pc_label_cmp);
    char key[640], rest[512] = "";
    size_t o = 0;
    for (int j = 0; j < nl; j++)
        if (strcmp(lb[j].name, "le") != 0 || strcmp(suffix, "_bucket") != 0)
            o += (size_t)snprintf(rest + o, sizeof(rest) - o, "%s=%s;", lb[j].name, lb[j].value);
    snprintf(key, sizeof(key), "%s{%s", name, rest);
    for (int j = 0; j < nl; j++)
        if (strcmp(lb[j].name, "le") == 0 && strcmp(suffix, "_bucket") == 0)
            snprintf(key + strlen(key), sizeof(key) - strlen(key), "le=%s", lb[j].value);
    for (int j = 0; j < s->nseen; j++)
        if (strcmp(s->seen[j], key) == 0)
            return pc_fail(s, "duplicate sample %s", key);
    if (s->nseen >= PC_MAX_SAMPLES)
        return pc_fail(s, "too many samples");
    snprintf(s->seen[s->nseen++], sizeof(s->seen[0]), "%s", key);

    if (strcmp(fm->type, "histogram") != 0)
        return 0;
    if (suffix[0] == '\0')
        return pc_fail(s, "histogram '%s' has a sample without _bucket/_sum/_count", fm->name);
    struct pc_series *se = NULL;
    for (int j = 0; j < s->nser; j++)
        if (strcmp(s->ser[j].family, fm->name) == 0 && strcmp(s->ser[j].labels, rest) == 0)
            se = &s->ser[j];
    if (se == NULL) {
        if (s->nser >= PC_MAX_SERIES)
            return pc_fail(s, "too many histogram series");
        se = &s->ser[s->nser++];
        memset(se, 0, sizeof(*se));
        memcpy(se->family, fm->name, sizeof(se->family)); /* same size */
        snprintf(se->labels, sizeof(se->labels), "%s", rest);
    }
    if (strcmp(suffix, "_bucket") == 0) {
        const char *le = NULL;
        for (int j = 0; j < nl; j++)
            if (strcmp(lb[j].name, "le") == 0)
                le = lb[j].value;
        double lv;
        if (le == NULL || !pc_float(le, &lv) || isnan(lv))
            return pc_fail(s, "bucket of '%s' without a valid le", fm->name);
        if (se->inf || se->sum || se->count)
            return pc_fail(s, "bucket of '%s' after +Inf, _sum or _count", fm->name);
        if (se->any_bucket && !(lv > se->last_le))
            return pc_fail(s, "le of '%s' not increasing (%s)", fm->name, le);
        if (se->any_bucket && v < se->last_count)
            return pc_fail(s, "bucket counts of '%s' not cumulative", fm->name);
        if (!(v >= 0) || v > 9e18 || v != (double)(long long)v)
            return pc_fail(s, "bucket count of '%s' is not a non-negative integer", fm->name);
        se->any_bucket = true;
        se->last_le = lv;
        se->last_count = v;
        if (isinf(lv)) {
            se->inf = true;
            se->inf_count = v;
        }
    } else if (strcmp(suffix, "_sum") == 0) {
        if (se->sum)
            return pc_fail(s, "second _sum of '%s'", fm->name);
        se->sum = true;
    } else {
        if (se->count)
            return pc_fail(s, "second _count of '%s'", fm->name);
        se->count = true;
        se->count_value = v;
    }
    return 0;
}

static int prom_check(const char *text, char *err, size_t errlen)
{
    struct pc_state *s = calloc(1, sizeof(*s));
    int rc = 0;
    if (s == NULL)
        return -1;
    s->seen = calloc(PC_MAX_SAMPLES, sizeof(*s->seen));
    s->cur = -1;
    s->err = err;
    s->errlen = errlen;
    err[0] = '\0';
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] != '\n') {
        snprintf(err, errlen, "the text does not end with a newline");
        rc = -1;
    }
    const char *p = text;
    while (rc == 0 && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, n);
        s->line++;
        if (line == NULL || n == 0)
            rc = line ? pc_fail(s, "empty line") : -1;
        else if (line[0] == '#')
            rc = pc_comment(s, line);
        else
            rc = pc_sample(s, line);
        free(line);
        p += n + (nl ? 1 : 0);
    }
    for (int j = 0; rc == 0 && j < s->nser; j++) {
        struct pc_series *se = &s->ser[j];
        if (!se->inf || !se->sum || !se->count)
            rc = pc_fail(s, "histogram '%s' {%s} lacks its +Inf bucket, _sum or _count", se->family,
                         se->labels);
        else if (se->count_value != se->inf_count)
            rc = pc_fail(s, "histogram '%s' _count %g differs from its +Inf bucket %g", se->family,
                         se->count_value, se->inf_count);
    }
    for (int j = 0; rc == 0 && j < s->nfam; j++)
        if (!s->fam[j].help || !s->fam[j].typed)
            rc = pc_fail(s, "family '%s' lacks HELP or TYPE", s->fam[j].name);
    free(s->seen);
    free(s);
    return rc;
}

#endif
