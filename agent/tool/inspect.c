/*
 * checksync inspect DIR|IMAGE [--json]: what an image holds. For a
 * directory: every generation with its state (restorable or which file is
 * damaged where), then the newest restorable one in detail.
 */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chain.h"
#include "fmt.h"
#include "tool.h"

static json_t *hexnum(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%llx", (unsigned long long)v);
	return json_string(b);
}

static json_t *j_header(const struct cs_loaded *l)
{
	const struct cs_image_header *h = &l->img->header;
	char bid[2 * CS_IMAGE_BUILD_ID_MAX + 1] = "";
	for (uint32_t i = 0; i < h->exe_build_id_len && i < CS_IMAGE_BUILD_ID_MAX; i++)
		sprintf(bid + 2 * i, "%02x", h->exe_build_id[i]);
	return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:i, s:o, s:i, s:s, s:s, s:I, s:I, s:I, s:I}",
			 "file", l->path, "generation", (json_int_t)h->generation,
			 "parent_generation", (json_int_t)h->parent_generation,
			 "base_generation", (json_int_t)h->base_generation,
			 "kind", (h->flags & CS_IMAGE_F_DELTA) ? "delta" : "base",
			 "tracking", cs_tracking_name(h->tracking),
			 "arch", h->arch == CS_ARCH_X86_64 ? "x86_64" : "unknown",
			 "page_size", (int)h->page_size, "xsave_features", hexnum(h->xsave_features),
			 "xsave_size", (int)h->xsave_size, "kernel_release", h->kernel_release,
			 "exe_build_id", bid, "clock_realtime_ns", (json_int_t)h->clock_realtime_ns,
			 "clock_monotonic_ns", (json_int_t)h->clock_monotonic_ns,
			 "clock_boottime_ns", (json_int_t)h->clock_boottime_ns,
			 "bytes", (json_int_t)l->len);
}

/* The madvise bits as smaps's VmFlags names them: "dc dd", "" for none. */
static void advice_text(uint32_t madv, char *out, size_t cap)
{
	static const char *const names[] = {"dc", "wf", "dd", "hg", "nh", "mg", "sr", "rr"};
	out[0] = 0;
	for (size_t b = 0; b < sizeof(names) / sizeof(names[0]); b++)
		if (madv & (1u << b)) {
			if (out[0])
				strncat(out, " ", cap - strlen(out) - 1);
			strncat(out, names[b], cap - strlen(out) - 1);
		}
}

static json_t *j_mappings(const struct cs_image *img)
{
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_mappings; i++) {
		const struct cs_image_mapping *m = &img->mappings[i];
		char prot[5], adv[32];
		cs_prot_text(m->prot, m->flags, prot);
		advice_text(m->madvise, adv, sizeof(adv));
		json_array_append_new(a, json_pack("{s:o, s:o, s:s, s:o, s:o, s:s, s:s, s:I, s:I}",
			"start", hexnum(m->start), "end", hexnum(m->end), "prot", prot,
			"flags", hexnum(m->flags), "pgoff", hexnum(m->pgoff),
			"name", cs_mapping_name(m), "madvise", adv,
			"resident_pages", (json_int_t)cs_runs_pages_in(img->resident, img->n_resident, m->start, m->end),
			"pages_in_image", (json_int_t)cs_page_runs_pages_in(img->page_runs, img->n_page_runs, m->start, m->end)));
	}
	return a;
}

static json_t *j_threads(const struct cs_image *img)
{
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_threads; i++) {
		const struct cs_image_thread *t = &img->threads[i];
		json_array_append_new(a, json_pack("{s:i, s:b, s:b, s:o, s:o, s:o, s:o, s:o}",
			"tid", t->tid, "main", !!(t->flags & CS_THREAD_MAIN),
			"agent", !!(t->flags & CS_THREAD_AGENT), "ucontext", hexnum(t->ucontext_addr),
			"fs_base", hexnum(t->fs_base), "clear_child_tid", hexnum(t->clear_child_tid),
			"robust_list", hexnum(t->robust_list), "rseq", hexnum(t->rseq_addr)));
	}
	return a;
}

