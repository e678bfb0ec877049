/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC: wire format, status mapping, addresses, and a real server and
 * client talking over unix sockets in this process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "ttrpc/wire.h"

#define SVC "sealpod.test.Echo"
#define MS 1000000ull

/* ---- wire ---- */

static void test_header_roundtrip(void **state)
{
	uint8_t b[10];
	sp_ttrpc_header h = {0x01020304, 0xa0b0c0d1, 1, 4}, g;
	sp_ttrpc_header_encode(b, &h);
	const uint8_t want[10] = {1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd1, 1, 4};
	assert_memory_equal(b, want, 10);
	sp_ttrpc_header_decode(&g, b);
	assert_int_equal(g.length, h.length);
	assert_int_equal(g.stream_id, h.stream_id);
	assert_int_equal(g.type, 1);
	assert_int_equal(g.flags, 4);
}

static void test_request_roundtrip(void **state)
{
	sp_ttrpc_kv md[] = {{"containerd-namespace-ttrpc", "k8s.io"}, {"a", ""}};
	size_t n;
	uint8_t *b = sp_ttrpc_request_encode(&n, SVC, "Echo", (const uint8_t *)"xyz",
					     3, md, 2, 5000);
	sp_ttrpc_request *r = NULL;
	int code = -1;
	assert_int_equal(sp_ttrpc_request_decode(&r, b, n, &code, NULL), 0);
	assert_int_equal(code, SP_RPC_OK);
	assert_string_equal(r->service, SVC);
	assert_string_equal(r->method, "Echo");
	assert_int_equal(r->payload_len, 3);
	assert_memory_equal(r->payload, "xyz", 3);
	assert_int_equal(r->timeout_nano, 5000);
	assert_int_equal(r->n_metadata, 2);
	assert_string_equal(r->metadata[0].key, "containerd-namespace-ttrpc");
	assert_string_equal(r->metadata[0].value, "k8s.io");
	assert_string_equal(r->metadata[1].value, "");
	sp_ttrpc_request_free(r);
	free(b);
	/* The empty message is a valid request (empty service). */
	assert_int_equal(sp_ttrpc_request_decode(&r, (const uint8_t *)"", 0, &code, NULL), 0);
	assert_string_equal(r->service, "");
	sp_ttrpc_request_free(r);
}

static void test_request_rejects(void **state)
{
	sp_ttrpc_request *r = NULL;
	int code;
	_cleanup_err_ sp_err *err = NULL;
	/* service = "a\0b": a C string would read "a". */
	const uint8_t nul[] = {0x0a, 3, 'a', 0, 'b'};
	assert_int_equal(sp_ttrpc_request_decode(&r, nul, sizeof(nul), &code, &err),
			 SP_ERR_PARSE);
	assert_int_equal(code, SP_RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(err->msg, "NUL"));
	sp_err_clear(&err);
	/* A length running past the end. */
	const uint8_t trunc[] = {0x0a, 9, 'a'};
	assert_int_equal(sp_ttrpc_request_decode(&r, trunc, sizeof(trunc), &code, &err),
			 SP_ERR_PARSE);
	sp_err_clear(&err);
	/* A group (wire type 3), which proto3 does not have. */
	const uint8_t grp[] = {0x0b, 0x0c};
	assert_int_equal(sp_ttrpc_request_decode(&r, grp, sizeof(grp), &code, &err),
			 SP_ERR_PARSE);
	sp_err_clear(&err);
	/* Service as a varint: the wire walk accepts it, protobuf-c does not. */
	const uint8_t wt[] = {0x08, 1};
	assert_int_equal(sp_ttrpc_request_decode(&r, wt, sizeof(wt), &code, &err),
			 SP_ERR_PARSE);
	sp_err_clear(&err);
	/* Too many metadata entries: RESOURCE_EXHAUSTED, before unpacking. */
	sp_buf b = SP_BUF_INIT;
	for (unsigned i = 0; i < SP_TTRPC_MAX_METADATA + 1; i++) {
		const uint8_t kv[] = {0x2a, 2, 0x0a, 0};
		sp_buf_put(&b, kv, sizeof(kv));
	}
	assert_int_equal(sp_ttrpc_request_decode(&r, b.data, b.len, &code, &err),
			 SP_ERR_LIMIT);
	assert_int_equal(code, SP_RPC_RESOURCE_EXHAUSTED);
	sp_err_clear(&err);
	/* Many unknown fields are refused the same way. */
	b.len = 0;
	for (unsigned i = 0; i < 10000; i++)
		sp_buf_put(&b, (const uint8_t[]){0x78, 1}, 2); /* field 15 varint */
	assert_int_equal(sp_ttrpc_request_decode(&r, b.data, b.len, &code, &err),
			 SP_ERR_LIMIT);
	sp_buf_free(&b);
}

