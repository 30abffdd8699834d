/* Cluster events and plain log messages of the daemon.
 *
 * Under systemd (stderr is the journal stream named by $JOURNAL_STREAM, or
 * cs_journal_init was told so) every call is one structured journal entry.
 * Anywhere else it is one readable line on stderr. Events carry a fixed
 * MESSAGE_ID per kind (described in systemd/checksync.catalog) and the
 * fields CHECKSYNC_EVENT, CHECKSYNC_NODE, CHECKSYNC_ROLE, CHECKSYNC_TERM and,
 * where given, CHECKSYNC_PEER, CHECKSYNC_GENERATION, CHECKSYNC_BYTES,
 * CHECKSYNC_DURATION_MS, CHECKSYNC_REASON, CHECKSYNC_ADDRESS, CHECKSYNC_HOOK, CHECKSYNC_OLD_ROLE,
 * CHECKSYNC_OLD_TERM, CHECKSYNC_PATH, CHECKSYNC_PATH_REASON.
 *
 * Call sites stay short:
 *   cs_event(CS_EV_PEER_DOWN, .peer = p->name, .reason = "connection reset");
 *   cs_event(CS_EV_FENCE_HOOK_OK, .peer = "beta", CS_DURATION(ms));
 *   cs_log_warn_errno(r, "cannot open %s", path);
 */
#ifndef CS_JOURNAL_H
#define CS_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Keep in step with the table in journal.c, systemd/checksync.catalog and
 * docs/events.md. Never renumber: only the names and ids are stable. */
enum cs_event_kind {
	CS_EV_STARTED,               /* daemon up, listeners open */
	CS_EV_STOPPING,              /* daemon shutting down */
	CS_EV_PEER_UP,               /* link to .peer authenticated and live */
	CS_EV_PEER_DOWN,             /* link to .peer closed */
	CS_EV_PEER_SUSPECTED,        /* no heartbeat from .peer for timeout_ms */
	CS_EV_LEASE_LOST,            /* primary could not renew its lease */
	CS_EV_FENCED,                /* this node fenced itself */
	CS_EV_PROMOTED,              /* this node became primary in .term */
	CS_EV_DEMOTED,               /* this node stopped being primary */
	CS_EV_ROLE_CHANGED,          /* any other role change (e.g. fenced -> backup) */
	CS_EV_TERM_CHANGED,          /* the known term moved (.old_term -> .term) */
	CS_EV_TLS_REFUSED,           /* a peer connection was refused (.reason) */
	CS_EV_STALE_TERM_REFUSED,    /* a message of an older term was refused */
	CS_EV_CONFIG_RELOADED,       /* SIGHUP: every change applied */
	CS_EV_CONFIG_RELOAD_PARTIAL, /* SIGHUP: some changes need a restart (.reason) */
	CS_EV_CONFIG_RELOAD_FAILED,  /* SIGHUP: new config invalid, old one kept */
	CS_EV_FENCE_HOOK_OK,         /* fence hook for .peer exited 0 */
	CS_EV_FENCE_HOOK_FAILED,     /* fence hook failed, timed out or could not start */
	CS_EV_NOTIFY_HOOK_OUTPUT,    /* one line of a hook's output (.reason holds it) */
	CS_EV_NOTIFY_HOOK_FAILED,    /* notify hook failed or timed out */
	CS_EV_SWITCHOVER,            /* a switchover to .peer was requested/started */
	CS_EV_SWITCHOVER_DONE,       /* switchover finished */
	CS_EV_PROMOTION_BLOCKED,     /* a promotion is waiting or refused (.reason) */
	CS_EV_PRIMARY_LOST,          /* the primary's lease ran out here (.peer) */
	CS_EV_RESTORE_STARTED,       /* restoring from .generation (.path) */
	CS_EV_RESTORE_DONE,          /* restored app answered (.generation, .path, ms) */
	CS_EV_APP_SERVING,           /* the app runs and its agent answers */
	CS_EV_BACKUP_JOINED,         /* a backup started receiving checkpoints (.peer) */
	CS_EV_BACKUP_LAGGING,        /* a backup fell behind (.peer, .reason) */
	CS_EV_BACKUP_CAUGHT_UP,      /* a backup acknowledged the newest generation (.peer) */
	CS_EV_BACKUP_DEGRADED,       /* a backup cannot store checkpoints (.peer, .reason) */
	CS_EV_CHECKPOINT_REFUSED,    /* a received checkpoint was refused (.peer, .reason) */
	CS_EV_APP_CRASHED,           /* the app exited on the primary (.reason) */
	CS_EV_APP_RESTORED_LOCALLY,  /* a crashed app was restored on the same host (.generation) */
	CS_EV_RESTORE_NOT_READY,     /* this host could not restore what it holds (.reason) */
	CS_EV_RESTORE_FAILED,        /* a restore failed (.reason) */
	CS_EV__COUNT
};

