/* The Modbus TCP side of vigil-plcsim: one listening socket and any number
 * of clients, served one request at a time from the shared register map.
 *
 * libmodbus binds the listening socket (modbus_tcp_listen) and builds every
 * answer (modbus_reply). Reading is done here rather than with
 * modbus_receive, because modbus_receive blocks until a whole request has
 * arrived: one client sending half a request would stall every other client.
 * Instead each client's bytes collect in its own buffer (non-blocking
 * sockets), and a request is handed to modbus_reply only once its MBAP
 * header says it is complete.
 *
 * Failure modes, all of which cost only the offending client its
 * connection: end of stream or a socket error; an MBAP header with a
 * protocol id other than 0 or a length outside 2..254 (garbage bytes); a
 * request too short for its function code; an answer that cannot be sent at
 * once (a client that never reads). Too many clients (or descriptors beyond
 * FD_SETSIZE): the new connection is closed right away. Requests are copied
 * into a zeroed buffer of the largest ADU size before modbus_reply, so even a
 * request that lies about its counts is never read beyond memory we own. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plcsim.h"

#define MAX_CLIENTS 512

struct client {
    int fd;
    size_t len;
    uint8_t buf[MODBUS_TCP_MAX_ADU_LENGTH];
};

struct plcsim_server {
    modbus_t *ctx;
    int listen_fd;
    modbus_mapping_t *map;
    plcsim_write_cb write_cb;
    void *cb_data;
    struct client *clients[MAX_CLIENTS];
    size_t n_clients;
};

static int resolve_ipv4(const char *host, char *ip, size_t size,
                        char *errmsg)
{
    struct addrinfo hints, *res = NULL;
    int rv;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || !res) {
        vg_errf(errmsg, "cannot resolve %s to an IPv4 address: %s", host,
                gai_strerror(rv));
        return VG_EINVAL;
    }
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
              (socklen_t)size);
    freeaddrinfo(res);
    return 0;
}

int plcsim_server_new(const char *host, int port, int unit_id,
                      modbus_mapping_t *map, plcsim_write_cb write_cb,
                      void *cb_data, struct plcsim_server **out,
                      char *errmsg)
{
    struct plcsim_server *s;
    char ip[INET_ADDRSTRLEN];
    int rv;

    rv = resolve_ipv4(host, ip, sizeof ip, errmsg);
    if (rv != 0)
        return rv;
    s = calloc(1, sizeof *s);
    if (!s) {
        vg_errf(errmsg, "out of memory");
        return VG_ENOMEM;
    }
    s->map = map;
    s->write_cb = write_cb;
    s->cb_data = cb_data;
    s->ctx = modbus_new_tcp(ip, port);
    if (!s->ctx) {
        vg_errf(errmsg, "cannot create a Modbus TCP context for %s:%d: %s",
                ip, port, modbus_strerror(errno));
        goto err_after_alloc;
    }
    modbus_set_slave(s->ctx, unit_id);
    s->listen_fd = modbus_tcp_listen(s->ctx, 64);
    if (s->listen_fd < 0) {
        vg_errf(errmsg, "cannot listen on %s:%d: %s", ip, port,
                modbus_strerror(errno));
        goto err_after_ctx;
    }
    /* Non-blocking, so that a connection that vanished between select and
     * accept cannot block the loop. */
    fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
    fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC);
    *out = s;
    return 0;

err_after_ctx:
    modbus_free(s->ctx);
err_after_alloc:
    free(s);
    return VG_EIO;
}

static void drop(struct plcsim_server *s, size_t i)
{
    close(s->clients[i]->fd);
    free(s->clients[i]);
    s->clients[i] = s->clients[--s->n_clients];
}

void plcsim_server_free(struct plcsim_server *s)
{
    if (!s)
        return;
    while (s->n_clients > 0)
        drop(s, s->n_clients - 1);
    close(s->listen_fd);
    modbus_free(s->ctx);
    free(s);
}

size_t plcsim_server_n_clients(const struct plcsim_server *s)
{
    return s->n_clients;
}

