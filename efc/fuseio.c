/* efc/fuseio.c - the session's /dev/fuse I/O, to make FUSE_PARALLEL_DIROPS reach the kernel.
 *
 * Why. Without FUSE_PARALLEL_DIROPS in the INIT reply the kernel serialises every lookup and
 * readdir of one directory on a per-directory mutex: 64 threads opening 64 files of one
 * directory wait for each other's round trips to the store, one by one. libfuse before 3.16
 * never copies FUSE_CAP_PARALLEL_DIROPS from conn->want into the INIT reply (libfuse pull request
 * #861); Debian 12 ships 3.14. So the session gets custom I/O callbacks (fuse_session_custom_io,
 * plain read(2) and writev(2) on the fd libfuse gives, which is a cloned per-thread fd when
 * clone_fd is on): the read callback notes the INIT request's id and whether the kernel offers
 * the flag; the write callback adds the flag to that one reply if op_init wanted it. With a
 * libfuse that sets the flag itself the OR changes nothing. Every other message passes through
 * untouched; splice is not used either way (libfuse only splices when FUSE_CAP_SPLICE_READ is
 * wanted, which efc does not ask for).
 *
 * The same callbacks serve runtime updates (handover.c): reads go through efc_handover_read, which
 * can hold the workers while the mount changes hands; the kernel's INIT request is kept for the
 * next process; and the reply to the INIT a new process replays is swallowed, since the kernel
 * had its answer from the first process long ago.
 *
 * Locks: none; the INIT request is read and answered before any other request exists, and the
 * fields it uses are atomics for the rest of the session's life.
 *
 * ThreadSanitizer. The kernel orders requests after the replies they follow (a RELEASE after the
 * replies to the handle's OPEN and its READs or READDIRs, a FORGET after its LOOKUP's), through
 * its own locks on the connection. TSan sees that order through read(2) and writev(2) on a
 * descriptor it saw opened, but not on one the process inherited: a runtime update's successor
 * and a daemon the supervisor starts serve the --fuse-fd they were given, and TSan then reports
 * the handlers of two such requests as a race. So a TSan build states the order here.
 */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "efc/efc.h"
#include "efc/handover_i.h"
#include "util/log.h"

#if defined(__SANITIZE_THREAD__)
#define EFC_FUSEIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EFC_FUSEIO_TSAN 1
#endif
#endif
#ifdef EFC_FUSEIO_TSAN
#include <sanitizer/tsan_interface.h>
static char kernel_order; /* its address stands for the connection's order */
#define REPLY_SENT()       __tsan_release(&kernel_order)
#define REQUEST_RECEIVED() __tsan_acquire(&kernel_order)
#else
#define REPLY_SENT()       ((void)0)
#define REQUEST_RECEIVED() ((void)0)
#endif

#define INIT_WAIT_MS 10000 /* efc_fuseio_answer_init */

#ifndef FUSE_UNIQUE_RESEND /* Linux 6.9's <linux/fuse.h>; Debian 12 has 6.1's */
#define FUSE_UNIQUE_RESEND (1ull << 63)
#endif

/* What the session notes of every request read: the INIT (its id, the kernel's offer, a copy
   for a successor) and the first resent request. */
static void note_request(struct efc *e, const void *buf, ssize_t n)
{
    if (n >= (ssize_t)sizeof(struct fuse_in_header) &&
        (((const struct fuse_in_header *)buf)->unique & FUSE_UNIQUE_RESEND) &&
        !atomic_exchange(&e->resent_seen, true))
        log_info("fuse: answering requests the kernel resent (taken by the previous daemon, "
                 "which died)");

    if (n >= (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in)) &&
        !atomic_load_explicit(&e->init_seen, memory_order_relaxed)) {
        const struct fuse_in_header *in = buf;
        if (in->opcode == FUSE_INIT) {
            const struct fuse_init_in *ii = (const void *)(in + 1);
            atomic_store(&e->kernel_parallel_dirops, (ii->flags & FUSE_PARALLEL_DIROPS) != 0);
            atomic_store(&e->init_unique, in->unique);
            atomic_store(&e->init_seen, true);
            if (e->handover)
                efc_handover_note_init(e->handover, buf, (size_t)n);
        }
    }
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
    struct efc *e = userdata;
    ssize_t n = e->handover ? efc_handover_read(e->handover, fd, buf, len) : read(fd, buf, len);

    REQUEST_RECEIVED();
    note_request(e, buf, n);
    return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    struct efc *e = userdata;
    uint64_t init = atomic_load_explicit(&e->init_unique, memory_order_relaxed);

    if (e->handover && efc_handover_swallow(e->handover, iov, count)) {
        size_t total = 0;
        for (int i = 0; i < count; i++)
            total += iov[i].iov_len;
        return (ssize_t)total;
    }
    if (init != 0 && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
        iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
        const struct fuse_out_header *out = iov[0].iov_base;
        if (out->unique == init) {
            atomic_store(&e->init_unique, 0);
            if (out->error == 0 && e->want_parallel_dirops &&
                atomic_load(&e->kernel_parallel_dirops)) {
                struct fuse_init_out *io = iov[1].iov_base;
                if (!(io->flags & FUSE_PARALLEL_DIROPS))
                    log_debug("fuse: adding FUSE_PARALLEL_DIROPS to the INIT reply (libfuse %s "
                              "leaves it out)",
                              fuse_pkgversion());
                io->flags |= FUSE_PARALLEL_DIROPS;
            }
            if (out->error == 0 && e->handover)
                efc_handover_note_init_reply(e->handover, iov, count);
        }
    }
    REPLY_SENT();
    return writev(fd, iov, count);
}

int efc_fuseio_install(struct efc *e)
{
    static const struct fuse_custom_io io = {
        .read = io_read,
        .writev = io_writev,
    };
    int fd = fuse_session_fd(e->se);

    if (fd < 0)
        return -EBADF;
    return fuse_session_custom_io(e->se, &io, fd);
}

int efc_fuseio_answer_init(struct efc *e, char *err, size_t errlen)
{
    int fd = fuse_session_fd(e->se);
    /* The kernel wants room for FUSE_MIN_READ_BUFFER; zeroed, since libfuse reads its own
       sizeof(struct fuse_init_in), which may exceed what an older kernel sends. */
    uint8_t *mem = calloc(1, FUSE_MIN_READ_BUFFER);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n = -1;
    int r, saved = 0;

    if (mem == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* Queued by mount(2) itself: there at once (the bound is for a kernel that misbehaves). */
    do
        r = poll(&p, 1, INIT_WAIT_MS);
    while (r < 0 && errno == EINTR);
    if (r > 0)
        do
            n = read(fd, mem, FUSE_MIN_READ_BUFFER);
        while (n < 0 && errno == EINTR);
    if (r < 0 || (r > 0 && n < 0))
        saved = errno;
    else if (n >= 0)
        REQUEST_RECEIVED();
    note_request(e, mem, n);
    if (!atomic_load(&e->init_seen)) {
        snprintf(err, errlen, "the kernel sent no FUSE INIT request (%s)",
                 saved    ? strerror(saved)
                 : r == 0 ? "none within 10 s"
                          : "another request came first");
        free(mem);
        return -EPROTO;
    }
    struct fuse_buf fb = {.size = (size_t)n, .mem = mem};
    fuse_session_process_buf(e->se, &fb); /* op_init; the reply goes through io_writev */
    free(mem);
    if (fuse_session_exited(e->se) || atomic_load(&e->init_unique) != 0) {
        snprintf(err, errlen, "libfuse did not answer the kernel's FUSE INIT");
        return -EPROTO;
    }
    return 0;
}
