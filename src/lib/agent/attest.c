/* SPDX-License-Identifier: Apache-2.0 */
/* The workload attestation endpoint: a deliberately tiny HTTP/1.1 server
 * on 127.0.0.1:8006 in the pod's network namespace, with the paths
 * Confidential Containers workloads use (api-server-rest):
 *   GET /aa/evidence?runtime_data=...   a TEE report binding runtime_data
 *   GET /cdh/resource/<repo>/<type>/<tag>  501 until the key broker exists
 * One request per connection, GET only, no body, head at most 8 KiB, a
 * few seconds per connection. docs/agent.md explains the choices.
 *
 * CreateSandbox opens the listening socket inside the pod's network
 * namespace and DestroySandbox closes it, both with the agent lock held;
 * so the server thread never takes that lock (it reads only what is fixed
 * at sp_agent_new and calls the TEE under agent_tee_report's own lock),
 * and stopping it cannot wait for the lock its stopper holds. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>

#include "agent_internal.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/log.h"

#define HTTP_MAX_HEAD 8192
#define HTTP_TIMEOUT_MS 5000

struct attest_server {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	bool started;
};

void attest_bind_runtime_data(uint8_t out[64], const void *data, size_t len)
{
	sp_hash *h = sp_hash_new(SP_HASH_SHA512);
	sp_hash_update(h, data, len);
	sp_hash_final(h, out);
	sp_hash_free(h);
}

static void respond(sp_buf *b, int code, const char *reason, const char *ctype,
		    const char *body)
{
	size_t n = strlen(body);
	sp_buf_printf(b,
		      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Connection: close\r\nCache-Control: no-store\r\n\r\n",
		      code, reason, ctype, n);
	sp_buf_put(b, body, n);
}

static void respond_error(sp_buf *b, int code, const char *reason,
			  const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	respond(b, code, reason, "application/json", s ? s : "{}");
	free(s);
}

/* application/x-www-form-urlencoded value: %XX and '+'; false if bad. */
static bool url_decode(const char *s, size_t n, sp_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return false;
			int h = sp_hex_digit((unsigned char)s[i + 1]);
			int l = sp_hex_digit((unsigned char)s[i + 2]);
			if (h < 0 || l < 0)
				return false;
			sp_buf_put_u8(out, (uint8_t)(h << 4 | l));
			i += 2;
		} else if (s[i] == '+') {
			sp_buf_put_u8(out, ' ');
		} else {
			sp_buf_put_u8(out, (uint8_t)s[i]);
		}
	}
	return true;
}

/* Finds key in a query string; false if absent or malformed. */
static bool query_get(const char *q, size_t qn, const char *key, sp_buf *out,
		      bool *malformed)
{
	size_t kl = strlen(key);
	*malformed = false;
	size_t i = 0;
	while (i <= qn) {
		size_t j = i;
		while (j < qn && q[j] != '&')
			j++;
		if (j - i >= kl + 1 && !memcmp(q + i, key, kl) && q[i + kl] == '=') {
			if (!url_decode(q + i + kl + 1, j - i - kl - 1, out))
				*malformed = true;
			return !*malformed;
		}
		i = j + 1;
	}
	return false;
}

static void handle_evidence(sp_agent *a, const char *q, size_t qn, sp_buf *resp)
{
	_cleanup_buf_ sp_buf rd = SP_BUF_INIT;
	bool bad;
	if (!query_get(q, qn, "runtime_data", &rd, &bad)) {
		respond_error(resp, 400, "Bad Request",
			      bad ? "runtime_data is not validly percent-encoded"
				  : "missing query parameter runtime_data");
		return;
	}
	/* have_tee and tee are fixed at sp_agent_new: no agent lock. */
	if (!a->have_tee) {
		respond_error(resp, 503, "Service Unavailable",
			      "this guest has no TEE (agent started with --tee none)");
		return;
	}
	uint8_t report_data[64];
	attest_bind_runtime_data(report_data, rd.data ? rd.data : (uint8_t *)"", rd.len);
	_cleanup_free_ uint8_t *rep = NULL, *certs = NULL;
	size_t rep_len = 0, certs_len = 0;
	_cleanup_err_ sp_err *e = NULL;
	if (agent_tee_report(a, report_data, &rep, &rep_len, &certs, &certs_len,
			     &e) < 0) {
		sp_log_warn("attestation endpoint: %s", sp_err_msg(e));
		respond_error(resp, 500, "Internal Server Error",
			      "the TEE did not produce a report");
		return;
	}
	_cleanup_free_ char *rb = sp_base64_encode(rep, rep_len, SP_B64_STD);
	_cleanup_free_ char *cb = certs_len ? sp_base64_encode(certs, certs_len, SP_B64_STD) : NULL;
	char rdhex[129];
	sp_hex_encode(rdhex, report_data, 64);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o}", "tee", a->tee.kind,
			      "report_data_binding", "sha512(runtime_data)",
			      "report_data", rdhex, "attestation_report", rb,
			      "cert_chain", cb ? json_string(cb) : json_null());
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	respond(resp, 200, "OK", "application/json", s ? s : "{}");
	free(s);
}