static void accept_all(struct plcsim_server *s)
{
    for (;;) {
        struct client *c;
        int one = 1;
        int fd = accept4(s->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a connection aborted before accept */
        if (fd >= FD_SETSIZE || s->n_clients == MAX_CLIENTS ||
            !(c = calloc(1, sizeof *c))) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        s->clients[s->n_clients++] = c;
    }
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Whether PDU (N bytes: function code and data) holds every field its
 * function code needs. Unknown codes pass: libmodbus answers them with an
 * "illegal function" exception. */
static bool pdu_complete(const uint8_t *pdu, size_t n)
{
    switch (pdu[0]) {
    case MODBUS_FC_READ_COILS:
    case MODBUS_FC_READ_DISCRETE_INPUTS:
    case MODBUS_FC_READ_HOLDING_REGISTERS:
    case MODBUS_FC_READ_INPUT_REGISTERS:
    case MODBUS_FC_WRITE_SINGLE_COIL:
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
        return n >= 5;
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
        return n >= 6 && n >= 6u + pdu[5];
    case MODBUS_FC_MASK_WRITE_REGISTER:
        return n >= 7;
    case MODBUS_FC_WRITE_AND_READ_REGISTERS:
        return n >= 10 && n >= 10u + pdu[9];
    default:
        return n >= 1;
    }
}

/* Decode a write request for the callback; false when PDU is no write. */
static bool parse_write(const struct plcsim_server *s, const uint8_t *pdu,
                        struct plcsim_write *w)
{
    unsigned i, v, bytes;

    w->fc = pdu[0];
    w->address = be16(pdu + 1);
    switch (w->fc) {
    case MODBUS_FC_WRITE_SINGLE_COIL:
        v = be16(pdu + 3);
        w->n = 1;
        w->values[0] = v == 0xff00;
        w->ok = (v == 0xff00 || v == 0) && w->address < (unsigned)s->map->nb_bits;
        return true;
    case MODBUS_FC_WRITE_SINGLE_REGISTER:
        w->n = 1;
        w->values[0] = (uint16_t)be16(pdu + 3);
        w->ok = w->address < (unsigned)s->map->nb_registers;
        return true;
    case MODBUS_FC_WRITE_MULTIPLE_COILS:
        w->n = be16(pdu + 3);
        bytes = pdu[5];
        w->ok = w->n >= 1 && w->n <= MODBUS_MAX_WRITE_BITS &&
                bytes == (w->n + 7) / 8 &&
                w->address + w->n <= (unsigned)s->map->nb_bits;
        if (w->n > bytes * 8u)
            w->n = bytes * 8u;
        for (i = 0; i < w->n; i++)
            w->values[i] = (pdu[6 + i / 8] >> (i % 8)) & 1;
        return true;
    case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
        w->n = be16(pdu + 3);
        bytes = pdu[5];
        w->ok = w->n >= 1 && w->n <= MODBUS_MAX_WRITE_REGISTERS &&
                bytes == w->n * 2 &&
                w->address + w->n <= (unsigned)s->map->nb_registers;
        if (w->n > bytes / 2)
            w->n = bytes / 2;
        for (i = 0; i < w->n; i++)
            w->values[i] = (uint16_t)be16(pdu + 6 + 2 * i);
        return true;
    default:
        return false;
    }
}

/* Answer every complete request in C's buffer. Returns -1 when the client
 * must go. */
static int serve(struct plcsim_server *s, struct client *c)
{
    while (c->len >= 7) {
        uint8_t req[MODBUS_TCP_MAX_ADU_LENGTH];
        unsigned proto = be16(c->buf + 2), length = be16(c->buf + 4);
        size_t flen = 6 + (size_t)length;
        struct plcsim_write *w;

        if (proto != 0 || length < 2 || flen > sizeof req)
            return -1;
        if (c->len < flen)
            return 0;
        memset(req, 0, sizeof req);
        memcpy(req, c->buf, flen);
        memmove(c->buf, c->buf + flen, c->len - flen);
        c->len -= flen;
        if (!pdu_complete(req + 7, length - 1))
            return -1;
        modbus_set_socket(s->ctx, c->fd);
        if (modbus_reply(s->ctx, req, (int)flen, s->map) < 0)
            return -1;
        w = malloc(sizeof *w);
        if (w && parse_write(s, req + 7, w) && s->write_cb)
            s->write_cb(s->cb_data, w);
        free(w);
    }
    return 0;
}

static int receive(struct plcsim_server *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);

    if (n == 0)
        return -1;
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                   ? 0 : -1;
    c->len += (size_t)n;
    return serve(s, c);
}

int plcsim_server_run_until(struct plcsim_server *s, uint64_t deadline_ms,
                            const sigset_t *sigmask)
{
    fd_set rfds;
    struct timespec ts;
    uint64_t now = vg_now_mono_ms(), wait = deadline_ms > now
                                                ? deadline_ms - now : 0;
    int maxfd = s->listen_fd, rv;
    size_t i;

    FD_ZERO(&rfds);
    FD_SET(s->listen_fd, &rfds);
    for (i = 0; i < s->n_clients; i++) {
        FD_SET(s->clients[i]->fd, &rfds);
        if (s->clients[i]->fd > maxfd)
            maxfd = s->clients[i]->fd;
    }
    ts.tv_sec = (time_t)(wait / 1000);
    ts.tv_nsec = (long)(wait % 1000) * 1000000L;
    rv = pselect(maxfd + 1, &rfds, NULL, NULL, &ts, sigmask);
    if (rv < 0)
        return errno == EINTR ? 0 : VG_EIO;
    /* Clients first: the ones accepted now were not in the set. Walk
     * backwards because drop() moves the last client into the hole. */
    for (i = s->n_clients; i-- > 0;)
        if (FD_ISSET(s->clients[i]->fd, &rfds) &&
            receive(s, s->clients[i]) < 0)
            drop(s, i);
    if (FD_ISSET(s->listen_fd, &rfds))
        accept_all(s);
    return 0;
}
