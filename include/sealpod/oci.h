/* SPDX-License-Identifier: Apache-2.0 */
/* The container engine: an OCI runtime spec (runtime-spec 1.0-1.2
 * config.json) plus a root filesystem become a running container.
 *
 * Lifecycle, as in runc: sp_container_create() builds the namespaces,
 * cgroup, mounts and devices and leaves the container's init blocked just
 * before execve; sp_container_start() releases it; sp_container_kill(),
 * sp_container_exec(), sp_container_stats(), sp_container_pids() act on a
 * created or running container; sp_container_delete() removes everything.
 *
 * Every container lives in a state directory <root>/<id>/ (state.json,
 * config.json, the exec fifo) so that separate processes (the CLI's
 * invocations) can find it with sp_container_load().
 *
 * Processes: the container's init and exec'd processes are direct children
 * of the caller (the engine forks through an intermediate that uses
 * CLONE_PARENT), so the caller reaps them: the guest agent (PID 1) with its
 * own waitpid loop, the CLI with sp_container_wait(). The caller must not
 * ignore SIGCHLD (SIG_IGN would auto-reap and lose exit statuses).
 *
 * Errors name the spec field (JSON path) or the file that caused them, and
 * a failed create or exec undoes what it did: processes are killed and
 * reaped, cgroups removed, the state directory removed. Mounts live in the
 * container's new mount namespace and vanish with it. */
#ifndef SEALPOD_OCI_H
#define SEALPOD_OCI_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

typedef struct sp_container sp_container;

/* The process's standard streams. -1 means /dev/null. The engine dups
 * them; the caller keeps and closes its own. Ignored when the process
 * asks for a terminal. */
typedef struct sp_stdio {
	int in, out, err;
} sp_stdio;

#define SP_CONTAINER_OPTS_VERSION 1
typedef struct sp_container_opts {
	unsigned version; /* SP_CONTAINER_OPTS_VERSION */
	/* State directory root (runc --root); required. */
	const char *state_root;
	/* The bundle directory: relative paths (root.path, mount sources) are
	 * resolved against it; reported in the state. */
	const char *bundle;
	/* If process.terminal is true, the pty master is sent (SCM_RIGHTS) to
	 * this unix socket path, or to console_fd if >= 0 (a connected unix
	 * socket the caller owns). Neither set with terminal: an error. */
	const char *console_socket;
	int console_fd;
	/* Extra fds 3..3+preserve_fds-1 passed to the process (runc
	 * --preserve-fds). */
	unsigned preserve_fds;
} sp_container_opts;

/* Creates container `id` from the spec. spec_json/spec_len is the
 * config.json text (the host sends it to the agent: it is parsed as
 * hostile input). rootfs overrides root.path when not NULL. On success
 * *out is the container, its init waits for sp_container_start(). */
SP_PUBLIC int sp_container_create(sp_container **out, const char *id,
				  const char *spec_json, size_t spec_len,
				  const char *rootfs, const sp_stdio *stdio,
				  const sp_container_opts *opts, sp_err **err);
/* Finds an existing container in <state_root>/<id>. */
SP_PUBLIC int sp_container_load(sp_container **out, const char *state_root,
				const char *id, sp_err **err);
/* Lets a created container's init run its process (runs poststart). */
SP_PUBLIC int sp_container_start(sp_container *c, sp_err **err);

/* Starts an extra process in the running container. process_json is an
 * OCI "process" object. opts supplies console_socket/console_fd for a
 * terminal and preserve_fds; its state_root is ignored. */
SP_PUBLIC int sp_container_exec(sp_container *c, const char *process_json,
				size_t process_len, const sp_stdio *stdio,
				const sp_container_opts *opts, pid_t *pid,
				sp_err **err);

/* Sends sig to the init, or with all to every process in its cgroup. */
SP_PUBLIC int sp_container_kill(sp_container *c, int sig, bool all,
				sp_err **err);

typedef enum sp_container_status {
	SP_CONTAINER_CREATING,
	SP_CONTAINER_CREATED,
	SP_CONTAINER_RUNNING,
	SP_CONTAINER_STOPPED,
	SP_CONTAINER_PAUSED, /* its cgroup is frozen */
} sp_container_status;

SP_PUBLIC sp_container_status sp_container_status_get(sp_container *c);
SP_PUBLIC const char *sp_container_status_name(sp_container_status s);
/* The OCI state as JSON (ociVersion, id, status, pid, bundle, rootfs,
 * created, annotations); free() it. */
SP_PUBLIC char *sp_container_state_json(sp_container *c);
SP_PUBLIC pid_t sp_container_pid(const sp_container *c);
SP_PUBLIC const char *sp_container_id(const sp_container *c);

/* Waits for the init (only when the caller is its parent) and returns
 * its exit code (128+signal when killed). */
SP_PUBLIC int sp_container_wait(sp_container *c, int *exit_code, sp_err **err);

/* Removes a stopped (or, with force, any) container: kills what is left,
 * runs poststop hooks, removes the cgroup and the state directory. Frees
 * nothing: call sp_container_free() after. */
SP_PUBLIC int sp_container_delete(sp_container *c, bool force, sp_err **err);
SP_PUBLIC void sp_container_free(sp_container *c);

/* Statistics from the container's cgroup. Unknown values are 0. */
typedef struct sp_container_stats {
	uint64_t cpu_usage_ns, cpu_user_ns, cpu_system_ns;
	uint64_t cpu_periods, cpu_throttled_periods, cpu_throttled_ns;
	uint64_t mem_usage, mem_max_usage, mem_limit, mem_cache, mem_rss,
		mem_swap;
	uint64_t pids_current, pids_limit; /* limit 0: unlimited */
	uint64_t oom_events, oom_kills;
} sp_container_stats;
SP_PUBLIC int sp_container_stats_get(sp_container *c, sp_container_stats *st,
				     sp_err **err);
/* Changes the cgroup limits of a created or running container (runc
 * `update`): resources_json is a runtime-spec linux.resources object;
 * only the values it sets are written. Device rules (linux.resources.
 * devices), when present, replace the container's whole rule set (on
 * cgroup v2 a new eBPF program replaces the old one). */
SP_PUBLIC int sp_container_update(sp_container *c, const char *resources_json,
				  size_t len, sp_err **err);
/* Freezes every process of a created or running container (cgroup v1
 * freezer.state, or v2 cgroup.freeze); its status is then "paused". */
SP_PUBLIC int sp_container_pause(sp_container *c, sp_err **err);
/* Thaws a paused container. */
SP_PUBLIC int sp_container_resume(sp_container *c, sp_err **err);
/* Every process in the container's cgroup, as seen by the caller. */
SP_PUBLIC int sp_container_pids(sp_container *c, pid_t **out, size_t *n,
				sp_err **err);

/* Container ids under a state root (NULL-terminated, free with the
 * strv cleanup). */
SP_PUBLIC int sp_container_list(char ***out, const char *state_root,
				sp_err **err);

/* Validates a config.json without running anything (fuzzing, `spec`
 * checks). */
SP_PUBLIC int sp_oci_spec_check(const void *data, size_t len, sp_err **err);

/* The runtime's features document (runc `features`), as JSON; free(). */
SP_PUBLIC char *sp_oci_features_json(void);

#endif
