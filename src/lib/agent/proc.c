/* SPDX-License-Identifier: Apache-2.0 */
/* Processes: spawning, the I/O thread (output pipes and exits through one
 * epoll set) and freeing. Exits are observed through pidfds and collected
 * with waitid(P_PIDFD), so the agent never reaps a child that is not its
 * own (PID 1's reaper keeps collecting orphans with its own rules). */
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define TAG_WAKE 0u
#define TAG_STREAM 1u
#define TAG_PROC 2u
#define TAG_MASK 3u

/* ---- the runtime-spec "process" object ---- */

void launch_clear(launch *l)
{
	sp_strv_freep(&l->argv);
	sp_strv_freep(&l->envp);
	free(l->groups);
	memset(l, 0, sizeof(*l));
}

static char **strv_from_json(const json_t *arr, size_t max, bool *ok)
{
	size_t n = json_array_size(arr);
	*ok = n <= max;
	if (!*ok)
		return NULL;
	char **v = sp_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(arr, i);
		if (!json_is_string(e) ||
		    strlen(json_string_value(e)) != json_string_length(e)) {
			*ok = false;
			sp_strv_freep(&v);
			return NULL;
		}
		v[i] = sp_xstrdup(json_string_value(e));
	}
	return v;
}

int launch_parse_process(launch *l, const json_t *process, const char *what,
			 sp_err **err)
{
	memset(l, 0, sizeof(*l));
	if (!json_is_object(process))
		return sp_error(err, SP_ERR_INVALID, "%s: `process` must be an object",
				what);
	json_t *args = json_object_get(process, "args");
	bool ok;
	if (!json_is_array(args) || json_array_size(args) == 0)
		return sp_error(err, SP_ERR_INVALID,
				"%s: process.args must be a non-empty array of strings",
				what);
	l->argv = strv_from_json(args, 4096, &ok);
	if (!ok)
		return sp_error(err, SP_ERR_INVALID,
				"%s: process.args must be at most 4096 strings without NUL bytes",
				what);
	json_t *env = json_object_get(process, "env");
	if (env && !json_is_array(env)) {
		launch_clear(l);
		return sp_error(err, SP_ERR_INVALID, "%s: process.env must be an array",
				what);
	}
	l->envp = env ? strv_from_json(env, 4096, &ok) : sp_xcalloc(1, sizeof(char *));
	if (!ok) {
		launch_clear(l);
		return sp_error(err, SP_ERR_INVALID,
				"%s: process.env must be at most 4096 strings without NUL bytes",
				what);
	}
	json_t *cwd = json_object_get(process, "cwd");
	l->cwd = json_is_string(cwd) ? json_string_value(cwd) : "/";
	if (l->cwd[0] != '/') {
		launch_clear(l);
		return sp_error(err, SP_ERR_INVALID,
				"%s: process.cwd must be an absolute path", what);
	}
	l->terminal = json_is_true(json_object_get(process, "terminal"));
	json_t *user = json_object_get(process, "user");
	if (user) {
		json_t *uid = json_object_get(user, "uid");
		json_t *gid = json_object_get(user, "gid");
		if ((uid && (!json_is_integer(uid) || json_integer_value(uid) < 0 ||
			     json_integer_value(uid) > 0x7fffffff)) ||
		    (gid && (!json_is_integer(gid) || json_integer_value(gid) < 0 ||
			     json_integer_value(gid) > 0x7fffffff))) {
			launch_clear(l);
			return sp_error(err, SP_ERR_INVALID,
					"%s: process.user.uid and gid must be integers in 0..2^31-1",
					what);
		}
		l->uid = uid ? (uid_t)json_integer_value(uid) : 0;
		l->gid = gid ? (gid_t)json_integer_value(gid) : 0;
		json_t *ag = json_object_get(user, "additionalGids");
		if (json_is_array(ag) && json_array_size(ag) > 0) {
			if (json_array_size(ag) > 64) {
				launch_clear(l);
				return sp_error(err, SP_ERR_INVALID,
						"%s: at most 64 additionalGids", what);
			}
			l->groups = sp_xcalloc(json_array_size(ag), sizeof(gid_t));
			for (size_t i = 0; i < json_array_size(ag); i++) {
				json_t *g = json_array_get(ag, i);
				if (!json_is_integer(g) || json_integer_value(g) < 0 ||
				    json_integer_value(g) > 0x7fffffff) {
					launch_clear(l);
					return sp_error(err, SP_ERR_INVALID,
							"%s: additionalGids must be integers",
							what);
				}
				l->groups[l->n_groups++] = (gid_t)json_integer_value(g);
			}
		}
	}
	return 0;
}

