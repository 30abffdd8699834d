/*
 * Compaction (agent/tool/compact.c) on small chains written with proto's
 * encoder: each live page of the full image comes from the newest image
 * holding it, pages no longer resident are dropped, metadata is the
 * compacted generation's own, deltas written after it chain onto it, older
 * images are pruned, and chains that mix bases are still refused. And
 * cs_image_name_parse, which every reader of a directory uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/tool/chain.h"
#include "../../agent/tool/compact.h"
#include "../../agent/tool/tool.h"
#include "../unit/proto/check.h"

#define PG 4096u
#define A  0x10000000ull /* four pages */
#define B  0x20000000ull
#define C  0x30000000ull

void cs_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char dir[] = "/tmp/test-compact-XXXXXX";

struct spec {
	uint64_t gen, parent, base;
	struct cs_image_run resident[4];
	size_t n_resident;
	uint64_t pages[6]; /* single pages sent in this image, ascending */
	size_t n_pages;
};

/* Page bytes say which image wrote them and where. */
static void fill(uint8_t *p, uint64_t gen, uint64_t addr)
{
	for (unsigned i = 0; i < PG; i += 16) {
		memcpy(p + i, &gen, 8);
		memcpy(p + i + 8, &addr, 8);
	}
}

static int fd_write(void *ctx, const void *buf, size_t len)
{
	return write(*(int *)ctx, buf, len) == (ssize_t)len ? 0 : -EIO;
}

static void write_image(const struct spec *s)
{
	char path[128], name[64];
	uint8_t meta[1024], page[PG];
	struct cs_buf b = {.data = meta, .cap = sizeof(meta)};
	struct cs_image_header h = {.arch = CS_ARCH_X86_64,
	                            .page_size = PG,
	                            .generation = s->gen,
	                            .parent_generation = s->parent,
	                            .base_generation = s->base,
	                            .flags = s->parent ? CS_IMAGE_F_DELTA : 0,
	                            .tracking = s->parent ? CS_TRACK_UFFD_WP : CS_TRACK_FULL};
	struct cs_image_thread t = {.tid = (int32_t)(100 + s->gen), .flags = CS_THREAD_MAIN};
	struct cs_image_writer w;
	size_t pos;
	cs_image_filename(name, sizeof(name), s->gen);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	cs_image_writer_init(&w, fd_write, &fd);
	CHECK(cs_image_put_header(&b, &h) == 0);
	CHECK(cs_image_write_section(&w, CS_SECT_HEADER, &b) == 0);
	b.len = 0;
	cs_image_put_count(&b, &pos);
	cs_image_put_thread(&b, &t);
	cs_image_set_count(&b, pos, 1);
	CHECK(cs_image_write_section(&w, CS_SECT_THREADS, &b) == 0);
	b.len = 0;
	cs_image_put_count(&b, &pos);
	for (size_t i = 0; i < s->n_resident; i++)
		cs_image_put_run(&b, &s->resident[i]);
	cs_image_set_count(&b, pos, (uint32_t)s->n_resident);
	CHECK(cs_image_write_section(&w, CS_SECT_RESIDENT, &b) == 0);
	CHECK(cs_image_section_begin(&w, CS_SECT_PAGES, s->n_pages * (16 + PG)) == 0);
	for (size_t i = 0; i < s->n_pages; i++) {
		b.len = 0;
		cs_image_put_page_run_head(&b, s->pages[i], 1);
		fill(page, s->gen, s->pages[i]);
		cs_image_section_write(&w, meta, b.len);
		cs_image_section_write(&w, page, PG);
	}
	CHECK(cs_image_section_end(&w) == 0);
	CHECK(cs_image_write_end(&w) == 0);
	close(fd);
}

/* The bytes of page addr in the image of generation gen. */
static int page_from(uint64_t gen, uint64_t addr, uint64_t want_gen)
{
	char path[128], name[64];
	struct cs_loaded l;
	struct cs_chain_damage d;
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (cs_loaded_open(path, &l, &d) < 0)
		return 0;
	const struct cs_image_page_run *r = cs_image_find_page(l.img, addr);
	uint8_t want[PG];
	fill(want, want_gen, addr);
	int ok = r && !memcmp((const uint8_t *)l.map + r->file_offset + (addr - r->addr), want, PG);
	cs_loaded_close(&l);
	return ok;
}

