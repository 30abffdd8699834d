/*
 * The program's credentials, put back on a restored thread (per thread:
 * Linux keeps credentials per thread). Runs as root, right before the
 * thread leaves for program code; the order matters because every step
 * after the uid change would otherwise have lost the capability it needs:
 *
 *   supplementary groups; the bounding set; securebits with
 *   NO_SETUID_FIXUP, so the uid change keeps every capability for now;
 *   gids, uids; the inheritable set and the ambient capabilities (raising
 *   one needs it permitted and inheritable); the program's securebits;
 *   its capability sets; no_new_privs.
 *
 * Returns 0 or a negative errno with *what naming the step: the restorer
 * then ends the process, which must never run with more privilege than it
 * had.
 */
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>

#include "cs_plan.h"
#include "creds.h"
#include "sys.h"

enum {
	NR_setresuid = 117,
	NR_setresgid = 119,
	NR_setgroups = 116,
	NR_setfsuid = 122,
	NR_setfsgid = 123,
	NR_capget = 125,
	NR_capset = 126,
};

#define LOCK_BITS                                                                                  \
	(SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |          \
	 SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

static long capset3(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {
	    {(uint32_t)eff, (uint32_t)prm, (uint32_t)inh},
	    {(uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32)},
	};
	return cs_sys2(NR_capset, &h, d);
}

static long capget3(uint64_t *eff, uint64_t *prm)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	long r = cs_sys2(NR_capget, &h, d);
	*eff = d[0].effective | (uint64_t)d[1].effective << 32;
	*prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return r;
}

#define STEP(call, name)                                                                           \
	do {                                                                                       \
		long r_ = (call);                                                                  \
		if (r_ < 0) {                                                                      \
			*what = name;                                                              \
			return r_;                                                                 \
		}                                                                                  \
	} while (0)

static long ids_and_bounds(const struct cs_plan_creds *c, const char **what)
{
	STEP(cs_sys2(NR_setgroups, c->n_groups, c->groups), "setgroups");
	/* A cap the kernel does not know answers EINVAL: the end of the set. */
	for (int cap = 0; cap < 64; cap++)
		if (!(c->cap_bnd & (1ull << cap)) &&
		    cs_sys2(NR_prctl, PR_CAPBSET_DROP, cap) == -22 /* EINVAL */)
			break;
	STEP(cs_sys2(NR_prctl, PR_SET_SECUREBITS,
	             (c->securebits & ~LOCK_BITS) | SECBIT_NO_SETUID_FIXUP),
	     "PR_SET_SECUREBITS (before the uid change)");
	STEP(cs_sys3(NR_setresgid, c->gid[0], c->gid[1], c->gid[2]), "setresgid");
	cs_sys1(NR_setfsgid, c->gid[3]);
	STEP(cs_sys3(NR_setresuid, c->uid[0], c->uid[1], c->uid[2]), "setresuid");
	cs_sys1(NR_setfsuid, c->uid[3]);
	return 0;
}

long cs_restore_creds(const struct cs_plan_creds *c, const char **what)
{
	uint64_t eff, prm;
	if (!c->present)
		return 0;
	long r = ids_and_bounds(c, what);
	if (r < 0)
		return r;
	STEP(capget3(&eff, &prm), "capget");
	STEP(capset3(eff, prm, c->cap_inh), "capset (inheritable)");
	for (int cap = 0; cap < 64; cap++)
		if (c->cap_amb & (1ull << cap))
			STEP(cs_sys3(NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap),
			     "PR_CAP_AMBIENT_RAISE");
	STEP(cs_sys2(NR_prctl, PR_SET_SECUREBITS, c->securebits), "PR_SET_SECUREBITS");
	STEP(capset3(c->cap_eff, c->cap_prm, c->cap_inh), "capset");
	if (c->no_new_privs)
		STEP(cs_sys5(NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS");
	return 0;
}