/* ---- spawning ---- */

proc *proc_new(container *c, const char *exec_id)
{
	proc *p = sp_xzalloc(sizeof(*p));
	p->c = c;
	p->exec_id = sp_xstrdup(exec_id ? exec_id : "");
	p->pid = -1;
	p->pidfd = p->stdin_fd = p->start_fd = p->pty = -1;
	p->out.fd = p->err.fd = -1;
	p->out.eof = p->err.eof = true;
	return p;
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The executable candidates, resolved before fork (no malloc after it). */
static char **exec_candidates(const launch *l)
{
	const char *a0 = l->argv[0];
	if (strchr(a0, '/')) {
		char **v = sp_xcalloc(2, sizeof(char *));
		v[0] = sp_xstrdup(a0);
		return v;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = l->envp; *e; e++)
		if (!strncmp(*e, "PATH=", 5))
			path = *e + 5;
	size_t n = 1;
	for (const char *s = path; *s; s++)
		n += *s == ':';
	if (n > 256)
		n = 256;
	char **v = sp_xcalloc(n + 1, sizeof(char *));
	size_t k = 0;
	const char *s = path;
	while (k < n) {
		const char *c = strchr(s, ':');
		size_t len = c ? (size_t)(c - s) : strlen(s);
		if (len > 0 && s[0] == '/')
			v[k++] = sp_xasprintf("%.*s/%s", (int)len, s, a0);
		if (!c)
			break;
		s = c + 1;
	}
	return v;
}

static void child_fail(int errfd, const char *what)
{
	/* The parent reads this through the error pipe (CLOEXEC: success
	 * closes it silently). */
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s: %s", what, strerror(errno));
	if (n > 0 && write(errfd, buf, (size_t)n) < 0) {
		/* nothing more to do */
	}
	_exit(127);
}

int proc_spawn(sp_agent *a, proc *p, const launch *l, sp_err **err)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1};
	int start[2] = {-1, -1}, errp[2] = {-1, -1};
	int pty = -1;
	char ptyname[128] = "";
	int rc = -1;
	_cleanup_strv_ char **cands = exec_candidates(l);

	if (pipe2(errp, O_CLOEXEC) < 0)
		goto sys;
	if (l->hold && pipe2(start, O_CLOEXEC) < 0)
		goto sys;
	if (l->terminal) {
		pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (pty < 0 || grantpt(pty) < 0 || unlockpt(pty) < 0 ||
		    ptsname_r(pty, ptyname, sizeof(ptyname)) != 0)
			goto sys;
	} else {
		if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
		    pipe2(er, O_CLOEXEC) < 0)
			goto sys;
	}

	pid_t pid = fork();
	if (pid < 0)
		goto sys;
	if (pid == 0) {
		/* Child: only async-signal-safe calls from here on. */
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		setsid();
		if (l->terminal) {
			int slave = open(ptyname, O_RDWR);
			if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
				child_fail(errp[1], "open the terminal");
			dup2(slave, 0);
			dup2(slave, 1);
			dup2(slave, 2);
		} else {
			if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 ||
			    dup2(er[1], 2) < 0)
				child_fail(errp[1], "set up stdio");
		}
		if (l->hold) {
			char b;
			close(start[1]);
			ssize_t n;
			do
				n = read(start[0], &b, 1);
			while (n < 0 && errno == EINTR);
			if (n != 1)
				_exit(255); /* removed before it started */
		}
		if (l->rootfs && (chroot(l->rootfs) < 0 || chdir("/") < 0))
			child_fail(errp[1], "enter the root filesystem");
		if (chdir(l->cwd) < 0)
			child_fail(errp[1], "change to the working directory");
		if (getuid() == 0) {
			if (setgroups(l->n_groups, l->groups) < 0 ||
			    setgid(l->gid) < 0 || setuid(l->uid) < 0)
				child_fail(errp[1], "switch to the process's user");
		}
		for (char **c = cands; *c; c++)
			execve(*c, l->argv, l->envp);
		child_fail(errp[1], "exec the process");
	}

	/* Parent. */
	close(errp[1]);
	errp[1] = -1;
	p->pid = pid;
	if (a->watch_child)
		a->watch_child(a, pid);
	else
		p->pidfd = pidfd_open_(pid);
	if (l->terminal) {
		p->pty = pty;
		p->terminal = true;
		int dup = fcntl(pty, F_DUPFD_CLOEXEC, 3);
		p->stdin_fd = dup;
		sp_set_nonblock(pty, true);
		stream_init(&p->out, p, 1, a->stream_max, pty);
		stream_init(&p->err, p, 2, a->stream_max, -1);
		pty = -1;
		/* p->pty and out.fd are the same descriptor: the stream owns
		 * it; p->pty is only used for ioctls while the stream is open. */
	} else {
		close(in[0]);
		close(out[1]);
		close(er[1]);
		in[0] = out[1] = er[1] = -1;
		p->stdin_fd = in[1];
		in[1] = -1;
		sp_set_nonblock(p->stdin_fd, true);
		sp_set_nonblock(out[0], true);
		sp_set_nonblock(er[0], true);
		stream_init(&p->out, p, 1, a->stream_max, out[0]);
		stream_init(&p->err, p, 2, a->stream_max, er[0]);
		out[0] = er[0] = -1;
	}
	if (l->hold) {
		close(start[0]);
		start[0] = -1;
		p->start_fd = start[1];
		start[1] = -1;
		p->state = PROC_CREATED;
	} else {
		/* The error pipe closes on a successful exec. */
		char msg[256];
		ssize_t n;
		do
			n = read(errp[0], msg, sizeof(msg) - 1);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			msg[n] = 0;
			rc = sp_error(err, SP_ERR_INVALID, "process `%s`: %s",
				      l->argv[0], msg);
		}
		p->state = PROC_RUNNING;
	}
	stream_arm(a, &p->out);
	stream_arm(a, &p->err);
	if (p->pidfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u64 = (uint64_t)(uintptr_t)p | TAG_PROC};
		epoll_ctl(a->epfd, EPOLL_CTL_ADD, p->pidfd, &ev);
	}
	close(errp[0]);
	errp[0] = -1;
	return rc == -1 ? 0 : rc;

