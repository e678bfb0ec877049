/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox, container and process handlers. They run with the agent lock
 * held, after the policy allowed the request. Blocking calls wait on the
 * agent's condition variable and look their container and process up
 * again after every wait: the objects may have been removed meanwhile. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#ifdef SP_AGENT_HAVE_IMAGE
#include "sealpod/image.h"
#endif

#define NS_PER_S 1000000000ull

static int no_container(reply *r, const char *method, const char *id)
{
	return reply_err(r, SP_RPC_NOT_FOUND,
			 "%s: no container `%.128s` in this sandbox", method, id);
}

static int no_process(reply *r, const char *method, const char *cid,
		      const char *eid)
{
	return reply_err(r, SP_RPC_NOT_FOUND,
			 "%s: no process `%.128s` in container `%.128s`", method,
			 eid, cid);
}

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* Looks up container + process for a request; NULL with r filled. */
static proc *lookup(sp_agent *a, const char *method, const char *cid,
		    const char *eid, reply *r)
{
	if (!valid_id(cid)) {
		reply_err(r, SP_RPC_INVALID_ARGUMENT,
			  "%s: container_id must be 1-128 characters [A-Za-z0-9_.-]",
			  method);
		return NULL;
	}
	container *c = container_find(a, cid);
	if (!c) {
		no_container(r, method, cid);
		return NULL;
	}
	proc *p = proc_find(c, eid);
	if (!p)
		no_process(r, method, cid, eid ? eid : "");
	return p;
}

static int lookup_rc(reply *r)
{
	if (r->msg && strstr(r->msg, ": no "))
		return SP_RPC_NOT_FOUND;
	return SP_RPC_INVALID_ARGUMENT;
}

/* An exec process that was waited for and whose output was read to the
 * end is forgotten, so its slot can be reused. */
