/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC client. Callers write their request frame themselves (one writer
 * at a time) and then sleep on their own condition variable; one reader
 * thread per connection reads response frames and hands each to the call
 * waiting on its stream id. A connection that breaks fails every pending
 * call with UNAVAILABLE; a client that knows its address redials on the
 * next call. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <sys/eventfd.h>

#include "sealpod/bytes.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "ttrpc/internal.h"
#include "ttrpc/wire.h"

typedef struct pending pending;
struct pending {
	uint32_t id;
	bool done;
	int err_code;       /* sp_err code for transport failures, else 0 */
	int rpc_code;
	char *msg;
	uint8_t *payload;
	size_t payload_len;
	pthread_cond_t cond;
	pending *next;
};

struct sp_ttrpc_client {
	pthread_mutex_t mu;   /* everything below except fd */
	pthread_mutex_t wmu;  /* one writer at a time; guards fd and gen */
	pthread_cond_t state_cond;
	int fd;
	unsigned gen;         /* bumped at every redial */
	int wake_fd;          /* tells the reader to stop */
	char *address;        /* NULL: no redial */
	uint64_t dial_timeout;
	uint32_t next_id;
	pending *pending;
	pthread_t reader;
	bool reader_started;
	bool broken;
	int broken_code;
	char *broken_msg;
	bool reconnecting;
	bool closing;
};

static void complete(pending *p, int err_code, int rpc_code, const char *msg)
{
	p->done = true;
	p->err_code = err_code;
	p->rpc_code = rpc_code;
	p->msg = sp_xstrdup(msg ? msg : "");
	pthread_cond_signal(&p->cond);
}

