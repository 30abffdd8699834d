/*
 * /proc/self/maps into cs_maps, without malloc (it runs during the freeze).
 *
 * Every private mapping is tracked, not only writable ones: RELRO pages and
 * data a program mprotect()ed read-only are anonymous copies that differ
 * from the file. The resident scan later skips pages still backed by the
 * file, so tracking read-only code costs nothing in the image.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent.h"

static char *maps_buf;
static size_t maps_cap;

void cs_maps_reset(void)
{
	maps_buf = NULL;
	maps_cap = 0;
}

static ssize_t read_maps(void)
{
	for (;;) {
		if (!maps_buf || maps_cap < (1u << 20)) {
			int r = cs_scratch_grow((void **)&maps_buf, &maps_cap, 1, 1u << 20);
			if (r)
				return r;
		}
		int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		size_t len = 0;
		ssize_t r;
		while ((r = read(fd, maps_buf + len, maps_cap - 1 - len)) > 0)
			len += (size_t)r;
		close(fd);
		if (r < 0)
			return -EIO;
		if (len + 1 < maps_cap) {
			maps_buf[len] = 0;
			return (ssize_t)len;
		}
		int g = cs_scratch_grow((void **)&maps_buf, &maps_cap, 1, maps_cap * 2);
		if (g)
			return g;
	}
}

static const struct {
	const char *name;
	uint32_t flags;
} special[] = {
	{"[heap]", CS_MAP_HEAP},
	{"[stack]", CS_MAP_STACK | CS_MAP_GROWSDOWN},
	{"[vdso]", CS_MAP_VDSO},
	{"[vvar]", CS_MAP_VVAR},
	{"[vvar_vclock]", CS_MAP_VVAR_VCLOCK},
	{"[vsyscall]", CS_MAP_VSYSCALL},
};

/* Shared memory objects of the kernel's internal shmem mount: memfds and
 * MAP_SHARED anonymous memory (which /dev/zero's MAP_SHARED also is). */
static int is_shmem(const char *path)
{
	static const char deleted[] = " (deleted)";
	size_t n = strlen(path), d = sizeof(deleted) - 1;
	if (n <= d || strcmp(path + n - d, deleted))
		return 0;
	return !strncmp(path, "/memfd:", 7) || !strcmp(path, "/dev/zero (deleted)");
}

static uint32_t classify(struct cs_vma *v, const char *perms, const char *path)
{
	uint32_t f = perms[3] == 's' ? CS_MAP_SHARED : CS_MAP_PRIVATE;
	f |= path[0] == '/' ? CS_MAP_FILE : CS_MAP_ANON;
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(path, special[i].name))
			f |= special[i].flags;
	if (f & (CS_MAP_VDSO | CS_MAP_VVAR | CS_MAP_VVAR_VCLOCK | CS_MAP_VSYSCALL))
		return f;
	if (cs_scratch_is_agent(v->start, v->end))
		return f | CS_MAP_AGENT;
	if (f & CS_MAP_PRIVATE)
		f |= CS_MAP_TRACKED;
	else if (is_shmem(path))
		f |= CS_MAP_SHMEM; /* copied in full at each checkpoint (shmem.c) */
	return f;
}

static int pool_add(struct cs_maps *m, const char *s, size_t len, uint32_t *off)
{
	if (!len) {
		*off = 0;
		return 0;
	}
	int r = cs_scratch_grow((void **)&m->pool, &m->pool_cap, 1, m->pool_len + len + 2);
	if (r)
		return r;
	if (!m->pool_len)
		m->pool[m->pool_len++] = 0; /* offset 0 means "no path" */
	memcpy(m->pool + m->pool_len, s, len);
	m->pool[m->pool_len + len] = 0;
	*off = (uint32_t)m->pool_len;
	m->pool_len += len + 1;
	return 0;
}

static int parse_line(struct cs_maps *m, char *line)
{
	const char *p = line;
	struct cs_vma v;
	uint64_t maj, min, ino;
	memset(&v, 0, sizeof(v));
	if (cs_parse_u64(&p, &v.start, 16) || *p++ != '-' || cs_parse_u64(&p, &v.end, 16) ||
	    *p++ != ' ')
		return -EINVAL;
	const char *perms = p;
	p += 5;
	if (cs_parse_u64(&p, &v.pgoff, 16) || *p++ != ' ' || cs_parse_u64(&p, &maj, 16) ||
	    *p++ != ':' || cs_parse_u64(&p, &min, 16) || *p++ != ' ' ||
	    cs_parse_u64(&p, &ino, 10))
		return -EINVAL;
	while (*p == ' ')
		p++;
	v.prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		 (perms[2] == 'x' ? PROT_EXEC : 0);
	v.dev = makedev(maj, min);
	v.ino = ino;
	v.flags = classify(&v, perms, p);
	int r = pool_add(m, p, strlen(p), &v.path_off);
	if (r)
		return r;
	r = cs_scratch_grow((void **)&m->v, &m->cap, sizeof(*m->v), m->n + 1);
	if (r)
		return r;
	m->v[m->n++] = v;
	return 0;
}

int cs_maps_read(struct cs_maps *m)
{
	ssize_t len = read_maps();
	if (len < 0)
		return (int)len;
	m->n = 0;
	m->pool_len = 0;
	char *line = maps_buf;
	while (*line) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		int r = parse_line(m, line);
		if (r)
			return r;
		if (!nl)
			break;
		line = nl + 1;
	}
	return 0;
}

int cs_vma_open(const struct cs_vma *v)
{
	char path[80], num[24];
	cs_strlcpy(path, "/proc/self/map_files/", sizeof(path));
	cs_fmt_hex(num, v->start);
	cs_strlcat(path, num, sizeof(path));
	cs_strlcat(path, "-", sizeof(path));
	cs_fmt_hex(num, v->end);
	cs_strlcat(path, num, sizeof(path));
	return open(path, O_RDONLY | O_CLOEXEC);
}

void cs_vma_name(char *out, size_t cap, const struct cs_vma *v)
{
	char num[24];
	cs_strlcpy(out, "mapping ", cap);
	cs_fmt_hex(num, v->start);
	cs_strlcat(out, num, cap);
	cs_strlcat(out, "-", cap);
	cs_fmt_hex(num, v->end);
	cs_strlcat(out, num, cap);
}

const char *cs_vma_path(const struct cs_maps *m, const struct cs_vma *v)
{
	return v->path_off ? m->pool + v->path_off : "";
}
