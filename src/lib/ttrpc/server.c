/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC server. One I/O thread (the caller of sp_ttrpc_server_run) owns
 * every socket: it accepts, reads and decodes frames, answers what needs
 * no handler (bad frames, unknown methods, expired deadlines) and queues
 * the rest for a pool of worker threads. A worker runs the handler and
 * writes the response itself when the socket takes it at once; whatever
 * does not fit stays in the connection's output buffer, which the I/O
 * thread flushes when poll() says the socket is writable. docs/ttrpc.md
 * explains the model and the limits. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "sealpod/bytes.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "ttrpc/internal.h"
#include "ttrpc/wire.h"

#define DEFAULT_WORKERS 4u
#define INITIAL_WORKERS 4u /* started with the server; more on demand */
#define DEFAULT_MAX_INFLIGHT 128u
/* Stop reading a connection whose peer leaves this much unread. */
#define MAX_PENDING_OUT (8u << 20)
#define READ_CHUNK (64u << 10)
#define DRAIN_NS (2000000000ull)
#define REOPEN_MIN_NS (20000000ull)
#define REOPEN_MAX_NS (500000000ull)

typedef struct conn conn;
typedef struct job job;
typedef struct reopen reopen;

struct conn {
	sp_ttrpc_server *srv;
	atomic_int refs;
	char *name;          /* for logs: "pid 123", "serial port /dev/..." */
	char *reopen_path;   /* streams that survive the host closing them */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	void *data;          /* from on_connect */
	bool connected_cb;   /* on_connect was called */

	/* I/O thread only. */
	sp_buf rbuf;
	size_t rpos;
	uint64_t skip;       /* bytes of an oversized frame still to discard */
	conn *next;

	/* Set once the connection closed: its handlers are cancelled. */
	atomic_bool closed;
	unsigned running_plain; /* its non-control jobs in handlers; srv->mu */

	/* Shared with workers, under mu. */
	pthread_mutex_t mu;
	int fd;              /* -1 once closed; late responses are dropped */
	sp_buf out;
	size_t out_off;
	uint32_t *inflight;  /* stream ids queued or being handled */
	size_t n_inflight;
};

struct job {
	conn *c;
	uint32_t stream_id;
	sp_ttrpc_request *req;
	sp_ttrpc_handler fn;
	uint64_t deadline;
	bool control;        /* may run on a reserved worker */
	job *next;
};

struct reopen {
	char *path;
	uint64_t at;
	uint64_t backoff;
	reopen *next;
};

typedef struct added {
	int fd;
	char *reopen_path; /* streams; NULL for listeners */
	bool listener;
} added;

struct sp_ttrpc_server {
	sp_ttrpc_method *methods; /* sorted by service, method */
	size_t n_methods;
	void *user;
	sp_ttrpc_server_opts opts;
	int wake_fd;
	atomic_int refs;          /* the owner plus each live worker */

	/* I/O thread only. */
	int *listeners;
	size_t n_listeners;
	conn *conns;
	reopen *reopens;

	pthread_mutex_t mu;
	pthread_cond_t job_cond;
	pthread_cond_t idle_cond;
	job *jq_head, *jq_tail;
	unsigned queued;          /* jobs in the queue */
	unsigned running;         /* jobs in handlers */
	unsigned running_plain;   /* of which not SP_TTRPC_CONTROL */
	unsigned live_workers;
	bool stop_workers;
	bool shutdown;
	bool ran;
	added *added;             /* fds registered but not yet picked up */
	size_t n_added;
};

static void wake(sp_ttrpc_server *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter already means "wake up" */
}

static int cmp_method(const void *a, const void *b)
{
	const sp_ttrpc_method *x = a, *y = b;
	int r = strcmp(x->service, y->service);
	return r ? r : strcmp(x->method, y->method);
}

