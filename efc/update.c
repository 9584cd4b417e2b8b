/* efc/update.c - the runtime-update request parser (update_i.h): the tool's
 * <state>.pending.json, checked against the option table before a daemon touches anything.
 * Fuzzed by fuzz_update_request.
 */
#include "efc/update_i.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/opt.h"

bool efc_update_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > EFC_UPDATE_MAX_ID)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- update requests ------------------------------------------------------------------------- */

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

int efc_update_parse(const char *text, size_t len, const struct opt_set *cur,
                     struct efc_update_req *req, struct opt_set *out, char *err, size_t errlen)
{
    json_t *root = NULL;
    json_error_t jerr;
    bool out_ready = false;

    memset(req, 0, sizeof(*req));
    if (len > EFC_UPDATE_MAX_BYTES)
        BAD("update request: %zu bytes (at most %u)", len, EFC_UPDATE_MAX_BYTES);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        BAD("update request: not valid JSON (line %d: %s)", jerr.line, jerr.text);
    if (!json_is_object(root))
        BAD("update request: not a JSON object");
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != 1)
        BAD("update request: \"version\" must be 1");
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) || !efc_update_id_valid(json_string_value(id), json_string_length(id)))
        BAD("update request: \"id\" must be 1 to %d of [A-Za-z0-9._-]", EFC_UPDATE_MAX_ID);
    memcpy(req->id, json_string_value(id), json_string_length(id) + 1);
    json_t *action = json_object_get(root, "action");
    const char *act = json_is_string(action) ? json_string_value(action) : "update";
    if (strcmp(act, "update") != 0 && strcmp(act, "rollback") != 0)
        BAD("update request: \"action\" must be \"update\" or \"rollback\"");
    snprintf(req->action, sizeof(req->action), "%s", act);
    json_t *mode = json_object_get(root, "mode");
    const char *md = json_is_string(mode) ? json_string_value(mode) : "merge";
    if (strcmp(md, "merge") != 0 && strcmp(md, "replace") != 0)
        BAD("update request: \"mode\" must be \"merge\" or \"replace\"");
    req->replace = strcmp(md, "replace") == 0;
    json_t *opts = json_object_get(root, "options");
    if (!json_is_object(opts))
        BAD("update request: \"options\" must be an object");
    if (json_object_size(opts) > EFC_UPDATE_MAX_OPTIONS)
        BAD("update request: more than %d options", EFC_UPDATE_MAX_OPTIONS);

    if ((req->replace ? opt_init(out) : opt_copy(out, cur)) != 0)
        BAD("out of memory");
    out_ready = true;
    const char *name;
    json_t *val;
    json_object_foreach(opts, name, val)
    {
        char text_val[32], oerr[512];
        const char *s;
        size_t nl = strlen(name);
        int oid = nl <= 128 ? opt_lookup(name, nl) : -1;
        if (oid < 0)
            BAD("unknown option '%.128s'", name);
        if (json_is_string(val)) {
            s = json_string_value(val);
            if (json_string_length(val) > OPT_MAX_VALUE || strlen(s) != json_string_length(val))
                BAD("g_%s: value too long or holds a NUL byte", opt_table[oid].name);
        } else if (json_is_integer(val)) {
            snprintf(text_val, sizeof(text_val), "%lld", (long long)json_integer_value(val));
            s = text_val;
        } else if (json_is_boolean(val)) {
            s = json_is_true(val) ? "true" : "false";
        } else {
            BAD("g_%s: the value must be a string, an integer or a boolean", opt_table[oid].name);
        }
        if (opt_set_value(out, oid, s, oerr, sizeof(oerr)) != 0)
            BAD("%s", oerr);
    }
    /* What cannot change at all is said first: no other value would make it possible. */
    for (int i = 0; i < OPT__COUNT; i++) {
        const char *a = out->v[i].s ? out->v[i].s : "", *b = cur->v[i].s ? cur->v[i].s : "";
        if (!opt_table[i].runtime && strcmp(a, b) != 0)
            BAD("g_%s cannot change while mounted (not a runtime option; unmount and mount "
                "again to change it)",
                opt_table[i].name);
    }
    if (opt_check(out, err, errlen) != 0)
        goto fail;
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    if (out_ready)
        opt_release(out);
    /* one printable line, whatever names or values the request quoted */
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    return -EINVAL;
}

#undef BAD
