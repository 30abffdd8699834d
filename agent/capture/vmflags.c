/*
 * The advice a program gave its mappings (madvise), from the "VmFlags" of
 * /proc/self/smaps, read by the image writer and never during the freeze:
 * smaps walks every page table of the process, which measured here 3 ms
 * for 100 MB resident and 50-80 ms for 1 GB (/proc/self/maps: 0.02-0.4 ms).
 * PROCMAP_QUERY (Linux 6.11) answers only r/w/x/shared, not these flags.
 *
 * A forked writer's own smaps is the process's at the frozen instant, as
 * fork copies every mapping with its flags, except those with
 * MADV_DONTFORK: a mapping the freeze saw that the writer lacks is one.
 * (mlock is not inherited either; a locked process is refused during the
 * freeze, from VmLck.) A copy-mode writer shares the running process's
 * memory, so what it reads is a little later than the instant; advice
 * given in between is advice the program gives again after a restore, as it
 * runs on from the instant.
 *
 * The pages of DONTFORK memory are not in a forked writer's copy, and those
 * of WIPEONFORK memory read as zeros there: when such a mapping has pages
 * to write, a forked writer fails its image and asks for copy mode (the
 * pages copied during the freeze, by the process itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dump.h"

#define SEEN 0x80000000u /* a VMA covered the mapping */

static const struct {
	char name[3];
	uint32_t bit;
} advice[] = {
    {"dc", CS_MADV_DONTFORK},   {"wf", CS_MADV_WIPEONFORK}, {"dd", CS_MADV_DONTDUMP},
    {"hg", CS_MADV_HUGEPAGE},   {"nh", CS_MADV_NOHUGEPAGE}, {"mg", CS_MADV_MERGEABLE},
    {"sr", CS_MADV_SEQUENTIAL}, {"rr", CS_MADV_RANDOM},
};

struct walk {
	struct dump *d;
	uint32_t *madv;      /* per captured mapping */
	size_t next;         /* first mapping not below the current VMA */
	uint64_t start, end; /* the VMA whose lines are being read */
};

/* Mappings the restorer makes itself, or that the program cannot advise. */
static int skipped(const struct cs_vma *v)
{
	return v->flags &
	       (CS_MAP_AGENT | CS_MAP_VDSO | CS_MAP_VVAR | CS_MAP_VVAR_VCLOCK | CS_MAP_VSYSCALL);
}

static void describe(char *msg, const struct cs_vma *v, const char *what)
{
	char num[24];
	cs_strlcpy(msg, "mapping ", CS_ERR_MAX);
	cs_fmt_hex(num, v->start);
	cs_strlcat(msg, num, CS_ERR_MAX);
	cs_strlcat(msg, "-", CS_ERR_MAX);
	cs_fmt_hex(num, v->end);
	cs_strlcat(msg, num, CS_ERR_MAX);
	cs_strlcat(msg, what, CS_ERR_MAX);
}

/* An UNSUPPORTED entry found by the writer: into this image, and to the
 * agent through the shared result (a forked writer's capture is its own). */
static void refuse(struct dump *d, const struct cs_vma *v, const char *what)
{
	char msg[CS_ERR_MAX];
	struct cs_child_result *res = d->a->result;
	describe(msg, v, what);
	cs_unsup_add(d->c, msg);
	if (res->unsup[0])
		cs_strlcat(res->unsup, "\n", sizeof(res->unsup));
	cs_strlcat(res->unsup, msg, sizeof(res->unsup));
}

/* "VmFlags: rd wr mr mw me ac dd" of the VMA [w->start, w->end). */
static void vmflags_line(struct walk *w, const char *p)
{
	const struct cs_maps *m = &w->d->c->maps;
	uint32_t bits = SEEN;
	int sealed = 0;
	for (; *p; p++) {
		if (p[0] < 'a' || p[0] > 'z' || p[1] < 'a' || p[1] > 'z')
			continue;
		for (size_t i = 0; i < sizeof(advice) / sizeof(advice[0]); i++)
			if (p[0] == advice[i].name[0] && p[1] == advice[i].name[1])
				bits |= advice[i].bit;
		sealed |= p[0] == 's' && p[1] == 'l';
		p++;
	}
	while (w->next < m->n && m->v[w->next].end <= w->start)
		w->next++;
	for (size_t k = w->next; k < m->n && m->v[k].start < w->end; k++) {
		if (w->madv[k] & SEEN || skipped(&m->v[k]))
			continue;
		w->madv[k] = bits;
		if (sealed)
			refuse(w->d, &m->v[k],
			       " is sealed (mseal), which a restore cannot undo: not "
			       "restored");
	}
}

static void one_line(struct walk *w, const char *line)
{
	if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
		cs_parse_u64(&line, &w->start, 16);
		if (*line == '-')
			line++;
		cs_parse_u64(&line, &w->end, 16);
	} else if (!strncmp(line, "VmFlags:", 8)) {
		vmflags_line(w, line + 8);
	}
}

/* Streams /proc/self/smaps through buf[cap] line by line. */
static int walk_smaps(struct walk *w, char *buf, size_t cap)
{
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + have, cap - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return n < 0 ? -errno : 0;
		}
		have += (size_t)n;
		buf[have] = 0;
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			one_line(w, line);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == cap - 1) /* a line longer than the buffer: not smaps */
			have = 0;
	}
}

/* Pages of this mapping must go into the image, but a forked writer has
 * none of them (DONTFORK) or only zeros (WIPEONFORK). */
static int unreadable_here(const struct dump *d, const struct cs_vma *v, uint32_t madv)
{
	if (d->c->copy_mode || !(v->flags & CS_MAP_TRACKED) ||
	    !(madv & (CS_MADV_DONTFORK | CS_MADV_WIPEONFORK)))
		return 0;
	return d->a->mode == CS_MODE_HASH || cs_runs_overlap(&d->c->send, v->start, v->end);
}

int cs_vmflags_read(struct dump *d, uint32_t *madv)
{
	const struct cs_maps *m = &d->c->maps;
	struct walk w = {.d = d, .madv = madv};
	memset(madv, 0, m->n * sizeof(*madv));
	int r = walk_smaps(&w, (char *)d->bounce, BOUNCE_PAGES * CS_PAGE);
	if (r) {
		cs_set_err(d->msg, "reading /proc/self/smaps failed", NULL, NULL);
		return r;
	}
	for (size_t k = 0; k < m->n; k++) {
		if (!(madv[k] & SEEN) && !d->c->copy_mode && !skipped(&m->v[k]))
			madv[k] = CS_MADV_DONTFORK; /* not inherited: only DONTFORK does that */
		madv[k] &= ~SEEN;
		if ((madv[k] & CS_MADV_HUGEPAGE) && (madv[k] & CS_MADV_NOHUGEPAGE))
			madv[k] &= ~CS_MADV_HUGEPAGE; /* cannot both be set; be safe */
		if (unreadable_here(d, &m->v[k], madv[k])) {
			d->a->result->need_copy = 1;
			describe(
			    d->msg, &m->v[k],
			    d->a->copy_always
			        ? " has MADV_DONTFORK or MADV_WIPEONFORK, and the image more "
			          "pages to write than a freeze copies (64 MiB): not captured"
			        : " has MADV_DONTFORK or MADV_WIPEONFORK and pages to write, "
			          "which a forked writer cannot read (copied during the freeze "
			          "from now on)");
			return -EAGAIN;
		}
	}
	return 0;
}
