/* Peer links: one mutual-TLS connection per pair of peers, carrying proto
 * frames. The node with the lower name dials, the other accepts, so a pair
 * never builds two connections on purpose; if a second one shows up anyway
 * (a restarted dialer whose old connection is not dead yet), the newer one
 * replaces the older. A link counts as up once both HELLOs are through:
 * same cluster, a common protocol version, and a certificate that names
 * the peer. Anything else is refused, logged (tls_refused) and closed
 * before any other message is read. */
#ifndef CS_PEER_H
#define CS_PEER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "msg.h"

struct event_base;
struct cs_tls;
struct cs_links;

struct cs_links_ops {
	void (*up)(void *ctx, int peer);
	void (*down)(void *ctx, int peer);
	/* Any message but HELLO, from an established link. */
	void (*message)(void *ctx, int peer, const struct cs_msg *m);
	/* Optional: peer's queued output fell to CS_LINK_DRAINED_BYTES, so a
	 * bulk sender (checkpoint replication) may queue more. */
	void (*writable)(void *ctx, int peer);
};

/* Bulk senders keep a link's queue short so heartbeats, which share the
 * link, wait behind at most a few milliseconds of data. */
#define CS_LINK_DRAINED_BYTES (512u * 1024u)

/* Peers are the config's peers, by index. Copies what it needs from cfg.
 * tls is borrowed (see cs_links_set_tls). */
int cs_links_new(struct event_base *base, const struct cs_config *cfg, struct cs_tls *tls,
                 const struct cs_links_ops *ops, void *ctx, struct cs_links **out);
/* Binds the listen address; logs and returns a negative errno on failure. */
int cs_links_listen(struct cs_links *l);
/* Starts dialing the peers this node dials. */
void cs_links_start(struct cs_links *l);
void cs_links_free(struct cs_links *l);

/* Sends m on peer's link; -ENOTCONN if it is not up. */
int cs_links_send(struct cs_links *l, int peer, const struct cs_msg *m);
/* New connections use tls from now on (SIGHUP); live ones keep theirs. */
void cs_links_set_tls(struct cs_links *l, struct cs_tls *tls);
/* A link silent for timeout_ms is closed (and redialed). */
void cs_links_set_timeout(struct cs_links *l, unsigned timeout_ms);
size_t cs_links_up_count(const struct cs_links *l);
/* Bytes queued on peer's link and not yet handed to TLS (0 if down). */
size_t cs_links_queued(const struct cs_links *l, int peer);
bool cs_links_is_up(const struct cs_links *l, int peer);

#endif