static void maybe_forget_exec(sp_agent *a, proc *p)
{
	container *c = p->c;
	if (!c || p == c->procs || p->state != PROC_EXITED || !p->waited ||
	    !p->out.eof || p->out.len || !p->err.eof || p->err.len)
		return;
	for (proc **pp = &c->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	c->n_execs--;
	proc_bury(a, p);
}

/* ---- sandbox ---- */

static bool plain_name(const char *s)
{
	return valid_id(s);
}

int h_create_sandbox(sp_agent *a, const ACreateSandbox *q, reply *r)
{
	if (a->sandbox_created)
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "CreateSandbox: the sandbox already exists");
	if (q->sandbox_id && q->sandbox_id[0] && !valid_id(q->sandbox_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateSandbox: sandbox_id must be 1-128 characters [A-Za-z0-9_.-]");
	_cleanup_free_ char *sb = sandbox_dir(a);
	_cleanup_err_ sp_err *e = NULL;
	for (size_t i = 0; i < q->n_storages; i++) {
		const AStorage *s = q->storages[i];
		if (!s->driver || strcmp(s->driver, "emptydir") != 0)
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateSandbox: storage %zu: driver `%.64s` is not a sandbox storage (only \"emptydir\")",
					 i, s->driver ? s->driver : "");
		if (!plain_name(s->source))
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateSandbox: storage %zu: emptydir name must be 1-128 characters [A-Za-z0-9_.-]",
					 i);
	}
	for (size_t i = 0; i < q->n_storages; i++) {
		_cleanup_free_ char *d = sp_xasprintf("%s/emptydir/%s", sb,
						      q->storages[i]->source);
		if (sp_mkdir_p(d, 0777, &e) < 0)
			return reply_sp_err(r, e, "CreateSandbox");
	}
	free(a->sandbox_id);
	free(a->hostname);
	a->sandbox_id = sp_xstrdup(q->sandbox_id ? q->sandbox_id : "");
	a->hostname = sp_xstrdup(q->hostname ? q->hostname : "");
	if (!a->native && a->hostname[0] && strlen(a->hostname) < 64 &&
	    sethostname(a->hostname, strlen(a->hostname)) < 0)
		sp_log_warn("CreateSandbox: sethostname: %s", strerror(errno));
	a->sandbox_created = true;
	return reply_empty(r);
}

static void container_free(container *c)
{
	json_decref(c->spec);
	free(c->id);
	free(c->name);
	free(c->rootfs);
	free(c->bundle);
	free(c);
}

/* Unlinks the container, buries its processes, removes its files. Every
 * process must have exited (or be killed by the caller first). */
static void container_drop(sp_agent *a, container *c)
{
	for (container **pp = &a->containers; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	a->n_containers--;
	proc *p = c->procs;
	while (p) {
		proc *n = p->next;
		proc_bury(a, p);
		p = n;
	}
	if (c->bundle) {
		if (c->rootfs_owned)
			umount2(c->rootfs, MNT_DETACH);
		_cleanup_err_ sp_err *e = NULL;
		if (sp_rm_rf(c->bundle, &e) < 0)
			sp_log_warn("remove container `%s`: %s", c->id, sp_err_msg(e));
	}
	container_free(c);
	agent_broadcast(a);
}

static void kill_all(container *c, int sig)
{
	for (proc *p = c->procs; p; p = p->next)
		if (p->pid > 0 && p->state != PROC_EXITED) {
			/* The whole session: the process made its own. */
			if (kill(-p->pid, sig) < 0)
				kill(p->pid, sig);
		}
}

static bool all_exited(container *c)
{
	for (proc *p = c->procs; p; p = p->next)
		if (p->pid > 0 && p->state != PROC_EXITED)
			return false;
	return true;
}

/* Stops and removes a container; c may be freed by other threads while
 * waiting, so it is looked up by id. */
static int stop_and_drop(sp_agent *a, const char *id, unsigned timeout_s,
			 uint64_t deadline)
{
	container *c = container_find(a, id);
	if (!c)
		return SP_ERR_NOT_FOUND;
	if (!all_exited(c) && timeout_s > 0) {
		kill_all(c, SIGTERM);
		uint64_t dl = min_deadline(deadline, sp_now_ns() + timeout_s * NS_PER_S);
		while ((c = container_find(a, id)) && !all_exited(c))
			if (!agent_wait(a, dl))
				break;
	}
	/* Killing cannot be refused; waiting for the kernel is bounded. */
	uint64_t dl = sp_now_ns() + 10 * NS_PER_S;
	while ((c = container_find(a, id)) && !all_exited(c)) {
		kill_all(c, SIGKILL);
		pthread_mutex_unlock(&a->lock);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&a->lock);
		if (sp_now_ns() > dl)
			return SP_ERR_TIMEOUT;
	}
	c = container_find(a, id);
	if (!c)
		return SP_ERR_NOT_FOUND;
	container_drop(a, c);
	return 0;
}

void containers_destroy_all(sp_agent *a)
{
	/* Called while stopping: agent_wait returns at once, so this kills. */
	while (a->containers) {
		_cleanup_free_ char *id = sp_xstrdup(a->containers->id);
		if (stop_and_drop(a, id, 0, 0) == SP_ERR_TIMEOUT) {
			container *c = container_find(a, id);
			if (c)
				container_drop(a, c);
		}
	}
}

int h_destroy_sandbox(sp_agent *a, reply *r)
{
	while (a->containers) {
		_cleanup_free_ char *id = sp_xstrdup(a->containers->id);
		int rc = stop_and_drop(a, id, 0, 0);
		if (rc == SP_ERR_TIMEOUT)
			return reply_err(r, SP_RPC_INTERNAL,
					 "DestroySandbox: container `%s` did not die after SIGKILL",
					 id);
	}
	a->sandbox_created = false;
	return reply_empty(r);
}

/* ---- containers ---- */

/* Where the root filesystem comes from; see docs/agent.md. */
static int resolve_rootfs(sp_agent *a, const ACreateContainer *q, container *c,
			  reply *r)
{
	const AStorage *dir = NULL, *store = NULL;
	for (size_t i = 0; i < q->n_storages; i++) {
		const AStorage *s = q->storages[i];
		const char *d = s->driver ? s->driver : "";
		if (!strcmp(d, "dir")) {
			if (!a->native)
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateContainer: storage driver \"dir\" is a test feature of native mode");
			dir = s;
		} else if (!strcmp(d, "oci-store")) {
			store = s;
		} else if (!strcmp(d, "image") || !strcmp(d, "emptydir") ||
			   !strcmp(d, "configmap") || !strcmp(d, "secret")) {
			/* image: handled through q->image; volumes: mounted by
			 * the container engine (docs/agent.md). */
		} else {
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateContainer: storage %zu: unknown driver `%.64s`",
					 i, d);
		}
	}
	if (q->image && q->image[0]) {
#ifdef SP_AGENT_HAVE_IMAGE
		_cleanup_err_ sp_err *e = NULL;
		_cleanup_image_ref_ sp_image_ref *ref = NULL;
		if (sp_image_ref_parse(&ref, q->image, &e) < 0)
			return reply_sp_err(r, e, "CreateContainer: image");
		if (!ref->digest)
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateContainer: image `%.200s` must be pinned by digest (name@sha256:...)",
					 q->image);
		_cleanup_free_ char *spec = NULL;
		if (store && store->source && store->source[0] == '/')
			spec = sp_xasprintf("tar:%s", store->source);
		else if (a->image_store)
			spec = strchr(a->image_store, ':') ? sp_xstrdup(a->image_store)
							   : sp_xasprintf("dir:%s", a->image_store);
		else
			spec = sp_xstrdup("registry:");
		_cleanup_image_store_ sp_image_store *st = NULL;
		if (sp_image_store_open(&st, spec, NULL, &e) < 0)
			return reply_sp_err(r, e, "CreateContainer: image store");
		char *dest = sp_xasprintf("%s/rootfs", c->bundle);
		struct sp_image_limits lim = {.version = SP_IMAGE_LIMITS_VERSION};
		/* Pulling takes long: let other calls run meanwhile. */
		pthread_mutex_unlock(&a->lock);
		int rc = sp_image_pull(st, q->image, ref->digest, dest, &lim, NULL, &e);
		pthread_mutex_lock(&a->lock);
		if (rc < 0) {
			free(dest);
			return reply_sp_err(r, e, "CreateContainer: image");
		}
		c->rootfs = dest;
		c->rootfs_owned = true;
		return 0;
