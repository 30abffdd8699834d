/*
 * Credentials on restore: the image's CREDS go into the plan, for the
 * restorer to put on every thread, but only as far as the kernel vouches
 * for them. The agent writes images from inside the program, so a program
 * that dropped its privileges writes them as its own uid (its directory
 * was handed to it, supervise.c) and could write any credentials into
 * them. The image file's owner is the kernel's word on who wrote it: an
 * image owned by root is believed; one owned by uid U may claim U's uid and
 * gid, groups U belongs to, and no capability. Anything more is refused,
 * so a restore never runs a program with more privilege than it had.
 */
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../restore/cs_plan.h"
#include "restore.h"
#include "tool.h"

/* Groups uid may hold: its gid and what the group database lists for it. */
static int group_allowed(uid_t uid, gid_t gid, gid_t g)
{
	struct passwd *pw = getpwuid(uid);
	gid_t list[256];
	int n = sizeof(list) / sizeof(list[0]);
	if (g == gid)
		return 1;
	if (!pw || getgrouplist(pw->pw_name, gid, list, &n) < 0)
		return 0;
	for (int i = 0; i < n; i++)
		if (list[i] == g)
			return 1;
	return 0;
}

static int vouch(const struct cs_image_creds *c, uid_t uid, gid_t gid, const char *path)
{
	const char *why = NULL;
	for (int i = 0; i < 4 && !why; i++)
		if (c->uid[i] != uid || c->gid[i] != gid)
			why = "uids and gids other than the file's owner";
	for (uint32_t i = 0; i < c->n_groups && !why; i++)
		if (!group_allowed(uid, gid, c->groups[i]))
			why = "a supplementary group its owner does not belong to";
	if (!why && (c->cap_prm | c->cap_eff | c->cap_inh | c->cap_amb))
		why = "capabilities";
	if (!why)
		return 0;
	cs_err("refusing: %s is owned by uid %u gid %u (the program wrote it after dropping its "
	       "privileges) but claims %s (uid %u/%u/%u/%u gid %u/%u/%u/%u); a restore never "
	       "gives a program more privilege than it had",
	       path, (unsigned)uid, (unsigned)gid, why, c->uid[0], c->uid[1], c->uid[2], c->uid[3],
	       c->gid[0], c->gid[1], c->gid[2], c->gid[3]);
	return -1;
}

int cs_validate_creds(const struct cs_restore *r)
{
	const struct cs_loaded *l = &r->chain.imgs[0];
	struct stat st;
	if (fstat(l->fd, &st) < 0) {
		cs_err("refusing: cannot stat %s", l->path);
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	if (!r->img->has_creds) {
		cs_err("refusing: %s is owned by uid %u and holds no credentials (written by an "
		       "older agent?); restoring it would run the program as root",
		       l->path, (unsigned)st.st_uid);
		return -1;
	}
	return vouch(&r->img->creds, st.st_uid, st.st_gid, l->path);
}

void cs_plan_creds(const struct cs_restore *r, struct cs_plan_creds *out)
{
	const struct cs_image_creds *c = &r->img->creds;
	memset(out, 0, sizeof(*out));
	if (!r->img->has_creds)
		return;
	out->present = 1;
	memcpy(out->uid, c->uid, sizeof(out->uid));
	memcpy(out->gid, c->gid, sizeof(out->gid));
	out->cap_inh = c->cap_inh, out->cap_prm = c->cap_prm, out->cap_eff = c->cap_eff;
	out->cap_bnd = c->cap_bnd, out->cap_amb = c->cap_amb;
	out->securebits = c->securebits;
	out->no_new_privs = c->no_new_privs;
	out->dumpable = c->dumpable;
	out->n_groups = c->n_groups <= CS_PLAN_GROUPS_MAX ? c->n_groups : CS_PLAN_GROUPS_MAX;
	memcpy(out->groups, c->groups, out->n_groups * sizeof(out->groups[0]));
}
