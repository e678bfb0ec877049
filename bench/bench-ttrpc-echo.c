/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc-echo: sealpod's ttRPC test and benchmark peer (not installed).
 *
 *   ttrpc-echo serve ADDR [WORKERS]   serve sealpod.test.Echo until SIGTERM
 *   ttrpc-echo check ADDR             run the interop checks as a client
 *   ttrpc-echo bench ADDR N           N sequential small calls; prints JSON
 *
 * Payloads are the message `Bytes {bytes data = 1;}`, so that the Go peer
 * in tests/interop/ttrpc speaks the same service. Methods (the Go server
 * implements the same): Echo (returns the request), Fail ("CODE:msg" →
 * that status), Sleep ("MS" → sleeps, echoes), Meta (metadata as
 * "key=value\n" lines), Deadline ("none" or the milliseconds left),
 * Grow ("N" → a response whose envelope is N bytes), Peer ("pid uid gid"). */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "sealpod/bytes.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"

#define SVC "sealpod.test.Echo"
#define MS 1000000ull
/* Response envelope around Bytes{data} of 2^21..2^28 bytes with an OK
 * status (left out): payload tag and length (5) + data tag and length (5). */
#define GROW_OVERHEAD 10u

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- Bytes{data = 1} ---- */

static uint8_t *bytes_encode(size_t *out_len, const void *data, size_t n)
{
	sp_buf b = SP_BUF_INIT;
	if (n) {
		sp_buf_put_u8(&b, 0x0a);
		size_t v = n;
		while (v >= 0x80) {
			sp_buf_put_u8(&b, (uint8_t)(v | 0x80));
			v >>= 7;
		}
		sp_buf_put_u8(&b, (uint8_t)v);
		sp_buf_put(&b, data, n);
	}
	uint8_t *p = sp_buf_steal(&b, out_len);
	return p ? p : sp_xzalloc(1);
}

/* Field 1 of a Bytes message, pointing into p; false if malformed. */
static bool bytes_decode(const uint8_t *p, size_t len, const uint8_t **data, size_t *n)
{
	*data = p;
	*n = 0;
	if (len == 0)
		return true;
	if (p[0] != 0x0a)
		return false;
	size_t v = 0, i = 1;
	for (unsigned shift = 0; i < len && shift < 35; shift += 7) {
		v |= (size_t)(p[i] & 0x7f) << shift;
		if (!(p[i++] & 0x80)) {
			if (v != len - i)
				return false;
			*data = p + i;
			*n = v;
			return true;
		}
	}
	return false;
}

static char *payload_str(const sp_ttrpc_call *call)
{
	const uint8_t *d;
	size_t n;
	if (!bytes_decode(call->payload, call->payload_len, &d, &n))
		return NULL;
	return sp_xstrndup((const char *)d, n);
}

static int reply(uint8_t **out, size_t *out_len, const void *data, size_t n)
{
	*out = bytes_encode(out_len, data, n);
	return SP_RPC_OK;
}

/* ---- server ---- */

static int m_echo(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	*out = sp_xmemdup(c->payload_len ? c->payload : (const uint8_t *)"", c->payload_len);
	*out_len = c->payload_len;
	return SP_RPC_OK;
}

static int m_fail(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	_cleanup_free_ char *s = payload_str(c);
	if (!s)
		return SP_RPC_INVALID_ARGUMENT;
	char *colon = strchr(s, ':');
	*msg = sp_xstrdup(colon ? colon + 1 : "");
	return atoi(s);
}

