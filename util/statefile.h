/* util/statefile.h - where a mount's state file lives: one rule for the daemon and the CLI.
 *
 * The daemon records its state (pid, options, management port) in
 * <state dir>/<mount point with every '/' made '_'>.json; aliyun-alinas-efc-cli and
 * efc_runtime_ops find it by the same rule. The state directory is $EFC_STATE_DIR when that is an
 * absolute path, else /run/efc.
 */
#ifndef EFC_UTIL_STATEFILE_H
#define EFC_UTIL_STATEFILE_H

#include <stddef.h>

/* $EFC_STATE_DIR if absolute, else "/run/efc". */
const char *statefile_dir(void);
/* The state file's path for MOUNTPOINT in directory DIR. 0, or -ENAMETOOLONG if it does not fit
 * in OUTLEN bytes. */
int statefile_path(const char *dir, const char *mountpoint, char *out, size_t outlen);

#endif
