/*
 * Refusals: everything that would make a restore fail or come back wrong
 * is found here, before any namespace or process exists.
 */
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "../restore/cs_plan.h"
#include "crc32c.h"
#include "restore.h"
#include "tool.h"

static const char *const special_names[3] = {"[vvar]", "[vvar_vclock]", "[vdso]"};
static const uint32_t special_flags[3] = {CS_MAP_VVAR, CS_MAP_VVAR_VCLOCK, CS_MAP_VDSO};

int cs_specials_now(struct cs_special_now *out)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	char line[4096];
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e;
		char name[64] = "";
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %63s", &s, &e, name) < 2)
			continue;
		for (int i = 0; i < 3; i++)
			if (!strcmp(name, special_names[i])) {
				out->start[i] = s;
				out->len[i] = e - s;
			}
	}
	fclose(f);
	return 0;
}

static uint64_t xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static int check_specials(const struct cs_image *img, const struct cs_special_now *now)
{
	uint64_t saved_start[3] = {0}, saved_len[3] = {0};
	for (size_t i = 0; i < img->n_mappings; i++)
		for (int k = 0; k < 3; k++)
			if (img->mappings[i].flags & special_flags[k]) {
				saved_start[k] = img->mappings[i].start;
				saved_len[k] = img->mappings[i].end - img->mappings[i].start;
			}
	for (int k = 0; k < 3; k++) {
		if (saved_len[k] != now->len[k]) {
			cs_err("refusing: the image's %s is %llu bytes, this kernel's is %llu "
			       "(a different kernel build)",
			       special_names[k], (unsigned long long)saved_len[k],
			       (unsigned long long)now->len[k]);
			return -1;
		}
		if (saved_len[k] && saved_len[2] &&
		    saved_start[k] - saved_start[2] != now->start[k] - now->start[2]) {
			cs_err("refusing: %s lies elsewhere relative to [vdso] on this kernel",
			       special_names[k]);
			return -1;
		}
	}
	if (!saved_len[2]) {
		cs_err("refusing: the image has no [vdso] mapping");
		return -1;
	}
	return 0;
}

int cs_validate_abi(const struct cs_image *img)
{
	const struct cs_image_header *h = &img->header;
	unsigned a, b, c, d;
	if (h->arch != CS_ARCH_X86_64 || h->page_size != (uint32_t)sysconf(_SC_PAGESIZE)) {
		cs_err("refusing: image is for arch %u with %u-byte pages; this is x86_64 with %ld",
		       h->arch, h->page_size, sysconf(_SC_PAGESIZE));
		return -1;
	}
	__cpuid_count(0xd, 0, a, b, c, d);
	if (h->xsave_features != xcr0() || h->xsave_size != b) {
		cs_err("refusing: the image's FPU state layout (XCR0 %#llx, %u bytes) differs from "
		       "this CPU's (XCR0 %#llx, %u bytes)",
		       (unsigned long long)h->xsave_features, h->xsave_size,
		       (unsigned long long)xcr0(), b);
		return -1;
	}
	struct cs_special_now now;
	if (cs_specials_now(&now) < 0 || !now.len[2]) {
		cs_err("cannot find this process's [vdso] in /proc/self/maps");
		return -1;
	}
	if (check_specials(img, &now) < 0)
		return -1;
	uint32_t crc = cs_crc32c(0, (const void *)(uintptr_t)now.start[2], now.len[2]);
	if (crc != img->process.vdso_crc) {
		cs_err("refusing: the vDSO differs from the image's (CRC %08x here, %08x saved; "
		       "kernel %s here, %s saved)",
		       crc, img->process.vdso_crc, "this", h->kernel_release);
		return -1;
	}
	if (img->n_threads == 0 || img->n_threads > CS_RESTORER_MAX_THREADS) {
		cs_err("refusing: the image has %zu threads", img->n_threads);
		return -1;
	}
	return 0;
}

size_t cs_image_refusals(const struct cs_image *img)
{
	size_t n = img->n_unsupported;
	for (size_t i = 0; i < img->n_fds; i++)
		n += img->fds[i].type == CS_FD_UNSUPPORTED;
	return n;
}

void cs_print_refusals(const struct cs_image *img, const char *lead)
{
	for (size_t i = 0; i < img->n_unsupported; i++)
		cs_err("%sthe image holds something that cannot be restored: %s", lead,
		       img->unsupported[i].what);
	for (size_t i = 0; i < img->n_fds; i++)
		if (img->fds[i].type == CS_FD_UNSUPPORTED)
			cs_err("%sfd %d cannot be restored: %s", lead, img->fds[i].fd,
			       img->fds[i].reason);
}

int cs_validate_unsupported(const struct cs_image *img)
{
	int bad = cs_image_refusals(img) > 0;
	cs_print_refusals(img, "refusing: ");
	for (size_t i = 0; i < img->n_mappings; i++) {
		const struct cs_image_mapping *m = &img->mappings[i];
		uint64_t lo = CS_RESTORER_BASE, hi = CS_RESTORER_BASE + CS_RESTORER_LEN;
		if (m->start < hi && m->end > lo && !(m->flags & CS_MAP_VSYSCALL)) {
			cs_err("refusing: mapping %#llx-%#llx overlaps the restorer's fixed region "
			       "%#llx-%#llx",
			       (unsigned long long)m->start, (unsigned long long)m->end,
			       (unsigned long long)lo, (unsigned long long)hi);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}
