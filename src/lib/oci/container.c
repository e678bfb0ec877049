/* SPDX-License-Identifier: Apache-2.0 */
/* The lifecycle: create (namespaces, cgroup, rootfs, init waiting on the
 * exec fifo), start, exec, kill, wait, delete.
 *
 * Process shape. The caller forks "stage 1", which joins the namespaces
 * given by path and unshares the new ones (asking the caller to write the
 * uid/gid maps), then clones "stage 2" with CLONE_PARENT so that stage 2
 * (the container's init, or an exec'd process) is the caller's own child
 * in the new PID namespace, and exits. Both talk to the caller over one
 * SOCK_SEQPACKET socket with fixed-size messages. */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "oci-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/log.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x80
#endif

enum {
	MSG_ERROR = 1,	/* child -> parent: text */
	MSG_IDMAP,	/* stage1 -> parent: write my uid/gid maps */
	MSG_GO,		/* parent -> child: continue (val: stage2's pid) */
	MSG_PID,	/* stage1 -> parent: stage2's pid */
	MSG_HOOKS,	/* init -> parent: run prestart/createRuntime */
	MSG_READY,	/* init -> parent: set up, waiting for start */
};

struct sync_msg {
	int type;
	int val;
	char text[2048];
};

static int send_msg(int fd, int type, int val, const char *text)
{
	struct sync_msg m = {.type = type, .val = val};
	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	return send(fd, &m, sizeof(m), MSG_NOSIGNAL) == sizeof(m) ? 0 : -1;
}

/* 0 on a message, 1 at EOF, -1 on error. */
static int recv_msg(int fd, struct sync_msg *m)
{
	ssize_t r;
	do
		r = recv(fd, m, sizeof(*m), 0);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 1;
	if (r != sizeof(*m))
		return -1;
	m->text[sizeof(m->text) - 1] = 0;
	return 0;
}

/* In a child: report and leave. */
__attribute__((noreturn)) static void child_fail(int sock, const char *msg)
{
	if (send_msg(sock, MSG_ERROR, 0, msg) < 0)
		dprintf(2, "sealpod: %s\n", msg);
	_exit(1);
}

static bool wait_go(int sock, int *val)
{
	struct sync_msg m;
	if (recv_msg(sock, &m) != 0 || m.type != MSG_GO)
		return false;
	if (val)
		*val = m.val;
	return true;
}

/* Moves an fd at or above min so that it can't collide with the stdio or
 * preserved fds the child sets up. */
static int fd_above(int fd, int min)
{
	if (fd < 0 || fd >= min)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, min);
	close(fd);
	return n;
}

struct ns_join {
	int type;
	int fd;
};

static const char *const ns_files[][2] = {
	{"user", "user"}, {"cgroup", "cgroup"}, {"ipc", "ipc"}, {"uts", "uts"},
	{"network", "net"}, {"pid", "pid"},	{"time", "time"}, {"mount", "mnt"},
};

static int ns_type(const char *name)
{
	static const int t[] = {CLONE_NEWUSER, CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWUTS,
				CLONE_NEWNET,  CLONE_NEWPID,	CLONE_NEWTIME, CLONE_NEWNS};
	for (size_t i = 0; i < SP_ARRAY_LEN(t); i++)
		if (!strcmp(ns_files[i][0], name))
			return t[i];
	return 0;
}

