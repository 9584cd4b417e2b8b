/* cli/cli.h - the pieces of aliyun-alinas-efc-cli that read outside bytes or format output.
 *
 * The CLI (cli/main.c) finds a mount's management port by itself: the mount point is looked up in
 * /proc/self/mountinfo (it must be a fuse.aliyun-alinas-efc mount), then the daemon's state file
 * (efc/state.c: <state dir>/<mount point with '/' as '_'>.json) gives g_server_Port and
 * g_server_BindAddr. It then sends one GET to the mount's /v1 API (mgmt/mgmt.h) and turns the
 * JSON answer into plain text. Everything here is pure (no network, no global state) so that unit
 * tests and fuzz targets drive it; main.c holds the command line, libcurl and the terminal.
 *
 * Limits: mountinfo up to CLI_MAX_MOUNTINFO bytes, a state file up to CLI_MAX_STATE, an answer
 * up to CLI_MAX_BODY, CLI_MAX_TASKS warm-up tasks, CLI_MAX_MEMBERS cluster members; strings taken
 * from an answer are cut at CLI_MAX_FIELD bytes and have their control characters replaced before
 * they reach a terminal.
 */
#ifndef EFC_CLI_CLI_H
#define EFC_CLI_CLI_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_PROGRAM       "aliyun-alinas-efc-cli"
#define CLI_FSTYPE        "fuse.aliyun-alinas-efc"
#define CLI_MAX_MOUNTINFO (16u << 20)
#define CLI_MAX_STATE     (1u << 20)
#define CLI_MAX_BODY      (16u << 20)
#define CLI_MAX_FIELD     4096

/* Exit codes of the CLI. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_SERVER = 1,  /* the daemon answered an error (a non-zero ErrorCode) */
    CLI_EXIT_USAGE = 2,   /* the command line is wrong */
    CLI_EXIT_CONNECT = 3, /* the mount's management API cannot be found or reached */
};

/* ---- mountinfo --------------------------------------------------------------------------- */

struct cli_mount {
    bool found;             /* something is mounted exactly on the path */
    char fstype[64];        /* of the topmost mount on the path (the last line naming it) */
    char parent[PATH_MAX];  /* the nearest mount strictly enclosing the path, "" if none */
    char parent_fstype[64]; /* its fstype */
};

/* Looks MOUNTPOINT (absolute, canonical) up in TEXT, the content of a mountinfo file (LEN bytes,
 * NUL bytes allowed: they end nothing). Octal escapes (\040) in mount points are decoded.
 * Fills *M and returns 0 (M->found says whether it is a mount point); -EINVAL if MOUNTPOINT is
 * not absolute. */
int cli_mountinfo_find(const char *text, size_t len, const char *mountpoint, struct cli_mount *m);

/* Collapses "//", "." and trailing '/' of an absolute PATH without touching the file system.
 * Returns 0, -EINVAL if PATH is not absolute or has a ".." component (only realpath(3) can
 * resolve that), -ENAMETOOLONG. */
int cli_path_lexical(const char *path, char *out, size_t outlen);

/* ---- the state file ---------------------------------------------------------------------- */

struct cli_state {
    long pid;                  /* 0 if absent */
    unsigned port;             /* g_server_Port; 0 means the management API is off */
    char bind_addr[64];        /* g_server_BindAddr ("" if absent) */
    char mountpoint[PATH_MAX]; /* "" if absent */
};

/* Parses a state file (LEN bytes). Returns 0, or -EINVAL with a reason in ERR. */
int cli_state_parse(const char *text, size_t len, struct cli_state *st, char *err, size_t errlen);
/* The host part of a URL to reach a server bound to BIND: a wildcard address (0.0.0.0, ::, "")
 * becomes loopback, IPv6 gets brackets. -EINVAL if BIND is not an IP literal. */
int cli_connect_host(const char *bind, char *out, size_t outlen);

/* ---- answers of the management API ------------------------------------------------------- */

