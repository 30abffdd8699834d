/* libFuzzer target for the config loader (daemon/config.c): any input must
 * either load, or fail with one message that names the file; a loaded
 * config must equal itself under cs_config_diff. File-system checks are
 * off (CS_CONFIG_NO_FS_CHECKS): they depend on the host, not the input. */
#include "../../daemon/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_config *cfg = NULL;
	char err[512], buf[128];
	int r;

	memset(err, 'x', sizeof(err));
	r = cs_config_parse((const char *)data, size, "fuzz.json", CS_CONFIG_NO_FS_CHECKS, &cfg,
	                    err, sizeof(err));
	if (r < 0) {
		if (cfg || memchr(err, '\0', sizeof(err)) == NULL ||
		    strncmp(err, "fuzz.json", 9) != 0)
			abort();
		return 0;
	}
	if (!cfg || !cs_config_self(cfg) || !cs_config_preferred(cfg) ||
	    cs_config_diff(cfg, cfg) != 0 ||
	    cfg->heartbeat.interval_ms >= cfg->heartbeat.timeout_ms || cfg->listen == NULL)
		abort();
	cs_config_changes_format(~0u, buf, sizeof(buf));
	cs_config_free(cfg);
	return 0;
}
