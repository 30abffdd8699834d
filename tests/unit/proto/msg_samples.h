/* One sample of every message type, shared by the message tests. */
#ifndef CS_TEST_MSG_SAMPLES_H
#define CS_TEST_MSG_SAMPLES_H

#include <string.h>

#include "msg.h"

static const uint16_t all_types[] = {
    CS_MSG_HELLO,        CS_MSG_HEARTBEAT,  CS_MSG_LEASE_RENEW,     CS_MSG_LEASE_GRANT,
    CS_MSG_VOTE_REQUEST, CS_MSG_VOTE,       CS_MSG_PREVOTE_REQUEST, CS_MSG_PREVOTE,
    CS_MSG_TRANSFER,     CS_MSG_CKPT_BEGIN, CS_MSG_CKPT_PAGES,      CS_MSG_CKPT_END,
    CS_MSG_CKPT_ABORT,   CS_MSG_ACK,        CS_MSG_CONTROL_REQUEST, CS_MSG_CONTROL_RESPONSE,
    CS_MSG_ERROR,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

static const uint8_t sample_bid0[] = {0xde, 0xad, 0xbe, 0xef};
static const uint8_t sample_bid1[] = {0x01, 0x02, 0x03};
static const uint8_t sample_token[] = {0x70, 0x71};
static const uint8_t sample_pages[] = {0x11, 0x22, 0x33, 0x44, 0x55};

static void sample_msg(uint16_t type, struct cs_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	switch (type) {
	case CS_MSG_HELLO:
		m->hello = (struct cs_msg_hello){
		    .version_min = 1,
		    .version_max = 1,
		    .role = CS_ROLE_BACKUP,
		    .term = 7,
		    .cluster = cs_str_of("c1"),
		    .node = cs_str_of("node-b"),
		    .token = {sample_token, sizeof(sample_token)},
		    .exe_path = cs_str_of("/bin/app"),
		    .n_build_ids = 2,
		    .build_ids = {{sample_bid0, sizeof(sample_bid0)},
		                  {sample_bid1, sizeof(sample_bid1)}},
		};
		break;
	case CS_MSG_HEARTBEAT:
		m->heartbeat = (struct cs_msg_heartbeat){
		    .term = 7,
		    .durable_generation = 42,
		    .send_time_ns = 0x0102030405060708ull,
		    .echo_time_ns = 1000,
		    .lease_ms = 1500,
		    .role = CS_ROLE_PRIMARY,
		};
		break;
	case CS_MSG_LEASE_RENEW:
		m->lease_renew =
		    (struct cs_msg_lease_renew){.term = 7, .seq = 3, .duration_ms = 2000};
		break;
	case CS_MSG_LEASE_GRANT:
		m->lease_grant = (struct cs_msg_lease_grant){
		    .term = 7, .seq = 3, .duration_ms = 2000, .granted = true};
		break;
	case CS_MSG_VOTE_REQUEST:
		m->vote_request = (struct cs_msg_vote_request){
		    .term = 8, .durable_generation = 42, .candidate = cs_str_of("node-b")};
		break;
	case CS_MSG_VOTE:
		m->vote = (struct cs_msg_vote){.term = 8,
		                               .durable_generation = 41,
		                               .lease_remaining_ms = 250,
		                               .granted = false,
		                               .reason = CS_VOTE_LEASE_HELD};
		break;
	case CS_MSG_PREVOTE_REQUEST:
		m->prevote_request = (struct cs_msg_vote_request){
		    .term = 9, .durable_generation = 44, .candidate = cs_str_of("node-c")};
		break;
	case CS_MSG_PREVOTE:
		m->prevote = (struct cs_msg_vote){.term = 8,
		                                  .durable_generation = 44,
		                                  .lease_remaining_ms = 0,
		                                  .granted = true,
		                                  .reason = CS_VOTE_GRANTED};
		break;
	case CS_MSG_TRANSFER:
		m->transfer = (struct cs_msg_transfer){.term = 8, .target = cs_str_of("node-c")};
		break;
	case CS_MSG_CKPT_BEGIN:
		m->ckpt_begin = (struct cs_msg_ckpt_begin){.term = 7,
		                                           .generation = 43,
		                                           .parent_generation = 42,
		                                           .total_bytes = 8192,
		                                           .kind = CS_CKPT_DELTA};
		break;
	case CS_MSG_CKPT_PAGES:
		m->ckpt_pages = (struct cs_msg_ckpt_pages){
		    .generation = 43, .offset = 4096, .data = {sample_pages, sizeof(sample_pages)}};
		break;
	case CS_MSG_CKPT_END:
		m->ckpt_end.generation = 43;
		m->ckpt_end.total_bytes = 8192;
		for (int i = 0; i < CS_DIGEST_SIZE; i++)
			m->ckpt_end.sha256[i] = (uint8_t)(0xa0 + i);
		break;
	case CS_MSG_CKPT_ABORT:
		m->ckpt_abort = (struct cs_msg_ckpt_abort){
		    .generation = 43, .code = CS_ERR_INTERNAL, .text = cs_str_of("disk full")};
		break;
	case CS_MSG_ACK:
		m->ack = (struct cs_msg_ack){.generation = 43, .durable = true};
		break;
	case CS_MSG_CONTROL_REQUEST:
		m->control_request = (struct cs_msg_control_request){
		    .request_id = 9, .command = cs_str_of("status"), .json = cs_str_of("{}")};
		break;
	case CS_MSG_CONTROL_RESPONSE:
		m->control_response = (struct cs_msg_control_response){
		    .request_id = 9, .status = -2, .json = cs_str_of("{\"ok\":1}")};
		break;
	case CS_MSG_ERROR:
		m->error = (struct cs_msg_error){.code = CS_ERR_STALE_TERM,
		                                 .text = cs_str_of("term 6 < 7")};
		break;
	}
}

static int str_same(struct cs_str a, struct cs_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int bytes_same(struct cs_bytes a, struct cs_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static int hello_same(const struct cs_msg_hello *a, const struct cs_msg_hello *b)
{
	if (a->version_min != b->version_min || a->version_max != b->version_max ||
	    a->role != b->role || a->term != b->term || !str_same(a->cluster, b->cluster) ||
	    !str_same(a->node, b->node) || !bytes_same(a->token, b->token) ||
	    !str_same(a->exe_path, b->exe_path) || a->n_build_ids != b->n_build_ids)
		return 0;
	for (uint32_t i = 0; i < a->n_build_ids; i++)
		if (!bytes_same(a->build_ids[i], b->build_ids[i]))
			return 0;
	return 1;
}

/* Field-by-field equality (views compare by content). */
static int msg_same(const struct cs_msg *a, const struct cs_msg *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case CS_MSG_HELLO:
		return hello_same(&a->hello, &b->hello);
	case CS_MSG_HEARTBEAT:
		return a->heartbeat.term == b->heartbeat.term &&
		       a->heartbeat.durable_generation == b->heartbeat.durable_generation &&
		       a->heartbeat.send_time_ns == b->heartbeat.send_time_ns &&
		       a->heartbeat.echo_time_ns == b->heartbeat.echo_time_ns &&
		       a->heartbeat.lease_ms == b->heartbeat.lease_ms &&
		       a->heartbeat.role == b->heartbeat.role;
	case CS_MSG_LEASE_RENEW:
		return a->lease_renew.term == b->lease_renew.term &&
		       a->lease_renew.seq == b->lease_renew.seq &&
		       a->lease_renew.duration_ms == b->lease_renew.duration_ms;
	case CS_MSG_LEASE_GRANT:
		return a->lease_grant.term == b->lease_grant.term &&
		       a->lease_grant.seq == b->lease_grant.seq &&
		       a->lease_grant.duration_ms == b->lease_grant.duration_ms &&
		       a->lease_grant.granted == b->lease_grant.granted;
	case CS_MSG_VOTE_REQUEST:
		return a->vote_request.term == b->vote_request.term &&
		       a->vote_request.durable_generation == b->vote_request.durable_generation &&
		       str_same(a->vote_request.candidate, b->vote_request.candidate);
	case CS_MSG_VOTE:
		return a->vote.term == b->vote.term &&
		       a->vote.durable_generation == b->vote.durable_generation &&
		       a->vote.lease_remaining_ms == b->vote.lease_remaining_ms &&
		       a->vote.granted == b->vote.granted && a->vote.reason == b->vote.reason;
	case CS_MSG_PREVOTE_REQUEST:
		return a->prevote_request.term == b->prevote_request.term &&
		       a->prevote_request.durable_generation ==
		           b->prevote_request.durable_generation &&
		       str_same(a->prevote_request.candidate, b->prevote_request.candidate);
	case CS_MSG_PREVOTE:
		return a->prevote.term == b->prevote.term &&
		       a->prevote.durable_generation == b->prevote.durable_generation &&
		       a->prevote.lease_remaining_ms == b->prevote.lease_remaining_ms &&
		       a->prevote.granted == b->prevote.granted &&
		       a->prevote.reason == b->prevote.reason;
	case CS_MSG_TRANSFER:
		return a->transfer.term == b->transfer.term &&
		       str_same(a->transfer.target, b->transfer.target);
	case CS_MSG_CKPT_BEGIN:
		return a->ckpt_begin.term == b->ckpt_begin.term &&
		       a->ckpt_begin.generation == b->ckpt_begin.generation &&
		       a->ckpt_begin.parent_generation == b->ckpt_begin.parent_generation &&
		       a->ckpt_begin.total_bytes == b->ckpt_begin.total_bytes &&
		       a->ckpt_begin.kind == b->ckpt_begin.kind;
	case CS_MSG_CKPT_PAGES:
		return a->ckpt_pages.generation == b->ckpt_pages.generation &&
		       a->ckpt_pages.offset == b->ckpt_pages.offset &&
		       bytes_same(a->ckpt_pages.data, b->ckpt_pages.data);
	case CS_MSG_CKPT_END:
		return a->ckpt_end.generation == b->ckpt_end.generation &&
		       a->ckpt_end.total_bytes == b->ckpt_end.total_bytes &&
		       memcmp(a->ckpt_end.sha256, b->ckpt_end.sha256, CS_DIGEST_SIZE) == 0;
	case CS_MSG_CKPT_ABORT:
		return a->ckpt_abort.generation == b->ckpt_abort.generation &&
		       a->ckpt_abort.code == b->ckpt_abort.code &&
		       str_same(a->ckpt_abort.text, b->ckpt_abort.text);
	case CS_MSG_ACK:
		return a->ack.generation == b->ack.generation && a->ack.durable == b->ack.durable;
	case CS_MSG_CONTROL_REQUEST:
		return a->control_request.request_id == b->control_request.request_id &&
		       str_same(a->control_request.command, b->control_request.command) &&
		       str_same(a->control_request.json, b->control_request.json);
	case CS_MSG_CONTROL_RESPONSE:
		return a->control_response.request_id == b->control_response.request_id &&
		       a->control_response.status == b->control_response.status &&
		       str_same(a->control_response.json, b->control_response.json);
	case CS_MSG_ERROR:
		return a->error.code == b->error.code && str_same(a->error.text, b->error.text);
	}
	return 0;
}

#endif