static json_t *j_fds(const struct cs_image *img)
{
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_fds; i++) {
		const struct cs_image_fd *f = &img->fds[i];
		const char *type = cs_image_fd_type_name(f->type);
		json_t *o = json_pack("{s:i, s:s, s:o}", "fd", f->fd, "type", type ? type : "?",
				      "flags", hexnum(f->open_flags));
		if (f->share_fd >= 0)
			json_object_set_new(o, "dup_of", json_integer(f->share_fd));
		char addr[256];
		switch (f->type) {
		case CS_FD_REGULAR: case CS_FD_DIRECTORY: case CS_FD_CHARDEV:
			json_object_set_new(o, "path", json_string(f->path));
			json_object_set_new(o, "offset", json_integer((json_int_t)f->offset));
			break;
		case CS_FD_SOCKET_LISTEN: case CS_FD_SOCKET_DGRAM: case CS_FD_SOCKET_CONNECTED:
			cs_sockaddr_text(f, addr, sizeof(addr));
			json_object_set_new(o, "local", json_string(addr));
			break;
		case CS_FD_PIPE:
			json_object_set_new(o, "pipe_id", json_integer((json_int_t)f->pipe_id));
			json_object_set_new(o, "pending_bytes", json_integer(f->pipe_data_len));
			json_object_set_new(o, "size", json_integer(f->pipe_size));
			break;
		case CS_FD_EVENTFD:
			json_object_set_new(o, "count", json_integer((json_int_t)f->eventfd_count));
			break;
		case CS_FD_SOCKETPAIR:
			json_object_set_new(o, "inode", json_integer((json_int_t)f->pipe_id));
			json_object_set_new(o, "peer", json_integer((json_int_t)f->peer_id));
			json_object_set_new(o, "queued_bytes", json_integer(f->pipe_data_len));
			break;
		case CS_FD_MEMFD:
			json_object_set_new(o, "inode", json_integer((json_int_t)f->pipe_id));
			json_object_set_new(o, "seals", json_integer(f->eventfd_flags));
			/* fall through */
		case CS_FD_TMPFILE:
			json_object_set_new(o, "path", json_string(f->path));
			json_object_set_new(o, "bytes", json_integer(f->file_data_len));
			break;
		case CS_FD_TIMERFD:
			json_object_set_new(o, "value_ns", json_integer((json_int_t)f->timer_value_ns));
			json_object_set_new(o, "interval_ns", json_integer((json_int_t)f->timer_interval_ns));
			break;
		case CS_FD_EPOLL: {
			json_t *r = json_array();
			for (uint32_t k = 0; k < f->n_epoll; k++)
				json_array_append_new(r, json_pack("{s:i, s:o, s:o}", "fd", f->epoll[k].tfd,
					"events", hexnum(f->epoll[k].events), "data", hexnum(f->epoll[k].data)));
			json_object_set_new(o, "registrations", r);
			break;
		}
		case CS_FD_UNSUPPORTED:
			json_object_set_new(o, "reason", json_string(f->reason));
			break;
		}
		json_array_append_new(a, o);
	}
	return a;
}

/* CREDS, or null for an image without (an older agent). */
static json_t *j_creds(const struct cs_image *img)
{
	const struct cs_image_creds *c = &img->creds;
	if (!img->has_creds)
		return json_null();
	json_t *g = json_array();
	for (uint32_t i = 0; i < c->n_groups; i++)
		json_array_append_new(g, json_integer(c->groups[i]));
	return json_pack("{s:[IIII], s:[IIII], s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:i, s:i, s:o}",
	                 "uid", (json_int_t)c->uid[0], (json_int_t)c->uid[1], (json_int_t)c->uid[2],
	                 (json_int_t)c->uid[3], "gid", (json_int_t)c->gid[0], (json_int_t)c->gid[1],
	                 (json_int_t)c->gid[2], (json_int_t)c->gid[3], "cap_eff",
	                 hexnum(c->cap_eff), "cap_prm", hexnum(c->cap_prm), "cap_inh",
	                 hexnum(c->cap_inh), "cap_bnd", hexnum(c->cap_bnd), "cap_amb",
	                 hexnum(c->cap_amb), "securebits", hexnum(c->securebits), "no_new_privs",
	                 (int)c->no_new_privs, "dumpable", (int)c->dumpable, "seccomp",
	                 (int)c->seccomp, "groups", g);
}

