/* SPDX-License-Identifier: Apache-2.0 */
/* The containerd.task.v2.Task service of one pod. The first container
 * (the CRI sandbox container, or a plain `ctr run` container = a pod of
 * one) boots the UVM; the pod's other containers are created in it by the
 * guest agent. The CRI sandbox ("pause") container runs nothing in the
 * guest: it stands for the UVM and exits when the UVM stops or it is
 * killed (docs/shim.md). */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "containerd_cgroups.pb-c.h"
#include "containerd_events.pb-c.h"
#include "containerd_runtimeoptions.pb-c.h"
#include "containerd_task.pb-c.h"
#include "containerd_types.pb-c.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "shim.h"

#define TASK_SERVICE "containerd.task.v2.Task"
#define SEC 1000000000ull
#define ST_CREATED CONTAINERD__V1__TYPES__STATUS__CREATED
#define ST_RUNNING CONTAINERD__V1__TYPES__STATUS__RUNNING
#define ST_STOPPED CONTAINERD__V1__TYPES__STATUS__STOPPED

typedef struct ctr ctr;

typedef struct proc {
	char *exec_id; /* "" = the container's main process */
	ctr *c;
	char *stdin_path, *stdout_path, *stderr_path;
	bool terminal;
	char *process_json; /* exec: runtime-spec process */
	int status;
	uint32_t exit_status;
	struct timespec exited_at;
	shim_io *io;
	bool waiter_running;
	int waiters; /* Wait calls blocked on this process */
	struct proc *next;
} proc;

struct ctr {
	char *id;
	char *bundle;
	bool pause;    /* CRI sandbox container: nothing runs in the guest */
	bool in_guest; /* the agent created it */
	json_t *process; /* the process object the guest got: execs inherit it */
	proc init;
	proc *execs;
	ctr *next;
};

static struct shim {
	shim_flags f;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t create_mu; /* one Create at a time */
	sp_runtime_config *cfg;
	sp_sandbox *sb;
	char *sandbox_id;
	bool sandbox_dead;
	ctr *ctrs;
	json_t *copied; /* guest volume directories filled by CopyFile (a set) */
	shim_publisher *pub;
	sp_ttrpc_server *srv;
	bool shutting_down;
	pthread_t monitor, oom;
	bool threads_started;
} S = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
	.create_mu = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- helpers ----------------------------------------------------------- */

static int reply(const ProtobufCMessage *m, uint8_t **out, size_t *out_len)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	*out = sp_xmalloc(len ? len : 1);
	protobuf_c_message_pack(m, *out);
	*out_len = len;
	return SP_RPC_OK;
}

static int reply_empty(uint8_t **out, size_t *out_len)
{
	Containerd__V1__Types__Empty e = CONTAINERD__V1__TYPES__EMPTY__INIT;
	return reply(&e.base, out, out_len);
}

static int fail(char **status_msg, int code, const char *fmt, ...) SP_PRINTF(3, 4);
static int fail(char **status_msg, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(status_msg, fmt, ap) < 0)
		sp_oom();
	va_end(ap);
	sp_log_warn("%s", *status_msg);
	return code;
}

static int fail_err(char **status_msg, const sp_err *e)
{
	return fail(status_msg, sp_rpc_code_from_err(e ? e->code : SP_ERR_STATE),
		    "%s", sp_err_msg(e));
}

static bool peer_ok(const sp_ttrpc_call *call, char **status_msg)
{
	/* containerd runs as the shim's user; nobody else may drive it. */
	if (call->peer_pid >= 0 &&
	    (call->peer_uid != geteuid() || call->peer_gid != getegid())) {
		fail(status_msg, SP_RPC_PERMISSION_DENIED,
		     "peer uid %u gid %u is not the shim's owner",
		     (unsigned)call->peer_uid, (unsigned)call->peer_gid);
		return false;
	}
	return true;
}

static void request_freep(void *pm)
{
	ProtobufCMessage **m = pm;
	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
}

/* Checks the peer and unpacks the request into var, which is freed when
 * the handler returns. */
#define DECODE(T, fn, var)                                                     \
	if (!peer_ok(call, status_msg))                                         \
		return SP_RPC_PERMISSION_DENIED;                                \
	__attribute__((cleanup(request_freep))) T *var =                       \
		fn##__unpack(NULL, call->payload_len, call->payload);          \
	if (!var)                                                              \
		return fail(status_msg, SP_RPC_INVALID_ARGUMENT,                \
			    "%s: malformed request", call->method);

static pthread_mutex_t *lock(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	return m;
}

static void unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

/* A mutex held until the scope ends: handlers return from any point. The
 * guard variable is only read by its cleanup, hence "unused". */
#define _cleanup_unlock_ __attribute__((cleanup(unlockp), unused))

static int no_proc(char **status_msg, const char *id, const char *exec_id)
{
	return fail(status_msg, SP_RPC_NOT_FOUND, "process %s %s not found", id, exec_id);
}

static int no_ctr(char **status_msg, const char *id)
{
	return fail(status_msg, SP_RPC_NOT_FOUND, "container %s not found", id);
}

/* After DECODE: holds S.mu until the handler returns (as `held`) and finds
 * the request's process, or answers NOT_FOUND. */
#define LOCK_PROC(p)                                                           \
	_cleanup_unlock_ pthread_mutex_t *held = lock(&S.mu);                   \
	proc *p = find_proc(req->id, req->exec_id);                             \
	if (!p)                                                                \
		return no_proc(status_msg, req->id, req->exec_id);

static void ts_of(Containerd__V1__Types__Timestamp *ts, const struct timespec *t)
{
	containerd__v1__types__timestamp__init(ts);
	ts->seconds = t->tv_sec;
	ts->nanos = (int32_t)t->tv_nsec;
}