static void test_response_roundtrip(void **state)
{
	size_t n;
	uint8_t *b = sp_ttrpc_response_encode(&n, SP_RPC_NOT_FOUND, "no such thing",
					      (const uint8_t *)"p", 1);
	sp_ttrpc_response r;
	assert_int_equal(sp_ttrpc_response_decode(&r, b, n, NULL), 0);
	assert_int_equal(r.code, SP_RPC_NOT_FOUND);
	assert_string_equal(r.message, "no such thing");
	assert_int_equal(r.payload_len, 1);
	sp_ttrpc_response_clear(&r);
	free(b);
	/* No status at all means OK. */
	const uint8_t only_payload[] = {0x12, 1, 'z'};
	assert_int_equal(sp_ttrpc_response_decode(&r, only_payload, 3, NULL), 0);
	assert_int_equal(r.code, SP_RPC_OK);
	sp_ttrpc_response_clear(&r);
	/* A status with details (google.protobuf.Any) decodes too. */
	const uint8_t det[] = {0x0a, 0x0b, 0x08, 0x05, 0x1a, 0x07, 0x0a, 0x01, 'T',
			       0x12, 0x02, 'v', 'v'};
	assert_int_equal(sp_ttrpc_response_decode(&r, det, sizeof(det), NULL), 0);
	assert_int_equal(r.code, 5);
	sp_ttrpc_response_clear(&r);
}

static void test_status_mapping(void **state)
{
	static const int pairs[][2] = {
		{SP_RPC_PERMISSION_DENIED, SP_ERR_DENIED},
		{SP_RPC_NOT_FOUND, SP_ERR_NOT_FOUND},
		{SP_RPC_DEADLINE_EXCEEDED, SP_ERR_TIMEOUT},
		{SP_RPC_INVALID_ARGUMENT, SP_ERR_INVALID},
		{SP_RPC_ALREADY_EXISTS, SP_ERR_EXISTS},
		{SP_RPC_FAILED_PRECONDITION, SP_ERR_STATE},
		{SP_RPC_UNIMPLEMENTED, SP_ERR_UNSUPPORTED},
		{SP_RPC_RESOURCE_EXHAUSTED, SP_ERR_LIMIT},
		{SP_RPC_OK, SP_OK},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(pairs); i++) {
		assert_int_equal(sp_err_from_rpc_code(pairs[i][0]), pairs[i][1]);
		assert_int_equal(sp_rpc_code_from_err(pairs[i][1]), pairs[i][0]);
	}
	assert_int_equal(sp_err_from_rpc_code(SP_RPC_INTERNAL), SP_ERR_PROTOCOL);
	assert_int_equal(sp_err_from_rpc_code(SP_RPC_UNAVAILABLE), SP_ERR_PROTOCOL);
	assert_int_equal(sp_err_from_rpc_code(99), SP_ERR_PROTOCOL);
	assert_int_equal(sp_rpc_code_from_err(SP_ERR_PARSE), SP_RPC_INVALID_ARGUMENT);
	assert_int_equal(sp_rpc_code_from_err(SP_ERR_SIGNATURE), SP_RPC_PERMISSION_DENIED);
	assert_int_equal(sp_rpc_code_from_err(SP_ERR_SYSTEM), SP_RPC_INTERNAL);
	assert_string_equal(sp_rpc_code_name(SP_RPC_UNIMPLEMENTED), "UNIMPLEMENTED");
	assert_string_equal(sp_rpc_code_name(42), "UNKNOWN_CODE");
}

static void test_addresses(void **state)
{
	int fd;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_listen(&fd, "tcp:1.2.3.4:5", &err), SP_ERR_INVALID);
	assert_non_null(strstr(err->msg, "unknown scheme"));
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_listen(&fd, "serial:/dev/null", &err), SP_ERR_INVALID);
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_dial(&fd, "vsock:x:1", 0, &err), SP_ERR_INVALID);
	assert_non_null(strstr(err->msg, "CID"));
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_dial(&fd, "vsock:any:1", 0, &err), SP_ERR_INVALID);
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_dial(&fd, "vsock:3", 0, &err), SP_ERR_INVALID);
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_dial(&fd, "vsock:3:99999999999", 0, &err), SP_ERR_INVALID);
	sp_err_clear(&err);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = 0;
	assert_int_equal(sp_ttrpc_listen(&fd, longp, &err), SP_ERR_INVALID);
	assert_non_null(strstr(err->msg, "longer than"));
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_dial(&fd, "unix:/nonexistent/sock", 0, &err), SP_ERR_SYSTEM);
	assert_non_null(strstr(err->msg, "/nonexistent/sock"));
	sp_err_clear(&err);
	/* A regular file in the way is not replaced. */
	char tmpl[] = "/tmp/sp-ttrpc-XXXXXX";
	int tf = mkstemp(tmpl);
	close(tf);
	assert_int_equal(sp_ttrpc_listen(&fd, tmpl, &err), SP_ERR_EXISTS);
	unlink(tmpl);
	sp_err_clear(&err);
	/* vsock listening works where the kernel has AF_VSOCK. */
	if (sp_ttrpc_listen(&fd, "vsock:any:47123", &err) == 0)
		close(fd);
	else
		assert_int_equal(err->code, SP_ERR_SYSTEM);
}