#else
		(void)store;
		return reply_err(r, SP_RPC_UNIMPLEMENTED,
				 "CreateContainer: this agent was built without the image module; use a \"dir\" storage (native mode)");
#endif
	}
	(void)store;
	const char *path = dir ? dir->source : (a->native ? a->rootfs_dir : NULL);
	if (!path)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: container `%s` has no root filesystem: set `image`",
				 q->container_id);
	struct stat st;
	if (path[0] != '/' || stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: root filesystem `%.200s` is not an existing directory",
				 path);
	c->rootfs = sp_xstrdup(path);
	return 0;
}

int h_create_container(sp_agent *a, const ACreateContainer *q, reply *r)
{
	if (!valid_id(q->container_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: container_id must be 1-128 characters [A-Za-z0-9_.-]");
	if (container_find(a, q->container_id))
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "CreateContainer: container `%s` already exists",
				 q->container_id);
	if (a->n_containers >= AGENT_MAX_CONTAINERS)
		return reply_err(r, SP_RPC_RESOURCE_EXHAUSTED,
				 "CreateContainer: at most %d containers per sandbox",
				 AGENT_MAX_CONTAINERS);
	_cleanup_err_ sp_err *e = NULL;
	_cleanup_json_ json_t *spec = NULL;
	if (sp_json_parse(&spec, q->oci_spec.data, q->oci_spec.len, "oci_spec", &e) < 0)
		return reply_sp_err(r, e, "CreateContainer");
	if (!json_is_object(spec))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: oci_spec must be a JSON object (config.json)");
	launch l;
	if (launch_parse_process(&l, json_object_get(spec, "process"),
				 "CreateContainer: oci_spec", &e) < 0)
		return reply_sp_err(r, e, "CreateContainer");

	container *c = sp_xzalloc(sizeof(*c));
	c->id = sp_xstrdup(q->container_id);
	c->name = sp_xstrdup(q->container_name ? q->container_name : "");
	c->bundle = sp_xasprintf("%s/containers/%s", a->state_dir, c->id);
	c->spec = json_incref(spec);
	/* Claim the id now: an image pull below drops the lock. */
	c->next = a->containers;
	a->containers = c;
	a->n_containers++;
	a->ever_container = true;
	int rc;
	if (sp_mkdir_p(c->bundle, 0700, &e) < 0) {
		rc = reply_sp_err(r, e, "CreateContainer");
		goto fail;
	}
	rc = resolve_rootfs(a, q, c, r);
	if (rc != 0)
		goto fail;
	proc *p = proc_new(c, "");
	l.rootfs = c->rootfs;
	l.hold = true;
	if (proc_spawn(a, p, &l, &e) < 0) {
		proc_bury(a, p);
		rc = reply_sp_err(r, e, "CreateContainer");
		goto fail;
	}
	c->procs = p;
	c->state = C_CREATED;
	launch_clear(&l);
	sp_log_info("container %s created (pid %d)", c->id, p->pid);
	return reply_empty(r);
fail:
	launch_clear(&l);
	gate_forget(a, q->container_id);
	if (container_find(a, q->container_id) == c)
		container_drop(a, c);
	return rc;
}

int h_start_container(sp_agent *a, const AStartContainer *q, reply *r)
{
	proc *p = lookup(a, "StartContainer", q->container_id, "", r);
	if (!p)
		return lookup_rc(r);
	container *c = p->c;
	if (c->state != C_CREATED || p->start_fd < 0)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "StartContainer: container `%s` is not in the created state",
				 c->id);
	char go = 1;
	ssize_t n = write(p->start_fd, &go, 1);
	close(p->start_fd);
	p->start_fd = -1;
	if (n != 1)
		return reply_err(r, SP_RPC_INTERNAL,
				 "StartContainer: container `%s`: its process is gone",
				 c->id);
	c->state = C_RUNNING;
	p->state = p->state == PROC_EXITED ? PROC_EXITED : PROC_RUNNING;
	return reply_empty(r);
}

