/* SPDX-License-Identifier: Apache-2.0 */
/* The evaluator's entry point: one table maps each agent request to its
 * check. A request the table does not know is denied. State records only
 * what later decisions depend on: which containers exist (and through
 * which policy entry), which exec processes were allowed, SetPolicy.
 * Deciding never changes the state: an allowed request yields a change the
 * caller commits when the request succeeded (decide, act, commit or drop). */
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "sealpod/json.h"

struct cstate {
	char *id;
	int idx;
	char **execs;
	size_t n_execs;
};

struct sp_policy_state {
	struct cstate *c;
	size_t n, cap;
	unsigned set_policies;
	bool ever_container; /* network changes end with the first container */
};

/* What an allowed request would record. decide() only reads the state;
 * the caller applies the change once the request succeeded (the agent:
 * when it has claimed the container id, started the exec, set the
 * policy), or drops it: a refused or failed request leaves no trace. A
 * RemoveContainer records nothing here: the agent forgets the container
 * (sp_policy_state_forget) when its removal has finished, so the id stays
 * taken until then. */
enum change_kind { CH_ADD_CONTAINER = 1, CH_ADD_EXEC, CH_SET_POLICY };

struct sp_policy_change {
	enum change_kind kind;
	char *cid;
	char *eid;
	int idx;
};

void sp_policy_change_free(sp_policy_change *ch)
{
	if (!ch)
		return;
	free(ch->cid);
	free(ch->eid);
	free(ch);
}

static sp_policy_change *change_new(enum change_kind k, const char *cid, const char *eid,
				    int idx)
{
	sp_policy_change *ch = sp_xzalloc(sizeof(*ch));
	ch->kind = k;
	ch->cid = cid ? sp_xstrdup(cid) : NULL;
	ch->eid = eid ? sp_xstrdup(eid) : NULL;
	ch->idx = idx;
	return ch;
}

sp_policy_state *sp_policy_state_new(void)
{
	return sp_xzalloc(sizeof(sp_policy_state));
}

static void cstate_clear(struct cstate *c)
{
	free(c->id);
	for (size_t i = 0; i < c->n_execs; i++)
		free(c->execs[i]);
	free(c->execs);
}

void sp_policy_state_free(sp_policy_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		cstate_clear(&s->c[i]);
	free(s->c);
	free(s);
}

static struct cstate *state_find(const sp_policy_state *s, const char *id)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (!strcmp(s->c[i].id, id))
			return &s->c[i];
	return NULL;
}

void sp_policy_state_forget(sp_policy_state *s, const char *id)
{
	struct cstate *c = state_find(s, id);
	if (!c)
		return;
	cstate_clear(c);
	*c = s->c[--s->n];
}

int sp_policy_state_container(const sp_policy_state *s, const char *id)
{
	struct cstate *c = state_find(s, id);
	return c ? c->idx : -1;
}

void sp_policy_state_forget_exec(sp_policy_state *s, const char *id, const char *exec_id)
{
	struct cstate *c = state_find(s, id);
	for (size_t i = 0; c && i < c->n_execs; i++)
		if (!strcmp(c->execs[i], exec_id)) {
			free(c->execs[i]);
			c->execs[i] = c->execs[--c->n_execs];
			return;
		}
}

size_t sp_policy_state_execs(const sp_policy_state *s, const char *id)
{
	struct cstate *c = state_find(s, id);
	return c ? c->n_execs : 0;
}

static bool exec_known(const struct cstate *c, const char *exec_id)
{
	for (size_t i = 0; i < c->n_execs; i++)
		if (!strcmp(c->execs[i], exec_id))
			return true;
	return false;
}

void sp_policy_decision_clear(sp_policy_decision *d)
{
	free(d->path);
	free(d->expected);
	free(d->got);
	free(d->message);
	memset(d, 0, sizeof(*d));
}

bool sp_eval_deny(struct sp_eval *e, char *expected, char *got,
		  const char *pathfmt, ...)
{
	sp_policy_decision *d = e->d;
	if (d->message) { /* first mismatch wins */
		free(expected);
		free(got);
		return false;
	}
	va_list ap;
	va_start(ap, pathfmt);
	if (vasprintf(&d->path, pathfmt, ap) < 0)
		sp_oom();
	va_end(ap);
	d->allow = false;
	d->expected = expected ? expected : sp_xstrdup("nothing");
	d->got = got ? got : sp_xstrdup("(absent)");
	d->message = sp_xasprintf("%s denied by policy: %s: expected %s, got %s", e->req,
				  d->path, d->expected, d->got);
	return false;
}

