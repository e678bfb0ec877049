/* SPDX-License-Identifier: Apache-2.0 */
/* The control socket of a running pod, <pods>/<name>/ctl.sock (0600 in a
 * 0700 directory, root's). One request per connection; the frames and
 * requests are parsed by the library (sealpod/runctl.h). docs/run.md. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"

#define MAX_CONNS 16

int run_ctl_send(int fd, int type, const void *data, size_t len)
{
	if (len > RUN_CTL_MAX_FRAME)
		len = RUN_CTL_MAX_FRAME;
	uint8_t h[SP_RUNCTL_HEADER];
	sp_runctl_header(h, type, len);
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)data, len}};
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
	size_t left = sizeof(h) + len;
	while (left) {
		ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		left -= (size_t)n;
		while (n > 0 && m.msg_iovlen) {
			size_t take = (size_t)n < m.msg_iov->iov_len ? (size_t)n : m.msg_iov->iov_len;
			m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + take;
			m.msg_iov->iov_len -= take;
			n -= (ssize_t)take;
			if (!m.msg_iov->iov_len) {
				m.msg_iov++;
				m.msg_iovlen--;
			}
		}
	}
	return 0;
}

int run_ctl_recv(int fd, int *type, uint8_t **data, size_t *len, sp_err **err)
{
	uint8_t h[SP_RUNCTL_HEADER];
	ssize_t n = sp_read_all(fd, h, sizeof(h));
	if (n == 0)
		return sp_error(err, SP_ERR_PROTOCOL, "the other side closed the connection");
	if (n != (ssize_t)sizeof(h))
		return sp_error_sys(err, n < 0 ? errno : EPIPE, "reading a frame header");
	size_t l;
	if (sp_runctl_header_parse(h, type, &l, err) < 0)
		return -1;
	uint8_t *d = sp_xmalloc(l + 1);
	if (l && sp_read_all(fd, d, l) != (ssize_t)l) {
		free(d);
		return sp_error(err, SP_ERR_PROTOCOL, "a frame ended early");
	}
	d[l] = 0;
	*data = d;
	*len = l;
	return 0;
}

int run_ctl_connect(const char *dir, sp_err **err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/ctl.sock", dir) >=
	    sizeof(a.sun_path))
		return sp_error(err, SP_ERR_LIMIT, "%s/ctl.sock: path too long", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sp_error_sys(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return sp_error_sys(err, e, "%s", a.sun_path);
	}
	return fd;
}

/* ---- server --------------------------------------------------------------- */

static struct {
	struct run_live *pod;
	int lfd;
	char *path;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_int conns;
} ctl = {.lfd = -1};

static int send_error(int fd, const char *fmt, ...) SP_PRINTF(2, 3);
static int send_error(int fd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		sp_oom();
	va_end(ap);
	run_ctl_send(fd, RUN_FRAME_ERROR, m, strlen(m));
	return 0;
}

static struct run_ctr *find_container(struct run_live *pod, const char *name)
{
	for (size_t i = 0; i < pod->n; i++) {
		if (name ? !strcmp(pod->ctrs[i].name, name) : !pod->ctrs[i].init)
			return &pod->ctrs[i];
	}
	return NULL;
}

static int do_exec(int fd, const sp_runctl_req *req)
{
	struct run_live *pod = ctl.pod;
	struct run_ctr *c = find_container(pod, req->container);
	if (!c) {
		_cleanup_buf_ sp_buf names = SP_BUF_INIT;
		for (size_t k = 0; k < pod->n; k++)
			sp_buf_printf(&names, "%s%s", k ? ", " : "", pod->ctrs[k].name);
		sp_buf_terminate(&names);
		return send_error(fd, "pod %s has no container %s; its containers: %s", pod->name,
				  req->container ? req->container
						 : "(other than init containers)",
				  (char *)names.data);
	}
	_cleanup_json_ json_t *args = json_array();
	for (size_t i = 0; i < req->n_args; i++)
		json_array_append_new(args, json_string(req->args[i]));
	_cleanup_err_ sp_err *err = NULL;
	if (run_exec_stream(pod, c, args, req->tty, fd, &err) < 0)
		send_error(fd, "%s", sp_err_msg(err));
	return 0;
}