/* Stage 1: join, unshare, clone stage 2. Never returns in stage 1. */
static pid_t stage1(int sock, const struct ns_join *joins, size_t n_joins, int unshare_flags,
		    const struct oci_spec *s)
{
	char msg[1024];
	if (!wait_go(sock, NULL))
		_exit(1);
	/* The user namespace first: it owns the others. */
	for (size_t i = 0; i < n_joins; i++)
		if (joins[i].type == CLONE_NEWUSER && setns(joins[i].fd, CLONE_NEWUSER) < 0) {
			oci_msg(msg, sizeof(msg), errno, "linux.namespaces: joining the user namespace");
			child_fail(sock, msg);
		}
	for (size_t i = 0; i < n_joins; i++)
		if (joins[i].type != CLONE_NEWUSER && setns(joins[i].fd, joins[i].type) < 0) {
			oci_msg(msg, sizeof(msg), errno, "linux.namespaces: joining the %s namespace",
				oci_ns_name(joins[i].type));
			child_fail(sock, msg);
		}
	if (unshare_flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0) {
			oci_msg(msg, sizeof(msg), errno, "linux.namespaces: creating a user namespace");
			child_fail(sock, msg);
		}
		if (send_msg(sock, MSG_IDMAP, 0, NULL) < 0 || !wait_go(sock, NULL))
			_exit(1);
		if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
			oci_msg(msg, sizeof(msg), errno,
				"linux.uidMappings: becoming root in the user namespace (map container id 0)");
			child_fail(sock, msg);
		}
	}
	int rest = unshare_flags & ~CLONE_NEWUSER;
	if (rest && unshare(rest) < 0) {
		oci_msg(msg, sizeof(msg), errno, "linux.namespaces: unshare");
		child_fail(sock, msg);
	}
	if (s && s->has_time_offsets) {
		char b[128];
		snprintf(b, sizeof(b), "monotonic %lld %lld\nboottime %lld %lld\n",
			 (long long)s->time_offsets[0][0], (long long)s->time_offsets[0][1],
			 (long long)s->time_offsets[1][0], (long long)s->time_offsets[1][1]);
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, b, strlen(b)) < 0) {
			oci_msg(msg, sizeof(msg), errno, "linux.timeOffsets");
			child_fail(sock, msg);
		}
		close(fd);
	}
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0) {
		oci_msg(msg, sizeof(msg), errno, "clone");
		child_fail(sock, msg);
	}
	if (pid == 0)
		return 0;
	send_msg(sock, MSG_PID, pid, NULL);
	_exit(0);
}

static int write_idmap(pid_t pid, const char *file, const struct oci_idmap *m, size_t n,
		       const char *field, sp_err **err)
{
	sp_buf b = SP_BUF_INIT;
	for (size_t i = 0; i < n; i++)
		sp_buf_printf(&b, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
	_cleanup_free_ char *p = sp_xasprintf("/proc/%d/%s", pid, file);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
	int r = fd < 0 ? -1 : (int)write(fd, b.data, b.len);
	int e = errno;
	sp_buf_free(&b);
	if (r < 0)
		return sp_error_sys(err, e, "%s: writing %s", field, p);
	return 0;
}

static void reap(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		sp_waitpid(pid, NULL, 0);
	}
}

static int connect_console(const sp_container_opts *o, sp_err **err)
{
	if (o && o->console_fd >= 0 && !o->console_socket)
		return fcntl(o->console_fd, F_DUPFD_CLOEXEC, 3);
	if (!o || !o->console_socket)
		return sp_error(err, SP_ERR_INVALID,
				"process.terminal is true: give a console socket (--console-socket)");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(o->console_socket) >= sizeof(a.sun_path))
		return sp_error(err, SP_ERR_INVALID, "--console-socket %s: path too long",
				o->console_socket);
	strcpy(a.sun_path, o->console_socket);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return sp_error_sys(err, e, "--console-socket %s", o->console_socket);
	}
	return fd;
}

static void setup_child_stdio(const sp_stdio *io)
{
	if (!io)
		return; /* inherit the caller's */
	int fds[3] = {io->in, io->out, io->err};
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* First move them out of the way, then into place. */
	for (int i = 0; i < 3; i++)
		fds[i] = fcntl(fds[i] >= 0 ? fds[i] : nul, F_DUPFD_CLOEXEC, 10);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			dup2(fds[i], i);
}

struct init_args {
	const struct oci_spec *spec;
	const sp_container *c;
	struct oci_child_ctx cx;
	int sock, fifo;
	const char *bundle;
	bool new_mntns, need_hooks;
};

static void run_child_hooks(int sock, const struct oci_hook *h, size_t n, const char *kind,
			    const sp_container *c, const char *status)
{
	if (!n)
		return;
	_cleanup_free_ char *st = oci_state_json(c, status);
	_cleanup_err_ sp_err *e = NULL;
	if (oci_hooks_run(h, n, kind, st, &e) < 0)
		child_fail(sock, sp_err_msg(e));
}

