/* The writer child's state, shared by dump.c (sections) and pages.c
 * (mappings, resident pages, and which pages go into this image). */
#ifndef CS_CAPTURE_DUMP_H
#define CS_CAPTURE_DUMP_H

#include "agent.h"

#define OUT_BUF (1u << 20)
#define OUT_DIRECT (64u << 10) /* pieces this large bypass the buffer */
#define META_CAP (64u << 20)
#define BOUNCE_PAGES 64u

struct out {
	int fd;
	uint8_t *buf;
	size_t len;
	uint64_t pos;    /* bytes in the file */
	uint64_t direct; /* of them, written with O_DIRECT */
	int no_direct;   /* not asked for (CHECKSYNC_DIRECT_IO=0), or refused */
};

struct dump {
	struct cs_agent *a;
	struct cs_capture *c;
	struct cs_image_writer w;
	struct out out;
	struct cs_buf meta;
	int pagemap_fd;
	struct cs_runs resident; /* all live tracked pages */
	struct cs_runs send;     /* pages whose bytes go into this image */
	uint64_t hash_entries;
	char *msg;
	char tmp_name[64]; /* the file being written, for messages */
	uint8_t *bounce;
	int own_buffers; /* mapped by this writer, unmapped when it ends */
};

int cs_dump_mappings(struct dump *d);
int cs_dump_select_pages(struct dump *d);

#endif