bool sp_policy_id_ok(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (n == 0 || n > 128)
		return false;
	if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") < 1)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static char *quoted(const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *r = j ? sp_policy_render(j) : sp_xstrdup("(not UTF-8)");
	json_decref(j);
	return r;
}

/* The container a request names; denies when it was not created under
 * this policy. */
static const struct cstate *known(const sp_policy_state *s, struct sp_eval *e, const char *id)
{
	const struct cstate *c = state_find(s, id);
	if (!c)
		sp_eval_deny(e, sp_xstrdup("a container created under this policy"), quoted(id),
			     "container_id");
	return c;
}

static bool need(struct sp_eval *e, bool flag, const char *what)
{
	if (flag)
		return true;
	return sp_eval_deny(e, sp_xstrdup("false (not allowed)"), sp_xstrdup("a request"),
			    "policy.requests.%s", what);
}

/* Process in a container: "" or the container id is its main process;
 * anything else must be an exec the policy allowed. */
static bool process_known(struct sp_eval *e, const struct cstate *c, const char *exec_id)
{
	if (!exec_id[0] || !strcmp(exec_id, c->id) || exec_known(c, exec_id))
		return true;
	return sp_eval_deny(e, sp_xstrdup("an exec id allowed by an earlier ExecProcess"),
			    quoted(exec_id), "exec_id");
}

static bool eval_set_policy(const sp_policy *p, const sp_policy_state *s, struct sp_eval *e,
			    const Sealpod__Agent__V1__SetPolicyRequest *r)
{
	if (p) {
		if (!p->set_policy_again)
			return sp_eval_deny(e, sp_xstrdup("no further SetPolicy (policy.requests.set_policy_again is false)"),
					    sp_xstrdup("a second SetPolicy"), "policy.requests.set_policy_again");
		if (s->n > 0)
			return sp_eval_deny(e, sp_xstrdup("SetPolicy only before any container exists"),
					    sp_xasprintf("%zu containers", s->n), "policy.requests.set_policy_again");
	}
	/* The new policy must itself be loadable canonical bytes. */
	sp_policy *np = NULL;
	sp_err *err = NULL;
	const char *b = r->policy ? r->policy : "";
	if (sp_policy_load(&np, b, strlen(b), &err) < 0) {
		sp_eval_deny(e, sp_xstrdup("a canonical, valid policy"), sp_xstrdup(sp_err_msg(err)),
			     "policy");
		sp_err_free(err);
		return false;
	}
	sp_policy_free(np);
	return true;
}

static bool text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* Volume names the pod's containers mount, by kind directory name. */
static bool pod_volume(const sp_policy *p, const char *driver, const char *name)
{
	for (size_t i = 0; i < p->n_c; i++)
		for (size_t k = 0; k < p->c[i].n_mounts; k++) {
			const struct mount_rule *m = &p->c[i].mounts[k];
			if (!strcmp(m->volume, name) && !strcasecmp(m->kind, driver))
				return true;
		}
	return false;
}

/* Plain http: any scheme://host[:port] (digests keep the content honest;
 * the image module allows plain http only to 10.0.2.2 and loopback).
 * https: only a host policy.registries lists, since the guest has no
 * other trust anchor: an unlisted host could only fail later with a TLS
 * error, and the policy, not the host, says whom the guest talks TLS to. */
bool sp_eval_registry_ok(const sp_policy *p, const char *url)
{
	bool tls = !strncmp(url, "https://", 8);
	const char *h = tls ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
	size_t n = h ? strlen(h) : 0;
	if (n && h[n - 1] == '/')
		n--;
	if (!n || strlen(url) > 255)
		return false;
	if (strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != n)
		return false;
	return !tls || sp_policy_registry_listed(p, url);
}

char *sp_eval_registry_expected(const sp_policy *p)
{
	if (!p->n_regs)
		return sp_xstrdup("http://HOST:PORT (the policy lists no https registries)");
	size_t len = 0;
	for (size_t i = 0; i < p->n_regs; i++)
		len += strlen(p->regs[i].host) + 12;
	char *s = sp_xmalloc(len + 64), *w = s;
	w += sprintf(w, "http://HOST:PORT or ");
	for (size_t i = 0; i < p->n_regs; i++)
		w += sprintf(w, "%shttps://%s", i ? ", " : "", p->regs[i].host);
	strcpy(w, " (policy.registries)");
	return s;
}

