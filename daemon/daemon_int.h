/* Internals shared by daemon.c (loop, links, membership glue) and
 * daemon_ctl.c (role changes, status, switchover, reload). */
#ifndef CS_DAEMON_INT_H
#define CS_DAEMON_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include <jansson.h>

#include "control.h"
#include "membership.h"

/* The peer-to-peer CONTROL_REQUEST of the cluster core (JSON arguments):
 * "transfer" {"term":N,"target":NAME}: the primary hands over (switchover).
 * Pre-votes travel as PREVOTE_REQUEST and PREVOTE messages (proto/msg.h). */
#define CS_TRANSFER_COMMAND "transfer"

struct event_base;
struct event;
struct cs_tls;
struct cs_links;
struct cs_hooks;
struct cs_control;
struct cs_control_pending;
struct cs_sdnotify;
struct cs_metrics;

struct cs_daemon {
	char *config_path;
	struct cs_config *cfg;  /* as started: node, peers, state_dir, ... */
	struct cs_config *live; /* latest reload: tls, hooks, heartbeat, group */
	struct event_base *base;
	struct cs_tls *tls;
	struct cs_links *links;
	struct cs_membership *m;
	struct cs_hooks *hooks;
	struct cs_control *control;
	struct cs_sdnotify *sdnotify;
	struct cs_metrics *metrics; /* NULL: metrics.listen not set */
	struct event *tick, *sigterm, *sigint, *sighup;
	struct cs_dataplane_ops dp;
	void *dp_arg;
	char status[160]; /* last STATUS= sent */
	/* A switchover waiting for the new primary. */
	struct cs_control_pending *switchover;
	int switchover_target;
	uint64_t switchover_term, switchover_deadline;
	struct fence_result *fence; /* the fence hook's result, until delivered */
	/* Stopping as primary: the hand-over in progress (0: not stopping),
	 * then the wait for the demotion's notify hook (0: not yet). */
	uint64_t stop_term, stop_deadline, stop_hooks_deadline;
	uint64_t durable; /* newest generation durable here (data plane) */
};

struct fence_result {
	struct cs_daemon *d;
	int peer;
	uint64_t term;
	int status;
};

uint64_t cs_daemon_now_ms(void);
void cs_daemon_role_changed(void *ctx, enum cs_member_role from, enum cs_member_role to,
                            enum cs_mevent_kind ev, const char *why);
void cs_daemon_update_status(struct cs_daemon *d);
void cs_daemon_check_switchover(struct cs_daemon *d);
json_t *cs_daemon_control(struct cs_control_client *client, const char *cmd, json_t *req,
                          void *arg);
void cs_daemon_reload(struct cs_daemon *d);
/* The status object of the control socket, also what the metrics show
 * (arg: the daemon). */
json_t *cs_daemon_status_json(void *arg);
unsigned cs_daemon_tick_ms(const struct cs_config *cfg);

#endif
