/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod run --detach`: the process that runs the pod (the supervisor,
 * owner of the sandbox and of QEMU, exactly as a foreground run) moves
 * into its own session with its output in the pod's state directory. The
 * caller waits on a pipe: progress lines come through it, then one ACK
 * byte once the containers run; EOF without it means the run failed, and
 * the supervisor's exit status says how. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/file.h"

#define ACK '\x06'

static int ready_fd = -1;

void run_detach_ready(void)
{
	int fd = ready_fd;
	if (fd < 0)
		return;
	run_report_fd = -1;
	ready_fd = -1;
	char a = ACK;
	if (write(fd, &a, 1) < 0) {
		/* The caller is gone; the pod runs on regardless. */
	}
	close(fd);
}

static int parent(int rfd, pid_t child, const char *name)
{
	bool ok = false;
	char buf[4096];
	for (;;) {
		ssize_t n = read(rfd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf[n - 1] == ACK) {
			ok = true;
			n--;
		}
		if (n > 0 && fwrite(buf, 1, (size_t)n, stderr) != (size_t)n)
			break;
	}
	close(rfd);
	if (ok) {
		printf("%s\n", name);
		fflush(stdout);
		exit(0);
	}
	int st = 0;
	if (sp_waitpid(child, &st, 0) < 0)
		exit(1);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	exit(rc ? rc : 1);
}

int run_detach(struct run_state *st, sp_err **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return sp_error_sys(err, errno, "pipe");
	_cleanup_free_ char *log = sp_xasprintf("%s/supervisor.log", st->dir);
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return sp_error_sys(err, e, "open %s", log);
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		close(logfd);
		return sp_error_sys(err, e, "fork");
	}
	if (pid > 0) {
		close(p[1]);
		close(logfd);
		/* The child holds the pod's lock (the same open file) now. */
		parent(p[0], pid, st->name);
	}
	close(p[0]);
	setsid();
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(1);
	close(devnull);
	close(logfd);
	st->pid = getpid();
	ready_fd = p[1];
	run_report_fd = p[1];
	return 0;
}
