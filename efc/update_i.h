/* efc/update_i.h - runtime-update requests (update.c) and the result of one, as the state file
 * shows it.
 */
#ifndef EFC_UPDATE_I_H
#define EFC_UPDATE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EFC_UPDATE_MAX_ID 64 /* update ids: 1..64 of [A-Za-z0-9._-] */

/* Whether the N bytes at S make an update id. */
bool efc_update_id_valid(const char *s, size_t n);

/* ---- update requests -------------------------------------------------------------------------
 * The tool's <state>.pending.json:
 *   {"version": 1, "id": "<1..64 of [A-Za-z0-9._-]>", "action": "update"|"rollback",
 *    "mode": "merge"|"replace", "options": {"g_<name>": "<value>" | <integer> | <boolean>, ...}}
 * merge: the options change the running set; replace: the running set becomes the defaults plus
 * these (a rollback names every option the previous state had set). */

#define EFC_UPDATE_MAX_BYTES   (256u << 10)
#define EFC_UPDATE_MAX_OPTIONS 256

struct opt_set;

struct efc_update_req {
    char id[EFC_UPDATE_MAX_ID + 1];
    char action[16];
    bool replace;
};

/* Parses TEXT (LEN bytes) and builds the option set it asks for from CUR (the running set) into
 * OUT (which the caller releases with opt_release). Checks every name, value and relation
 * (opt_check), and refuses a change of an option the option table does not mark runtime.
 * Returns 0, or -EINVAL with a one-line reason in ERR; REQ->id is filled as soon as it is
 * known (so an error can be answered to the right request). */
int efc_update_parse(const char *text, size_t len, const struct opt_set *cur,
                     struct efc_update_req *req, struct opt_set *out, char *err, size_t errlen);

/* The state file's "update" section: the last update's id, "ok" or "error", a message, and the
 * time requests were held (handover.c keeps it; state.c writes it). */
struct efc_update_result {
    char id[EFC_UPDATE_MAX_ID + 1];
    bool ok;
    char message[512];
    uint64_t pause_ms;
    long previous_pid;
    int64_t time;
};

#endif