sys:
	rc = sp_error_sys(err, errno, "start process `%s`", l->argv[0]);
	int fds[] = {in[0], in[1], out[0], out[1], er[0], er[1],
		     start[0], start[1], errp[0], errp[1], pty};
	for (size_t i = 0; i < SP_ARRAY_LEN(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rc;
}

void proc_exited(sp_agent *a, proc *p, int st)
{
	if (p->state == PROC_EXITED)
		return;
	p->state = PROC_EXITED;
	if (WIFEXITED(st))
		p->status = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		p->status = 128 + WTERMSIG(st);
	else
		p->status = 255;
	if (p->pidfd >= 0) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
		p->pidfd = -1;
	}
	if (p->start_fd >= 0) {
		close(p->start_fd);
		p->start_fd = -1;
	}
	if (p->c && p->c->procs == p)
		p->c->state = C_STOPPED;
	sp_log_debug("process %d (%s/%s) exited with status %d", p->pid,
		     p->c ? p->c->id : "?", p->exec_id, p->status);
	agent_broadcast(a);
}

void sp_agent_child_exited(sp_agent *a, pid_t pid, int wait_status)
{
	struct exit_note *n = sp_xzalloc(sizeof(*n));
	n->pid = pid;
	n->status = wait_status;
	pthread_mutex_lock(&a->exit_lock);
	n->next = a->exits;
	a->exits = n;
	pthread_mutex_unlock(&a->exit_lock);
	uint64_t one = 1;
	if (a->wakefd >= 0 && write(a->wakefd, &one, sizeof(one)) < 0) {
		/* saturated: the I/O thread is awake anyway */
	}
}

/* I/O thread, agent lock held. */
static void apply_exits(sp_agent *a)
{
	pthread_mutex_lock(&a->exit_lock);
	struct exit_note *n = a->exits;
	a->exits = NULL;
	pthread_mutex_unlock(&a->exit_lock);
	while (n) {
		struct exit_note *next = n->next;
		for (container *c = a->containers; c; c = c->next)
			for (proc *p = c->procs; p; p = p->next)
				if (p->pid == n->pid && p->state != PROC_EXITED)
					proc_exited(a, p, n->status);
		free(n);
		n = next;
	}
}

