/* oss/oss_xml.c - streaming parser for the three XML answers a read-only client reads:
 * ListBucketResult (ListObjects v1 and v2, OSS and S3 shapes), Error, and BucketStat.
 *
 * expat calls back per element; we keep a stack of what each open element is (its role, decided
 * from its local name and its parent's role, so namespaces and prefixes do not matter and unknown
 * elements such as Owner{ID,DisplayName} are skipped), the text of the innermost element (bounded
 * by OSS_XML_MAX_TEXT), and, for listings, the raw strings of the page in one bounded arena (a
 * struct buf capped at OSS_MAX_LIST_BODY: every stored string came out of the body, so the arena
 * can never need more than the body itself). Entries hold arena offsets while the page streams
 * in, because the arena moves when it grows; the final feed turns them into pointers once.
 *
 * Percent-decoding happens at the end too, in place (a decoded string is never longer), because
 * <EncodingType> may come after the first <Contents>. Keys, prefixes and v1's NextMarker are
 * decoded as query components ('+' is a space), as the official SDKs do (Go: url.QueryUnescape,
 * botocore: unquote_plus). OSS-NOTES says OSS also encodes the continuation token (the Go v2 SDK
 * decodes NextContinuationToken), but S3 sends its base64 token unencoded even with
 * encoding-type=url; the token is therefore decoded with '+' kept as '+', which is right for both:
 * an encoded token never holds a raw '+', and a raw base64 token never holds a '%'.
 *
 * Hostile input: DOCTYPE and entity declarations stop the parser (so no entity can ever expand),
 * nesting is capped at OSS_XML_MAX_DEPTH, every element's text at OSS_XML_MAX_TEXT, a page at
 * OSS_XML_MAX_ENTRIES entries and the body at OSS_MAX_LIST_BODY / OSS_MAX_ERROR_BODY bytes.
 * Error strings name elements, never element text, so nothing from the body reaches a log line
 * except names expat has already checked to be XML names.
 */

/* expat.h declares the billion-laughs limits only #ifdef XML_DTD, a macro that lives in the
 * uninstalled expat_config.h; every distribution builds expat with DTD support (the default). */
#ifndef XML_DTD
#define XML_DTD 1
#endif

#include "oss/oss_xml_i.h"

#include <errno.h>
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"
#include "util/timeutil.h"
#include "util/urlenc.h"

#define XML_NAME_KEEP        48 /* element names kept for error messages */
#define XML_MAX_ERROR_FIELDS 16
#define XML_MAX_FIELD_NAME   64
#define NO_OFF               SIZE_MAX

/* What an open element is to us. */
enum role {
    R_IGNORED = 0, /* unknown element, or inside one */
    R_ROOT,
    /* ListBucketResult children */
    R_IS_TRUNCATED,
    R_NEXT_TOKEN,
    R_NEXT_MARKER,
    R_ENCODING_TYPE,
    R_MARKER,
    R_CONTENTS,
    R_PREFIXES,
    /* Contents children */
    R_KEY,
    R_LAST_MODIFIED,
    R_ETAG,
    R_SIZE,
    R_STORAGE_CLASS,
    /* CommonPrefixes child */
    R_PREFIX,
    /* BucketStat children */
    R_STAT_STORAGE,
    R_STAT_COUNT,
    /* any child of Error */
    R_ERROR_FIELD,
};

static const char *const role_names[] = {
    [R_IS_TRUNCATED] = "IsTruncated",
    [R_NEXT_TOKEN] = "NextContinuationToken",
    [R_NEXT_MARKER] = "NextMarker",
    [R_ENCODING_TYPE] = "EncodingType",
    [R_MARKER] = "Marker",
    [R_CONTENTS] = "Contents",
    [R_PREFIXES] = "CommonPrefixes",
    [R_KEY] = "Key",
    [R_LAST_MODIFIED] = "LastModified",
    [R_ETAG] = "ETag",
    [R_SIZE] = "Size",
    [R_STORAGE_CLASS] = "StorageClass",
    [R_PREFIX] = "Prefix",
    [R_STAT_STORAGE] = "Storage",
    [R_STAT_COUNT] = "ObjectCount",
};

/* Roles whose value is their text: a child element inside one is malformed. */
static bool role_is_leaf(enum role r)
{
    return r >= R_IS_TRUNCATED && r != R_CONTENTS && r != R_PREFIXES && r != R_ERROR_FIELD;
}

