/* The engine's tool as a child of the daemon: started detached from the
 * daemon's signals and fds, dying with the daemon, watched through a pidfd,
 * and killed with every process beneath it. app.c (checksync run/restore)
 * and standby.c (checksync standby) share these. */
#ifndef CS_PROC_H
#define CS_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* Forks and executes path with argv; env entries ("K=V") are added to the
 * child's environment. pass_fd >= 0 becomes the child's fd 3 (every other
 * fd above 2 is closed). Returns 0 with the child's pid and a pidfd of it,
 * or a negative errno (nothing logged; no child left). */
int cs_proc_spawn(const char *path, char *const *argv, char *const *env, int pass_fd,
                  pid_t *ret_pid, int *ret_pidfd);

/* SIGKILLs every descendant of root (and root itself when kill_root, which
 * is then reaped: it must be our child) and waits until they are gone.
 * Returns the number of descendants killed. */
size_t cs_proc_kill_tree(pid_t root, int kill_root);
/* cs_proc_kill_tree(pid, 1), logged once: "WHAT stopped (WHY): tool pid P
 * and N processes killed". */
void cs_proc_stop(pid_t pid, const char *what, const char *why);

#endif
