/* SPDX-License-Identifier: Apache-2.0 */
/* Stdio of one process: containerd hands the shim fifo paths; threads copy
 * the agent's ReadStdout/ReadStderr into the stdout/stderr fifos and the
 * stdin fifo into WriteStdin. The agent keeps output until it is read, so
 * the copy runs to the end of the stream even after containerd's reader
 * went away (output is then discarded), else the guest process would
 * block on a full pipe. */
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include "sealpod/file.h"
#include "sealpod/log.h"
#include "shim.h"

struct shim_io {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	sp_sandbox *sb;
	char *id, *exec_id;
	char *paths[3]; /* stdin, stdout, stderr */
	bool terminal;
	bool out_done[3];
	int cancel[2];  /* stdin thread wake-up */
	bool stdin_closed;
};

typedef struct pump_arg {
	shim_io *io;
	int stream; /* 0 stdin, 1 stdout, 2 stderr */
} pump_arg;

static void unref(shim_io *io)
{
	pthread_mutex_lock(&io->mu);
	bool last = --io->refs == 0;
	pthread_mutex_unlock(&io->mu);
	if (!last)
		return;
	for (int i = 0; i < 3; i++)
		free(io->paths[i]);
	free(io->id);
	free(io->exec_id);
	close(io->cancel[0]);
	close(io->cancel[1]);
	pthread_mutex_destroy(&io->mu);
	pthread_cond_destroy(&io->cv);
	free(io);
}

static int open_fifo_writer(const char *path)
{
	/* containerd opens its reading end from a goroutine, which may not
	 * have run yet: a non-blocking open then fails with ENXIO. Retry for
	 * a while (never block forever: a reader that never comes must not
	 * hang the copy); after that, output is drained and dropped. */
	int fd = -1;
	for (int i = 0; i < 1000; i++) {
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 || errno != ENXIO)
			break;
		usleep(10000);
	}
	if (fd < 0) {
		sp_log_warn("open %s: %s (output is dropped)", path, strerror(errno));
		return -1;
	}
	sp_set_nonblock(fd, false);
	return fd;
}

static void *output_thread(void *arg)
{
	pump_arg *pa = arg;
	shim_io *io = pa->io;
	int stream = pa->stream;
	free(pa);
	int fd = open_fifo_writer(io->paths[stream]);
	for (;;) {
		uint8_t *data = NULL;
		size_t len = 0;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_sandbox_read(io->sb, io->id, io->exec_id,
				    stream == 1 ? SP_STREAM_STDOUT : SP_STREAM_STDERR,
				    &data, &len, &err) < 0) {
			sp_log_debug("%s/%s stream %d ends: %s", io->id, io->exec_id,
				     stream, sp_err_msg(err));
			free(data);
			break;
		}
		if (len == 0) {
			free(data);
			break;
		}
		if (fd >= 0 && sp_write_all(fd, data, len) < 0) {
			sp_log_debug("write %s: %s (the reader went away)",
				     io->paths[stream], strerror(errno));
			close(fd);
			fd = -1;
		}
		free(data);
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&io->mu);
	io->out_done[stream] = true;
	pthread_cond_broadcast(&io->cv);
	pthread_mutex_unlock(&io->mu);
	unref(io);
	return NULL;
}

static void close_stdin_once(shim_io *io)
{
	pthread_mutex_lock(&io->mu);
	bool already = io->stdin_closed;
	io->stdin_closed = true;
	pthread_mutex_unlock(&io->mu);
	if (already)
		return;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_sandbox_close_stdin(io->sb, io->id, io->exec_id, &err) < 0)
		sp_log_debug("close stdin of %s/%s: %s", io->id, io->exec_id, sp_err_msg(err));
}

static void *stdin_thread(void *arg)
{
	pump_arg *pa = arg;
	shim_io *io = pa->io;
	free(pa);
	/* O_NONBLOCK: opening must not wait for a writer that may never
	 * come. Linux reports POLLHUP on a fifo only after a writer was there
	 * and left, so poll() tells "not yet" from "done". */
	int fd = open(io->paths[0], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		sp_log_warn("open %s: %s (stdin is closed)", io->paths[0], strerror(errno));
		close_stdin_once(io);
		unref(io);
		return NULL;
	}
	uint8_t buf[32 * 1024];
	for (;;) {
		struct pollfd p[2] = {{fd, POLLIN, 0}, {io->cancel[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents) {
			/* CloseIO: containerd closed its end; forward what
			 * it wrote before that. */
			ssize_t n;
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (sp_sandbox_write_stdin(io->sb, io->id, io->exec_id,
							   buf, (size_t)n, NULL) < 0)
					break;
			break;
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_sandbox_write_stdin(io->sb, io->id, io->exec_id, buf,
					   (size_t)n, &err) < 0) {
			sp_log_debug("stdin of %s/%s: %s", io->id, io->exec_id, sp_err_msg(err));
			break;
		}
	}
	close(fd);
	close_stdin_once(io);
	unref(io);
	return NULL;
}

static void spawn(shim_io *io, void *(*fn)(void *), int stream)
{
	pump_arg *pa = sp_xzalloc(sizeof(*pa));
	pa->io = io;
	pa->stream = stream;
	pthread_mutex_lock(&io->mu);
	io->refs++;
	pthread_mutex_unlock(&io->mu);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, fn, pa) != 0)
		sp_oom();
	pthread_attr_destroy(&attr);
}

static bool has(const char *p)
{
	return p && *p;
}

shim_io *shim_io_start(const shim_io_opts *o)
{
	shim_io *io = sp_xzalloc(sizeof(*io));
	pthread_mutex_init(&io->mu, NULL);
	pthread_cond_init(&io->cv, NULL);
	io->refs = 1;
	io->sb = o->sb;
	io->id = sp_xstrdup(o->container_id);
	io->exec_id = sp_xstrdup(o->exec_id ? o->exec_id : "");
	io->terminal = o->terminal;
	if (pipe2(io->cancel, O_CLOEXEC) < 0)
		sp_oom();
	const char *p[3] = {o->stdin_path, o->stdout_path, o->stderr_path};
	for (int i = 0; i < 3; i++)
		io->paths[i] = has(p[i]) ? sp_xstrdup(p[i]) : NULL;
	/* With a terminal, stderr is merged into stdout in the guest. */
	io->out_done[0] = true;
	io->out_done[1] = !io->paths[1];
	io->out_done[2] = !io->paths[2] || io->terminal;
	if (!io->out_done[1])
		spawn(io, output_thread, 1);
	if (!io->out_done[2])
		spawn(io, output_thread, 2);
	if (io->paths[0])
		spawn(io, stdin_thread, 0);
	return io;
}

void shim_io_wait_output(shim_io *io, uint64_t timeout_ns)
{
	uint64_t deadline = sp_now_ns() + timeout_ns;
	pthread_mutex_lock(&io->mu);
	while (!(io->out_done[1] && io->out_done[2])) {
		uint64_t now = sp_now_ns();
		if (now >= deadline)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t wait = deadline - now;
		if (wait > 100 * 1000 * 1000)
			wait = 100 * 1000 * 1000;
		ts.tv_nsec += (long)wait;
		while (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&io->cv, &io->mu, &ts);
	}
	pthread_mutex_unlock(&io->mu);
}

void shim_io_close_stdin(shim_io *io)
{
	if (write(io->cancel[1], "x", 1) < 0)
		sp_log_debug("stdin cancel: %s", strerror(errno));
}

void shim_io_free(shim_io *io)
{
	if (!io)
		return;
	shim_io_close_stdin(io);
	unref(io);
}