/* Stage 2 of create: the container's init. Never returns. */
__attribute__((noreturn)) static void init_main(struct init_args *a)
{
	char msg[1024];
	const struct oci_spec *s = a->spec;
	int hostpid;
	if (!wait_go(a->sock, &hostpid))
		_exit(1);
	((sp_container *)a->c)->pid = hostpid;
	if (setsid() < 0) {
		oci_msg(msg, sizeof(msg), errno, "setsid");
		child_fail(a->sock, msg);
	}
	if (!s->process.terminal)
		setup_child_stdio(a->cx.stdio[0] == -2 ? NULL : &(sp_stdio){a->cx.stdio[0], a->cx.stdio[1], a->cx.stdio[2]});
	umask(0);
	if (a->new_mntns) {
		if (oci_rootfs_prepare(s, a->cx.rootfs, &a->cx, msg, sizeof(msg)) < 0)
			child_fail(a->sock, msg);
	} else if (s->process.terminal &&
		   oci_child_open_terminal(&a->cx, "/dev/ptmx", msg, sizeof(msg)) < 0) {
		child_fail(a->sock, msg);
	}
	if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) {
		oci_msg(msg, sizeof(msg), errno, "hostname");
		child_fail(a->sock, msg);
	}
	if (s->domainname && setdomainname(s->domainname, strlen(s->domainname)) < 0) {
		oci_msg(msg, sizeof(msg), errno, "domainname");
		child_fail(a->sock, msg);
	}
	if (a->need_hooks) {
		if (send_msg(a->sock, MSG_HOOKS, 0, NULL) < 0 || !wait_go(a->sock, NULL))
			_exit(1);
	}
	run_child_hooks(a->sock, s->hooks.create_container, s->hooks.n_create_container,
			"createContainer", a->c, "creating");
	if (a->new_mntns) {
		if (oci_rootfs_pivot(s, a->cx.rootfs, msg, sizeof(msg)) < 0)
			child_fail(a->sock, msg);
	} else if (chroot(a->cx.rootfs) < 0 || chdir("/") < 0) {
		oci_msg(msg, sizeof(msg), errno, "root.path: chroot %s", a->cx.rootfs);
		child_fail(a->sock, msg);
	}
	if (oci_rootfs_finish(s, msg, sizeof(msg)) < 0)
		child_fail(a->sock, msg);
	if (oci_child_prepare_process(&a->cx, msg, sizeof(msg)) < 0)
		child_fail(a->sock, msg);
	if (send_msg(a->sock, MSG_READY, 0, NULL) < 0)
		_exit(1);
	/* Wait for start: a byte through the exec fifo (held O_RDWR so the
	 * read blocks until `start` writes). */
	char byte;
	ssize_t r;
	do
		r = read(a->fifo, &byte, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		_exit(1);
	close(a->fifo);
	close(a->sock);
	a->sock = 2;
	{
		_cleanup_free_ char *st = oci_state_json(a->c, "running");
		_cleanup_err_ sp_err *e = NULL;
		if (oci_hooks_run(s->hooks.start_container, s->hooks.n_start_container,
				  "startContainer", st, &e) < 0) {
			dprintf(2, "sealpod: %s\n", sp_err_msg(e));
			_exit(127);
		}
	}
	oci_child_exec(&a->cx, msg, sizeof(msg));
	dprintf(2, "sealpod: %s\n", msg);
	_exit(127);
}

static char *abs_path(const char *base, const char *p)
{
	if (p[0] == '/')
		return sp_xstrdup(p);
	return sp_xasprintf("%s/%s", base ? base : ".", p);
}

static int fail_create(sp_container *c, pid_t s1, pid_t init, int code)
{
	reap(init);
	reap(s1);
	oci_cgroup_destroy(&c->cg, NULL);
	if (c->dir)
		sp_rm_rf(c->dir, NULL);
	sp_container_free(c);
	return code;
}

static int child_error(sp_err **err, const struct sync_msg *m, int rc, pid_t pid,
		       const char *what)
{
	if (rc == 0 && m->type == MSG_ERROR)
		return sp_error(err, SP_ERR_SYSTEM, "%s", m->text);
	int st = 0;
	if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid)
		return sp_error(err, SP_ERR_SYSTEM, "%s: the child exited (status 0x%x) during setup",
				what, st);
	return sp_error(err, SP_ERR_PROTOCOL, "%s: unexpected end of the setup conversation", what);
}

