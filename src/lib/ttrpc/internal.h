/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the ttRPC server and client (not public). */
#ifndef SP_TTRPC_INTERNAL_H
#define SP_TTRPC_INTERNAL_H

#include <sys/types.h>

#include "sealpod/ttrpc.h"

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sp_ttrpc_now_ns(void);
/* now + timeout, saturating; 0 stays 0 (no deadline). */
uint64_t sp_ttrpc_deadline(uint64_t timeout_ns);
/* Milliseconds left until deadline for poll(): -1 without a deadline. */
int sp_ttrpc_poll_ms(uint64_t deadline_ns);

/* write() that never raises SIGPIPE on sockets. */
ssize_t sp_ttrpc_write(int fd, const void *buf, size_t n);
/* Writes all of buf, waiting for the fd to be writable (nonblocking fds
 * too) until deadline_ns (0 = none). */
int sp_ttrpc_write_all(int fd, const uint8_t *buf, size_t n,
		       uint64_t deadline_ns, sp_err **err);

/* SO_PEERCRED; pid -1 and uid/gid -1 when unavailable (not a unix socket). */
void sp_ttrpc_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/* Opens a "serial:" path: connects if it is a unix socket (the host end of
 * a QEMU chardev), else opens the character device read-write. */
int sp_ttrpc_open_serial(int *out_fd, const char *path, uint64_t timeout_ns,
			 sp_err **err);

#endif