static json_t *j_timers(const struct cs_image *img)
{
	static const char *const kinds[] = {"?", "ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF",
					    "POSIX"};
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_timers; i++) {
		const struct cs_image_timer *t = &img->timers[i];
		json_t *o = json_pack("{s:s, s:I, s:I}", "kind", kinds[t->kind <= 4 ? t->kind : 0],
				      "value_ns", (json_int_t)t->value_ns, "interval_ns",
				      (json_int_t)t->interval_ns);
		if (t->kind == CS_TIMER_POSIX) {
			json_object_set_new(o, "id", json_integer(t->id));
			json_object_set_new(o, "clockid", json_integer(t->clockid));
			json_object_set_new(o, "notify", json_integer(t->notify));
			json_object_set_new(o, "signo", json_integer(t->signo));
			json_object_set_new(o, "sigval", hexnum(t->sigval));
		}
		json_array_append_new(a, o);
	}
	return a;
}

/* Pending signals: queue ("process" or the tid), signo, and the siginfo
 * fields every layout has (si_code, si_errno) plus the sender's pid, uid and
 * value as kill, sigqueue and timers fill them in (x86_64 offsets). */
static json_t *j_sigqueue(const struct cs_image *img)
{
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_sigqueue; i++) {
		const struct cs_image_sigqueued *q = &img->sigqueue[i];
		int32_t w[4];
		uint64_t value;
		memcpy(w, q->info + 4, sizeof(w[0]));      /* si_errno */
		memcpy(w + 1, q->info + 8, sizeof(w[0]));  /* si_code */
		memcpy(w + 2, q->info + 16, sizeof(w[0])); /* si_pid (si_tid of a timer) */
		memcpy(w + 3, q->info + 20, sizeof(w[0])); /* si_uid (si_overrun) */
		memcpy(&value, q->info + 24, sizeof(value)); /* si_value */
		json_array_append_new(
		    a, json_pack("{s:o, s:i, s:i, s:i, s:i, s:i, s:o}", "queue",
		                 q->tid ? json_integer(q->tid) : json_string("process"), "signo",
		                 (int)q->signo, "code", w[1], "errno", w[0], "pid", w[2], "uid",
		                 w[3], "value", hexnum(value)));
	}
	return a;
}

/* Seccomp filters: thread, flags, length in instructions, oldest first. */
static json_t *j_seccomp(const struct cs_image *img)
{
	json_t *a = json_array();
	for (size_t i = 0; i < img->n_seccomp; i++) {
		const struct cs_image_seccomp *f = &img->seccomp[i];
		json_array_append_new(a, json_pack("{s:i, s:o, s:i}", "tid", f->tid, "flags",
		                                   hexnum(f->flags), "instructions",
		                                   (int)(f->len / 8)));
	}
	return a;
}

