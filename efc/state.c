/* efc/state.c - the mount's state file; see efc.h.
 *
 * The management CLI finds a mount's daemon through this file, and a runtime update restarts the
 * daemon from it with changed options, so it records everything needed to start the same mount
 * again: the source, the mount point, the protocol, the credentials file and every option of the
 * option table with its current value (typed: booleans and numbers as JSON values), plus which
 * options were given explicitly. It never holds a secret: only the credentials file's path.
 *
 *     { "version": 1, "pid": 1234, "source": "b.oss-cn-hangzhou.aliyuncs.com:/",
 *       "mountpoint": "/mnt/oss", "protocol": "oss", "passwd_file": "/etc/passwd-oss",
 *       "start_time": 1765274023, "options": { "g_oss_Endpoint": "", ... },
 *       "explicit": [ "g_oss_Endpoint", ... ], "runtime_update": 1,
 *       "update": { "id": "...", "status": "ok"|"error", "message": "...", "time": 1765274099,
 *                   "pause_ms": 85, "previous_pid": 1200 } }
 *
 * "runtime_update" says the daemon takes updates (SIGUSR2 with <state>.pending.json, see
 * handover.c): efc_runtime_ops refuses to signal a daemon without it (SIGUSR2 would kill an older
 * one). "update" is the outcome of the last update this daemon (or its predecessor) handled.
 *
 * It is written to a temporary file and renamed into place, so a reader never sees half of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "efc/efc.h"
#include "efc/update_i.h"
#include "util/statefile.h"

#define EFC_STATE_VERSION 1

const char *efc_state_dir(void)
{
    return statefile_dir();
}

int efc_state_path(const char *mountpoint, char *out, size_t outlen)
{
    return statefile_path(statefile_dir(), mountpoint, out, outlen);
}

char *efc_state_json(const struct efc *e, long pid, const struct efc_update_result *last)
{
    json_t *root = json_object(), *opts = json_object(), *expl = json_array();
    char *text = NULL;
    char name[128];

    if (root == NULL || opts == NULL || expl == NULL)
        goto out;
    for (int i = 0; i < OPT__COUNT; i++) {
        const struct opt_value *v = &e->opts.v[i];
        json_t *j;
        switch (opt_table[i].type) {
        case OPT_BOOL:
            j = json_boolean(v->i != 0);
            break;
        case OPT_INT:
        case OPT_SIZE:
            j = json_integer((json_int_t)v->i);
            break;
        default:
            j = json_string(v->s ? v->s : "");
            break;
        }
        snprintf(name, sizeof(name), "g_%s", opt_table[i].name);
        if (j == NULL || json_object_set_new(opts, name, j) != 0)
            goto out;
        if (v->set && json_array_append_new(expl, json_string(name)) != 0)
            goto out;
    }
    if (json_object_set_new(root, "version", json_integer(EFC_STATE_VERSION)) ||
        json_object_set_new(root, "pid", json_integer(pid)) ||
        json_object_set_new(root, "source", json_string(e->remote.text ? e->remote.text : "")) ||
        json_object_set_new(root, "mountpoint", json_string(e->mountpoint ? e->mountpoint : "")) ||
        json_object_set_new(root, "protocol",
                            json_string(e->protocol == OSS_PROTO_S3 ? "s3" : "oss")) ||
        json_object_set_new(root, "passwd_file",
                            e->passwd_file ? json_string(e->passwd_file) : json_null()) ||
        json_object_set_new(root, "start_time", json_integer((json_int_t)e->mount_time)))
        goto out;
    if (json_object_set(root, "options", opts) || json_object_set(root, "explicit", expl))
        goto out;
    if (e->handover) {
        if (json_object_set_new(root, "runtime_update", json_integer(1)))
            goto out;
        if (last) {
            json_t *u = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "id", last->id, "status",
                                  last->ok ? "ok" : "error", "message", last->message, "time",
                                  (json_int_t)last->time, "pause_ms", (json_int_t)last->pause_ms,
                                  "previous_pid", (json_int_t)last->previous_pid);
            if (u == NULL || json_object_set_new(root, "update", u))
                goto out;
        }
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
out:
    json_decref(opts);
    json_decref(expl);
    json_decref(root);
    return text;
}

int efc_state_write(const struct efc *e, const struct efc_update_result *last, char *err,
                    size_t errlen)
{
    const char *dir = efc_state_dir();
    char tmp[PATH_MAX + 32];
    char *text;
    int fd, rc = 0;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
        return rc;
    }
    text = efc_state_json(e, (long)getpid(), last);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", e->state_path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
        free(text);
        return rc;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && write(fd, "\n", 1) != 1)
        rc = -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    free(text);
    if (rc == 0 && rename(tmp, e->state_path) != 0)
        rc = -errno;
    if (rc) {
        snprintf(err, errlen, "cannot write '%s': %s", e->state_path, strerror(-rc));
        unlink(tmp);
    }
    return rc;
}
