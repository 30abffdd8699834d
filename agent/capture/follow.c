/*
 * Capability changes a thread of the program makes on itself, made again on
 * the agent's thread.
 *
 * Capabilities, securebits (PR_SET_KEEPCAPS among them) and the bounding
 * and ambient sets belong to a thread, not to the process, while glibc
 * changes uids and gids on every thread at once: the set*id call on the
 * calling thread, then the same on each other thread (SIGSETXID), and the
 * program aborts when one of those fails. util-linux setpriv (--reuid
 * --regid --clear-groups) does PR_SET_KEEPCAPS, setresuid, capset (to have
 * CAP_SETGID effective again), then setresgid: on the agent's thread, which
 * had seen neither the PR_SET_KEEPCAPS nor the capset, setresuid cleared
 * every capability, setresgid failed with EPERM, and `checksync run --
 * setpriv ...` died of SIGABRT before the program ran.
 *
 * libchecksync therefore wraps capset and prctl: once one of them has
 * changed the calling thread's capabilities, the agent's thread makes the
 * same call on itself before the wrapper returns (asked with the freeze
 * signal, the one it does not block, marked CS_FOLLOW_TOKEN). The agent's
 * thread so holds what the program's threads hold, never more. Changes made
 * with raw system calls are not seen.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

enum follow_kind { FOLLOW_CAPSET = 1, FOLLOW_PRCTL = 2 };

/* The call the agent's thread makes again; one at a time (follow_mu). */
static struct {
	int kind;
	int option;
	unsigned long args[4];
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct data[2];
	_Atomic uint32_t done;
} req;
static pthread_mutex_t follow_mu = PTHREAD_MUTEX_INITIALIZER;

/* The agent's waits are bounded: its thread may be in a capture. */
#define FOLLOW_WAIT_MS 1000

int capset(struct __user_cap_header_struct *hdr, struct __user_cap_data_struct *data);

static int raw_capset(struct __user_cap_header_struct *hdr, struct __user_cap_data_struct *data)
{
	return (int)syscall(SYS_capset, hdr, data);
}

/* prctl's four arguments after the option (glibc's prctl reads four). */
static void prctl_args(va_list ap, unsigned long a[4])
{
	for (int i = 0; i < 4; i++)
		a[i] = va_arg(ap, unsigned long);
}

static int raw_prctl(int option, ...)
{
	va_list ap;
	unsigned long a[4];
	va_start(ap, option);
	prctl_args(ap, a);
	va_end(ap);
	return (int)syscall(SYS_prctl, option, a[0], a[1], a[2], a[3]);
}

static int (*next_capset)(struct __user_cap_header_struct *, struct __user_cap_data_struct *);
static int (*next_prctl)(int, ...);

void cs_follow_init(void)
{
	(void)CS_WRAP_NEXT(capset);
	(void)CS_WRAP_NEXT(prctl);
}

/* On the agent's thread, in the freeze handler. */
void cs_follow_run(void)
{
	if (req.kind == FOLLOW_CAPSET) {
		struct __user_cap_header_struct h = req.hdr;
		h.pid = 0;
		syscall(SYS_capset, &h, req.data);
	} else if (req.kind == FOLLOW_PRCTL) {
		syscall(SYS_prctl, req.option, req.args[0], req.args[1], req.args[2], req.args[3]);
	}
	atomic_store(&req.done, 1);
	syscall(SYS_futex, &req.done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Whether the agent's thread must follow a change of the calling thread:
 * not on the agent's thread itself, and not in a child the program forked
 * (it has no agent thread; its memory still names the parent's). */
static int agent_follows(void)
{
	pid_t agent = __atomic_load_n(&cs_agent.agent_tid, __ATOMIC_RELAXED);
	return __atomic_load_n(&cs_agent.active, __ATOMIC_RELAXED) && agent &&
	       agent != (pid_t)syscall(SYS_gettid) &&
	       __atomic_load_n(&cs_agent.pid, __ATOMIC_RELAXED) == (pid_t)syscall(SYS_getpid);
}

/* Asks the agent's thread to make req's call and waits until it has
 * (follow_mu held). */
static void ask_agent(void)
{
	atomic_store(&req.done, 0);
	if (cs_freeze_ask_agent())
		return;
	for (int i = 0; i < FOLLOW_WAIT_MS && !atomic_load(&req.done); i++) {
		struct timespec ms = {0, 1000000};
		syscall(SYS_futex, &req.done, FUTEX_WAIT_PRIVATE, 0, &ms, NULL, 0);
	}
}

/* The agent's thread makes the call too: a capset of hdr/data (n sets),
 * or prctl(option, args). Keeps errno: the caller's call succeeded. */
static void follow(int kind, const struct __user_cap_header_struct *hdr,
                   const struct __user_cap_data_struct *data, size_t n, int option,
                   const unsigned long *args)
{
	int saved = errno;
	pthread_mutex_lock(&follow_mu);
	req.kind = kind;
	memset(req.data, 0, sizeof(req.data));
	if (hdr) {
		req.hdr = *hdr;
		memcpy(req.data, data, n * sizeof(req.data[0]));
	}
	req.option = option;
	if (args)
		memcpy(req.args, args, sizeof(req.args));
	ask_agent();
	pthread_mutex_unlock(&follow_mu);
	errno = saved;
}

int capset(struct __user_cap_header_struct *hdr, struct __user_cap_data_struct *data)
{
	int r = CS_WRAP_NEXT(capset)(hdr, data);
	if (r || !hdr || !data || (hdr->pid && hdr->pid != (int)syscall(SYS_gettid)) ||
	    !agent_follows())
		return r;
	/* version 1 has one 32-bit set of each, versions 2 and 3 two */
	follow(FOLLOW_CAPSET, hdr, data, hdr->version == _LINUX_CAPABILITY_VERSION_1 ? 1 : 2, 0,
	       NULL);
	return r;
}

/* The prctl options that change the calling thread's capabilities. */
static int changes_caps(int option, unsigned long arg2)
{
	switch (option) {
	case PR_SET_KEEPCAPS:
	case PR_SET_SECUREBITS:
	case PR_CAPBSET_DROP:
		return 1;
	case PR_CAP_AMBIENT:
		return arg2 != PR_CAP_AMBIENT_IS_SET;
	default:
		return 0;
	}
}

int prctl(int option, ...)
{
	va_list ap;
	unsigned long a[4];
	va_start(ap, option);
	prctl_args(ap, a);
	va_end(ap);
	int r = CS_WRAP_NEXT(prctl)(option, a[0], a[1], a[2], a[3]);
	if (r < 0 || !changes_caps(option, a[0]) || !agent_follows())
		return r;
	follow(FOLLOW_PRCTL, NULL, NULL, 0, option, a);
	return r;
}
