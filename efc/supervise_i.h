/* efc/supervise_i.h - the supervisor that keeps a mount alive when its daemon dies or wedges
 * (supervise.c has the design; journal_i.h the state it restarts from).
 */
#ifndef EFC_SUPERVISE_I_H
#define EFC_SUPERVISE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct efc;

/* argv[0] of the supervisor process (so that tools and tests tell it from the daemon). */
#define EFC_SUPERVISOR_NAME "aliyun-alinas-efc-supervisor"
/* The name the supervisor's watchdog looks up in the mount's root; the daemon answers ENOENT at
 * once (fs.c), so an object of this name at the root of the mount is not visible. */
#define EFC_WATCHDOG_NAME ".efc-watchdog"

/* Whether the running kernel can resend the requests a dead daemon had read
 * (FUSE_NOTIFY_RESEND, Linux 6.9). */
bool efc_kernel_has_resend(void);

/* Starts the supervisor of E's mount (E->se mounted, E->journal created); LOG_PATH is the
 * daemon's log file (NULL: stderr). Returns 0 with the supervisor's pid in *PID, or -1 with a
 * reason in ERR. */
int efc_supervise_spawn(struct efc *e, const char *log_path, pid_t *pid, char *err, size_t errlen);

/* The daemon watches its supervisor PID: a thread that starts a new supervisor (and watches that
 * one) when the supervisor dies while the mount is served, so that killing the supervisor does
 * not leave the mount unsupervised. Sets E->supwatch. Returns 0 or -errno. */
int efc_supervise_watch(struct efc *e, pid_t pid, const char *log_path);
/* A runtime update is handing the mount over: no new supervisor is started until
 * efc_supervise_release (the update failed). Returns the supervisor's pid for the successor's
 * --supervisor-pid, or 0 (not watched). */
pid_t efc_supervise_hold(struct efc *e);
void efc_supervise_release(struct efc *e);
/* Ends the watch (the mount ends; the supervisor goes on until the daemon is gone). NULL-safe,
 * idempotent. */
void efc_supervise_unwatch(struct efc *e);

/* The supervisor process's main (argv[1] is "--supervise"). */
int efc_supervise_main(int argc, char **argv);

#endif
