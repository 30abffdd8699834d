/* Emits a fixed set of events and log messages through daemon/journal.c,
 * for test_journal.py:
 *   journal_emit auto|stderr|journal   emit (target as cs_journal_init)
 *   journal_emit list                  print "name message_id" per event kind */
#include "journal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	static const char *const targets[] = {"auto", "stderr", "journal"};
	int t = -1;

	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		for (int k = 0; k < CS_EV__COUNT; k++)
			printf("%s %s\n", cs_event_name(k), cs_event_message_id(k));
		return 0;
	}
	for (int i = 0; argc == 2 && i < 3; i++)
		if (strcmp(argv[1], targets[i]) == 0)
			t = i;
	if (t < 0)
		return 2;
	cs_journal_init("journal_emit", (enum cs_log_target)t);
	cs_journal_set_node("alpha");
	cs_journal_set_state("backup", 4);
	cs_event(CS_EV_PROMOTED, .role = "primary", .term = 5, .peer = "beta",
	         .reason = "lease of beta expired");
	cs_event(CS_EV_FENCE_HOOK_OK, .peer = "beta", CS_DURATION(37));
	cs_event(CS_EV_PEER_DOWN, .peer = "gamma");
	cs_event(CS_EV_NOTIFY_HOOK_OUTPUT, .hook = "notify", .reason = "moved ip\tto alpha\n");
	cs_log_debug("a debug message, dropped at the default level");
	cs_log_warn_errno(-ENOENT, "cannot open %s", "/etc/checksync/ca.pem");
	return 0;
}
