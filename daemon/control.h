/* The control socket: a Unix stream socket that checksyncctl talks to.
 *
 * Protocol (docs/control.md): the client writes one JSON object per line,
 * {"cmd":"status"} or {"cmd":"switchover","target":"beta"}; the server answers
 * each with one JSON object on one line. Every answer has "ok" (true/false);
 * a failed one has "error" (a sentence). Only root or members of the
 * configured group may connect (checked with SO_PEERCRED/SO_PEERGROUPS);
 * anyone else gets {"ok":false,"error":"permission denied: ..."} and is
 * disconnected.
 *
 * control.c knows nothing of the cluster: the daemon supplies a handler that
 * builds the answers. checksyncctl expects these (docs/control.md):
 *
 *   status     -> {"ok":true, "node":"alpha", "cluster":"kv", "role":"primary",
 *                  "term":5, "primary":"alpha" or null,
 *                  "lease_remaining_ms":820 or null,
 *                  "peers":[{"name":"beta", "state":"up", "role":"backup",
 *                            "witness":false, "last_heartbeat_ms":12 or null}, ...]}
 *                 (peers lists the other peers; extra keys are allowed)
 *   switchover -> request may carry "target" (a peer name; absent: the daemon
 *                 picks); answer {"ok":true, "primary":"beta", "term":6} or
 *                 {"ok":false, "error":"..."}.
 *
 * Only root, the daemon's own user, or members of the configured group may
 * connect. */
#ifndef CS_CONTROL_H
#define CS_CONTROL_H

#include <jansson.h>

struct event_base;
struct cs_control;
struct cs_control_client;
struct cs_control_pending;

/* Called once per request with its "cmd" and the whole request object
 * (borrowed). Returns a new reference to the answer; "ok":true is added when
 * the answer has no "ok". Return cs_control_error(...) for failures, e.g. an
 * unknown command. To answer later (a switchover that takes time), call
 * cs_control_defer(client) and return NULL; the client's further requests
 * wait until cs_control_reply. Returning NULL without deferring answers
 * "internal error". */
typedef json_t *(*cs_control_handler)(struct cs_control_client *client, const char *cmd,
                                      json_t *req, void *arg);

/* Creates the socket at PATH (parent directory created 0750 if missing; a
 * stale socket is replaced), mode 0660, owner root and group GROUP (NULL:
 * root), and serves it on BASE. Logs the reason and returns a negative errno
 * on failure. */
int cs_control_open(struct event_base *base, const char *path, const char *group,
                    cs_control_handler handler, void *arg, struct cs_control **out);
/* Closes the listener, every client and unlinks the socket. Pending
 * replies become no-ops that free themselves. */
void cs_control_close(struct cs_control *ctl);
/* Changes the group allowed to connect (SIGHUP); re-chowns the socket. */
int cs_control_set_group(struct cs_control *ctl, const char *group);

/* {"ok":false,"error":<formatted>} */
json_t *cs_control_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct cs_control_pending *cs_control_defer(struct cs_control_client *client);
/* Sends ANSWER (reference stolen) and frees P. If the client went away, the
 * answer is dropped. */
void cs_control_reply(struct cs_control_pending *p, json_t *answer);

/* The connecting process's uid and pid, for logs. */
unsigned cs_control_client_uid(const struct cs_control_client *client);
int cs_control_client_pid(const struct cs_control_client *client);

#endif
