/* checksyncd: the event loop that ties the pieces together. Peer links
 * (peer.c) feed the membership state machine (membership.c); its decisions
 * come back here as role changes, messages to send, terms to persist and
 * hooks to run. The control socket answers status and switchover. */
#ifndef CS_DAEMON_H
#define CS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "membership.h"
#include "msg.h"

struct cs_daemon;

/* Where the data plane (app supervision, checkpoint store, replication)
 * plugs in. on_promote runs when this node has become primary of term
 * (start or resume the app). on_fence runs when it stops being primary, for
 * any reason: it must stop the app before returning, because the lease may
 * be about to end. on_peer says a peer's link came up or went down;
 * on_writable that its queue drained (cs_daemon_queued). on_message
 * receives every peer message the cluster core does not handle itself
 * (CKPT_*, ACK, ...). status adds the data plane's part to the status
 * reply (an object whose keys are merged in); control answers the control
 * commands the core does not know (an error object for unknown ones, NULL
 * when the answer is deferred). All may be NULL. */
struct cs_control_client;
struct cs_dataplane_ops {
	void (*on_promote)(void *arg, uint64_t term);
	void (*on_fence)(void *arg, uint64_t term, const char *why);
	void (*on_peer)(void *arg, int peer, bool up);
	void (*on_writable)(void *arg, int peer);
	void (*on_message)(void *arg, int peer, const struct cs_msg *m);
	/* True when the data plane will announce a promotion itself, once
	 * the app serves (cs_daemon_notify), so the notify hook moves clients
	 * only to a host that answers. */
	bool (*notify_later)(void *arg);
	json_t *(*status)(void *arg);
	json_t *(*control)(void *arg, struct cs_control_client *client, const char *cmd,
	                   json_t *req);
};

/* Takes ownership of cfg (loaded from config_path, which SIGHUP re-reads).
 * Logs and returns a negative errno on failure. */
int cs_daemon_new(const char *config_path, struct cs_config *cfg, struct cs_daemon **out);
void cs_daemon_set_dataplane(struct cs_daemon *d, const struct cs_dataplane_ops *ops, void *arg);
/* Opens the listeners, says READY and runs until SIGTERM or SIGINT.
 * Returns 0 or a negative errno. */
int cs_daemon_run(struct cs_daemon *d);
void cs_daemon_free(struct cs_daemon *d);
/* For the data plane: send m to peer (an index of the config's peers) if
 * its link is up; the bytes queued on that link; the cluster as this node
 * sees it. */
int cs_daemon_send(struct cs_daemon *d, int peer, const struct cs_msg *m);
size_t cs_daemon_queued(const struct cs_daemon *d, int peer);
bool cs_daemon_peer_up(const struct cs_daemon *d, int peer);
struct event_base *cs_daemon_base(const struct cs_daemon *d);
enum cs_member_role cs_daemon_role(const struct cs_daemon *d);
uint64_t cs_daemon_term(const struct cs_daemon *d);
int cs_daemon_primary(const struct cs_daemon *d); /* peer index, -1 unknown */
/* The newest generation durable here, for heartbeats and votes. */
void cs_daemon_set_durable(struct cs_daemon *d, uint64_t generation);
/* The primary hands its role to any backup that is up (the app failed
 * here more often than app.max_restores_per_minute allows). Returns 0 or
 * -EPERM (not primary) / -EHOSTUNREACH (no backup up). */
int cs_daemon_step_down(struct cs_daemon *d, const char *why);
/* Runs the notify hook for a data plane event ("app_serving"). */
void cs_daemon_notify(struct cs_daemon *d, const char *event);

#endif
