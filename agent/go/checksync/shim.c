/* See shim.h. Kept free of Go so it could be tested on its own. */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#if __has_include(<checksync.h>)
#include <checksync.h>
#define CSGO_HAVE_API 1
#else
/* The agent's header has not been built yet: the package then reports
 * Enabled() == false, which is true of every process it could run in. */
#define CSGO_HAVE_API 0
#endif

#if CSGO_HAVE_API
static int (*p_enabled)(void);
static int (*p_sync)(uint64_t *);
static int (*p_checkpoint)(uint64_t *);
static int (*p_stats)(struct cs_stats *);
static int (*p_on_restore)(void (*)(const struct cs_restore_info *, void *), void *);
#endif
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;
static int resolved;

static void resolve(void)
{
#if CSGO_HAVE_API
	/* RTLD_DEFAULT searches the executable and everything loaded with it,
	 * LD_PRELOAD first among the libraries. */
	p_enabled = (int (*)(void))dlsym(RTLD_DEFAULT, "cs_enabled");
	p_sync = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_sync");
	p_checkpoint = (int (*)(uint64_t *))dlsym(RTLD_DEFAULT, "cs_checkpoint");
	p_stats = (int (*)(struct cs_stats *))dlsym(RTLD_DEFAULT, "cs_stats");
	p_on_restore = (int (*)(void (*)(const struct cs_restore_info *, void *), void *))
		dlsym(RTLD_DEFAULT, "cs_on_restore");
	resolved = p_enabled && p_sync && p_checkpoint && p_stats && p_on_restore;
#endif
}

int csgo_resolve(void)
{
	pthread_once(&resolve_once, resolve);
	return resolved;
}

int csgo_enabled(void)
{
#if CSGO_HAVE_API
	if (csgo_resolve())
		return p_enabled() > 0;
#endif
	return 0;
}

int csgo_sync(uint64_t *ret_generation)
{
#if CSGO_HAVE_API
	if (csgo_resolve())
		return p_sync(ret_generation);
#endif
	(void)ret_generation;
	return -ENOSYS;
}

int csgo_checkpoint(uint64_t *ret_generation)
{
#if CSGO_HAVE_API
	if (csgo_resolve())
		return p_checkpoint(ret_generation);
#endif
	(void)ret_generation;
	return -ENOSYS;
}

int csgo_stats(struct csgo_stats *out)
{
	memset(out, 0, sizeof(*out));
#if CSGO_HAVE_API
	if (csgo_resolve()) {
		struct cs_stats s;
		int r;

		memset(&s, 0, sizeof(s));
		r = p_stats(&s);
		if (r < 0)
			return r;
		CSGO_COPY_STATS(out, &s);
		return 0;
	}
#endif
	return -ENOSYS;
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

#if CSGO_HAVE_API
static void on_restore(const struct cs_restore_info *info, void *arg)
{
	char b = 'r';
	ssize_t n;

	(void)arg;
	pthread_mutex_lock(&restore_lock);
	last_restore.seq++;
	CSGO_COPY_RESTORE(&last_restore, info);
	pthread_mutex_unlock(&restore_lock);
	do
		n = write(restore_wfd, &b, 1);
	while (n < 0 && errno == EINTR);
}
#endif

int csgo_restore_pipe(void)
{
#if CSGO_HAVE_API
	int fds[2];
	int r;

	if (!csgo_resolve())
		return -ENOSYS;
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	restore_wfd = fds[1];
	r = p_on_restore(on_restore, NULL);
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
		restore_wfd = -1;
		return r;
	}
	return fds[0];
#else
	return -ENOSYS;
#endif
}

void csgo_last_restore(struct csgo_restore *out)
{
	pthread_mutex_lock(&restore_lock);
	*out = last_restore;
	pthread_mutex_unlock(&restore_lock);
}