static const sp_ttrpc_method *find_method(const sp_ttrpc_server *s,
					  const char *service,
					  const char *method, bool *service_known)
{
	*service_known = false;
	size_t lo = 0, hi = s->n_methods;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const sp_ttrpc_method *m = &s->methods[mid];
		int r = strcmp(service, m->service);
		if (r == 0) {
			*service_known = true;
			r = strcmp(method, m->method);
			if (r == 0)
				return m;
		}
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

sp_ttrpc_server *sp_ttrpc_server_new(const sp_ttrpc_method *methods,
				     size_t n_methods, void *user,
				     const sp_ttrpc_server_opts *opts)
{
	sp_ttrpc_server *s = sp_xzalloc(sizeof(*s));
	if (n_methods) {
		s->methods = sp_xcalloc(n_methods, sizeof(*methods));
		memcpy(s->methods, methods, n_methods * sizeof(*methods));
		qsort(s->methods, n_methods, sizeof(*methods), cmp_method);
	}
	s->n_methods = n_methods;
	s->user = user;
	if (opts)
		s->opts = *opts;
	if (!s->opts.workers)
		s->opts.workers = DEFAULT_WORKERS;
	if (!s->opts.max_inflight)
		s->opts.max_inflight = DEFAULT_MAX_INFLIGHT;
	if (s->opts.reserved_workers >= s->opts.workers)
		s->opts.reserved_workers = s->opts.workers - 1;
	if (!s->opts.max_running_per_conn ||
	    s->opts.max_running_per_conn > s->opts.workers - s->opts.reserved_workers)
		s->opts.max_running_per_conn = s->opts.workers - s->opts.reserved_workers;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0)
		sp_oom(); /* only fails on fd or memory exhaustion */
	atomic_init(&s->refs, 1);
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->job_cond, &ca);
	pthread_cond_init(&s->idle_cond, &ca);
	pthread_condattr_destroy(&ca);
	return s;
}

static void server_unref(sp_ttrpc_server *s)
{
	if (atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->n_added; i++) {
		close(s->added[i].fd);
		free(s->added[i].reopen_path);
	}
	free(s->added);
	for (size_t i = 0; i < s->n_listeners; i++)
		close(s->listeners[i]);
	free(s->listeners);
	while (s->reopens) {
		reopen *r = s->reopens;
		s->reopens = r->next;
		free(r->path);
		free(r);
	}
	close(s->wake_fd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->job_cond);
	pthread_cond_destroy(&s->idle_cond);
	free(s->methods);
	free(s);
}

static int add_fd(sp_ttrpc_server *s, int fd, const char *reopen_path,
		  bool listener, sp_err **err)
{
	if (fd < 0)
		return sp_error(err, SP_ERR_INVALID, "ttrpc server: invalid fd %d", fd);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		return sp_error_sys(err, e, "ttrpc server: fd %d", fd);
	}
	pthread_mutex_lock(&s->mu);
	s->added = sp_xrealloc(s->added, (s->n_added + 1) * sizeof(*s->added));
	s->added[s->n_added++] = (added){fd, reopen_path ? sp_xstrdup(reopen_path) : NULL,
					 listener};
	pthread_mutex_unlock(&s->mu);
	wake(s);
	return 0;
}

int sp_ttrpc_server_add_listener(sp_ttrpc_server *s, int listen_fd, sp_err **err)
{
	return add_fd(s, listen_fd, NULL, true, err);
}

int sp_ttrpc_server_add_stream(sp_ttrpc_server *s, int fd,
			       const char *reopen_path, sp_err **err)
{
	return add_fd(s, fd, reopen_path, false, err);
}

void sp_ttrpc_server_shutdown(sp_ttrpc_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->shutdown = true;
	pthread_mutex_unlock(&s->mu);
	wake(s);
}

/* ---- connections ---- */

static conn *conn_new(sp_ttrpc_server *s, int fd, const char *reopen_path)
{
	conn *c = sp_xzalloc(sizeof(*c));
	c->srv = s;
	atomic_init(&c->refs, 1);
	atomic_init(&c->closed, false);
	c->fd = fd;
	pthread_mutex_init(&c->mu, NULL);
	sp_ttrpc_peer_cred(fd, &c->pid, &c->uid, &c->gid);
	if (reopen_path) {
		c->reopen_path = sp_xstrdup(reopen_path);
		c->name = sp_xasprintf("stream `%s`", reopen_path);
	} else if (c->pid > 0) {
		c->name = sp_xasprintf("connection from pid %d (uid %u)", (int)c->pid,
				       (unsigned)c->uid);
	} else {
		c->name = sp_xasprintf("connection on fd %d", fd);
	}
	c->inflight = sp_xcalloc(s->opts.max_inflight, sizeof(*c->inflight));
	if (s->opts.on_connect) {
		c->data = s->opts.on_connect(s->user, fd);
		c->connected_cb = true;
	}
	return c;
}

