/* See shim.h. Kept free of Go so it could be tested on its own. */
#define _GNU_SOURCE /* pipe2 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "shim_api.h"

static struct csgo_api api;
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;
static int resolved;

static void resolve(void)
{
	resolved = csgo_bind(&api);
}

int csgo_resolve(void)
{
	pthread_once(&resolve_once, resolve);
	return resolved;
}

int csgo_enabled(void)
{
	return csgo_resolve() && api.enabled() > 0;
}

int csgo_sync(uint64_t *ret_generation)
{
	return csgo_resolve() ? api.sync(ret_generation) : -ENOTCONN;
}

int csgo_checkpoint(uint64_t *ret_generation)
{
	return csgo_resolve() ? api.checkpoint(ret_generation) : -ENOTCONN;
}

int csgo_stats(struct csgo_stats *out)
{
	/* Room to spare: an agent newer than this program may fill a larger
	 * struct than the header it was built with. */
	union {
		struct cs_stats s;
		char room[sizeof(struct cs_stats) + 1024];
	} u;
	const struct cs_stats *sp = &u.s;
	int r;

	memset(out, 0, sizeof(*out));
	if (!csgo_resolve())
		return -ENOTCONN;
	memset(&u, 0, sizeof(u));
	/* An agent with cs_stats_size writes no more than we have; an older
	 * one fills its own struct, which the spare room covers. */
	r = api.stats_size ? api.stats_size(&u.s, sizeof(u.s)) : api.stats(&u.s);
	if (r < 0)
		return r;
	/* Field by field: the agent's struct may grow, ours is what Go sees. */
	out->generation = sp->generation;
	out->checkpoints = sp->checkpoints;
	out->failures = sp->failures;
	out->bytes_total = sp->bytes_total;
	out->last_bytes = sp->last_bytes;
	out->last_pages = sp->last_pages;
	out->last_pause_ns = sp->last_pause_ns;
	out->max_pause_ns = sp->max_pause_ns;
	out->last_pause_cpu_ns = sp->last_pause_cpu_ns;
	out->last_copied = sp->last_copied;
	out->restored_from = sp->restored_from;
	out->tracking = sp->tracking;
	memcpy(out->last_error, sp->last_error, sizeof(out->last_error));
	out->last_error[sizeof(out->last_error) - 1] = 0;
	out->sig_takeovers = sp->sig_takeovers;
	out->sig_foreign_handler = sp->sig_foreign_handler;
	out->sig_first_takeover_ns = sp->sig_first_takeover_ns;
	out->sig_last_takeover_ns = sp->sig_last_takeover_ns;
	out->sig_forwarded = sp->sig_forwarded;
	out->freeze_signal = sp->freeze_signal;
	return 0;
}

/*
 * The restore callback runs on the agent's thread, which is not a Go thread
 * and may run while the runtime's own threads are still being released. It
 * therefore only records the details and writes one byte to a pipe; a
 * goroutine blocked on the pipe's read end (in Go's netpoller) calls the
 * program's functions.
 */
static pthread_mutex_t restore_lock = PTHREAD_MUTEX_INITIALIZER;
static struct csgo_restore last_restore;
static int restore_wfd = -1;

static void on_restore(const struct cs_restore_info *info, void *arg)
{
	char b = 'r';
	ssize_t n;

	(void)arg;
	pthread_mutex_lock(&restore_lock);
	last_restore.seq++;
	last_restore.generation = info->restored_from_generation;
	last_restore.away_ns = info->away_ns;
	pthread_mutex_unlock(&restore_lock);
	do
		n = write(restore_wfd, &b, 1);
	while (n < 0 && errno == EINTR);
}

int csgo_restore_pipe(void)
{
	int fds[2];
	int r;

	if (!csgo_resolve())
		return -ENOTCONN;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	restore_wfd = fds[1];
	r = api.on_restore(on_restore, NULL);
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
		restore_wfd = -1;
		return r;
	}
	return fds[0];
}

void csgo_last_restore(struct csgo_restore *out)
{
	pthread_mutex_lock(&restore_lock);
	*out = last_restore;
	pthread_mutex_unlock(&restore_lock);
}
