/* SPDX-License-Identifier: Apache-2.0 */
/* Probes, run from the host as kubelet runs them. An exec probe's command
 * is an exec in the container, which the guest's policy must allow (the
 * generator lists every probe command). TCP and HTTP probes connect from
 * the host to the pod's port through the pod network's forwards on
 * 127.0.0.1 (run_net.c). Transitions are reported on stderr; nothing is
 * restarted (restartPolicy is not applied). gRPC probes are not run. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define SEC 1000000000ull

enum { STARTUP, LIVENESS, READINESS, N_KINDS };
static const char *const kinds[N_KINDS] = {"startupProbe", "livenessProbe", "readinessProbe"};
static const char *const words[N_KINDS] = {"startup", "liveness", "readiness"};

enum { P_EXEC, P_TCP, P_HTTP };

struct probe {
	int kind;
	const json_t *j;        /* the probe in the YAML */
	unsigned port, guest;   /* TCP/HTTP: 127.0.0.1:port reaches the pod's guest port */
	unsigned timeout_s;
	const json_t *cmd;
	uint64_t period_ns;
	unsigned ok_threshold, fail_threshold;
	uint64_t next;
	unsigned oks, fails;
	bool reported_fail;
	bool off;
};

struct prober {
	struct run_live *pod;
	struct run_ctr *c;
};

static unsigned field(const json_t *p, const char *key, unsigned def, unsigned lo, unsigned hi)
{
	const json_t *v = json_object_get(p, key);
	if (!json_is_integer(v))
		return def;
	json_int_t i = json_integer_value(v);
	return i < lo ? lo : i > hi ? hi : (unsigned)i;
}

static bool has_exec(const json_t *p)
{
	const json_t *cmd = json_object_get(json_object_get(p, "exec"), "command");
	return json_is_array(cmd) && json_array_size(cmd) > 0;
}

static bool has_net(const json_t *p)
{
	return json_is_object(json_object_get(p, "tcpSocket")) ||
	       json_is_object(json_object_get(p, "httpGet"));
}

/* Connects to 127.0.0.1:port within the deadline; -1 with *why set. */
static int dial(unsigned port, uint64_t deadline, char **why)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		*why = sp_xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
		*why = sp_xasprintf("connect: %s", strerror(errno));
		close(s);
		return -1;
	}
	struct pollfd pf = {.fd = s, .events = POLLOUT};
	uint64_t now = sp_now_ns();
	int r = now < deadline ? poll(&pf, 1, (int)((deadline - now) / 1000000) + 1) : 0;
	int soerr = 0;
	socklen_t l = sizeof(soerr);
	if (r <= 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0 || soerr) {
		*why = r <= 0 ? sp_xstrdup("connect: timed out")
			      : sp_xasprintf("connect: %s", strerror(soerr));
		close(s);
		return -1;
	}
	return s;
}

/* Waits for input until the deadline: 1 readable, 0 timeout. */
static int wait_in(int s, uint64_t deadline)
{
	uint64_t now = sp_now_ns();
	if (now >= deadline)
		return 0;
	struct pollfd pf = {.fd = s, .events = POLLIN | POLLRDHUP};
	return poll(&pf, 1, (int)((deadline - now) / 1000000) + 1) > 0;
}

/* kubelet's TCP probe: the connection opens. QEMU user networking accepts
 * on the host before it connects to the guest, and closes the host side
 * when the guest refuses: so a connection closed at once without a byte
 * counts as refused (docs/network.md). */
static bool tcp_probe(const struct probe *q, char **why)
{
	uint64_t deadline = sp_now_ns() + (uint64_t)q->timeout_s * SEC;
	int s = dial(q->port, deadline, why);
	if (s < 0)
		return false;
	uint64_t settle = sp_now_ns() + SEC;
	bool ok = true;
	if (wait_in(s, settle < deadline ? settle : deadline)) {
		char b;
		ssize_t n = recv(s, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
			*why = sp_xasprintf("port %u: connection refused in the pod", q->guest);
			ok = false;
		}
	}
	close(s);
	return ok;
}

static bool header_ok(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return s != NULL;
}