static void image_path(uint64_t gen, char *path, size_t cap)
{
	char name[64];
	cs_image_filename(name, sizeof(name), gen);
	snprintf(path, cap, "%s/%s", dir, name);
}

static int exists(uint64_t gen)
{
	char path[128];
	image_path(gen, path, sizeof(path));
	return access(path, F_OK) == 0;
}

static int unlink_image(uint64_t gen)
{
	char path[128];
	image_path(gen, path, sizeof(path));
	return unlink(path);
}

static void compact_chain(void)
{
	struct spec s1 = {1, 0, 1, {{A, 4}, {B, 1}}, 2, {A, A + PG, A + 2 * PG, A + 3 * PG, B}, 5};
	struct spec s2 = {2, 1, 1, {{A, 4}, {B, 1}, {C, 1}}, 3, {A + PG, C}, 2};
	/* A+3 is no longer resident: it must not come back */
	struct spec s3 = {3, 2, 1, {{A, 3}, {B, 1}, {C, 1}}, 3, {A + 2 * PG, B}, 2};
	write_image(&s1);
	write_image(&s2);
	write_image(&s3);
	struct cs_compact_result res;
	char msg[512];
	CHECK_EQ(cs_compact(dir, 0, 1, &res, msg, sizeof(msg)), 0);
	CHECK_EQ(res.generation, 3);
	CHECK_EQ(res.old_base, 1);
	CHECK_EQ(res.folded, 3);
	CHECK_EQ(res.removed, 0);
	struct cs_chain ch;
	struct cs_chain_damage d;
	CHECK_EQ(cs_chain_load(dir, 3, &ch, &d), 0);
	CHECK_EQ(ch.n, 1);
	const struct cs_image *img = ch.imgs[0].img;
	CHECK(!(img->header.flags & CS_IMAGE_F_DELTA));
	CHECK_EQ(img->header.base_generation, 3);
	CHECK_EQ(img->header.tracking, CS_TRACK_FULL);
	CHECK_EQ(img->n_threads, 1);
	CHECK_EQ(img->threads[0].tid, 103); /* generation 3's own metadata */
	CHECK_EQ(img->n_resident, 3);
	CHECK(cs_image_find_page(img, A + 3 * PG) == NULL);
	cs_chain_free(&ch);
	CHECK(page_from(3, A, 1));
	CHECK(page_from(3, A + PG, 2));
	CHECK(page_from(3, A + 2 * PG, 3));
	CHECK(page_from(3, B, 3));
	CHECK(page_from(3, C, 2));

	/* a delta written after the compaction still names base 1 */
	struct spec s4 = {4, 3, 1, {{A, 3}, {B, 1}, {C, 1}}, 3, {C}, 1};
	write_image(&s4);
	CHECK_EQ(cs_chain_load(dir, 4, &ch, &d), 0);
	CHECK_EQ(ch.n, 2);
	cs_chain_free(&ch);
	/* compacting 4 folds [4, 3]: everything older than 3 goes */
	CHECK_EQ(cs_compact(dir, 4, 1, &res, msg, sizeof(msg)), 0);
	CHECK_EQ(res.old_base, 3);
	CHECK_EQ(res.removed, 2);
	CHECK(!exists(1) && !exists(2) && exists(3) && exists(4));
	CHECK(page_from(4, C, 4) && page_from(4, A + PG, 2));
	CHECK_EQ(cs_compact(dir, 4, 1, &res, msg, sizeof(msg)), 0);
	CHECK(res.already_full);
}

/* The loop's policy, from headers and sizes: after compact_chain, 3 and 4
 * are full; 5 (a delta on 4), 6 and 8 are deltas; the newest full image is
 * 4, so 5, 6 and 8 count (6 and 8 are not restorable, the policy does not
 * look: compaction refuses them). */
static void policy(void)
{
	struct cs_compact_policy p = {.factor = 0, .min_bytes = 1ull << 40, .max_images = 3};
	struct cs_compact_backlog b;
	CHECK_EQ(cs_compact_due(dir, &p, &b), 0);
	CHECK_EQ(b.newest, 8);
	CHECK(b.delta_bytes > 3 * PG && b.delta_bytes < 4 * PG);
	p.max_images = 2;
	CHECK_EQ(cs_compact_due(dir, &p, &b), 1);
	p.max_images = 512;
	p.min_bytes = 3 * PG;
	CHECK_EQ(cs_compact_due(dir, &p, &b), 1);
	p.min_bytes = 0;
	p.factor = 100; /* times the full image 4 */
	CHECK_EQ(cs_compact_due(dir, &p, &b), 0);
}