static json_t *j_image(const struct cs_loaded *l, const struct cs_chain *chain)
{
	const struct cs_image *img = l->img;
	const struct cs_image_process *p = &img->process;
	json_t *o = json_object(), *sig = json_array(), *uns = json_array(), *ch = json_array();
	uint64_t pages = 0, resident = 0;
	for (size_t i = 0; i < img->n_page_runs; i++)
		pages += img->page_runs[i].npages;
	for (size_t i = 0; i < img->n_resident; i++)
		resident += img->resident[i].npages;
	for (size_t i = 0; chain && i < chain->n; i++)
		json_array_append_new(ch, json_integer((json_int_t)chain->imgs[i].generation));
	for (size_t i = 0; i < img->n_sigactions; i++) {
		const struct cs_image_sigaction *s = &img->sigactions[i];
		json_array_append_new(sig, json_pack("{s:i, s:o, s:o, s:o}", "signo", (int)s->signo,
			"handler", hexnum(s->handler), "flags", hexnum(s->flags), "mask", hexnum(s->mask)));
	}
	for (size_t i = 0; i < img->n_unsupported; i++)
		json_array_append_new(uns, json_string(img->unsupported[i].what));
	json_object_set_new(o, "header", j_header(l));
	json_object_set_new(o, "chain", ch);
	json_object_set_new(o, "process", json_pack("{s:i, s:i, s:s, s:s, s:s, s:o, s:o}",
		"pid", p->pid, "ppid", p->ppid, "comm", p->comm, "exe", p->exe_path, "cwd", p->cwd,
		"umask", hexnum(p->umask), "brk", hexnum(p->brk)));
	json_object_set_new(o, "credentials", j_creds(img));
	json_object_set_new(o, "mappings", j_mappings(img));
	json_object_set_new(o, "threads", j_threads(img));
	json_object_set_new(o, "fds", j_fds(img));
	json_object_set_new(o, "timers", j_timers(img));
	json_object_set_new(o, "signal_handlers", sig);
	json_object_set_new(o, "pending_signals", j_sigqueue(img));
	json_object_set_new(o, "seccomp_filters", j_seccomp(img));
	json_object_set_new(o, "unsupported", uns);
	json_object_set_new(o, "sizes", json_pack("{s:I, s:I, s:I, s:I}", "image_bytes", (json_int_t)l->len,
		"page_bytes", (json_int_t)(pages * CS_IMAGE_PAGE_SIZE), "resident_pages", (json_int_t)resident,
		"pages_in_image", (json_int_t)pages));
	return o;
}