/* ---- a live server ---- */

typedef struct fixture {
	char dir[64];
	char path[128];
	char addr[140];
	sp_ttrpc_server *srv;
	pthread_t thread;
	atomic_int connects, disconnects;
	atomic_int handled;
} fixture;

static int h_echo(void *user, const sp_ttrpc_call *call, uint8_t **out,
		  size_t *out_len, char **msg)
{
	fixture *f = user;
	atomic_fetch_add(&f->handled, 1);
	*out = sp_xmemdup(call->payload_len ? call->payload : (const uint8_t *)"", call->payload_len);
	*out_len = call->payload_len;
	return SP_RPC_OK;
}

/* Payload "CODE:message" → that status. */
static int h_fail(void *user, const sp_ttrpc_call *call, uint8_t **out,
		  size_t *out_len, char **msg)
{
	char *s = sp_xstrndup((const char *)call->payload, call->payload_len);
	char *colon = strchr(s, ':');
	int code = atoi(s);
	*msg = sp_xstrdup(colon ? colon + 1 : "");
	free(s);
	return code;
}

/* Sleeps payload milliseconds, then echoes. */
static int h_sleep(void *user, const sp_ttrpc_call *call, uint8_t **out,
		   size_t *out_len, char **msg)
{
	char *s = sp_xstrndup((const char *)call->payload, call->payload_len);
	int ms = atoi(s);
	free(s);
	poll(NULL, 0, ms);
	return h_echo(user, call, out, out_len, msg);
}

/* "key=value;..." of the metadata, then peer uid and deadline presence. */
static int h_meta(void *user, const sp_ttrpc_call *call, uint8_t **out,
		  size_t *out_len, char **msg)
{
	sp_buf b = SP_BUF_INIT;
	for (size_t i = 0; i < call->n_metadata; i++)
		sp_buf_printf(&b, "%s=%s;", call->metadata[i].key, call->metadata[i].value);
	const char *ns = sp_ttrpc_call_meta(call, "Containerd-Namespace-Ttrpc");
	sp_buf_printf(&b, "ns=%s;pid=%d;uid=%u;deadline=%d;conn=%s", ns ? ns : "-",
		      (int)call->peer_pid, (unsigned)call->peer_uid,
		      call->deadline_ns != 0, call->conn_data ? (char *)call->conn_data : "-");
	*out = sp_buf_steal(&b, out_len);
	return SP_RPC_OK;
}

/* Returns (payload as decimal) bytes of 'x'. */
static int h_big(void *user, const sp_ttrpc_call *call, uint8_t **out,
		 size_t *out_len, char **msg)
{
	char *s = sp_xstrndup((const char *)call->payload, call->payload_len);
	size_t n = strtoull(s, NULL, 10);
	free(s);
	*out = sp_xmalloc(n + 1);
	memset(*out, 'x', n);
	*out_len = n;
	return SP_RPC_OK;
}

static int h_errcode(void *user, const sp_ttrpc_call *call, uint8_t **out,
		     size_t *out_len, char **msg)
{
	*msg = sp_xstrdup("container `c1` does not exist");
	return SP_ERR_NOT_FOUND; /* negative: mapped by the server */
}

static int h_shutdown(void *user, const sp_ttrpc_call *call, uint8_t **out,
		      size_t *out_len, char **msg)
{
	fixture *f = user;
	sp_ttrpc_server_shutdown(f->srv);
	poll(NULL, 0, 50); /* the response must still go out */
	*out = (uint8_t *)sp_xstrdup("bye");
	*out_len = 3;
	return SP_RPC_OK;
}

static const sp_ttrpc_method methods[] = {
	{SVC, "Echo", h_echo},     {SVC, "Fail", h_fail},
	{SVC, "Sleep", h_sleep},   {SVC, "Meta", h_meta},
	{SVC, "Big", h_big},       {SVC, "ErrCode", h_errcode},
	{SVC, "Shutdown", h_shutdown},
	{"sealpod.test.Other", "Echo", h_echo},
};

static void *on_connect(void *user, int fd)
{
	fixture *f = user;
	atomic_fetch_add(&f->connects, 1);
	return sp_xstrdup("c1");
}

static void on_disconnect(void *user, void *data)
{
	fixture *f = user;
	atomic_fetch_add(&f->disconnects, 1);
	free(data);
}

static void *server_thread(void *arg)
{
	fixture *f = arg;
	sp_err *err = NULL;
	if (sp_ttrpc_server_run(f->srv, &err) != 0) {
		fprintf(stderr, "server: %s\n", sp_err_msg(err));
		abort();
	}
	return NULL;
}

static void start_server(fixture *f)
{
	sp_ttrpc_server_opts o = {.version = 1, .workers = 4,
				  .on_connect = on_connect,
				  .on_disconnect = on_disconnect};
	f->srv = sp_ttrpc_server_new(methods, SP_ARRAY_LEN(methods), f, &o);
	int lfd;
	sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_listen(&lfd, f->addr, &err), 0);
	assert_int_equal(sp_ttrpc_server_add_listener(f->srv, lfd, &err), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, server_thread, f), 0);
}

