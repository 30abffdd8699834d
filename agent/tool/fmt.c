/* Human spellings of image fields, shared by inspect and the refusals. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fmt.h"

void cs_sockaddr_text(const struct cs_image_fd *f, char *out, size_t cap)
{
	const void *a = f->local_addr;
	char host[INET6_ADDRSTRLEN] = "?";
	if (f->family == AF_INET && f->local_len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = a;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(s->sin_port));
	} else if (f->family == AF_INET6 && f->local_len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = a;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(s->sin6_port));
	} else if (f->family == AF_UNIX && f->local_len > sizeof(sa_family_t)) {
		const struct sockaddr_un *s = a;
		size_t n = f->local_len - sizeof(sa_family_t);
		if (n > sizeof(s->sun_path))
			n = sizeof(s->sun_path);
		if (s->sun_path[0])
			snprintf(out, cap, "unix:%.*s", (int)strnlen(s->sun_path, n), s->sun_path);
		else
			snprintf(out, cap, "unix:@%.*s", (int)n - 1, s->sun_path + 1);
	} else {
		snprintf(out, cap, "family %d", f->family);
	}
}

void cs_prot_text(uint32_t prot, uint32_t flags, char out[5])
{
	out[0] = (prot & PROT_READ) ? 'r' : '-';
	out[1] = (prot & PROT_WRITE) ? 'w' : '-';
	out[2] = (prot & PROT_EXEC) ? 'x' : '-';
	out[3] = (flags & CS_MAP_SHARED) ? 's' : 'p';
	out[4] = 0;
}

const char *cs_mapping_name(const struct cs_image_mapping *m)
{
	static const struct {
		uint32_t flag;
		const char *name;
	} specials[] = {
		{CS_MAP_VDSO, "[vdso]"}, {CS_MAP_VVAR, "[vvar]"}, {CS_MAP_VVAR_VCLOCK, "[vvar_vclock]"},
		{CS_MAP_VSYSCALL, "[vsyscall]"}, {CS_MAP_STACK, "[stack]"}, {CS_MAP_HEAP, "[heap]"},
		{CS_MAP_AGENT, "[checksync agent]"},
	};
	if (m->path[0])
		return m->path;
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++)
		if (m->flags & specials[i].flag)
			return specials[i].name;
	return "[anon]";
}

const char *cs_tracking_name(uint32_t t)
{
	switch (t) {
	case CS_TRACK_FULL: return "full";
	case CS_TRACK_UFFD_WP: return "uffd";
	case CS_TRACK_HASH: return "hash";
	default: return "unknown";
	}
}

/* Pages of the run [addr, addr + npages pages) that fall inside [start, end). */
static uint64_t run_pages_in(uint64_t addr, uint32_t npages, uint64_t start, uint64_t end)
{
	uint64_t s = addr, e = s + (uint64_t)npages * CS_IMAGE_PAGE_SIZE;
	if (s < start)
		s = start;
	if (e > end)
		e = end;
	return e > s ? (e - s) / CS_IMAGE_PAGE_SIZE : 0;
}

/* Pages of the runs that fall inside [start, end). */
uint64_t cs_runs_pages_in(const struct cs_image_run *runs, size_t n, uint64_t start, uint64_t end)
{
	uint64_t pages = 0;
	for (size_t i = 0; i < n; i++)
		pages += run_pages_in(runs[i].addr, runs[i].npages, start, end);
	return pages;
}

uint64_t cs_page_runs_pages_in(const struct cs_image_page_run *runs, size_t n, uint64_t start,
			       uint64_t end)
{
	uint64_t pages = 0;
	for (size_t i = 0; i < n; i++)
		pages += run_pages_in(runs[i].addr, runs[i].npages, start, end);
	return pages;
}
