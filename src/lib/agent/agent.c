/* SPDX-License-Identifier: Apache-2.0 */
/* The agent object, the method table and the dispatcher: unpack the
 * request (bounded by the ttRPC frame limit), ask the policy, then run
 * the handler. Nothing a request names is touched before the policy said
 * yes. */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>

#include "agent_internal.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/tee.h"

/* ---- replies ---- */

int reply_err(reply *r, int rpc_code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(r->msg);
	if (vasprintf(&r->msg, fmt, ap) < 0)
		sp_oom();
	va_end(ap);
	return rpc_code;
}

int reply_sp_err(reply *r, sp_err *e, const char *what)
{
	int code = e ? e->code : SP_ERR_INVALID;
	int rpc;
	switch (code) {
	case SP_ERR_DENIED: rpc = SP_RPC_PERMISSION_DENIED; break;
	case SP_ERR_NOT_FOUND: rpc = SP_RPC_NOT_FOUND; break;
	case SP_ERR_EXISTS: rpc = SP_RPC_ALREADY_EXISTS; break;
	case SP_ERR_INVALID:
	case SP_ERR_PARSE: rpc = SP_RPC_INVALID_ARGUMENT; break;
	case SP_ERR_TIMEOUT: rpc = SP_RPC_DEADLINE_EXCEEDED; break;
	case SP_ERR_LIMIT: rpc = SP_RPC_RESOURCE_EXHAUSTED; break;
	case SP_ERR_UNSUPPORTED: rpc = SP_RPC_UNIMPLEMENTED; break;
	case SP_ERR_STATE: rpc = SP_RPC_FAILED_PRECONDITION; break;
	default: rpc = SP_RPC_INTERNAL; break;
	}
	return reply_err(r, rpc, "%s: %s", what, sp_err_msg(e));
}

int reply_msg(reply *r, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	r->out = sp_xmalloc(n ? n : 1);
	r->out_len = protobuf_c_message_pack(m, r->out);
	return SP_RPC_OK;
}

int reply_empty(reply *r)
{
	Sealpod__Agent__V1__Empty e = SEALPOD__AGENT__V1__EMPTY__INIT;
	return reply_msg(r, &e.base);
}

/* ---- locking and waiting ---- */

/* The ttRPC call this worker thread handles (NULL outside one, e.g. when
 * sp_agent_dispatch is called directly): blocking waits look at its
 * cancellation without every handler passing it down. */
static __thread const sp_ttrpc_call *tl_call;

bool agent_cancelled(void)
{
	return tl_call && sp_ttrpc_call_cancelled(tl_call);
}

int reply_wait_end(sp_agent *a, reply *r, const char *method)
{
	if (a->stopping)
		return reply_err(r, SP_RPC_UNAVAILABLE, "%s: the agent is shutting down",
				 method);
	if (agent_cancelled())
		return reply_err(r, SP_RPC_CANCELLED,
				 "%s: the connection that sent the request closed", method);
	return 0;
}

bool agent_wait(sp_agent *a, uint64_t deadline_ns)
{
	if (a->stopping || agent_cancelled())
		return false;
	uint64_t now = sp_now_ns();
	if (deadline_ns && now >= deadline_ns)
		return false;
	/* The close of a connection is announced with a broadcast made
	 * without the lock (agent_on_cancel): a wait that just began may
	 * miss it, so wait at most a second at a time. */
	uint64_t until = deadline_ns;
	if (tl_call && (!until || until > now + 1000000000ull))
		until = now + 1000000000ull;
	if (!until) {
		pthread_cond_wait(&a->cond, &a->lock);
	} else {
		struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
				      .tv_nsec = (long)(until % 1000000000u)};
		pthread_cond_timedwait(&a->cond, &a->lock, &ts);
	}
	return !a->stopping && !agent_cancelled();
}

void agent_broadcast(sp_agent *a)
{
	pthread_cond_broadcast(&a->cond);
}