/* A listing entry while the page streams in: strings are arena offsets. */
struct raw_entry {
    size_t key; /* NO_OFF until <Key> / <Prefix> */
    size_t key_len;
    size_t etag; /* NO_OFF: none */
    uint64_t size;
    time_t mtime;
    enum oss_storage_class storage_class;
    bool is_prefix;
    unsigned seen; /* bit per role, to refuse duplicates */
};

struct err_field {
    char *name;
    char *value;
};

struct oss_xml {
    enum oss_xml_kind kind;
    XML_Parser p;
    size_t fed;
    size_t max_body;
    bool failed;
    bool done; /* the final feed succeeded: results are valid */
    char err[256];

    int depth; /* open elements; the root is depth 1 */
    enum role role[OSS_XML_MAX_DEPTH + 1];
    char name[OSS_XML_MAX_DEPTH + 1][XML_NAME_KEEP];
    bool had_child[OSS_XML_MAX_DEPTH + 1];
    size_t text_len;
    char text[OSS_XML_MAX_TEXT + 1];

    /* OSS_XML_LIST */
    struct buf arena;
    struct raw_entry *raw;
    size_t nraw, raw_cap;
    struct raw_entry cur;
    unsigned seen_top; /* bit per role for ListBucketResult children */
    bool truncated;
    bool url_encoded;
    size_t token_off, token_len;   /* NextContinuationToken */
    size_t marker_off, marker_len; /* NextMarker */
    struct oss_list_entry *entries;
    char *next_token; /* decoded, owned */

    /* OSS_XML_ERROR */
    struct err_field fields[XML_MAX_ERROR_FIELDS];
    size_t nfields;

    /* OSS_XML_STAT */
    struct oss_bucket_stat stat;
    unsigned seen_stat;
};

static const char *const root_names[] = {
    [OSS_XML_LIST] = "ListBucketResult",
    [OSS_XML_ERROR] = "Error",
    [OSS_XML_STAT] = "BucketStat",
};

/* Records the first failure; later ones would only describe its consequences. */
static void fail_msg(struct oss_xml *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_msg(struct oss_xml *x, const char *fmt, ...)
{
    if (x->failed)
        return;
    x->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof(x->err), fmt, ap);
    va_end(ap);
}

