/* SPDX-License-Identifier: Apache-2.0 */
/* The workload attestation endpoint: a deliberately tiny HTTP/1.1 server
 * on 127.0.0.1:8006 in the pod's network namespace, with the paths
 * Confidential Containers workloads use (api-server-rest):
 *   GET /aa/evidence?runtime_data=...   a TEE report binding runtime_data
 *   GET /aa/token?token_type=kbs        the key broker's attestation token
 *                                       and the key it names (cached)
 *   GET /cdh/resource/<repo>/<type>/<tag>  a resource from the key broker
 *                                          the policy names (policy.kbs)
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
#include "sealpod/kbs.h"
#include "sealpod/log.h"

#define HTTP_MAX_HEAD 8192
#define HTTP_TIMEOUT_MS 5000

/* Per broker request: the endpoint serves one connection at a time, and
 * DestroySandbox waits for the one in progress. */
#define KBS_TIMEOUT_S 10

struct attest_kbs {
	char *url;
	char *ca_file; /* NULL for http */
	/* The cached attestation (token + ephemeral key) and when it stops
	 * being used (monotonic ns). Only the endpoint's thread touches it
	 * (and the agent's teardown after that thread stopped). */
	sp_kbs_attestation att;
	uint64_t att_until;
};

/* A token is used until this much of its lifetime is left: a tenth of it,
 * at most 30 s, so a request does not reach the broker just as it expires. */
static uint64_t token_margin_s(long lifetime)
{
	long m = lifetime / 10;
	return (uint64_t)(m > 30 ? 30 : m);
}