static uint32_t task_pid(void)
{
	pid_t p = S.sb ? sp_sandbox_pid(S.sb) : -1;
	return p > 0 ? (uint32_t)p : (uint32_t)getpid();
}

static void publish(const char *topic, const char *type, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = sp_xmalloc(len ? len : 1);
	protobuf_c_message_pack(m, buf);
	shim_publish(S.pub, topic, type, buf, len);
}

static ctr *find_ctr(const char *id)
{
	for (ctr *c = S.ctrs; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static proc *find_proc(const char *id, const char *exec_id)
{
	ctr *c = find_ctr(id);
	if (!c)
		return NULL;
	if (!exec_id || !*exec_id)
		return &c->init;
	for (proc *p = c->execs; p; p = p->next)
		if (!strcmp(p->exec_id, exec_id))
			return p;
	return NULL;
}

/* With S.mu held. Returns false if it had exited already. */
static bool mark_exited(proc *p, int status)
{
	if (p->status == ST_STOPPED)
		return false;
	p->status = ST_STOPPED;
	p->exit_status = (uint32_t)status;
	clock_gettime(CLOCK_REALTIME, &p->exited_at);
	pthread_cond_broadcast(&S.cv);
	Containerd__V1__Types__Timestamp ts;
	ts_of(&ts, &p->exited_at);
	Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
	ev.container_id = p->c->id;
	ev.id = *p->exec_id ? p->exec_id : p->c->id;
	ev.pid = task_pid();
	ev.exit_status = p->exit_status;
	ev.exited_at = &ts;
	publish("/tasks/exit", "containerd.events.TaskExit", &ev.base);
	sp_log_info("%s%s%s exited with status %d", p->c->id, *p->exec_id ? " exec " : "",
		    p->exec_id, status);
	return true;
}

static void proc_init(proc *p, ctr *c, const char *exec_id, const char *in,
		      const char *out, const char *err, bool terminal)
{
	p->c = c;
	p->exec_id = sp_xstrdup(exec_id ? exec_id : "");
	p->stdin_path = sp_xstrdup(in ? in : "");
	p->stdout_path = sp_xstrdup(out ? out : "");
	p->stderr_path = sp_xstrdup(err ? err : "");
	p->terminal = terminal;
	p->status = ST_CREATED;
}

/* With S.mu held: waits until nothing references p any more. */
static void proc_quiesce(proc *p)
{
	while (p->waiter_running || p->waiters > 0)
		pthread_cond_wait(&S.cv, &S.mu);
}

static void proc_free(proc *p)
{
	shim_io_free(p->io);
	free(p->exec_id);
	free(p->stdin_path);
	free(p->stdout_path);
	free(p->stderr_path);
	free(p->process_json);
}

static void proc_destroy(proc *p)
{
	proc_free(p);
	free(p);
}

/* Takes S.mu: whether container id exists, whether it is the pod
 * sandbox, and whether the UVM has stopped. */
static bool ctr_known(const char *id, bool *pause, bool *dead)
{
	pthread_mutex_lock(&S.mu);
	ctr *c = find_ctr(id);
	*pause = c && c->pause;
	*dead = S.sandbox_dead;
	pthread_mutex_unlock(&S.mu);
	return c != NULL;
}

/* ---- process waiting ----------------------------------------------------- */

static void *waiter_thread(void *arg)
{
	proc *p = arg;
	int status = 0;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_sandbox_wait(S.sb, p->c->id, p->exec_id, &status, &err) < 0) {
		/* The UVM is gone or the agent lost the process. */
		sp_log_warn("%s: %s", p->c->id, sp_err_msg(err));
		status = 128 + SIGKILL;
	}
	/* Output written just before the exit is still on its way: let
	 * the copy finish so containerd's reader sees all of it. */
	if (p->io)
		shim_io_wait_output(p->io, 5 * SEC);
	pthread_mutex_lock(&S.mu);
	mark_exited(p, status);
	p->waiter_running = false;
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&S.mu);
	return NULL;
}

static void spawn_detached(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, fn, arg) != 0)
		sp_oom();
	pthread_attr_destroy(&attr);
}

/* When the UVM dies, every process in it is gone: CRI learns about exits
 * only through Wait, so they must all end. */
static void *monitor_thread(void *arg)
{
	sp_sandbox *sb = arg;
	sp_sandbox_wait_dead(sb);
	pthread_mutex_lock(&S.mu);
	if (!S.shutting_down)
		sp_log_warn("sandbox %s: the UVM stopped; every process is gone",
			    S.sandbox_id);
	S.sandbox_dead = true;
	for (ctr *c = S.ctrs; c; c = c->next) {
		if (c->init.status != ST_STOPPED && !c->init.waiter_running)
			mark_exited(&c->init, 128 + SIGKILL);
		for (proc *p = c->execs; p; p = p->next)
			if (p->status != ST_STOPPED && !p->waiter_running)
				mark_exited(p, 128 + SIGKILL);
	}
	pthread_cond_broadcast(&S.cv);
	pthread_mutex_unlock(&S.mu);
	return NULL;
}

static void *oom_thread(void *arg)
{
	sp_sandbox *sb = arg;
	for (;;) {
		_cleanup_free_ char *id = NULL;
		_cleanup_err_ sp_err *err = NULL;
		if (sp_sandbox_wait_oom(sb, &id, &err) < 0) {
			sp_log_debug("OOM events end: %s", sp_err_msg(err));
			return NULL;
		}
		Containerd__Events__TaskOOM ev = CONTAINERD__EVENTS__TASK_OOM__INIT;
		ev.container_id = id;
		publish("/tasks/oom", "containerd.events.TaskOOM", &ev.base);
	}
}

