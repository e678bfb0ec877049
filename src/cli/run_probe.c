/* SPDX-License-Identifier: Apache-2.0 */
/* Exec probes, run from the host as kubelet runs them: the probe's command
 * is an exec in the container, which the guest's policy must allow (the
 * generator lists every probe command). Transitions are reported on
 * stderr; nothing is restarted (restartPolicy is not applied). HTTP, TCP
 * and gRPC probes need the pod's network and are not run. */
#include <string.h>
#include <time.h>

#include "run.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define SEC 1000000000ull

enum { STARTUP, LIVENESS, READINESS, N_KINDS };
static const char *const kinds[N_KINDS] = {"startupProbe", "livenessProbe", "readinessProbe"};
static const char *const words[N_KINDS] = {"startup", "liveness", "readiness"};

struct probe {
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
		if (!has_exec(j)) {
			p[k].off = true;
			continue;
		}
		p[k].cmd = json_object_get(json_object_get(j, "exec"), "command");
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
			int rc = run_exec_collect(pod, c, "probe", q->cmd, false, &status, &out, 4096,
						  &err);
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
		if (has_exec(j))
			any = true;
		else
			run_progress("container %s: its %s probe is not exec; `sealpod run` runs "
				     "exec probes only", c->name, words[k]);
	}
	c->ready = !has_exec(json_object_get(c->yaml, "readinessProbe"));
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
