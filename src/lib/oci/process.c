/* SPDX-License-Identifier: Apache-2.0 */
/* The container process's last steps, in the child: terminal, rlimits,
 * oom_score_adj, user and groups, capabilities, no_new_privs, seccomp,
 * execve. Errors are written into a caller's buffer because the child
 * reports them over the sync socket, not through sp_err. */
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>

#include "oci-internal.h"

int oci_msg(char *msg, size_t n, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int l = vsnprintf(msg, n, fmt, ap);
	va_end(ap);
	if (errnum && l >= 0 && (size_t)l < n)
		snprintf(msg + l, n - (size_t)l, ": %s", strerror(errnum));
	return -1;
}

static const struct {
	const char *name;
	int res;
} rlimits[] = {
	{"RLIMIT_AS", RLIMIT_AS},	      {"RLIMIT_CORE", RLIMIT_CORE},
	{"RLIMIT_CPU", RLIMIT_CPU},	      {"RLIMIT_DATA", RLIMIT_DATA},
	{"RLIMIT_FSIZE", RLIMIT_FSIZE},	      {"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", RLIMIT_NICE},	      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_NPROC", RLIMIT_NPROC},	      {"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

int oci_rlimit_from_name(const char *name)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(rlimits); i++)
		if (!strcmp(name, rlimits[i].name))
			return rlimits[i].res;
	return -1;
}

int oci_set_rlimits(const struct oci_process *p, char *msg, size_t n)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		struct rlimit rl = {p->rlimits[i].soft, p->rlimits[i].hard};
		if (setrlimit(p->rlimits[i].resource, &rl) < 0)
			return oci_msg(msg, n, errno, "process.rlimits[%zu]: setrlimit", i);
	}
	return 0;
}

int oci_child_open_terminal(struct oci_child_ctx *cx, const char *ptmx_path, char *msg,
			    size_t n)
{
	int master = open(ptmx_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		return oci_msg(msg, n, errno, "process.terminal: opening %s", ptmx_path);
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0) {
		close(master);
		return oci_msg(msg, n, errno, "process.terminal: unlocking the pty");
	}
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		close(master);
		return oci_msg(msg, n, errno, "process.terminal: opening the pty peer");
	}
	if (cx->proc->console_h || cx->proc->console_w) {
		struct winsize ws = {.ws_row = (unsigned short)cx->proc->console_h,
				     .ws_col = (unsigned short)cx->proc->console_w};
		ioctl(slave, TIOCSWINSZ, &ws);
	}
	/* Hand the master to whoever asked (runc's console socket). */
	char name[] = "/dev/ptmx";
	struct iovec iov = {name, sizeof(name)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &master, sizeof(int));
	ssize_t r = sendmsg(cx->console_sock, &mh, MSG_NOSIGNAL);
	int e = errno;
	close(master);
	if (r < 0) {
		close(slave);
		return oci_msg(msg, n, e, "console socket: sending the pty master");
	}
	cx->pty_slave = slave;
	return 0;
}

static bool executable(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

int oci_child_resolve_exe(struct oci_child_ctx *cx, char *msg, size_t n)
{
	const char *a0 = cx->proc->args[0];
	if (strchr(a0, '/')) {
		if (!executable(a0))
			return oci_msg(msg, n, errno ? errno : EACCES,
				       "process.args[0]: `%s` is not an executable file", a0);
		cx->exe = sp_xstrdup(a0);
		return 0;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = cx->proc->env; e && *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	_cleanup_free_ char *dup = sp_xstrdup(path);
	char *save;
	for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *c = sp_xasprintf("%s/%s", d[0] ? d : ".", a0);
		if (executable(c)) {
			cx->exe = sp_steal_ptr(&c);
			return 0;
		}
	}
	return oci_msg(msg, n, 0, "process.args[0]: executable `%s` not found in $PATH (%s)",
		       a0, path);
}

static int write_proc(const char *path, const char *val)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		return -1;
	return 0;
}

