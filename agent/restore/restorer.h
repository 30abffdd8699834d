/*
 * What the restorer's two parts share: restorer.c (a process from a plan:
 * memory, then threads) and standby.c (the warm standby's loop between the
 * two, which applies later generations' memory changes as plans arrive).
 */
#ifndef CS_RESTORER_H
#define CS_RESTORER_H

#include <stdint.h>

#include "cs_plan.h"

/* The plan being carried out, mapped at CS_RESTORER_PLAN_ADDR. */
extern const struct cs_plan_header *plan;
/* Where fail() reports: the status fd once the plan names it. */
extern int report_fd;

/* "error checksync-restore: <what> at <addr>: errno <e>" on the status fd,
 * then the process exits. check() fails when r is negative. */
__attribute__((noreturn)) void fail(const char *what, uint64_t addr, long err);
void check(long r, const char *what, uint64_t addr);
const void *at(uint64_t off); /* a plan offset as a pointer */
void map_plan(int fd);        /* maps fd at CS_RESTORER_PLAN_ADDR, checks it */

/* Memory steps of a plan, in this order. */
void create_maps(void);
void copy_pages(void);
void restore_advice(void);
void final_protections(void);

/* track.c: a userfaultfd over plan's tracked mappings with every live
 * page armed, for the agent to adopt; -1 if that could not be done */
int32_t cs_restore_arm_tracking(int pagemap_fd);

/* standby.c: reports "ready", then applies each APPLY plan that arrives on
 * the control socket; returns with plan set to the PROMOTE plan, its
 * memory applied and the program's fds, cwd, umask, personality and time
 * namespace in place. */
void cs_standby_loop(void);

#endif
