/* Peer links over bufferevent_openssl: dialing with backoff, accepting,
 * the HELLO exchange, framing, and the checks that decide who is who. */
#include "peer.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "journal.h"
#include "tls.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct conn {
	struct cs_links *l;
	struct bufferevent *bev;
	int peer; /* dialed peer, or (inbound) -1 until its HELLO */
	bool outbound;
	bool hello_sent;
	bool established;
	uint16_t version; /* 0 until negotiated: HELLO only */
	char address[80];
	struct conn *next; /* inbound connections waiting for HELLO */
};

struct link {
	struct cs_links *l;
	int index;
	char *name;
	char *host;
	uint16_t port;
	bool dial; /* we dial this peer (our name is lower) */
	struct conn *conn;
	struct event *retry;
	unsigned backoff_ms;
	char last_refusal[160]; /* not repeated at warning level */
};

struct cs_links {
	struct event_base *base;
	struct cs_tls *tls;
	struct evconnlistener *listener;
	char *cluster, *listen_host;
	uint16_t listen_port;
	struct link *links;
	size_t n;
	int self;
	struct conn *pending;
	struct cs_links_ops ops;
	void *ctx;
	unsigned timeout_ms;
};

static void conn_read(struct bufferevent *bev, void *arg);
static void conn_write(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);
static void dial(struct cs_links *l, int i);
static int cs_links_peer_index(const struct cs_links *l, const char *name);

static const char *conn_name(const struct conn *c)
{
	return c->peer >= 0 ? c->l->links[c->peer].name : NULL;
}

static void unlink_pending(struct cs_links *l, struct conn *c)
{
	for (struct conn **p = &l->pending; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			return;
		}
}

static void schedule_redial(struct cs_links *l, int i)
{
	struct link *k = &l->links[i];
	struct timeval tv = {k->backoff_ms / 1000, (k->backoff_ms % 1000) * 1000};

	evtimer_add(k->retry, &tv);
	k->backoff_ms = k->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : k->backoff_ms * 2;
}

/* Closes c; reports the link down if it was up, and redials if we dial. */
static void conn_close(struct conn *c, const char *why)
{
	struct cs_links *l = c->l;
	int peer = c->peer;
	bool outbound = c->outbound;
	bool was_up = c->established && peer >= 0 && l->links[peer].conn == c;

	if (peer >= 0 && l->links[peer].conn == c)
		l->links[peer].conn = NULL;
	if (!c->outbound && !c->established)
		unlink_pending(l, c);
	bufferevent_free(c->bev);
	free(c);
	if (was_up) {
		cs_event(CS_EV_PEER_DOWN, .peer = l->links[peer].name, .reason = why);
		l->ops.down(l->ctx, peer);
	}
	if (outbound && peer >= 0 && !l->links[peer].conn)
		schedule_redial(l, peer);
}

/* Refusals of a dialed peer repeat every backoff; say each reason once. */
static void refuse(struct conn *c, const char *reason)
{
	struct link *k = c->peer >= 0 ? &c->l->links[c->peer] : NULL;

	if (k && c->outbound && strcmp(k->last_refusal, reason) == 0) {
		cs_log_debug("peer %s refused again: %s", k->name, reason);
	} else {
		if (k && c->outbound)
			snprintf(k->last_refusal, sizeof(k->last_refusal), "%s", reason);
		cs_event(CS_EV_TLS_REFUSED, .peer = conn_name(c), .address = c->address,
		         .reason = reason);
	}
	conn_close(c, reason);
}

static struct conn *conn_new(struct cs_links *l, int fd, int peer, const char *address)
{
	struct conn *c = calloc(1, sizeof(*c));
	SSL *ssl = cs_tls_ssl(l->tls);
	struct timeval tv = {l->timeout_ms / 1000, (l->timeout_ms % 1000) * 1000};

	if (!c || !ssl)
		goto fail;
	c->l = l;
	c->peer = peer;
	c->outbound = fd < 0;
	snprintf(c->address, sizeof(c->address), "%s", address);
	c->bev = bufferevent_openssl_socket_new(
	    l->base, fd, ssl, c->outbound ? BUFFEREVENT_SSL_CONNECTING : BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev)
		goto fail; /* ssl is freed by libevent on failure */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_read, conn_write, conn_event, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, CS_LINK_DRAINED_BYTES, 0);
	/* Silence closes the link: no TCP retransmission limbo after a cut. */
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
fail:
	free(c);
	return NULL;
}