int oci_child_prepare_process(struct oci_child_ctx *cx, char *msg, size_t n)
{
	const struct oci_process *p = cx->proc;
	if (oci_set_rlimits(p, msg, n) < 0)
		return -1;
	if (p->oom_score_adj != OCI_UNSET) {
		char b[32];
		snprintf(b, sizeof(b), "%lld", (long long)p->oom_score_adj);
		if (write_proc("/proc/self/oom_score_adj", b) < 0)
			return oci_msg(msg, n, errno, "process.oomScoreAdj: writing %s", b);
	}
	if (p->apparmor && p->apparmor[0]) {
		char en[4] = "";
		_cleanup_close_ int fd = open("/sys/module/apparmor/parameters/enabled",
					      O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, en, 1) != 1 || en[0] != 'Y')
			return oci_msg(msg, n, 0,
				       "process.apparmorProfile: `%s` is set but AppArmor is not enabled here",
				       p->apparmor);
		_cleanup_free_ char *v = sp_xasprintf("exec %s", p->apparmor);
		if (write_proc("/proc/self/attr/apparmor/exec", v) < 0 &&
		    write_proc("/proc/self/attr/exec", v) < 0)
			return oci_msg(msg, n, errno, "process.apparmorProfile: setting `%s`",
				       p->apparmor);
	}
	if (chdir(p->cwd) < 0 && errno != EACCES)
		return oci_msg(msg, n, errno, "process.cwd: %s", p->cwd);
	return oci_child_resolve_exe(cx, msg, n);
}

static int setup_stdio(struct oci_child_ctx *cx, char *msg, size_t n)
{
	if (cx->pty_slave >= 0) {
		if (ioctl(cx->pty_slave, TIOCSCTTY, 0) < 0)
			return oci_msg(msg, n, errno, "process.terminal: making the pty the controlling terminal");
		for (int i = 0; i < 3; i++)
			if (dup2(cx->pty_slave, i) < 0)
				return oci_msg(msg, n, errno, "process.terminal: dup2");
		return 0;
	}
	return 0;
}

static char **with_home(char **env)
{
	size_t n = 0;
	for (char **e = env; e && *e; e++, n++)
		if (!strncmp(*e, "HOME=", 5))
			return env;
	char **out = sp_xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		out[i] = env[i];
	out[n] = "HOME=/";
	return out;
}

int oci_child_exec(struct oci_child_ctx *cx, char *msg, size_t n)
{
	const struct oci_process *p = cx->proc;
	if (setup_stdio(cx, msg, n) < 0)
		return -1;
	umask(p->umask != OCI_UNSET ? (mode_t)p->umask : 0022);
	/* Nothing of ours leaks into the container. Before seccomp, whose
	 * filter may not know close_range. */
	if (syscall(SYS_close_range, 3 + cx->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return oci_msg(msg, n, errno, "close_range");
	for (unsigned i = 0; i < cx->preserve_fds; i++)
		fcntl(3 + (int)i, F_SETFD, 0);
	if (!p->nnp && oci_seccomp_load(cx->bpf, msg, n) < 0)
		return -1;
	if (oci_caps_drop_bounding(&p->caps, msg, n) < 0)
		return -1;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return oci_msg(msg, n, errno, "process.capabilities: PR_SET_KEEPCAPS");
	_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");
	if (setgroups(p->n_gids, (const gid_t *)p->gids) < 0 && (p->n_gids || errno != EPERM))
		return oci_msg(msg, n, errno, "process.user.additionalGids: setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return oci_msg(msg, n, errno, "process.user.gid: setresgid(%u)", p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return oci_msg(msg, n, errno, "process.user.uid: setresuid(%u)", p->uid);
	if (chdir(p->cwd) < 0)
		return oci_msg(msg, n, errno, "process.cwd: %s", p->cwd);
	if (oci_caps_apply(&p->caps, msg, n) < 0)
		return -1;
	if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return oci_msg(msg, n, errno, "process.noNewPrivileges");
	if (cx->spec && cx->spec->has_personality && personality(cx->spec->personality) < 0)
		return oci_msg(msg, n, errno, "linux.personality");
	if (p->nnp && oci_seccomp_load(cx->bpf, msg, n) < 0)
		return -1;
	char *noenv[] = {NULL};
	execve(cx->exe, p->args, p->env ? with_home(p->env) : noenv);
	return oci_msg(msg, n, errno, "process.args[0]: exec %s", cx->exe);
}
