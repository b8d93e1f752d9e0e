/* The HTTP layer on libmicrohttpd (the only file that includes it): a thread per
 * connection, so a handler may wait for the engine without holding anyone else up; bodies
 * capped (413); streams served by a content reader; a response abandoned by its client
 * cancels its jobs when libmicrohttpd frees it. */
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/internal.h"

typedef struct conn_state {
    srv_route route;
    char *body;
    size_t len, cap;
    bool too_big;
} conn_state;

typedef struct stream_ctx {
    srv_server *s;
    srv_stream *st;
    struct MHD_Connection *c;
} stream_ctx;

/* A client that closed its end shows as readable with nothing to read. */
static bool alive(void *ctx) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(ctx, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    int n = poll(&p, 1, 0);
    if (n < 0) return errno == EINTR;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
    if (p.revents & (POLLIN | POLLRDHUP)) {
        char b;
        ssize_t k = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
    }
    return true;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    long n = meshlm_srv_stream_read(sc->st, buf, max, alive, sc->c);
    return n > 0 ? (ssize_t)n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The response is freed once sent or abandoned: this is where a departed client's jobs
 * are cancelled. */
static void free_stream(void *cls) {
    stream_ctx *sc = cls;
    meshlm_srv_stream_free(sc->st);
    __atomic_sub_fetch(&sc->s->open_streams, 1, __ATOMIC_ACQ_REL);
    free(sc);
}

static enum MHD_Result send_reply(srv_server *s, struct MHD_Connection *c, srv_reply *r) {
    if (r->status == 0) return MHD_NO; /* the client has gone */
    struct MHD_Response *resp = NULL;
    if (r->stream) {
        stream_ctx *sc = malloc(sizeof *sc);
        if (sc) {
            *sc = (stream_ctx){s, r->stream, c};
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_stream, sc, free_stream);
            if (!resp) free(sc);
            else __atomic_add_fetch(&s->open_streams, 1, __ATOMIC_ACQ_REL);
        }
        if (!resp) {
            meshlm_srv_stream_free(r->stream);
            return MHD_NO;
        }
    } else if (r->page) {
        /* Persistent: the page is a constant that outlives every response, so no copy. */
        resp = MHD_create_response_from_buffer(r->len, (void *)r->page, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
    } else {
        if (!r->body) return MHD_NO;
        resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(r->body);
            return MHD_NO;
        }
    }
    char retry[16];
    snprintf(retry, sizeof retry, "%d", r->retry_after);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype) != MHD_YES ||
        (r->stream && MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES) ||
        (r->retry_after && MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry) != MHD_YES) ||
        (r->allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow) != MHD_YES) ||
        (r->csp && MHD_add_response_header(resp, "Content-Security-Policy", r->csp) != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    srv_server *s = cls;
    conn_state *cs = *con_cls;
    srv_reply r;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        *con_cls = cs;
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
        cs->route = meshlm_srv_route_find(s, method, url, auth, key, &r);
        if (cs->route == ROUTE_NONE) return send_reply(s, c, &r);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) {
            meshlm_srv_reply_error(&r, 413, NULL, "the body is over %zu bytes", s->p.max_body);
            return send_reply(s, c, &r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->too_big || cs->len + n > s->p.max_body) {
            cs->too_big = true;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 4096;
            while (cap < cs->len + n + 1) cap *= 2;
            char *grown = realloc(cs->body, cap);
            if (!grown) return MHD_NO;
            cs->body = grown;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        return MHD_YES;
    }
    if (cs->too_big) {
        meshlm_srv_reply_error(&r, 413, NULL, "the body is over %zu bytes", s->p.max_body);
        return send_reply(s, c, &r);
    }
    /* No idle timeout while the engine works for this request; re-armed (which restarts
     * the clock) once the answer is ready. */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    meshlm_srv_handle(s, cs->route, cs->body ? cs->body : "", cs->len, alive, c, &r);
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->p.timeout_s);
    return send_reply(s, c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn_state *cs = *con_cls;
    if (!cs) return;
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

int meshlm_srv_http_start(srv_server *s) {
    char port[16];
    snprintf(port, sizeof port, "%d", s->p.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int rc = getaddrinfo(s->p.host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "meshlm serve: --host %s: %s\n", s->p.host, gai_strerror(rc));
        return -1;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    unsigned limit = (unsigned)(s->p.parallel + s->p.max_queue) + 64;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)s->p.port, NULL, NULL, on_request, s,
                                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.timeout_s,
                                            MHD_OPTION_CONNECTION_LIMIT, limit,
                                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, "meshlm serve: cannot listen on %s:%d (%s)\n", s->p.host, s->p.port,
                errno ? strerror(errno) : "in use?");
        return -1;
    }
    s->http = d;
    return 0;
}

void meshlm_srv_http_quiesce(srv_server *s) {
    if (!s->http) return;
    MHD_socket fd = MHD_quiesce_daemon(s->http);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void meshlm_srv_http_drain(srv_server *s, double seconds) {
    double t0 = meshlm_srv_now();
    while (s->http && __atomic_load_n(&s->open_streams, __ATOMIC_ACQUIRE) > 0 && meshlm_srv_now() - t0 < seconds)
        usleep(10 * 1000);
}

void meshlm_srv_http_stop(srv_server *s) {
    if (!s->http) return;
    MHD_stop_daemon(s->http);
    s->http = NULL;
}