static int send_on(struct conn *c, const struct cs_msg *m, uint16_t version)
{
	uint8_t small[512], *buf = small;
	int n = cs_msg_encode(small, sizeof(small), version, m);

	if (n > (int)sizeof(small)) {
		buf = malloc((size_t)n);
		if (!buf)
			return -ENOMEM;
		n = cs_msg_encode(buf, (size_t)n, version, m);
	}
	if (n > 0 && bufferevent_write(c->bev, buf, (size_t)n) < 0)
		n = -EIO;
	if (buf != small)
		free(buf);
	return n < 0 ? n : 0;
}

static int send_hello(struct conn *c)
{
	struct cs_links *l = c->l;
	struct cs_msg m = {.type = CS_MSG_HELLO};

	m.hello.version_min = CS_PROTO_VERSION_MIN;
	m.hello.version_max = CS_PROTO_VERSION_MAX;
	m.hello.role = CS_ROLE_NONE;
	m.hello.cluster = cs_str_of(l->cluster);
	m.hello.node = cs_str_of(l->links[l->self].name);
	c->hello_sent = true;
	return send_on(c, &m, CS_PROTO_VERSION_HELLO);
}

static void establish(struct conn *c, int peer)
{
	struct cs_links *l = c->l;
	struct link *k = &l->links[peer];

	if (!c->outbound)
		unlink_pending(l, c);
	if (k->conn && k->conn != c) /* the newer connection wins (peer.h) */
		conn_close(k->conn, "replaced by a newer connection");
	c->peer = peer;
	c->established = true;
	k->conn = c;
	k->backoff_ms = BACKOFF_MIN_MS;
	k->last_refusal[0] = '\0';
	evtimer_del(k->retry);
	cs_event(CS_EV_PEER_UP, .peer = k->name, .address = c->address);
	l->ops.up(l->ctx, peer);
}

/* Who is it? Returns false when c was closed. */
static bool on_hello(struct conn *c, const struct cs_msg_hello *h)
{
	struct cs_links *l = c->l;
	char reason[200], name[CS_NAME_MAX + 1];
	int v, peer;

	if (cs_str_copy(name, sizeof(name), h->node) < 0)
		snprintf(name, sizeof(name), "?");
	if (!cs_str_eq(h->cluster, l->cluster)) {
		snprintf(reason, sizeof(reason), "peer %s is in cluster %.*s, not %s", name,
		         (int)h->cluster.len, h->cluster.ptr ? h->cluster.ptr : "", l->cluster);
		refuse(c, reason);
		return false;
	}
	v = cs_proto_negotiate(h->version_min, h->version_max, CS_PROTO_VERSION_MIN,
	                       CS_PROTO_VERSION_MAX);
	if (v < 0) {
		snprintf(reason, sizeof(reason), "no common protocol version with %s (%u..%u)",
		         name, h->version_min, h->version_max);
		refuse(c, reason);
		return false;
	}
	peer = c->outbound ? c->peer : cs_links_peer_index(l, name);
	if (peer < 0 || peer == l->self) {
		snprintf(reason, sizeof(reason), "%s is not a configured peer", name);
		refuse(c, reason);
		return false;
	}
	/* Outbound: the certificate was checked against the dialed name;
	 * the HELLO must say the same. Inbound: the claim is the HELLO's. */
	if (c->outbound && strcmp(name, l->links[peer].name) != 0) {
		snprintf(reason, sizeof(reason), "dialed %s, but it says it is %s",
		         l->links[peer].name, name);
		refuse(c, reason);
		return false;
	}
	if (!c->outbound) {
		c->peer = peer; /* for the log line */
		if (cs_tls_check_name(bufferevent_openssl_get_ssl(c->bev), name, reason,
		                      sizeof(reason)) < 0) {
			c->peer = -1;
			refuse(c, reason);
			return false;
		}
	}
	c->version = (uint16_t)v;
	if (!c->hello_sent && send_hello(c) < 0) {
		conn_close(c, "cannot send HELLO");
		return false;
	}
	establish(c, peer);
	return true;
}