static void stop_server(fixture *f)
{
	sp_ttrpc_server_shutdown(f->srv);
	pthread_join(f->thread, NULL);
	sp_ttrpc_server_free(f->srv);
	f->srv = NULL;
}

static int setup(void **state)
{
	fixture *f = sp_xzalloc(sizeof(*f));
	strcpy(f->dir, "/tmp/sp-ttrpc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
	snprintf(f->addr, sizeof(f->addr), "unix:%s", f->path);
	start_server(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->srv)
		stop_server(f);
	sp_rm_rf(f->dir, NULL);
	free(f);
	return 0;
}

static int call_str(sp_ttrpc_client *c, const char *method, const char *in,
		    uint64_t timeout, char **out, int *code, sp_err **err)
{
	uint8_t *r = NULL;
	size_t n = 0;
	int ret = sp_ttrpc_client_call(c, SVC, method, (const uint8_t *)in, strlen(in),
				       NULL, 0, timeout, &r, &n, code, err);
	if (out)
		*out = ret == 0 ? sp_xstrndup((char *)(r ? r : (uint8_t *)""), n) : NULL;
	free(r);
	return ret;
}

/* A client connected to the fixture's server. */
static sp_ttrpc_client *connect_ok(const fixture *f)
{
	sp_ttrpc_client *c = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_client_connect(&c, f->addr, 1000 * MS, &err), 0);
	return c;
}

/* Echo answers with what it got. */
static void expect_echo(sp_ttrpc_client *c, const char *in, uint64_t timeout)
{
	char *out = NULL;
	int code;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(call_str(c, "Echo", in, timeout, &out, &code, &err), 0);
	assert_string_equal(out, in);
	free(out);
}

static void test_unary_and_errors(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	char *out = NULL;
	int code = -1;
	assert_int_equal(call_str(c, "Echo", "hello", 0, &out, &code, &err), 0);
	assert_string_equal(out, "hello");
	assert_int_equal(code, SP_RPC_OK);
	free(out);
	/* An empty payload comes back empty. */
	expect_echo(c, "", 0);

	assert_int_equal(call_str(c, "Fail", "7:not allowed", 0, NULL, &code, &err), SP_ERR_DENIED);
	assert_int_equal(code, SP_RPC_PERMISSION_DENIED);
	assert_string_equal(err->msg, SVC "/Fail: PERMISSION_DENIED: not allowed");
	sp_err_clear(&err);
	assert_int_equal(call_str(c, "Fail", "13:boom", 0, NULL, &code, &err), SP_ERR_PROTOCOL);
	assert_int_equal(code, SP_RPC_INTERNAL);
	sp_err_clear(&err);
	assert_int_equal(call_str(c, "ErrCode", "", 0, NULL, &code, &err), SP_ERR_NOT_FOUND);
	assert_int_equal(code, SP_RPC_NOT_FOUND);
	assert_non_null(strstr(err->msg, "c1"));
	sp_err_clear(&err);

	/* Unknown method / service: UNIMPLEMENTED, naming what is unknown. */
	assert_int_equal(call_str(c, "Nope", "", 0, NULL, &code, &err), SP_ERR_UNSUPPORTED);
	assert_int_equal(code, SP_RPC_UNIMPLEMENTED);
	assert_non_null(strstr(err->msg, "method Nope"));
	sp_err_clear(&err);
	assert_int_equal(sp_ttrpc_client_call(c, "no.Such", "Echo", NULL, 0, NULL, 0, 0,
					      NULL, NULL, &code, &err), SP_ERR_UNSUPPORTED);
	assert_non_null(strstr(err->msg, "service no.Such"));
	sp_err_clear(&err);
	uint8_t *r = NULL;
	size_t n = 0;
	assert_int_equal(sp_ttrpc_client_call(c, "sealpod.test.Other", "Echo",
					      (const uint8_t *)"o", 1, NULL, 0, 0,
					      &r, &n, &code, &err), 0);
	assert_int_equal(n, 1);
	free(r);
	sp_ttrpc_client_free(c);
}

