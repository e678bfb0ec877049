/* SPDX-License-Identifier: Apache-2.0 */
/* Processes: starting them through the container engine (oci.h), the I/O
 * thread (output pipes and exits through one epoll set) and freeing. The
 * engine makes each container process the agent's own child. Exits are
 * observed through pidfds and collected with waitid(P_PIDFD) in native
 * mode; as PID 1 the reaper collects every child and reports ours through
 * sp_agent_child_exited(). */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/oci.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define TAG_WAKE 0u
#define TAG_STREAM 1u
#define TAG_PROC 2u
#define TAG_MASK 3u

/* ---- starting processes through the container engine ---- */

proc *proc_new(container *c, const char *exec_id)
{
	proc *p = sp_xzalloc(sizeof(*p));
	p->c = c;
	p->exec_id = sp_xstrdup(exec_id ? exec_id : "");
	p->pid = -1;
	p->pidfd = p->stdin_fd = p->pty = -1;
	p->out.fd = p->err.fd = -1;
	/* PROC_STARTING: no streams yet, but no end of them either (a
	 * reader waits); proc_start or proc_bury decides. */
	p->state = PROC_STARTING;
	return p;
}

char *oci_root(sp_agent *a)
{
	return sp_xasprintf("%s/oci", a->state_dir);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The pty master the engine sends over the console socket (SCM_RIGHTS)
 * once the process opened its terminal; -1 if none came in time. */
static int recv_pty(int sock)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	if (poll(&pfd, 1, 10000) <= 0)
		return -1;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	int fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (mh.msg_flags & MSG_CTRUNC) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

int proc_start(sp_agent *a, proc *p, const char *json, size_t len,
	       bool terminal, sp_err **err)
{
	container *c = p->c;
	/* Read under the lock; none of them changes while c->starting > 0
	 * (id, bundle and rootfs are fixed once the container exists; ct is
	 * only set by an init's start, freed by container_finish, which
	 * waits for starting to drop to 0). */
	bool init = c->ct == NULL;
	struct sp_container *ct = c->ct;
	const char *id = c->id, *bundle = c->bundle, *rootfs = c->rootfs;
	_cleanup_free_ char *root = oci_root(a);
	c->starting++;
	pthread_mutex_unlock(&a->lock);

	/* in[0] out[1] er[1] con[1] go to the engine, which dups them into
	 * the process; the agent keeps the other ends. They exist only
	 * inside engine_lock: no other start's fork inherits them. */
	int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
	int *in = fds, *out = fds + 2, *er = fds + 4, *con = fds + 6;
	pid_t pid = -1;
	int rc = 0;
	pthread_mutex_lock(&a->engine_lock);
	if (terminal) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0)
			rc = sp_error_sys(err, errno, "container `%s`: console socket", id);
	} else if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
		   pipe2(er, O_CLOEXEC) < 0) {
		rc = sp_error_sys(err, errno, "container `%s`: stdio pipes", id);
	}
	if (rc == 0) {
		sp_stdio io = {.in = in[0], .out = out[1], .err = er[1]};
		sp_container_opts o = {.version = SP_CONTAINER_OPTS_VERSION,
				       .state_root = root, .bundle = bundle,
				       .console_fd = terminal ? con[1] : -1};
		if (init) {
			rc = sp_container_create(&ct, id, json, len, rootfs, &io, &o, err);
			if (rc >= 0)
				pid = sp_container_pid(ct);
		} else {
			rc = sp_container_exec(ct, json, len, &io, &o, &pid, err);
		}
	}
	int keep[] = {in[0], out[1], er[1], con[1]};
	close_fds(keep, SP_ARRAY_LEN(keep));
	in[0] = out[1] = er[1] = con[1] = -1;
	pthread_mutex_unlock(&a->engine_lock);

	/* The terminal: the process sends its pty master before it execs,
	 * so it is normally there already; a process that dies first closes
	 * the socket. At most 10 s, still without the lock. */
	int pty = -1;
	if (rc >= 0 && terminal)
		pty = recv_pty(con[0]);
	close_fds(con, 1);
	int pidfd = -1;
	if (rc >= 0 && !a->watch_child)
		pidfd = pidfd_open_(pid); /* our child: a zombie until collected */

	pthread_mutex_lock(&a->lock);
	c->starting--;
	agent_broadcast(a);
	if (rc < 0) {
		close_fds(fds, SP_ARRAY_LEN(fds));
		return rc;
	}
	if (init)
		c->ct = ct;
	p->pid = pid;
	if (a->watch_child)
		a->watch_child(a, pid);
	else
		p->pidfd = pidfd;
	p->state = init ? PROC_CREATED : PROC_RUNNING;
	if (terminal) {
		if (pty < 0) {
			/* Linked anyway by the caller: the exit is collected. */
			kill(pid, SIGKILL);
			rc = sp_error(err, SP_ERR_SYSTEM,
				      "container `%s`: the process did not send its terminal",
				      c->id);
			p->out.eof = p->err.eof = true;
		} else {
			p->pty = pty;
			p->terminal = true;
			p->stdin_fd = fcntl(pty, F_DUPFD_CLOEXEC, 3);
			sp_set_nonblock(pty, true);
			/* The stream owns the master; p->pty is only used for
			 * ioctls while the stream is open. */
			stream_init(&p->out, p, 1, a->stream_max, pty);
			stream_init(&p->err, p, 2, a->stream_max, -1);
		}
	} else {
		p->stdin_fd = in[1];
		sp_set_nonblock(p->stdin_fd, true);
		sp_set_nonblock(out[0], true);
		sp_set_nonblock(er[0], true);
		stream_init(&p->out, p, 1, a->stream_max, out[0]);
		stream_init(&p->err, p, 2, a->stream_max, er[0]);
	}
	stream_arm(a, &p->out);
	stream_arm(a, &p->err);
	if (p->pidfd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN,
					 .data.u64 = (uint64_t)(uintptr_t)p | TAG_PROC};
		epoll_ctl(a->epfd, EPOLL_CTL_ADD, p->pidfd, &ev);
	}
	agent_broadcast(a);
	return rc < 0 ? rc : 0;
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
				if (!s->proc->dead) {
					stream_fill(a, s);
					/* The last EOF may come after WaitProcess
					 * returned: the exec is forgotten here then. */
					if (s->eof)
						maybe_forget_exec(a, s->proc);
				}
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