static int m_sleep(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	_cleanup_free_ char *s = payload_str(c);
	if (!s)
		return SP_RPC_INVALID_ARGUMENT;
	struct timespec ts = {atoi(s) / 1000, (atoi(s) % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	return m_echo(u, c, out, out_len, msg);
}

static int m_meta(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	for (size_t i = 0; i < c->n_metadata; i++)
		sp_buf_printf(&b, "%s=%s\n", c->metadata[i].key, c->metadata[i].value);
	return reply(out, out_len, b.data, b.len);
}

static int m_deadline(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	char s[32];
	if (!c->deadline_ns)
		snprintf(s, sizeof(s), "none");
	else {
		uint64_t now = now_ns();
		snprintf(s, sizeof(s), "%" PRIu64,
			 (uint64_t)(c->deadline_ns > now ? (c->deadline_ns - now) / MS : 0));
	}
	return reply(out, out_len, s, strlen(s));
}

static int m_grow(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	_cleanup_free_ char *s = payload_str(c);
	size_t n = s ? strtoull(s, NULL, 10) : 0;
	if (n < (2u << 20) + GROW_OVERHEAD || n > (64u << 20)) {
		*msg = sp_xstrdup("Grow takes an envelope size between 2 MiB and 64 MiB");
		return SP_RPC_INVALID_ARGUMENT;
	}
	uint8_t *d = sp_xzalloc(n - GROW_OVERHEAD);
	int r = reply(out, out_len, d, n - GROW_OVERHEAD);
	free(d);
	return r;
}

static int m_peer(void *u, const sp_ttrpc_call *c, uint8_t **out, size_t *out_len, char **msg)
{
	char s[64];
	snprintf(s, sizeof(s), "%d %u %u", (int)c->peer_pid, (unsigned)c->peer_uid,
		 (unsigned)c->peer_gid);
	return reply(out, out_len, s, strlen(s));
}

static const sp_ttrpc_method methods[] = {
	{SVC, "Echo", m_echo},         {SVC, "Fail", m_fail},
	{SVC, "Sleep", m_sleep},       {SVC, "Meta", m_meta},
	{SVC, "Deadline", m_deadline}, {SVC, "Grow", m_grow},
	{SVC, "Peer", m_peer},
};

static sp_ttrpc_server *the_server;

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig;
	sigwait(set, &sig);
	sp_ttrpc_server_shutdown(the_server);
	return NULL;
}

static int serve(const char *addr, unsigned workers)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	_cleanup_err_ sp_err *err = NULL;
	sp_ttrpc_server_opts o = {.version = 1, .workers = workers};
	the_server = sp_ttrpc_server_new(methods, SP_ARRAY_LEN(methods), NULL, &o);
	int fd;
	if (sp_ttrpc_listen(&fd, addr, &err) < 0 ||
	    sp_ttrpc_server_add_listener(the_server, fd, &err) < 0) {
		fprintf(stderr, "ttrpc-echo: %s\n", sp_err_msg(err));
		return 1;
	}
	pthread_t t;
	pthread_create(&t, NULL, signal_thread, &set);
	printf("ready\n");
	fflush(stdout);
	int r = sp_ttrpc_server_run(the_server, &err);
	pthread_join(t, NULL);
	sp_ttrpc_server_free(the_server);
	if (r < 0) {
		fprintf(stderr, "ttrpc-echo: %s\n", sp_err_msg(err));
		return 1;
	}
	return 0;
}

/* ---- client checks ---- */

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t field_len(size_t n)
{
	return 1 + varint_len(n) + n;
}

/* Size of the Request envelope around Bytes{data of dl bytes}. */
static size_t request_size(const char *method, size_t dl, uint64_t timeout_ns)
{
	size_t payload = dl ? field_len(dl) : 0;
	return field_len(strlen(SVC)) + field_len(strlen(method)) +
	       field_len(payload) + (timeout_ns ? 1 + varint_len(timeout_ns) : 0);
}

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			printf("ok   %s\n", name);                             \
		} else {                                                       \
			failures++;                                            \
			printf("FAIL %s: ", name);                             \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
		}                                                              \
	} while (0)

/* Calls method with Bytes{data}; *out gets the response's data. */
static int call(sp_ttrpc_client *c, const char *svc, const char *method,
		const void *data, size_t n, const sp_ttrpc_kv *md, size_t n_md,
		uint64_t timeout, uint8_t **out, size_t *out_len, int *code, sp_err **err)
{
	size_t rl;
	_cleanup_free_ uint8_t *req = bytes_encode(&rl, data, n);
	_cleanup_free_ uint8_t *resp = NULL;
	size_t resp_len = 0;
	int r = sp_ttrpc_client_call(c, svc, method, req, rl, md, n_md, timeout,
				     &resp, &resp_len, code, err);
	if (out)
		*out = NULL;
	if (r < 0)
		return r;
	const uint8_t *d;
	size_t dl;
	if (!bytes_decode(resp, resp_len, &d, &dl))
		return sp_error(err, SP_ERR_PARSE, "response is not a Bytes message");
	if (out) {
		*out = sp_xmalloc(dl + 1);
		if (dl)
			memcpy(*out, d, dl);
		(*out)[dl] = 0;
	}
	if (out_len)
		*out_len = dl;
	return 0;
}

typedef struct conc {
	sp_ttrpc_client *c;
	int i;
	atomic_int *ok;
} conc;

static void *conc_call(void *arg)
{
	conc *k = arg;
	char in[16];
	snprintf(in, sizeof(in), "%d", (k->i * 7) % 50);
	uint8_t *out = NULL;
	size_t n;
	int code;
	sp_err *err = NULL;
	if (call(k->c, SVC, "Sleep", in, strlen(in), NULL, 0, 20000 * MS, &out, &n, &code,
		 &err) == 0 &&
	    n == strlen(in) && memcmp(out, in, n) == 0)
		atomic_fetch_add(k->ok, 1);
	else
		fprintf(stderr, "concurrent call %d: %s\n", k->i, sp_err_msg(err));
	sp_err_free(err);
	free(out);
	return NULL;
}

