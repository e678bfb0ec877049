/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"

ssize_t sp_read_all(int fd, void *data, size_t len)
{
	uint8_t *p = data;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int sp_read_fd(uint8_t **out, size_t *len, int fd, size_t max,
	       const char *what, sp_err **err)
{
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	for (;;) {
		sp_buf_reserve(&b, 65536);
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sp_error_sys(err, errno, "read `%s`", what);
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > max)
			return sp_error(err, SP_ERR_LIMIT,
					"`%s` is larger than the limit of %zu bytes",
					what, max);
	}
	*out = sp_buf_steal(&b, len);
	return 0;
}

int sp_read_file(uint8_t **out, size_t *len, const char *path, size_t max,
		 sp_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "open `%s`", path);
	return sp_read_fd(out, len, fd, max, path, err);
}

int sp_write_file_atomic(const char *path, const void *data, size_t len,
			 mode_t mode, sp_err **err)
{
	_cleanup_free_ char *tmp = sp_xasprintf("%s.tmp.XXXXXX", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "create a temporary file for `%s`", path);
	if (fchmod(fd, mode) < 0 || sp_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		int e = errno;
		unlink(tmp);
		return sp_error_sys(err, e, "write `%s`", path);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return sp_error_sys(err, e, "rename into `%s`", path);
	}
	return 0;
}

int sp_mkdir_p(const char *path, mode_t mode, sp_err **err)
{
	_cleanup_free_ char *p = sp_xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return sp_error_sys(err, errno, "mkdir `%s`", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return sp_error_sys(err, errno, "mkdir `%s`", p);
	return 0;
}

static int rm_at(int dirfd, const char *name, dev_t dev, const char *top,
		 sp_err **err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return sp_error_sys(err, errno, "stat `%s` under `%s`", name, top);
	}
	if (S_ISDIR(st.st_mode)) {
		if (st.st_dev != dev)
			return sp_error(err, SP_ERR_STATE,
					"refusing to remove `%s` under `%s`: a mount point",
					name, top);
		int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return sp_error_sys(err, errno, "open `%s` under `%s`", name, top);
		DIR *d = fdopendir(fd);
		if (!d) {
			close(fd);
			return sp_error_sys(err, errno, "opendir `%s`", name);
		}
		struct dirent *de;
		int r = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r = rm_at(fd, de->d_name, dev, top, err);
			if (r < 0)
				break;
		}
		closedir(d);
		if (r < 0)
			return r;
		if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			return sp_error_sys(err, errno, "rmdir `%s` under `%s`", name, top);
		return 0;
	}
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		return sp_error_sys(err, errno, "unlink `%s` under `%s`", name, top);
	return 0;
}

int sp_rm_rf(const char *path, sp_err **err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return sp_error_sys(err, errno, "stat `%s`", path);
	}
	return rm_at(AT_FDCWD, path, st.st_dev, path, err);
}

int sp_mkdtemp(char **out, const char *prefix, sp_err **err)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp)
		tmp = "/tmp";
	char *p = sp_xasprintf("%s/%s-XXXXXX", tmp, prefix);
	if (!mkdtemp(p)) {
		int e = errno;
		free(p);
		return sp_error_sys(err, e, "create a temporary directory in `%s`", tmp);
	}
	*out = p;
	return 0;
}

int sp_waitpid(pid_t pid, int *status, int flags)
{
	for (;;) {
		pid_t r = waitpid(pid, status, flags);
		if (r < 0 && errno == EINTR)
			continue;
		return (int)r;
	}
}

int sp_run(char *const argv[], char **out, size_t max, sp_err **err)
{
	int pfd[2] = {-1, -1};
	if (out && pipe2(pfd, O_CLOEXEC) < 0)
		return sp_error_sys(err, errno, "pipe for `%s`", argv[0]);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		if (out) {
			close(pfd[0]);
			close(pfd[1]);
		}
		return sp_error_sys(err, e, "fork for `%s`", argv[0]);
	}
	if (pid == 0) {
		if (out && dup2(pfd[1], STDOUT_FILENO) < 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	int r = 0;
	if (out) {
		close(pfd[1]);
		uint8_t *data = NULL;
		size_t len;
		r = sp_read_fd(&data, &len, pfd[0], max, argv[0], err);
		close(pfd[0]);
		if (r == 0)
			*out = (char *)data;
	}
	int status;
	if (sp_waitpid(pid, &status, 0) < 0)
		return sp_error_sys(err, errno, "wait for `%s`", argv[0]);
	if (r < 0) {
		if (out && *out) {
			free(*out);
			*out = NULL;
		}
		return r;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (out) {
		free(*out);
		*out = NULL;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return sp_error(err, SP_ERR_NOT_FOUND, "could not run `%s`", argv[0]);
	if (WIFEXITED(status))
		return sp_error(err, SP_ERR_SYSTEM, "`%s` exited with status %d",
				argv[0], WEXITSTATUS(status));
	return sp_error(err, SP_ERR_SYSTEM, "`%s` killed by signal %d", argv[0],
			WTERMSIG(status));
}

int sp_set_cloexec(int fd, bool on)
{
	int f = fcntl(fd, F_GETFD);
	if (f < 0)
		return -1;
	f = on ? (f | FD_CLOEXEC) : (f & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, f);
}

int sp_set_nonblock(int fd, bool on)
{
	int f = fcntl(fd, F_GETFL);
	if (f < 0)
		return -1;
	f = on ? (f | O_NONBLOCK) : (f & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, f);
}

uint64_t sp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