static bool eval_storage_sandbox(const sp_policy *p, struct sp_eval *e,
				 const Sealpod__Agent__V1__Storage *st, size_t i)
{
	const char *drv = st->driver ? st->driver : "";
	if (!strcmp(drv, "oci-store")) /* untrusted image store: digests are verified on use */
		return true;
	/* A registry is an image store like a disk: untrusted bytes the
	 * agent verifies against each container's pinned digest. */
	if (!strcmp(drv, "registry")) {
		if (sp_eval_registry_ok(p, st->source) && !st->mount_point[0] && st->n_options == 0)
			return true;
		return sp_eval_deny(e, sp_eval_registry_expected(p), quoted(st->source),
				    "storages[%zu].source", i);
	}
	if (!strcmp(drv, "emptydir") || !strcmp(drv, "configmap") || !strcmp(drv, "secret") ||
	    !strcmp(drv, "projected") || !strcmp(drv, "downwardapi")) {
		if (pod_volume(p, drv, st->source ? st->source : ""))
			return true;
		return sp_eval_deny(e, sp_xasprintf("a %s volume of the pod", drv),
				    quoted(st->source), "storages[%zu].source", i);
	}
	return sp_eval_deny(e, sp_xstrdup("driver oci-store, registry, emptydir, configmap, secret, projected or downwardapi"),
			    quoted(drv), "storages[%zu].driver", i);
}

static bool eval_create_sandbox(const sp_policy *p, struct sp_eval *e,
				const Sealpod__Agent__V1__CreateSandboxRequest *r)
{
	if (p->pod_name && strcmp(p->pod_name, r->pod_name))
		return sp_eval_deny(e, quoted(p->pod_name), quoted(r->pod_name), "pod_name");
	if (p->pod_namespace && strcmp(p->pod_namespace, r->pod_namespace))
		return sp_eval_deny(e, quoted(p->pod_namespace), quoted(r->pod_namespace), "pod_namespace");
	if (r->sandbox_pidns != p->share_pid)
		return sp_eval_deny(e, sp_xstrdup(p->share_pid ? "true" : "false"),
				    sp_xstrdup(r->sandbox_pidns ? "true" : "false"), "sandbox_pidns");
	const char *h = r->hostname;
	if (strlen(h) > 253 || strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != strlen(h))
		return sp_eval_deny(e, sp_xstrdup("a DNS name"), quoted(h), "hostname");
	if (r->sandbox_id[0] && !sp_policy_id_ok(r->sandbox_id))
		return sp_eval_deny(e, sp_xstrdup("an id of [A-Za-z0-9_.-]"), quoted(r->sandbox_id), "sandbox_id");
	for (size_t i = 0; i < r->n_dns; i++)
		if (!text_ok(r->dns[i], 256))
			return sp_eval_deny(e, sp_xstrdup("a resolv.conf line without control characters"),
					    quoted(r->dns[i]), "dns[%zu]", i);
	for (size_t i = 0; i < r->n_storages; i++)
		if (!eval_storage_sandbox(p, e, r->storages[i], i))
			return false;
	return true;
}

/* CopyFile: the path, normalised lexically (the agent must then open it
 * with O_NOFOLLOW under the allowed directory), must lie strictly under
 * an allowed directory; a symlink's target must be relative and free of
 * `..`, so that no chain of links can leave the directory. */