/* Ids become path components and log fields: keep them plain. */
bool valid_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > AGENT_MAX_ID)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') ||
			  (i > 0 && (ch == '-' || ch == '_' || ch == '.'));
		if (!ok)
			return false;
	}
	return true;
}

container *container_find(sp_agent *a, const char *id)
{
	for (container *c = a->containers; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

proc *proc_find(container *c, const char *exec_id)
{
	const char *want = exec_id ? exec_id : "";
	for (proc *p = c->procs; p; p = p->next)
		if (!strcmp(p->exec_id, want))
			return p;
	return NULL;
}

/* ---- simple handlers ---- */

static int h_health(sp_agent *a, reply *r)
{
	Sealpod__Agent__V1__HealthCheckResponse m =
		SEALPOD__AGENT__V1__HEALTH_CHECK_RESPONSE__INIT;
	m.status = (char *)"SERVING";
	m.agent_version = (char *)SEALPOD_VERSION;
	return reply_msg(r, &m.base);
}

static int h_guest_details(sp_agent *a, reply *r)
{
	Sealpod__Agent__V1__GuestDetailsResponse m =
		SEALPOD__AGENT__V1__GUEST_DETAILS_RESPONSE__INIT;
	struct utsname u;
	char hex[2 * SP_SHA256_LEN + 1] = "";
	if (uname(&u) < 0)
		strcpy(u.release, "unknown");
	if (a->policy_set)
		sp_hex_encode(hex, a->policy_hash, SP_SHA256_LEN);
	m.agent_version = (char *)SEALPOD_VERSION;
	m.kernel_release = u.release;
	m.tee = (char *)(a->have_tee ? a->tee.kind : "none");
	m.policy_hash = hex;
	return reply_msg(r, &m.base);
}

int agent_tee_report(sp_agent *a, const uint8_t report_data[64],
		     uint8_t **report, size_t *report_len, uint8_t **certs,
		     size_t *certs_len, sp_err **err)
{
	pthread_mutex_lock(&a->tee_lock);
	int rc = a->tee.get_report(a->tee.ctx, report_data, report, report_len,
				   certs, certs_len, err);
	pthread_mutex_unlock(&a->tee_lock);
	return rc;
}

static int h_get_report(sp_agent *a, const AGetReport *q, reply *r)
{
	if (q->report_data.len > SP_TEE_REPORT_DATA_LEN)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "GetReport: report_data is %zu bytes; at most 64 allowed",
				 q->report_data.len);
	if (!a->have_tee)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "GetReport: this guest has no TEE (started with --tee none)");
	uint8_t rd[64] = {0};
	if (q->report_data.len)
		memcpy(rd, q->report_data.data, q->report_data.len);
	_cleanup_free_ uint8_t *rep = NULL, *certs = NULL;
	size_t rep_len = 0, certs_len = 0;
	_cleanup_err_ sp_err *e = NULL;
	/* The TEE call may take a while: do not hold the agent's lock. */
	pthread_mutex_unlock(&a->lock);
	int rc = agent_tee_report(a, rd, &rep, &rep_len, &certs, &certs_len, &e);
	pthread_mutex_lock(&a->lock);
	if (rc < 0)
		return reply_sp_err(r, e, "GetReport");
	Sealpod__Agent__V1__GetReportResponse m =
		SEALPOD__AGENT__V1__GET_REPORT_RESPONSE__INIT;
	m.report.data = rep;
	m.report.len = rep_len;
	m.certs.data = certs;
	m.certs.len = certs_len;
	m.tee = (char *)a->tee.kind;
	return reply_msg(r, &m.base);
}

static int h_set_policy(sp_agent *a, const ASetPolicy *q, void **change, reply *r)
{
	if (a->policy_set || a->set_policy_busy)
		return reply_err(r, SP_RPC_PERMISSION_DENIED,
				 "SetPolicy: a policy is already in force; it can be set only once");
	if (a->ever_container)
		return reply_err(r, SP_RPC_PERMISSION_DENIED,
				 "SetPolicy: containers were already created; the policy must be set first");
	return gate_set_policy(a, q->policy ? q->policy : "",
			       q->policy ? strlen(q->policy) : 0, change, r);
}