int sp_container_create(sp_container **out, const char *id, const char *spec_json,
			size_t spec_len, const char *rootfs, const sp_stdio *stdio,
			const sp_container_opts *opts, sp_err **err)
{
	if (!opts || opts->version != SP_CONTAINER_OPTS_VERSION || !opts->state_root)
		return sp_error(err, SP_ERR_INVALID,
				"sp_container_create: opts with a state_root and SP_CONTAINER_OPTS_VERSION are required");
	if (!oci_id_valid(id))
		return sp_error(err, SP_ERR_INVALID,
				"container id `%s`: use 1-1024 letters, digits, `-`, `_`, `.`, `+`", id);
	struct oci_spec *s;
	if (oci_spec_parse(&s, spec_json, spec_len, err) < 0)
		return (*err)->code;
	if (!s->has_process) {
		oci_spec_free(s);
		return sp_error(err, SP_ERR_PARSE, "process: missing; name the program to run");
	}
	sp_container *c = sp_xzalloc(sizeof(*c));
	c->exit_status = -1;
	c->spec = s;
	c->id = sp_xstrdup(id);
	c->bundle = opts->bundle ? realpath(opts->bundle, NULL) : NULL;
	if (opts->bundle && !c->bundle) {
		sp_error_sys(err, errno, "bundle %s", opts->bundle);
		return fail_create(c, 0, 0, (*err)->code);
	}
	if (!rootfs && !s->root_path) {
		sp_error(err, SP_ERR_PARSE, "root.path: missing and no rootfs given");
		return fail_create(c, 0, 0, (*err)->code);
	}
	_cleanup_free_ char *rp = abs_path(c->bundle, rootfs ? rootfs : s->root_path);
	c->rootfs = realpath(rp, NULL);
	struct stat rst;
	if (!c->rootfs || stat(c->rootfs, &rst) < 0 || !S_ISDIR(rst.st_mode)) {
		sp_error_sys(err, c->rootfs ? ENOTDIR : errno, "root.path: %s", rp);
		return fail_create(c, 0, 0, (*err)->code);
	}
	if (sp_mkdir_p(opts->state_root, 0700, err) < 0)
		return fail_create(c, 0, 0, sp_error_wrap(err, "--root"));
	_cleanup_free_ char *dir = sp_xasprintf("%s/%s", opts->state_root, id);
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			sp_error(err, SP_ERR_EXISTS, "container `%s` already exists (in %s)", id,
				 opts->state_root);
		else
			sp_error_sys(err, errno, "state directory %s", dir);
		return fail_create(c, 0, 0, (*err)->code);
	}
	c->dir = sp_steal_ptr(&dir);
	c->created = oci_now_rfc3339();
	/* Relative bind sources are relative to the bundle. */
	for (size_t i = 0; i < s->n_mounts; i++)
		if (s->mounts[i].bind && s->mounts[i].source[0] != '/') {
			char *a = abs_path(c->bundle, s->mounts[i].source);
			free(s->mounts[i].source);
			s->mounts[i].source = a;
		}
	_cleanup_free_ char *cfgp = sp_xasprintf("%s/config.json", c->dir);
	if (sp_write_file_atomic(cfgp, spec_json, spec_len, 0600, err) < 0)
		return fail_create(c, 0, 0, (*err)->code);

	if (oci_cgroup_setup(&c->cg, s->cgroups_path, id, err) < 0 ||
	    oci_cgroup_apply(&c->cg, s, NULL, err) < 0)
		return fail_create(c, 0, 0, (*err)->code);

	struct oci_bpf bpf = {0};
	if (s->seccomp && oci_seccomp_compile(&bpf, s->seccomp, err) < 0)
		return fail_create(c, 0, 0, (*err)->code);

	int minfd = 3 + (int)opts->preserve_fds;
	_cleanup_close_ int console = -1;
	if (s->process.terminal) {
		console = fd_above(connect_console(opts, err), minfd);
		if (console < 0) {
			oci_bpf_clear(&bpf);
			return fail_create(c, 0, 0, err && *err ? (*err)->code : SP_ERR_SYSTEM);
		}
	}
	_cleanup_free_ char *fifo_path = sp_xasprintf("%s/exec.fifo", c->dir);
	_cleanup_close_ int fifo = -1;
	if (mkfifo(fifo_path, 0600) < 0 ||
	    (fifo = fd_above(open(fifo_path, O_RDWR | O_CLOEXEC), minfd)) < 0) {
		oci_bpf_clear(&bpf);
		sp_error_sys(err, errno, "exec fifo %s", fifo_path);
		return fail_create(c, 0, 0, (*err)->code);
	}

	/* Namespaces: open the ones to join now, so stage 1 needs no paths. */
	struct ns_join joins[8];
	size_t n_joins = 0;
	int unshare_flags = 0;
	for (size_t i = 0; i < s->n_ns; i++) {
		if (!s->ns[i].path) {
			unshare_flags |= s->ns[i].type;
			continue;
		}
		int fd = fd_above(open(s->ns[i].path, O_RDONLY | O_CLOEXEC), minfd);
		if (fd < 0) {
			sp_error_sys(err, errno, "linux.namespaces[%zu].path: %s", i, s->ns[i].path);
			for (size_t k = 0; k < n_joins; k++)
				close(joins[k].fd);
			oci_bpf_clear(&bpf);
			return fail_create(c, 0, 0, (*err)->code);
		}
		joins[n_joins++] = (struct ns_join){s->ns[i].type, fd};
	}
	c->own_pidns = (unshare_flags & CLONE_NEWPID) != 0;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		sp_error_sys(err, errno, "socketpair");
		for (size_t k = 0; k < n_joins; k++)
			close(joins[k].fd);
		oci_bpf_clear(&bpf);
		return fail_create(c, 0, 0, (*err)->code);
	}
	sv[0] = fd_above(sv[0], minfd);
	sv[1] = fd_above(sv[1], minfd);

	struct init_args a = {
		.spec = s,
		.c = c,
		.sock = sv[1],
		.fifo = fifo,
		.bundle = c->bundle,
		.new_mntns = (unshare_flags & CLONE_NEWNS) || oci_spec_has_ns(s, CLONE_NEWNS, NULL),
		.need_hooks = s->hooks.n_prestart || s->hooks.n_create_runtime,
		.cx = {.spec = s, .proc = &s->process, .bpf = &bpf, .cg = &c->cg,
		       .rootfs = c->rootfs, .console_sock = console, .pty_slave = -1,
		       .in_userns = oci_spec_has_ns(s, CLONE_NEWUSER, NULL), .is_init = true,
		       .preserve_fds = opts->preserve_fds},
	};
	a.cx.stdio[0] = stdio ? stdio->in : -2;
	a.cx.stdio[1] = stdio ? stdio->out : -2;
	a.cx.stdio[2] = stdio ? stdio->err : -2;

	pid_t s1 = fork();
	if (s1 == 0) {
		close(sv[0]);
		if (stage1(sv[1], joins, n_joins, unshare_flags, s) == 0)
			init_main(&a);
		_exit(1);
	}
	int e = errno;
	close(sv[1]);
	for (size_t k = 0; k < n_joins; k++)
		close(joins[k].fd);
	oci_bpf_clear(&bpf);
	_cleanup_close_ int sock = sv[0];
	if (s1 < 0) {
		sp_error_sys(err, e, "fork");
		return fail_create(c, 0, 0, (*err)->code);
	}
	pid_t init = 0;
	if (oci_cgroup_enter(&c->cg, s1, err) < 0 || send_msg(sock, MSG_GO, 0, NULL) < 0)
		return fail_create(c, s1, 0, err && *err ? (*err)->code : SP_ERR_SYSTEM);
	for (;;) {
		struct sync_msg m;
		int rc = recv_msg(sock, &m);
		if (rc != 0 || m.type == MSG_ERROR) {
			child_error(err, &m, rc, init ? init : s1, "create");
			return fail_create(c, s1, init, (*err)->code);
		}
		if (m.type == MSG_IDMAP) {
			if (write_idmap(s1, "uid_map", s->uid_map, s->n_uid_map, "linux.uidMappings", err) < 0 ||
			    write_idmap(s1, "gid_map", s->gid_map, s->n_gid_map, "linux.gidMappings", err) < 0)
				return fail_create(c, s1, init, (*err)->code);
			send_msg(sock, MSG_GO, 0, NULL);
		} else if (m.type == MSG_PID) {
			init = m.val;
			c->pid = init;
			sp_waitpid(s1, NULL, 0);
			s1 = 0;
			if (oci_proc_start_time(init, &c->start_time) < 0) {
				sp_error(err, SP_ERR_SYSTEM, "create: the container init died at once");
				return fail_create(c, 0, init, (*err)->code);
			}
			send_msg(sock, MSG_GO, init, NULL);
		} else if (m.type == MSG_HOOKS) {
			_cleanup_free_ char *st = oci_state_json(c, "creating");
			if (oci_hooks_run(s->hooks.prestart, s->hooks.n_prestart, "prestart", st, err) < 0 ||
			    oci_hooks_run(s->hooks.create_runtime, s->hooks.n_create_runtime,
					  "createRuntime", st, err) < 0)
				return fail_create(c, 0, init, (*err)->code);
			send_msg(sock, MSG_GO, 0, NULL);
		} else if (m.type == MSG_READY) {
			break;
		} else {
			sp_error(err, SP_ERR_PROTOCOL, "create: unexpected message %d", m.type);
			return fail_create(c, s1, init, (*err)->code);
		}
	}
	if (oci_state_save(c, err) < 0)
		return fail_create(c, 0, init, (*err)->code);
	*out = c;
	return 0;
}