static bool eval_copy_file(const sp_policy *p, struct sp_eval *e,
			   const Sealpod__Agent__V1__CopyFileRequest *r)
{
	_cleanup_free_ char *n = sp_policy_path_normalize(r->path);
	if (!n)
		return sp_eval_deny(e, sp_xstrdup("an absolute path without `..`"), quoted(r->path), "path");
	const char *dir = NULL;
	size_t i;
	json_t *v;
	if (p->copy_file)
		json_array_foreach(p->copy_file, i, v) {
			const char *d = json_string_value(v);
			size_t l = strlen(d);
			if (!strncmp(n, d, l) && n[l] == '/' && n[l + 1])
				dir = d;
		}
	if (!dir) {
		_cleanup_free_ char *dirs = sp_policy_render(p->copy_file);
		char *exp = p->copy_file && json_array_size(p->copy_file)
				    ? sp_xasprintf("a path under one of %s", dirs)
				    : sp_xstrdup("no CopyFile (policy.requests.copy_file is empty)");
		return sp_eval_deny(e, exp, quoted(r->path), "path");
	}
	uint32_t fmt = r->file_mode & S_IFMT;
	if (fmt != 0 && fmt != S_IFREG && fmt != S_IFDIR && fmt != S_IFLNK)
		return sp_eval_deny(e, sp_xstrdup("a regular file, directory or symlink"),
				    sp_xasprintf("mode 0%o", r->file_mode), "file_mode");
	if ((r->file_mode & 07000) || (r->dir_mode & 07000))
		return sp_eval_deny(e, sp_xstrdup("no setuid, setgid or sticky bits"),
				    sp_xasprintf("mode 0%o / dir 0%o", r->file_mode, r->dir_mode), "file_mode");
	if (fmt == S_IFLNK) {
		/* protobuf-c leaves data NULL for an empty field. */
		_cleanup_free_ char *t = r->data.len ? sp_xstrndup((const char *)r->data.data, r->data.len)
						     : sp_xstrdup("");
		_cleanup_free_ char *abs = sp_xasprintf("/%s", t);
		_cleanup_free_ char *tn = sp_policy_path_normalize(abs);
		if (strlen(t) != r->data.len || !t[0] || t[0] == '/' || !tn)
			return sp_eval_deny(e, sp_xstrdup("a relative symlink target without `..`"),
					    quoted(t), "data (symlink target)");
	}
	return true;
}

/* UpdateContainer's resources: within the container's recorded bounds
 * (eval_resources.c); device rules stay the policy's. */
static bool eval_update_container(const sp_policy *p, struct sp_eval *e, const struct pcontainer *c,
				  const Sealpod__Agent__V1__UpdateContainerRequest *r)
{
	(void)p;
	_cleanup_json_ json_t *res = NULL;
	sp_err *err = NULL;
	if (r->resources.len == 0)
		return true;
	if (sp_json_parse(&res, r->resources.data, r->resources.len, "resources", &err) < 0) {
		sp_eval_deny(e, sp_xstrdup("a runtime-spec linux.resources object"),
			     sp_xstrdup(sp_err_msg(err)), "resources");
		sp_err_free(err);
		return false;
	}
	return sp_eval_resources(c, e, res, NULL, true, "resources");
}

enum req {
	R_CREATE_SANDBOX, R_DESTROY_SANDBOX, R_CREATE_CONTAINER, R_START_CONTAINER,
	R_REMOVE_CONTAINER, R_EXEC_PROCESS, R_SIGNAL_PROCESS, R_WAIT_PROCESS,
	R_READ_STDOUT, R_READ_STDERR, R_WRITE_STDIN, R_CLOSE_STDIN, R_TTY_WIN_RESIZE,
	R_STATS, R_LIST_PROCESSES, R_UPDATE_CONTAINER, R_OOM, R_GUEST_DETAILS,
	R_SET_POLICY, R_COPY_FILE, R_GET_REPORT, R_CHECK, R_NETWORK,
};

