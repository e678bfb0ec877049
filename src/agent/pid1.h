/* SPDX-License-Identifier: Apache-2.0 */
/* What sealpod-agent does as the guest's PID 1, apart from serving:
 * mount the API filesystems, load the kernel modules listed in the
 * initramfs, name the virtio-serial ports, reap every child (handing exit
 * statuses to whoever registered for them), and power off cleanly. */
#ifndef SEALPOD_AGENT_PID1_H
#define SEALPOD_AGENT_PID1_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

/* Timings of sp_pid1_setup(), for the ready line and benchmarks. */
typedef struct sp_pid1_stats {
	uint64_t kernel_ms;  /* kernel boot until PID 1 ran (from /proc/uptime) */
	uint64_t setup_ms;   /* sp_pid1_setup() itself */
	unsigned modules_loaded;
} sp_pid1_stats;

/* Everything PID 1 needs before serving, in order: /proc, /sys, /dev
 * (devtmpfs), fds 0-2 on /dev/console, /dev/pts, /dev/shm, /run, /tmp,
 * cgroup2 at /sys/fs/cgroup, the modules in SP_GUEST_MODULES_LIST, then
 * configfs (if the kernel has it) and /dev/virtio-ports/ links. Fails
 * only for what the agent cannot run without (/proc, /sys, /dev). */
int sp_pid1_setup(sp_pid1_stats *stats, sp_err **err);

/* Single steps, for tests and for the agent's own order if it differs. */
int sp_pid1_mount_all(sp_err **err);
/* Loads each module file listed (one path a line) with finit_module;
 * already-loaded modules are fine. As PID 1 it then deletes each file, to
 * give its RAM back. Returns the number loaded. */
int sp_pid1_load_modules(const char *list_path, sp_err **err);
/* Creates /dev/virtio-ports/<name> -> ../vportNpM for every named port
 * (what udev would do). Returns the number of links. */
int sp_pid1_link_virtio_ports(void);
/* Waits up to timeout_ns for the virtio-serial port `name` and returns
 * its device path (/dev/vportNpM) in *dev (new string). */
int sp_pid1_wait_port(const char *name, uint64_t timeout_ns, char **dev,
		      sp_err **err);

/* Milliseconds since the guest kernel started (/proc/uptime). */
uint64_t sp_pid1_uptime_ms(void);

/* "MemTotal - MemAvailable" from /proc/meminfo, in KiB (0 if unknown). */
uint64_t sp_pid1_mem_used_kb(uint64_t *total_kb);

/* sync(), then reboot(RB_POWER_OFF). Never returns (exits, which panics
 * the guest kernel and so also stops QEMU, if poweroff fails). */
void sp_pid1_poweroff(void) __attribute__((noreturn));

/* --- the reaper ---
 * PID 1 inherits every orphan in the guest and must reap them all; the
 * agent also needs the exit status of its own container processes. One
 * reaper thread does all waitpid() calls in the agent:
 *
 *  - sp_reaper_start() blocks SIGCHLD in the calling thread and starts the
 *    thread. Call it before creating any other thread, so that every
 *    thread inherits the blocked mask (only the reaper waits for it).
 *  - In a child after fork(), call sp_reaper_child_reset() before exec:
 *    children must not inherit the blocked SIGCHLD.
 *  - sp_reaper_watch(pid, fn, user): fn(user, pid, status) runs once, in
 *    the reaper thread, when pid exits (or at once, in the caller, if it
 *    exited already: recent unclaimed statuses are kept, so registering
 *    after fork() returns is not racy). fn must not block long.
 *  - sp_reaper_wait(pid, ...) blocks the caller instead.
 * Nothing else in the agent may call waitpid()/wait(): the reaper would
 * lose the race or steal the status. */
typedef void (*sp_reaper_fn)(void *user, pid_t pid, int status);

int sp_reaper_start(sp_err **err);
void sp_reaper_child_reset(void);
void sp_reaper_watch(pid_t pid, sp_reaper_fn fn, void *user);
/* Drops a watch (the status, when it comes, is kept as unclaimed). */
void sp_reaper_unwatch(pid_t pid);
/* Waits for pid's exit status; timeout_ns 0 = forever. SP_ERR_TIMEOUT if
 * the time runs out (pid stays watched by nobody). */
int sp_reaper_wait(pid_t pid, int *status, uint64_t timeout_ns, sp_err **err);
/* Stops the reaper thread (tests). */
void sp_reaper_stop(void);

#endif