int sp_container_load(sp_container **out, const char *root, const char *id, sp_err **err)
{
	return oci_state_load(out, root, id, err);
}

static bool alive(sp_container *c)
{
	uint64_t st;
	if (c->pid <= 0 || oci_proc_start_time(c->pid, &st) < 0)
		return false;
	return st == c->start_time;
}

sp_container_status sp_container_status_get(sp_container *c)
{
	if (!alive(c))
		return SP_CONTAINER_STOPPED;
	if (oci_cgroup_frozen(&c->cg))
		return SP_CONTAINER_PAUSED;
	_cleanup_free_ char *fifo = sp_xasprintf("%s/exec.fifo", c->dir);
	return access(fifo, F_OK) == 0 ? SP_CONTAINER_CREATED : SP_CONTAINER_RUNNING;
}

const char *sp_container_status_name(sp_container_status s)
{
	static const char *names[] = {"creating", "created", "running", "stopped", "paused"};
	return (unsigned)s < SP_ARRAY_LEN(names) ? names[s] : "unknown";
}

char *sp_container_state_json(sp_container *c)
{
	return oci_state_json(c, sp_container_status_name(sp_container_status_get(c)));
}

pid_t sp_container_pid(const sp_container *c)
{
	return c->pid;
}

const char *sp_container_id(const sp_container *c)
{
	return c->id;
}

