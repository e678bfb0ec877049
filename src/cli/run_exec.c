/* SPDX-License-Identifier: Apache-2.0 */
/* Execs in a running pod's containers: probes (run_probe.c) and `sealpod
 * exec` (run_ctl.c). The process is the container's own, as the policy
 * built it (user, cwd, env, capabilities); only args and the terminal
 * change, as in the containerd shim. The guest's policy decides. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/bytes.h"
#include "sealpod/json.h"
#include "sealpod/sandbox.h"

char *run_exec_process(const struct run_ctr *c, const json_t *args, bool tty)
{
	_cleanup_json_ json_t *p = c->process ? json_deep_copy(c->process) : json_object();
	if (!p)
		sp_oom();
	json_object_set_new(p, "args", json_deep_copy(args));
	json_object_set_new(p, "terminal", json_boolean(tty));
	json_object_del(p, "consoleSize");
	char *out = json_dumps(p, JSON_COMPACT);
	if (!out)
		sp_oom();
	return out;
}

char *run_exec_id(const char *kind)
{
	static atomic_uint next;
	return sp_xasprintf("%s-%u-%d", kind, atomic_fetch_add(&next, 1) + 1, (int)getpid());
}

const char *run_agent_msg(const sp_err *e)
{
	const char *m = sp_err_msg(e);
	const char *s = strstr(m, "AgentService/");
	if (!s || !(s = strstr(s, ": ")))
		return m;
	s += 2;
	/* The ttrpc status code ("PERMISSION_DENIED: ") says less than the
	 * agent's sentence after it. */
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
	if (n > 0 && s[n] == ':' && s[n + 1] == ' ')
		s += n + 2;
	return s;
}

/* Marks an exec in flight, so the pod's sandbox is not stopped under it. */
static int exec_enter(struct run_live *pod, struct run_ctr *c, sp_err **err)
{
	int rc = 0;
	pthread_mutex_lock(&pod->mu);
	if (pod->closed)
		rc = sp_error(err, SP_ERR_STATE, "pod %s is stopping or has exited", pod->name);
	else if (c->exited)
		rc = sp_error(err, SP_ERR_STATE, "container %s has exited (status %d)", c->name,
			      c->status);
	else if (!c->started)
		rc = sp_error(err, SP_ERR_STATE, "container %s is not running yet", c->name);
	else
		pod->busy++;
	pthread_mutex_unlock(&pod->mu);
	return rc;
}

static void exec_leave(struct run_live *pod)
{
	pthread_mutex_lock(&pod->mu);
	pod->busy--;
	pthread_cond_broadcast(&pod->cv);
	pthread_mutex_unlock(&pod->mu);
}

static int exec_start(struct run_live *pod, struct run_ctr *c, const char *eid,
		      const json_t *args, bool tty, sp_err **err)
{
	_cleanup_free_ char *proc = run_exec_process(c, args, tty);
	sp_err *e = NULL;
	if (sp_sandbox_exec(pod->sb, c->id, eid, proc, &e) < 0) {
		/* The agent's explanation (a policy denial says which
		 * commands are allowed) is what the user needs. */
		sp_error(err, e->code, "%s", run_agent_msg(e));
		sp_err_free(e);
		return SP_ERR_DENIED;
	}
	return 0;
}