int h_remove_container(sp_agent *a, const ARemoveContainer *q,
		       uint64_t deadline, reply *r)
{
	if (!valid_id(q->container_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "RemoveContainer: container_id must be 1-128 characters [A-Za-z0-9_.-]");
	if (!container_find(a, q->container_id))
		return no_container(r, "RemoveContainer", q->container_id);
	unsigned t = q->timeout > 3600 ? 3600 : q->timeout;
	int rc = stop_and_drop(a, q->container_id, t, deadline);
	if (rc == SP_ERR_NOT_FOUND)
		return reply_empty(r); /* removed concurrently: same outcome */
	if (rc < 0)
		return reply_err(r, SP_RPC_INTERNAL,
				 "RemoveContainer: container `%s` did not die after SIGKILL",
				 q->container_id);
	sp_log_info("container %s removed", q->container_id);
	return reply_empty(r);
}

int h_exec_process(sp_agent *a, const AExecProcess *q, reply *r)
{
	if (!valid_id(q->container_id) || !valid_id(q->exec_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "ExecProcess: container_id and exec_id must be 1-128 characters [A-Za-z0-9_.-]");
	container *c = container_find(a, q->container_id);
	if (!c)
		return no_container(r, "ExecProcess", q->container_id);
	if (c->state != C_RUNNING)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "ExecProcess: container `%s` is not running",
				 c->id);
	if (proc_find(c, q->exec_id))
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "ExecProcess: exec `%s` already exists in container `%s`",
				 q->exec_id, c->id);
	if (c->n_execs >= AGENT_MAX_EXECS)
		return reply_err(r, SP_RPC_RESOURCE_EXHAUSTED,
				 "ExecProcess: container `%s` has %d exec processes; collect some with WaitProcess first",
				 c->id, AGENT_MAX_EXECS);
	_cleanup_err_ sp_err *e = NULL;
	_cleanup_json_ json_t *pj = NULL;
	if (sp_json_parse(&pj, q->process.data, q->process.len, "process", &e) < 0)
		return reply_sp_err(r, e, "ExecProcess");
	launch l;
	if (launch_parse_process(&l, pj, "ExecProcess", &e) < 0)
		return reply_sp_err(r, e, "ExecProcess");
	l.rootfs = c->rootfs;
	proc *p = proc_new(c, q->exec_id);
	int rc = proc_spawn(a, p, &l, &e);
	launch_clear(&l);
	/* Link it even if exec failed after the fork: its exit status (127)
	 * and output are collected like any other. */
	if (p->pid <= 0) {
		proc_bury(a, p);
		return reply_sp_err(r, e, "ExecProcess");
	}
	p->next = c->procs->next;
	c->procs->next = p;
	c->n_execs++;
	if (rc < 0)
		return reply_sp_err(r, e, "ExecProcess");
	return reply_empty(r);
}