/* ---- the method table ---- */

enum mid {
	M_CREATE_SANDBOX, M_DESTROY_SANDBOX, M_CREATE_CONTAINER,
	M_START_CONTAINER, M_REMOVE_CONTAINER, M_EXEC_PROCESS,
	M_SIGNAL_PROCESS, M_WAIT_PROCESS, M_READ_STDOUT, M_READ_STDERR,
	M_WRITE_STDIN, M_CLOSE_STDIN, M_TTY_WIN_RESIZE, M_STATS_CONTAINER,
	M_LIST_PROCESSES, M_UPDATE_CONTAINER, M_GET_OOM_EVENT,
	M_GET_GUEST_DETAILS, M_SET_POLICY, M_COPY_FILE, M_GET_REPORT,
	M_UPDATE_INTERFACE, M_UPDATE_ROUTES, M_HEALTH_CHECK,
};

typedef struct method_def {
	const char *service;
	const char *name;
	const ProtobufCMessageDescriptor *req;
	const ProtobufCMessageDescriptor *resp;
	enum mid id;
	unsigned flags; /* SP_TTRPC_CONTROL: may use the reserved workers */
} method_def;

#define D(x) (&sealpod__agent__v1__##x##__descriptor)
#define AS SP_AGENT_SERVICE
/* Control requests: the host's own health checks, stops and removals, and
 * short reads of state. They never wait on a process or a stream, so the
 * workers the ttRPC server reserves for them are always enough
 * (docs/agent.md, "Scheduling"). */
#define CTL SP_TTRPC_CONTROL
static const method_def METHODS[] = {
	{AS, "CreateSandbox", D(create_sandbox_request), D(empty), M_CREATE_SANDBOX},
	{AS, "DestroySandbox", D(destroy_sandbox_request), D(empty), M_DESTROY_SANDBOX, CTL},
	{AS, "CreateContainer", D(create_container_request), D(empty), M_CREATE_CONTAINER},
	{AS, "StartContainer", D(start_container_request), D(empty), M_START_CONTAINER},
	{AS, "RemoveContainer", D(remove_container_request), D(empty), M_REMOVE_CONTAINER, CTL},
	{AS, "ExecProcess", D(exec_process_request), D(empty), M_EXEC_PROCESS},
	{AS, "SignalProcess", D(signal_process_request), D(empty), M_SIGNAL_PROCESS, CTL},
	{AS, "WaitProcess", D(wait_process_request), D(wait_process_response), M_WAIT_PROCESS},
	{AS, "ReadStdout", D(read_stream_request), D(read_stream_response), M_READ_STDOUT},
	{AS, "ReadStderr", D(read_stream_request), D(read_stream_response), M_READ_STDERR},
	{AS, "WriteStdin", D(write_stream_request), D(write_stream_response), M_WRITE_STDIN},
	{AS, "CloseStdin", D(close_stdin_request), D(empty), M_CLOSE_STDIN},
	{AS, "TtyWinResize", D(tty_win_resize_request), D(empty), M_TTY_WIN_RESIZE},
	{AS, "StatsContainer", D(stats_container_request), D(stats_container_response), M_STATS_CONTAINER, CTL},
	{AS, "ListProcesses", D(list_processes_request), D(list_processes_response), M_LIST_PROCESSES, CTL},
	{AS, "UpdateContainer", D(update_container_request), D(empty), M_UPDATE_CONTAINER},
	{AS, "GetOOMEvent", D(get_oomevent_request), D(oomevent), M_GET_OOM_EVENT},
	{AS, "GetGuestDetails", D(guest_details_request), D(guest_details_response), M_GET_GUEST_DETAILS, CTL},
	{AS, "SetPolicy", D(set_policy_request), D(empty), M_SET_POLICY},
	{AS, "CopyFile", D(copy_file_request), D(empty), M_COPY_FILE},
	{AS, "GetReport", D(get_report_request), D(get_report_response), M_GET_REPORT},
	{AS, "UpdateInterface", D(update_interface_request), D(interface), M_UPDATE_INTERFACE},
	{AS, "UpdateRoutes", D(update_routes_request), D(routes), M_UPDATE_ROUTES},
	{SP_AGENT_HEALTH_SERVICE, "Check", D(check_request), D(health_check_response), M_HEALTH_CHECK, CTL},
};
#undef CTL
#undef AS
#undef D

