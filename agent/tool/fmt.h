#ifndef CS_TOOL_FMT_H
#define CS_TOOL_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

void cs_sockaddr_text(const struct cs_image_fd *f, char *out, size_t cap);
void cs_prot_text(uint32_t prot, uint32_t flags, char out[5]);
const char *cs_mapping_name(const struct cs_image_mapping *m);
const char *cs_tracking_name(uint32_t tracking);
uint64_t cs_runs_pages_in(const struct cs_image_run *runs, size_t n, uint64_t start, uint64_t end);
uint64_t cs_page_runs_pages_in(const struct cs_image_page_run *runs, size_t n, uint64_t start,
			       uint64_t end);

#endif
