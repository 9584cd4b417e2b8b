/* util/vg.h - whether this process runs under valgrind, for the few places that must know.
 *
 * Two things do not work under valgrind as they do natively: memcheck does not know that the
 * kernel wrote the buffers of an io_uring read (so every byte read from the disk cache would look
 * uninitialised), and /proc/self/exe is valgrind's own tool binary, so a daemon that starts itself
 * again through it would start valgrind's tool without valgrind. cache/disk.c uses pread/pwrite and
 * efc/handover.c starts the daemon's own path instead when efc_on_valgrind() is true.
 *
 * A build configured with -DEFC_VALGRIND=ON (tests/valgrind.sh) always says true: it takes those
 * paths whether valgrind runs it or not. Any other build asks valgrind (RUNNING_ON_VALGRIND, a few
 * instructions that valgrind recognises and that do nothing natively) when valgrind's header was
 * there at build time, and says false otherwise; natively it is false, so the default build
 * behaves as it did.
 */
#ifndef EFC_UTIL_VG_H
#define EFC_UTIL_VG_H

#include <stdbool.h>

#if defined(EFC_VALGRIND)
static inline bool efc_on_valgrind(void)
{
    return true;
}
#elif defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
static inline bool efc_on_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}
#else
static inline bool efc_on_valgrind(void)
{
    return false;
}
#endif

#endif
