/*
 * Messages of the checksync wire protocol (docs/protocol.md has every
 * byte). Each message is one frame (frame.h); its type number says which
 * struct the payload decodes into.
 *
 * Types are numbered in groups by the high byte; a number, once used, is
 * never reused for something else, even after the message is retired.
 *
 * Decoded strings and byte strings are views (pointer + length) into the
 * frame that was decoded: they are valid as long as that buffer is, and
 * strings are NOT NUL-terminated (they never contain a NUL byte; use
 * cs_str_eq / cs_str_copy). Decoding never allocates.
 */
#ifndef CS_PROTO_MSG_H
#define CS_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

enum cs_msg_type {
	/* 0x01xx: handshake */
	CS_MSG_HELLO = 0x0101,
	/* 0x02xx: membership (heartbeats, the primary's lease, elections) */
	CS_MSG_HEARTBEAT = 0x0201,
	CS_MSG_LEASE_RENEW = 0x0202,
	CS_MSG_LEASE_GRANT = 0x0203,
	CS_MSG_VOTE_REQUEST = 0x0204,
	CS_MSG_VOTE = 0x0205,
	CS_MSG_PREVOTE_REQUEST = 0x0206,
	CS_MSG_PREVOTE = 0x0207,
	CS_MSG_TRANSFER = 0x0208,
	/* 0x03xx: checkpoint transfer */
	CS_MSG_CKPT_BEGIN = 0x0301,
	CS_MSG_CKPT_PAGES = 0x0302,
	CS_MSG_CKPT_END = 0x0303,
	CS_MSG_CKPT_ABORT = 0x0304,
	CS_MSG_ACK = 0x0305,
	/* 0x04xx: control */
	CS_MSG_CONTROL_REQUEST = 0x0401,
	CS_MSG_CONTROL_RESPONSE = 0x0402,
	/* 0x7fxx: errors */
	CS_MSG_ERROR = 0x7f01,
};

/* "HELLO", "CKPT_PAGES", ...; NULL for a type this version does not know. */
const char *cs_msg_type_name(uint16_t type);

/* Limits (bytes unless said otherwise); decoders reject anything larger. */
#define CS_NAME_MAX       64   /* cluster and node names */
#define CS_TOKEN_MAX      64   /* HELLO auth token */
#define CS_PATH_MAX       4096 /* HELLO exe path */
#define CS_BUILD_ID_MAX   128  /* one build-id (GNU notes are 20, Go's ~83) */
#define CS_BUILD_IDS_MAX  32   /* build-ids per HELLO */
#define CS_COMMAND_MAX    64   /* CONTROL_REQUEST command */
#define CS_ERROR_TEXT_MAX 1024 /* ERROR and CKPT_ABORT text */
#define CS_DIGEST_SIZE    32   /* SHA-256 */
/* JSON bodies and page chunks are limited only by CS_FRAME_PAYLOAD_MAX. */

/* What the sender of a HELLO or HEARTBEAT is. */
enum cs_role {
	CS_ROLE_NONE = 0,    /* not decided yet (starting, or lost its lease) */
	CS_ROLE_PRIMARY = 1, /* runs the app, holds the lease */
	CS_ROLE_BACKUP = 2,  /* stores checkpoints, may promote */
	CS_ROLE_WITNESS = 3, /* votes, runs no app */
	CS_ROLE_AGENT = 4,   /* libchecksync inside an app, talking to its daemon */
	CS_ROLE_CLIENT = 5,  /* checksyncctl or another control client */
	CS_ROLE_COUNT_
};
const char *cs_role_name(unsigned role); /* "primary", ...; NULL if unknown */

/* Why a VOTE was refused (or CS_VOTE_GRANTED). */
enum cs_vote_reason {
	CS_VOTE_GRANTED = 0,
	CS_VOTE_STALE_TERM = 1,    /* candidate's term is not newer than the voter's */
	CS_VOTE_ALREADY_VOTED = 2, /* voter voted for someone else in this term */
	CS_VOTE_LEASE_HELD = 3,    /* voter still honours the current primary's lease */
	CS_VOTE_BEHIND = 4,        /* candidate's durable generation is older than the voter's */
	CS_VOTE_NOT_VOTER = 5,     /* this node does not vote (not in its configuration) */
	CS_VOTE_REASON_COUNT_
};
const char *cs_vote_reason_name(unsigned reason);