int h_signal_process(sp_agent *a, const ASignalProcess *q, reply *r)
{
	if (q->signal == 0 || q->signal >= (unsigned)NSIG)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "SignalProcess: signal %u is not a valid signal number",
				 q->signal);
	proc *p = lookup(a, "SignalProcess", q->container_id, q->exec_id, r);
	if (!p)
		return lookup_rc(r);
	if (p->state == PROC_EXITED || p->pid <= 0)
		return reply_empty(r); /* already gone: nothing left to signal */
	if (p->state == PROC_CREATED && (q->signal == SIGKILL || q->signal == SIGTERM)) {
		/* A created container that is killed never starts. */
		kill(p->pid, SIGKILL);
		return reply_empty(r);
	}
	if (kill(p->pid, (int)q->signal) < 0 && errno != ESRCH)
		return reply_err(r, SP_RPC_INTERNAL, "SignalProcess: kill: %s",
				 strerror(errno));
	return reply_empty(r);
}

int h_wait_process(sp_agent *a, const AWaitProcess *q, uint64_t deadline,
		   reply *r)
{
	for (;;) {
		proc *p = lookup(a, "WaitProcess", q->container_id, q->exec_id, r);
		if (!p)
			return lookup_rc(r);
		if (p->state == PROC_EXITED) {
			Sealpod__Agent__V1__WaitProcessResponse m =
				SEALPOD__AGENT__V1__WAIT_PROCESS_RESPONSE__INIT;
			m.status = p->status;
			p->waited = true;
			int rc = reply_msg(r, &m.base);
			maybe_forget_exec(a, p);
			return rc;
		}
		if (!agent_wait(a, deadline))
			return a->stopping
				? reply_err(r, SP_RPC_UNAVAILABLE, "WaitProcess: the agent is shutting down")
				: reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					    "WaitProcess: process `%s` of container `%s` is still running at the deadline",
					    q->exec_id, q->container_id);
	}
}