static const struct reqdef {
	const char *method;
	const char *message;
	const ProtobufCMessageDescriptor *desc;
	enum req r;
} reqs[] = {
	{"CreateSandbox", "CreateSandboxRequest", &sealpod__agent__v1__create_sandbox_request__descriptor, R_CREATE_SANDBOX},
	{"DestroySandbox", "DestroySandboxRequest", &sealpod__agent__v1__destroy_sandbox_request__descriptor, R_DESTROY_SANDBOX},
	{"CreateContainer", "CreateContainerRequest", &sealpod__agent__v1__create_container_request__descriptor, R_CREATE_CONTAINER},
	{"StartContainer", "StartContainerRequest", &sealpod__agent__v1__start_container_request__descriptor, R_START_CONTAINER},
	{"RemoveContainer", "RemoveContainerRequest", &sealpod__agent__v1__remove_container_request__descriptor, R_REMOVE_CONTAINER},
	{"ExecProcess", "ExecProcessRequest", &sealpod__agent__v1__exec_process_request__descriptor, R_EXEC_PROCESS},
	{"SignalProcess", "SignalProcessRequest", &sealpod__agent__v1__signal_process_request__descriptor, R_SIGNAL_PROCESS},
	{"WaitProcess", "WaitProcessRequest", &sealpod__agent__v1__wait_process_request__descriptor, R_WAIT_PROCESS},
	{"ReadStdout", "ReadStdoutRequest", &sealpod__agent__v1__read_stream_request__descriptor, R_READ_STDOUT},
	{"ReadStderr", "ReadStderrRequest", &sealpod__agent__v1__read_stream_request__descriptor, R_READ_STDERR},
	{"WriteStdin", "WriteStreamRequest", &sealpod__agent__v1__write_stream_request__descriptor, R_WRITE_STDIN},
	{"CloseStdin", "CloseStdinRequest", &sealpod__agent__v1__close_stdin_request__descriptor, R_CLOSE_STDIN},
	{"TtyWinResize", "TtyWinResizeRequest", &sealpod__agent__v1__tty_win_resize_request__descriptor, R_TTY_WIN_RESIZE},
	{"StatsContainer", "StatsContainerRequest", &sealpod__agent__v1__stats_container_request__descriptor, R_STATS},
	{"ListProcesses", "ListProcessesRequest", &sealpod__agent__v1__list_processes_request__descriptor, R_LIST_PROCESSES},
	{"UpdateContainer", "UpdateContainerRequest", &sealpod__agent__v1__update_container_request__descriptor, R_UPDATE_CONTAINER},
	{"GetOOMEvent", "GetOOMEventRequest", &sealpod__agent__v1__get_oomevent_request__descriptor, R_OOM},
	{"GetGuestDetails", "GuestDetailsRequest", &sealpod__agent__v1__guest_details_request__descriptor, R_GUEST_DETAILS},
	{"SetPolicy", "SetPolicyRequest", &sealpod__agent__v1__set_policy_request__descriptor, R_SET_POLICY},
	{"CopyFile", "CopyFileRequest", &sealpod__agent__v1__copy_file_request__descriptor, R_COPY_FILE},
	{"GetReport", "GetReportRequest", &sealpod__agent__v1__get_report_request__descriptor, R_GET_REPORT},
	{"Check", "CheckRequest", &sealpod__agent__v1__check_request__descriptor, R_CHECK},
	{"UpdateInterface", "UpdateInterfaceRequest", &sealpod__agent__v1__update_interface_request__descriptor, R_NETWORK},
	{"UpdateRoutes", "UpdateRoutesRequest", &sealpod__agent__v1__update_routes_request__descriptor, R_NETWORK},
	/* No message in agent.proto: the policy can still refuse (or allow)
	 * it by name. */
	{"AddARPNeighbors", "AddARPNeighborsRequest", NULL, R_NETWORK},
};

const ProtobufCMessageDescriptor *sp_policy_request_descriptor(const char *name)
{
	if (!strcmp(name, "ReadStreamRequest"))
		return &sealpod__agent__v1__read_stream_request__descriptor;
	for (size_t i = 0; i < SP_ARRAY_LEN(reqs); i++)
		if (!strcmp(name, reqs[i].method) || !strcmp(name, reqs[i].message))
			return reqs[i].desc;
	return NULL;
}

#define M(type) ((const Sealpod__Agent__V1__##type *)msg)