/* kubelet's HTTP probe: GET path; 200-399 is success. */
static bool http_probe(const struct probe *q, char **why)
{
	const json_t *h = json_object_get(q->j, "httpGet");
	const char *path = json_string_value(json_object_get(h, "path"));
	if (!path || !*path)
		path = "/";
	if (!header_ok(path) || strchr(path, ' ')) {
		*why = sp_xstrdup("httpGet.path has spaces or control characters");
		return false;
	}
	uint64_t deadline = sp_now_ns() + (uint64_t)q->timeout_s * SEC;
	int s = dial(q->port, deadline, why);
	if (s < 0)
		return false;
	_cleanup_buf_ sp_buf req = SP_BUF_INIT;
	sp_buf_printf(&req, "GET %s%s HTTP/1.1\r\n", path[0] == '/' ? "" : "/", path);
	bool host_set = false, ua_set = false, accept_set = false;
	size_t i;
	json_t *hd;
	json_array_foreach(json_object_get(h, "httpHeaders"), i, hd) {
		const char *n = json_string_value(json_object_get(hd, "name"));
		const char *v = json_string_value(json_object_get(hd, "value"));
		if (!n || !*n || !header_ok(n) || strchr(n, ':') || !header_ok(v ? v : ""))
			continue;
		host_set |= !strcasecmp(n, "Host");
		ua_set |= !strcasecmp(n, "User-Agent");
		accept_set |= !strcasecmp(n, "Accept");
		sp_buf_printf(&req, "%s: %s\r\n", n, v ? v : "");
	}
	if (!host_set)
		sp_buf_printf(&req, "Host: localhost:%u\r\n", q->guest);
	if (!ua_set)
		sp_buf_printf(&req, "User-Agent: kube-probe/1.30\r\n");
	if (!accept_set)
		sp_buf_printf(&req, "Accept: */*\r\n");
	sp_buf_printf(&req, "Connection: close\r\n\r\n");
	bool ok = false;
	char resp[256];
	size_t got = 0;
	if (send(s, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
		*why = sp_xasprintf("port %u: sending the request: %s", q->guest, strerror(errno));
		goto out;
	}
	/* The status line is all kubelet looks at (redirects aside). */
	while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
		if (!wait_in(s, deadline)) {
			*why = sp_xasprintf("port %u: no answer within %u s", q->guest, q->timeout_s);
			goto out;
		}
		ssize_t n = recv(s, resp + got, sizeof(resp) - 1 - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			*why = got ? sp_xasprintf("port %u: the answer ended early", q->guest)
				   : sp_xasprintf("port %u: connection refused in the pod", q->guest);
			goto out;
		}
		got += (size_t)n;
	}
	resp[got] = 0;
	int code = 0;
	if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
		*why = sp_xasprintf("port %u: not an HTTP answer", q->guest);
		goto out;
	}
	ok = code >= 200 && code < 400;
	if (!ok)
		*why = sp_xasprintf("HTTP probe failed with statuscode: %d", code);
out:
	close(s);
	return ok;
}

/* True when the pod is stopping or c is gone; else waits up to until. */
static bool sleep_until(struct run_live *pod, struct run_ctr *c, uint64_t until)
{
	pthread_mutex_lock(&pod->mu);
	for (;;) {
		if (c->exited || pod->closed || run_interrupted) {
			pthread_mutex_unlock(&pod->mu);
			return true;
		}
		uint64_t now = sp_now_ns();
		if (now >= until)
			break;
		/* Short slices: a signal sets run_interrupted without a
		 * broadcast. */
		uint64_t d = until - now < SEC / 5 ? until - now : SEC / 5;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + d;
		ts.tv_sec += (time_t)(ns / SEC);
		ts.tv_nsec = (long)(ns % SEC);
		pthread_cond_timedwait(&pod->cv, &pod->mu, &ts);
	}
	pthread_mutex_unlock(&pod->mu);
	return false;
}

static void set_ready(struct run_live *pod, struct run_ctr *c, bool ready)
{
	pthread_mutex_lock(&pod->mu);
	c->ready = ready;
	run_state_write(pod->st, pod);
	pthread_mutex_unlock(&pod->mu);
}

/* The first line of the probe's output, for the reason. */
static char *reason(int rc, const sp_err *err, int status, const char *out)
{
	if (rc < 0)
		return sp_xstrdup(sp_err_msg(err));
	size_t n = out ? strcspn(out, "\n") : 0;
	if (n > 200)
		n = 200;
	if (!n)
		return sp_xasprintf("exit status %d", status);
	return sp_xasprintf("exit status %d: %.*s", status, (int)n, out);
}