int sp_container_start(sp_container *c, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/exec.fifo", c->dir);
	if (sp_container_status_get(c) != SP_CONTAINER_CREATED)
		return sp_error(err, SP_ERR_STATE, "container `%s` is %s; only a created container starts",
				c->id, sp_container_status_name(sp_container_status_get(c)));
	_cleanup_close_ int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return sp_error_sys(err, errno, "container `%s`: opening the exec fifo", c->id);
	if (unlink(path) < 0)
		return sp_error_sys(err, errno, "container `%s`: the exec fifo", c->id);
	if (write(fd, "0", 1) != 1)
		return sp_error_sys(err, errno, "container `%s`: starting the init", c->id);
	_cleanup_free_ char *st = oci_state_json(c, "running");
	_cleanup_err_ sp_err *he = NULL;
	if (oci_hooks_run(c->spec->hooks.poststart, c->spec->hooks.n_poststart, "poststart", st,
			  &he) < 0) {
		/* The spec: a failing poststart hook is logged, the container
		 * keeps running... but runc stops it; follow runc. */
		sp_container_kill(c, SIGKILL, false, NULL);
		return sp_error(err, SP_ERR_SYSTEM, "%s", sp_err_msg(he));
	}
	return 0;
}

int sp_container_kill(sp_container *c, int sig, bool all, sp_err **err)
{
	if (sig < 0 || sig > 64)
		return sp_error(err, SP_ERR_INVALID, "signal %d is not a signal", sig);
	if (all) {
		_cleanup_free_ pid_t *pids = NULL;
		size_t n;
		if (oci_cgroup_pids(&c->cg, &pids, &n, err) < 0)
			return (*err)->code;
		for (size_t i = 0; i < n; i++)
			kill(pids[i], sig);
		if (n)
			return 0;
	}
	if (!alive(c))
		return sp_error(err, SP_ERR_STATE, "container `%s` is not running", c->id);
	if (kill(c->pid, sig) < 0)
		return sp_error_sys(err, errno, "container `%s`: kill %d", c->id, c->pid);
	return 0;
}