/* One message; returns false when c was closed. */
static bool dispatch(struct conn *c, const struct cs_msg *m)
{
	if (m->type == CS_MSG_HELLO) {
		if (c->established) {
			conn_close(c, "second HELLO");
			return false;
		}
		return on_hello(c, &m->hello);
	}
	if (!c->established) {
		refuse(c, "message before HELLO");
		return false;
	}
	/* Handlers only queue output (deferred callbacks), so c survives. */
	c->l->ops.message(c->l->ctx, c->peer, m);
	return true;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[CS_FRAME_HEADER_SIZE];
	char reason[160];

	for (;;) {
		size_t len = evbuffer_get_length(in);
		struct cs_msg m;
		int total, r;

		if (len < CS_FRAME_HEADER_SIZE)
			return;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		total = cs_frame_peek(hdr, sizeof(hdr), c->version);
		if (total > 0 && len < (size_t)total)
			return;
		r = total < 0 ? total
		              : cs_msg_parse(evbuffer_pullup(in, total), (size_t)total, c->version,
		                             &m, NULL);
		if (r < 0) {
			snprintf(reason, sizeof(reason), "bad frame: %s", cs_proto_strerror(r));
			if (c->established)
				conn_close(c, reason);
			else
				refuse(c, reason);
			return;
		}
		if (!dispatch(c, &m))
			return;
		evbuffer_drain(in, (size_t)total);
	}
}

/* The output fell to CS_LINK_DRAINED_BYTES: a bulk sender may queue more. */
static void conn_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->established && c->l->ops.writable)
		c->l->ops.writable(c->l->ctx, c->peer);
}

static void on_connected(struct conn *c)
{
	char reason[200];

	if (c->outbound &&
	    cs_tls_check_name(bufferevent_openssl_get_ssl(c->bev), c->l->links[c->peer].name,
	                      reason, sizeof(reason)) < 0) {
		refuse(c, reason);
		return;
	}
	if (c->outbound && send_hello(c) < 0)
		conn_close(c, "cannot send HELLO");
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	unsigned long ssl_err = bufferevent_get_openssl_error(bev);
	char reason[200];

	if (what & BEV_EVENT_CONNECTED) {
		on_connected(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_close(c, c->established ? "no data within timeout_ms" : "connect timed out");
		return;
	}
	/* A refused TCP connect is no TLS refusal: only TLS-level errors and
	 * failed verifications are reported as such (libevent reports socket
	 * errors as small codes of no OpenSSL library). */
	if (!c->established &&
	    ((ERR_GET_LIB(ssl_err) != 0 && ERR_GET_LIB(ssl_err) != ERR_LIB_SYS) ||
	     SSL_get_verify_result(bufferevent_openssl_get_ssl(bev)) != X509_V_OK)) {
		cs_tls_failure(bufferevent_openssl_get_ssl(bev), ssl_err, reason, sizeof(reason));
		ERR_clear_error();
		refuse(c, reason);
		return;
	}
	if ((what & BEV_EVENT_EOF) || EVUTIL_SOCKET_ERROR() == 0)
		snprintf(reason, sizeof(reason), "connection closed by peer");
	else
		snprintf(reason, sizeof(reason), "%s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (!c->established)
		cs_log_debug("connection to %s (%s) failed: %s", c->address,
		             conn_name(c) ? conn_name(c) : "?", reason);
	conn_close(c, reason);
}

static int cs_links_peer_index(const struct cs_links *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->links[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	char p[8];
	int r;

	snprintf(p, sizeof(p), "%u", port);
	r = getaddrinfo(host, p, &hints, &res);
	if (r != 0)
		return -EHOSTUNREACH;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void dial(struct cs_links *l, int i)
{
	struct link *k = &l->links[i];
	struct sockaddr_storage ss;
	socklen_t len;
	char address[80];
	struct conn *c;

	if (k->conn)
		return;
	snprintf(address, sizeof(address), "%s:%u", k->host, k->port);
	if (resolve(k->host, k->port, &ss, &len) < 0) {
		cs_log_warn("cannot resolve %s for peer %s", k->host, k->name);
		schedule_redial(l, i);
		return;
	}
	c = conn_new(l, -1, i, address);
	if (!c) {
		schedule_redial(l, i);
		return;
	}
	k->conn = c;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)len) < 0)
		conn_close(c, "connect failed");
}

static void redial_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *k = arg;

	(void)fd, (void)what;
	dial(k->l, k->index);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct cs_links *l = arg;
	char host[64] = "?", port[8] = "?", address[80];
	struct conn *c;

	(void)lis;
	getnameinfo(sa, (socklen_t)salen, host, sizeof(host), port, sizeof(port),
	            NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(address, sizeof(address), "%s:%s", host, port);
	c = conn_new(l, fd, -1, address);
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->next = l->pending;
	l->pending = c;
}

int cs_links_new(struct event_base *base, const struct cs_config *cfg, struct cs_tls *tls,
                 const struct cs_links_ops *ops, void *ctx, struct cs_links **out)
{
	struct cs_links *l = calloc(1, sizeof(*l));
	const char *self = cfg->node;

	if (!l)
		return -ENOMEM;
	*l = (struct cs_links){.base = base,
	                       .tls = tls,
	                       .ops = *ops,
	                       .ctx = ctx,
	                       .n = cfg->n_peers,
	                       .self = -1,
	                       .timeout_ms = cfg->heartbeat.timeout_ms,
	                       .listen_port = cfg->listen_port};
	l->cluster = strdup(cfg->cluster);
	l->listen_host = strdup(cfg->listen_host);
	l->links = calloc(l->n, sizeof(*l->links));
	if (!l->cluster || !l->listen_host || !l->links)
		goto nomem;
	for (size_t i = 0; i < l->n; i++) {
		struct link *k = &l->links[i];
		const struct cs_peer_config *p = &cfg->peers[i];

		k->l = l;
		k->index = (int)i;
		k->name = strdup(p->name);
		k->host = strdup(p->host);
		k->port = p->port;
		k->backoff_ms = BACKOFF_MIN_MS;
		k->retry = evtimer_new(base, redial_cb, k);
		if (!k->name || !k->host || !k->retry)
			goto nomem;
		if (strcmp(p->name, self) == 0)
			l->self = (int)i;
		/* The lower name dials: exactly one side of every pair does. */
		k->dial = strcmp(self, p->name) < 0;
	}
	*out = l;
	return 0;
nomem:
	cs_links_free(l);
	return -ENOMEM;
}

int cs_links_listen(struct cs_links *l)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (resolve(l->listen_host, l->listen_port, &ss, &len) < 0)
		return cs_log_err_errno(EADDRNOTAVAIL, "cannot resolve listen address %s",
		                        l->listen_host);
	l->listener = evconnlistener_new_bind(l->base, accept_cb, l,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                          LEV_OPT_CLOSE_ON_EXEC,
	                                      -1, (struct sockaddr *)&ss, (int)len);
	if (!l->listener)
		return cs_log_err_errno(errno ? errno : EADDRINUSE, "cannot listen on %s:%u",
		                        l->listen_host, l->listen_port);
	return 0;
}