int h_read_stream(sp_agent *a, const AReadStream *q, int which,
		  uint64_t deadline, reply *r)
{
	const char *name = which == 1 ? "ReadStdout" : "ReadStderr";
	size_t max = q->len ? q->len : AGENT_DEFAULT_READ;
	if (max > AGENT_MAX_READ)
		max = AGENT_MAX_READ;
	for (;;) {
		proc *p = lookup(a, name, q->container_id, q->exec_id, r);
		if (!p)
			return lookup_rc(r);
		stream *s = which == 1 ? &p->out : &p->err;
		if (s->len > 0 || s->eof) {
			Sealpod__Agent__V1__ReadStreamResponse m =
				SEALPOD__AGENT__V1__READ_STREAM_RESPONSE__INIT;
			_cleanup_free_ uint8_t *buf = sp_xmalloc(max);
			m.data.len = stream_take(s, buf, max);
			m.data.data = buf;
			stream_resume(a, s);
			int rc = reply_msg(r, &m.base);
			if (m.data.len == 0)
				maybe_forget_exec(a, p);
			return rc;
		}
		if (!agent_wait(a, deadline))
			return a->stopping
				? reply_err(r, SP_RPC_UNAVAILABLE, "%s: the agent is shutting down", name)
				: reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					    "%s: no output before the deadline", name);
	}
}

int h_write_stdin(sp_agent *a, const AWriteStream *q, uint64_t deadline,
		  reply *r)
{
	size_t done = 0;
	for (;;) {
		proc *p = lookup(a, "WriteStdin", q->container_id, q->exec_id, r);
		if (!p)
			return lookup_rc(r);
		if (p->stdin_fd < 0)
			return reply_err(r, SP_RPC_FAILED_PRECONDITION,
					 "WriteStdin: stdin of process `%s` is closed",
					 q->exec_id);
		while (done < q->data.len) {
			ssize_t n = write(p->stdin_fd, q->data.data + done,
					  q->data.len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				break;
			if (n < 0) {
				if (done)
					goto out;
				return reply_err(r, SP_RPC_FAILED_PRECONDITION,
						 "WriteStdin: process `%s` no longer reads its stdin (%s)",
						 q->exec_id, strerror(errno));
			}
			done += (size_t)n;
		}
		if (done == q->data.len)
			break;
		/* The pipe is full: wait for room without the lock, briefly,
		 * then look everything up again. */
		int fd = p->stdin_fd;
		uint64_t now = sp_now_ns();
		if ((deadline && now >= deadline) || a->stopping) {
			if (done)
				break;
			return reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					 "WriteStdin: the process did not read its stdin before the deadline");
		}
		pthread_mutex_unlock(&a->lock);
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		poll(&pfd, 1, 100);
		pthread_mutex_lock(&a->lock);
	}
out:;
	Sealpod__Agent__V1__WriteStreamResponse m =
		SEALPOD__AGENT__V1__WRITE_STREAM_RESPONSE__INIT;
	m.len = (uint32_t)done;
	return reply_msg(r, &m.base);
}

int h_close_stdin(sp_agent *a, const ACloseStdin *q, reply *r)
{
	proc *p = lookup(a, "CloseStdin", q->container_id, q->exec_id, r);
	if (!p)
		return lookup_rc(r);
	if (p->stdin_fd >= 0) {
		if (p->terminal) {
			/* A terminal has no half-close: send the EOF character. */
			char eot = 4;
			if (write(p->stdin_fd, &eot, 1) < 0)
				sp_log_debug("CloseStdin: %s", strerror(errno));
		}
		close(p->stdin_fd);
		p->stdin_fd = -1;
	}
	return reply_empty(r);
}

int h_tty_win_resize(sp_agent *a, const ATtyWinResize *q, reply *r)
{
	proc *p = lookup(a, "TtyWinResize", q->container_id, q->exec_id, r);
	if (!p)
		return lookup_rc(r);
	if (!p->terminal || p->out.fd < 0)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "TtyWinResize: process `%s` has no terminal",
				 q->exec_id);
	if (q->row > 0xffff || q->column > 0xffff)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "TtyWinResize: rows and columns must be at most 65535");
	struct winsize ws = {.ws_row = (unsigned short)q->row,
			     .ws_col = (unsigned short)q->column};
	if (ioctl(p->out.fd, TIOCSWINSZ, &ws) < 0)
		return reply_err(r, SP_RPC_INTERNAL, "TtyWinResize: %s",
				 strerror(errno));
	return reply_empty(r);
}