/* Every generation in dir with its state. */
static json_t *j_generations(const char *dir, uint64_t *newest_ok)
{
	uint64_t *gens;
	size_t n;
	json_t *a = json_array();
	*newest_ok = 0;
	if (cs_dir_generations(dir, &gens, &n) < 0)
		return a;
	for (size_t i = 0; i < n; i++) {
		struct cs_chain c;
		struct cs_chain_damage d = {0};
		json_t *o = json_pack("{s:I}", "generation", (json_int_t)gens[i]);
		if (cs_chain_load(dir, gens[i], &c, &d) == 0) {
			json_object_set_new(o, "state", json_string("restorable"));
			*newest_ok = gens[i];
			cs_chain_free(&c);
		} else {
			char msg[PATH_MAX + 600];
			snprintf(msg, sizeof(msg), "%s: offset %llu: %s", d.path,
				 (unsigned long long)d.offset, d.msg);
			json_object_set_new(o, "state", json_string("damaged"));
			json_object_set_new(o, "damage", json_string(msg));
		}
		json_array_append_new(a, o);
	}
	free(gens);
	return a;
}

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static long long ji(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void print_creds(json_t *c)
{
	json_t *u = json_object_get(c, "uid"), *g = json_object_get(c, "gid"), *v;
	size_t i;
	if (!json_is_object(c)) {
		printf("credentials: none recorded (an older agent: restored with the tool's)\n");
		return;
	}
	printf("credentials: uid %lld/%lld/%lld/%lld gid %lld/%lld/%lld/%lld groups",
	       (long long)json_integer_value(json_array_get(u, 0)),
	       (long long)json_integer_value(json_array_get(u, 1)),
	       (long long)json_integer_value(json_array_get(u, 2)),
	       (long long)json_integer_value(json_array_get(u, 3)),
	       (long long)json_integer_value(json_array_get(g, 0)),
	       (long long)json_integer_value(json_array_get(g, 1)),
	       (long long)json_integer_value(json_array_get(g, 2)),
	       (long long)json_integer_value(json_array_get(g, 3)));
	json_array_foreach(json_object_get(c, "groups"), i, v)
	    printf("%s%lld", i ? "," : " ", (long long)json_integer_value(v));
	printf("\n  capabilities eff %s prm %s inh %s bnd %s amb %s, securebits %s, no_new_privs "
	       "%lld, dumpable %lld, seccomp %lld\n",
	       js(c, "cap_eff"), js(c, "cap_prm"), js(c, "cap_inh"), js(c, "cap_bnd"),
	       js(c, "cap_amb"), js(c, "securebits"), ji(c, "no_new_privs"), ji(c, "dumpable"),
	       ji(c, "seccomp"));
}

static void text_image(json_t *o)
{
	json_t *h = json_object_get(o, "header"), *p = json_object_get(o, "process"), *v;
	size_t i;
	printf("image %s (%lld bytes)\n", js(h, "file"), ji(h, "bytes"));
	printf("  generation %lld, %s, parent %lld, base %lld, tracking %s\n", ji(h, "generation"),
	       js(h, "kind"), ji(h, "parent_generation"), ji(h, "base_generation"), js(h, "tracking"));
	printf("  %s, %lld-byte pages, kernel %s, xsave %s (%lld bytes), exe build-id %s\n",
	       js(h, "arch"), ji(h, "page_size"), js(h, "kernel_release"), js(h, "xsave_features"),
	       ji(h, "xsave_size"), js(h, "exe_build_id"));
	printf("  clocks at capture: realtime %lld, monotonic %lld, boottime %lld (ns)\n",
	       ji(h, "clock_realtime_ns"), ji(h, "clock_monotonic_ns"), ji(h, "clock_boottime_ns"));
	printf("chain:");
	json_array_foreach(json_object_get(o, "chain"), i, v)
		printf("%s%lld", i ? " <- " : " ", (long long)json_integer_value(v));
	printf("\nprocess: pid %lld, ppid %lld, comm %s, exe %s, cwd %s, umask %s, brk %s\n",
	       ji(p, "pid"), ji(p, "ppid"), js(p, "comm"), js(p, "exe"), js(p, "cwd"), js(p, "umask"),
	       js(p, "brk"));
	print_creds(json_object_get(o, "credentials"));
	printf("mappings (%zu):\n", json_array_size(json_object_get(o, "mappings")));
	json_array_foreach(json_object_get(o, "mappings"), i, v)
		printf("  %14s-%-14s %s %-8s resident %6lld pages, %6lld in this image  %s%s%s\n",
		       js(v, "start"), js(v, "end"), js(v, "prot"), js(v, "flags"),
		       ji(v, "resident_pages"), ji(v, "pages_in_image"), js(v, "name"),
		       js(v, "madvise")[0] ? "  madvise " : "", js(v, "madvise"));
	printf("threads (%zu):\n", json_array_size(json_object_get(o, "threads")));
	json_array_foreach(json_object_get(o, "threads"), i, v)
		printf("  tid %lld%s%s  ucontext %s  fs %s  rseq %s\n", ji(v, "tid"),
		       json_is_true(json_object_get(v, "main")) ? " (main)" : "",
		       json_is_true(json_object_get(v, "agent")) ? " (agent)" : "", js(v, "ucontext"),
		       js(v, "fs_base"), js(v, "rseq"));
	printf("fds (%zu):\n", json_array_size(json_object_get(o, "fds")));
	json_array_foreach(json_object_get(o, "fds"), i, v) {
		char *rest = json_dumps(v, JSON_COMPACT);
		printf("  %3lld %-16s %s\n", ji(v, "fd"), js(v, "type"), rest ? rest : "");
		free(rest);
	}
	printf("timers (%zu):\n", json_array_size(json_object_get(o, "timers")));
	json_array_foreach(json_object_get(o, "timers"), i, v) {
		char *rest = json_dumps(v, JSON_COMPACT);
		printf("  %s\n", rest ? rest : "");
		free(rest);
	}
	printf("signal handlers (%zu):\n", json_array_size(json_object_get(o, "signal_handlers")));
	json_array_foreach(json_object_get(o, "signal_handlers"), i, v)
		printf("  %2lld: handler %s flags %s mask %s\n", ji(v, "signo"), js(v, "handler"),
		       js(v, "flags"), js(v, "mask"));
	printf("pending signals (%zu):\n", json_array_size(json_object_get(o, "pending_signals")));
	json_array_foreach(json_object_get(o, "pending_signals"), i, v) {
		json_t *q = json_object_get(v, "queue");
		char where[40] = "the process";
		if (json_is_integer(q))
			snprintf(where, sizeof(where), "thread %lld", (long long)json_integer_value(q));
		printf("  %2lld on %s: code %lld, pid %lld, uid %lld, value %s\n", ji(v, "signo"),
		       where, ji(v, "code"), ji(v, "pid"), ji(v, "uid"), js(v, "value"));
	}
	printf("seccomp filters (%zu, oldest first):\n",
	       json_array_size(json_object_get(o, "seccomp_filters")));
	json_array_foreach(json_object_get(o, "seccomp_filters"), i, v)
		printf("  thread %lld: %lld instructions, flags %s\n", ji(v, "tid"),
		       ji(v, "instructions"), js(v, "flags"));
	json_t *s = json_object_get(o, "sizes");
	printf("sizes: image %lld bytes, page data %lld bytes (%lld pages), live pages %lld\n",
	       ji(s, "image_bytes"), ji(s, "page_bytes"), ji(s, "pages_in_image"),
	       ji(s, "resident_pages"));
	printf("unsupported (%zu):\n", json_array_size(json_object_get(o, "unsupported")));
	json_array_foreach(json_object_get(o, "unsupported"), i, v)
		printf("  %s\n", json_string_value(v));
}

static int inspect_dir(const char *dir, int as_json)
{
	uint64_t newest;
	json_t *root = json_object(), *gens = j_generations(dir, &newest);
	json_object_set_new(root, "dir", json_string(dir));
	json_object_set_new(root, "generations", gens);
	int rc = 0;
	if (newest) {
		struct cs_chain c;
		struct cs_chain_damage d;
		if (cs_chain_load(dir, newest, &c, &d) == 0) {
			json_object_set_new(root, "newest_restorable", j_image(&c.imgs[0], &c));
			cs_chain_free(&c);
		}
	} else {
		rc = 1;
	}
	if (as_json) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		printf("\n");
	} else {
		size_t i;
		json_t *v;
		printf("directory %s\n", dir);
		json_array_foreach(gens, i, v)
			printf("  generation %lld: %s%s%s\n", ji(v, "generation"), js(v, "state"),
			       json_object_get(v, "damage") ? ": " : "", js(v, "damage"));
		if (!json_array_size(gens))
			printf("  no images\n");
		if (json_object_get(root, "newest_restorable"))
			text_image(json_object_get(root, "newest_restorable"));
		else
			printf("no restorable generation\n");
	}
	json_decref(root);
	return rc;
}

