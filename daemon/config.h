/* checksync.json: the daemon's configuration, loaded once and handed to the
 * modules that need it. docs/config.md is the reference for every key. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_CONFIG_DEFAULT_PATH   "/etc/checksync.json"
#define CS_CONFIG_DEFAULT_SOCKET "/run/checksync/control.sock"
#define CS_CONFIG_DEFAULT_STATE  "/var/lib/checksync"
/* Peer and cluster names: 1..63 of [A-Za-z0-9._-], not starting with '.'
 * or '-'. They appear in certificates, journal fields and file names. */
#define CS_CONFIG_NAME_MAX 63

struct cs_peer_config {
	char *name;
	char *address; /* as written: "host:port" */
	char *host;    /* without the brackets of an IPv6 literal */
	uint16_t port;
	bool witness; /* votes, holds no app */
};

struct cs_tls_config {
	char *ca;
	char *cert;
	char *key;
};

struct cs_heartbeat_config {
	unsigned interval_ms; /* heartbeat period, each way */
	unsigned timeout_ms;  /* silence after which a peer is suspected */
	unsigned drift_ms;    /* clock-drift margin added before a promotion */
};

struct cs_hooks_config {
	char *notify;        /* NULL: no notify hook */
	char *fence;         /* NULL: no fence hook */
	unsigned timeout_ms; /* a hook still running after this is killed */
};

/* What the daemon does when the app dies on a healthy primary (crash,
 * SIGKILL, OOM kill). */
enum cs_on_exit {
	CS_ON_EXIT_RESTORE,  /* restore it locally from the newest durable generation */
	CS_ON_EXIT_RESTART,  /* start it afresh from app.exec (its memory is lost) */
	CS_ON_EXIT_FAILOVER, /* hand the primary role to a backup, which restores it */
};

/* The app's fields are set only when cs_config.has_app is true (an absent
 * "app" gets no defaults: it has a required member). */
struct cs_app_config {
	char **exec; /* NULL-terminated argv, exec[0] absolute */
	size_t n_exec;
	char *user; /* NULL: run as the daemon's user */
	char **env; /* NULL-terminated "KEY=VALUE" strings, in file order */
	size_t n_env;
	char *workdir;
	enum cs_on_exit on_exit;
	/* After this many local restores or restarts within 60 s, the next
	 * death fails over instead, so a crash loop ends. */
	unsigned max_restores_per_minute;
};

/* When a backup acknowledges a generation. docs/config.md says which
 * failures lose an acknowledged write under each. */
enum cs_durability {
	CS_DURABILITY_DISK,   /* once fsync'd into its chain */
	CS_DURABILITY_MEMORY, /* once complete and verified in memory; written to disk behind */
};

/* What cs_sync()/checksync.Sync() wait for. */
enum cs_sync_mode {
	/* A checkpoint taken after the call is acknowledged by every backup
	 * that is up; an error when no backup is up. */
	CS_SYNC_BACKUPS,
	/* A checkpoint taken after the call is durable on the primary's disk. */
	CS_SYNC_LOCAL,
};

struct cs_checkpoint_config {
	unsigned interval_ms;
	enum cs_durability durability;
	enum cs_sync_mode sync;
	unsigned sync_timeout_ms;   /* a Sync not satisfied by then returns an error */
	uint64_t max_buffer_bytes;  /* "max_buffer_mb" in bytes: images held for slow backups */
	unsigned keep_stale_chains; /* chains moved aside on rejoin that are kept (0: none) */
	bool standby;               /* a backup keeps a warm standby of the app (standby.h) */
};

/* The Prometheus endpoint (daemon/metrics.h); off unless listen is set. */
struct cs_metrics_config {
	char *listen; /* "host:port", NULL: off */
	char *listen_host;
	uint16_t listen_port;
};

struct cs_config {
	char *path; /* the file it came from (or the name given to cs_config_parse) */
	char *node;
	char *cluster;
	char *listen; /* "host:port" */
	char *listen_host;
	uint16_t listen_port;
	struct cs_peer_config *peers; /* every host, this one included, in file order */
	size_t n_peers;
	struct cs_tls_config tls;
	struct cs_heartbeat_config heartbeat;
	char *state_dir;
	char *control_socket;
	char *control_group; /* NULL: only root may use the control socket */
	struct cs_hooks_config hooks;
	bool has_app; /* "app" present (a witness usually has none) */
	struct cs_app_config app;
	struct cs_checkpoint_config checkpoint;
	struct cs_metrics_config metrics;
};

