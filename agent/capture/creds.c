/*
 * The process's credentials, taken during the freeze so they belong to the
 * frozen instant: the main thread's from /proc/self/status (which a
 * process may read after it dropped privileges, unlike most of /proc/self),
 * the securebits from the agent's own thread (glibc and Go change
 * credentials on every thread at once), and dumpable, which is the mm's.
 */
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"

/* After "\n<key>:": up to max numbers in base 10 or 16; returns how many. */
static size_t status_numbers(const char *text, const char *key, int base, uint64_t *out, size_t max)
{
	const char *p = strstr(text, key);
	size_t n = 0;
	if (!p)
		return 0;
	p += strlen(key);
	while (n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (cs_parse_u64(&p, &out[n], base))
			break;
		n++;
	}
	return n;
}

static int ids(const char *text, const char *key, uint32_t out[4])
{
	uint64_t v[4];
	if (status_numbers(text, key, 10, v, 4) != 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++)
		out[i] = (uint32_t)v[i];
	return 0;
}

int cs_creds_capture(struct cs_image_creds *c, char *buf, size_t cap)
{
	static const char *const cap_keys[] = {
	    "\nCapInh:", "\nCapPrm:", "\nCapEff:", "\nCapBnd:", "\nCapAmb:"};
	uint64_t *caps[] = {&c->cap_inh, &c->cap_prm, &c->cap_eff, &c->cap_bnd, &c->cap_amb};
	uint64_t v[CS_IMAGE_GROUPS_MAX];
	memset(c, 0, sizeof(*c));
	if (cs_read_file("/proc/self/status", buf, cap) <= 0)
		return -EIO;
	if (ids(buf, "\nUid:", c->uid) || ids(buf, "\nGid:", c->gid))
		return -EINVAL;
	for (int i = 0; i < 5; i++)
		if (status_numbers(buf, cap_keys[i], 16, caps[i], 1) != 1)
			return -EINVAL;
	c->n_groups = (uint32_t)status_numbers(buf, "\nGroups:", 10, v, CS_IMAGE_GROUPS_MAX);
	for (uint32_t i = 0; i < c->n_groups; i++)
		c->groups[i] = (uint32_t)v[i];
	if (status_numbers(buf, "\nNoNewPrivs:", 10, v, 1) == 1)
		c->no_new_privs = (uint32_t)v[0];
	if (status_numbers(buf, "\nSeccomp:", 10, v, 1) == 1)
		c->seccomp = (uint32_t)v[0];
	long sb = syscall(SYS_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0);
	long du = syscall(SYS_prctl, PR_GET_DUMPABLE, 0, 0, 0, 0);
	c->securebits = sb > 0 ? (uint32_t)sb : 0;
	c->dumpable = du > 0 ? (uint32_t)du : 0;
	return 0;
}