static const method_def *method_lookup(const char *service, const char *method)
{
	if (!service || !method)
		return NULL;
	for (size_t i = 0; i < SP_ARRAY_LEN(METHODS); i++)
		if (!strcmp(METHODS[i].service, service) &&
		    !strcmp(METHODS[i].name, method))
			return &METHODS[i];
	return NULL;
}

bool sp_agent_method_info(const char *name, const char **service,
			  const char **method, const char **request_type,
			  const void **request_desc, const void **response_desc)
{
	const method_def *m = NULL;
	const char *slash = name ? strrchr(name, '/') : NULL;
	for (size_t i = 0; i < SP_ARRAY_LEN(METHODS) && name; i++) {
		const method_def *d = &METHODS[i];
		if (slash) {
			size_t sl = (size_t)(slash - name);
			const char *svc = strrchr(d->service, '.') + 1;
			bool svc_ok = (strlen(d->service) == sl &&
				       !strncmp(d->service, name, sl)) ||
				      (strlen(svc) == sl && !strncmp(svc, name, sl));
			if (svc_ok && !strcmp(d->name, slash + 1))
				m = d;
		} else if (!strcmp(d->name, name) && !strcmp(d->service, SP_AGENT_SERVICE)) {
			m = d;
		}
	}
	if (!m)
		return false;
	if (service)
		*service = m->service;
	if (method)
		*method = m->name;
	if (request_type)
		*request_type = m->req->short_name;
	if (request_desc)
		*request_desc = m->req;
	if (response_desc)
		*response_desc = m->resp;
	return true;
}

static int run_method(sp_agent *a, const method_def *m, const ProtobufCMessage *msg,
		      uint64_t deadline, void **change, reply *r)
{
	switch (m->id) {
	case M_HEALTH_CHECK: return h_health(a, r);
	case M_GET_GUEST_DETAILS: return h_guest_details(a, r);
	case M_SET_POLICY: return h_set_policy(a, (const ASetPolicy *)msg, change, r);
	case M_GET_REPORT: return h_get_report(a, (const AGetReport *)msg, r);
	case M_CREATE_SANDBOX: return h_create_sandbox(a, (const ACreateSandbox *)msg, r);
	case M_DESTROY_SANDBOX: return h_destroy_sandbox(a, deadline, r);
	case M_CREATE_CONTAINER: return h_create_container(a, (const ACreateContainer *)msg, change, r);
	case M_START_CONTAINER: return h_start_container(a, (const AStartContainer *)msg, r);
	case M_REMOVE_CONTAINER: return h_remove_container(a, (const ARemoveContainer *)msg, deadline, r);
	case M_EXEC_PROCESS: return h_exec_process(a, (const AExecProcess *)msg, change, r);
	case M_SIGNAL_PROCESS: return h_signal_process(a, (const ASignalProcess *)msg, r);
	case M_WAIT_PROCESS: return h_wait_process(a, (const AWaitProcess *)msg, deadline, r);
	case M_READ_STDOUT: return h_read_stream(a, (const AReadStream *)msg, 1, deadline, r);
	case M_READ_STDERR: return h_read_stream(a, (const AReadStream *)msg, 2, deadline, r);
	case M_WRITE_STDIN: return h_write_stdin(a, (const AWriteStream *)msg, deadline, r);
	case M_CLOSE_STDIN: return h_close_stdin(a, (const ACloseStdin *)msg, r);
	case M_TTY_WIN_RESIZE: return h_tty_win_resize(a, (const ATtyWinResize *)msg, r);
	case M_STATS_CONTAINER: return h_stats_container(a, (const AStatsContainer *)msg, r);
	case M_LIST_PROCESSES: return h_list_processes(a, (const AListProcesses *)msg, r);
	case M_UPDATE_CONTAINER: return h_update_container(a, (const AUpdateContainer *)msg, r);
	case M_GET_OOM_EVENT: return h_get_oom_event(a, deadline, r);
	case M_COPY_FILE: return h_copy_file(a, (const ACopyFile *)msg, r);
	case M_UPDATE_INTERFACE: return h_update_interface(a, (const AUpdateInterface *)msg, r);
	case M_UPDATE_ROUTES: return h_update_routes(a, (const AUpdateRoutes *)msg, r);
	}
	return reply_err(r, SP_RPC_INTERNAL, "method %s has no handler", m->name);
}

