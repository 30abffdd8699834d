/*
 * Mapped files and the executable must be the very files the image mapped:
 * by build-id where the image has one (so a copy of the same build on a
 * backup host is accepted), otherwise by device, inode, size and mtime.
 * Each file is opened once here and the same open file is what the
 * restorer maps, so nothing can be swapped in between.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "restore.h"
#include "tool.h"

/* The NT_GNU_BUILD_ID note of an ELF file, or 0 bytes if it has none. */
static size_t read_build_id(int fd, uint8_t *out, size_t cap)
{
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 256)
		return 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
			return 0;
		if (ph.p_type != PT_NOTE || ph.p_filesz > 65536)
			continue;
		uint8_t notes[65536];
		if (pread(fd, notes, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz)
			return 0;
		size_t off = 0;
		while (off + sizeof(Elf64_Nhdr) <= ph.p_filesz) {
			Elf64_Nhdr nh;
			memcpy(&nh, notes + off, sizeof(nh));
			size_t name_at = off + sizeof(nh);
			size_t desc_at = name_at + ((nh.n_namesz + 3) & ~3u);
			size_t next = desc_at + ((nh.n_descsz + 3) & ~3u);
			if (next > ph.p_filesz)
				break;
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    !memcmp(notes + name_at, "GNU", 4) && nh.n_descsz <= cap) {
				memcpy(out, notes + desc_at, nh.n_descsz);
				return nh.n_descsz;
			}
			off = next;
		}
	}
	return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * n] = 0;
}

static int dev_matches(uint64_t saved, dev_t now)
{
	/* /proc/pid/maps spells devices as major:minor; accept either encoding */
	return saved == (uint64_t)now || saved == (((uint64_t)major(now) << 8) | minor(now));
}

/* Opens path and checks it against the saved identity; returns the fd. */
static int open_identical(const char *path, const uint8_t *build_id, uint32_t build_id_len,
			  uint64_t dev, uint64_t ino, uint64_t size, int64_t mtime_ns)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		cs_err("refusing: %s, mapped by the image, cannot be opened: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (build_id_len) {
		uint8_t now[CS_IMAGE_BUILD_ID_MAX];
		size_t n = read_build_id(fd, now, sizeof(now));
		if (n == build_id_len && !memcmp(now, build_id, n))
			return fd;
		char a[2 * CS_IMAGE_BUILD_ID_MAX + 1], b[2 * CS_IMAGE_BUILD_ID_MAX + 1];
		hex(build_id, build_id_len, a);
		hex(now, n, b);
		cs_err("refusing: %s is not the file the image mapped (build-id %s in the image, %s now)",
		       path, a, n ? b : "none");
		close(fd);
		return -1;
	}
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (dev_matches(dev, st.st_dev) && ino == (uint64_t)st.st_ino && size == (uint64_t)st.st_size &&
	    mt == mtime_ns)
		return fd;
	cs_err("refusing: %s is not the file the image mapped (no build-id; saved inode %llu, "
	       "size %llu, mtime %lld; now inode %llu, size %llu, mtime %lld)",
	       path, (unsigned long long)ino, (unsigned long long)size, (long long)mtime_ns,
	       (unsigned long long)st.st_ino, (unsigned long long)st.st_size, (long long)mt);
	close(fd);
	return -1;
}

/* Agent scratch memory is recreated empty; shared anonymous memory shows up
 * as "/dev/zero (deleted)" and is anonymous again; shared memory objects
 * are new memfds (shmem.c). */
int cs_mapping_is_file(const struct cs_image_mapping *m)
{
	return (m->flags & CS_MAP_FILE) && !(m->flags & (CS_MAP_AGENT | CS_MAP_SHMEM)) &&
	       strcmp(m->path, "/dev/zero (deleted)");
}

int cs_restore_file_fd(const struct cs_restore *r, const char *path)
{
	for (size_t i = 0; i < r->n_files; i++)
		if (!strcmp(r->files[i].path, path))
			return (int)i;
	return -1;
}

int cs_restore_add_file(struct cs_restore *r, const char *key, int fd)
{
	struct cs_mapped_file *nf = realloc(r->files, (r->n_files + 1) * sizeof(*nf));
	if (!nf) {
		close(fd);
		return -1;
	}
	r->files = nf;
	snprintf(nf[r->n_files].path, sizeof(nf[r->n_files].path), "%s", key);
	nf[r->n_files++].fd = fd;
	return 0;
}

static int add_file(struct cs_restore *r, const struct cs_image_mapping *m)
{
	if (cs_restore_file_fd(r, m->path) >= 0)
		return 0;
	if (strstr(m->path, " (deleted)")) {
		cs_err("refusing: the image maps %s, which was deleted", m->path);
		return -1;
	}
	int fd = open_identical(m->path, m->build_id, m->build_id_len, m->dev, m->ino, m->file_size,
				m->mtime_ns);
	return fd < 0 ? -1 : cs_restore_add_file(r, m->path, fd);
}

int cs_validate_files(struct cs_restore *r)
{
	const struct cs_image *img = r->img;
	int bad = 0;
	for (size_t i = 0; i < img->n_mappings; i++) {
		const struct cs_image_mapping *m = &img->mappings[i];
		if (cs_mapping_is_file(m) && add_file(r, m) < 0)
			bad = 1;
	}
	if (bad || cs_restore_shmem(r) < 0)
		return -1;
	/* The executable: the file PR_SET_MM_EXE_FILE will point at. Its
	 * build-id is in the header; its mapping was checked above. */
	int fd = open(img->process.exe_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cs_err("refusing: the executable %s cannot be opened: %s", img->process.exe_path,
		       strerror(errno));
		return -1;
	}
	uint8_t now[CS_IMAGE_BUILD_ID_MAX];
	size_t n = read_build_id(fd, now, sizeof(now));
	if (img->header.exe_build_id_len &&
	    (n != img->header.exe_build_id_len || memcmp(now, img->header.exe_build_id, n))) {
		cs_err("refusing: the executable %s has another build-id than the image's",
		       img->process.exe_path);
		close(fd);
		return -1;
	}
	r->exe_fd = fd;
	return 0;
}
