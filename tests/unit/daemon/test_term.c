/* The durable term: round trip, fresh node, malformed file, no leftovers. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "term.h"

static void write_file(const char *dir, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, CS_TERM_FILE);
	f = fopen(path, "w");
	assert(f);
	fputs(text, f);
	fclose(f);
}

int main(void)
{
	char dir[] = "/tmp/cs-term-XXXXXX", path[256];
	struct cs_term_state st = {.term = 42}, back;

	assert(mkdtemp(dir));
	/* A fresh node has term 0 and no vote. */
	assert(cs_term_load(dir, &back) == 0 && back.term == 0 && back.voted_for[0] == '\0');
	strcpy(st.voted_for, "beta");
	assert(cs_term_store(dir, &st) == 0);
	assert(cs_term_load(dir, &back) == 0 && back.term == 42);
	assert(strcmp(back.voted_for, "beta") == 0);
	st.term = 43;
	st.voted_for[0] = '\0';
	assert(cs_term_store(dir, &st) == 0);
	assert(cs_term_load(dir, &back) == 0 && back.term == 43 && back.voted_for[0] == '\0');
	/* The temporary file does not survive a store. */
	snprintf(path, sizeof(path), "%s/.%s.tmp", dir, CS_TERM_FILE);
	assert(access(path, F_OK) < 0 && errno == ENOENT);
	write_file(dir, "garbage\n");
	assert(cs_term_load(dir, &back) == -EINVAL);
	write_file(dir, "term x\nvote -\n");
	assert(cs_term_load(dir, &back) == -EINVAL);
	assert(cs_term_store("/nonexistent/dir", &st) < 0);
	snprintf(path, sizeof(path), "%s/%s", dir, CS_TERM_FILE);
	unlink(path);
	rmdir(dir);
	printf("term: all tests passed\n");
	return 0;
}