/* ---- sandbox creation ------------------------------------------------------ */

static char *runtime_config_path(const Containerd__V1__Types__Any *opts)
{
	if (opts && opts->type_url) {
		const char *want = "runtimeoptions.v1.Options";
		size_t tl = strlen(opts->type_url), wl = strlen(want);
		if (tl >= wl && !strcmp(opts->type_url + tl - wl, want)) {
			Runtimeoptions__V1__Options *o = runtimeoptions__v1__options__unpack(
				NULL, opts->value.len, opts->value.data);
			char *p = o && *o->config_path ? sp_xstrdup(o->config_path) : NULL;
			if (o)
				runtimeoptions__v1__options__free_unpacked(o, NULL);
			if (p)
				return p;
		}
	}
	const char *env = getenv(ENV_CONFIG_PATH);
	return env && *env ? sp_xstrdup(env) : NULL;
}

static int pod_policy(uint8_t **out, size_t *len, const json_t *spec, sp_err **err)
{
	const char *b64 = shim_annotation(spec, ANN_POLICY);
	if (b64 && *b64) {
		if (sp_base64_decode(out, len, b64, strlen(b64), SP_B64_STD, err) < 0)
			return sp_error_wrap(err, "annotation %s: not base64", ANN_POLICY);
		return 0;
	}
	if (S.cfg->default_policy) {
		if (sp_read_file(out, len, S.cfg->default_policy, 1u << 20, err) < 0)
			return sp_error_wrap(err, "default_policy in %s", S.cfg->source);
		return 0;
	}
	return sp_error(err, SP_ERR_DENIED,
			"the pod has no policy: add the annotation %s (base64 of the policy; `sealpod policy generate`) or set default_policy in %s",
			ANN_POLICY, S.cfg->source);
}

static int start_sandbox(const char *id, const char *bundle, const json_t *spec,
			 const Containerd__V1__Types__Any *opts, sp_err **err)
{
	if (!S.cfg) {
		_cleanup_free_ char *path = runtime_config_path(opts);
		if (sp_runtime_config_load(&S.cfg, path, err) < 0)
			return SP_ERR_INVALID;
		if (S.cfg->log_level && !S.f.debug)
			sp_log_set_level(sp_log_level_parse(S.cfg->log_level));
	}
	/* `delete` after a crash learns the state directory from the bundle:
	 * containerd runs it without the runtime options that named the
	 * configuration. */
	if (shim_record_state_dir(bundle, S.cfg->state_dir, err) < 0)
		return SP_ERR_SYSTEM;
	_cleanup_free_ uint8_t *policy = NULL;
	size_t policy_len = 0;
	if (pod_policy(&policy, &policy_len, spec, err) < 0)
		return SP_ERR_DENIED;
	const char *pod_name = shim_annotation(spec, ANN_SANDBOX_NAME);
	const char *pod_ns = shim_annotation(spec, ANN_SANDBOX_NAMESPACE);
	/* `ctr run` knows no pod: a pod of one takes the policy's names. */
	_cleanup_json_ json_t *pdoc = NULL;
	if ((!pod_name || !pod_ns) &&
	    sp_json_parse(&pdoc, policy, policy_len, "policy", NULL) == 0) {
		json_t *pod = json_object_get(pdoc, "pod");
		if (!pod_name)
			pod_name = json_string_value(json_object_get(pod, "name"));
		if (!pod_ns)
			pod_ns = json_string_value(json_object_get(pod, "namespace"));
	}
	const char *hostname = json_string_value(json_object_get(spec, "hostname"));
	/* The network namespace CNI filled, if any (docs/network.md). */
	struct shim_net net;
	shim_net_from_spec(&net, spec);
	sp_sandbox_opts so = {
		.version = 1,
		.id = id,
		.hostname = hostname ? hostname : id,
		.pod_name = pod_name ? pod_name : id,
		.pod_namespace = pod_ns ? pod_ns : S.f.ns,
		.policy = policy,
		.policy_len = policy_len,
		.net = &net.net,
	};
	sp_sandbox *sb = NULL;
	int rc = sp_sandbox_start(&sb, S.cfg, &so, err);
	shim_net_clear(&net);
	if (rc < 0)
		return SP_ERR_STATE;
	pthread_mutex_lock(&S.mu);
	S.sb = sb;
	S.sandbox_id = sp_xstrdup(id);
	S.sandbox_dead = false;
	pthread_mutex_unlock(&S.mu);
	if (pthread_create(&S.monitor, NULL, monitor_thread, sb) != 0 ||
	    pthread_create(&S.oom, NULL, oom_thread, sb) != 0)
		sp_oom();
	S.threads_started = true;
	return 0;
}

/* The image a container's root filesystem comes from, pulled and verified
 * in the guest; never containerd's snapshot on the host. */
static const char *container_image(const json_t *spec)
{
	const char *img = shim_annotation(spec, ANN_IMAGE_NAME);
	if (!img || !*img)
		img = shim_annotation(spec, ANN_IMAGE);
	return img && *img ? img : NULL;
}

static bool spec_mounts_from(const json_t *gspec, const char *dir)
{
	size_t n = strlen(dir);
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(gspec, "mounts"), i, m) {
		const char *src = json_string_value(json_object_get(m, "source"));
		if (src && !strncmp(src, dir, n) && (!src[n] || src[n] == '/'))
			return true;
	}
	return false;
}

/* ConfigMap, Secret, projected and downwardAPI volumes: kubelet wrote
 * their files on the host and containerd bind-mounts the directory; the
 * guest gets a copy (CopyFile) before the first container that mounts it
 * is created. Only directories the policy-built spec mounts are copied,
 * once per pod: later containers see the same guest directory, and
 * kubelet's later refreshes are not forwarded (docs/shim.md). Called with
 * create_mu held. */