static void test_metadata_peer_deadline(void **state)
{
	fixture *f = *state;
	int fd;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_dial(&fd, f->addr, 0, &err), 0);
	sp_ttrpc_client *c = sp_ttrpc_client_new(fd);
	sp_ttrpc_kv md[] = {{"containerd-namespace-ttrpc", "k8s.io"}, {"x", "1"}, {"x", "2"}};
	uint8_t *r = NULL;
	size_t n;
	int code;
	assert_int_equal(sp_ttrpc_client_call(c, SVC, "Meta", NULL, 0, md, 3, 2000 * MS,
					      &r, &n, &code, &err), 0);
	char *s = sp_xstrndup((char *)r, n);
	char *want = sp_xasprintf("containerd-namespace-ttrpc=k8s.io;x=1;x=2;ns=k8s.io;pid=%d;uid=%u;deadline=1;conn=c1",
				  (int)getpid(), (unsigned)getuid());
	assert_string_equal(s, want);
	free(want);
	free(s);
	free(r);
	assert_int_equal(sp_ttrpc_client_call(c, SVC, "Meta", NULL, 0, NULL, 0, 0,
					      &r, &n, &code, &err), 0);
	assert_non_null(memmem(r, n, "deadline=0", 10));
	free(r);
	sp_ttrpc_client_free(c);
	/* on_disconnect runs once the server sees the close. */
	for (int i = 0; i < 200 && atomic_load(&f->disconnects) < 1; i++)
		poll(NULL, 0, 10);
	assert_true(atomic_load(&f->connects) >= 1);
	assert_int_equal(atomic_load(&f->disconnects), atomic_load(&f->connects));
}

typedef struct par {
	sp_ttrpc_client *c;
	int idx;
	int ok;
	uint64_t done_at;
} par;

static void *par_call(void *arg)
{
	par *p = arg;
	char in[32];
	/* Early calls sleep longest, so responses come back reversed. */
	snprintf(in, sizeof(in), "%d", (20 - p->idx % 20) * 5);
	char *out = NULL;
	int code;
	sp_err *err = NULL;
	if (call_str(p->c, "Sleep", in, 10000 * MS, &out, &code, &err) == 0 &&
	    strcmp(out, in) == 0)
		p->ok = 1;
	else
		fprintf(stderr, "call %d: %s\n", p->idx, sp_err_msg(err));
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	p->done_at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	sp_err_free(err);
	free(out);
	return NULL;
}