static void conn_unref(conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	sp_ttrpc_server *s = c->srv;
	if (c->connected_cb && s->opts.on_disconnect)
		s->opts.on_disconnect(s->user, c->data);
	if (c->fd >= 0)
		close(c->fd);
	sp_buf_free(&c->rbuf);
	sp_buf_free(&c->out);
	pthread_mutex_destroy(&c->mu);
	free(c->inflight);
	free(c->reopen_path);
	free(c->name);
	free(c);
}

/* Closes the socket; workers still holding the conn drop their responses.
 * Its handlers are cancelled: nobody waits for their answers. */
static void conn_close(conn *c)
{
	atomic_store(&c->closed, true);
	pthread_mutex_lock(&c->mu);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	sp_buf_free(&c->out);
	c->out_off = 0;
	bool busy = c->n_inflight > 0;
	pthread_mutex_unlock(&c->mu);
	if (busy && c->srv->opts.on_cancel)
		c->srv->opts.on_cancel(c->srv->user);
}

bool sp_ttrpc_call_cancelled(const sp_ttrpc_call *call)
{
	const conn *c = call->conn_;
	return c && atomic_load(&c->closed);
}

/* Writes what the socket takes now; c->mu held. False on a dead socket. */
static bool flush_locked(conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = sp_ttrpc_write(c->fd, c->out.data + c->out_off,
					   c->out.len - c->out_off);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		return false;
	}
	c->out.len = 0;
	c->out_off = 0;
	if (c->out.cap > (1u << 20)) {
		sp_buf_free(&c->out); /* don't keep a big buffer per idle peer */
	}
	return true;
}

/* Queues a frame and writes as much as the socket takes. from_worker:
 * wake the I/O thread if something is left for it to flush. */
static void conn_send(conn *c, uint32_t stream_id, const uint8_t *body,
		      size_t len, bool from_worker)
{
	uint8_t hdr[SP_TTRPC_HEADER_LEN];
	sp_ttrpc_header h = {(uint32_t)len, stream_id, SP_TTRPC_TYPE_RESPONSE, 0};
	sp_ttrpc_header_encode(hdr, &h);
	bool left = false;
	pthread_mutex_lock(&c->mu);
	if (c->fd >= 0) {
		bool was_empty = c->out_off == c->out.len;
		sp_buf_put(&c->out, hdr, sizeof(hdr));
		sp_buf_put(&c->out, body, len);
		if (was_empty && !flush_locked(c)) {
			/* The I/O thread sees the error on its next read. */
			c->out.len = c->out_off = 0;
		}
		left = c->out_off < c->out.len;
	}
	pthread_mutex_unlock(&c->mu);
	if (left && from_worker)
		wake(c->srv);
}

static void send_status(conn *c, uint32_t stream_id, int code, const char *msg,
			bool from_worker)
{
	size_t n;
	uint8_t *body = sp_ttrpc_response_encode(&n, code, msg, NULL, 0);
	conn_send(c, stream_id, body, n, from_worker);
	free(body);
}

static bool inflight_has(conn *c, uint32_t id)
{
	for (size_t i = 0; i < c->n_inflight; i++)
		if (c->inflight[i] == id)
			return true;
	return false;
}