static int copy_volumes(const char *id, const json_t *host_spec, const json_t *gspec,
			sp_err **err)
{
	if (!S.copied)
		S.copied = json_object();
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(host_spec, "mounts"), i, m) {
		const char *src = json_string_value(json_object_get(m, "source"));
		_cleanup_free_ char *gdir = sp_sandbox_volume_guest_dir(src);
		if (!gdir || json_object_get(S.copied, gdir))
			continue;
		if (!spec_mounts_from(gspec, gdir)) {
			sp_log_warn("container %s: %s is no volume the policy mounts in this container; not copied",
				    id, src);
			continue;
		}
		if (sp_sandbox_copy_dir(S.sb, src, gdir, err) < 0)
			return sp_error_wrap(err, "container %s: volume %s", id, src);
		json_object_set_new(S.copied, gdir, json_true());
		sp_log_info("container %s: copied volume %s to the guest's %s", id, src, gdir);
	}
	return 0;
}

static int create_in_guest(const char *id, const json_t *spec, json_t **process,
			   sp_err **err)
{
	const char *name = shim_annotation(spec, ANN_CONTAINER_NAME);
	if (!name || !*name)
		name = shim_annotation(spec, ANN_NAME);
	_cleanup_json_ json_t *gspec = NULL;
	_cleanup_free_ char *image = NULL;
	_cleanup_free_ char *pname = NULL;
	_cleanup_err_ sp_err *e = NULL;
	if (sp_sandbox_policy_container(S.sb, name, spec, &gspec, &image, &pname, &e) < 0) {
		if (e->code != SP_ERR_UNSUPPORTED) {
			sp_error(err, e->code, "container %s: %s", id, sp_err_msg(e));
			return e->code;
		}
		/* Without the policy module: the host's spec, cleaned. */
		const char *img = container_image(spec);
		if (!img)
			return sp_error(err, SP_ERR_INVALID,
					"container %s: no image reference; CRI sets %s, with ctr add --annotation %s=NAME",
					id, ANN_IMAGE_NAME, ANN_IMAGE);
		image = sp_xstrdup(img);
		pname = sp_xstrdup(name && *name ? name : id);
		if (sp_sandbox_guest_spec(&gspec, spec, err) < 0)
			return sp_error_wrap(err, "container %s", id);
	}
	if (copy_volumes(id, spec, gspec, err) < 0)
		return (*err)->code;
	sp_container_opts co = {
		.version = 1,
		.id = id,
		.spec = gspec,
		.image = image,
		.name = pname,
	};
	if (sp_sandbox_create_container(S.sb, &co, err) < 0)
		return SP_ERR_STATE;
	*process = json_incref(json_object_get(gspec, "process"));
	return 0;
}

/* An exec runs as the container's process does (user, cwd, environment,
 * capabilities, as the policy built them); only the command and the
 * terminal come from the request. The rest of containerd's process
 * object is host input the policy would refuse anyway. */
static char *exec_process(const json_t *base, const char *req_json, size_t len,
			  sp_err **err)
{
	_cleanup_json_ json_t *req = NULL;
	if (sp_json_parse(&req, req_json, len, "exec process spec", err) < 0)
		return NULL;
	json_t *args = json_object_get(req, "args");
	if (!json_is_array(args) || !json_array_size(args)) {
		sp_error(err, SP_ERR_INVALID, "exec process spec: no args");
		return NULL;
	}
	_cleanup_json_ json_t *p = base ? json_deep_copy(base) : json_object();
	if (!p)
		sp_oom();
	json_object_set(p, "args", args);
	json_object_set_new(p, "terminal", json_boolean(json_is_true(json_object_get(req, "terminal"))));
	json_t *cs = json_object_get(req, "consoleSize");
	if (json_is_object(cs))
		json_object_set(p, "consoleSize", cs);
	else
		json_object_del(p, "consoleSize");
	char *out = json_dumps(p, JSON_COMPACT);
	if (!out)
		sp_oom();
	return out;
}

/* ---- Task service -------------------------------------------------------- */