/* The CHECKSYNC_EVENT value ("peer_up"), NULL when out of range. */
const char *cs_event_name(enum cs_event_kind kind);
/* The 32-hex-digit MESSAGE_ID of a kind, NULL when out of range. */
const char *cs_event_message_id(enum cs_event_kind kind);
/* Inverse of cs_event_name; -1 when unknown. */
int cs_event_from_name(const char *name);

/* Optional fields of one event. Unset strings are NULL; numbers are unset
 * when 0 (terms and generations start at 1) except duration, which has its
 * own flag (use CS_DURATION). role and term default to the daemon's current
 * state (cs_journal_set_state). */
struct cs_event_fields {
	const char *peer;
	const char *role;
	const char *old_role;
	uint64_t term;
	uint64_t old_term;
	uint64_t generation;
	uint64_t bytes;          /* CHECKSYNC_BYTES: image bytes (restore_done) */
	const char *reason;      /* why, or the hook output line */
	const char *address;     /* remote address of a connection */
	const char *hook;        /* "notify" or "fence" */
	const char *path;        /* restores: "standby" or "cold" (CHECKSYNC_PATH) */
	const char *path_reason; /* why cold: "off: ...", "building: ...", "behind: ...", ... */
	bool has_duration;
	uint64_t duration_ms;
};
#define CS_DURATION(ms) .has_duration = true, .duration_ms = (ms)

#define cs_event(kind, ...) cs_event_emit((kind), &(const struct cs_event_fields){__VA_ARGS__})
void cs_event_emit(enum cs_event_kind kind, const struct cs_event_fields *f);

/* Where the output goes. AUTO decides from $JOURNAL_STREAM versus stderr's
 * device and inode, as systemd.exec(5) documents. */
enum cs_log_target { CS_LOG_AUTO, CS_LOG_STDERR, CS_LOG_JOURNAL };
/* IDENT is SYSLOG_IDENTIFIER and the stderr prefix ("checksyncd"). */
void cs_journal_init(const char *ident, enum cs_log_target target);
bool cs_journal_is_journal(void);
/* Messages above this syslog priority are dropped (default LOG_INFO). */
void cs_log_set_max_priority(int priority);
/* Context added to every event and log entry: the node name (CHECKSYNC_NODE),
 * then the current role and term (defaults for CHECKSYNC_ROLE/TERM). */
void cs_journal_set_node(const char *node);
void cs_journal_set_state(const char *role, uint64_t term);

/* Plain messages (no CHECKSYNC_EVENT). The _errno variants append ": " and
 * the strerror of ERR (positive or negative) and return -abs(ERR), so
 *   return cs_log_err_errno(r, "cannot bind %s", path);
 * works. */
void cs_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cs_log_errno(int priority, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define cs_log_debug(...)           cs_log(LOG_DEBUG, __VA_ARGS__)
#define cs_log_info(...)            cs_log(LOG_INFO, __VA_ARGS__)
#define cs_log_notice(...)          cs_log(LOG_NOTICE, __VA_ARGS__)
#define cs_log_warn(...)            cs_log(LOG_WARNING, __VA_ARGS__)
#define cs_log_err(...)             cs_log(LOG_ERR, __VA_ARGS__)
#define cs_log_warn_errno(err, ...) cs_log_errno(LOG_WARNING, (err), __VA_ARGS__)
#define cs_log_err_errno(err, ...)  cs_log_errno(LOG_ERR, (err), __VA_ARGS__)

#endif