static void handle_resource(const char *rest, size_t n, sp_buf *resp)
{
	/* <repository>/<type>/<tag>: three non-empty plain components. */
	int parts = 0;
	size_t len = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || rest[i] == '/') {
			if (len == 0)
				goto bad;
			parts++;
			len = 0;
		} else {
			char c = rest[i];
			if (len == 0 && c == '.')
				goto bad; /* no ".", "..", hidden names */
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
				goto bad;
			len++;
		}
	}
	if (parts != 3)
		goto bad;
	respond_error(resp, 501, "Not Implemented",
		      "confidential resources need a key broker (KBS), which this guest is not configured with yet; see docs/agent.md");
	return;
bad:
	respond_error(resp, 400, "Bad Request",
		      "resource path must be /cdh/resource/<repository>/<type>/<tag>");
}

void attest_handle(sp_agent *a, const uint8_t *req, size_t len, sp_buf *resp)
{
	/* Request line: METHOD SP TARGET SP VERSION CRLF. */
	const char *s = (const char *)req;
	const char *eol = memchr(s, '\n', len);
	if (!eol) {
		respond_error(resp, 400, "Bad Request", "no request line");
		return;
	}
	size_t ll = (size_t)(eol - s);
	if (ll && s[ll - 1] == '\r')
		ll--;
	const char *sp1 = memchr(s, ' ', ll);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - s)) : NULL;
	if (!sp1 || !sp2) {
		respond_error(resp, 400, "Bad Request", "malformed request line");
		return;
	}
	size_t vl = ll - (size_t)(sp2 + 1 - s);
	if (!(vl == 8 && (!memcmp(sp2 + 1, "HTTP/1.1", 8) || !memcmp(sp2 + 1, "HTTP/1.0", 8)))) {
		respond_error(resp, 505, "HTTP Version Not Supported", "HTTP/1.1 only");
		return;
	}
	if ((size_t)(sp1 - s) != 3 || memcmp(s, "GET", 3) != 0) {
		respond_error(resp, 405, "Method Not Allowed", "only GET is served");
		return;
	}
	const char *t = sp1 + 1;
	size_t tl = (size_t)(sp2 - t);
	const char *qm = memchr(t, '?', tl);
	size_t pl = qm ? (size_t)(qm - t) : tl;
	const char *q = qm ? qm + 1 : "";
	size_t qn = qm ? tl - pl - 1 : 0;
	if (pl == 12 && !memcmp(t, "/aa/evidence", 12)) {
		handle_evidence(a, q, qn, resp);
		return;
	}
	if (pl > 14 && !memcmp(t, "/cdh/resource/", 14)) {
		handle_resource(t + 14, pl - 14, resp);
		return;
	}
	if (pl == 9 && !memcmp(t, "/aa/token", 9)) {
		respond_error(resp, 501, "Not Implemented",
			      "attestation tokens need a key broker (KBS), not configured yet; see docs/agent.md");
		return;
	}
	respond_error(resp, 404, "Not Found", "unknown path; served: /aa/evidence, /cdh/resource/...");
}

/* stop_fd: readable when the server must stop (a slow client must not
 * hold DestroySandbox for its whole timeout). */
