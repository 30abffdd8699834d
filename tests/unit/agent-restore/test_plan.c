/*
 * The restore planner's page resolution: each live page (RESIDENT of the
 * newest image) comes from the newest image of the chain that holds it,
 * runs are merged, and a live page held by no image is a damaged chain.
 * Images are built as decoded structs; nothing here touches a process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../agent/restore/cs_plan.h"
#include "../../../agent/tool/restore.h"
#include "../../../agent/tool/tool.h"

/* not CHECK(): the checks have side effects and must survive NDEBUG */
#define CHECK(x) \
	do { \
		if (!(x)) { \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); \
			exit(1); \
		} \
	} while (0)

#define P 4096ull
#define A 0x10000000ull

static int errors;
void cs_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "(expected) checksync: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	errors++;
}

static struct cs_image *image(uint64_t gen, const struct cs_image_run *res, size_t nres,
			      const struct cs_image_page_run *pages, size_t npages)
{
	struct cs_image *img = calloc(1, sizeof(*img));
	img->header.generation = gen;
	img->resident = (struct cs_image_run *)res;
	img->n_resident = nres;
	img->page_runs = (struct cs_image_page_run *)pages;
	img->n_page_runs = npages;
	return img;
}

static void chain_of(struct cs_restore *r, struct cs_image **imgs, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->chain.imgs = calloc(n, sizeof(*r->chain.imgs));
	r->chain.n = n;
	for (size_t i = 0; i < n; i++) {
		r->chain.imgs[i].img = imgs[i];
		snprintf(r->chain.imgs[i].path, sizeof(r->chain.imgs[i].path), "gen-%zu.img", n - i);
	}
	r->img = imgs[0];
}

static void unchain(struct cs_restore *r)
{
	for (size_t i = 0; i < r->chain.n; i++)
		free(r->chain.imgs[i].img);
	free(r->chain.imgs);
}

static void expect(const struct cs_plan_copy *c, uint64_t addr, uint64_t len, uint64_t off, int fd)
{
	if (c->addr != addr || c->len != len || c->file_off != off || c->fd != fd) {
		fprintf(stderr, "copy %#llx+%#llx from fd %d at %llu; want %#llx+%#llx from fd %d at %llu\n",
			(unsigned long long)c->addr, (unsigned long long)c->len, c->fd,
			(unsigned long long)c->file_off, (unsigned long long)addr,
			(unsigned long long)len, fd, (unsigned long long)off);
		exit(1);
	}
}

/* base: 4 live pages at A; delta: page A+1 rewritten, page B new. */
static void newest_image_wins(void)
{
	static const struct cs_image_run res1[] = {{A, 4}};
	static const struct cs_image_page_run pg1[] = {{A, 4, 1000}};
	static const struct cs_image_run res2[] = {{A + 2 * P, 2}, {A, 2}, {A + 16 * P, 1}};
	static const struct cs_image_page_run pg2[] = {{A + 16 * P, 1, 9000}, {A + P, 1, 5000}};
	struct cs_image *imgs[2] = {image(2, res2, 3, pg2, 2), image(1, res1, 1, pg1, 1)};
	struct cs_restore r;
	struct cs_plan_copy *c;
	size_t n;
	chain_of(&r, imgs, 2);
	CHECK(cs_plan_resolve_pages(&r, 10, &c, &n) == 0);
	CHECK(n == 4);
	expect(&c[0], A, P, 1000, 11);
	expect(&c[1], A + P, P, 5000, 10);
	expect(&c[2], A + 2 * P, 2 * P, 1000 + 2 * P, 11);
	expect(&c[3], A + 16 * P, P, 9000, 10);
	free(c);
	unchain(&r);
}

/* A page that is live but that no image holds: refused, not zero-filled. */
static void missing_page_is_damage(void)
{
	static const struct cs_image_run res1[] = {{A, 2}};
	static const struct cs_image_page_run pg1[] = {{A, 2, 1000}};
	static const struct cs_image_run res2[] = {{A, 3}};
	struct cs_image *imgs[2] = {image(2, res2, 1, NULL, 0), image(1, res1, 1, pg1, 1)};
	struct cs_restore r;
	struct cs_plan_copy *c;
	size_t n;
	chain_of(&r, imgs, 2);
	int before = errors;
	CHECK(cs_plan_resolve_pages(&r, 10, &c, &n) < 0);
	CHECK(errors == before + 1);
	unchain(&r);
}

/* Pages that are no longer live (not in RESIDENT) are not copied even if an
 * older image holds them; many small runs merge into one read per image. */
static void dead_pages_skipped_and_runs_merged(void)
{
	static const struct cs_image_run res[] = {{A, 1}, {A + P, 1}, {A + 2 * P, 1}};
	static const struct cs_image_page_run pg[] = {
		{A, 1, 100}, {A + P, 1, 100 + P}, {A + 2 * P, 1, 100 + 2 * P}, {A + 3 * P, 1, 100 + 3 * P}};
	struct cs_image *imgs[1] = {image(1, res, 3, pg, 4)};
	struct cs_restore r;
	struct cs_plan_copy *c;
	size_t n;
	chain_of(&r, imgs, 1);
	CHECK(cs_plan_resolve_pages(&r, 3, &c, &n) == 0);
	CHECK(n == 1);
	expect(&c[0], A, 3 * P, 100, 3);
	free(c);
	unchain(&r);
}

int main(void)
{
	newest_image_wins();
	missing_page_is_damage();
	dead_pages_skipped_and_runs_merged();
	printf("ok\n");
	return 0;
}