/* From a handler: also stops expat, with the line the problem is on. */
static void fail_parse(struct oss_xml *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_parse(struct oss_xml *x, const char *fmt, ...)
{
    if (x->failed)
        return;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    fail_msg(x, "xml: line %lu: %s", (unsigned long)XML_GetCurrentLineNumber(x->p), what);
    XML_StopParser(x->p, XML_FALSE);
}

static const char *local_name(const char *name)
{
    const char *colon = strrchr(name, ':');
    return colon ? colon + 1 : name;
}

static enum role classify(const struct oss_xml *x, enum role parent, const char *n)
{
    switch (x->kind) {
    case OSS_XML_LIST:
        if (parent == R_ROOT) {
            static const enum role top[] = {R_IS_TRUNCATED,  R_NEXT_TOKEN, R_NEXT_MARKER,
                                            R_ENCODING_TYPE, R_MARKER,     R_CONTENTS,
                                            R_PREFIXES};
            for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
                if (strcmp(n, role_names[top[i]]) == 0)
                    return top[i];
        } else if (parent == R_CONTENTS) {
            static const enum role sub[] = {R_KEY, R_LAST_MODIFIED, R_ETAG, R_SIZE,
                                            R_STORAGE_CLASS};
            for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
                if (strcmp(n, role_names[sub[i]]) == 0)
                    return sub[i];
        } else if (parent == R_PREFIXES) {
            if (strcmp(n, "Prefix") == 0)
                return R_PREFIX;
        }
        return R_IGNORED;
    case OSS_XML_ERROR:
        return parent == R_ROOT ? R_ERROR_FIELD : R_IGNORED;
    case OSS_XML_STAT:
        if (parent == R_ROOT && strcmp(n, "Storage") == 0)
            return R_STAT_STORAGE;
        if (parent == R_ROOT && strcmp(n, "ObjectCount") == 0)
            return R_STAT_COUNT;
        return R_IGNORED;
    }
    return R_IGNORED;
}

/* Strict decimal: digits only, no sign, no blanks, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Copies the current text, NUL included, into the arena; returns its offset or NO_OFF. */
static size_t arena_put(struct oss_xml *x)
{
    size_t off = x->arena.len;
    int rc = buf_append(&x->arena, x->text, x->text_len + 1);
    if (rc) {
        fail_parse(x, "%s", rc == -ENOMEM ? "out of memory" : "listing larger than its limit");
        return NO_OFF;
    }
    return off;
}

static void start_element(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct oss_xml *x = ud;
    (void)atts;
    if (x->failed)
        return;
    const char *n = local_name(name);
    if (x->depth >= OSS_XML_MAX_DEPTH) {
        fail_parse(x, "elements nested deeper than %d at <%.*s>", OSS_XML_MAX_DEPTH,
                   XML_NAME_KEEP - 1, n);
        return;
    }
    enum role parent = x->depth ? x->role[x->depth] : R_IGNORED;
    enum role r;
    if (x->depth == 0) {
        if (strcmp(n, root_names[x->kind]) != 0) {
            fail_parse(x, "unexpected root element <%.*s>, expected <%s>", XML_NAME_KEEP - 1, n,
                       root_names[x->kind]);
            return;
        }
        r = R_ROOT;
    } else {
        x->had_child[x->depth] = true;
        if (role_is_leaf(parent)) {
            fail_parse(x, "unexpected element <%.*s> inside <%s>", XML_NAME_KEEP - 1, n,
                       x->name[x->depth]);
            return;
        }
        r = parent == R_IGNORED ? R_IGNORED : classify(x, parent, n);
    }

    if (r == R_CONTENTS || r == R_PREFIXES) {
        if (x->nraw >= OSS_XML_MAX_ENTRIES) {
            fail_parse(x, "more than %d entries in one listing", OSS_XML_MAX_ENTRIES);
            return;
        }
        memset(&x->cur, 0, sizeof(x->cur));
        x->cur.key = NO_OFF;
        x->cur.etag = NO_OFF;
        x->cur.storage_class = OSS_SC_STANDARD;
        x->cur.is_prefix = r == R_PREFIXES;
    }

    x->depth++;
    x->role[x->depth] = r;
    x->had_child[x->depth] = false;
    snprintf(x->name[x->depth], XML_NAME_KEEP, "%s", n);
    x->text_len = 0;
}

static void end_list_field(struct oss_xml *x, enum role r)
{
    const char *t = x->text;
    unsigned bit = 1u << r;

    if (r == R_CONTENTS || r == R_PREFIXES) {
        if (x->cur.key == NO_OFF) {
            fail_parse(x, "<%s> without <%s>", role_names[r], r == R_CONTENTS ? "Key" : "Prefix");
            return;
        }
        if (x->nraw == x->raw_cap) {
            size_t cap = x->raw_cap ? x->raw_cap * 2 : 64;
            if (cap > OSS_XML_MAX_ENTRIES)
                cap = OSS_XML_MAX_ENTRIES;
            struct raw_entry *p = realloc(x->raw, cap * sizeof(*p));
            if (p == NULL) {
                fail_parse(x, "out of memory");
                return;
            }
            x->raw = p;
            x->raw_cap = cap;
        }
        x->raw[x->nraw++] = x->cur;
        return;
    }

    unsigned *seen = r >= R_KEY ? &x->cur.seen : &x->seen_top;
    if (r != R_MARKER && (*seen & bit)) {
        fail_parse(x, "duplicate <%s>", role_names[r]);
        return;
    }
    *seen |= bit;

    switch (r) {
    case R_IS_TRUNCATED:
        if (strcasecmp(t, "true") == 0)
            x->truncated = true;
        else if (strcasecmp(t, "false") == 0)
            x->truncated = false;
        else
            fail_parse(x, "bad <IsTruncated> value");
        break;
    case R_ENCODING_TYPE:
        x->url_encoded = strcasecmp(t, "url") == 0;
        break;
    case R_NEXT_TOKEN:
        x->token_off = arena_put(x);
        x->token_len = x->text_len;
        break;
    case R_NEXT_MARKER:
        x->marker_off = arena_put(x);
        x->marker_len = x->text_len;
        break;
    case R_KEY:
    case R_PREFIX:
        x->cur.key = arena_put(x);
        x->cur.key_len = x->text_len;
        break;
    case R_ETAG:
        if (x->text_len > OSS_MAX_ETAG_LEN) {
            fail_parse(x, "<ETag> longer than %d bytes", OSS_MAX_ETAG_LEN);
            break;
        }
        x->cur.etag = arena_put(x);
        break;
    case R_LAST_MODIFIED:
        if (time_parse_http(t, &x->cur.mtime) != 0)
            fail_parse(x, "bad <LastModified> time");
        break;
    case R_SIZE:
        if (parse_u64(t, &x->cur.size) != 0)
            fail_parse(x, "bad <Size> value");
        break;
    case R_STORAGE_CLASS:
        x->cur.storage_class = oss_storage_class_parse(t);
        break;
    default:
        break;
    }
}

static void end_error_field(struct oss_xml *x)
{
    const char *n = x->name[x->depth];
    /* A field with children is not a name/value pair; the first of duplicates wins; names are
       kept at XML_NAME_KEEP bytes, so longer ones could collide and are skipped. */
    if (x->had_child[x->depth] || x->nfields >= XML_MAX_ERROR_FIELDS ||
        strlen(n) >= XML_NAME_KEEP - 1)
        return;
    for (size_t i = 0; i < x->nfields; i++)
        if (strcmp(x->fields[i].name, n) == 0)
            return;
    char *name = strdup(n);
    char *value = malloc(x->text_len + 1);
    if (name == NULL || value == NULL) {
        free(name);
        free(value);
        fail_parse(x, "out of memory");
        return;
    }
    memcpy(value, x->text, x->text_len + 1);
    x->fields[x->nfields].name = name;
    x->fields[x->nfields].value = value;
    x->nfields++;
}

static void end_element(void *ud, const XML_Char *name)
{
    struct oss_xml *x = ud;
    (void)name;
    if (x->failed || x->depth == 0)
        return;
    enum role r = x->role[x->depth];
    x->text[x->text_len] = '\0';

    switch (r) {
    case R_IGNORED:
    case R_ROOT:
        break;
    case R_STAT_STORAGE:
    case R_STAT_COUNT: {
        unsigned bit = 1u << r;
        if (x->seen_stat & bit) {
            fail_parse(x, "duplicate <%s>", role_names[r]);
            break;
        }
        x->seen_stat |= bit;
        uint64_t *v = r == R_STAT_STORAGE ? &x->stat.storage : &x->stat.object_count;
        if (parse_u64(x->text, v) != 0)
            fail_parse(x, "bad <%s> value", role_names[r]);
        break;
    }
    case R_ERROR_FIELD:
        end_error_field(x);
        break;
    default:
        end_list_field(x, r);
        break;
    }
    x->depth--;
    x->text_len = 0;
}

static void char_data(void *ud, const XML_Char *s, int len)
{
    struct oss_xml *x = ud;
    if (x->failed || x->depth == 0 || len <= 0)
        return;
    if ((size_t)len > OSS_XML_MAX_TEXT - x->text_len) {
        fail_parse(x, "element text too long in <%s>", x->name[x->depth]);
        return;
    }
    memcpy(x->text + x->text_len, s, (size_t)len);
    x->text_len += (size_t)len;
}

static void doctype_decl(void *ud, const XML_Char *name, const XML_Char *sysid,
                         const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail_parse(ud, "DOCTYPE not allowed");
}

static void entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                        int value_len, const XML_Char *base, const XML_Char *sysid,
                        const XML_Char *pubid, const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    fail_parse(ud, "entity declarations not allowed");
}

