/*
 * Restore, tool side: everything that can be checked is checked before a
 * namespace or process exists (validate.c), then a plan is written for the
 * freestanding restorer (plan.c), then the process to restore recreates
 * its fds and execs the restorer (fds.c).
 */
#ifndef CS_TOOL_RESTORE_H
#define CS_TOOL_RESTORE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "chain.h"

/* Files the restore needs open: opened and identity-checked by validate.c. */
struct cs_mapped_file {
	char path[PATH_MAX];
	int fd;
};

struct cs_restore {
	char dir[PATH_MAX];
	char restorer[PATH_MAX];
	struct cs_chain chain;
	const struct cs_image *img; /* chain.imgs[0].img */
	struct cs_mapped_file *files;
	size_t n_files;
	int exe_fd;
	int plan_fd;
	int status_rd, status_wr;
	int helper_base; /* final number of the first helper fd (status) */
	int detach;
	int64_t mono_offset_ns, boot_offset_ns, away_ns;
	uint64_t next_generation; /* the restored agent's next image */
	uint64_t min_next_generation;
	int check_only; /* --check: validate and build the plan, restore nothing */
	/* warm standby (standby.c): NULL for a cold restore */
	const struct cs_plan_step *step;
	int control_fd; /* STANDBY: the restorer's end of the control socket, or -1 */
};

/*
 * A standby's plan beyond a cold restore's (cs_plan.h, enum cs_plan_mode).
 * APPLY and PROMOTE plans name fds by index among those sent with them:
 * the plan's memfd 0, then chain.imgs[0..n) (the images newer than held),
 * then files[0..n_files).
 */
struct cs_plan_step {
	uint32_t mode;                 /* enum cs_plan_mode */
	const struct cs_image *held;   /* APPLY, PROMOTE: what the standby holds */
	/* PROMOTE */
	int32_t helper_lo;             /* above every program fd */
	int32_t donor_timens;          /* the donor's fd number of its time namespace */
	uint32_t n_fds_sent;
};

/* restore.c: every check, the numbers, the status pipe and the plan
 * (r->step and r->control_fd set for a standby); 0 or -1 after a message. */
int cs_restore_prepare(struct cs_restore *r);
/* Whether the image's agent counts on a compactor (CHECKSYNC_COMPACTOR=1),
 * and a pid for it above every tid of the image. */
int cs_restore_wants_compactor(const struct cs_restore *r);
pid_t cs_restore_compactor_pid(const struct cs_image *img);
/* The first generation number nobody used in dir (.tmp names count). */
uint64_t cs_restore_next_generation(const char *dir);

/* validate.c: each returns 0 or -1 after printing why it refuses. */
int cs_validate_abi(const struct cs_image *img);
int cs_validate_files(struct cs_restore *r);
int cs_validate_fds(const struct cs_image *img);
int cs_validate_unsupported(const struct cs_image *img);
/* What the agent refused at checkpoint and wrote into img anyway (the
 * chain goes on through it): UNSUPPORTED entries and fds. */
size_t cs_image_refusals(const struct cs_image *img);
/* Each of them on stderr, after lead. */
void cs_print_refusals(const struct cs_image *img, const char *lead);
/* creds.c: the image's credentials, believed as far as its file's owner vouches */
int cs_validate_creds(const struct cs_restore *r);
struct cs_plan_creds;
void cs_plan_creds(const struct cs_restore *r, struct cs_plan_creds *out);
int cs_mapping_is_file(const struct cs_image_mapping *m);
/* Why a warm standby cannot hold img (shared memory), or NULL. */
const char *cs_shmem_standby_refusal(const struct cs_image *img);
/* Adds fd to r->files under key (a path, or shmem.c's key); closes it on failure. */
int cs_restore_add_file(struct cs_restore *r, const char *key, int fd);
/* Index of the mapped file for path (opened by cs_validate_files). */
int cs_restore_file_fd(const struct cs_restore *r, const char *path);
/* shmem.c: a memfd per shared memory object of the image, in r->files */
int cs_restore_shmem(struct cs_restore *r);
int cs_restore_shmem_fd(const struct cs_restore *r, const struct cs_image_mapping *m);
void cs_shmem_name(const char *path, char *out, size_t cap);
/* Index in r->files of the memfd made for the object with this inode, or -1. */
int cs_restore_shmem_index(const struct cs_restore *r, uint64_t ino);
/* Current kernel's [vvar], [vvar_vclock], [vdso]: start and length. */
struct cs_special_now {
	uint64_t start[3], len[3];
};
int cs_specials_now(struct cs_special_now *out);

/* plan.c: writes the plan memfd (r->plan_fd); fd numbers are final ones. */
int cs_plan_build(struct cs_restore *r);
int cs_restore_helper_count(const struct cs_restore *r);
/* The page copies alone (for tests): image i of the chain is fd base + i. */
struct cs_plan_copy;
int cs_plan_resolve_pages(const struct cs_restore *r, int image_fd_base, struct cs_plan_copy **ret,
                          size_t *ret_n);
/* The same for a chain that stops above its full image when partial is 1
 * (the live pages its images hold; compact.c merges deltas with it). */
int cs_plan_resolve_some(const struct cs_restore *r, int image_fd_base, int partial,
                         struct cs_plan_copy **ret, size_t *ret_n);

/* ports.c: a listening socket's saved options on a new socket */
void cs_sock_options(int s, uint32_t opts);

/* fds.c: in the process to restore, before exec. Returns only on failure. */
int cs_restore_exec(struct cs_restore *r);
/* fds.c, in a standby's donor (a fork of the tool): the program's fds at
 * their numbers (report moves to helper_lo + 4, every other fd is closed),
 * target's attributes. Returns 0, or -1 after "error ..." on report. */
int cs_restore_donate(const struct cs_restore *r, int report, pid_t target, int helper_lo);
/* fds.c, in the process being restored: report a failure on the status
 * fd (returns -1), move a new fd onto its number */
int cs_restore_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cs_restore_place(int tmp, int target, const char *what);
/* Moves *fd at or above the numbers fds are placed on (closing the old
 * one), so a temporary fd kept open meanwhile is never placed over. */
int cs_restore_above_scratch(int *fd);
int cs_restore_finish(const struct cs_image_fd *f); /* status flags as saved */
/* sockets.c: a listening, datagram or never-connected stream socket */
int cs_restore_socket(const struct cs_image_fd *f);
/* both ends of a socketpair, their queues and shutdown state; marks done[] */
int cs_restore_socketpair(const struct cs_image *img, size_t first, char *done);

#endif