/* Parses an answer of /v1: a JSON object with an integer ErrorCode and, if present, a string
 * ErrorMessage and an array Results of objects. Returns the object (json_decref() it) or NULL
 * with a reason in ERR. */
json_t *cli_reply_parse(const char *body, size_t len, char *err, size_t errlen);
/* True if the answer or any of its Results carries a non-zero ErrorCode. */
bool cli_reply_failed(json_t *reply);

/* Copies S into OUT (OUTLEN > 0) with control characters (C0, DEL, C1) replaced by '?', so that
 * text from the daemon cannot drive the terminal; cuts at OUTLEN - 1 bytes. NULL is "". */
void cli_sanitize(const char *s, char *out, size_t outlen);
/* "512 B", "1.5 KiB", "100.0 GiB". */
void cli_human_size(uint64_t n, char *out, size_t outlen);

/* The ten counters of /v1/tier, in the seed's order. */
extern const char *const cli_tier_names[10];
/* Prints "name value" lines for the ten counters (taken from Results[0], or the top level).
 * Returns 0, or -EINVAL with a reason in ERR if a counter is missing or not an integer (nothing
 * is printed then). */
int cli_print_tier(FILE *out, json_t *reply, char *err, size_t errlen);

/* One line per result of warmup/load or warmup/cancel (OP "load" or "cancel"): successes on OUT
 * ("warm-up of 'P' started" / "warm-up of 'P' canceled"), failures on ERR_OUT. A top-level error
 * with no failed result is printed too. Returns the number of lines printed on ERR_OUT. */
int cli_print_results(FILE *out, FILE *err_out, json_t *reply, const char *op);

/* A task of warmup/stat, taken from Results[].TaskInfos[]. Strings are sanitized. */
struct cli_task {
    char path[CLI_MAX_FIELD];
    char pattern[CLI_MAX_FIELD];
    char status[32];
    char error[CLI_MAX_FIELD];
    bool is_dir;
    uint64_t completed, total, submit_us;
};
/* Every task of a warmup/stat answer, in order (each result's tasks are newest first). *OUT is
 * malloc'd (free() it), NULL when there are none. Returns the count, or -EINVAL with a reason in
 * ERR for a malformed TaskInfos, -ENOMEM. At most CLI_MAX_TASKS tasks are taken. */
#define CLI_MAX_TASKS 100000
long cli_stat_tasks(json_t *reply, struct cli_task **out, char *err, size_t errlen);
/* True for a status that will not change any more (completed, canceled, failed). */
bool cli_task_finished(const char *status);
/* Prints the stat answer as a table (Path, Status, Completed / Total, Progress, Submit time in
 * local time, Pattern, Error), a note for each path with no task (ErrorCode 0 or ENOENT with
 * no TaskInfos), and the other failed results on ERR_OUT. PRECEDING_S only words the note. Returns
 * 0, or -EINVAL with a reason in ERR. */
int cli_print_stat(FILE *out, FILE *err_out, json_t *reply, const char *preceding_s, char *err,
                   size_t errlen);
/* "12.9 GiB / 100.0 GiB" and "12.9%" for a task. */
void cli_task_progress(const struct cli_task *t, char *sizes, size_t sizeslen, char *pct,
                       size_t pctlen);

/* The answer of /v1/cluster (mgmt/mgmt.h), from Results[0] or the top level, as plain text: a
 * block of "name value" lines (rootlist, hash, loaded, self, role, authentication, members,
 * mismatched), a blank line, then a table with one member a line: Name, Role, State, Latency,
 * Requests, Errors, Bytes, Rootlist ("same", "differs (<its hash>)", "-" before the peer said),
 * Last error. What the answer does not say is printed "-"; this node's own counters too. At most
 * CLI_MAX_MEMBERS members are shown, then a line says how many more there are. Returns 0, or
 * -EINVAL with a reason in ERR when there is no Members array or a field has the wrong type,
 * -ENOMEM; nothing is printed then. */
#define CLI_MAX_MEMBERS 4096
int cli_print_cluster(FILE *out, json_t *reply, char *err, size_t errlen);

#endif