struct oss_xml *oss_xml_new(enum oss_xml_kind kind)
{
    if (kind != OSS_XML_LIST && kind != OSS_XML_ERROR && kind != OSS_XML_STAT)
        return NULL;
    struct oss_xml *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->kind = kind;
    x->max_body = kind == OSS_XML_LIST ? OSS_MAX_LIST_BODY : OSS_MAX_ERROR_BODY;
    buf_init(&x->arena, OSS_MAX_LIST_BODY);
    x->token_off = NO_OFF;
    x->marker_off = NO_OFF;
    x->p = XML_ParserCreate(NULL);
    if (x->p == NULL) {
        free(x);
        return NULL;
    }
    XML_SetUserData(x->p, x);
    XML_SetElementHandler(x->p, start_element, end_element);
    XML_SetCharacterDataHandler(x->p, char_data);
    XML_SetStartDoctypeDeclHandler(x->p, doctype_decl);
    XML_SetEntityDeclHandler(x->p, entity_decl);
    XML_SetParamEntityParsing(x->p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 4)
    /* Unreachable with DOCTYPE refused; kept in case a handler above is ever relaxed. */
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(x->p, 10.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(x->p, 64u << 10);
#endif
    return x;
}

void oss_xml_free(struct oss_xml *x)
{
    if (x == NULL)
        return;
    XML_ParserFree(x->p);
    buf_release(&x->arena);
    free(x->raw);
    free(x->entries);
    free(x->next_token);
    for (size_t i = 0; i < x->nfields; i++) {
        free(x->fields[i].name);
        free(x->fields[i].value);
    }
    free(x);
}

/* Decodes the arena string at OFF (LEN bytes) in place. Returns its new length, or -1. */
static long decode_in_place(struct oss_xml *x, struct buf *scratch, size_t off, size_t len,
                            bool plus_is_space)
{
    char *s = x->arena.data + off;
    buf_reset(scratch);
    if (url_decode(scratch, s, len, plus_is_space) != 0)
        return -1;
    if (scratch->len)
        memcpy(s, scratch->data, scratch->len);
    s[scratch->len] = '\0';
    return (long)scratch->len;
}

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* The final step of a listing: decode, validate and turn offsets into pointers. */
static int finish_list(struct oss_xml *x)
{
    struct buf scratch;
    int rc = 0;
    buf_init(&scratch, OSS_MAX_TOKEN_LEN);

    if (x->nraw) {
        x->entries = calloc(x->nraw, sizeof(*x->entries));
        if (x->entries == NULL) {
            fail_msg(x, "xml: out of memory");
            return -ENOMEM;
        }
    }
    const char *last = NULL; /* the greatest key, for v1 pages without NextMarker */
    size_t last_len = 0;
    for (size_t i = 0; i < x->nraw; i++) {
        struct raw_entry *r = &x->raw[i];
        const char *what = r->is_prefix ? "Prefix" : "Key";
        char *key = x->arena.data + r->key;
        size_t len = r->key_len;
        if (x->url_encoded) {
            long n = decode_in_place(x, &scratch, r->key, len, true);
            if (n < 0) {
                fail_msg(x, "xml: entry %zu: bad percent-encoding or over-long <%s>", i + 1, what);
                rc = -EBADMSG;
                break;
            }
            len = (size_t)n;
        }
        if (len == 0 || len > OSS_MAX_KEY_LEN || memchr(key, '\0', len) != NULL) {
            fail_msg(x, "xml: entry %zu: %s <%s>", i + 1,
                     len == 0                ? "empty"
                     : len > OSS_MAX_KEY_LEN ? "over-long"
                                             : "NUL byte in",
                     what);
            rc = -EBADMSG;
            break;
        }
        struct oss_list_entry *e = &x->entries[i];
        e->key = key;
        e->is_prefix = r->is_prefix;
        e->size = r->size;
        e->mtime = r->mtime;
        e->etag = r->etag == NO_OFF ? "" : x->arena.data + r->etag;
        e->storage_class = r->storage_class;
        if (last == NULL || bytes_cmp(key, len, last, last_len) > 0) {
            last = key;
            last_len = len;
        }
    }
    if (rc)
        goto out;

    const char *tok = "";
    size_t tok_len = 0;
    if (!x->truncated) {
        /* The listing is complete, whatever else the page says. */
    } else if (x->token_off != NO_OFF || x->marker_off != NO_OFF) {
        bool v2 = x->token_off != NO_OFF;
        const char *what = v2 ? "NextContinuationToken" : "NextMarker";
        size_t off = v2 ? x->token_off : x->marker_off;
        tok_len = v2 ? x->token_len : x->marker_len;
        if (x->url_encoded) {
            long n = decode_in_place(x, &scratch, off, tok_len, !v2);
            if (n < 0) {
                fail_msg(x, "xml: bad percent-encoding or length in <%s>", what);
                rc = -EBADMSG;
                goto out;
            }
            tok_len = (size_t)n;
        }
        tok = x->arena.data + off;
        if (tok_len == 0 || tok_len > OSS_MAX_TOKEN_LEN || memchr(tok, '\0', tok_len) != NULL) {
            fail_msg(x, "xml: %s <%s>", tok_len == 0 ? "empty" : "bad", what);
            rc = -EBADMSG;
            goto out;
        }
    } else if ((x->seen_top & (1u << R_MARKER)) && last != NULL) {
        /* ListObjects v1 on S3 sends NextMarker only with a delimiter; otherwise the greatest key
           of the page is the next marker. */
        tok = last;
        tok_len = last_len;
    } else {
        fail_msg(x, "xml: truncated listing without NextContinuationToken or NextMarker");
        rc = -EBADMSG;
        goto out;
    }
    x->next_token = malloc(tok_len + 1);
    if (x->next_token == NULL) {
        fail_msg(x, "xml: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    memcpy(x->next_token, tok, tok_len);
    x->next_token[tok_len] = '\0';
out:
    buf_release(&scratch);
    if (rc) {
        x->failed = true;
        return -EBADMSG;
    }
    return 0;
}

int oss_xml_feed(struct oss_xml *x, const char *data, size_t len, bool final)
{
    if (x->failed)
        return -EBADMSG;
    if (x->done) {
        fail_msg(x, "xml: data after the final chunk");
        return -EBADMSG;
    }
    if (len > x->max_body - x->fed) {
        fail_msg(x, "xml: body larger than %zu bytes", x->max_body);
        return -EBADMSG;
    }
    x->fed += len;
    /* len <= max_body (16 MiB) fits XML_Parse's int. */
    if (XML_Parse(x->p, data, (int)len, final) != XML_STATUS_OK) {
        if (!x->failed)
            fail_msg(x, "xml: line %lu: %s", (unsigned long)XML_GetErrorLineNumber(x->p),
                     XML_ErrorString(XML_GetErrorCode(x->p)));
        x->failed = true;
        return -EBADMSG;
    }
    if (x->failed) /* a handler failed without expat noticing (cannot happen, but cheap) */
        return -EBADMSG;
    if (!final)
        return 0;

    if (x->kind == OSS_XML_LIST && finish_list(x) != 0)
        return -EBADMSG;
    if (x->kind == OSS_XML_STAT) {
        unsigned need = 1u << R_STAT_STORAGE | 1u << R_STAT_COUNT;
        if ((x->seen_stat & need) != need) {
            fail_msg(x, "xml: <BucketStat> without <%s>",
                     x->seen_stat & (1u << R_STAT_STORAGE) ? "ObjectCount" : "Storage");
            return -EBADMSG;
        }
    }
    x->done = true;
    return 0;
}

const char *oss_xml_error(const struct oss_xml *x)
{
    if (x->failed)
        return x->err;
    return x->done ? "" : "xml: incomplete document";
}

size_t oss_xml_list_count(const struct oss_xml *x)
{
    return x->done && x->kind == OSS_XML_LIST ? x->nraw : 0;
}

const struct oss_list_entry *oss_xml_list_entry(const struct oss_xml *x, size_t i)
{
    return i < oss_xml_list_count(x) ? &x->entries[i] : NULL;
}

bool oss_xml_list_truncated(const struct oss_xml *x)
{
    return x->done && x->kind == OSS_XML_LIST && x->truncated;
}

const char *oss_xml_list_next_token(const struct oss_xml *x)
{
    return x->done && x->next_token ? x->next_token : "";
}

const char *oss_xml_error_field(const struct oss_xml *x, const char *name)
{
    if (!x->done || name == NULL)
        return NULL;
    for (size_t i = 0; i < x->nfields; i++)
        if (strcmp(x->fields[i].name, name) == 0)
            return x->fields[i].value;
    return NULL;
}

static const char *field_or_empty(const struct oss_xml *x, const char *name)
{
    const char *v = oss_xml_error_field(x, name);
    return v ? v : "";
}

const char *oss_xml_error_code(const struct oss_xml *x)
{
    return field_or_empty(x, "Code");
}

const char *oss_xml_error_message(const struct oss_xml *x)
{
    return field_or_empty(x, "Message");
}

const char *oss_xml_error_request_id(const struct oss_xml *x)
{
    return field_or_empty(x, "RequestId");
}

void oss_xml_stat(const struct oss_xml *x, struct oss_bucket_stat *st)
{
    if (x->done && x->kind == OSS_XML_STAT) {
        *st = x->stat;
    } else {
        st->storage = 0;
        st->object_count = 0;
    }
}