/* Codes carried by ERROR (and CKPT_ABORT); any u32 is accepted on decode. */
enum cs_error_code {
	CS_ERR_PROTOCOL = 1,        /* a frame or message failed to decode */
	CS_ERR_VERSION = 2,         /* no common protocol version */
	CS_ERR_AUTH = 3,            /* token or peer identity refused */
	CS_ERR_CLUSTER = 4,         /* HELLO for another cluster */
	CS_ERR_STALE_TERM = 5,      /* message of an older term refused */
	CS_ERR_APP_MISMATCH = 6,    /* build-ids differ from the cluster's app */
	CS_ERR_BUSY = 7,            /* try again later */
	CS_ERR_INTERNAL = 8,        /* the sender failed (disk full, ...) */
	CS_ERR_UNEXPECTED = 9,      /* valid message at the wrong time */
	CS_ERR_BAD_CHECKPOINT = 10, /* digest, size or sequence of a checkpoint wrong */
	CS_ERR_CODE_COUNT_
};
const char *cs_error_code_name(uint32_t code); /* "protocol", ...; NULL if unknown */

/* Views into a decoded frame, or into the caller's memory when encoding. */
struct cs_str {
	const char *ptr; /* not NUL-terminated; may be NULL when len == 0 */
	uint32_t len;
};

struct cs_bytes {
	const uint8_t *ptr; /* may be NULL when len == 0 */
	uint32_t len;
};

/* A view of a C string (for encoding). */
struct cs_str cs_str_of(const char *s);
/* True if the view holds exactly the C string s. */
bool cs_str_eq(struct cs_str a, const char *s);
/* Copies into dst as a C string. Returns 0, or -ENAMETOOLONG if
 * len >= cap (dst then holds nothing, ""). */
int cs_str_copy(char *dst, size_t cap, struct cs_str a);

struct cs_msg_hello {
	uint16_t version_min, version_max; /* protocol versions the sender speaks */
	uint8_t role;                      /* enum cs_role */
	uint64_t term;                     /* the sender's current term */
	struct cs_str cluster;             /* <= CS_NAME_MAX */
	struct cs_str node;                /* <= CS_NAME_MAX, the sender's name */
	struct cs_bytes token;             /* <= CS_TOKEN_MAX; agent's per-launch token */
	struct cs_str exe_path;            /* <= CS_PATH_MAX; app executable, may be empty */
	uint32_t n_build_ids;              /* <= CS_BUILD_IDS_MAX */
	struct cs_bytes build_ids[CS_BUILD_IDS_MAX]; /* each 1..CS_BUILD_ID_MAX bytes */
};

struct cs_msg_heartbeat {
	uint64_t term;
	uint64_t durable_generation; /* newest checkpoint durable on the sender, 0: none */
	uint64_t send_time_ns;       /* sender's CLOCK_MONOTONIC at send */
	uint64_t echo_time_ns;       /* latest send_time_ns received from the peer, 0: none */
	uint32_t lease_ms;           /* lease time left as the sender sees it, 0: none */
	uint8_t role;                /* enum cs_role */
};

/* Primary -> every voter: "promise me duration_ms from when you receive this". */
struct cs_msg_lease_renew {
	uint64_t term;
	uint64_t seq; /* increases with every renewal in a term */
	uint32_t duration_ms;
};

/* Voter -> primary: the answer to LEASE_RENEW seq. */
struct cs_msg_lease_grant {
	uint64_t term; /* the voter's term (newer than the primary's: step down) */
	uint64_t seq;
	uint32_t duration_ms; /* promised, counted from the voter's receipt */
	bool granted;
};

/* Candidate -> every voter: "elect me primary of term". */
struct cs_msg_vote_request {
	uint64_t term;               /* the new term: candidate's current term + 1 */
	uint64_t durable_generation; /* newest checkpoint durable on the candidate */
	struct cs_str candidate;     /* node name, <= CS_NAME_MAX */
};

/* Voter -> candidate. */
struct cs_msg_vote {
	uint64_t term;               /* the voter's term after handling the request */
	uint64_t durable_generation; /* newest checkpoint durable on the voter */
	uint32_t lease_remaining_ms; /* with LEASE_HELD: how long the voter still waits */
	bool granted;
	uint8_t reason; /* enum cs_vote_reason; CS_VOTE_GRANTED iff granted */
};

/*
 * PREVOTE_REQUEST and PREVOTE carry the fields of VOTE_REQUEST and VOTE
 * (members prevote_request and prevote of struct cs_msg). A pre-vote asks
 * "would you vote for me in term?" before a candidate raises its term, so
 * that a node cut off from the primary cannot depose it by raising terms
 * again and again; answering one changes nothing on the voter (no term
 * adopted, no vote recorded).
 */

/* Primary of term -> every peer: "I stepped down; let target take over". */
struct cs_msg_transfer {
	uint64_t term;        /* the term of the primary that stepped down */
	struct cs_str target; /* node name that should stand, <= CS_NAME_MAX */
};