static void test_concurrent_out_of_order(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	enum { N = 100 };
	par ps[N];
	pthread_t ts[N];
	for (int i = 0; i < N; i++) {
		ps[i] = (par){c, i, 0, 0};
		assert_int_equal(pthread_create(&ts[i], NULL, par_call, &ps[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(ts[i], NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(ps[i].ok, 1);
	sp_ttrpc_client_free(c);
}

static void test_out_of_order_on_one_connection(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	/* A slow call first, a fast one second: the fast one finishes first. */
	par slow = {c, 0, 0, 0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, par_call, &slow), 0); /* 100 ms */
	poll(NULL, 0, 20);
	char *out = NULL;
	int code;
	assert_int_equal(call_str(c, "Echo", "quick", 0, &out, &code, &err), 0);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t quick_at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	free(out);
	pthread_join(t, NULL);
	assert_int_equal(slow.ok, 1);
	assert_true(quick_at < slow.done_at);
	sp_ttrpc_client_free(c);
}

static void test_timeouts(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	int code;
	assert_int_equal(call_str(c, "Sleep", "300", 50 * MS, NULL, &code, &err), SP_ERR_TIMEOUT);
	assert_int_equal(code, SP_RPC_DEADLINE_EXCEEDED);
	assert_non_null(strstr(err->msg, SVC "/Sleep"));
	sp_err_clear(&err);
	/* The late response is dropped; the connection keeps working. */
	expect_echo(c, "after", 1000 * MS);
	poll(NULL, 0, 300);
	expect_echo(c, "later", 1000 * MS);
	sp_ttrpc_client_free(c);
}

static void test_size_limits(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	size_t big = SP_TTRPC_MAX_MESSAGE - 64;
	uint8_t *p = sp_xmalloc(SP_TTRPC_MAX_MESSAGE + 1);
	memset(p, 'q', SP_TTRPC_MAX_MESSAGE + 1);
	uint8_t *r = NULL;
	size_t n = 0;
	int code;
	assert_int_equal(sp_ttrpc_client_call(c, SVC, "Echo", p, big, NULL, 0, 0,
					      &r, &n, &code, &err), 0);
	assert_int_equal(n, big);
	assert_memory_equal(r, p, big);
	free(r);
	/* Too big to send: refused locally. */
	assert_int_equal(sp_ttrpc_client_call(c, SVC, "Echo", p, SP_TTRPC_MAX_MESSAGE + 1,
					      NULL, 0, 0, &r, &n, &code, &err), SP_ERR_LIMIT);
	assert_int_equal(code, SP_RPC_RESOURCE_EXHAUSTED);
	sp_err_clear(&err);
	/* A handler's oversized response becomes RESOURCE_EXHAUSTED. */
	char num[32];
	snprintf(num, sizeof(num), "%u", SP_TTRPC_MAX_MESSAGE);
	assert_int_equal(call_str(c, "Big", num, 0, NULL, &code, &err), SP_ERR_LIMIT);
	assert_int_equal(code, SP_RPC_RESOURCE_EXHAUSTED);
	sp_err_clear(&err);
	char *out = NULL;
	assert_int_equal(call_str(c, "Echo", "still", 0, &out, &code, &err), 0);
	free(out);
	free(p);
	sp_ttrpc_client_free(c);
}

/* Raw frames on a raw socket. */
static void send_frame(int fd, uint32_t len, uint32_t id, uint8_t type,
		       const uint8_t *body, size_t body_len)
{
	uint8_t h[10];
	sp_ttrpc_header hd = {len, id, type, 0};
	sp_ttrpc_header_encode(h, &hd);
	assert_int_equal(sp_write_all(fd, h, 10), 0);
	if (body_len)
		assert_int_equal(sp_write_all(fd, body, body_len), 0);
}

static void send_request(int fd, uint32_t id, const char *method, const char *payload)
{
	size_t n;
	uint8_t *b = sp_ttrpc_request_encode(&n, SVC, method, (const uint8_t *)payload,
					     strlen(payload), NULL, 0, 0);
	send_frame(fd, (uint32_t)n, id, SP_TTRPC_TYPE_REQUEST, b, n);
	free(b);
}

/* Reads one response frame; returns its status code. */
static int read_response(int fd, uint32_t *id, char **payload)
{
	uint8_t h[10];
	if (sp_read_all(fd, h, 10) != 10)
		return -1;
	sp_ttrpc_header hd;
	sp_ttrpc_header_decode(&hd, h);
	assert_int_equal(hd.type, SP_TTRPC_TYPE_RESPONSE);
	uint8_t *b = sp_xmalloc(hd.length + 1);
	assert_int_equal(sp_read_all(fd, b, hd.length), (ssize_t)hd.length);
	sp_ttrpc_response r;
	assert_int_equal(sp_ttrpc_response_decode(&r, b, hd.length, NULL), 0);
	free(b);
	*id = hd.stream_id;
	if (payload)
		*payload = sp_xstrndup(r.payload ? (char *)r.payload : "", r.payload_len);
	int code = r.code;
	sp_ttrpc_response_clear(&r);
	return code;
}

static void test_hostile_frames(void **state)
{
	fixture *f = *state;
	int fd;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_dial(&fd, f->addr, 0, &err), 0);
	uint32_t id;
	char *pl;
	/* Even stream id: INVALID_ARGUMENT on that id. */
	send_request(fd, 2, "Echo", "x");
	assert_int_equal(read_response(fd, &id, NULL), SP_RPC_INVALID_ARGUMENT);
	assert_int_equal(id, 2);
	/* Unknown frame types and responses are ignored. */
	send_frame(fd, 3, 5, 9, (const uint8_t *)"abc", 3);
	send_frame(fd, 0, 7, SP_TTRPC_TYPE_RESPONSE, NULL, 0);
	send_frame(fd, 2, 7, SP_TTRPC_TYPE_DATA, (const uint8_t *)"zz", 2);
	/* Garbage as a request body: INVALID_ARGUMENT. */
	send_frame(fd, 4, 9, SP_TTRPC_TYPE_REQUEST, (const uint8_t *)"\xff\xff\xff\xff", 4);
	assert_int_equal(read_response(fd, &id, NULL), SP_RPC_INVALID_ARGUMENT);
	assert_int_equal(id, 9);
	/* Reusing an in-flight stream id: the second is refused. */
	send_request(fd, 11, "Sleep", "200");
	send_request(fd, 11, "Echo", "dup");
	assert_int_equal(read_response(fd, &id, NULL), SP_RPC_INVALID_ARGUMENT);
	assert_int_equal(id, 11);
	assert_int_equal(read_response(fd, &id, &pl), SP_RPC_OK);
	assert_string_equal(pl, "200");
	free(pl);
	/* Reusing it afterwards is fine. */
	send_request(fd, 11, "Echo", "again");
	assert_int_equal(read_response(fd, &id, &pl), SP_RPC_OK);
	assert_string_equal(pl, "again");
	free(pl);
	/* Oversized but skippable: discarded, RESOURCE_EXHAUSTED, go on. */
	uint32_t big = SP_TTRPC_MAX_MESSAGE + 1;
	uint8_t *junk = sp_xzalloc(big);
	send_frame(fd, big, 13, SP_TTRPC_TYPE_REQUEST, junk, big);
	free(junk);
	assert_int_equal(read_response(fd, &id, NULL), SP_RPC_RESOURCE_EXHAUSTED);
	assert_int_equal(id, 13);
	send_request(fd, 15, "Echo", "alive");
	assert_int_equal(read_response(fd, &id, &pl), SP_RPC_OK);
	assert_int_equal(id, 15);
	assert_string_equal(pl, "alive");
	free(pl);
	/* A 4 GiB length: the server closes this connection. */
	send_frame(fd, 0xffffffffu, 17, SP_TTRPC_TYPE_REQUEST, NULL, 0);
	uint8_t b;
	assert_int_equal(read(fd, &b, 1), 0);
	close(fd);
	/* A truncated header, then close. */
	assert_int_equal(sp_ttrpc_dial(&fd, f->addr, 0, &err), 0);
	assert_int_equal(sp_write_all(fd, "\0\0\0", 3), 0);
	close(fd);
	/* Others are still served. */
	sp_ttrpc_client *c = NULL;
	assert_int_equal(sp_ttrpc_client_connect(&c, f->addr, 1000 * MS, &err), 0);
	char *out = NULL;
	int code;
	assert_int_equal(call_str(c, "Echo", "ok", 1000 * MS, &out, &code, &err), 0);
	free(out);
	sp_ttrpc_client_free(c);
}

static void test_expired_deadline_skips_handler(void **state)
{
	fixture *f = *state;
	int fd;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_dial(&fd, f->addr, 0, &err), 0);
	size_t n;
	int before = atomic_load(&f->handled);
	uint8_t *b = sp_ttrpc_request_encode(&n, SVC, "Echo", (const uint8_t *)"x", 1,
					     NULL, 0, -1);
	send_frame(fd, (uint32_t)n, 1, SP_TTRPC_TYPE_REQUEST, b, n);
	free(b);
	uint32_t id;
	assert_int_equal(read_response(fd, &id, NULL), SP_RPC_DEADLINE_EXCEEDED);
	assert_int_equal(atomic_load(&f->handled), before);
	close(fd);
}

static void test_reconnect(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	char *out = NULL;
	int code;
	assert_int_equal(call_str(c, "Echo", "one", 0, &out, &code, &err), 0);
	free(out);
	stop_server(f);
	/* Server gone: UNAVAILABLE, naming the address. */
	int r = call_str(c, "Echo", "two", 1000 * MS, NULL, &code, &err);
	assert_true(r < 0);
	assert_int_equal(code, SP_RPC_UNAVAILABLE);
	sp_err_clear(&err);
	r = call_str(c, "Echo", "two", 1000 * MS, NULL, &code, &err);
	assert_int_equal(code, SP_RPC_UNAVAILABLE);
	assert_non_null(strstr(err->msg, f->path));
	sp_err_clear(&err);
	start_server(f); /* replaces the stale socket file */
	expect_echo(c, "three", 1000 * MS);
	sp_ttrpc_client_free(c);
}

static void test_shutdown_from_handler(void **state)
{
	fixture *f = *state;
	sp_ttrpc_client *c = connect_ok(f);
	_cleanup_err_ sp_err *err = NULL;
	char *out = NULL;
	int code;
	assert_int_equal(call_str(c, "Shutdown", "", 2000 * MS, &out, &code, &err), 0);
	assert_string_equal(out, "bye");
	free(out);
	pthread_join(f->thread, NULL);
	sp_ttrpc_server_free(f->srv);
	f->srv = NULL;
	/* A second listener on the path works: the old one is gone. */
	int lfd;
	assert_int_equal(sp_ttrpc_listen(&lfd, f->addr, &err), 0);
	close(lfd);
	sp_ttrpc_client_free(c);
}

/* A stream the server dials itself (as the agent opens its serial port),
 * here a unix socket the test accepts on: the "host" closes and comes back,
 * and the server reopens and keeps serving. */
static void test_stream_reopen(void **state)
{
	fixture *f = *state;
	char port[160];
	snprintf(port, sizeof(port), "%s/port.sock", f->dir);
	char addr[170];
	snprintf(addr, sizeof(addr), "unix:%s", port);
	int lfd;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_listen(&lfd, addr, &err), 0);
	int sfd;
	assert_int_equal(sp_ttrpc_dial(&sfd, addr, 0, &err), 0);
	assert_int_equal(sp_ttrpc_server_add_stream(f->srv, sfd, port, &err), 0);
	for (int round = 0; round < 3; round++) {
		int hfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		assert_true(hfd >= 0);
		sp_ttrpc_client *c = sp_ttrpc_client_new(hfd);
		char in[16];
		snprintf(in, sizeof(in), "round%d", round);
		expect_echo(c, in, 2000 * MS);
		sp_ttrpc_client_free(c); /* the host side goes away */
	}
	close(lfd);
}

/* ---- scheduling: reserved workers, per-connection limit, cancellation ---- */

typedef struct sched {
	char dir[64];
	char addr[140];
	sp_ttrpc_server *srv;
	pthread_t thread;
	atomic_int started, running, cancelled, on_cancel;
} sched;

/* Blocks until its connection closes (as a WaitProcess without deadline). */
static int h_block(void *user, const sp_ttrpc_call *call, uint8_t **out,
		   size_t *out_len, char **msg)
{
	sched *s = user;
	atomic_fetch_add(&s->started, 1);
	atomic_fetch_add(&s->running, 1);
	while (!sp_ttrpc_call_cancelled(call))
		poll(NULL, 0, 5);
	atomic_fetch_add(&s->cancelled, 1);
	atomic_fetch_sub(&s->running, 1);
	return SP_RPC_CANCELLED;
}

static int h_ping(void *user, const sp_ttrpc_call *call, uint8_t **out,
		  size_t *out_len, char **msg)
{
	*out = (uint8_t *)sp_xstrdup("pong");
	*out_len = 4;
	return SP_RPC_OK;
}

static void sched_on_cancel(void *user)
{
	sched *s = user;
	atomic_fetch_add(&s->on_cancel, 1);
}

static void *sched_thread(void *arg)
{
	sched *s = arg;
	sp_err *err = NULL;
	if (sp_ttrpc_server_run(s->srv, &err) != 0)
		abort();
	return NULL;
}

static bool wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 500 && atomic_load(v) != want; i++)
		poll(NULL, 0, 10);
	return atomic_load(v) == want;
}