/* Removes and returns the pending call with this id; c->mu held. */
static pending *take_pending(sp_ttrpc_client *c, uint32_t id)
{
	for (pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			pending *p = *pp;
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

/* Marks the connection broken and fails every pending call; c->mu held. */
static void break_locked(sp_ttrpc_client *c, int code, const char *why)
{
	if (!c->broken) {
		c->broken = true;
		c->broken_code = code;
		free(c->broken_msg);
		c->broken_msg = sp_xstrdup(why);
	}
	while (c->pending) {
		pending *p = c->pending;
		c->pending = p->next;
		complete(p, code, SP_RPC_UNAVAILABLE, why);
	}
}

static void deliver(sp_ttrpc_client *c, const sp_ttrpc_header *h,
		    const uint8_t *body)
{
	sp_ttrpc_response resp;
	_cleanup_err_ sp_err *err = NULL;
	int r = sp_ttrpc_response_decode(&resp, body, h->length, &err);
	pthread_mutex_lock(&c->mu);
	pending *p = take_pending(c, h->stream_id);
	if (!p) {
		/* A call that timed out, or a confused peer. */
		sp_log_debug("ttrpc client: response for unknown stream %u", h->stream_id);
	} else if (r < 0) {
		complete(p, SP_ERR_PROTOCOL, SP_RPC_INTERNAL, sp_err_msg(err));
	} else {
		p->payload = resp.payload;
		p->payload_len = resp.payload_len;
		resp.payload = NULL;
		complete(p, 0, resp.code, resp.message);
	}
	pthread_mutex_unlock(&c->mu);
	if (r == 0)
		sp_ttrpc_response_clear(&resp);
}

static void *reader_main(void *arg)
{
	sp_ttrpc_client *c = arg;
	int fd = c->fd; /* stable while this reader lives */
	sp_buf buf = SP_BUF_INIT;
	size_t pos = 0;
	uint64_t skip = 0;
	int code = SP_ERR_PROTOCOL;
	char *why = NULL;
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = c->wake_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			code = SP_ERR_SYSTEM;
			why = sp_xasprintf("poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			why = sp_xstrdup("connection dropped by the client (closed, or a send failed or timed out)");
			break;
		}
		size_t want = 64u << 10;
		if (!skip && buf.len - pos >= SP_TTRPC_HEADER_LEN) {
			uint32_t fl = sp_be32(buf.data + pos);
			if (fl <= SP_TTRPC_MAX_MESSAGE)
				want = SP_TTRPC_HEADER_LEN + fl;
		}
		sp_buf_reserve(&buf, want);
		ssize_t n = read(fd, buf.data + buf.len, buf.cap - buf.len);
		if (n == 0) {
			why = c->address ? sp_xasprintf("connection to `%s` closed by the server",
							c->address)
					 : sp_xstrdup("connection closed by the server");
			break;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			code = SP_ERR_SYSTEM;
			why = sp_xasprintf("read: %s", strerror(errno));
			break;
		}
		buf.len += (size_t)n;
		for (;;) {
			size_t avail = buf.len - pos;
			if (skip) {
				size_t d = avail < skip ? avail : (size_t)skip;
				pos += d;
				skip -= d;
				if (skip)
					break;
				continue;
			}
			if (avail < SP_TTRPC_HEADER_LEN)
				break;
			sp_ttrpc_header h;
			sp_ttrpc_header_decode(&h, buf.data + pos);
			if (h.length > SP_TTRPC_MAX_MESSAGE) {
				if (h.length > SP_TTRPC_MAX_SKIP) {
					why = sp_xasprintf("server sent a frame of %u bytes (limit %u)",
							   h.length, SP_TTRPC_MAX_MESSAGE);
					goto out;
				}
				/* As Go does: throw it away, fail that call. */
				pos += SP_TTRPC_HEADER_LEN;
				skip = h.length;
				pthread_mutex_lock(&c->mu);
				pending *pc = take_pending(c, h.stream_id);
				if (pc) {
					char *m = sp_xasprintf("message length %u exceed maximum message size of %u",
							       h.length, SP_TTRPC_MAX_MESSAGE);
					complete(pc, 0, SP_RPC_RESOURCE_EXHAUSTED, m);
					free(m);
				}
				pthread_mutex_unlock(&c->mu);
				continue;
			}
			if (avail < SP_TTRPC_HEADER_LEN + (size_t)h.length)
				break;
			const uint8_t *body = buf.data + pos + SP_TTRPC_HEADER_LEN;
			pos += SP_TTRPC_HEADER_LEN + h.length;
			if (h.type == SP_TTRPC_TYPE_RESPONSE)
				deliver(c, &h, body);
			else
				sp_log_debug("ttrpc client: ignoring a frame of type %u", h.type);
		}
		if (pos == buf.len) {
			buf.len = pos = 0;
			if (buf.cap > (1u << 20))
				sp_buf_free(&buf);
		} else if (pos) {
			memmove(buf.data, buf.data + pos, buf.len - pos);
			buf.len -= pos;
			pos = 0;
		}
	}
out:
	sp_buf_free(&buf);
	pthread_mutex_lock(&c->mu);
	break_locked(c, code, why);
	pthread_cond_broadcast(&c->state_cond);
	pthread_mutex_unlock(&c->mu);
	free(why);
	return NULL;
}

/* Installs a connected fd and starts its reader; c->mu held. */
static int attach(sp_ttrpc_client *c, int fd, sp_err **err)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	pthread_mutex_lock(&c->wmu);
	c->fd = fd;
	c->gen++;
	pthread_mutex_unlock(&c->wmu);
	uint64_t v;
	while (read(c->wake_fd, &v, sizeof(v)) > 0)
		;
	c->broken = false;
	int r = pthread_create(&c->reader, NULL, reader_main, c);
	if (r) {
		c->broken = true;
		c->broken_code = SP_ERR_SYSTEM;
		free(c->broken_msg);
		c->broken_msg = sp_xstrdup("cannot start the reader thread");
		return sp_error_sys(err, r, "ttrpc client: starting the reader thread");
	}
	c->reader_started = true;
	return 0;
}

static sp_ttrpc_client *client_alloc(void)
{
	sp_ttrpc_client *c = sp_xzalloc(sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->wmu, NULL);
	pthread_cond_init(&c->state_cond, NULL);
	c->fd = -1;
	c->next_id = 1;
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wake_fd < 0)
		sp_oom();
	return c;
}

sp_ttrpc_client *sp_ttrpc_client_new(int fd)
{
	sp_ttrpc_client *c = client_alloc();
	pthread_mutex_lock(&c->mu);
	if (attach(c, fd, NULL) < 0)
		sp_log_error("ttrpc client: cannot start the reader thread; calls will fail");
	pthread_mutex_unlock(&c->mu);
	return c;
}