static const char *rpc_name(int code)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
		"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
		"UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
	return code >= 0 && (size_t)code < SP_ARRAY_LEN(names) ? names[code] : "?";
}

int sp_agent_dispatch(sp_agent *a, const char *service, const char *method,
		      const uint8_t *payload, size_t len, uint64_t deadline_ns,
		      uint8_t **out, size_t *out_len, char **status_msg)
{
	reply r = {0};
	*out = NULL;
	*out_len = 0;
	*status_msg = NULL;
	const method_def *m = method_lookup(service, method);
	if (!m) {
		sp_log_warn("request for unknown method %.64s/%.64s refused",
			    service ? service : "", method ? method : "");
		*status_msg = sp_xasprintf("unknown method %.200s/%.200s",
					   service ? service : "",
					   method ? method : "");
		return SP_RPC_UNIMPLEMENTED;
	}
	if (len > SP_TTRPC_MAX_MESSAGE) {
		*status_msg = sp_xasprintf("%s: request of %zu bytes is over the limit",
					   m->name, len);
		return SP_RPC_RESOURCE_EXHAUSTED;
	}
	ProtobufCMessage *msg =
		protobuf_c_message_unpack(m->req, NULL, len, payload ? payload : (const uint8_t *)"");
	if (!msg) {
		*status_msg = sp_xasprintf("%s: the request is not a valid %s message",
					   m->name, m->req->short_name);
		return SP_RPC_INVALID_ARGUMENT;
	}
	uint64_t t0 = sp_now_ns();
	pthread_mutex_lock(&a->lock);
	int rc;
	/* Decide, act, then commit: the handler commits the policy's
	 * pending change when (and only if) the request took effect; what
	 * is left here was not, and is dropped. */
	void *change = NULL;
	if (a->stopping)
		rc = reply_err(&r, SP_RPC_UNAVAILABLE, "%s: the agent is shutting down",
			       m->name);
	else if (!gate_check(a, m->name, msg, &r, &change))
		rc = SP_RPC_PERMISSION_DENIED;
	else
		rc = run_method(a, m, msg, deadline_ns, &change, &r);
	gate_drop(&change);
	pthread_mutex_unlock(&a->lock);
	protobuf_c_message_free_unpacked(msg, NULL);
	/* What a slow pod start spends its time on (failures are logged
	 * below, at info level). */
	if (rc == SP_RPC_OK && m->id != M_HEALTH_CHECK)
		sp_log_debug("%s: OK in %llu ms", m->name,
			     (unsigned long long)((sp_now_ns() - t0) / 1000000u));
	if (rc == SP_RPC_OK) {
		free(r.msg);
		*out = r.out;
		*out_len = r.out_len;
	} else {
		free(r.out);
		if (!r.msg)
			r.msg = sp_xasprintf("%s failed", m->name);
		sp_log_info("%s: %s: %s", m->name, rpc_name(rc), r.msg);
		*status_msg = r.msg;
	}
	return rc;
}

static int ttrpc_handler(void *user, const sp_ttrpc_call *call, uint8_t **out,
			 size_t *out_len, char **status_msg)
{
	tl_call = call;
	int rc = sp_agent_dispatch(user, call->service, call->method, call->payload,
				   call->payload_len, call->deadline_ns, out,
				   out_len, status_msg);
	tl_call = NULL;
	return rc;
}