static int task_create(void *user, const sp_ttrpc_call *call, uint8_t **out,
			    size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__CreateTaskRequest,
		    containerd__task__v2__create_task_request, req);
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *spec = NULL;
	bool started_here = false;
	_cleanup_unlock_ pthread_mutex_t *creating = lock(&S.create_mu);
	pthread_mutex_lock(&S.mu);
	bool exists = find_ctr(req->id) != NULL;
	bool shutting = S.shutting_down;
	pthread_mutex_unlock(&S.mu);
	if (exists)
		return fail(status_msg, SP_RPC_ALREADY_EXISTS, "container %s already exists", req->id);
	if (shutting)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION, "the shim is shutting down");
	if (*req->checkpoint)
		return fail(status_msg, SP_RPC_UNIMPLEMENTED,
			    "container %s: restoring checkpoints is not supported by confidential pods", req->id);
	if (shim_read_spec(&spec, req->bundle, &err) < 0)
		return fail_err(status_msg, err);
	const char *type = shim_annotation(spec, ANN_CONTAINER_TYPE);
	bool pause = type && !strcmp(type, "sandbox");
	bool joins = type && !strcmp(type, "container");
	if (joins) {
		const char *sid = shim_annotation(spec, ANN_SANDBOX_ID);
		if (!S.sb || !sid || !S.sandbox_id || strcmp(sid, S.sandbox_id))
			return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
				    "container %s: its pod sandbox %s does not run in this shim",
				    req->id, sid ? sid : "(none)");
		if (S.sandbox_dead)
			return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
				    "container %s: the pod's UVM has stopped", req->id);
	} else {
		if (S.sb)
			return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
				    "container %s: this shim already runs pod %s", req->id, S.sandbox_id);
		if (start_sandbox(req->id, req->bundle, spec, req->options, &err) < 0)
			return fail_err(status_msg, err);
		started_here = true;
	}
	json_t *process = NULL;
	if (!pause && create_in_guest(req->id, spec, &process, &err) < 0) {
		int rc = fail_err(status_msg, err);
		if (started_here) {
			pthread_mutex_lock(&S.mu);
			sp_sandbox *sb = S.sb;
			S.shutting_down = true;
			pthread_mutex_unlock(&S.mu);
			sp_sandbox_stop(sb, NULL);
			pthread_mutex_lock(&S.mu);
			S.shutting_down = false;
			pthread_mutex_unlock(&S.mu);
			/* The monitor thread still holds sb until it sees the
			 * end; the sandbox is freed at shutdown. */
		}
		return rc;
	}

	ctr *c = sp_xzalloc(sizeof(*c));
	c->id = sp_xstrdup(req->id);
	c->bundle = sp_xstrdup(req->bundle);
	c->pause = pause;
	c->in_guest = !pause;
	c->process = process;
	proc_init(&c->init, c, "", req->stdin, req->stdout, req->stderr, req->terminal);
	pthread_mutex_lock(&S.mu);
	c->next = S.ctrs;
	S.ctrs = c;
	Containerd__Events__TaskIO tio = CONTAINERD__EVENTS__TASK_IO__INIT;
	tio.stdin = req->stdin;
	tio.stdout = req->stdout;
	tio.stderr = req->stderr;
	tio.terminal = req->terminal;
	Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
	ev.container_id = req->id;
	ev.bundle = req->bundle;
	ev.n_rootfs = req->n_rootfs;
	ev.rootfs = req->rootfs;
	ev.io = &tio;
	ev.pid = task_pid();
	publish("/tasks/create", "containerd.events.TaskCreate", &ev.base);
	pthread_mutex_unlock(&S.mu);
	sp_log_info("created %s%s in pod %s", req->id, pause ? " (sandbox)" : "", S.sandbox_id);

	Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
	resp.pid = task_pid();
	return reply(&resp.base, out, out_len);
}

static int task_start(void *user, const sp_ttrpc_call *call, uint8_t **out,
		      size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__StartRequest, containerd__task__v2__start_request, req);
	_cleanup_err_ sp_err *err = NULL;
	LOCK_PROC(p);
	if (p->status != ST_CREATED)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
			    "process %s %s was already started", req->id, req->exec_id);
	if (S.sandbox_dead)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION, "the pod's UVM has stopped");
	ctr *c = p->c;
	bool is_exec = *p->exec_id != 0;
	if (!c->pause) {
		/* The agent call may take a while: keep Wait/State answering.
		 * p cannot go away meanwhile: Delete refuses CREATED execs
		 * with waiters, and we hold a waiter reference. */
		p->waiters++;
		pthread_mutex_unlock(&S.mu);
		int r = is_exec ? sp_sandbox_exec(S.sb, c->id, p->exec_id, p->process_json, &err)
				: sp_sandbox_start_container(S.sb, c->id, &err);
		pthread_mutex_lock(&S.mu);
		p->waiters--;
		pthread_cond_broadcast(&S.cv);
		if (r < 0)
			return fail_err(status_msg, err);
		shim_io_opts io = {
			.sb = S.sb,
			.container_id = c->id,
			.exec_id = p->exec_id,
			.stdin_path = p->stdin_path,
			.stdout_path = p->stdout_path,
			.stderr_path = p->stderr_path,
			.terminal = p->terminal,
		};
		p->io = shim_io_start(&io);
	}
	if (p->status == ST_CREATED)
		p->status = ST_RUNNING;
	if (!c->pause) {
		p->waiter_running = true;
		spawn_detached(waiter_thread, p);
	}
	if (is_exec) {
		Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
		ev.container_id = c->id;
		ev.exec_id = p->exec_id;
		ev.pid = task_pid();
		publish("/tasks/exec-started", "containerd.events.TaskExecStarted", &ev.base);
	} else {
		Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;
		ev.container_id = c->id;
		ev.pid = task_pid();
		publish("/tasks/start", "containerd.events.TaskStart", &ev.base);
	}
	Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
	resp.pid = task_pid();
	return reply(&resp.base, out, out_len);
}

static int task_state(void *user, const sp_ttrpc_call *call, uint8_t **out,
		      size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__StateRequest, containerd__task__v2__state_request, req);
	LOCK_PROC(p);
	Containerd__V1__Types__Timestamp ts;
	ts_of(&ts, &p->exited_at);
	Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
	resp.id = p->c->id;
	resp.bundle = p->c->bundle;
	resp.pid = task_pid();
	resp.status = p->status;
	resp.stdin = p->stdin_path;
	resp.stdout = p->stdout_path;
	resp.stderr = p->stderr_path;
	resp.terminal = p->terminal;
	resp.exit_status = p->exit_status;
	if (p->status == ST_STOPPED)
		resp.exited_at = &ts;
	resp.exec_id = p->exec_id;
	return reply(&resp.base, out, out_len);
}

static int task_wait(void *user, const sp_ttrpc_call *call, uint8_t **out,
		     size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__WaitRequest, containerd__task__v2__wait_request, req);
	LOCK_PROC(p);
	p->waiters++;
	while (p->status != ST_STOPPED)
		pthread_cond_wait(&S.cv, &S.mu);
	p->waiters--;
	pthread_cond_broadcast(&S.cv);
	Containerd__V1__Types__Timestamp ts;
	ts_of(&ts, &p->exited_at);
	Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
	resp.exit_status = p->exit_status;
	resp.exited_at = &ts;
	return reply(&resp.base, out, out_len);
}

