/*
 * The memory part of a standby step: from generation H, which the standby
 * holds, to generation G (docs/restore.md, section 9).
 *
 * The address space is compared range by range: where H and G have the
 * same kind of mapping (same file at the same offset, or both anonymous,
 * same sharing, stack flag and advice) the range is kept and gets G's
 * protection; elsewhere H's mapping is unmapped and G's mapped anew. Pages:
 * every page G holds resident and that an image newer than H has is copied
 * (the images since H hold everything written since H, in kept and new
 * ranges alike); pages H held that G does not are dropped. A new range
 * whose pages are not all in those images (its content came from older
 * images, e.g. a mapping whose advice changed) cannot be stepped to: the
 * standby is built again from G.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "plan_int.h"
#include "tool.h"

struct range_list {
	struct cs_plan_range *v;
	size_t n, cap;
};

struct map_list {
	struct cs_plan_map *v;
	size_t n, cap;
};

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 64;
	void *nv = realloc(*v, c * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = c;
	return 0;
}

/* Appends [start, end) with prot, merged with the last range when they touch. */
static int add_range(struct range_list *l, uint64_t start, uint64_t end, uint32_t prot)
{
	struct cs_plan_range *last = l->n ? &l->v[l->n - 1] : NULL;
	if (last && last->start + last->len == start && last->prot == prot) {
		last->len += end - start;
		return 0;
	}
	if (grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = (struct cs_plan_range){.start = start, .len = end - start, .prot = prot};
	return 0;
}

static int restorable(const struct cs_image_mapping *m)
{
	return !(m->flags & (CS_MAP_VVAR | CS_MAP_VVAR_VCLOCK | CS_MAP_VDSO | CS_MAP_VSYSCALL));
}

/* Whether a range mapped by h in H is the same memory as g's in G. */
static int same_memory(const struct cs_image_mapping *h, const struct cs_image_mapping *g)
{
	uint32_t kind = CS_MAP_SHARED | CS_MAP_GROWSDOWN | CS_MAP_STACK;
	if ((h->flags & kind) != (g->flags & kind) || h->madvise != g->madvise)
		return 0;
	if (cs_mapping_is_file(h) != cs_mapping_is_file(g))
		return 0;
	if (!cs_mapping_is_file(h))
		return 1;
	return h->dev == g->dev && h->ino == g->ino && !strcmp(h->path, g->path) &&
	       h->pgoff - h->start == g->pgoff - g->start;
}

/* The mapping of list covering addr, advancing *k (both sweep upwards). */
static const struct cs_image_mapping *covering(const struct cs_image *img, size_t *k, uint64_t addr)
{
	while (*k < img->n_mappings &&
	       (img->mappings[*k].end <= addr || !restorable(&img->mappings[*k])))
		(*k)++;
	if (*k < img->n_mappings && img->mappings[*k].start <= addr)
		return &img->mappings[*k];
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct diff {
	struct range_list unmaps, keeps, drops;
	struct map_list maps;
	struct span *kept, *fresh; /* spans kept, spans mapped anew */
	size_t n_kept, n_fresh;
};

static int add_span(struct span **v, size_t *n, uint64_t start, uint64_t end)
{
	struct span *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = (struct span){start, end};
	*v = nv;
	return 0;
}

/* A piece of G's mapping g mapped anew: g's plan map cut to [a, b). */
static int add_new(const struct cs_restore *r, struct diff *d, struct cs_plan_header *h,
                   const struct cs_image_mapping *g, uint64_t a, uint64_t b)
{
	struct cs_plan_map m;
	int k = cs_plan_mapping(r, g, h, &m, 1 + (int)r->chain.n);
	if (k <= 0)
		return k;
	struct cs_plan_map *last = d->maps.n ? &d->maps.v[d->maps.n - 1] : NULL;
	if (last && last->start + last->len == a && last->start >= g->start &&
	    last->start < g->end) {
		last->len += b - a;
		return add_span(&d->fresh, &d->n_fresh, a, b);
	}
	if (grow((void **)&d->maps.v, &d->maps.cap, d->maps.n, sizeof(m)) < 0)
		return -ENOMEM;
	if (m.kind == CS_PLAN_MAP_FILE)
		m.pgoff += a - g->start;
	m.start = a;
	m.len = b - a;
	d->maps.v[d->maps.n++] = m;
	return add_span(&d->fresh, &d->n_fresh, a, b);
}

/* Every boundary of either address space, sorted, without repeats. */
static uint64_t *boundaries(const struct cs_image *held, const struct cs_image *g, size_t *ret_n)
{
	size_t n = 0, cap = 2 * (held->n_mappings + g->n_mappings) + 1;
	uint64_t *b = malloc(cap * sizeof(*b));
	if (!b)
		return NULL;
	const struct cs_image *both[2] = {held, g};
	for (int w = 0; w < 2; w++)
		for (size_t i = 0; i < both[w]->n_mappings; i++)
			if (restorable(&both[w]->mappings[i])) {
				b[n++] = both[w]->mappings[i].start;
				b[n++] = both[w]->mappings[i].end;
			}
	qsort(b, n, sizeof(*b), cmp_u64);
	size_t out = 0;
	for (size_t i = 0; i < n; i++)
		if (!out || b[out - 1] != b[i])
			b[out++] = b[i];
	*ret_n = out;
	return b;
}

static int diff_maps(const struct cs_restore *r, struct cs_plan_header *h, struct diff *d)
{
	const struct cs_image *held = r->step->held, *g = r->img;
	size_t n, kh = 0, kg = 0;
	uint64_t *b = boundaries(held, g, &n);
	int err = b ? 0 : -ENOMEM;
	for (size_t i = 0; !err && i + 1 < n; i++) {
		uint64_t lo = b[i], hi = b[i + 1];
		const struct cs_image_mapping *mh = covering(held, &kh, lo);
		const struct cs_image_mapping *mg = covering(g, &kg, lo);
		if (mh && mg && same_memory(mh, mg)) {
			err = add_span(&d->kept, &d->n_kept, lo, hi);
			if (!err)
				err = add_range(&d->keeps, lo, hi, mg->prot);
			continue;
		}
		if (mh)
			err = add_range(&d->unmaps, lo, hi, 0);
		if (mg && !err)
			err = add_new(r, d, h, mg, lo, hi);
	}
	free(b);
	/* G's [vvar]/[vdso] targets: noted in h as a cold restore does */
	for (size_t i = 0; !err && i < g->n_mappings; i++)
		if (!restorable(&g->mappings[i])) {
			struct cs_plan_map unused;
			err = cs_plan_mapping(r, &g->mappings[i], h, &unused, 0) < 0 ? -EINVAL : 0;
		}
	return err;
}

/* a ∩ b, both sorted and merged. */
static struct span *intersect(const struct span *a, size_t na, const struct span *b, size_t nb,
                              size_t *ret_n)
{
	struct span *out = malloc((na + nb + 1) * sizeof(*out));
	size_t n = 0, i = 0, j = 0;
	if (!out)
		return NULL;
	while (i < na && j < nb) {
		uint64_t lo = a[i].start > b[j].start ? a[i].start : b[j].start;
		uint64_t hi = a[i].end < b[j].end ? a[i].end : b[j].end;
		if (lo < hi)
			out[n++] = (struct span){lo, hi};
		if (a[i].end < b[j].end)
			i++;
		else
			j++;
	}
	*ret_n = n;
	return out;
}

/* a - b, both sorted and merged. */
static struct span *subtract(const struct span *a, size_t na, const struct span *b, size_t nb,
                             size_t *ret_n)
{
	struct span *out = malloc((na + nb + 1) * sizeof(*out));
	size_t n = 0, j = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < na; i++) {
		uint64_t cur = a[i].start;
		while (j < nb && b[j].end <= cur)
			j++;
		for (size_t k = j; k < nb && b[k].start < a[i].end; k++) {
			if (b[k].start > cur)
				out[n++] = (struct span){cur, b[k].start};
			if (b[k].end > cur)
				cur = b[k].end;
		}
		if (cur < a[i].end)
			out[n++] = (struct span){cur, a[i].end};
	}
	*ret_n = n;
	return out;
}

static struct span *resident_spans(const struct cs_image *img, size_t *ret_n)
{
	struct span *s = malloc((img->n_resident + 1) * sizeof(*s));
	if (!s)
		return NULL;
	for (size_t i = 0; i < img->n_resident; i++)
		s[i] =
		    (struct span){img->resident[i].addr,
		                  img->resident[i].addr + (uint64_t)img->resident[i].npages * PAGE};
	*ret_n = cs_spans_normalize(s, img->n_resident);
	return s;
}

/* Copies of the pages in need from the images since the held generation;
 * *left: how many spans no image held. need is consumed. */
static int copies_since(const struct cs_restore *r, struct span *need, size_t n,
                        struct copy_list *cl, size_t *left)
{
	int err = 0;
	for (size_t i = 0; i < r->chain.n && n && !err; i++)
		err = cs_take_from_image(r->chain.imgs[i].img, 1 + (int)i, &need, &n, cl);
	free(need);
	*left = n;
	return err;
}

/* has_pages on the kept ranges that copies go to (both sorted). */
static void mark_keeps(struct range_list *keeps, const struct copy_list *cl)
{
	size_t k = 0;
	for (size_t i = 0; i < cl->n; i++) {
		uint64_t a = cl->v[i].addr, e = a + cl->v[i].len;
		while (k < keeps->n && keeps->v[k].start + keeps->v[k].len <= a)
			k++;
		for (size_t j = k; j < keeps->n && keeps->v[j].start < e; j++)
			keeps->v[j].has_pages = 1;
	}
}

static int page_plan(const struct cs_restore *r, struct diff *d, struct copy_list *cl)
{
	size_t nr, nh, nn, nk, nd, left = 0;
	struct span *res = resident_spans(r->img, &nr);
	struct span *res_h = resident_spans(r->step->held, &nh);
	struct span *kept = d->kept, *fresh = d->fresh;
	size_t n_kept = cs_spans_normalize(kept, d->n_kept);
	size_t n_fresh = cs_spans_normalize(fresh, d->n_fresh);
	struct span *need_new = res ? intersect(res, nr, fresh, n_fresh, &nn) : NULL;
	struct span *need_kept = res ? intersect(res, nr, kept, n_kept, &nk) : NULL;
	struct span *held_kept = res_h ? intersect(res_h, nh, kept, n_kept, &nd) : NULL;
	struct span *drops = held_kept && res ? subtract(held_kept, nd, res, nr, &nd) : NULL;
	struct copy_list ck = {0};
	int err = res && res_h && need_new && need_kept && drops ? 0 : -ENOMEM;
	if (!err)
		err = copies_since(r, need_new, nn, cl, &left);
	else
		free(need_new);
	if (!err && left)
		err = -ESTALE;
	if (!err && cl->n > 1)
		qsort(cl->v, cl->n, sizeof(*cl->v), cs_cmp_copy);
	if (!err)
		err = cs_mark_maps(d->maps.v, d->maps.n, cl);
	if (!err)
		err = copies_since(r, need_kept, nk, &ck, &left); /* the rest is as held */
	else
		free(need_kept);
	if (!err && ck.n > 1)
		qsort(ck.v, ck.n, sizeof(*ck.v), cs_cmp_copy);
	if (!err)
		mark_keeps(&d->keeps, &ck);
	for (size_t i = 0; !err && i < ck.n; i++) {
		if (grow((void **)&cl->v, &cl->cap, cl->n, sizeof(*cl->v)) < 0)
			err = -ENOMEM;
		else
			cl->v[cl->n++] = ck.v[i];
	}
	for (size_t i = 0; !err && drops && i < nd; i++)
		err = add_range(&d->drops, drops[i].start, drops[i].end, 0);
	free(ck.v);
	free(res);
	free(res_h);
	free(held_kept);
	free(drops);
	return err;
}

/* Only kept ranges that get pages or change protection need the restorer. */
static size_t prune_keeps(struct range_list *keeps, const struct cs_image *held)
{
	size_t out = 0, k = 0;
	for (size_t i = 0; i < keeps->n; i++) {
		const struct cs_image_mapping *m = covering(held, &k, keeps->v[i].start);
		if (keeps->v[i].has_pages || !m || m->prot != keeps->v[i].prot ||
		    m->end < keeps->v[i].start + keeps->v[i].len)
			keeps->v[out++] = keeps->v[i];
	}
	return out;
}

int cs_plan_step_memory(const struct cs_restore *r, struct cs_plan_header *h, struct plan_buf *b)
{
	struct diff d = {0};
	struct copy_list cl = {0};
	int err = diff_maps(r, h, &d);
	if (!err)
		err = page_plan(r, &d, &cl);
	if (!err) {
		d.keeps.n = prune_keeps(&d.keeps, r->step->held);
		h->n_maps = (uint32_t)d.maps.n;
		h->n_copies = (uint32_t)cl.n;
		h->n_unmaps = (uint32_t)d.unmaps.n;
		h->n_keeps = (uint32_t)d.keeps.n;
		h->n_drops = (uint32_t)d.drops.n;
		err = cs_buf_add(b, d.maps.v, d.maps.n * sizeof(*d.maps.v), &h->maps_off);
	}
	if (!err)
		err = cs_buf_add(b, cl.v, cl.n * sizeof(*cl.v), &h->copies_off);
	if (!err)
		err = cs_buf_add(b, d.unmaps.v, d.unmaps.n * sizeof(*d.unmaps.v), &h->unmaps_off);
	if (!err)
		err = cs_buf_add(b, d.keeps.v, d.keeps.n * sizeof(*d.keeps.v), &h->keeps_off);
	if (!err)
		err = cs_buf_add(b, d.drops.v, d.drops.n * sizeof(*d.drops.v), &h->drops_off);
	free(d.unmaps.v);
	free(d.keeps.v);
	free(d.drops.v);
	free(d.maps.v);
	free(d.kept);
	free(d.fresh);
	free(cl.v);
	return err;
}
