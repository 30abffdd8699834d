/* A backup receiving the primary's images: term and sender checked, every
 * image stored through store.c, acknowledged once it holds as
 * checkpoint.durability requires, refused with a reason otherwise. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dataplane_int.h"
#include "journal.h"

static void send_error(struct cs_dataplane *dp, int peer, uint32_t code, const char *text)
{
	struct cs_msg m = {.type = CS_MSG_ERROR};

	m.error = (struct cs_msg_error){.code = code, .text = cs_str_of(text)};
	cs_daemon_send(dp->d, peer, &m);
}

/* The error code the primary acts on: INTERNAL marks this backup degraded
 * (it cannot store: disk full), the others make it start over with a base. */
static uint32_t code_of(int err)
{
	switch (-err) {
	case EBADMSG:
	case EPROTO:
	case ENOENT:
		return CS_ERR_BAD_CHECKPOINT;
	default:
		return CS_ERR_INTERNAL;
	}
}

static void refuse(struct cs_dataplane *dp, int peer, uint64_t generation, int err, const char *why)
{
	dp->recv_peer = -1;
	if (err == -ENOENT) /* a delta this chain cannot take: the primary sends a base */
		cs_log_info("%s", why);
	else
		cs_event(CS_EV_CHECKPOINT_REFUSED, .peer = dp->cfg->peers[peer].name,
		         .generation = generation, .reason = why);
	send_error(dp, peer, code_of(err), why);
}

/* Only the primary of the current term may send images; anything else is
 * refused (a deposed primary that has not noticed yet, for example). */
static bool sender_ok(struct cs_dataplane *dp, int peer, const struct cs_msg_ckpt_begin *b)
{
	uint64_t term = cs_daemon_term(dp->d);
	char why[200];

	if (cs_daemon_role(dp->d) == CS_MROLE_PRIMARY || dp->term)
		snprintf(why, sizeof(why), "this node is the primary; it takes no images");
	else if (b->term != term || cs_daemon_primary(dp->d) != peer)
		snprintf(why, sizeof(why),
		         "images of term %" PRIu64 " from %s, but the term is %" PRIu64
		         " and its primary %s",
		         b->term, dp->cfg->peers[peer].name, term,
		         cs_daemon_primary(dp->d) >= 0
		             ? dp->cfg->peers[cs_daemon_primary(dp->d)].name
		             : "unknown");
	else
		return true;
	/* Images of our own term before its primary's first heartbeat reached
	 * us: a rejoining backup sees dozens; the sender retries on its own. */
	if (b->term == term && cs_daemon_primary(dp->d) < 0)
		cs_log_info("%s", why);
	else
		cs_event(CS_EV_CHECKPOINT_REFUSED, .peer = dp->cfg->peers[peer].name,
		         .generation = b->generation, .reason = why);
	send_error(dp, peer, b->term < term ? CS_ERR_STALE_TERM : CS_ERR_UNEXPECTED, why);
	return false;
}

static void on_begin(struct cs_dataplane *dp, int peer, const struct cs_msg_ckpt_begin *b)
{
	char why[300];
	int r;

	if (!sender_ok(dp, peer, b))
		return;
	r = cs_store_begin(dp->store, b->term, b, why, sizeof(why));
	if (r < 0) {
		refuse(dp, peer, b->generation, r, why);
		return;
	}
	dp->recv_peer = peer;
}

static void on_end(struct cs_dataplane *dp, int peer, const struct cs_msg_ckpt_end *e)
{
	struct cs_msg ack = {.type = CS_MSG_ACK};
	bool durable;
	char why[300];
	int r = cs_store_end(dp->store, e, &durable, why, sizeof(why));

	if (r < 0) {
		refuse(dp, peer, e->generation, r, why);
		return;
	}
	dp->recv_peer = -1;
	ack.ack = (struct cs_msg_ack){.generation = e->generation, .durable = durable};
	cs_daemon_send(dp->d, peer, &ack);
	cs_daemon_set_durable(dp->d, cs_store_newest(dp->store));
	cs_store_maybe_compact(dp->store);
}

void cs_dp_recv_message(struct cs_dataplane *dp, int peer, const struct cs_msg *m)
{
	char why[300];
	int r;

	switch (m->type) {
	case CS_MSG_CKPT_BEGIN:
		on_begin(dp, peer, &m->ckpt_begin);
		break;
	case CS_MSG_CKPT_PAGES:
		if (dp->recv_peer != peer)
			return; /* the rest of a transfer already refused */
		r = cs_store_pages(dp->store, &m->ckpt_pages, why, sizeof(why));
		if (r < 0)
			refuse(dp, peer, m->ckpt_pages.generation, r, why);
		break;
	case CS_MSG_CKPT_END:
		if (dp->recv_peer == peer)
			on_end(dp, peer, &m->ckpt_end);
		break;
	case CS_MSG_CKPT_ABORT:
		if (dp->recv_peer == peer) {
			cs_store_abort(dp->store);
			dp->recv_peer = -1;
		}
		break;
	default:
		cs_log_debug("ignoring %s from %s", cs_msg_type_name(m->type) ?: "?",
		             dp->cfg->peers[peer].name);
	}
}

void cs_dp_recv_peer_down(struct cs_dataplane *dp, int peer)
{
	if (dp->recv_peer != peer)
		return;
	cs_store_abort(dp->store); /* half an image never enters the chain */
	dp->recv_peer = -1;
}