static int task_kill(void *user, const sp_ttrpc_call *call, uint8_t **out,
		     size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__KillRequest, containerd__task__v2__kill_request, req);
	_cleanup_err_ sp_err *err = NULL;
	int sig = (int)req->signal;
	_cleanup_free_ char *id = NULL;
	_cleanup_free_ char *exec_id = NULL;
	LOCK_PROC(p);
	if (sig <= 0 || sig > 64)
		return fail(status_msg, SP_RPC_INVALID_ARGUMENT, "signal %d is not a signal", sig);
	if (p->status == ST_STOPPED)
		return fail(status_msg, SP_RPC_NOT_FOUND, "process %s %s already finished",
			    req->id, req->exec_id);
	if (p->c->pause || p->status == ST_CREATED || S.sandbox_dead) {
		/* The pause container exits as pause does: 0 on TERM/INT. */
		int st = p->c->pause && (sig == SIGTERM || sig == SIGINT) ? 0 : 128 + sig;
		if (p->c->pause && req->all)
			st = 128 + sig;
		mark_exited(p, st);
		return reply_empty(out, out_len);
	}
	id = sp_xstrdup(p->c->id);
	exec_id = sp_xstrdup(p->exec_id);
	pthread_mutex_unlock(sp_steal_ptr(&held));
	/* Failing because it exited meanwhile, or the UVM went away:
	 * nothing to kill. */
	if (sp_sandbox_signal(S.sb, id, exec_id, sig, &err) < 0 && sp_sandbox_alive(S.sb))
		return fail_err(status_msg, err);
	return reply_empty(out, out_len);
}

static int task_exec(void *user, const sp_ttrpc_call *call, uint8_t **out,
		     size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__ExecProcessRequest,
	       containerd__task__v2__exec_process_request, req);
	_cleanup_unlock_ pthread_mutex_t *held = lock(&S.mu);
	ctr *c = find_ctr(req->id);
	if (!c)
		return no_ctr(status_msg, req->id);
	if (!*req->exec_id || find_proc(req->id, req->exec_id))
		return fail(status_msg, SP_RPC_ALREADY_EXISTS, "exec %s of %s already exists (or is empty)",
			    req->exec_id, req->id);
	if (c->pause)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
			    "container %s is the pod sandbox: it runs no processes to exec into", req->id);
	if (c->init.status != ST_RUNNING)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION, "container %s is not running", req->id);
	if (!req->spec || !req->spec->value.len || req->spec->value.len > (1u << 20))
		return fail(status_msg, SP_RPC_INVALID_ARGUMENT, "exec %s: no process spec", req->exec_id);
	proc *p = sp_xzalloc(sizeof(*p));
	proc_init(p, c, req->exec_id, req->stdin, req->stdout, req->stderr, req->terminal);
	_cleanup_err_ sp_err *err = NULL;
	p->process_json = exec_process(c->process, (const char *)req->spec->value.data,
				       req->spec->value.len, &err);
	if (!p->process_json) {
		proc_destroy(p);
		return fail(status_msg, SP_RPC_INVALID_ARGUMENT, "exec %s: %s", req->exec_id,
			    sp_err_msg(err));
	}
	p->next = c->execs;
	c->execs = p;
	Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
	ev.container_id = c->id;
	ev.exec_id = p->exec_id;
	publish("/tasks/exec-added", "containerd.events.TaskExecAdded", &ev.base);
	return reply_empty(out, out_len);
}

static int reply_deleted(const proc *p, uint8_t **out, size_t *out_len)
{
	Containerd__V1__Types__Timestamp ts;
	ts_of(&ts, &p->exited_at);
	Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	resp.pid = task_pid();
	resp.exit_status = p->exit_status;
	resp.exited_at = &ts;
	return reply(&resp.base, out, out_len);
}

static int task_delete(void *user, const sp_ttrpc_call *call, uint8_t **out,
		       size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__DeleteRequest, containerd__task__v2__delete_request, req);
	LOCK_PROC(p);
	if (p->status == ST_RUNNING)
		return fail(status_msg, SP_RPC_FAILED_PRECONDITION,
			    "process %s %s is running: kill it first", req->id, req->exec_id);
	ctr *c = p->c;
	if (*p->exec_id) {
		if (p->status == ST_CREATED)
			mark_exited(p, 0);
		proc_quiesce(p);
		for (proc **pp = &c->execs; *pp; pp = &(*pp)->next) {
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		}
		int rc = reply_deleted(p, out, out_len);
		proc_destroy(p);
		return rc;
	}
	/* The main process: the container goes, with its execs. */
	if (c->init.status == ST_CREATED)
		mark_exited(&c->init, 128 + SIGKILL);
	for (proc *e = c->execs; e; e = e->next)
		if (e->status == ST_RUNNING && !S.sandbox_dead)
			sp_sandbox_signal(S.sb, c->id, e->exec_id, SIGKILL, NULL);
	bool in_guest = c->in_guest && !S.sandbox_dead;
	pthread_mutex_unlock(&S.mu);
	if (in_guest) {
		_cleanup_err_ sp_err *err = NULL;
		if (sp_sandbox_remove_container(S.sb, c->id, 0, &err) < 0)
			sp_log_warn("%s (the container is forgotten anyway)", sp_err_msg(err));
	}
	pthread_mutex_lock(&S.mu);
	for (proc *e = c->execs; e; e = e->next)
		if (e->status != ST_STOPPED)
			mark_exited(e, 128 + SIGKILL);
	proc_quiesce(&c->init);
	for (proc *e = c->execs; e; e = e->next)
		proc_quiesce(e);
	for (ctr **cp = &S.ctrs; *cp; cp = &(*cp)->next) {
		if (*cp == c) {
			*cp = c->next;
			break;
		}
	}
	Containerd__V1__Types__Timestamp ts;
	ts_of(&ts, &c->init.exited_at);
	Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
	ev.container_id = c->id;
	ev.pid = task_pid();
	ev.exit_status = c->init.exit_status;
	ev.exited_at = &ts;
	publish("/tasks/delete", "containerd.events.TaskDelete", &ev.base);
	int rc = reply_deleted(&c->init, out, out_len);
	sp_log_info("deleted %s", c->id);
	while (c->execs) {
		proc *e = c->execs;
		c->execs = e->next;
		proc_destroy(e);
	}
	proc_free(&c->init);
	json_decref(c->process);
	free(c->id);
	free(c->bundle);
	free(c);
	return rc;
}