struct attest_server {
	int fd;
	int netns_fd; /* the pod's network namespace: broker requests */
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

static void respond_bytes(sp_buf *b, int code, const char *reason, const char *ctype,
			  const uint8_t *body, size_t n)
{
	sp_buf_printf(b,
		      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		      "Connection: close\r\nCache-Control: no-store\r\n\r\n",
		      code, reason, ctype, n);
	sp_buf_put(b, body, n);
}

static void respond(sp_buf *b, int code, const char *reason, const char *ctype,
		    const char *body)
{
	respond_bytes(b, code, reason, ctype, (const uint8_t *)body, strlen(body));
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

int attest_set_kbs(sp_agent *a, const char *url, const char *ca_pem, sp_err **err)
{
	if (a->kbs)
		return sp_error(err, SP_ERR_STATE, "the key broker is already set");
	_cleanup_free_ char *ca_file = NULL;
	if (ca_pem) {
		/* The client takes a CA file; the PEM is the policy's. */
		ca_file = sp_xasprintf("%s/kbs-ca.pem", a->state_dir);
		if (sp_write_file_atomic(ca_file, ca_pem, strlen(ca_pem), 0600, err) < 0)
			return sp_error_wrap(err, "the key broker's CA");
	}
	struct attest_kbs *k = sp_xzalloc(sizeof(*k));
	k->url = sp_xstrdup(url);
	k->ca_file = ca_file;
	ca_file = NULL;
	__atomic_store_n(&a->kbs, k, __ATOMIC_RELEASE);
	sp_log_info("key broker for /cdh/resource: %s", url);
	return 0;
}

void attest_kbs_free(sp_agent *a)
{
	struct attest_kbs *k = a->kbs;
	if (!k)
		return;
	free(k->url);
	free(k->ca_file);
	sp_kbs_attestation_clear(&k->att);
	free(k);
	a->kbs = NULL;
}

/* The KBS client's evidence producer: the agent's TEE through its lock
 * (agent_tee_report), so a broker request never races SetPolicy or
 * GetReport for the PSP. */
int agent_kbs_evidence(void *ctx, const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
		       json_t **evidence, sp_err **err)
{
	sp_agent *a = ctx;
	_cleanup_free_ uint8_t *rep = NULL, *certs = NULL;
	size_t rl = 0, cl = 0;
	if (agent_tee_report(a, report_data, &rep, &rl, &certs, &cl, err) < 0)
		return (*err)->code;
	return sp_kbs_evidence_json(rep, rl, certs, cl, evidence, err);
}

int attest_kbs_ref(sp_agent *a, struct attest_kbs_ref *out)
{
	/* url and ca_file never change once published (SetPolicy). */
	const struct attest_kbs *k = __atomic_load_n(&a->kbs, __ATOMIC_ACQUIRE);
	if (!k || !a->have_tee)
		return -1;
	out->url = k->url;
	out->ca_file = k->ca_file;
	return 0;
}

/* The broker the policy names, or an answer saying why there is none. */
static struct attest_kbs *kbs_or_respond(sp_agent *a, sp_buf *resp)
{
	struct attest_kbs *k = __atomic_load_n(&a->kbs, __ATOMIC_ACQUIRE);
	if (!k) {
		respond_error(resp, 501, "Not Implemented",
			      "no key broker is configured: the pod policy has no `kbs` field (sealpod policy gen --kbs URL); see docs/policy.md");
		return NULL;
	}
	if (!a->have_tee) {
		respond_error(resp, 503, "Service Unavailable",
			      "this guest has no TEE to attest to the key broker (agent started with --tee none)");
		return NULL;
	}
	return k;
}

/* Broker requests go out where the pod's own traffic does (docs/network.md):
 * through the pod's namespace once the pod holds the guest's network device
 * (UpdateInterface; the agent's namespace has no route then), else from the
 * agent's namespace (natively the host's network; in a UVM the uplink when
 * a registry pull brought it up). This thread enters the pod's namespace
 * for the request only; agent_pull_net_leave brings it back. */
static int kbs_net_enter(sp_agent *a, int *saved, sp_err **err)
{
	*saved = -1;
	if (!__atomic_load_n(&a->podnet_up, __ATOMIC_ACQUIRE))
		return 0;
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return sp_error_sys(err, errno, "key broker: the agent's network namespace");
	if (setns(a->attest->netns_fd, CLONE_NEWNET) < 0) {
		int e = errno;
		close(self);
		return sp_error_sys(err, e, "key broker: enter the pod's network namespace");
	}
	*saved = self;
	return 0;
}

static void kbs_opts(const struct attest_kbs *k, sp_kbs_client_opts *o)
{
	sp_kbs_client_opts_init(o);
	o->ca_file = k->ca_file;
	o->timeout_s = KBS_TIMEOUT_S;
}

/* The cached attestation with the broker, or a fresh one (RCAR with this
 * guest's TEE) when there is none or its token is near its expiry. A
 * token without exp/iat is not cached. */
static int kbs_attestation(sp_agent *a, struct attest_kbs *k, bool fresh, sp_err **err)
{
	uint64_t now = sp_now_ns();
	if (!fresh && k->att.token && now < k->att_until)
		return 0;
	sp_kbs_attestation_clear(&k->att);
	k->att_until = 0;
	sp_kbs_client_opts o;
	kbs_opts(k, &o);
	int r = sp_kbs_client_attest(&k->att, k->url, a->tee.kind, agent_kbs_evidence, a, &o,
				     err);
	if (r < 0)
		return r;
	uint64_t keep = (uint64_t)k->att.lifetime - token_margin_s(k->att.lifetime);
	k->att_until = now + keep * 1000000000u;
	sp_log_info("key broker %s: attested, token valid for %ld s", k->url, k->att.lifetime);
	return 0;
}

/* The broker's error as this endpoint's answer: 404, 403 or 502. */
static void respond_broker_error(sp_buf *resp, const struct attest_kbs *k, const sp_err *e)
{
	_cleanup_free_ char *msg = sp_xasprintf("key broker %s: %s", k->url, sp_err_msg(e));
	if (e->code == SP_ERR_NOT_FOUND)
		respond_error(resp, 404, "Not Found", msg);
	else if (e->code == SP_ERR_DENIED)
		respond_error(resp, 403, "Forbidden", msg);
	else
		respond_error(resp, 502, "Bad Gateway", msg);
}

/* GET /aa/token?token_type=kbs: {"token", "tee_keypair"} as CoCo's
 * attestation agent answers it — the broker's token and the PEM of the
 * private key whose public half the token names, so the workload can
 * decrypt what the broker releases to that token. */
static void handle_token(sp_agent *a, const char *q, size_t qn, sp_buf *resp)
{
	_cleanup_buf_ sp_buf tt = SP_BUF_INIT;
	bool bad;
	if (!query_get(q, qn, "token_type", &tt, &bad)) {
		respond_error(resp, 400, "Bad Request",
			      bad ? "token_type is not validly percent-encoded"
				  : "missing query parameter token_type (kbs)");
		return;
	}
	if (tt.len != 3 || memcmp(tt.data, "kbs", 3)) {
		respond_error(resp, 400, "Bad Request",
			      "token_type: only `kbs` (the key broker's attestation token) is served");
		return;
	}
	struct attest_kbs *k = kbs_or_respond(a, resp);
	if (!k)
		return;
	_cleanup_err_ sp_err *e = NULL;
	__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
	if (kbs_net_enter(a, &saved_ns, &e) < 0 || kbs_attestation(a, k, false, &e) < 0) {
		sp_log_warn("/aa/token: %s", sp_err_msg(e));
		respond_broker_error(resp, k, e);
		return;
	}
	_cleanup_free_ char *pem = sp_kbs_key_to_pem(k->att.key);
	json_t *j = json_pack("{s:s,s:s}", "token", k->att.token, "tee_keypair", pem);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	respond(resp, 200, "OK", "application/json", s ? s : "{}");
	free(s);
}

/* Asks the policy's key broker for repo/type/tag with the cached token
 * (attesting with this guest's TEE when there is none); a 401 on a cached
 * token (expired, or the broker restarted with another key) gets one
 * fresh attestation. The broker's refusal becomes 404, 403 or 502. */
static void fetch_resource(sp_agent *a, const char *repo, const char *type, const char *tag,
			   sp_buf *resp)
{
	struct attest_kbs *k = kbs_or_respond(a, resp);
	if (!k)
		return;
	sp_kbs_client_opts o;
	kbs_opts(k, &o);
	_cleanup_free_ uint8_t *data = NULL;
	size_t dlen = 0;
	_cleanup_err_ sp_err *e = NULL;
	bool cached = k->att.token && sp_now_ns() < k->att_until;
	__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
	int r = kbs_net_enter(a, &saved_ns, &e);
	if (r == 0)
		r = kbs_attestation(a, k, false, &e);
	if (r == 0)
		r = sp_kbs_client_fetch(&data, &dlen, k->url, k->att.token, k->att.key, repo, type,
					tag, &o, &e);
	if (r < 0 && cached && e->code == SP_ERR_APPRAISAL) {
		sp_log_info("/cdh/resource: the cached token was refused (%s); attesting again",
			    sp_err_msg(e));
		sp_err_clear(&e);
		r = kbs_attestation(a, k, true, &e);
		if (r == 0)
			r = sp_kbs_client_fetch(&data, &dlen, k->url, k->att.token, k->att.key, repo,
						type, tag, &o, &e);
	}
	if (r < 0) {
		sp_log_warn("/cdh/resource/%s/%s/%s: %s", repo, type, tag, sp_err_msg(e));
		respond_broker_error(resp, k, e);
		return;
	}
	respond_bytes(resp, 200, "OK", "application/octet-stream", data, dlen);
}

static void handle_resource(sp_agent *a, const char *rest, size_t n, sp_buf *resp)
{
	/* <repository>/<type>/<tag>: three non-empty plain components. */
	char comp[3][129];
	int parts = 0;
	size_t len = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || rest[i] == '/') {
			if (len == 0 || parts == 3)
				goto bad;
			memcpy(comp[parts], rest + i - len, len);
			comp[parts][len] = 0;
			parts++;
			len = 0;
		} else {
			char c = rest[i];
			if (len == 0 && c == '.')
				goto bad; /* no ".", "..", hidden names */
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
				goto bad;
			if (++len > 128)
				goto bad;
		}
	}
	if (parts != 3)
		goto bad;
	fetch_resource(a, comp[0], comp[1], comp[2], resp);
	return;
bad:
	respond_error(resp, 400, "Bad Request",
		      "resource path must be /cdh/resource/<repository>/<type>/<tag>, each 1-128 of [A-Za-z0-9._-], not starting with '.'");
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
		handle_resource(a, t + 14, pl - 14, resp);
		return;
	}
	if (pl == 9 && !memcmp(t, "/aa/token", 9)) {
		handle_token(a, q, qn, resp);
		return;
	}
	respond_error(resp, 404, "Not Found",
		      "unknown path; served: /aa/evidence, /aa/token, /cdh/resource/...");
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
	s->netns_fd = open(netns, O_RDONLY | O_CLOEXEC);
	if (s->netns_fd < 0) {
		int e = errno;
		close(s->fd);
		free(s);
		return sp_error_sys(err, e, "attestation endpoint: open %s", netns);
	}
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0) {
		close(s->fd);
		close(s->netns_fd);
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
	close(s->netns_fd);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
	a->attest = NULL;
}