static bool decide(const sp_policy *p, const sp_policy_state *s, struct sp_eval *e,
		   enum req r, const ProtobufCMessage *msg, sp_policy_change **ch)
{
	const struct cstate *c;
	if (!p && r != R_SET_POLICY && r != R_CHECK && r != R_GUEST_DETAILS)
		return sp_eval_deny(e, sp_xstrdup("SetPolicy first (no policy is in force)"),
				    sp_xstrdup(e->req), "request");
	switch (r) {
	case R_CHECK:
	case R_GUEST_DETAILS:
	case R_OOM:
	case R_DESTROY_SANDBOX:
		return true;
	case R_SET_POLICY:
		if (!eval_set_policy(p, s, e, M(SetPolicyRequest)))
			return false;
		*ch = change_new(CH_SET_POLICY, NULL, NULL, -1);
		return true;
	case R_CREATE_SANDBOX:
		return eval_create_sandbox(p, e, M(CreateSandboxRequest));
	case R_CREATE_CONTAINER: {
		const Sealpod__Agent__V1__CreateContainerRequest *cr = M(CreateContainerRequest);
		int idx = -1;
		if (!sp_policy_id_ok(cr->container_id))
			return sp_eval_deny(e, sp_xstrdup("an id of [A-Za-z0-9_.-], at most 128"),
					    quoted(cr->container_id), "container_id");
		if (state_find(s, cr->container_id))
			return sp_eval_deny(e, sp_xstrdup("a new container id"), quoted(cr->container_id),
					    "container_id");
		if (!sp_eval_create_container(p, e, cr, &idx))
			return false;
		*ch = change_new(CH_ADD_CONTAINER, cr->container_id, NULL, idx);
		return true;
	}
	case R_START_CONTAINER:
		return known(s, e, M(StartContainerRequest)->container_id) != NULL;
	case R_REMOVE_CONTAINER:
		/* The container is forgotten when its removal has finished
		 * (sp_policy_state_forget by the agent), not now. */
		return known(s, e, M(RemoveContainerRequest)->container_id) != NULL;
	case R_EXEC_PROCESS: {
		const Sealpod__Agent__V1__ExecProcessRequest *x = M(ExecProcessRequest);
		if (!(c = known(s, e, x->container_id)))
			return false;
		if (!sp_policy_id_ok(x->exec_id) || !strcmp(x->exec_id, c->id) || exec_known(c, x->exec_id))
			return sp_eval_deny(e, sp_xstrdup("a new exec id of [A-Za-z0-9_.-]"),
					    quoted(x->exec_id), "exec_id");
		if (!sp_eval_exec_process(p, e, &p->c[c->idx], x))
			return false;
		*ch = change_new(CH_ADD_EXEC, x->container_id, x->exec_id, c->idx);
		return true;
	}
	case R_SIGNAL_PROCESS:
		return (c = known(s, e, M(SignalProcessRequest)->container_id)) &&
		       process_known(e, c, M(SignalProcessRequest)->exec_id);
	case R_WAIT_PROCESS:
		return (c = known(s, e, M(WaitProcessRequest)->container_id)) &&
		       process_known(e, c, M(WaitProcessRequest)->exec_id);
	case R_READ_STDOUT:
	case R_READ_STDERR: {
		const Sealpod__Agent__V1__ReadStreamRequest *rs = M(ReadStreamRequest);
		if (!(c = known(s, e, rs->container_id)) || !process_known(e, c, rs->exec_id))
			return false;
		/* An allowed exec's output may be read (probes need it); the
		 * main process's output is the container's log. */
		bool main_proc = !rs->exec_id[0] || !strcmp(rs->exec_id, c->id);
		if (main_proc && !p->c[c->idx].logs)
			return sp_eval_deny(e, sp_xstrdup("no log reading (logs is false)"),
					    sp_xstrdup(r == R_READ_STDOUT ? "ReadStdout" : "ReadStderr"),
					    "containers[%s].logs", p->c[c->idx].name);
		return true;
	}
	case R_WRITE_STDIN:
		if (!(c = known(s, e, M(WriteStreamRequest)->container_id)) ||
		    !process_known(e, c, M(WriteStreamRequest)->exec_id))
			return false;
		if (!p->c[c->idx].stdin_)
			return sp_eval_deny(e, sp_xstrdup("no stdin (stdin is false)"), sp_xstrdup("WriteStdin"),
					    "containers[%s].stdin", p->c[c->idx].name);
		return true;
	case R_CLOSE_STDIN:
		return (c = known(s, e, M(CloseStdinRequest)->container_id)) &&
		       process_known(e, c, M(CloseStdinRequest)->exec_id);
	case R_TTY_WIN_RESIZE:
		return (c = known(s, e, M(TtyWinResizeRequest)->container_id)) &&
		       process_known(e, c, M(TtyWinResizeRequest)->exec_id);
	case R_STATS:
		return need(e, p->stats, "stats") && known(s, e, M(StatsContainerRequest)->container_id);
	case R_LIST_PROCESSES:
		return need(e, p->list_processes, "list_processes") &&
		       known(s, e, M(ListProcessesRequest)->container_id);
	case R_UPDATE_CONTAINER:
		return need(e, p->update_container, "update_container") &&
		       (c = known(s, e, M(UpdateContainerRequest)->container_id)) &&
		       eval_update_container(p, e, &p->c[c->idx], M(UpdateContainerRequest));
	case R_COPY_FILE:
		return eval_copy_file(p, e, M(CopyFileRequest));
	case R_GET_REPORT:
		return need(e, p->report, "report");
	case R_NETWORK:
		/* The pod's network is set up with the sandbox, before any
		 * workload runs (docs/network.md): a host that re-addresses or
		 * re-routes a running pod is refused. The agent validates the
		 * contents (only its own devices, no loopback takeover). */
		if (!need(e, p->network, "network"))
			return false;
		if (s && s->ever_container)
			return sp_eval_deny(e, sp_xstrdup("network changes only before the first container"),
					    sp_xasprintf("%s after CreateContainer", e->req), "policy.requests.network");
		return true;
	}
	return sp_eval_deny(e, sp_xstrdup("a request the policy describes"), sp_xstrdup(e->req), "request");
}

