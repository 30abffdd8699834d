/* checksyncd: the event loop that ties the pieces together. Peer links
 * (peer.c) feed the membership state machine (membership.c); its decisions
 * come back here as role changes, messages to send, terms to persist and
 * hooks to run. The control socket answers status and switchover. */
#ifndef CS_DAEMON_H
#define CS_DAEMON_H

#include <stdint.h>

#include "config.h"
#include "msg.h"

struct cs_daemon;

/* Where the data plane (app supervision, checkpoint replication) plugs in.
 * on_promote runs when this node has become primary of term (start or
 * resume the app). on_fence runs when it stops being primary, for any
 * reason: it must stop the app before returning, because the lease may be
 * about to end. on_message receives every peer message the cluster core
 * does not handle itself (CKPT_*, ACK, ...). All may be NULL. */
struct cs_dataplane_ops {
	void (*on_promote)(void *arg, uint64_t term);
	void (*on_fence)(void *arg, uint64_t term, const char *why);
	void (*on_message)(void *arg, const char *peer, const struct cs_msg *m);
};

/* Takes ownership of cfg (loaded from config_path, which SIGHUP re-reads).
 * Logs and returns a negative errno on failure. */
int cs_daemon_new(const char *config_path, struct cs_config *cfg, struct cs_daemon **out);
void cs_daemon_set_dataplane(struct cs_daemon *d, const struct cs_dataplane_ops *ops, void *arg);
/* Opens the listeners, says READY and runs until SIGTERM or SIGINT.
 * Returns 0 or a negative errno. */
int cs_daemon_run(struct cs_daemon *d);
void cs_daemon_free(struct cs_daemon *d);
/* Sends m to the named peer if its link is up (for the data plane). */
int cs_daemon_send(struct cs_daemon *d, const char *peer, const struct cs_msg *m);

#endif