static int task_pids(void *user, const sp_ttrpc_call *call, uint8_t **out,
		     size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__PidsRequest, containerd__task__v2__pids_request, req);
	int rc;
	bool pause, dead;
	_cleanup_free_ uint32_t *pids = NULL;
	size_t n = 0;
	_cleanup_err_ sp_err *err = NULL;
	if (!ctr_known(req->id, &pause, &dead))
		return no_ctr(status_msg, req->id);
	if (pause || dead) {
		pids = sp_xcalloc(1, sizeof(*pids));
		if (!dead)
			pids[n++] = task_pid();
	} else if (sp_sandbox_pids(S.sb, req->id, &pids, &n, &err) < 0) {
		return fail_err(status_msg, err);
	}
	Containerd__V1__Types__ProcessInfo *infos = sp_xcalloc(n + 1, sizeof(*infos));
	Containerd__V1__Types__ProcessInfo **ptrs = sp_xcalloc(n + 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		containerd__v1__types__process_info__init(&infos[i]);
		infos[i].pid = pids[i];
		ptrs[i] = &infos[i];
	}
	Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
	resp.n_processes = n;
	resp.processes = ptrs;
	rc = reply(&resp.base, out, out_len);
	free(infos);
	free(ptrs);
	return rc;
}

static int task_stats(void *user, const sp_ttrpc_call *call, uint8_t **out,
		      size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__StatsRequest, containerd__task__v2__stats_request, req);
	sp_container_stats st = {0};
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_err_ sp_err *err = NULL;
	bool pause, dead;
	if (!ctr_known(req->id, &pause, &dead))
		return no_ctr(status_msg, req->id);
	if (!pause && sp_sandbox_stats(S.sb, req->id, &st, &err) < 0)
		return fail_err(status_msg, err);
	Io__Containerd__Cgroups__V1__CPUUsage cu = IO__CONTAINERD__CGROUPS__V1__CPUUSAGE__INIT;
	cu.total = st.cpu_usage_ns;
	Io__Containerd__Cgroups__V1__CPUStat cpu = IO__CONTAINERD__CGROUPS__V1__CPUSTAT__INIT;
	cpu.usage = &cu;
	Io__Containerd__Cgroups__V1__MemoryEntry me = IO__CONTAINERD__CGROUPS__V1__MEMORY_ENTRY__INIT;
	me.usage = st.memory_usage_bytes;
	me.limit = st.memory_limit_bytes;
	Io__Containerd__Cgroups__V1__MemoryStat mem = IO__CONTAINERD__CGROUPS__V1__MEMORY_STAT__INIT;
	mem.usage = &me;
	Io__Containerd__Cgroups__V1__PidsStat ps = IO__CONTAINERD__CGROUPS__V1__PIDS_STAT__INIT;
	ps.current = st.pids_current;
	Io__Containerd__Cgroups__V1__MemoryOomControl oom = IO__CONTAINERD__CGROUPS__V1__MEMORY_OOM_CONTROL__INIT;
	oom.oom_kill = st.oom_kill_count;
	Io__Containerd__Cgroups__V1__Metrics m = IO__CONTAINERD__CGROUPS__V1__METRICS__INIT;
	m.cpu = &cpu;
	m.memory = &mem;
	m.pids = &ps;
	m.memory_oom_control = &oom;
	size_t len = io__containerd__cgroups__v1__metrics__get_packed_size(&m);
	buf = sp_xmalloc(len ? len : 1);
	io__containerd__cgroups__v1__metrics__pack(&m, buf);
	Containerd__V1__Types__Any any = CONTAINERD__V1__TYPES__ANY__INIT;
	any.type_url = "io.containerd.cgroups.v1.Metrics";
	any.value.data = buf;
	any.value.len = len;
	Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
	resp.stats = &any;
	return reply(&resp.base, out, out_len);
}

static int task_connect(void *user, const sp_ttrpc_call *call, uint8_t **out,
			size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__ConnectRequest, containerd__task__v2__connect_request, req);
	Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;
	resp.shim_pid = (uint32_t)getpid();
	pthread_mutex_lock(&S.mu);
	resp.task_pid = task_pid();
	pthread_mutex_unlock(&S.mu);
	resp.version = "sealpod " SEALPOD_VERSION;
	return reply(&resp.base, out, out_len);
}

static int task_resize(void *user, const sp_ttrpc_call *call, uint8_t **out,
		       size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__ResizePtyRequest, containerd__task__v2__resize_pty_request, req);
	_cleanup_err_ sp_err *err = NULL;
	pthread_mutex_lock(&S.mu);
	proc *p = find_proc(req->id, req->exec_id);
	bool ok = p && p->status == ST_RUNNING && !p->c->pause;
	pthread_mutex_unlock(&S.mu);
	if (!ok)
		return fail(status_msg, SP_RPC_NOT_FOUND, "running process %s %s not found",
			    req->id, req->exec_id);
	if (sp_sandbox_resize(S.sb, req->id, req->exec_id, req->height, req->width, &err) < 0)
		return fail_err(status_msg, err);
	return reply_empty(out, out_len);
}