int sp_ttrpc_client_connect(sp_ttrpc_client **out, const char *address,
			    uint64_t timeout_ns, sp_err **err)
{
	int fd;
	if (sp_ttrpc_dial(&fd, address, timeout_ns, err) < 0)
		return (*err) ? (*err)->code : SP_ERR_SYSTEM;
	sp_ttrpc_client *c = client_alloc();
	c->address = sp_xstrdup(address);
	/* A serial port is one byte stream that outlives host connections:
	 * a request an earlier client left behind (say, a health check sent
	 * while the guest booted) may still be in flight in the guest under
	 * stream 1. Starting at a random odd id keeps clients apart. */
	if (!strncmp(address, "serial:", 7)) {
		uint32_t r = 0;
		if (getrandom(&r, sizeof(r), 0) == sizeof(r))
			c->next_id = (r & 0x3fffffffu) | 1u;
	}
	c->dial_timeout = timeout_ns;
	pthread_mutex_lock(&c->mu);
	int r = attach(c, fd, err);
	pthread_mutex_unlock(&c->mu);
	if (r < 0) {
		sp_ttrpc_client_free(c);
		return r;
	}
	*out = c;
	return 0;
}

/* Makes sure a live connection is there, redialling once if the client
 * knows its address; c->mu held (dropped while dialling). */
static int ensure_connected(sp_ttrpc_client *c, sp_err **err)
{
	while (c->reconnecting)
		pthread_cond_wait(&c->state_cond, &c->mu);
	if (c->closing)
		return sp_error(err, SP_ERR_STATE, "client is being closed");
	if (!c->broken)
		return 0;
	if (!c->address)
		return sp_error(err, c->broken_code, "%s", c->broken_msg);
	c->reconnecting = true;
	pthread_mutex_unlock(&c->mu);
	if (c->reader_started) {
		pthread_join(c->reader, NULL);
		c->reader_started = false;
	}
	pthread_mutex_lock(&c->wmu);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&c->wmu);
	int fd = -1;
	_cleanup_err_ sp_err *derr = NULL;
	int r = sp_ttrpc_dial(&fd, c->address, c->dial_timeout, &derr);
	pthread_mutex_lock(&c->mu);
	if (r == 0)
		r = attach(c, fd, err);
	else
		r = sp_error(err, derr->code, "%s (the connection had broken: %s)",
			     sp_err_msg(derr), c->broken_msg);
	c->reconnecting = false;
	pthread_cond_broadcast(&c->state_cond);
	return r;
}

static int fail_call(sp_err **err, int *rpc_code_out, int rpc_code,
		     const char *service, const char *method)
{
	if (rpc_code_out)
		*rpc_code_out = rpc_code;
	if (err && *err)
		return sp_error_wrap(err, "%s/%s", service, method);
	return sp_error(err, SP_ERR_PROTOCOL, "%s/%s: failed", service, method);
}