int sp_container_wait(sp_container *c, int *exit_code, sp_err **err)
{
	int st;
	if (c->exit_status < 0) {
		if (sp_waitpid(c->pid, &st, 0) < 0)
			return sp_error_sys(err, errno, "container `%s`: waiting for pid %d", c->id, c->pid);
		c->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	*exit_code = c->exit_status;
	return 0;
}

int sp_container_delete(sp_container *c, bool force, sp_err **err)
{
	sp_container_status st = sp_container_status_get(c);
	/* The runtime spec: deleting a container that isn't stopped is an
	 * error (runc also deletes created ones; containerd uses --force). */
	if (st != SP_CONTAINER_STOPPED && !force)
		return sp_error(err, SP_ERR_STATE,
				"container `%s` is %s; stop it first or delete with --force", c->id,
				sp_container_status_name(st));
	if (st != SP_CONTAINER_STOPPED) {
		kill(c->pid, SIGKILL);
		/* v1 frozen tasks die only once thawed. */
		if (st == SP_CONTAINER_PAUSED)
			oci_cgroup_freeze(&c->cg, false, NULL);
		/* Ours to reap, or someone else's: wait until it's gone. */
		for (int i = 0; i < 2000 && alive(c); i++) {
			if (waitpid(c->pid, NULL, WNOHANG) == c->pid)
				break;
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		}
	}
	/* Processes left in the cgroup (a shared PID namespace). */
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	if (oci_cgroup_pids(&c->cg, &pids, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
	int rc = oci_cgroup_destroy(&c->cg, err);
	_cleanup_free_ char *state = oci_state_json(c, "stopped");
	_cleanup_err_ sp_err *he = NULL;
	if (oci_hooks_run(c->spec->hooks.poststop, c->spec->hooks.n_poststop, "poststop", state,
			  &he) < 0)
		sp_log_warn("container `%s`: %s", c->id, sp_err_msg(he));
	if (sp_rm_rf(c->dir, rc < 0 ? NULL : err) < 0 && rc == 0)
		rc = (*err)->code;
	return rc;
}

void sp_container_free(sp_container *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->dir);
	free(c->bundle);
	free(c->rootfs);
	free(c->created);
	oci_spec_free(c->spec);
	oci_cgroup_clear(&c->cg);
	free(c);
}

int sp_container_stats_get(sp_container *c, sp_container_stats *st, sp_err **err)
{
	return oci_cgroup_stats(&c->cg, st, err);
}

int sp_container_update(sp_container *c, const char *resources_json, size_t len,
			sp_err **err)
{
	/* Parsed by the spec parser inside a minimal config, so every
	 * check and error path (linux.resources.*) is the create's. */
	_cleanup_json_ json_t *res = NULL;
	if (sp_json_parse(&res, resources_json, len, "linux.resources", err) < 0)
		return (*err)->code;
	if (!json_is_object(res))
		return sp_error(err, SP_ERR_PARSE, "linux.resources: expected an object");
	_cleanup_json_ json_t *doc = json_pack("{s:s, s:{s:O}}", "ociVersion", "1.0.2",
					       "linux", "resources", res);
	_cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
	if (!doc || !text)
		sp_oom();
	struct oci_spec *s;
	if (oci_spec_parse(&s, text, strlen(text), err) < 0)
		return (*err)->code;
	int rc = oci_cgroup_apply(&c->cg, s, c->spec, err);
	oci_spec_free(s);
	return rc < 0 ? rc : 0;
}

int sp_container_pause(sp_container *c, sp_err **err)
{
	sp_container_status st = sp_container_status_get(c);
	if (st != SP_CONTAINER_RUNNING && st != SP_CONTAINER_CREATED)
		return sp_error(err, SP_ERR_STATE,
				"container `%s` is %s; only a created or running container pauses",
				c->id, sp_container_status_name(st));
	return oci_cgroup_freeze(&c->cg, true, err);
}

int sp_container_resume(sp_container *c, sp_err **err)
{
	sp_container_status st = sp_container_status_get(c);
	if (st != SP_CONTAINER_PAUSED)
		return sp_error(err, SP_ERR_STATE, "container `%s` is %s, not paused", c->id,
				sp_container_status_name(st));
	return oci_cgroup_freeze(&c->cg, false, err);
}

int sp_container_pids(sp_container *c, pid_t **out, size_t *n, sp_err **err)
{
	return oci_cgroup_pids(&c->cg, out, n, err);
}

/* exec: stage 2 runs this. Never returns. */
__attribute__((noreturn)) static void exec_main(int sock, struct oci_child_ctx *cx,
						 const sp_stdio *stdio)
{
	char msg[1024];
	if (!wait_go(sock, NULL))
		_exit(1);
	if (cx->proc->terminal) {
		if (setsid() < 0 || oci_child_open_terminal(cx, "/dev/ptmx", msg, sizeof(msg)) < 0)
			child_fail(sock, msg);
	} else {
		setup_child_stdio(stdio);
	}
	if (oci_child_prepare_process(cx, msg, sizeof(msg)) < 0)
		child_fail(sock, msg);
	/* Success is the socket closing at execve (it is close-on-exec). */
	oci_child_exec(cx, msg, sizeof(msg));
	child_fail(sock, msg);
}

int sp_container_exec(sp_container *c, const char *process_json, size_t process_len,
		      const sp_stdio *stdio, const sp_container_opts *opts, pid_t *pid_out,
		      sp_err **err)
{
	sp_container_status cst = sp_container_status_get(c);
	if (cst == SP_CONTAINER_PAUSED)
		return sp_error(err, SP_ERR_STATE,
				"container `%s` is paused; resume it before exec", c->id);
	if (cst != SP_CONTAINER_RUNNING && cst != SP_CONTAINER_CREATED)
		return sp_error(err, SP_ERR_STATE, "container `%s` is not running", c->id);
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_parse(&j, process_json, process_len, "process", err) < 0)
		return (*err)->code;
	struct oci_process proc;
	if (oci_process_parse(&proc, j, "process", err) < 0) {
		oci_process_clear(&proc);
		return (*err)->code;
	}
	int rc = 0;
	struct oci_bpf bpf = {0};
	struct ns_join joins[8];
	size_t n_joins = 0;
	int sv[2] = {-1, -1};
	_cleanup_close_ int console = -1;
	int minfd = 3 + (int)(opts ? opts->preserve_fds : 0);
	if (c->spec->seccomp && (rc = oci_seccomp_compile(&bpf, c->spec->seccomp, err)) < 0)
		goto out;
	if (proc.terminal && (console = fd_above(connect_console(opts, err), minfd)) < 0) {
		rc = err && *err ? (*err)->code : SP_ERR_SYSTEM;
		goto out;
	}
	for (size_t i = 0; i < SP_ARRAY_LEN(ns_files); i++) {
		char a[64], b[64];
		struct stat sa, sb;
		snprintf(a, sizeof(a), "/proc/%d/ns/%s", c->pid, ns_files[i][1]);
		snprintf(b, sizeof(b), "/proc/self/ns/%s", ns_files[i][1]);
		if (stat(a, &sa) < 0 || (stat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
					 sa.st_dev == sb.st_dev))
			continue;
		int fd = fd_above(open(a, O_RDONLY | O_CLOEXEC), minfd);
		if (fd < 0) {
			rc = sp_error_sys(err, errno, "exec: opening %s", a);
			goto out;
		}
		joins[n_joins++] = (struct ns_join){ns_type(ns_files[i][0]), fd};
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = sp_error_sys(err, errno, "socketpair");
		goto out;
	}
	sv[0] = fd_above(sv[0], minfd);
	sv[1] = fd_above(sv[1], minfd);
	struct oci_child_ctx cx = {.spec = c->spec, .proc = &proc, .bpf = &bpf, .cg = &c->cg,
				   .console_sock = console, .pty_slave = -1,
				   .preserve_fds = opts ? opts->preserve_fds : 0};
	pid_t s1 = fork();
	if (s1 == 0) {
		close(sv[0]);
		if (stage1(sv[1], joins, n_joins, 0, NULL) == 0)
			exec_main(sv[1], &cx, stdio);
		_exit(1);
	}
	if (s1 < 0) {
		rc = sp_error_sys(err, errno, "fork");
		goto out;
	}
	close(sv[1]);
	sv[1] = -1;
	pid_t pid = 0;
	if (oci_cgroup_enter(&c->cg, s1, err) < 0 || send_msg(sv[0], MSG_GO, 0, NULL) < 0) {
		rc = err && *err ? (*err)->code : SP_ERR_SYSTEM;
		reap(s1);
		goto out;
	}
	for (;;) {
		struct sync_msg m;
		int r = recv_msg(sv[0], &m);
		if (r == 1 && pid > 0)
			break; /* exec'd */
		if (r != 0 || m.type == MSG_ERROR) {
			rc = child_error(err, &m, r, pid ? pid : s1, "exec");
			reap(pid);
			reap(s1);
			goto out;
		}
		if (m.type == MSG_PID) {
			pid = m.val;
			sp_waitpid(s1, NULL, 0);
			s1 = 0;
			send_msg(sv[0], MSG_GO, pid, NULL);
		}
	}
	*pid_out = pid;
out:
	for (size_t k = 0; k < n_joins; k++)
		close(joins[k].fd);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	oci_bpf_clear(&bpf);
	oci_process_clear(&proc);
	return rc;
}