static void refusals(void)
{
	/* a delta whose delta parent names another base */
	struct spec s5 = {5, 4, 4, {{A, 1}}, 1, {A}, 1};
	struct spec s6 = {6, 5, 2, {{A, 1}}, 1, {A}, 1};
	struct cs_chain ch;
	struct cs_chain_damage d;
	struct cs_compact_result res;
	char msg[512];
	write_image(&s5);
	write_image(&s6);
	CHECK_EQ(cs_chain_load(dir, 5, &ch, &d), 0);
	cs_chain_free(&ch);
	CHECK_EQ(cs_chain_load(dir, 6, &ch, &d), -EBADMSG);
	CHECK(strstr(d.msg, "another base") != NULL);
	CHECK_EQ(cs_compact(dir, 6, 1, &res, msg, sizeof(msg)), -EBADMSG);
	CHECK(strstr(msg, "gen-00000000000000000005.img") != NULL);
	/* a missing link */
	struct spec s8 = {8, 7, 4, {{A, 1}}, 1, {A}, 1};
	write_image(&s8);
	CHECK_EQ(cs_compact(dir, 8, 1, &res, msg, sizeof(msg)), -ENOENT);
	CHECK(strstr(msg, "generation 7") != NULL);
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s/gen-00000000000000000008.img.tmp", dir);
	CHECK(access(tmp, F_OK) < 0); /* nothing was written */
}

/* Merging deltas (cs_compact_merge): one delta on the full image (or on a
 * delta) with the newest bytes of every live page the merged deltas held,
 * the full image untouched, the merged deltas gone, and a restore of the
 * merged generation giving what the unmerged chain gave. */
static void merge_chain(void)
{
	CHECK(system("rm -f /tmp/test-compact-*/gen-*") == 0);
	struct spec s10 = {10, 0, 10, {{A, 4}, {B, 1}}, 2, {A, A + PG, A + 2 * PG, A + 3 * PG, B},
	                   5};
	struct spec s11 = {11, 10, 10, {{A, 4}, {B, 1}, {C, 1}}, 3, {A + PG, A + 3 * PG, C}, 3};
	struct spec s12 = {12, 11, 10, {{A, 3}, {B, 1}, {C, 1}}, 3, {A + 2 * PG, B}, 2};
	struct spec s13 = {13, 12, 10, {{A, 3}, {B, 1}, {C, 1}}, 3, {C}, 1};
	write_image(&s10);
	write_image(&s11);
	write_image(&s12);
	write_image(&s13);
	struct cs_compact_result res;
	char msg[512];
	CHECK_EQ(cs_compact_merge(dir, 13, 10, &res, msg, sizeof(msg)), 0);
	CHECK(res.merged && res.folded == 3 && res.removed == 2);
	CHECK(exists(10) && !exists(11) && !exists(12) && exists(13));
	struct cs_chain ch;
	struct cs_chain_damage d;
	CHECK_EQ(cs_chain_load(dir, 13, &ch, &d), 0);
	CHECK_EQ(ch.n, 2);
	const struct cs_image *img = ch.imgs[0].img;
	CHECK(img->header.flags & CS_IMAGE_F_DELTA);
	CHECK(img->header.parent_generation == 10 && img->header.base_generation == 10);
	CHECK_EQ(img->threads[0].tid, 113);
	CHECK(cs_image_find_page(img, A) == NULL);          /* only in the full image */
	CHECK(cs_image_find_page(img, A + 3 * PG) == NULL); /* no longer live */
	cs_chain_free(&ch);
	CHECK(page_from(13, A + PG, 11) && page_from(13, A + 2 * PG, 12));
	CHECK(page_from(13, B, 12) && page_from(13, C, 13));
	CHECK(page_from(10, A, 10) && page_from(10, B, 10)); /* the full image as it was */

	/* onto a delta: 15 and 16 merge into 16 on 14; a parent that is not on
	 * the chain (12 went) is refused with nothing changed */
	struct spec s14 = {14, 13, 10, {{A, 3}, {B, 1}, {C, 1}}, 3, {A}, 1};
	struct spec s15 = {15, 14, 10, {{A, 3}, {B, 1}, {C, 1}}, 3, {B}, 1};
	struct spec s16 = {16, 15, 10, {{A, 3}, {B, 1}, {C, 1}}, 3, {B, C}, 2};
	write_image(&s14);
	write_image(&s15);
	write_image(&s16);
	CHECK(cs_compact_merge(dir, 16, 12, &res, msg, sizeof(msg)) < 0);
	CHECK(exists(15) && exists(16));
	CHECK_EQ(cs_compact_merge(dir, 16, 14, &res, msg, sizeof(msg)), 0);
	CHECK(!exists(15) && exists(14));
	CHECK(page_from(16, B, 16) && page_from(16, C, 16));
	/* a fold through the merged deltas gives every page its newest bytes */
	CHECK_EQ(cs_compact(dir, 16, 1, &res, msg, sizeof(msg)), 0);
	CHECK(page_from(16, A, 14) && page_from(16, A + PG, 11) && page_from(16, A + 2 * PG, 12));
	CHECK(page_from(16, B, 16) && page_from(16, C, 16));
}

