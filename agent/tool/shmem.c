/*
 * Shared memory objects of an image (CS_MAP_SHMEM mappings: memfds,
 * MAP_SHARED anonymous memory, /dev/zero): one new memfd per object (the
 * mappings' ino), as large as the object was. The restorer maps it
 * MAP_SHARED at each saved address and loads the saved pages through the
 * mapping, so mappings of one object share memory again. Its fd joins the
 * mapped files (r->files) under the key "shmem:INO".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "restore.h"
#include "tool.h"

static void shmem_key(char *buf, size_t cap, uint64_t ino)
{
	snprintf(buf, cap, "shmem:%llu", (unsigned long long)ino);
}

int cs_restore_shmem_index(const struct cs_restore *r, uint64_t ino)
{
	char key[40];
	shmem_key(key, sizeof(key), ino);
	return cs_restore_file_fd(r, key);
}

int cs_restore_shmem_fd(const struct cs_restore *r, const struct cs_image_mapping *m)
{
	return cs_restore_shmem_index(r, m->ino);
}

/* "/memfd:NAME (deleted)" gives NAME; MAP_SHARED anonymous memory, which
 * has none, "dev/zero" (its maps line reads /memfd:dev/zero then). */
void cs_shmem_name(const char *path, char *out, size_t cap)
{
	const char *deleted = " (deleted)";
	size_t n = strlen(path), d = strlen(deleted);
	if (strncmp(path, "/memfd:", 7) || n < 7 + d) {
		snprintf(out, cap, "dev/zero");
		return;
	}
	snprintf(out, cap, "%.*s", (int)(n - 7 - d), path + 7);
}

/* The object's size: st_size at the checkpoint (the writer reads it as
 * root only), else as far as its mappings reach. */
static uint64_t object_size(const struct cs_image *img, uint64_t ino)
{
	uint64_t size = 0, reach = 0;
	for (size_t i = 0; i < img->n_mappings; i++) {
		const struct cs_image_mapping *m = &img->mappings[i];
		if (!(m->flags & CS_MAP_SHMEM) || m->ino != ino)
			continue;
		if (m->file_size > size)
			size = m->file_size;
		if (m->pgoff + (m->end - m->start) > reach)
			reach = m->pgoff + (m->end - m->start);
	}
	return size ? size : reach;
}

static int add_object(struct cs_restore *r, const struct cs_image_mapping *m)
{
	char name[256];
	cs_shmem_name(m->path, name, sizeof(name));
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, (off_t)object_size(r->img, m->ino))) {
		cs_err("refusing: making the shared memory of %s (mapping %#llx) failed: %s",
		       m->path, (unsigned long long)m->start, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char key[40];
	shmem_key(key, sizeof(key), m->ino);
	return cs_restore_add_file(r, key, fd);
}

int cs_restore_shmem(struct cs_restore *r)
{
	for (size_t i = 0; i < r->img->n_mappings; i++) {
		const struct cs_image_mapping *m = &r->img->mappings[i];
		if ((m->flags & CS_MAP_SHMEM) && cs_restore_shmem_fd(r, m) < 0 &&
		    add_object(r, m) < 0)
			return -1;
	}
	return 0;
}

/* A warm standby (standby.c) does not hold shared memory yet: its steps
 * would map a new memfd beside the one a kept range holds, leave pages that
 * became zero in the object (MADV_DONTNEED does not clear shmem), and its
 * donor's MEMFD fds would be other objects than its mappings. */
const char *cs_shmem_standby_refusal(const struct cs_image *img)
{
	for (size_t i = 0; i < img->n_mappings; i++)
		if (img->mappings[i].flags & CS_MAP_SHMEM)
			return "shared memory (memfd, MAP_SHARED anonymous) is not held by a warm "
			       "standby yet: restore it cold";
	for (size_t i = 0; i < img->n_fds; i++)
		if (img->fds[i].type == CS_FD_MEMFD)
			return "a memfd fd is not held by a warm standby yet: restore it cold";
	return NULL;
}