static int inspect_file(const char *path, int as_json)
{
	struct cs_loaded l;
	struct cs_chain_damage d = {0};
	if (cs_loaded_open(path, &l, &d) < 0) {
		cs_err("%s is damaged at offset %llu: %s", path, (unsigned long long)d.offset, d.msg);
		return 1;
	}
	char copy[PATH_MAX];
	snprintf(copy, sizeof(copy), "%s", path);
	struct cs_chain c = {0};
	struct cs_chain_damage cd;
	int have_chain = cs_chain_load(dirname(copy), l.generation, &c, &cd) == 0;
	json_t *o = j_image(&l, have_chain ? &c : NULL);
	if (as_json) {
		json_dumpf(o, stdout, JSON_INDENT(2));
		printf("\n");
	} else {
		text_image(o);
	}
	json_decref(o);
	if (have_chain)
		cs_chain_free(&c);
	cs_loaded_close(&l);
	return 0;
}

int cs_cmd_inspect(int argc, char **argv)
{
	const char *what = NULL;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			as_json = 1;
		else if (!what && argv[i][0] != '-')
			what = argv[i];
		else {
			cs_err("usage: checksync inspect DIR|IMAGE [--json]");
			return 2;
		}
	}
	struct stat st;
	if (!what || stat(what, &st) < 0) {
		cs_err(what ? "%s: %s" : "usage: checksync inspect DIR|IMAGE [--json]", what,
		       strerror(errno));
		return 2;
	}
	return S_ISDIR(st.st_mode) ? inspect_dir(what, as_json) : inspect_file(what, as_json);
}
