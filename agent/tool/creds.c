/*
 * Credentials on restore: the image's CREDS go into the plan, for the
 * restorer to put on every thread, but only as far as the kernel vouches
 * for them. The agent writes images from inside the program, so a program
 * that dropped its privileges writes them as its own uid (its directory
 * was handed to it, supervise.c) and could write any credentials into
 * them. The image file's owner is the kernel's word on who wrote it: an
 * image owned by root is believed; one owned by uid U may claim U's uid and
 * gid, groups U belongs to, and no capability, or what the supervisor
 * recorded, from the kernel, when it handed DIR to U (DIR/creds-ceiling,
 * a file of root's: a program that kept a capability across its uid
 * change). Anything more is refused, so a restore never runs a program with
 * more privilege than it had.
 */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* DIR/creds-ceiling (supervise.c): ids, groups and capability sets the
 * kernel showed for the program when DIR was handed to it. Only a file of
 * root's counts, and only for images of the uid it was recorded for. */
struct ceiling {
	uint32_t uid[4], gid[4], groups[CS_IMAGE_GROUPS_MAX];
	size_t n_groups;
	uint64_t prm, inh;
	unsigned no_new_privs, filters; /* what can only grow: a floor */
};

static int read_ceiling(const char *dir, uid_t owner, struct ceiling *c)
{
	char path[PATH_MAX + 32], line[8192];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, CS_CEILING_FILE);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), found = 0;
	FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
	if (!f || fstat(fd, &st) || st.st_uid != 0 || (st.st_mode & 022)) {
		if (f)
			fclose(f);
		else if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(c, 0, sizeof(*c));
	while (fgets(line, sizeof(line), f)) {
		unsigned *u = c->uid, *g = c->gid;
		unsigned long long v;
		int n = 0;
		if (sscanf(line, "Uid: %u %u %u %u", &u[0], &u[1], &u[2], &u[3]) == 4 ||
		    sscanf(line, "Gid: %u %u %u %u", &g[0], &g[1], &g[2], &g[3]) == 4)
			found++;
		else if (sscanf(line, "CapPrm: %llx", &v) == 1)
			c->prm = v;
		else if (sscanf(line, "CapInh: %llx", &v) == 1)
			c->inh = v;
		else if (sscanf(line, "NoNewPrivs: %u", &c->no_new_privs) == 1 ||
		         sscanf(line, "Seccomp_filters: %u", &c->filters) == 1)
			continue;
		else if (!strncmp(line, "Groups:", 7))
			for (char *p = line + 7;
			     c->n_groups < CS_IMAGE_GROUPS_MAX &&
			     sscanf(p, " %u%n", &c->groups[c->n_groups], &n) == 1;
			     p += n)
				c->n_groups++;
	}
	fclose(f);
	return found == 2 && c->uid[1] == owner ? 0 : -1;
}

static int in_set(const uint32_t *set, size_t n, uint32_t v)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return 1;
	return 0;
}

static int vouch(const struct cs_image_creds *c, size_t main_filters, uid_t uid, gid_t gid,
                 const char *path, const struct ceiling *ce)
{
	const char *why = NULL;
	for (int i = 0; i < 4 && !why; i++)
		if ((c->uid[i] != uid && !(ce && in_set(ce->uid, 4, c->uid[i]))) ||
		    (c->gid[i] != gid && !(ce && in_set(ce->gid, 4, c->gid[i]))))
			why = "uids and gids other than the file's owner";
	for (uint32_t i = 0; i < c->n_groups && !why; i++)
		if (!group_allowed(uid, gid, c->groups[i]) &&
		    !(ce && in_set(ce->groups, ce->n_groups, c->groups[i])))
			why = "a supplementary group its owner does not belong to";
	uint64_t prm = ce ? ce->prm : 0, inh = ce ? ce->inh : 0;
	if (!why &&
	    (((c->cap_prm | c->cap_eff | c->cap_amb) & ~prm) || (c->cap_inh & ~(inh | prm))))
		why = "capabilities";
	/* no_new_privs and seccomp filters are never given up: an image
	 * without those the program had at the handover would loosen it. */
	if (!why && ce && ((ce->no_new_privs && !c->no_new_privs) || main_filters < ce->filters))
		why = "fewer seccomp filters or no no_new_privs, where it had them";
	if (!why)
		return 0;
	cs_err("refusing: %s is owned by uid %u gid %u (the program wrote it after dropping its "
	       "privileges) but claims %s (uid %u/%u/%u/%u gid %u/%u/%u/%u); a restore never "
	       "gives a program more privilege than it had (nor more than DIR/" CS_CEILING_FILE
	       ", root's record of what it held when DIR was handed to it, allows)",
	       path, (unsigned)uid, (unsigned)gid, why, c->uid[0], c->uid[1], c->uid[2], c->uid[3],
	       c->gid[0], c->gid[1], c->gid[2], c->gid[3]);
	return -1;
}

/* Filters the image holds for its main thread. */
static size_t main_filters(const struct cs_image *img)
{
	int32_t main_tid = 0;
	size_t n = 0;
	for (size_t i = 0; i < img->n_threads; i++)
		if (img->threads[i].flags & CS_THREAD_MAIN)
			main_tid = img->threads[i].tid;
	for (size_t i = 0; i < img->n_seccomp; i++)
		n += img->seccomp[i].tid == main_tid;
	return n;
}

int cs_validate_creds(const struct cs_restore *r)
{
	const struct cs_loaded *l = &r->chain.imgs[0];
	struct stat st;
	if (r->img->has_creds && r->img->creds.seccomp == 2 && !main_filters(r->img)) {
		cs_err("refusing: %s says its main thread has seccomp filters but holds none of "
		       "them; a restore never runs a program with fewer",
		       l->path);
		return -1;
	}
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
	struct ceiling ce;
	int have = read_ceiling(r->dir, st.st_uid, &ce) == 0;
	return vouch(&r->img->creds, main_filters(r->img), st.st_uid, st.st_gid, l->path,
	             have ? &ce : NULL);
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