int run_exec_collect(struct run_live *pod, struct run_ctr *c, const char *kind,
		     const json_t *args, bool tty, int *status, char **out, size_t max,
		     sp_err **err)
{
	if (exec_enter(pod, c, err) < 0)
		return (*err)->code;
	_cleanup_free_ char *eid = run_exec_id(kind);
	int rc = exec_start(pod, c, eid, args, tty, err);
	if (rc < 0) {
		exec_leave(pod);
		return rc;
	}
	/* The agent buffers both streams, so reading them one after the
	 * other cannot stall the process; reading both to the end and
	 * waiting lets the agent forget the exec. */
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	for (int s = SP_STREAM_STDOUT; s <= SP_STREAM_STDERR && !tty; s++) {
		for (;;) {
			_cleanup_free_ uint8_t *data = NULL;
			size_t len = 0;
			if (sp_sandbox_read(pod->sb, c->id, eid, s, &data, &len, NULL) < 0 || !len)
				break;
			if (b.len < max)
				sp_buf_put(&b, data, len > max - b.len ? max - b.len : len);
		}
	}
	if (tty) {
		for (;;) {
			_cleanup_free_ uint8_t *data = NULL;
			size_t len = 0;
			if (sp_sandbox_read(pod->sb, c->id, eid, SP_STREAM_STDOUT, &data, &len,
					    NULL) < 0 || !len)
				break;
		}
	}
	rc = sp_sandbox_wait(pod->sb, c->id, eid, status, err);
	exec_leave(pod);
	if (rc < 0)
		return rc;
	if (out) {
		sp_buf_terminate(&b);
		*out = (char *)sp_buf_steal(&b, NULL);
	}
	return 0;
}

/* ---- streamed to a `sealpod exec` client ---------------------------------- */

struct stream_ctx {
	struct run_live *pod;
	struct run_ctr *c;
	const char *eid;
	int fd;
	pthread_mutex_t *fd_mu;
	bool *gone; /* the client went away */
	int stream;
};

static void *stream_thread(void *arg)
{
	struct stream_ctx *s = arg;
	for (;;) {
		_cleanup_free_ uint8_t *data = NULL;
		size_t len = 0;
		if (sp_sandbox_read(s->pod->sb, s->c->id, s->eid, s->stream, &data, &len, NULL) < 0 ||
		    !len)
			break;
		pthread_mutex_lock(s->fd_mu);
		if (!*s->gone &&
		    run_ctl_send(s->fd, s->stream == SP_STREAM_STDERR ? RUN_FRAME_STDERR
								       : RUN_FRAME_STDOUT,
				 data, len) < 0) {
			/* Nobody reads the output any more: end the command
			 * rather than let it run unobserved. */
			*s->gone = true;
			sp_sandbox_signal(s->pod->sb, s->c->id, s->eid, SIGKILL, NULL);
		}
		pthread_mutex_unlock(s->fd_mu);
	}
	return NULL;
}

int run_exec_stream(struct run_live *pod, struct run_ctr *c, const json_t *args, bool tty,
		    int fd, sp_err **err)
{
	if (exec_enter(pod, c, err) < 0)
		return (*err)->code;
	_cleanup_free_ char *eid = run_exec_id("exec");
	int rc = exec_start(pod, c, eid, args, tty, err);
	if (rc < 0) {
		exec_leave(pod);
		return rc;
	}
	pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
	bool gone = false;
	struct stream_ctx sc[2];
	pthread_t th[2];
	bool started[2] = {false, false};
	for (int i = 0; i < 2; i++) {
		sc[i] = (struct stream_ctx){.pod = pod, .c = c, .eid = eid, .fd = fd,
					    .fd_mu = &fd_mu, .gone = &gone,
					    .stream = i ? SP_STREAM_STDERR : SP_STREAM_STDOUT};
		if (i == 1 && tty)
			break; /* a terminal has one stream */
		started[i] = pthread_create(&th[i], NULL, stream_thread, &sc[i]) == 0;
		if (!started[i])
			stream_thread(&sc[i]);
	}
	int status = 255;
	rc = sp_sandbox_wait(pod->sb, c->id, eid, &status, err);
	for (int i = 0; i < 2; i++)
		if (started[i])
			pthread_join(th[i], NULL);
	exec_leave(pod);
	if (rc < 0)
		return rc;
	char num[16];
	int n = snprintf(num, sizeof(num), "%d", status);
	if (!gone)
		run_ctl_send(fd, RUN_FRAME_EXIT, num, (size_t)n);
	return 0;
}