static uint64_t proc_stat_field(pid_t pid, int field)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* Fields after the command name, which may hold spaces: start
	 * after the last ')'. Field 3 is the first one after it. */
	char *s = strrchr(buf, ')');
	if (!s)
		return 0;
	s++;
	for (int f = 3; f < field && s; f++) {
		s = strchr(s + 1, ' ');
	}
	return s ? strtoull(s + 1, NULL, 10) : 0;
}

int h_stats_container(sp_agent *a, const AStatsContainer *q, reply *r)
{
	proc *p = lookup(a, "StatsContainer", q->container_id, "", r);
	if (!p)
		return lookup_rc(r);
	Sealpod__Agent__V1__StatsContainerResponse m =
		SEALPOD__AGENT__V1__STATS_CONTAINER_RESPONSE__INIT;
	long tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	uint64_t pids = 0;
	for (proc *x = p->c->procs; x; x = x->next) {
		if (x->state == PROC_EXITED || x->pid <= 0)
			continue;
		pids++;
		uint64_t ticks = proc_stat_field(x->pid, 14) + proc_stat_field(x->pid, 15);
		m.cpu_usage_ns += ticks * (1000000000ull / (uint64_t)(tick > 0 ? tick : 100));
		m.memory_usage_bytes += proc_stat_field(x->pid, 24) * (uint64_t)page;
	}
	m.pids_current = pids;
	return reply_msg(r, &m.base);
}

int h_list_processes(sp_agent *a, const AListProcesses *q, reply *r)
{
	proc *p = lookup(a, "ListProcesses", q->container_id, "", r);
	if (!p)
		return lookup_rc(r);
	const char *fmt = q->format && q->format[0] ? q->format : "json";
	bool json = !strcmp(fmt, "json");
	if (!json && strcmp(fmt, "table") != 0)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "ListProcesses: format must be \"json\" or \"table\", not `%.32s`",
				 fmt);
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	sp_buf_printf(&b, json ? "[" : "PID\tEXEC_ID\tSTATE\n");
	bool first = true;
	for (proc *x = p->c->procs; x; x = x->next) {
		if (x->pid <= 0 || x->state == PROC_EXITED)
			continue;
		if (json)
			sp_buf_printf(&b, "%s%d", first ? "" : ",", x->pid);
		else
			sp_buf_printf(&b, "%d\t%s\t%s\n", x->pid,
				      x->exec_id[0] ? x->exec_id : "-",
				      x->state == PROC_CREATED ? "created" : "running");
		first = false;
	}
	if (json)
		sp_buf_printf(&b, "]");
	Sealpod__Agent__V1__ListProcessesResponse m =
		SEALPOD__AGENT__V1__LIST_PROCESSES_RESPONSE__INIT;
	m.process_list.data = b.data;
	m.process_list.len = b.len;
	return reply_msg(r, &m.base);
}

int h_update_container(sp_agent *a, const AUpdateContainer *q, reply *r)
{
	if (!valid_id(q->container_id) || !container_find(a, q->container_id))
		return no_container(r, "UpdateContainer", q->container_id ? q->container_id : "");
	return reply_err(r, SP_RPC_UNIMPLEMENTED,
			 "UpdateContainer: resource updates need the container engine's cgroups, not in this agent yet");
}

int h_get_oom_event(sp_agent *a, uint64_t deadline, reply *r)
{
	for (;;) {
		for (container *c = a->containers; c; c = c->next)
			if (c->oom) {
				c->oom = false;
				Sealpod__Agent__V1__OOMEvent m =
					SEALPOD__AGENT__V1__OOMEVENT__INIT;
				m.container_id = c->id;
				return reply_msg(r, &m.base);
			}
		if (!agent_wait(a, deadline))
			return a->stopping
				? reply_err(r, SP_RPC_UNAVAILABLE, "GetOOMEvent: the agent is shutting down")
				: reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					    "GetOOMEvent: no OOM event before the deadline");
	}
}
