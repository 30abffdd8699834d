/*
 * Process-wide facts for HEADER and PROCESS, read in the writer child. The
 * child's umask, rlimits, cwd, sigactions, mm layout and auxv are copies
 * taken at the clone, i.e. at the frozen instant; only the pid, ppid and
 * comm belong to the parent and are fetched from it.
 */
#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent.h"
#include "crc32c.h"

void cs_trampoline_thread(void);
void cs_trampoline_last(void);

/* NT_GNU_BUILD_ID from the PT_NOTE segments of an ELF file. */
int cs_build_id(int fd, uint8_t *out, uint32_t *out_len)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	uint8_t notes[2048];
	*out_len = 0;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr))
		return -ENOEXEC;
	size_t n = eh.e_phnum < 64 ? eh.e_phnum : 64;
	if (pread(fd, ph, n * sizeof(ph[0]), (off_t)eh.e_phoff) != (ssize_t)(n * sizeof(ph[0])))
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		if (ph[i].p_type != PT_NOTE)
			continue;
		size_t len = ph[i].p_filesz < sizeof(notes) ? ph[i].p_filesz : sizeof(notes);
		ssize_t got = pread(fd, notes, len, (off_t)ph[i].p_offset);
		for (size_t off = 0; got > 0 && off + 12 <= (size_t)got;) {
			uint32_t nsz, dsz, type;
			memcpy(&nsz, notes + off, 4);
			memcpy(&dsz, notes + off + 4, 4);
			memcpy(&type, notes + off + 8, 4);
			size_t name = off + 12, desc = name + ((nsz + 3) & ~3u);
			if (desc + dsz > (size_t)got)
				break;
			if (type == NT_GNU_BUILD_ID && nsz == 4 &&
			    !memcmp(notes + name, "GNU", 4) && dsz <= CS_IMAGE_BUILD_ID_MAX) {
				memcpy(out, notes + desc, dsz);
				*out_len = dsz;
				return 0;
			}
			off = desc + ((dsz + 3) & ~3u);
		}
	}
	return -ENOENT;
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

int cs_fill_header(struct cs_agent *a, struct cs_capture *c, struct cs_image_header *h)
{
	struct utsname u;
	unsigned int eax, ebx, ecx, edx;
	(void)a;
	memset(h, 0, sizeof(*h));
	h->arch = CS_ARCH_X86_64;
	h->page_size = CS_IMAGE_PAGE_SIZE;
	h->flags = c->is_base ? 0 : CS_IMAGE_F_DELTA;
	h->tracking = c->is_base ? CS_TRACK_FULL
	                         : (a->mode == CS_MODE_HASH ? CS_TRACK_HASH : CS_TRACK_UFFD_WP);
	h->generation = c->generation;
	h->parent_generation = c->parent;
	h->base_generation = c->base;
	h->xsave_features = xgetbv0();
	if (__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx))
		h->xsave_size = ebx;
	if (uname(&u) == 0)
		cs_strlcpy(h->kernel_release, u.release, sizeof(h->kernel_release));
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		cs_build_id(fd, h->exe_build_id, &h->exe_build_id_len);
		close(fd);
	}
	h->clock_realtime_ns = c->clocks[0];
	h->clock_monotonic_ns = c->clocks[1];
	h->clock_boottime_ns = c->clocks[2];
	return 0;
}

/* Fields 26.. of /proc/self/stat: startcode endcode startstack ... and
 * 45..51: start_data end_data start_brk arg_start arg_end env_start env_end. */
static void mm_layout(struct cs_image_process *p)
{
	char buf[1024];
	if (cs_read_file("/proc/self/stat", buf, sizeof(buf)) <= 0)
		return;
	const char *s = strrchr(buf, ')');
	if (!s)
		return;
	uint64_t *want[53] = {0};
	want[26] = &p->start_code;
	want[27] = &p->end_code;
	want[28] = &p->start_stack;
	want[45] = &p->start_data;
	want[46] = &p->end_data;
	want[47] = &p->start_brk;
	want[48] = &p->arg_start;
	want[49] = &p->arg_end;
	want[50] = &p->env_start;
	want[51] = &p->env_end;
	int field = 2; /* s points at the ')' closing field 2 */
	while (*s && field < 52) {
		while (*s && *s != ' ')
			s++;
		while (*s == ' ')
			s++;
		field++;
		uint64_t v;
		const char *q = s;
		if (want[field] && cs_parse_u64(&q, &v, 10) == 0)
			*want[field] = v;
	}
}

static uint32_t vdso_crc(struct cs_agent *a)
{
	const struct cs_maps *m = &a->cap.maps;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].flags & CS_MAP_VDSO)
			return cs_crc32c(0, (const void *)m->v[i].start,
			                 m->v[i].end - m->v[i].start);
	return 0;
}

static void proc_text(pid_t pid, const char *leaf, char *dst, size_t cap, int is_link)
{
	char path[64], num[24];
	cs_strlcpy(path, "/proc/", sizeof(path));
	cs_fmt_u64(num, (uint64_t)pid);
	cs_strlcat(path, num, sizeof(path));
	cs_strlcat(path, leaf, sizeof(path));
	if (is_link) {
		ssize_t n = readlink(path, dst, cap - 1);
		dst[n > 0 ? n : 0] = 0;
		return;
	}
	ssize_t n = cs_read_file(path, dst, cap);
	if (n > 0 && dst[n - 1] == '\n')
		dst[n - 1] = 0;
}

/* /proc/self/auxv as the kernel laid it out at exec, kept from the start:
 * it never changes, and a program that drops its privileges becomes
 * non-dumpable and may no longer read it. The copy is agent memory, so a
 * restored agent has it too. */
static uint8_t auxv[CS_IMAGE_AUXV_MAX];
static uint32_t auxv_len;

void cs_auxv_keep(void)
{
	int fd = open("/proc/self/auxv", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, auxv, sizeof(auxv));
	auxv_len = n > 0 ? (uint32_t)n : 0;
	close(fd);
}

int cs_fill_process(struct cs_agent *a, struct cs_image_process *p)
{
	p->pid = a->pid;
	p->ppid = a->cap.ppid;
	mode_t um = umask(0);
	umask(um);
	p->umask = um;
	p->personality = (uint32_t)personality(0xffffffff);
	mm_layout(p);
	p->brk = a->cap.brk; /* taken during the freeze */
	if (!auxv_len)
		cs_auxv_keep();
	memcpy(p->auxv, auxv, auxv_len);
	p->auxv_len = auxv_len;
	for (int i = 0; i < CS_IMAGE_RLIMITS; i++) {
		struct rlimit rl;
		if (getrlimit((__rlimit_resource_t)i, &rl) == 0) {
			p->rlimits[i].cur = rl.rlim_cur;
			p->rlimits[i].max = rl.rlim_max;
		}
	}
	p->agent_addr[CS_AGENT_BLOCK] = (uint64_t)&cs_restore_block;
	p->agent_addr[CS_AGENT_TRAMPOLINE] = (uint64_t)cs_trampoline_thread;
	p->agent_addr[CS_AGENT_TRAMPOLINE_LAST] = (uint64_t)cs_trampoline_last;
	p->vdso_crc = vdso_crc(a);
	cs_strlcpy(p->comm, a->cap.comm, sizeof(p->comm));
	proc_text((pid_t)syscall(SYS_getpid), "/cwd", p->cwd, sizeof(p->cwd), 1);
	proc_text((pid_t)syscall(SYS_getpid), "/exe", p->exe_path, sizeof(p->exe_path), 1);
	return 0;
}