static int check(const char *addr)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_ttrpc_client *c = NULL;
	if (sp_ttrpc_client_connect(&c, addr, 5000 * MS, &err) < 0) {
		fprintf(stderr, "ttrpc-echo: %s\n", sp_err_msg(err));
		return 1;
	}
	uint8_t *out = NULL;
	size_t n = 0;
	int code = -1, r;
	const char *name;

	name = "unary echo";
	r = call(c, SVC, "Echo", "hello", 5, NULL, 0, 5000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && n == 5 && !memcmp(out, "hello", 5), "%s", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	name = "empty payload";
	r = call(c, SVC, "Echo", "", 0, NULL, 0, 5000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && n == 0, "%s", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	static const struct { const char *in; int code; int sp; } fails[] = {
		{"5:no such container", SP_RPC_NOT_FOUND, SP_ERR_NOT_FOUND},
		{"7:policy says no", SP_RPC_PERMISSION_DENIED, SP_ERR_DENIED},
		{"3:bad id", SP_RPC_INVALID_ARGUMENT, SP_ERR_INVALID},
		{"9:not running", SP_RPC_FAILED_PRECONDITION, SP_ERR_STATE},
		{"13:boom", SP_RPC_INTERNAL, SP_ERR_PROTOCOL},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(fails); i++) {
		name = "error status";
		r = call(c, SVC, "Fail", fails[i].in, strlen(fails[i].in), NULL, 0, 5000 * MS,
			 NULL, NULL, &code, &err);
		const char *want_msg = strchr(fails[i].in, ':') + 1;
		CHECK(r == fails[i].sp && code == fails[i].code && err &&
			      strstr(err->msg, want_msg) && strstr(err->msg, SVC "/Fail"),
		      "%s: got %d/%s, %s", fails[i].in, r, sp_rpc_code_name(code), sp_err_msg(err));
		sp_err_clear(&err);
	}

	name = "unknown method";
	r = call(c, SVC, "Nope", "", 0, NULL, 0, 5000 * MS, NULL, NULL, &code, &err);
	CHECK(r == SP_ERR_UNSUPPORTED && code == SP_RPC_UNIMPLEMENTED, "%s", sp_err_msg(err));
	sp_err_clear(&err);
	name = "unknown service";
	r = call(c, "no.such.Service", "Echo", "", 0, NULL, 0, 5000 * MS, NULL, NULL, &code, &err);
	CHECK(r == SP_ERR_UNSUPPORTED && code == SP_RPC_UNIMPLEMENTED, "%s", sp_err_msg(err));
	sp_err_clear(&err);

	name = "metadata";
	sp_ttrpc_kv md[] = {{"containerd-namespace-ttrpc", "k8s.io"}, {"x-multi", "1"},
			    {"x-multi", "2"}};
	r = call(c, SVC, "Meta", "", 0, md, 3, 5000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && strstr((char *)out, "containerd-namespace-ttrpc=k8s.io\n") &&
		      strstr((char *)out, "x-multi=1\nx-multi=2\n"),
	      "got `%s` %s", out ? (char *)out : "", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	name = "timeout_nano reaches the handler";
	r = call(c, SVC, "Deadline", "", 0, NULL, 0, 5000 * MS, &out, &n, &code, &err);
	long left = r == 0 ? strtol((char *)out, NULL, 10) : -1;
	CHECK(r == 0 && left > 3000 && left <= 5000, "got `%s` %s",
	      out ? (char *)out : "", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);
	r = call(c, SVC, "Deadline", "", 0, NULL, 0, 0, &out, &n, &code, &err);
	CHECK(r == 0 && !strcmp((char *)out, "none"), "got `%s`", out ? (char *)out : "");
	free(out);
	sp_err_clear(&err);

	name = "client timeout";
	r = call(c, SVC, "Sleep", "500", 3, NULL, 0, 100 * MS, NULL, NULL, &code, &err);
	CHECK(r == SP_ERR_TIMEOUT && code == SP_RPC_DEADLINE_EXCEEDED, "%s", sp_err_msg(err));
	sp_err_clear(&err);

	name = "payload near the 4 MiB limit";
	/* Bytes data such that the Request envelope is exactly the limit. */
	size_t dl = SP_TTRPC_MAX_MESSAGE - 64;
	while (request_size("Echo", dl + 1, 20000 * MS) <= SP_TTRPC_MAX_MESSAGE)
		dl++;
	uint8_t *big = sp_xmalloc(SP_TTRPC_MAX_MESSAGE);
	for (size_t i = 0; i < SP_TTRPC_MAX_MESSAGE; i++)
		big[i] = (uint8_t)(i * 31);
	r = call(c, SVC, "Echo", big, dl, NULL, 0, 20000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && n == dl && !memcmp(out, big, dl), "%s", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	name = "request just over the limit";
	r = call(c, SVC, "Echo", big, dl + 1, NULL, 0, 20000 * MS, NULL, NULL, &code, &err);
	CHECK(r == SP_ERR_LIMIT && code == SP_RPC_RESOURCE_EXHAUSTED, "%s", sp_err_msg(err));
	sp_err_clear(&err);
	free(big);

	name = "response at the limit";
	char num[32];
	snprintf(num, sizeof(num), "%u", SP_TTRPC_MAX_MESSAGE);
	r = call(c, SVC, "Grow", num, strlen(num), NULL, 0, 20000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && n == SP_TTRPC_MAX_MESSAGE - GROW_OVERHEAD, "%s", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	name = "response just over the limit";
	snprintf(num, sizeof(num), "%u", SP_TTRPC_MAX_MESSAGE + 1);
	r = call(c, SVC, "Grow", num, strlen(num), NULL, 0, 20000 * MS, &out, &n, &code, &err);
	CHECK(r == SP_ERR_LIMIT && code == SP_RPC_RESOURCE_EXHAUSTED, "%d %s", r, sp_err_msg(err));
	sp_err_clear(&err);

	name = "connection usable after the limits";
	r = call(c, SVC, "Echo", "again", 5, NULL, 0, 5000 * MS, &out, &n, &code, &err);
	CHECK(r == 0 && n == 5, "%s", sp_err_msg(err));
	free(out);
	sp_err_clear(&err);

	name = "100 concurrent calls";
	enum { N = 100 };
	atomic_int ok = 0;
	conc ks[N];
	pthread_t ts[N];
	for (int i = 0; i < N; i++) {
		ks[i] = (conc){c, i, &ok};
		pthread_create(&ts[i], NULL, conc_call, &ks[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(ts[i], NULL);
	CHECK(atomic_load(&ok) == N, "%d of %d succeeded", atomic_load(&ok), N);

	sp_ttrpc_client_free(c);
	printf("%s\n", failures ? "FAILED" : "ALL OK");
	return failures ? 1 : 0;
}

/* ---- bench ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int bench(const char *addr, long n)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_ttrpc_client *c = NULL;
	if (n < 1 || sp_ttrpc_client_connect(&c, addr, 5000 * MS, &err) < 0) {
		fprintf(stderr, "ttrpc-echo: %s\n", err ? sp_err_msg(err) : "bad count");
		return 1;
	}
	size_t rl;
	_cleanup_free_ uint8_t *req = bytes_encode(&rl, "ping-0123456789", 15);
	uint64_t *lat = sp_xcalloc((size_t)n, sizeof(*lat));
	int code;
	for (int i = 0; i < 100; i++) { /* warm up */
		uint8_t *r = NULL;
		size_t l;
		if (sp_ttrpc_client_call(c, SVC, "Echo", req, rl, NULL, 0, 0, &r, &l, &code, &err))
			goto fail;
		free(r);
	}
	uint64_t start = now_ns();
	for (long i = 0; i < n; i++) {
		uint64_t t = now_ns();
		uint8_t *r = NULL;
		size_t l;
		if (sp_ttrpc_client_call(c, SVC, "Echo", req, rl, NULL, 0, 0, &r, &l, &code, &err))
			goto fail;
		free(r);
		lat[i] = now_ns() - t;
	}
	uint64_t total = now_ns() - start;
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("{\"calls\": %ld, \"rps\": %.0f, \"median_us\": %.1f, \"p99_us\": %.1f}\n", n,
	       (double)n / ((double)total / 1e9), (double)lat[n / 2] / 1e3,
	       (double)lat[(size_t)((double)n * 0.99)] / 1e3);
	free(lat);
	sp_ttrpc_client_free(c);
	return 0;
fail:
	fprintf(stderr, "ttrpc-echo: %s\n", sp_err_msg(err));
	free(lat);
	sp_ttrpc_client_free(c);
	return 1;
}

int main(int argc, char **argv)
{
	sp_log_init("ttrpc-echo", SP_LOG_WARN);
	if (argc >= 3 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argc > 3 ? (unsigned)atoi(argv[3]) : 0);
	if (argc == 3 && !strcmp(argv[1], "check"))
		return check(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "bench"))
		return bench(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: ttrpc-echo serve ADDR [WORKERS] | check ADDR | bench ADDR N\n");
	return 2;
}