static void *probe_thread(void *arg)
{
	struct prober *pr = arg;
	struct run_live *pod = pr->pod;
	struct run_ctr *c = pr->c;
	free(pr);
	struct probe p[N_KINDS] = {0};
	uint64_t t0 = sp_now_ns();
	bool started = true;
	for (int k = 0; k < N_KINDS; k++) {
		const json_t *j = json_object_get(c->yaml, kinds[k]);
		p[k].j = j;
		if (has_exec(j)) {
			p[k].kind = P_EXEC;
			p[k].cmd = json_object_get(json_object_get(j, "exec"), "command");
		} else if (has_net(j)) {
			p[k].kind = json_object_get(j, "httpGet") ? P_HTTP : P_TCP;
			p[k].port = run_net_probe_port(pod->net, c->yaml, j, &p[k].guest);
			const char *scheme = json_string_value(
				json_object_get(json_object_get(j, "httpGet"), "scheme"));
			if (p[k].kind == P_HTTP && scheme && strcasecmp(scheme, "HTTP")) {
				run_progress("container %s: its %s probe's scheme %s is not supported "
					     "(HTTP only); it is not run", c->name, words[k], scheme);
				p[k].off = true;
				continue;
			}
			if (!p[k].port) {
				run_progress("container %s: its %s probe's port does not name a port of "
					     "the pod reachable from the host (no pod network?); it is "
					     "not run", c->name, words[k]);
				p[k].off = true;
				continue;
			}
		} else {
			p[k].off = true;
			continue;
		}
		p[k].timeout_s = field(j, "timeoutSeconds", 1, 1, 3600);
		/* Kubernetes' defaults; bounds keep a typo from spinning or
		 * sleeping for ever. */
		unsigned delay = field(j, "initialDelaySeconds", 0, 0, 3600);
		p[k].period_ns = (uint64_t)field(j, "periodSeconds", 10, 1, 3600) * SEC;
		p[k].ok_threshold = k == READINESS ? field(j, "successThreshold", 1, 1, 100) : 1;
		p[k].fail_threshold = field(j, "failureThreshold", 3, 1, 1000);
		p[k].next = t0 + (uint64_t)delay * SEC;
		if (k == STARTUP)
			started = false;
	}
	for (;;) {
		uint64_t next = UINT64_MAX;
		for (int k = 0; k < N_KINDS; k++)
			if (!p[k].off && (started || k == STARTUP) && p[k].next < next)
				next = p[k].next;
		if (next == UINT64_MAX || sleep_until(pod, c, next))
			break;
		for (int k = 0; k < N_KINDS; k++) {
			struct probe *q = &p[k];
			if (q->off || (!started && k != STARTUP) || q->next > sp_now_ns())
				continue;
			int status = 0;
			_cleanup_free_ char *out = NULL;
			_cleanup_err_ sp_err *err = NULL;
			int rc = 0;
			if (q->kind == P_EXEC) {
				rc = run_exec_collect(pod, c, "probe", q->cmd, false, &status, &out,
						      4096, &err);
			} else {
				char *why = NULL;
				bool pass = q->kind == P_TCP ? tcp_probe(q, &why) : http_probe(q, &why);
				if (!pass) {
					rc = sp_error(&err, SP_ERR_STATE, "%s", why ? why : "failed");
					free(why);
				}
			}
			q->next = sp_now_ns() + q->period_ns;
			if (rc < 0 && (c->exited || pod->closed || run_interrupted))
				break;
			if (rc == SP_ERR_DENIED && err && strstr(sp_err_msg(err), "denied")) {
				/* Asking again gets the same answer. */
				run_progress("container %s: %s probe refused by the pod policy: %s",
					     c->name, words[k], sp_err_msg(err));
				q->off = true;
				if (k == STARTUP)
					started = true;
				continue;
			}
			bool ok = rc == 0 && status == 0;
			_cleanup_free_ char *why = ok ? NULL : reason(rc, err, status, out);
			if (ok) {
				q->fails = 0;
				q->oks++;
				q->reported_fail = false;
			} else {
				q->oks = 0;
				q->fails++;
			}
			if (k == STARTUP) {
				if (ok) {
					started = true;
					q->off = true; /* a startup probe runs until it passes */
					run_progress("container %s: started (startup probe passed)",
						     c->name);
				} else if (q->fails == q->fail_threshold) {
					run_progress("container %s: startup probe failed %u times: %s "
						     "(restartPolicy is not applied; it keeps running)",
						     c->name, q->fails, why);
				}
			} else if (k == LIVENESS) {
				if (!ok && q->fails >= q->fail_threshold) {
					run_progress("container %s: liveness probe failed %u times: %s "
						     "(restartPolicy is not applied; it keeps running)",
						     c->name, q->fails, why);
					q->fails = 0;
				}
			} else {
				if (ok && !c->ready && q->oks >= q->ok_threshold) {
					set_ready(pod, c, true);
					run_progress("container %s: ready", c->name);
				} else if (!ok && q->fails >= q->fail_threshold &&
					   (c->ready || !q->reported_fail)) {
					/* From ready, or the first time it is not. */
					set_ready(pod, c, false);
					q->reported_fail = true;
					run_progress("container %s: not ready: %s", c->name, why);
				}
			}
		}
	}
	return NULL;
}

void run_probe_start(struct run_live *pod, struct run_ctr *c)
{
	bool any = false;
	for (int k = 0; k < N_KINDS; k++) {
		const json_t *j = json_object_get(c->yaml, kinds[k]);
		if (!j)
			continue;
		if (has_exec(j) || has_net(j))
			any = true;
		else
			run_progress("container %s: its %s probe is neither exec, TCP nor HTTP; "
				     "`sealpod run` does not run it", c->name, words[k]);
	}
	const json_t *rp = json_object_get(c->yaml, "readinessProbe");
	c->ready = !has_exec(rp) && !has_net(rp);
	if (!any)
		return;
	struct prober *pr = sp_xzalloc(sizeof(*pr));
	pr->pod = pod;
	pr->c = c;
	if (pthread_create(&c->prober, NULL, probe_thread, pr) != 0) {
		free(pr);
		run_progress("container %s: could not start its probes", c->name);
		return;
	}
	c->probing = true;
}

void run_probe_join(struct run_ctr *c)
{
	if (c->probing) {
		pthread_join(c->prober, NULL);
		c->probing = false;
	}
}