/* A call answered within a second. */
static void expect_fast(const char *addr, const char *method, const char *want)
{
	sp_ttrpc_client *c = NULL;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_client_connect(&c, addr, 1000 * MS, &err), 0);
	uint8_t *r = NULL;
	size_t n = 0;
	int code = -1;
	uint64_t t0 = sp_now_ns();
	int rc = sp_ttrpc_client_call(c, SVC, method, (const uint8_t *)"x", 1, NULL, 0,
				      1000 * MS, &r, &n, &code, &err);
	if (rc != 0)
		fail_msg("%s: %s", method, sp_err_msg(err));
	assert_true(sp_now_ns() - t0 < 1000 * MS);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(r, want, n);
	free(r);
	sp_ttrpc_client_free(c);
}

static void test_blocked_connection_starves_nobody(void **state)
{
	static const sp_ttrpc_method m[] = {
		{SVC, "Block", h_block, 0},
		{SVC, "Echo", h_ping, 0},
		{SVC, "Ping", h_ping, SP_TTRPC_CONTROL},
	};
	sched *s = sp_xzalloc(sizeof(*s));
	strcpy(s->dir, "/tmp/sp-ttrpc-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->addr, sizeof(s->addr), "unix:%s/s.sock", s->dir);
	/* 8 workers: 2 for control requests, 6 for the others, at most 4
	 * of those per connection. */
	sp_ttrpc_server_opts o = {.version = 1, .workers = 8, .reserved_workers = 2,
				  .max_running_per_conn = 4,
				  .on_cancel = sched_on_cancel};
	s->srv = sp_ttrpc_server_new(m, SP_ARRAY_LEN(m), s, &o);
	int lfd, a, b;
	_cleanup_err_ sp_err *err = NULL;
	assert_int_equal(sp_ttrpc_listen(&lfd, s->addr, &err), 0);
	assert_int_equal(sp_ttrpc_server_add_listener(s->srv, lfd, &err), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, sched_thread, s), 0);

	/* Connection a: 100 blocking calls; only 4 run. */
	assert_int_equal(sp_ttrpc_dial(&a, s->addr, 0, &err), 0);
	for (uint32_t i = 0; i < 100; i++)
		send_request(a, 2 * i + 1, "Block", "");
	assert_true(wait_for(&s->running, 4));
	poll(NULL, 0, 100);
	assert_int_equal(atomic_load(&s->running), 4);
	/* Others are served: a plain call and a control call. */
	expect_fast(s->addr, "Echo", "pong");
	expect_fast(s->addr, "Ping", "pong");
	/* Connection b blocks the remaining plain workers (2 of its 4). */
	assert_int_equal(sp_ttrpc_dial(&b, s->addr, 0, &err), 0);
	for (uint32_t i = 0; i < 100; i++)
		send_request(b, 2 * i + 1, "Block", "");
	assert_true(wait_for(&s->running, 6));
	poll(NULL, 0, 100);
	assert_int_equal(atomic_load(&s->running), 6);
	/* Every plain worker is blocked: control calls still run. */
	for (int i = 0; i < 5; i++)
		expect_fast(s->addr, "Ping", "pong");
	/* Closing a cancels its 4 handlers; its 96 queued calls never run;
	 * b's queued calls take the freed workers up to its own limit. */
	int started = atomic_load(&s->started);
	close(a);
	assert_true(wait_for(&s->cancelled, 4));
	assert_true(atomic_load(&s->on_cancel) >= 1);
	assert_true(wait_for(&s->running, 4));
	poll(NULL, 0, 200);
	assert_int_equal(atomic_load(&s->running), 4);
	assert_int_equal(atomic_load(&s->started), started + 2);
	expect_fast(s->addr, "Echo", "pong");
	close(b);
	assert_true(wait_for(&s->running, 0));
	assert_int_equal(atomic_load(&s->started), started + 2);

	sp_ttrpc_server_shutdown(s->srv);
	pthread_join(s->thread, NULL);
	sp_ttrpc_server_free(s->srv);
	sp_rm_rf(s->dir, NULL);
	free(s);
}

int main(void)
{
	sp_log_init("test-ttrpc", SP_LOG_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrip),
		cmocka_unit_test(test_request_roundtrip),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_response_roundtrip),
		cmocka_unit_test(test_status_mapping),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test_setup_teardown(test_unary_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_peer_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_on_one_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_deadline_skips_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_from_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_reopen, setup, teardown),
		cmocka_unit_test(test_blocked_connection_starves_nobody),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