enum cs_config_flags {
	/* Skip the checks that look at the file system (tls files readable,
	 * hooks executable). For checksyncctl and the fuzzer. */
	CS_CONFIG_NO_FS_CHECKS = 1u << 0,
};

/* Loads and validates PATH. On success returns 0 and *out owns a config
 * (free with cs_config_free). On failure returns a negative errno (-ENOENT,
 * -EACCES for the file itself, -EINVAL for any content error) and writes one
 * line to err that names the file, the JSON path, what was expected and what
 * was found, e.g.
 *   /etc/checksync.json: peers[2].address: expected "host:port" string, found number 7400
 * Nothing is logged. */
int cs_config_load(const char *path, unsigned flags, struct cs_config **out, char *err,
                   size_t errlen);
/* Same from memory; NAME stands for the file name in messages. */
int cs_config_parse(const char *buf, size_t len, const char *name, unsigned flags,
                    struct cs_config **out, char *err, size_t errlen);
void cs_config_free(struct cs_config *cfg);

/* This host's entry in peers (never NULL for a loaded config). */
const struct cs_peer_config *cs_config_self(const struct cs_config *cfg);
/* A valid node or cluster name (CS_CONFIG_NAME_MAX above). */
bool cs_config_valid_name(const char *s);
const struct cs_peer_config *cs_config_peer(const struct cs_config *cfg, const char *name);
/* Every peer votes, witnesses included. */
size_t cs_config_voters(const struct cs_config *cfg);
/* Votes needed for a majority of cs_config_voters(). */
size_t cs_config_majority(const struct cs_config *cfg);
/* The first non-witness peer: preferred primary at a fresh start. */
const struct cs_peer_config *cs_config_preferred(const struct cs_config *cfg);

/* "disk", "memory", ...: the config file's spelling; NULL for a value
 * outside the enum. */
const char *cs_durability_name(enum cs_durability durability);
const char *cs_sync_mode_name(enum cs_sync_mode sync);
const char *cs_on_exit_name(enum cs_on_exit on_exit);

/* What a reload changed, as a bit set. The first group can be applied to a
 * running daemon; the rest need a restart (the old values stay in force). */
enum cs_config_change {
	CS_CHANGE_TLS = 1u << 0, /* tls.* paths (certificates are re-read on every reload anyway) */
	CS_CHANGE_HOOKS = 1u << 1,     /* hooks.* */
	CS_CHANGE_HEARTBEAT = 1u << 2, /* heartbeat.* */
	CS_CHANGE_CONTROL_GROUP = 1u << 3,
	CS_CHANGE_NODE = 1u << 8,
	CS_CHANGE_CLUSTER = 1u << 9,
	CS_CHANGE_LISTEN = 1u << 10,
	CS_CHANGE_PEERS = 1u << 11, /* set, addresses or witness flags */
	CS_CHANGE_STATE_DIR = 1u << 12,
	CS_CHANGE_CONTROL_SOCKET = 1u << 13,
	CS_CHANGE_APP = 1u << 14,
	CS_CHANGE_CHECKPOINT = 1u << 15,
	CS_CHANGE_METRICS = 1u << 16,
};
#define CS_CHANGES_LIVE                                                                            \
	(CS_CHANGE_TLS | CS_CHANGE_HOOKS | CS_CHANGE_HEARTBEAT | CS_CHANGE_CONTROL_GROUP)

unsigned cs_config_diff(const struct cs_config *old, const struct cs_config *new_cfg);
/* The key name of one change bit ("heartbeat", "peers", ...), NULL if unknown. */
const char *cs_config_change_name(enum cs_config_change change);
/* Writes the names of the bits in CHANGES as "tls, hooks" (or "none") into
 * buf; returns buf. */
char *cs_config_changes_format(unsigned changes, char *buf, size_t len);

#endif
