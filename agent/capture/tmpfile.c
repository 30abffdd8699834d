/*
 * Open files without a name (unlinked, or made with O_TMPFILE): every
 * program with a temporary file has one. Their content goes into the image,
 * read during the freeze through /proc/self/fd (the fd itself may be
 * write-only), and a restore makes a new unnamed file with it. Bounded:
 * CS_IMAGE_FILE_DATA_MAX per file and CS_TMPFILE_TOTAL_MAX for all of them;
 * above, and for a file that is open twice (two open file descriptions
 * would become two files) or still has a name elsewhere, the checkpoint is
 * refused by fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* A memfd is one too, and keeps its name, its seals and the object its
 * mappings share (shmem.c): MEMFD, with its inode as the object's id. */
static void memfd_classify(struct cs_capture *c, struct cs_image_fd *f, const struct stat *st)
{
	int seals = fcntl(f->fd, F_GET_SEALS);
	f->type = CS_FD_MEMFD;
	f->pipe_id = st->st_ino;
	f->eventfd_flags = seals > 0 ? (uint32_t)seals : 0;
	if (!(f->eventfd_flags & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
		return;
	for (size_t i = 0; i < c->maps.n; i++)
		if ((c->maps.v[i].flags & CS_MAP_SHMEM) && c->maps.v[i].ino == st->st_ino) {
			cs_fd_unsupported(
			    c, f,
			    "memfd sealed against writing (F_SEAL_WRITE) and also "
			    "mapped: the restore writes its pages through the mapping");
			return;
		}
}

void cs_tmpfile_classify(struct cs_capture *c, struct cs_image_fd *f, const struct stat *st)
{
	f->type = CS_FD_TMPFILE;
	f->file_mode = st->st_mode & 07777;
	if (!strncmp(f->path, "/memfd:", 7))
		memfd_classify(c, f, st);
	else if (st->st_nlink > 0)
		cs_fd_unsupported(c, f, "its path was deleted but the file has other names");
}

static void refuse_size(struct cs_capture *c, struct cs_image_fd *f, uint64_t size,
                        const char *limit)
{
	char why[160], num[24];
	cs_strlcpy(why, "unlinked file of ", sizeof(why));
	cs_fmt_u64(num, size);
	cs_strlcat(why, num, sizeof(why));
	cs_strlcat(why, " bytes, above ", sizeof(why));
	cs_strlcat(why, limit, sizeof(why));
	cs_fd_unsupported(c, f, why);
}

/* The whole content into the fd pool; file_data holds its pool offset until
 * cs_fds_capture turns offsets into pointers. */
static void read_content(struct cs_capture *c, struct cs_image_fd *f, uint64_t size)
{
	char path[64];
	cs_strlcpy(path, "/proc/self/fd/", sizeof(path));
	cs_fmt_u64(path + strlen(path), (uint64_t)f->fd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || cs_fd_pool_reserve(c, size)) {
		cs_fd_unsupported(
		    c, f, fd < 0 ? "unlinked file unreadable" : "no memory for its content");
		if (fd >= 0)
			close(fd);
		return;
	}
	uint64_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, c->fd_pool + c->fd_pool_len + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (uint64_t)r;
	}
	close(fd);
	f->file_data = (const uint8_t *)(uintptr_t)c->fd_pool_len;
	f->file_data_len = (uint32_t)got;
	c->fd_pool_len += got;
}

/* After duplicates are known (their content is their original's). */
void cs_tmpfiles_content(struct cs_capture *c, const struct cs_fd_ident *ids)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < c->n_fds; i++) {
		struct cs_image_fd *f = &c->fds[i];
		if ((f->type != CS_FD_TMPFILE && f->type != CS_FD_MEMFD) || f->share_fd >= 0)
			continue;
		uint32_t j = 0;
		while (j < i && !(c->fds[j].type == f->type && c->fds[j].share_fd < 0 &&
		                  ids[j].dev == ids[i].dev && ids[j].ino == ids[i].ino))
			j++;
		if (j < i) {
			cs_fd_unsupported(c, f,
			                  "unlinked file open twice (two open file "
			                  "descriptions would become two files)");
			continue;
		}
		if (ids[i].size > CS_IMAGE_FILE_DATA_MAX) {
			refuse_size(c, f, ids[i].size, "the 8 MiB an image holds per file");
			continue;
		}
		if (total + ids[i].size > CS_TMPFILE_TOTAL_MAX) {
			refuse_size(c, f, ids[i].size, "the 16 MiB an image holds for all of them");
			continue;
		}
		total += ids[i].size;
		read_content(c, f, ids[i].size);
	}
}