/* Removes id; returns whether the connection was at its limit. */
static bool inflight_del(conn *c, uint32_t id)
{
	pthread_mutex_lock(&c->mu);
	bool was_full = c->n_inflight >= c->srv->opts.max_inflight;
	for (size_t i = 0; i < c->n_inflight; i++) {
		if (c->inflight[i] == id) {
			c->inflight[i] = c->inflight[--c->n_inflight];
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
	return was_full;
}

/* ---- workers ---- */

static void run_job(sp_ttrpc_server *s, job *j)
{
	conn *c = j->c;
	sp_ttrpc_request *r = j->req;
	uint8_t *out = NULL;
	size_t out_len = 0;
	char *msg = NULL;
	int code;
	if (atomic_load(&c->closed)) {
		/* Nobody waits for the answer: cancelled before it started. */
		code = SP_RPC_CANCELLED;
	} else if (j->deadline && sp_ttrpc_now_ns() >= j->deadline) {
		code = SP_RPC_DEADLINE_EXCEEDED;
		msg = sp_xstrdup("context deadline exceeded");
	} else {
		sp_ttrpc_call call = {
			.service = r->service,
			.method = r->method,
			.payload = r->payload,
			.payload_len = r->payload_len,
			.deadline_ns = j->deadline,
			.metadata = r->metadata,
			.n_metadata = r->n_metadata,
			.peer_pid = c->pid,
			.peer_uid = c->uid,
			.peer_gid = c->gid,
			.conn_data = c->data,
			.conn_ = c,
		};
		code = j->fn(s->user, &call, &out, &out_len, &msg);
		if (code < 0)
			code = sp_rpc_code_from_err(code);
		if (code > SP_RPC_UNAUTHENTICATED)
			code = SP_RPC_UNKNOWN;
		if (code != SP_RPC_OK) {
			free(out);
			out = NULL;
			out_len = 0;
		}
	}
	size_t n;
	uint8_t *body = sp_ttrpc_response_encode(&n, code, msg, out, out_len);
	if (n > SP_TTRPC_MAX_MESSAGE) {
		/* Go would send it and let the client discard it; saying why
		 * is more useful and costs the peer nothing. */
		sp_log_warn("ttrpc: %s/%s: response of %zu bytes exceeds the %u-byte limit; answering RESOURCE_EXHAUSTED",
			    r->service, r->method, n, SP_TTRPC_MAX_MESSAGE);
		free(body);
		char *m = sp_xasprintf("response of %zu bytes exceeds maximum message size of %u",
				       n, SP_TTRPC_MAX_MESSAGE);
		body = sp_ttrpc_response_encode(&n, SP_RPC_RESOURCE_EXHAUSTED, m, NULL, 0);
		free(m);
	}
	/* The stream id is free again before its response leaves, so a
	 * client that reuses it once answered is never refused. */
	bool was_full = inflight_del(c, j->stream_id);
	conn_send(c, j->stream_id, body, n, true);
	free(body);
	free(out);
	free(msg);
	if (was_full)
		wake(s); /* the I/O thread may read this connection again */
	sp_ttrpc_request_free(r);
	conn_unref(c);
	free(j);
}

/* The first queued job this worker may run (s->mu held): a control job
 * always, another only while fewer than workers - reserved_workers
 * others run and its connection runs fewer than max_running_per_conn.
 * Unlinked from the queue; NULL if none. */
static job *take_job(sp_ttrpc_server *s)
{
	bool plain_ok = s->running_plain < s->opts.workers - s->opts.reserved_workers;
	job *prev = NULL;
	for (job *j = s->jq_head; j; prev = j, j = j->next) {
		if (!j->control &&
		    (!plain_ok || j->c->running_plain >= s->opts.max_running_per_conn))
			continue;
		if (prev)
			prev->next = j->next;
		else
			s->jq_head = j->next;
		if (s->jq_tail == j)
			s->jq_tail = prev;
		j->next = NULL;
		s->queued--;
		return j;
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	sp_ttrpc_server *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		job *j = NULL;
		while (!s->stop_workers && !(j = take_job(s)))
			pthread_cond_wait(&s->job_cond, &s->mu);
		if (!j)
			break;
		bool plain = !j->control;
		conn *c = j->c;
		atomic_fetch_add(&c->refs, 1); /* run_job drops the job's */
		s->running++;
		s->running_plain += plain;
		c->running_plain += plain;
		pthread_mutex_unlock(&s->mu);
		run_job(s, j);
		pthread_mutex_lock(&s->mu);
		s->running--;
		s->running_plain -= plain;
		c->running_plain -= plain;
		pthread_mutex_unlock(&s->mu);
		conn_unref(c);
		pthread_mutex_lock(&s->mu);
		/* A job held back by the limit may run now. */
		if (plain && s->jq_head)
			pthread_cond_signal(&s->job_cond);
		if (s->shutdown && !s->running && !s->jq_head)
			wake(s);
	}
	s->live_workers--;
	pthread_cond_broadcast(&s->idle_cond);
	pthread_mutex_unlock(&s->mu);
	server_unref(s);
	return NULL;
}

static int spawn_worker(sp_ttrpc_server *s);

static void enqueue(sp_ttrpc_server *s, job *j)
{
	pthread_mutex_lock(&s->mu);
	if (s->jq_tail)
		s->jq_tail->next = j;
	else
		s->jq_head = j;
	s->jq_tail = j;
	s->queued++;
	/* Workers start as they are needed, up to opts.workers: one more
	 * when the queue holds more jobs than there are workers not in a
	 * handler (each thread costs the guest memory; docs/ttrpc.md). */
	if (s->queued > s->live_workers - s->running && s->live_workers < s->opts.workers &&
	    !s->stop_workers) {
		int r = spawn_worker(s);
		if (r)
			sp_log_warn("ttrpc server: starting a worker thread: %s (%u running)",
				    strerror(r), s->live_workers);
	}
	pthread_cond_signal(&s->job_cond);
	pthread_mutex_unlock(&s->mu);
}

/* ---- reading and dispatch (I/O thread) ---- */

static void handle_request(sp_ttrpc_server *s, conn *c, const sp_ttrpc_header *h,
			   const uint8_t *body)
{
	sp_ttrpc_request *req = NULL;
	int code;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_ttrpc_request_decode(&req, body, h->length, &code, &err) < 0) {
		sp_log_debug("ttrpc: %s: stream %u: %s", c->name, h->stream_id,
			     sp_err_msg(err));
		send_status(c, h->stream_id, code, sp_err_msg(err), false);
		return;
	}
	if (h->stream_id % 2 != 1) {
		send_status(c, h->stream_id, SP_RPC_INVALID_ARGUMENT,
			    "StreamID must be odd for client initiated streams", false);
		sp_ttrpc_request_free(req);
		return;
	}
	bool known;
	const sp_ttrpc_method *m = find_method(s, req->service, req->method, &known);
	if (!m) {
		char *msg = known ? sp_xasprintf("method %s", req->method)
				  : sp_xasprintf("service %s", req->service);
		send_status(c, h->stream_id, SP_RPC_UNIMPLEMENTED, msg, false);
		free(msg);
		sp_ttrpc_request_free(req);
		return;
	}
	uint64_t deadline = 0;
	if (req->timeout_nano < 0) {
		deadline = 1; /* already passed */
	} else if (req->timeout_nano > 0) {
		deadline = sp_ttrpc_deadline((uint64_t)req->timeout_nano);
	}
	pthread_mutex_lock(&c->mu);
	bool dup = inflight_has(c, h->stream_id);
	if (!dup)
		c->inflight[c->n_inflight++] = h->stream_id;
	pthread_mutex_unlock(&c->mu);
	if (dup) {
		/* The first request keeps the stream; refuse the second. */
		char *msg = sp_xasprintf("StreamID %u is already in use", h->stream_id);
		send_status(c, h->stream_id, SP_RPC_INVALID_ARGUMENT, msg, false);
		free(msg);
		sp_ttrpc_request_free(req);
		return;
	}
	job *j = sp_xzalloc(sizeof(*j));
	atomic_fetch_add(&c->refs, 1);
	*j = (job){c, h->stream_id, req, m->fn, deadline,
		   (m->flags & SP_TTRPC_CONTROL) != 0, NULL};
	enqueue(s, j);
}

static bool conn_throttled(conn *c)
{
	pthread_mutex_lock(&c->mu);
	bool t = c->n_inflight >= c->srv->opts.max_inflight ||
		 c->out.len - c->out_off > MAX_PENDING_OUT;
	pthread_mutex_unlock(&c->mu);
	return t;
}

/* Consumes complete frames from the read buffer. False: close the conn. */
static bool process_frames(sp_ttrpc_server *s, conn *c, bool draining)
{
	for (;;) {
		size_t avail = c->rbuf.len - c->rpos;
		if (c->skip) {
			size_t d = avail < c->skip ? avail : (size_t)c->skip;
			c->rpos += d;
			c->skip -= d;
			if (c->skip)
				break;
			continue;
		}
		if (avail < SP_TTRPC_HEADER_LEN || draining || conn_throttled(c))
			break;
		sp_ttrpc_header h;
		sp_ttrpc_header_decode(&h, c->rbuf.data + c->rpos);
		if (h.length > SP_TTRPC_MAX_MESSAGE) {
			if (h.length > SP_TTRPC_MAX_SKIP) {
				sp_log_warn("ttrpc: %s sent a frame of %u bytes (limit %u); closing the connection",
					    c->name, h.length, SP_TTRPC_MAX_MESSAGE);
				return false;
			}
			sp_log_info("ttrpc: %s: stream %u: discarding a frame of %u bytes (limit %u)",
				    c->name, h.stream_id, h.length, SP_TTRPC_MAX_MESSAGE);
			c->rpos += SP_TTRPC_HEADER_LEN;
			c->skip = h.length;
			if (h.type == SP_TTRPC_TYPE_REQUEST) {
				char *msg = sp_xasprintf("message length %u exceed maximum message size of %u",
							 h.length, SP_TTRPC_MAX_MESSAGE);
				send_status(c, h.stream_id, SP_RPC_RESOURCE_EXHAUSTED, msg, false);
				free(msg);
			}
			continue;
		}
		if (avail < SP_TTRPC_HEADER_LEN + (size_t)h.length)
			break;
		const uint8_t *body = c->rbuf.data + c->rpos + SP_TTRPC_HEADER_LEN;
		c->rpos += SP_TTRPC_HEADER_LEN + h.length;
		if (h.type == SP_TTRPC_TYPE_REQUEST)
			handle_request(s, c, &h, body);
		else
			/* Go's v1.1 server ignores other types, for compatibility
			 * with newer peers; so do we. */
			sp_log_debug("ttrpc: %s: ignoring a frame of type %u", c->name,
				     h.type);
	}
	/* Compact: keep unconsumed bytes at the start of the buffer. */
	if (c->rpos == c->rbuf.len) {
		c->rbuf.len = c->rpos = 0;
		if (c->rbuf.cap > (1u << 20))
			sp_buf_free(&c->rbuf);
	} else if (c->rpos > 0) {
		memmove(c->rbuf.data, c->rbuf.data + c->rpos, c->rbuf.len - c->rpos);
		c->rbuf.len -= c->rpos;
		c->rpos = 0;
	}
	return true;
}

/* Reads what is there. False: the connection ended or broke. */
static bool conn_read(sp_ttrpc_server *s, conn *c)
{
	for (int round = 0; round < 4; round++) {
		size_t want = READ_CHUNK;
		if (!c->skip && c->rbuf.len >= SP_TTRPC_HEADER_LEN) {
			/* Room for the whole frame being received. */
			uint32_t fl = sp_be32(c->rbuf.data);
			if (fl <= SP_TTRPC_MAX_MESSAGE &&
			    SP_TTRPC_HEADER_LEN + fl > c->rbuf.len + want)
				want = SP_TTRPC_HEADER_LEN + fl - c->rbuf.len;
		}
		sp_buf_reserve(&c->rbuf, want);
		ssize_t r = read(c->fd, c->rbuf.data + c->rbuf.len, c->rbuf.cap - c->rbuf.len);
		if (r == 0) {
			if (c->rbuf.len || c->skip)
				sp_log_warn("ttrpc: %s ended in the middle of a frame", c->name);
			else
				sp_log_debug("ttrpc: %s closed", c->name);
			return false;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			sp_log_debug("ttrpc: %s: read: %s", c->name, strerror(errno));
			return false;
		}
		c->rbuf.len += (size_t)r;
		if (!process_frames(s, c, false))
			return false;
		if (conn_throttled(c))
			return true;
	}
	return true;
}

static void schedule_reopen(sp_ttrpc_server *s, const char *path, uint64_t backoff)
{
	reopen *r = sp_xzalloc(sizeof(*r));
	r->path = sp_xstrdup(path);
	r->backoff = backoff;
	r->at = sp_ttrpc_now_ns() + backoff;
	r->next = s->reopens;
	s->reopens = r;
}

static void conn_add(sp_ttrpc_server *s, conn *c)
{
	c->next = s->conns;
	s->conns = c;
}

/* Ends a connection; a stream with a reopen path is reopened later. */
static void conn_drop(sp_ttrpc_server *s, conn *c, bool serving)
{
	conn **pp = &s->conns;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	if (c->reopen_path && serving)
		schedule_reopen(s, c->reopen_path, REOPEN_MIN_NS);
	conn_close(c);
	conn_unref(c);
}

static void try_reopens(sp_ttrpc_server *s)
{
	uint64_t now = sp_ttrpc_now_ns();
	for (reopen **pp = &s->reopens; *pp;) {
		reopen *r = *pp;
		if (r->at > now) {
			pp = &r->next;
			continue;
		}
		int fd = -1;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_ttrpc_open_serial(&fd, r->path, 1000000000ull, &err) == 0) {
			int fl = fcntl(fd, F_GETFL);
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			/* A virtio-serial port with no host attached polls
			 * POLLHUP at once and reads EOF: it is dropped and tried
			 * again after the backoff below. */
			conn *c = conn_new(s, fd, r->path);
			conn_add(s, c);
			sp_log_debug("ttrpc: reopened %s", r->path);
			*pp = r->next;
			free(r->path);
			free(r);
			continue;
		}
		r->backoff = r->backoff * 2 > REOPEN_MAX_NS ? REOPEN_MAX_NS : r->backoff * 2;
		if (r->backoff == REOPEN_MAX_NS)
			sp_log_debug("ttrpc: reopening %s: %s", r->path, sp_err_msg(err));
		r->at = now + r->backoff;
		pp = &r->next;
	}
}