/* A restore that went back past a refused generation leaves it newest in
 * DIR, off the chain the restored agent goes on with (21 on 20, restored
 * from 20; the agent's 22 is a delta on 20). A merge of the refused one's
 * chain (21 down to 10) must not take 20 away from under 22. */
static void merge_beside_a_restored_chain(void)
{
	CHECK(system("rm -f /tmp/test-compact-*/gen-*") == 0);
	struct spec s10 = {10, 0, 10, {{A, 2}}, 1, {A, A + PG}, 2};
	struct spec s19 = {19, 10, 10, {{A, 2}}, 1, {A}, 1};
	struct spec s20 = {20, 19, 10, {{A, 2}}, 1, {A + PG}, 1};
	struct spec s21 = {21, 20, 10, {{A, 2}}, 1, {A}, 1};
	struct spec s22 = {22, 20, 10, {{A, 2}}, 1, {A}, 1};
	write_image(&s10);
	write_image(&s19);
	write_image(&s20);
	write_image(&s21);
	write_image(&s22);
	struct cs_compact_result res;
	char msg[512];
	CHECK_EQ(cs_compact_merge(dir, 21, 10, &res, msg, sizeof(msg)), 0);
	CHECK(res.merged && res.removed == 0);
	CHECK(exists(19) && exists(20) && exists(21) && exists(22));
	struct cs_chain ch;
	struct cs_chain_damage d;
	CHECK_EQ(cs_chain_load(dir, 22, &ch, &d), 0);
	cs_chain_free(&ch);
	CHECK(page_from(22, A, 22) && page_from(20, A + PG, 20));
	/* with nothing beside it, the same merge drops what it folded */
	CHECK(unlink_image(22) == 0);
	write_image(&s21); /* 21 on 20 again, as the agent wrote it */
	CHECK_EQ(cs_compact_merge(dir, 21, 10, &res, msg, sizeof(msg)), 0);
	CHECK(!exists(19) && !exists(20) && exists(21));
}

/* cs_image_name_parse: the one parser of image file names. */
static void names(void)
{
	uint64_t g = 0;
	int tmp = -1;
	CHECK_EQ(cs_image_name_parse("gen-00000000000000000042.img", &g, &tmp), 0);
	CHECK(g == 42 && tmp == 0);
	CHECK_EQ(cs_image_name_parse("gen-18446744073709551615.img.tmp", &g, &tmp), 0);
	CHECK(g == UINT64_MAX && tmp == 1);
	static const char *bad[] = {
	    "gen-18446744073709551616.img", /* above 64 bits */
	    "gen-00000000000000000000.img", /* generation 0 */
	    "gen-0000000000000000042.img",  /* 19 digits */
	    "gen-000000000000000000042.img",
	    "gen-00000000000000000042.im",
	    "gen-00000000000000000042.img.tm",
	    "gen-00000000000000000042.img.tmpx",
	    "gen-00000000000000000042.imgx",
	    "gen- 0000000000000000042.img",
	    "agent.lock",
	    "",
	    "gen-",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cs_image_name_parse(bad[i], &g, &tmp) != -EINVAL) {
			fprintf(stderr, "accepted image name '%s'\n", bad[i]);
			check_failures++;
		}
}

int main(void)
{
	names();
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	compact_chain();
	refusals();
	policy();
	merge_chain();
	merge_beside_a_restored_chain();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_report("test_compact");
}