int sp_policy_state_commit(sp_policy_state *s, sp_policy_change *ch)
{
	int rc = 0;
	if (!ch)
		return 0;
	struct cstate *c = ch->cid ? state_find(s, ch->cid) : NULL;
	switch (ch->kind) {
	case CH_SET_POLICY:
		s->set_policies++;
		break;
	case CH_ADD_CONTAINER:
		/* The id was free when decided; if another request took it
		 * meanwhile, that one keeps it. */
		if (c) {
			rc = -EEXIST;
			break;
		}
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 8;
			s->c = sp_xrealloc(s->c, s->cap * sizeof(*s->c));
		}
		s->c[s->n++] = (struct cstate){.id = sp_steal_ptr(&ch->cid), .idx = ch->idx};
		/* The agent commits when it claims the id, before creating. */
		s->ever_container = true;
		break;
	case CH_ADD_EXEC:
		/* The container must still be the one decided on. */
		if (!c || c->idx != ch->idx) {
			rc = -ENOENT;
			break;
		}
		if (exec_known(c, ch->eid))
			break;
		c->execs = sp_xrealloc(c->execs, (c->n_execs + 1) * sizeof(char *));
		c->execs[c->n_execs++] = sp_steal_ptr(&ch->eid);
		break;
	}
	sp_policy_change_free(ch);
	return rc;
}

int sp_policy_eval(const sp_policy *p, sp_policy_state *state, const char *name,
		   const ProtobufCMessage *msg, sp_policy_decision *d)
{
	sp_policy_change *ch = NULL;
	int rc = sp_policy_decide(p, state, name, msg, d, &ch);
	if (rc == 0 && d->allow) {
		sp_policy_state_commit(state, ch);
		/* A removal that acts at once: the container is gone now. */
		if (msg && msg->descriptor == &sealpod__agent__v1__remove_container_request__descriptor)
			sp_policy_state_forget(state, M(RemoveContainerRequest)->container_id);
	} else {
		sp_policy_change_free(ch);
	}
	return rc;
}

int sp_policy_decide(const sp_policy *p, const sp_policy_state *state, const char *name,
		     const ProtobufCMessage *msg, sp_policy_decision *d,
		     sp_policy_change **change)
{
	sp_policy_change *ch = NULL;
	*change = NULL;
	memset(d, 0, sizeof(*d));
	struct sp_eval e = {.d = d, .req = name ? name : "(unnamed request)"};
	const struct reqdef *def = NULL;
	for (size_t i = 0; name && i < SP_ARRAY_LEN(reqs); i++)
		if (!strcmp(name, reqs[i].method) || !strcmp(name, reqs[i].message))
			def = &reqs[i];
	if (!def) {
		if (name && !strcmp(name, "ReadStreamRequest"))
			sp_eval_deny(&e, sp_xstrdup("ReadStdout or ReadStderr (say which stream)"),
				     sp_xstrdup(name), "request");
		else
			sp_eval_deny(&e, sp_xstrdup("a request the policy describes"),
				     sp_xstrdup(name ? name : "(none)"), "request");
		return 0;
	}
	if (def->desc && (!msg || msg->descriptor != def->desc))
		return -EINVAL;
	if (!state)
		return -EINVAL;
	d->allow = decide(p, state, &e, def->r, msg, &ch);
	if (d->message)
		d->allow = false; /* a recorded mismatch always wins */
	if (!d->allow && !d->message)
		sp_eval_deny(&e, sp_xstrdup("an allowed request"), sp_xstrdup("?"), "request");
	if (d->allow)
		*change = ch;
	else
		sp_policy_change_free(ch);
	return 0;
}
