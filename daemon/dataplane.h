/* The data plane: what joins the engine (the app, its chain of images) to
 * the cluster. On the primary it runs the app (app.c), answers its Sync
 * calls (syncsrv.c) and relays its images to the backups (replicate.c); on
 * a backup it stores what it receives (store.c); on promotion it restores
 * the newest generation it holds. It plugs into the daemon through
 * struct cs_dataplane_ops (daemon.h). */
#ifndef CS_DATAPLANE_H
#define CS_DATAPLANE_H

#include "config.h"
#include "daemon.h"

struct cs_dataplane;

/* cfg must outlive the data plane. tool: the checksync binary. */
int cs_dataplane_new(struct cs_daemon *d, const struct cs_config *cfg, const char *tool,
                     struct cs_dataplane **out);
void cs_dataplane_free(struct cs_dataplane *dp);
extern const struct cs_dataplane_ops cs_dataplane_ops;

#endif