enum cs_ckpt_kind { CS_CKPT_BASE = 0, CS_CKPT_DELTA = 1 };

struct cs_msg_ckpt_begin {
	uint64_t term; /* the sending primary's term */
	uint64_t generation;
	uint64_t parent_generation; /* the delta's parent; 0 for a base */
	uint64_t total_bytes;       /* image bytes that PAGES will carry */
	uint8_t kind;               /* enum cs_ckpt_kind */
};

struct cs_msg_ckpt_pages {
	uint64_t generation;
	uint64_t offset;      /* of data[0] in the image */
	struct cs_bytes data; /* image bytes, opaque here (image.h) */
};

struct cs_msg_ckpt_end {
	uint64_t generation;
	uint64_t total_bytes;
	uint8_t sha256[CS_DIGEST_SIZE]; /* of the image bytes 0..total_bytes-1 */
};

/* Sender gives up on a transfer; the receiver discards what it has. */
struct cs_msg_ckpt_abort {
	uint64_t generation;
	uint32_t code;      /* enum cs_error_code */
	struct cs_str text; /* <= CS_ERROR_TEXT_MAX */
};

struct cs_msg_ack {
	uint64_t generation;
	bool durable; /* false: received and verified; true: fsynced */
};

struct cs_msg_control_request {
	uint32_t request_id;
	struct cs_str command; /* <= CS_COMMAND_MAX, e.g. "status" */
	struct cs_str json;    /* arguments, JSON text (may be empty) */
};

struct cs_msg_control_response {
	uint32_t request_id;
	int32_t status;     /* 0 or a negative errno */
	struct cs_str json; /* result, JSON text (may be empty) */
};

struct cs_msg_error {
	uint32_t code;      /* enum cs_error_code */
	struct cs_str text; /* <= CS_ERROR_TEXT_MAX */
};

struct cs_msg {
	uint16_t type; /* enum cs_msg_type: which member is valid */
	union {
		struct cs_msg_hello hello;
		struct cs_msg_heartbeat heartbeat;
		struct cs_msg_lease_renew lease_renew;
		struct cs_msg_lease_grant lease_grant;
		struct cs_msg_vote_request vote_request;
		struct cs_msg_vote vote;
		struct cs_msg_vote_request prevote_request;
		struct cs_msg_vote prevote;
		struct cs_msg_transfer transfer;
		struct cs_msg_ckpt_begin ckpt_begin;
		struct cs_msg_ckpt_pages ckpt_pages;
		struct cs_msg_ckpt_end ckpt_end;
		struct cs_msg_ckpt_abort ckpt_abort;
		struct cs_msg_ack ack;
		struct cs_msg_control_request control_request;
		struct cs_msg_control_response control_response;
		struct cs_msg_error error;
	};
};

/*
 * Encodes m as a complete frame of the given version into buf (cap
 * bytes). Returns the frame size; if it is larger than cap nothing useful
 * is written (call again with that much room, like snprintf). Returns
 * CS_PROTO_EINVAL if a field breaks a limit (the encoder accepts exactly
 * what the decoder accepts), CS_PROTO_ETYPE for an unknown type,
 * CS_PROTO_EVERSION, or CS_PROTO_EOVERSIZE.
 */
int cs_msg_encode(void *buf, size_t cap, uint16_t version, const struct cs_msg *m);

/* Payload bytes m needs (without the frame header), or a negative error. */
int cs_msg_payload_size(const struct cs_msg *m);

/*
 * Decodes the payload of a parsed frame. Returns 0, CS_PROTO_ETYPE, or
 * CS_PROTO_EMALFORMED (a length past the payload, a string over its limit
 * or with a NUL byte, an enum or boolean out of range, trailing bytes).
 * Views in *out point into f->payload.
 */
int cs_msg_decode(const struct cs_frame *f, struct cs_msg *out);

/*
 * cs_frame_parse + cs_msg_decode on a contiguous buffer. Returns the size
 * of the frame consumed (> 0), CS_PROTO_ETRUNC with *ret_need set, or
 * another negative CS_PROTO_E*.
 */
int cs_msg_parse(const void *buf, size_t len, uint16_t accept_version, struct cs_msg *out,
                 size_t *ret_need);

/*
 * Version negotiation (docs/protocol.md): the highest version both HELLOs
 * allow, or CS_PROTO_EVERSION if their ranges do not overlap.
 */
int cs_proto_negotiate(uint16_t a_min, uint16_t a_max, uint16_t b_min, uint16_t b_max);

#endif