int sp_ttrpc_client_call(sp_ttrpc_client *c, const char *service,
			 const char *method, const uint8_t *req, size_t req_len,
			 const sp_ttrpc_kv *metadata, size_t n_metadata,
			 uint64_t timeout_ns, uint8_t **resp, size_t *resp_len,
			 int *rpc_code, sp_err **err)
{
	if (resp)
		*resp = NULL;
	if (resp_len)
		*resp_len = 0;
	if (rpc_code)
		*rpc_code = SP_RPC_UNKNOWN;
	if (!c || !service || !method || (!req && req_len)) {
		if (rpc_code)
			*rpc_code = SP_RPC_INVALID_ARGUMENT;
		return sp_error(err, SP_ERR_INVALID, "ttrpc call: missing client, service, method or payload");
	}
	int64_t tn = timeout_ns > INT64_MAX ? INT64_MAX : (int64_t)timeout_ns;
	size_t body_len;
	_cleanup_free_ uint8_t *body = sp_ttrpc_request_encode(
		&body_len, service, method, req, req_len, metadata, n_metadata, tn);
	if (body_len > SP_TTRPC_MAX_MESSAGE) {
		if (rpc_code)
			*rpc_code = SP_RPC_RESOURCE_EXHAUSTED;
		return sp_error(err, SP_ERR_LIMIT,
				"%s/%s: request of %zu bytes exceeds the ttrpc limit of %u bytes; send less per call",
				service, method, body_len, SP_TTRPC_MAX_MESSAGE);
	}
	size_t frame_len;
	uint64_t deadline = sp_ttrpc_deadline(timeout_ns);

	pthread_mutex_lock(&c->mu);
	if (ensure_connected(c, err) < 0) {
		pthread_mutex_unlock(&c->mu);
		return fail_call(err, rpc_code, SP_RPC_UNAVAILABLE, service, method);
	}
	pending *p = sp_xzalloc(sizeof(*p));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->id = c->next_id;
	c->next_id += 2; /* odd ids, wrapping to odd ids */
	p->next = c->pending;
	c->pending = p;
	unsigned gen = c->gen;
	pthread_mutex_unlock(&c->mu);

	_cleanup_free_ uint8_t *frame = sp_ttrpc_frame_build(
		&frame_len, p->id, SP_TTRPC_TYPE_REQUEST, body, body_len);
	_cleanup_err_ sp_err *werr = NULL;
	pthread_mutex_lock(&c->wmu);
	int wr = c->gen == gen && c->fd >= 0
			 ? sp_ttrpc_write_all(c->fd, frame, frame_len, deadline, &werr)
			 : sp_error(&werr, SP_ERR_PROTOCOL, "connection was replaced");
	pthread_mutex_unlock(&c->wmu);

	pthread_mutex_lock(&c->mu);
	if (wr < 0 && !p->done) {
		/* Part of a frame may be out: the stream is unusable now. */
		uint64_t one = 1;
		ssize_t ignored = write(c->wake_fd, &one, sizeof(one));
		(void)ignored;
		take_pending(c, p->id);
		complete(p, werr->code, wr == SP_ERR_TIMEOUT ? SP_RPC_DEADLINE_EXCEEDED
							      : SP_RPC_UNAVAILABLE,
			 sp_err_msg(werr));
		/* Broken now, not when the reader notices: the next call
		 * must redial rather than write to this stream again. */
		if (c->gen == gen)
			break_locked(c, SP_ERR_PROTOCOL, "connection dropped after a failed send");
	}
	while (!p->done) {
		if (!deadline) {
			pthread_cond_wait(&p->cond, &c->mu);
			continue;
		}
		struct timespec ts = {(time_t)(deadline / 1000000000ull),
				      (long)(deadline % 1000000000ull)};
		if (pthread_cond_timedwait(&p->cond, &c->mu, &ts) == ETIMEDOUT &&
		    !p->done) {
			take_pending(c, p->id);
			char *m = sp_xasprintf("no response within %.3f s", (double)timeout_ns / 1e9);
			complete(p, SP_ERR_TIMEOUT, SP_RPC_DEADLINE_EXCEEDED, m);
			free(m);
		}
	}
	pthread_mutex_unlock(&c->mu);

	int ret = 0;
	if (rpc_code)
		*rpc_code = p->rpc_code;
	if (p->err_code) {
		ret = sp_error(err, p->err_code, "%s/%s: %s", service, method, p->msg);
	} else if (p->rpc_code != SP_RPC_OK) {
		ret = sp_error(err, sp_err_from_rpc_code(p->rpc_code), "%s/%s: %s: %s",
			       service, method, sp_rpc_code_name(p->rpc_code), p->msg);
	} else {
		if (resp) {
			*resp = p->payload;
			p->payload = NULL;
		}
		if (resp_len)
			*resp_len = p->payload_len;
	}
	pthread_cond_destroy(&p->cond);
	free(p->payload);
	free(p->msg);
	free(p);
	return ret;
}

void sp_ttrpc_client_free(sp_ttrpc_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->closing = true;
	while (c->reconnecting)
		pthread_cond_wait(&c->state_cond, &c->mu);
	pthread_mutex_unlock(&c->mu);
	uint64_t one = 1;
	ssize_t ignored = write(c->wake_fd, &one, sizeof(one));
	(void)ignored;
	if (c->reader_started)
		pthread_join(c->reader, NULL);
	pthread_mutex_lock(&c->mu);
	break_locked(c, SP_ERR_STATE, "client closed");
	pthread_mutex_unlock(&c->mu);
	if (c->fd >= 0)
		close(c->fd);
	close(c->wake_fd);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->wmu);
	pthread_cond_destroy(&c->state_cond);
	free(c->address);
	free(c->broken_msg);
	free(c);
}
