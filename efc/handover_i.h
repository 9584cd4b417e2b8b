/* efc/handover_i.h - runtime updates: a running daemon hands its FUSE connection, inode table and
 * open handles to a new daemon process started with changed options, without unmounting.
 *
 * The sequence (handover.c has the details):
 *
 *     efc_runtime_ops           old daemon                          new daemon
 *     writes <state>.pending.json
 *     SIGUSR2 ------------>     validates the options (else: answers in the state file, done)
 *                               holds /dev/fuse reads, waits for the requests in flight
 *                               exports inodes and handles to a memfd (the blob below)
 *                               stops mgmt, read path, block cache (flushes its disk writes)
 *                               starts the new daemon ----------->  adopts /dev/fuse, replays
 *                                                                   INIT, imports the blob,
 *                                                                   starts cache and read path
 *                               exits  <-------------- "ok" ------  serves; writes the state file
 *     sees the new pid and "ok"
 *
 * Any failure before "ok" leaves the old daemon serving as before (it restarts what it stopped)
 * and its state file's "update" section says why.
 *
 * The pure parts live apart: the blob's codec in hoblob.c (hoblob_i.h), the update request's
 * parser and the result's shape in update.c (update_i.h). handover.c is the orchestration; it
 * calls state.c to write the state file, passing the result in (state.c calls nothing back).
 */
#ifndef EFC_HANDOVER_I_H
#define EFC_HANDOVER_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "efc/hoblob_i.h"
#include "efc/update_i.h"

struct efc;
struct efc_handover;

/* ---- the daemon's side (handover.c) ---------------------------------------------------------- */

/* Blocks the trigger signal (SIGUSR2) in the calling thread; call first thing in main(), so every
 * thread started later inherits the mask and only the handover thread receives it. */
void efc_handover_block_signals(void);

/* Sets up E->handover (before the FUSE channel is installed). ADOPT_FD >= 0: this process takes
 * over from another one: the blob is read from ADOPT_FD (and checked as a whole). Returns 0 or
 * -errno with a reason in ERR. */
int efc_handover_setup(struct efc *e, int adopt_fd, char *err, size_t errlen);
/* Taking over: restores the inode table (after efc_fs_setup). */
int efc_handover_restore_ns(struct efc *e, char *err, size_t errlen);
/* Taking over: makes libfuse process the saved INIT request, its reply swallowed (after
 * efc_fuseio_install). */
int efc_handover_replay_init(struct efc *e, char *err, size_t errlen);
/* Taking over: restores the open handles (after efc_fs_start). */
int efc_handover_restore_handles(struct efc *e, char *err, size_t errlen);
/* Starts the thread that waits for SIGUSR2 (in the process that serves, before the session
 * loop). When taking over, that thread first waits for the old process to exit and then writes
 * the state file. Returns 0 or -errno. */
int efc_handover_start(struct efc *e);
void efc_handover_free(struct efc *e);

/* The command line a successor of this daemon runs with options O (argv[0], protocol,
 * foreground, credentials, every option set, "--", source, mount point), without the file
 * descriptors a successor is handed: NULL-terminated, every string malloc'd; NULL without memory.
 * The supervisor starts its successors with it too (journal_i.h keeps a copy). */
struct opt_set;
char **efc_handover_argv(const struct efc *e, const struct opt_set *o);
void efc_handover_argv_free(char **argv);

/* The file this program runs from: "/proc/self/exe" (which still starts the same binary after a
 * package upgrade has replaced the file), or under valgrind (util/vg.h), where /proc/self/exe is
 * valgrind's tool, the daemon's own path as valgrind reports it. */
const char *efc_self_exe(void);

/* Starts this program again (efc_self_exe) with ARGV and the environment, as a runtime update's
 * successor, the supervisor and its successors are started: the child's signal mask holds only
 * BLOCKED (0: nothing), and SIGTERM, SIGINT, SIGHUP, SIGUSR2 and the handover's wake signal have
 * their default actions. Returns 0 (the child's pid in PID) or an errno value. */
int efc_spawn_self(char *const argv[], int blocked, pid_t *pid);

/* A memfd holding the LEN bytes at DATA (a blob for a successor's --handover-fd). Returns the
 * fd (close-on-exec), or -errno with a reason in ERR. */
int efc_handover_memfd(const void *data, size_t len, char *err, size_t errlen);
/* Waits up to TIMEOUT_MS for the ready line of the new process PID on FD. Returns 0 for "ok",
 * else -1 with its reason (or what became of the process: it is waited for) in WHY. */
int efc_handover_wait_ready(int fd, pid_t pid, int timeout_ms, char *why, size_t whylen);

/* The last update's result (update_i.h). Returns false when there is none. */
bool efc_handover_result(const struct efc *e, struct efc_update_result *r);

/* fuseio.c's hooks. efc_handover_read wraps read(2) of /dev/fuse: while a handover holds
 * requests it parks the calling worker instead (and wakes it out of a read already blocked).
 * efc_handover_note_init keeps the kernel's INIT request, efc_handover_note_init_reply the reply
 * it got (IOV as written). efc_handover_swallow tells whether a reply (IOV, COUNT) is the one to
 * the replayed INIT, which is not to be written. */
struct iovec;
ssize_t efc_handover_read(struct efc_handover *h, int fd, void *buf, size_t len);
void efc_handover_note_init(struct efc_handover *h, const void *buf, size_t len);
void efc_handover_note_init_reply(struct efc_handover *h, const struct iovec *iov, int count);
bool efc_handover_swallow(struct efc_handover *h, const struct iovec *iov, int count);

/* ---- fs.c's side ------------------------------------------------------------------------------
 */

/* Calls FN for every open handle (under fh_lock: FN must not call into fs.c). */
int efc_fs_export_handles(struct efc *e, int (*fn)(void *arg, const struct efc_fh_record *r),
                          void *arg);
/* Restores one handle under its number (after efc_fs_start). Returns 0, -EINVAL (a number out of
 * range or already in use), or -ENOMEM. */
int efc_fs_import_handle(struct efc *e, const struct efc_fh_record *r);
/* Ends an import: the numbers not restored become free. */
void efc_fs_import_done(struct efc *e);
/* Stops the read path and the block cache (queued disk writes are flushed) for a handover:
 * every file's reader is closed; handles, namespace and listings stay. No FUSE request may be
 * running. */
void efc_fs_suspend(struct efc *e);
/* Undoes efc_fs_suspend when the handover failed. Returns 0 or -errno with a reason in ERR. */
int efc_fs_resume(struct efc *e, char *err, size_t errlen);

#endif