void cs_links_start(struct cs_links *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->links[i].dial)
			dial(l, (int)i);
}

void cs_links_free(struct cs_links *l)
{
	if (!l)
		return;
	if (l->listener)
		evconnlistener_free(l->listener);
	while (l->pending) {
		struct conn *c = l->pending;

		l->pending = c->next;
		bufferevent_free(c->bev);
		free(c);
	}
	for (size_t i = 0; l->links && i < l->n; i++) {
		struct link *k = &l->links[i];

		if (k->conn) {
			bufferevent_free(k->conn->bev);
			free(k->conn);
		}
		if (k->retry)
			event_free(k->retry);
		free(k->name);
		free(k->host);
	}
	free(l->links);
	free(l->cluster);
	free(l->listen_host);
	free(l);
}

int cs_links_send(struct cs_links *l, int peer, const struct cs_msg *m)
{
	struct conn *c = peer >= 0 && (size_t)peer < l->n ? l->links[peer].conn : NULL;

	if (!c || !c->established)
		return -ENOTCONN;
	return send_on(c, m, c->version);
}

void cs_links_set_tls(struct cs_links *l, struct cs_tls *tls)
{
	l->tls = tls;
}

void cs_links_set_timeout(struct cs_links *l, unsigned timeout_ms)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	l->timeout_ms = timeout_ms;
	for (size_t i = 0; i < l->n; i++)
		if (l->links[i].conn)
			bufferevent_set_timeouts(l->links[i].conn->bev, &tv, &tv);
}

size_t cs_links_up_count(const struct cs_links *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++)
		n += l->links[i].conn && l->links[i].conn->established;
	return n;
}

size_t cs_links_queued(const struct cs_links *l, int peer)
{
	const struct conn *c;

	if (peer < 0 || (size_t)peer >= l->n || !(c = l->links[peer].conn) || !c->established)
		return 0;
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

bool cs_links_is_up(const struct cs_links *l, int peer)
{
	return peer >= 0 && (size_t)peer < l->n && l->links[peer].conn &&
	       l->links[peer].conn->established;
}