static void accept_all(sp_ttrpc_server *s, int lfd)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				sp_log_warn("ttrpc: accept: %s", strerror(errno));
				/* EMFILE and the like: don't spin on it. */
				poll(NULL, 0, 10);
			}
			return;
		}
		conn_add(s, conn_new(s, fd, NULL));
	}
}

/* Registrations made since the last loop. */
static void take_added(sp_ttrpc_server *s)
{
	pthread_mutex_lock(&s->mu);
	added *a = s->added;
	size_t n = s->n_added;
	s->added = NULL;
	s->n_added = 0;
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (a[i].listener) {
			s->listeners = sp_xrealloc(s->listeners,
						   (s->n_listeners + 1) * sizeof(int));
			s->listeners[s->n_listeners++] = a[i].fd;
		} else {
			conn_add(s, conn_new(s, a[i].fd, a[i].reopen_path));
			free(a[i].reopen_path);
		}
	}
	free(a);
}

static bool all_idle(sp_ttrpc_server *s)
{
	pthread_mutex_lock(&s->mu);
	bool idle = !s->jq_head && !s->running;
	pthread_mutex_unlock(&s->mu);
	if (!idle)
		return false;
	for (conn *c = s->conns; c; c = c->next) {
		pthread_mutex_lock(&c->mu);
		bool pending = c->fd >= 0 && c->out_off < c->out.len;
		pthread_mutex_unlock(&c->mu);
		if (pending)
			return false;
	}
	return true;
}

