/* CHECK for the daemon's unit tests: counts a failure and prints where
 * and why (printf arguments), then goes on; main returns failures != 0. */
#ifndef CS_TEST_DAEMON_CHECK_H
#define CS_TEST_DAEMON_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			failures++;                                                                \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)

#endif
