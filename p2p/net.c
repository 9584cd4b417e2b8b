/* p2p/net.c - sockets of the P2P connections: addresses, options, sends and receives with
 * deadlines, and the reading of a frame's header and meta (wire_i.h decodes them).
 *
 * Every connection is non-blocking: the receive threads multiplex them with epoll, and a sender
 * that finds the socket full waits for it with poll, up to a deadline after which the peer is
 * taken for stalled. A frame head is read exactly (the header, then the meta it announces), so
 * the bulk data after it can go straight to where it belongs without an intermediate copy.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "p2p/p2p_i.h"

uint64_t p2p_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void p2p_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

int p2p_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *len = sizeof(*a6);
        return 0;
    }
    return -EINVAL;
}

void p2p_sock_setup(int fd)
{
    int one = 1, idle = 5, intvl = 2, cnt = 3;
    unsigned user_timeout = 10000; /* ms: unacknowledged data this long ends the connection */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

/* Waits for EVENTS on FD until DEADLINE (ns). 0, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = p2p_now_ns();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t ms = (deadline - now + 999999) / 1000000;
        struct pollfd pf = {.fd = fd, .events = events};
        int r = poll(&pf, 1, ms > 60000 ? 60000 : (int)ms);
        if (r > 0)
            return 0; /* readable, writable, or an error the next call reports */
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int p2p_send_all(int fd, struct iovec *iov, int n, int timeout_ms)
{
    uint64_t deadline = p2p_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (n > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int rc = wait_fd(fd, POLLOUT, deadline);
            if (rc)
                return rc;
            continue;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int p2p_recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = recv(fd, p, len, 0);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -errno;
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc)
                return rc;
            continue;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int p2p_rx_head(int fd, struct p2p_rx *rx)
{
    for (;;) {
        size_t need = rx->have_hdr ? P2P_HDR + rx->h.meta_len : P2P_HDR;
        if (rx->got == need) {
            if (!rx->have_hdr) {
                int rc = p2p_dec_hdr(rx->buf, &rx->h);
                if (rc)
                    return rc;
                rx->have_hdr = true;
                continue;
            }
            return p2p_check_crc(rx->buf, rx->buf + P2P_HDR, &rx->h) == 0 ? 1 : -EBADMSG;
        }
        ssize_t r = recv(fd, rx->buf + rx->got, need - rx->got, 0);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        rx->got += (size_t)r;
    }
}

int p2p_rx_head_wait(int fd, struct p2p_rx *rx, uint64_t deadline)
{
    for (;;) {
        int rc = p2p_rx_head(fd, rx);
        if (rc != 0)
            return rc;
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc)
            return rc;
    }
}