static int task_close_io(void *user, const sp_ttrpc_call *call, uint8_t **out,
			 size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__CloseIORequest, containerd__task__v2__close_iorequest, req);
	LOCK_PROC(p);
	if (req->stdin && p->io)
		shim_io_close_stdin(p->io);
	return reply_empty(out, out_len);
}

static int task_update(void *user, const sp_ttrpc_call *call, uint8_t **out,
		       size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__UpdateTaskRequest, containerd__task__v2__update_task_request, req);
	_cleanup_err_ sp_err *err = NULL;
	bool pause, dead;
	if (!ctr_known(req->id, &pause, &dead))
		return no_ctr(status_msg, req->id);
	/* Resources of the pod as a whole are the UVM's size. */
	if (pause || !req->resources || !req->resources->value.len)
		return reply_empty(out, out_len);
	_cleanup_free_ char *json = sp_xstrndup((const char *)req->resources->value.data,
						req->resources->value.len);
	if (sp_sandbox_update(S.sb, req->id, json, &err) < 0)
		return fail_err(status_msg, err);
	return reply_empty(out, out_len);
}

static void *shutdown_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&S.mu);
	sp_sandbox *sb = S.sb;
	pthread_mutex_unlock(&S.mu);
	if (sb)
		sp_sandbox_stop(sb, NULL);
	sp_ttrpc_server_shutdown(S.srv);
	return NULL;
}

static int task_shutdown(void *user, const sp_ttrpc_call *call, uint8_t **out,
			 size_t *out_len, char **status_msg)
{
	DECODE(Containerd__Task__V2__ShutdownRequest, containerd__task__v2__shutdown_request, req);
	pthread_mutex_lock(&S.mu);
	bool busy = S.ctrs && !req->now;
	if (!busy && !S.shutting_down) {
		S.shutting_down = true;
		sp_log_info("shutting down pod %s", S.sandbox_id ? S.sandbox_id : S.f.id);
		spawn_detached(shutdown_thread, NULL);
	}
	pthread_mutex_unlock(&S.mu);
	return reply_empty(out, out_len);
}

static int task_unimplemented(void *user, const sp_ttrpc_call *call, uint8_t **out,
			      size_t *out_len, char **status_msg)
{
	return fail(status_msg, SP_RPC_UNIMPLEMENTED,
		    "%s is not supported: a confidential pod's memory cannot be paused or checkpointed from the host",
		    call->method);
}

static const sp_ttrpc_method methods[] = {
	{TASK_SERVICE, "State", task_state},
	{TASK_SERVICE, "Create", task_create},
	{TASK_SERVICE, "Start", task_start},
	{TASK_SERVICE, "Delete", task_delete},
	{TASK_SERVICE, "Pids", task_pids},
	{TASK_SERVICE, "Pause", task_unimplemented},
	{TASK_SERVICE, "Resume", task_unimplemented},
	{TASK_SERVICE, "Checkpoint", task_unimplemented},
	{TASK_SERVICE, "Kill", task_kill},
	{TASK_SERVICE, "Exec", task_exec},
	{TASK_SERVICE, "ResizePty", task_resize},
	{TASK_SERVICE, "CloseIO", task_close_io},
	{TASK_SERVICE, "Update", task_update},
	{TASK_SERVICE, "Wait", task_wait},
	{TASK_SERVICE, "Stats", task_stats},
	{TASK_SERVICE, "Connect", task_connect},
	{TASK_SERVICE, "Shutdown", task_shutdown},
};

int shim_serve(const shim_flags *f, int listen_fd)
{
	S.f = *f;
	_cleanup_err_ sp_err *err = NULL;
	/* Leave the bundle: containerd removes it while we still run. */
	if (chdir("/") < 0)
		sp_log_warn("chdir /: %s", strerror(errno));
	sp_set_cloexec(listen_fd, true);
	S.pub = shim_publisher_new(getenv("TTRPC_ADDRESS"), f->ns);
	/* Wait blocks a handler per process until it exits: enough
	 * workers for every Wait of a busy pod plus the calls around them. */
	sp_ttrpc_server_opts so = {.version = 1, .workers = 256};
	S.srv = sp_ttrpc_server_new(methods, SP_ARRAY_LEN(methods), NULL, &so);
	if (sp_ttrpc_server_add_listener(S.srv, listen_fd, &err) < 0 ||
	    sp_ttrpc_server_run(S.srv, &err) < 0) {
		sp_log_error("serve: %s", sp_err_msg(err));
		return -1;
	}
	sp_log_info("pod %s: shim exits", S.sandbox_id ? S.sandbox_id : f->id);
	/* The socket goes with the shim, so a later start does not find a
	 * stale one. */
	const char *group = S.sandbox_id ? S.sandbox_id : f->id;
	_cleanup_free_ char *sock = shim_socket_path(f->address, f->ns, group);
	unlink(sock);
	if (S.sb) {
		sp_sandbox_stop(S.sb, NULL);
		/* Both threads end once the guest is gone. */
		if (S.threads_started) {
			pthread_join(S.monitor, NULL);
			pthread_join(S.oom, NULL);
		}
		pthread_mutex_lock(&S.mu);
		bool idle = !S.ctrs;
		pthread_mutex_unlock(&S.mu);
		if (idle) /* else process threads may still look at it */
			sp_sandbox_free(S.sb);
	}
	shim_publisher_free(S.pub);
	sp_ttrpc_server_free(S.srv);
	sp_runtime_config_free(S.cfg);
	json_decref(S.copied);
	return 0;
}