static void collect(sp_agent *a, proc *p)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0) {
		if (errno == ECHILD) {
			/* Someone else reaped it; the status is lost. */
			proc_exited(a, p, 255 << 8);
		}
		return;
	}
	if (si.si_pid == 0)
		return;
	int st;
	if (si.si_code == CLD_EXITED)
		st = (si.si_status & 0xff) << 8;
	else
		st = si.si_status & 0x7f; /* killed or dumped: WTERMSIG */
	proc_exited(a, p, st);
}

void proc_bury(sp_agent *a, proc *p)
{
	stream_close(a, &p->out);
	stream_close(a, &p->err);
	p->pty = -1; /* closed with the stream */
	if (p->stdin_fd >= 0) {
		close(p->stdin_fd);
		p->stdin_fd = -1;
	}
	if (p->start_fd >= 0) {
		close(p->start_fd);
		p->start_fd = -1;
	}
	if (p->pidfd >= 0) {
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
		p->pidfd = -1;
	}
	p->dead = true;
	p->c = NULL;
	p->next = a->graveyard;
	a->graveyard = p;
	if (a->wakefd >= 0) {
		uint64_t one = 1;
		if (write(a->wakefd, &one, sizeof(one)) < 0) {
			/* the counter is saturated: the thread wakes anyway */
		}
	}
}

static void free_graveyard(sp_agent *a)
{
	proc *p = a->graveyard;
	a->graveyard = NULL;
	while (p) {
		proc *n = p->next;
		free(p->out.buf);
		free(p->err.buf);
		free(p->exec_id);
		free(p);
		p = n;
	}
}

/* ---- the I/O thread ---- */

static void *io_loop(void *arg)
{
	sp_agent *a = arg;
	struct epoll_event evs[32];
	for (;;) {
		int n = epoll_wait(a->epfd, evs, SP_ARRAY_LEN(evs), -1);
		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&a->lock);
		bool quit = false;
		for (int i = 0; i < n; i++) {
			uint64_t u = evs[i].data.u64;
			unsigned tag = (unsigned)(u & TAG_MASK);
			void *ptr = (void *)(uintptr_t)(u & ~(uint64_t)TAG_MASK);
			if (tag == TAG_WAKE) {
				uint64_t v;
				if (read(a->wakefd, &v, sizeof(v)) < 0) {
					/* spurious */
				}
				if (a->io_quit)
					quit = true;
			} else if (tag == TAG_STREAM) {
				stream *s = ptr;
				if (!s->proc->dead)
					stream_fill(a, s);
			} else if (tag == TAG_PROC) {
				proc *p = ptr;
				if (!p->dead && p->pidfd >= 0)
					collect(a, p);
			}
		}
		apply_exits(a);
		/* Events of this batch may have named buried procs: only now
		 * is it safe to free them. */
		free_graveyard(a);
		pthread_mutex_unlock(&a->lock);
		if (quit)
			break;
	}
	return NULL;
}

int io_start(sp_agent *a, sp_err **err)
{
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->epfd < 0)
		return sp_error_sys(err, errno, "agent: epoll_create1");
	a->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->wakefd < 0)
		return sp_error_sys(err, errno, "agent: eventfd");
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_WAKE};
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->wakefd, &ev) < 0)
		return sp_error_sys(err, errno, "agent: epoll_ctl");
	int r = pthread_create(&a->io_thread, NULL, io_loop, a);
	if (r != 0)
		return sp_error_sys(err, r, "agent: start the I/O thread");
	a->io_started = true;
	return 0;
}

void io_stop(sp_agent *a)
{
	if (a->io_started) {
		pthread_mutex_lock(&a->lock);
		a->io_quit = true;
		uint64_t one = 1;
		if (write(a->wakefd, &one, sizeof(one)) < 0) {
			/* saturated counter: the thread is awake anyway */
		}
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->io_thread, NULL);
		a->io_started = false;
	}
	free_graveyard(a);
	if (a->wakefd >= 0)
		close(a->wakefd);
	if (a->epfd >= 0)
		close(a->epfd);
	a->wakefd = a->epfd = -1;
}