void sp_agent_on_cancel(void *user)
{
	sp_agent *a = user;
	/* Called by the server's I/O thread, which must never wait for the
	 * agent lock: broadcast without it (agent_wait's one-second steps
	 * catch a wake-up that came just before a wait). */
	pthread_cond_broadcast(&a->cond);
}

void sp_agent_methods(sp_agent *a, const sp_ttrpc_method **table, size_t *n)
{
	*table = a->methods;
	*n = a->n_methods;
}

/* ---- lifecycle ---- */

int sp_agent_new(sp_agent **out, const sp_agent_opts *opts, sp_err **err)
{
	if (!opts || opts->version != 1)
		return sp_error(err, SP_ERR_INVALID,
				"sp_agent_new: options version must be 1");
	sp_agent *a = sp_xzalloc(sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	a->epfd = a->wakefd = -1;
	a->native = opts->native;
	a->state_dir = sp_xstrdup(opts->state_dir ? opts->state_dir : "/run/sealpod");
	a->image_store = opts->image_store ? sp_xstrdup(opts->image_store) : NULL;
	a->rootfs_dir = opts->rootfs_dir ? sp_xstrdup(opts->rootfs_dir) : NULL;
	a->stream_max = opts->stream_max ? opts->stream_max : SP_AGENT_STREAM_MAX;
	a->watch_child = opts->watch_child;
	pthread_mutex_init(&a->exit_lock, NULL);
	pthread_mutex_init(&a->tee_lock, NULL);
	pthread_mutex_init(&a->engine_lock, NULL);
	if (opts->tee && opts->tee->get_report && opts->tee->kind &&
	    strcmp(opts->tee->kind, "none") != 0) {
		a->tee = *opts->tee;
		a->have_tee = true;
	} else {
		a->tee.kind = "none";
	}
	a->n_methods = SP_ARRAY_LEN(METHODS);
	a->methods = sp_xcalloc(a->n_methods, sizeof(*a->methods));
	for (size_t i = 0; i < a->n_methods; i++) {
		a->methods[i].service = METHODS[i].service;
		a->methods[i].method = METHODS[i].name;
		a->methods[i].fn = ttrpc_handler;
		a->methods[i].flags = METHODS[i].flags;
	}
	if (sp_mkdir_p(a->state_dir, 0700, err) < 0) {
		sp_error_wrap(err, "agent state directory");
		sp_agent_free(a);
		return SP_ERR_SYSTEM;
	}
	if (io_start(a, err) < 0) {
		sp_agent_free(a);
		return SP_ERR_SYSTEM;
	}
	/* The endpoint opens at CreateSandbox, in the pod's network
	 * namespace; a bad address is refused now, not then. */
	if (opts->attest_listen) {
		struct sockaddr_in sa;
		if (attest_parse(opts->attest_listen, &sa, err) < 0) {
			sp_agent_free(a);
			return SP_ERR_INVALID;
		}
		a->attest_listen = sp_xstrdup(opts->attest_listen);
	}
	*out = a;
	return 0;
}

void sp_agent_shutdown(sp_agent *a)
{
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	agent_broadcast(a);
	pthread_mutex_unlock(&a->lock);
}

void sp_agent_free(sp_agent *a)
{
	if (!a)
		return;
	sp_agent_shutdown(a);
	pthread_mutex_lock(&a->lock);
	containers_destroy_all(a);
	if (a->sandbox_created)
		sandbox_teardown(a);
	pthread_mutex_unlock(&a->lock);
	io_stop(a);
	gate_free(a);
	free(a->methods);
	free(a->state_dir);
	free(a->image_store);
	free(a->rootfs_dir);
	free(a->sandbox_id);
	free(a->hostname);
	free(a->pod_store);
	free(a->attest_listen);
	while (a->exits) {
		struct exit_note *n = a->exits->next;
		free(a->exits);
		a->exits = n;
	}
	pthread_mutex_destroy(&a->exit_lock);
	pthread_mutex_destroy(&a->tee_lock);
	pthread_mutex_destroy(&a->engine_lock);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