/* One more worker (s->mu held). 0 or an errno. */
static int spawn_worker(sp_ttrpc_server *s)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	atomic_fetch_add(&s->refs, 1);
	s->live_workers++;
	int r = pthread_create(&t, &attr, worker_main, s);
	if (r) {
		s->live_workers--;
		atomic_fetch_sub(&s->refs, 1);
	}
	pthread_attr_destroy(&attr);
	return r;
}

/* The first few workers; the others start when jobs wait (enqueue). */
static int start_workers(sp_ttrpc_server *s, sp_err **err)
{
	unsigned n = s->opts.workers < INITIAL_WORKERS ? s->opts.workers : INITIAL_WORKERS;
	pthread_mutex_lock(&s->mu);
	int r = 0;
	for (unsigned i = 0; i < n && !r; i++)
		r = spawn_worker(s);
	pthread_mutex_unlock(&s->mu);
	return r ? sp_error_sys(err, r, "ttrpc server: starting worker threads") : 0;
}

/* Tells the workers to finish and waits for them until deadline; a
 * handler still blocked then keeps its thread (and a server reference). */
static void stop_workers(sp_ttrpc_server *s, uint64_t deadline)
{
	struct timespec ts = {(time_t)(deadline / 1000000000ull),
			      (long)(deadline % 1000000000ull)};
	pthread_mutex_lock(&s->mu);
	s->stop_workers = true;
	/* Queued jobs not started are answered by nobody: drop them. */
	while (s->jq_head) {
		job *j = s->jq_head;
		s->jq_head = j->next;
		sp_ttrpc_request_free(j->req);
		conn_unref(j->c);
		free(j);
	}
	s->jq_tail = NULL;
	s->queued = 0;
	pthread_cond_broadcast(&s->job_cond);
	while (s->live_workers > 0) {
		if (pthread_cond_timedwait(&s->idle_cond, &s->mu, &ts) == ETIMEDOUT)
			break;
	}
	if (s->live_workers)
		sp_log_warn("ttrpc: %u handler(s) still running after shutdown; leaving them",
			    s->live_workers);
	pthread_mutex_unlock(&s->mu);
}

