/* SPDX-License-Identifier: Apache-2.0 */
/* Safe file and process helpers. */
#ifndef SEALPOD_FILE_H
#define SEALPOD_FILE_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

/* Reads a whole file, refusing files larger than max bytes. The data is
 * NUL-terminated (not counted in *len). */
SP_PUBLIC int sp_read_file(uint8_t **out, size_t *len, const char *path,
			   size_t max, sp_err **err);
SP_PUBLIC int sp_read_fd(uint8_t **out, size_t *len, int fd, size_t max,
			 const char *what, sp_err **err);
/* Writes through a temporary file in the same directory and renames it
 * into place, so readers see the old or the new contents, never a part. */
SP_PUBLIC int sp_write_file_atomic(const char *path, const void *data,
				   size_t len, mode_t mode, sp_err **err);
SP_PUBLIC int sp_write_all(int fd, const void *data, size_t len);
/* Reads exactly len bytes; -1 with errno, or 0 at EOF before any byte
 * only when *got is 0 (got may be NULL). */
SP_PUBLIC ssize_t sp_read_all(int fd, void *data, size_t len);
SP_PUBLIC int sp_mkdir_p(const char *path, mode_t mode, sp_err **err);
/* Removes a tree without following symlinks or crossing mounts. */
SP_PUBLIC int sp_rm_rf(const char *path, sp_err **err);
/* A new directory under $TMPDIR (or /tmp) named prefix-XXXXXX. */
SP_PUBLIC int sp_mkdtemp(char **out, const char *prefix, sp_err **err);

/* Runs argv (argv[0] searched in PATH) and waits. Captures stdout into
 * *out (may be NULL to discard) up to max bytes; stderr is inherited.
 * Returns 0 if it exited 0, else an error naming the program. */
SP_PUBLIC int sp_run(char *const argv[], char **out, size_t max,
		     sp_err **err);
/* Waits for pid, retrying on EINTR; returns the raw wait status. */
SP_PUBLIC int sp_waitpid(pid_t pid, int *status, int flags);
/* Sets FD_CLOEXEC / O_NONBLOCK. */
SP_PUBLIC int sp_set_cloexec(int fd, bool on);
SP_PUBLIC int sp_set_nonblock(int fd, bool on);
/* Monotonic time in nanoseconds. */
SP_PUBLIC uint64_t sp_now_ns(void);

#endif
