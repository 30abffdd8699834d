/* The restorer's credential step (creds.c). */
#ifndef CS_RESTORE_CREDS_H
#define CS_RESTORE_CREDS_H

#include "cs_plan.h"

/* Puts c on the calling thread; 0, or a negative errno and *what. */
long cs_restore_creds(const struct cs_plan_creds *c, const char **what);

#endif