int sp_ttrpc_server_run(sp_ttrpc_server *s, sp_err **err)
{
	pthread_mutex_lock(&s->mu);
	bool ran = s->ran;
	s->ran = true;
	pthread_mutex_unlock(&s->mu);
	if (ran)
		return sp_error(err, SP_ERR_STATE, "ttrpc server: already ran");
	if (start_workers(s, err) < 0) {
		stop_workers(s, sp_ttrpc_deadline(DRAIN_NS));
		return SP_ERR_SYSTEM;
	}
	struct pollfd *pfds = NULL;
	conn **pconns = NULL;
	size_t cap = 0;
	uint64_t drain_deadline = 0;
	for (;;) {
		take_added(s);
		pthread_mutex_lock(&s->mu);
		bool shut = s->shutdown;
		pthread_mutex_unlock(&s->mu);
		if (shut && !drain_deadline) {
			drain_deadline = sp_ttrpc_deadline(DRAIN_NS);
			for (size_t i = 0; i < s->n_listeners; i++)
				close(s->listeners[i]);
			s->n_listeners = 0;
		}
		if (drain_deadline &&
		    (all_idle(s) || sp_ttrpc_now_ns() >= drain_deadline))
			break;

		size_t nconns = 0;
		for (conn *c = s->conns; c; c = c->next)
			nconns++;
		size_t need = 1 + s->n_listeners + nconns;
		if (need > cap) {
			cap = need * 2;
			pfds = sp_xrealloc(pfds, cap * sizeof(*pfds));
			pconns = sp_xrealloc(pconns, cap * sizeof(*pconns));
		}
		size_t n = 0;
		pfds[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		for (size_t i = 0; i < s->n_listeners; i++)
			pfds[n++] = (struct pollfd){.fd = s->listeners[i], .events = POLLIN};
		size_t first_conn = n;
		for (conn *c = s->conns; c; c = c->next) {
			short ev = 0;
			pthread_mutex_lock(&c->mu);
			if (c->out_off < c->out.len)
				ev |= POLLOUT;
			bool full = c->n_inflight >= s->opts.max_inflight ||
				    c->out.len - c->out_off > MAX_PENDING_OUT;
			pthread_mutex_unlock(&c->mu);
			if (!full && !drain_deadline)
				ev |= POLLIN;
			pconns[n] = c;
			pfds[n++] = (struct pollfd){.fd = c->fd, .events = ev};
		}
		int timeout = -1;
		uint64_t next = drain_deadline;
		for (reopen *r = s->reopens; r; r = r->next)
			if (!next || r->at < next)
				next = r->at;
		if (next)
			timeout = sp_ttrpc_poll_ms(next);
		int pr = poll(pfds, n, timeout);
		if (pr < 0 && errno != EINTR) {
			free(pfds);
			free(pconns);
			sp_error_sys(err, errno, "ttrpc server: poll");
			sp_ttrpc_server_shutdown(s);
			stop_workers(s, sp_ttrpc_deadline(DRAIN_NS));
			goto close_all;
		}
		if (pr > 0 && (pfds[0].revents & POLLIN)) {
			uint64_t v;
			ssize_t r = read(s->wake_fd, &v, sizeof(v));
			(void)r;
		}
		for (size_t i = 1; pr > 0 && i < first_conn; i++)
			if (pfds[i].revents & POLLIN)
				accept_all(s, pfds[i].fd);
		for (size_t i = first_conn; i < n; i++) {
			conn *c = pconns[i];
			short re = pr > 0 ? pfds[i].revents : 0;
			bool ok = true;
			if (re & POLLOUT) {
				pthread_mutex_lock(&c->mu);
				ok = flush_locked(c);
				pthread_mutex_unlock(&c->mu);
			}
			if (ok && (re & (POLLIN | POLLHUP | POLLERR)))
				ok = (re & POLLIN) ? conn_read(s, c) : false;
			/* Frames left buffered while the connection was at its
			 * in-flight limit. */
			if (ok && !drain_deadline && c->rbuf.len > c->rpos)
				ok = process_frames(s, c, false);
			if (!ok)
				conn_drop(s, c, !drain_deadline);
		}
		if (!drain_deadline)
			try_reopens(s);
	}
	free(pfds);
	free(pconns);
	stop_workers(s, drain_deadline ? drain_deadline : sp_ttrpc_deadline(DRAIN_NS));
close_all:
	while (s->conns)
		conn_drop(s, s->conns, false);
	return err && *err ? (*err)->code : 0;
}

void sp_ttrpc_server_free(sp_ttrpc_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_drop(s, s->conns, false);
	server_unref(s);
}

const char *sp_ttrpc_call_meta(const sp_ttrpc_call *c, const char *key)
{
	for (size_t i = 0; i < c->n_metadata; i++)
		if (strcasecmp(c->metadata[i].key, key) == 0)
			return c->metadata[i].value;
	return NULL;
}
