/* The durable term and vote of this node, kept in state_dir/term.
 *
 * A term or a vote is written (temp file, fsync, rename, fsync of the
 * directory) before anything that depends on it leaves this host, so a
 * restart can never reuse a term or vote twice in one term. */
#ifndef CS_TERM_H
#define CS_TERM_H

#include <stddef.h>
#include <stdint.h>

#define CS_TERM_FILE "term"

struct cs_term_state {
	uint64_t term;
	char voted_for[64]; /* "" when no vote was cast in term */
};

/* Reads DIR/term. A missing file is term 0 with no vote (fresh node).
 * Returns 0, or a negative errno (-EINVAL for a malformed file). */
int cs_term_load(const char *dir, struct cs_term_state *out);
/* Replaces DIR/term atomically and durably. Returns 0 or a negative errno. */
int cs_term_store(const char *dir, const struct cs_term_state *st);

#endif