static void serve_conn(sp_agent *a, int fd, int stop_fd)
{
	uint8_t buf[HTTP_MAX_HEAD];
	size_t len = 0;
	uint64_t deadline = sp_now_ns() + (uint64_t)HTTP_TIMEOUT_MS * 1000000u;
	_cleanup_buf_ sp_buf resp = SP_BUF_INIT;
	for (;;) {
		if (len >= 4 && memmem(buf, len, "\r\n\r\n", 4))
			break;
		if (len == sizeof(buf)) {
			respond_error(&resp, 431, "Request Header Fields Too Large",
				      "request head over 8 KiB");
			goto send;
		}
		uint64_t now = sp_now_ns();
		if (now >= deadline)
			return;
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = stop_fd, .events = POLLIN}};
		if (poll(p, 2, (int)((deadline - now) / 1000000u) + 1) <= 0 ||
		    p[1].revents)
			return;
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n <= 0)
			return;
		len += (size_t)n;
	}
	attest_handle(a, buf, len, &resp);
send:
	sp_write_all(fd, resp.data, resp.len);
}

static void *attest_loop(void *arg)
{
	sp_agent *a = arg;
	struct attest_server *s = a->attest;
	for (;;) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
				      {.fd = s->stop_pipe[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_conn(a, c, s->stop_pipe[0]);
		close(c);
	}
	return NULL;
}

int attest_parse(const char *listen, struct sockaddr_in *out, sp_err **err)
{
	const char *colon = strrchr(listen, ':');
	char ip[INET_ADDRSTRLEN];
	if (!colon || (size_t)(colon - listen) >= sizeof(ip))
		return sp_error(err, SP_ERR_INVALID,
				"attestation endpoint `%.64s`: expected IPv4:PORT such as %s",
				listen, SP_AGENT_ATTEST_ADDR);
	memcpy(ip, listen, (size_t)(colon - listen));
	ip[colon - listen] = 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (!colon[1] || *end || errno || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, ip, &out->sin_addr) != 1)
		return sp_error(err, SP_ERR_INVALID,
				"attestation endpoint `%.64s`: expected IPv4:PORT such as %s",
				listen, SP_AGENT_ATTEST_ADDR);
	return 0;
}

struct bind_job {
	struct sockaddr_in sa;
	const char *netns;
	int fd;
	int err;
	const char *what;
};

/* Runs in a throwaway thread: setns() changes only the calling thread's
 * network namespace, and a socket keeps the namespace it was created in,
 * whichever thread later accepts on it. */
static void *bind_thread(void *arg)
{
	struct bind_job *j = arg;
	j->fd = -1;
	int nfd = open(j->netns, O_RDONLY | O_CLOEXEC);
	if (nfd < 0 || setns(nfd, CLONE_NEWNET) < 0) {
		j->err = errno;
		j->what = "enter the pod's network namespace";
		if (nfd >= 0)
			close(nfd);
		return NULL;
	}
	close(nfd);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&j->sa, sizeof(j->sa)) < 0 || listen(fd, 16) < 0) {
		j->err = errno;
		j->what = "listen";
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	j->fd = fd;
	return NULL;
}

int attest_start(sp_agent *a, const char *netns, sp_err **err)
{
	if (!a->attest_listen || a->attest)
		return 0;
	struct bind_job j = {.netns = netns, .fd = -1};
	if (attest_parse(a->attest_listen, &j.sa, err) < 0)
		return (*err)->code;
	pthread_t t;
	int r = pthread_create(&t, NULL, bind_thread, &j);
	if (r != 0)
		return sp_error_sys(err, r, "attestation endpoint: thread");
	pthread_join(t, NULL);
	if (j.fd < 0)
		return sp_error_sys(err, j.err, "attestation endpoint %s in %s: %s",
				    a->attest_listen, netns, j.what);
	struct attest_server *s = sp_xzalloc(sizeof(*s));
	s->fd = j.fd;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		close(s->fd);
		free(s);
		return sp_error_sys(err, errno, "attestation endpoint: pipe");
	}
	a->attest = s;
	r = pthread_create(&s->thread, NULL, attest_loop, a);
	if (r != 0) {
		attest_stop(a);
		return sp_error_sys(err, r, "attestation endpoint: thread");
	}
	s->started = true;
	sp_log_info("attestation endpoint on %s in the pod's network namespace",
		    a->attest_listen);
	return 0;
}

void attest_stop(sp_agent *a)
{
	struct attest_server *s = a->attest;
	if (!s)
		return;
	if (s->started) {
		char x = 1;
		if (write(s->stop_pipe[1], &x, 1) < 0) {
			/* a pipe with room: cannot fail */
		}
		pthread_join(s->thread, NULL);
	}
	close(s->fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
	a->attest = NULL;
}