static int do_stop(int fd, const sp_runctl_req *req)
{
	struct run_live *pod = ctl.pod;
	pthread_mutex_lock(&pod->mu);
	if (req->has_grace)
		pod->grace_s = req->grace;
	run_interrupted = SIGTERM;
	pthread_cond_broadcast(&pod->cv);
	pthread_mutex_unlock(&pod->mu);
	run_progress("stop requested over %s", ctl.path);
	run_ctl_send(fd, RUN_FRAME_EXIT, "0", 1);
	return 0;
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	/* A client that sends nothing, or stops reading, does not hold a
	 * thread for ever. */
	struct timeval rt = {.tv_sec = 10}, wt = {.tv_sec = 60};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wt, sizeof(wt));
	int type;
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	_cleanup_err_ sp_err *err = NULL;
	sp_runctl_req *req = NULL;
	if (run_ctl_recv(fd, &type, &data, &len, &err) < 0)
		goto out;
	if (type != RUN_FRAME_REQUEST) {
		send_error(fd, "expected one request frame of at most %u bytes", RUN_CTL_MAX_REQUEST);
		goto out;
	}
	if (sp_runctl_req_parse(&req, data, len, &err) < 0) {
		send_error(fd, "%s", sp_err_msg(err));
		goto out;
	}
	if (req->op == SP_RUNCTL_OP_EXEC)
		do_exec(fd, req);
	else
		do_stop(fd, req);
	sp_runctl_req_free(req);
out:
	close(fd);
	atomic_fetch_sub(&ctl.conns, 1);
	return NULL;
}

static void *accept_thread(void *arg)
{
	(void)arg;
	while (!atomic_load(&ctl.stop)) {
		struct pollfd p = {.fd = ctl.lfd, .events = POLLIN};
		if (poll(&p, 1, 200) <= 0)
			continue;
		int fd = accept4(ctl.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* The socket is 0600 already; the peer's uid is checked too. */
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
		    (cr.uid != 0 && cr.uid != geteuid())) {
			close(fd);
			continue;
		}
		if (atomic_load(&ctl.conns) >= MAX_CONNS) {
			send_error(fd, "the supervisor of pod %s is busy (%d requests); try again",
				   ctl.pod->name, MAX_CONNS);
			close(fd);
			continue;
		}
		atomic_fetch_add(&ctl.conns, 1);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_thread, (void *)(intptr_t)fd) != 0) {
			atomic_fetch_sub(&ctl.conns, 1);
			close(fd);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int run_ctl_start(struct run_live *pod, sp_err **err)
{
	if (!pod->st || !pod->st->dir)
		return 0;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	ctl.path = sp_xasprintf("%s/ctl.sock", pod->st->dir);
	if (strlen(ctl.path) >= sizeof(a.sun_path))
		return sp_error(err, SP_ERR_LIMIT, "%s: path too long for a socket", ctl.path);
	strcpy(a.sun_path, ctl.path);
	ctl.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl.lfd < 0)
		return sp_error_sys(err, errno, "socket");
	mode_t old = umask(0077);
	int r = bind(ctl.lfd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0 || chmod(ctl.path, 0600) < 0 || listen(ctl.lfd, 8) < 0)
		return sp_error_sys(err, errno, "listen on %s", ctl.path);
	ctl.pod = pod;
	if (pthread_create(&ctl.thread, NULL, accept_thread, NULL) != 0)
		return sp_error_sys(err, errno, "start the control thread");
	ctl.started = true;
	return 0;
}

void run_ctl_stop(void)
{
	atomic_store(&ctl.stop, true);
	if (ctl.started)
		pthread_join(ctl.thread, NULL);
	ctl.started = false;
	if (ctl.lfd >= 0)
		close(ctl.lfd);
	ctl.lfd = -1;
	if (ctl.path)
		unlink(ctl.path);
	/* Connections in flight answer within their socket timeouts; the pod
	 * they use lives until we return. */
	for (int i = 0; i < 700 && atomic_load(&ctl.conns) > 0; i++)
		usleep(100 * 1000);
	free(ctl.path);
	ctl.path = NULL;
}
