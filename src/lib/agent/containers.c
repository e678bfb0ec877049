/* SPDX-License-Identifier: Apache-2.0 */
/* Container and process handlers, over the container engine (oci.h). They run with the agent lock
 * held, after the policy allowed the request. Blocking calls wait on the
 * agent's condition variable, holding a reference on their container, and
 * look their process up again in it after every wait: it may have been
 * removed meanwhile. Container lifecycle: see agent_internal.h and
 * docs/agent.md. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>

#include "agent_internal.h"
#include "sealpod/dns.h"
#include "sealpod/file.h"
#ifdef SP_AGENT_HAVE_POLICY
#include "sealpod/policy.h"
#endif
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/oci.h"
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

static int still_starting(reply *r, const char *method, const proc *p)
{
	return reply_err(r, SP_RPC_FAILED_PRECONDITION,
			 "%s: process `%s` of container `%s` is still being started (its ExecProcess has not returned)",
			 method, p->exec_id, p->c->id);
}

static int lookup_rc(reply *r)
{
	if (r->msg && strstr(r->msg, ": no "))
		return SP_RPC_NOT_FOUND;
	return SP_RPC_INVALID_ARGUMENT;
}

/* An exec process that was waited for and whose output was read to the
 * end is forgotten, so its slot can be reused; the policy forgets its id
 * with it (the record stays bounded). */
void maybe_forget_exec(sp_agent *a, proc *p)
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
	gate_forget_exec(a, c->id, p->exec_id);
	proc_bury(a, p);
}

static void container_free(container *c)
{
	sp_container_free(c->ct);
	json_decref(c->secrets);
	free(c->id);
	free(c->name);
	free(c->rootfs);
	free(c->bundle);
	free(c);
}

static container *container_ref(container *c)
{
	c->refs++;
	return c;
}

static void container_unref(container *c)
{
	if (--c->refs == 0)
		container_free(c);
}

/* For blocking calls: the first call looks the process up by id and holds
 * its container; after a wait, the process is looked up again in that same
 * container only. The call never moves on to a later container of the same
 * id, which the policy may have allowed under another entry (logs, stdin,
 * execs). Release *held with container_unref. */
static proc *lookup_held(sp_agent *a, const char *method, const char *cid,
			 const char *eid, container **held, reply *r)
{
	if (!*held) {
		proc *p = lookup(a, method, cid, eid, r);
		if (p)
			*held = container_ref(p->c);
		return p;
	}
	if ((*held)->phase == CP_GONE) {
		no_container(r, method, cid);
		return NULL;
	}
	proc *p = proc_find(*held, eid);
	if (!p)
		no_process(r, method, cid, eid ? eid : "");
	return p;
}

static void kill_all(container *c, int sig);

/* A wait on the agent's condition of at most ms, also while stopping
 * (agent_wait returns at once then). */
static void wait_plain(sp_agent *a, unsigned ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

/* Until no proc_start runs on c (lock held, dropped while waiting). A
 * start ends once its child has exec'd or died: what it put in c's
 * cgroup is killed meanwhile. */
static void wait_starts(sp_agent *a, container *c)
{
	while (c->starting) {
		kill_all(c, SIGKILL);
		wait_plain(a, 100);
	}
}

/* Finishes a removal: c is CP_REMOVING, every process exited, the caller
 * holds a reference. The engine's state, the rootfs and the bundle are
 * deleted without the agent lock (slow disk work); then the id is
 * released, in the table and in the policy state at once. */
static void container_finish(sp_agent *a, container *c)
{
	/* Once only: a forced finish while stopping (containers_destroy_all)
	 * may overtake a removal in progress. */
	if (c->finishing || c->phase == CP_GONE)
		return;
	c->finishing = true;
	/* A process start still in the engine uses ct, the bundle and the
	 * rootfs: wait for it (only a forced finish can get here with one). */
	wait_starts(a, c);
	proc *p = c->procs;
	c->procs = NULL;
	c->n_execs = 0;
	while (p) {
		proc *n = p->next;
		proc_bury(a, p);
		p = n;
	}
	struct sp_container *ct = c->ct;
	c->ct = NULL;
	/* id, bundle and rootfs do not change any more: read unlocked. */
	pthread_mutex_unlock(&a->lock);
	if (ct) {
		/* Every process is gone: this removes the cgroup and the
		 * engine's state (mounts died with the mount namespace). */
		_cleanup_err_ sp_err *e = NULL;
		if (sp_container_delete(ct, true, &e) < 0)
			sp_log_warn("remove container `%s`: %s", c->id, sp_err_msg(e));
		sp_container_free(ct);
	}
	if (c->bundle) {
		if (c->rootfs_owned)
			umount2(c->rootfs, MNT_DETACH);
		_cleanup_err_ sp_err *e = NULL;
		if (sp_rm_rf(c->bundle, &e) < 0)
			sp_log_warn("remove container `%s`: %s", c->id, sp_err_msg(e));
	}
	pthread_mutex_lock(&a->lock);
	for (container **pp = &a->containers; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			a->n_containers--;
			break;
		}
	c->next = NULL;
	gate_forget(a, c->id);
	c->phase = CP_GONE;
	agent_broadcast(a);
	container_unref(c); /* the table's reference */
}

static void kill_all(container *c, int sig)
{
	/* Every process in the container's cgroup, then each one the agent
	 * knows (in case the cgroup could not be read). */
	if (c->ct)
		sp_container_kill(c->ct, sig, true, NULL);
	for (proc *p = c->procs; p; p = p->next)
		if (p->pid > 0 && p->state != PROC_EXITED)
			kill(p->pid, sig);
}

/* Every process exited and no start is under way (one could add one). */
static bool all_exited(container *c)
{
	if (c->starting)
		return false;
	for (proc *p = c->procs; p; p = p->next)
		if (p->pid > 0 && p->state != PROC_EXITED)
			return false;
	return true;
}

/* SIGTERM and up to timeout_s seconds (when > 0 and processes run), then
 * SIGKILL until every process exited and no process start (proc_start,
 * unlocked) is under way. The caller holds a reference. SP_ERR_SYSTEM
 * when one survives SIGKILL for 10 s; SP_ERR_STATE when a start has not
 * returned by then (it waits for the engine, behind another start). */
static int kill_and_wait(sp_agent *a, container *c, unsigned timeout_s,
			 uint64_t deadline)
{
	if (!all_exited(c) && timeout_s > 0) {
		kill_all(c, SIGTERM);
		uint64_t dl = min_deadline(deadline, sp_now_ns() + timeout_s * NS_PER_S);
		while (!all_exited(c) && agent_wait(a, dl))
			;
	}
	/* Killing cannot be refused; waiting for the kernel is bounded. */
	uint64_t dl = sp_now_ns() + 10 * NS_PER_S;
	while (!all_exited(c)) {
		kill_all(c, SIGKILL);
		pthread_mutex_unlock(&a->lock);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&a->lock);
		if (sp_now_ns() > dl)
			return c->starting ? SP_ERR_STATE : SP_ERR_SYSTEM;
	}
	return 0;
}

/* Removes c (lock held). 0 once it is gone; SP_ERR_SYSTEM when a process
 * survived SIGKILL, SP_ERR_STATE when a process start (ExecProcess) did
 * not return in time (the container stays; a later removal tries again);
 * SP_ERR_TIMEOUT when c is being created or removed by another request
 * that did not finish before the deadline (that request finishes the
 * removal: the creating one when its image pull returns). */
static int container_remove(sp_agent *a, container *c, unsigned timeout_s,
			    uint64_t deadline)
{
	int rc = 0;
	container_ref(c);
	if (c->phase == CP_LIVE) {
		c->phase = CP_REMOVING;
		rc = kill_and_wait(a, c, timeout_s, deadline);
		if (rc == 0) {
			container_finish(a, c);
		} else if (c->phase == CP_REMOVING && !c->finishing) {
			c->phase = CP_LIVE;
			agent_broadcast(a);
		}
	} else {
		if (c->phase == CP_CREATING)
			c->phase = CP_REMOVING; /* the creator gives up and finishes */
		uint64_t dl = min_deadline(deadline, sp_now_ns() + (timeout_s + 30ull) * NS_PER_S);
		while (c->phase == CP_REMOVING && agent_wait(a, dl))
			;
		rc = c->phase == CP_GONE ? 0
		     : c->phase == CP_LIVE ? SP_ERR_SYSTEM : SP_ERR_TIMEOUT;
	}
	container_unref(c);
	return rc;
}

void containers_destroy_all(sp_agent *a)
{
	/* Called while stopping: agent_wait returns at once, so this kills. */
	while (a->containers) {
		container *c = a->containers;
		if (c->finishing) {
			/* Another request finishes it (disk work, unlocked):
			 * let it take the lock. */
			wait_plain(a, 100);
			continue;
		}
		if (container_remove(a, c, 0, 0) < 0 && a->containers == c) {
			/* It survived SIGKILL, or a request that never returned
			 * holds it: release it anyway (the holder keeps the
			 * memory until it lets go). */
			container_ref(c);
			c->phase = CP_REMOVING;
			container_finish(a, c);
			container_unref(c);
		}
	}
}

int containers_remove_all(sp_agent *a, uint64_t deadline, char **stuck)
{
	while (a->containers) {
		container *c = a->containers;
		int rc = container_remove(a, c, 0, deadline);
		if (rc < 0) {
			*stuck = sp_xstrdup(c->id);
			return rc;
		}
	}
	return 0;
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
			if (!s->source || s->source[0] != '/' ||
			    (!a->native && strncmp(s->source, "/dev/", 5) != 0))
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateContainer: storage %zu: oci-store source `%.64s` must be a block device path /dev/...",
						 i, s->source ? s->source : "");
			store = s;
		} else if (!strcmp(d, "registry")) {
			if (!registry_source_ok(s->source))
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateContainer: storage %zu: registry source `%.64s` must be https://host[:port] (or http://10.0.2.2:port, the host through QEMU user networking)",
						 i, s->source ? s->source : "");
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
		if (store && !strcmp(store->driver, "registry"))
			spec = sp_xasprintf("registry:%s", store->source);
		else if (store && store->source && store->source[0] == '/')
			spec = sp_xasprintf("tar:%s", store->source);
		else if (a->pod_store)
			spec = sp_xstrdup(a->pod_store);
		else if (a->image_store)
			spec = strchr(a->image_store, ':') ? sp_xstrdup(a->image_store)
							   : sp_xasprintf("dir:%s", a->image_store);
		else
			spec = sp_xstrdup("registry:");
		/* A registry is as untrusted as a disk: every byte is checked
		 * against the pinned digest. Plain http is what QEMU user
		 * networking offers; the image module allows it only to
		 * 10.0.2.2 (the host) and loopback. */
		bool registry = !strncmp(spec, "registry:", 9);
		_cleanup_free_ char *ca = NULL;
		if (registry && agent_registry_ca(a, spec + 9, &ca, &e) < 0)
			return reply_sp_err(r, e, "CreateContainer: image registry");
		struct sp_image_store_opts so = {.version = SP_IMAGE_STORE_OPTS_VERSION,
						 .insecure_http = true, .ca_file = ca};
		/* Registry names resolve through the pod's resolv.conf (CRI's
		 * DNSConfig, written by CreateSandbox) with the library's stub
		 * resolver: the guest has no NSS, and answers are only hints
		 * (TLS and the digests decide). */
		_cleanup_free_ char *sbd = sandbox_dir(a);
		_cleanup_free_ char *resolv = sp_xasprintf("%s/etc/resolv.conf", sbd);
		sp_dns_conf dc;
		if (registry && sp_dns_conf_load(&dc, resolv, NULL) == 0)
			so.resolv_conf = resolv;
		/* The registry's credentials, if the host gave them (option
		 * "auth=" base64 user:password): sent to its host only. */
		_cleanup_free_ char *user = NULL, *pass = NULL;
		if (registry && store && store->n_options == 1 &&
		    !strncmp(store->options[0], "auth=", 5)) {
			if (sp_image_auth_decode(store->options[0] + 5, &user, &pass, &e) < 0)
				return reply_sp_err(r, e, "CreateContainer: registry storage option auth");
			so.username = user;
			so.password = pass;
		}
		/* The pod's network when it has the device, else the uplink. */
		__attribute__((cleanup(agent_pull_net_leave))) int saved_ns = -1;
		if (registry && agent_pull_net_enter(a, &saved_ns, &e) < 0)
			return reply_sp_err(r, e, "CreateContainer: image registry");
		char *dest = sp_xasprintf("%s/rootfs", c->bundle);
		struct sp_image_limits lim = {.version = SP_IMAGE_LIMITS_VERSION};
		/* Opening the store (a disk, a registry) and pulling take
		 * long: other calls run meanwhile. The caller holds a
		 * reference on c; a RemoveContainer meanwhile only marks it. */
		pthread_mutex_unlock(&a->lock);
		sp_image_store *st = NULL;
		int rc = sp_image_store_open(&st, spec, registry ? &so : NULL, &e);
		bool opened = rc == 0;
		if (opened)
			rc = sp_image_pull(st, q->image, ref->digest, dest, &lim, NULL, &e);
		sp_image_store_close(st);
		pthread_mutex_lock(&a->lock);
		if (rc < 0 && !opened) {
			free(dest);
			return reply_sp_err(r, e, "CreateContainer: image store");
		}
		if (rc < 0) {
			free(dest);
			if (!ca)
				return reply_sp_err(r, e, "CreateContainer: image");
			_cleanup_free_ char *what = sp_xasprintf(
				"CreateContainer: image from %s (trusting only the CA policy.registries gives for it)",
				spec + 9);
			return reply_sp_err(r, e, what);
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

/* RemoveContainer (or DestroySandbox) came while CreateContainer had the
 * lock dropped: the creation gives up, and finishing the removal is its. */
static int removed_while_creating(const container *c, reply *r)
{
	return reply_err(r, SP_RPC_ABORTED,
			 "CreateContainer: container `%s` was removed while it was being created",
			 c->id);
}

int h_create_container(sp_agent *a, const ACreateContainer *q, void **change,
		       reply *r)
{
	if (!valid_id(q->container_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: container_id must be 1-128 characters [A-Za-z0-9_.-]");
	/* Refused before anything is recorded: the dispatcher drops the
	 * policy's pending change. */
	if (container_find(a, q->container_id))
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "CreateContainer: container `%s` already exists (or its removal has not finished)",
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
	json_t *process = json_object_get(spec, "process");
	if (!json_is_object(process))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateContainer: oci_spec.process must be an object");
	bool terminal = json_is_true(json_object_get(process, "terminal"));
	_cleanup_free_ char *text = NULL;

	/* Claim the id now, in the table and in the policy state together:
	 * an image pull below drops the lock. From here on a failure
	 * releases both (container_finish). */
	if (gate_commit(a, change) < 0)
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "CreateContainer: container `%s` already exists",
				 q->container_id);
	container *c = sp_xzalloc(sizeof(*c));
	c->id = sp_xstrdup(q->container_id);
	c->name = sp_xstrdup(q->container_name ? q->container_name : "");
	c->bundle = sp_xasprintf("%s/containers/%s", a->state_dir, c->id);
	c->phase = CP_CREATING;
	c->refs = 2; /* the table's and this request's */
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
	if (c->phase != CP_CREATING) {
		/* RemoveContainer (or DestroySandbox) came while the lock was
		 * dropped: give up; finishing the removal is ours. */
		rc = removed_while_creating(c, r);
		goto fail;
	}
	if (rc != 0)
		goto fail;
	/* Sealed secrets: unsealed after the policy decision, before the
	 * engine sees the spec; the lock is dropped for the broker. */
	int pidx = -1;
#ifdef SP_AGENT_HAVE_POLICY
	pidx = a->policy_state ? sp_policy_state_container(a->policy_state, c->id) : -1;
#endif
	/* Sealed Secret volume files: the container mounts its own copy. */
	if (agent_unseal_env(a, pidx, process, &c->secrets, &e) < 0 ||
	    (c->phase == CP_CREATING && agent_unseal_volumes(a, c->bundle, spec, &e) < 0)) {
		rc = c->phase != CP_CREATING ? removed_while_creating(c, r)
					     : reply_sp_err(r, e, "CreateContainer");
		goto fail;
	}
	if (c->phase != CP_CREATING) {
		rc = removed_while_creating(c, r);
		goto fail;
	}
	/* After the pull (the lock was dropped): the sandbox may have
	 * changed meanwhile, so the pod's paths are resolved only now. */
	if (sandbox_prepare_spec(a, spec, c->id, &e) < 0) {
		rc = reply_sp_err(r, e, "CreateContainer: oci_spec");
		goto fail;
	}
	text = json_dumps(spec, JSON_COMPACT);
	if (!text)
		sp_oom();
	/* The engine creates the container without the lock (proc_start);
	 * the id stays CP_CREATING meanwhile. */
	proc *p = proc_new(c, "");
	int started = proc_start(a, p, text, strlen(text), terminal, &e);
	if (c->secrets)
		explicit_bzero(text, strlen(text));
	if (p->pid > 0)
		c->procs = p; /* from now on collected and freed with c */
	else
		proc_bury(a, p);
	if (started < 0) {
		if (p->pid > 0)
			kill(p->pid, SIGKILL);
		rc = reply_sp_err(r, e, "CreateContainer");
		goto fail;
	}
	if (c->phase != CP_CREATING) {
		rc = removed_while_creating(c, r);
		goto fail;
	}
	c->state = C_CREATED;
	c->phase = CP_LIVE;
	agent_broadcast(a);
	sp_log_info("container %s created (pid %d)", c->id, p->pid);
	container_unref(c);
	return reply_empty(r);
fail:
	if (c->phase != CP_GONE) {
		c->phase = CP_REMOVING;
		if (kill_and_wait(a, c, 0, 0) < 0)
			sp_log_warn("container `%s`: a process survived SIGKILL", c->id);
		container_finish(a, c);
	}
	container_unref(c);
	return rc;
}

int h_start_container(sp_agent *a, const AStartContainer *q, reply *r)
{
	proc *p = lookup(a, "StartContainer", q->container_id, "", r);
	if (!p)
		return lookup_rc(r);
	container *c = p->c;
	if (c->phase != CP_LIVE || c->state != C_CREATED || !c->ct)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "StartContainer: container `%s` is not in the created state",
				 c->id);
	_cleanup_err_ sp_err *e = NULL;
	if (sp_container_start(c->ct, &e) < 0)
		return reply_sp_err(r, e, "StartContainer");
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
	container *c = container_find(a, q->container_id);
	if (!c)
		return no_container(r, "RemoveContainer", q->container_id);
	unsigned t = q->timeout > 3600 ? 3600 : q->timeout;
	int rc = container_remove(a, c, t, deadline);
	if (rc == SP_ERR_STATE)
		return reply_err(r, SP_RPC_UNAVAILABLE,
				 "RemoveContainer: container `%s` is starting a process (ExecProcess) that has not returned; nothing was removed, try again",
				 q->container_id);
	if (rc == SP_ERR_TIMEOUT) {
		int w = reply_wait_end(a, r, "RemoveContainer");
		return w ? w : reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					 "RemoveContainer: container `%s` is still being created or removed by another request (an image pull that has not returned); its removal finishes when that request ends",
					 q->container_id);
	}
	if (rc < 0)
		return reply_err(r, SP_RPC_INTERNAL,
				 "RemoveContainer: container `%s` did not die after SIGKILL",
				 q->container_id);
	sp_log_info("container %s removed", q->container_id);
	return reply_empty(r);
}

int h_exec_process(sp_agent *a, const AExecProcess *q, void **change,
		   reply *r)
{
	if (!valid_id(q->container_id) || !valid_id(q->exec_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "ExecProcess: container_id and exec_id must be 1-128 characters [A-Za-z0-9_.-]");
	container *c = container_find(a, q->container_id);
	if (!c)
		return no_container(r, "ExecProcess", q->container_id);
	if (c->phase != CP_LIVE || c->state != C_RUNNING)
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
	if (!json_is_object(pj))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "ExecProcess: process must be a JSON object (runtime-spec process)");
	bool terminal = json_is_true(json_object_get(pj, "terminal"));
	bool unsealed = false;
	if (agent_unseal_exec_env(c->secrets, pj, &unsealed, &e) < 0)
		return reply_sp_err(r, e, "ExecProcess");
	_cleanup_free_ char *ptext = unsealed ? json_dumps(pj, JSON_COMPACT) : NULL;
	if (unsealed && !ptext)
		sp_oom();
	/* The exec id is taken now (PROC_STARTING); the engine starts the
	 * process without the lock, holding a reference on c. c's removal
	 * meanwhile kills what the start put in its cgroup and waits for it
	 * (all_exited); p stays linked until the start returned. */
	proc *p = proc_new(c, q->exec_id);
	p->next = c->procs->next;
	c->procs->next = p;
	c->n_execs++;
	container_ref(c);
	int rc = proc_start(a, p, ptext ? ptext : (const char *)q->process.data,
			    ptext ? strlen(ptext) : q->process.len, terminal, &e);
	if (ptext)
		explicit_bzero(ptext, strlen(ptext));
	if (p->pid <= 0) {
		/* Nothing started: the id is free again, nothing recorded. */
		for (proc **pp = &c->procs; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		c->n_execs--;
		proc_bury(a, p);
		rc = c->phase != CP_LIVE
			     ? reply_err(r, SP_RPC_ABORTED,
					 "ExecProcess: container `%s` is being removed",
					 q->container_id)
			     : reply_sp_err(r, e, "ExecProcess");
		container_unref(c);
		return rc;
	}
	/* Linked even if the terminal never came (it was killed): its exit
	 * is collected like any other. */
	if (c->phase != CP_LIVE) {
		/* The removal began meanwhile: the process goes with the
		 * container; its id is never recorded. */
		kill(p->pid, SIGKILL);
		rc = reply_err(r, SP_RPC_ABORTED,
			       "ExecProcess: container `%s` is being removed; exec `%s` was killed",
			       q->container_id, q->exec_id);
		container_unref(c);
		return rc;
	}
	/* The process exists: the policy records its id (until the agent
	 * forgets the process, maybe_forget_exec). */
	gate_commit(a, change);
	container_unref(c);
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
	if (p->state == PROC_STARTING)
		return still_starting(r, "SignalProcess", p);
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
	container *held = NULL;
	int rc;
	for (;;) {
		proc *p = lookup_held(a, "WaitProcess", q->container_id, q->exec_id, &held, r);
		if (!p) {
			rc = lookup_rc(r);
			break;
		}
		if (p->state == PROC_EXITED) {
			Sealpod__Agent__V1__WaitProcessResponse m =
				SEALPOD__AGENT__V1__WAIT_PROCESS_RESPONSE__INIT;
			m.status = p->status;
			p->waited = true;
			rc = reply_msg(r, &m.base);
			maybe_forget_exec(a, p);
			break;
		}
		if (!agent_wait(a, deadline)) {
			rc = reply_wait_end(a, r, "WaitProcess") ?:
				reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					  "WaitProcess: process `%s` of container `%s` is still running at the deadline",
					  q->exec_id, q->container_id);
			break;
		}
	}
	if (held)
		container_unref(held);
	return rc;
}

int h_read_stream(sp_agent *a, const AReadStream *q, int which,
		  uint64_t deadline, reply *r)
{
	const char *name = which == 1 ? "ReadStdout" : "ReadStderr";
	size_t max = q->len ? q->len : AGENT_DEFAULT_READ;
	if (max > AGENT_MAX_READ)
		max = AGENT_MAX_READ;
	container *held = NULL;
	int rc;
	for (;;) {
		proc *p = lookup_held(a, name, q->container_id, q->exec_id, &held, r);
		if (!p) {
			rc = lookup_rc(r);
			break;
		}
		stream *s = which == 1 ? &p->out : &p->err;
		if (s->len > 0 || s->eof) {
			Sealpod__Agent__V1__ReadStreamResponse m =
				SEALPOD__AGENT__V1__READ_STREAM_RESPONSE__INIT;
			_cleanup_free_ uint8_t *buf = sp_xmalloc(max);
			m.data.len = stream_take(s, buf, max);
			m.data.data = buf;
			stream_resume(a, s);
			rc = reply_msg(r, &m.base);
			if (m.data.len == 0)
				maybe_forget_exec(a, p);
			break;
		}
		if (!agent_wait(a, deadline)) {
			rc = reply_wait_end(a, r, name) ?:
				reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					  "%s: no output before the deadline", name);
			break;
		}
	}
	if (held)
		container_unref(held);
	return rc;
}

static int write_stdin(sp_agent *a, const AWriteStream *q, uint64_t deadline,
		       container **held, reply *r)
{
	size_t done = 0;
	for (;;) {
		proc *p = lookup_held(a, "WriteStdin", q->container_id, q->exec_id, held, r);
		if (!p)
			return lookup_rc(r);
		if (p->state == PROC_STARTING) {
			/* Its ExecProcess has not returned: wait for the pipe. */
			if (!agent_wait(a, deadline))
				return reply_wait_end(a, r, "WriteStdin") ?:
					reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
						  "WriteStdin: process `%s` was still being started at the deadline",
						  q->exec_id);
			continue;
		}
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
		if ((deadline && now >= deadline) || a->stopping || agent_cancelled()) {
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

int h_write_stdin(sp_agent *a, const AWriteStream *q, uint64_t deadline,
		  reply *r)
{
	container *held = NULL;
	int rc = write_stdin(a, q, deadline, &held, r);
	if (held)
		container_unref(held);
	return rc;
}

int h_close_stdin(sp_agent *a, const ACloseStdin *q, reply *r)
{
	proc *p = lookup(a, "CloseStdin", q->container_id, q->exec_id, r);
	if (!p)
		return lookup_rc(r);
	if (p->state == PROC_STARTING)
		return still_starting(r, "CloseStdin", p);
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
	if (p->state == PROC_STARTING)
		return still_starting(r, "TtyWinResize", p);
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

/* The engine's statistics for a container's cgroup. */
static int cgroup_stats(container *c, sp_container_stats *st, sp_err **err)
{
	memset(st, 0, sizeof(*st));
	if (!c->ct)
		return sp_error(err, SP_ERR_STATE, "container `%s` has no cgroup yet", c->id);
	return sp_container_stats_get(c->ct, st, err);
}

int h_stats_container(sp_agent *a, const AStatsContainer *q, reply *r)
{
	proc *p = lookup(a, "StatsContainer", q->container_id, "", r);
	if (!p)
		return lookup_rc(r);
	sp_container_stats st;
	_cleanup_err_ sp_err *e = NULL;
	if (cgroup_stats(p->c, &st, &e) < 0)
		return reply_sp_err(r, e, "StatsContainer");
	Sealpod__Agent__V1__StatsContainerResponse m =
		SEALPOD__AGENT__V1__STATS_CONTAINER_RESPONSE__INIT;
	m.cpu_usage_ns = st.cpu_usage_ns;
	m.memory_usage_bytes = st.mem_usage;
	m.memory_limit_bytes = st.mem_limit;
	m.pids_current = st.pids_current;
	m.oom_kill_count = st.oom_kills;
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
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	_cleanup_err_ sp_err *e = NULL;
	if (p->c->ct && sp_container_pids(p->c->ct, &pids, &n, &e) < 0)
		return reply_sp_err(r, e, "ListProcesses");
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	sp_buf_printf(&b, json ? "[" : "PID\tEXEC_ID\tSTATE\n");
	for (size_t i = 0; i < n; i++) {
		if (json) {
			sp_buf_printf(&b, "%s%d", i ? "," : "", (int)pids[i]);
			continue;
		}
		/* The processes the agent started have names; their
		 * children are "-". */
		const char *eid = "-", *state = "running";
		for (proc *x = p->c->procs; x; x = x->next)
			if (x->pid == pids[i] && x->state != PROC_EXITED) {
				eid = x->exec_id[0] ? x->exec_id : "(init)";
				state = x->state == PROC_CREATED ? "created" : "running";
			}
		sp_buf_printf(&b, "%d\t%s\t%s\n", (int)pids[i], eid, state);
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
	if (!valid_id(q->container_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "UpdateContainer: container_id must be 1-128 characters [A-Za-z0-9_.-]");
	container *c = container_find(a, q->container_id);
	if (!c)
		return no_container(r, "UpdateContainer", q->container_id);
	if (c->phase != CP_LIVE || !c->ct || c->state == C_STOPPED)
		return reply_err(r, SP_RPC_FAILED_PRECONDITION,
				 "UpdateContainer: container `%s` is not running", c->id);
	_cleanup_err_ sp_err *e = NULL;
	if (sp_container_update(c->ct, (const char *)q->resources.data,
				q->resources.len, &e) < 0)
		return reply_sp_err(r, e, "UpdateContainer");
	return reply_empty(r);
}

/* OOM kills are counted by the cgroup; the kernel does not tell the agent,
 * so a waiting GetOOMEvent looks every second (and at every change). */
int h_get_oom_event(sp_agent *a, uint64_t deadline, reply *r)
{
	for (;;) {
		for (container *c = a->containers; c; c = c->next) {
			sp_container_stats st;
			if (!c->ct || cgroup_stats(c, &st, NULL) < 0 ||
			    st.oom_kills <= c->oom_seen)
				continue;
			c->oom_seen = st.oom_kills;
			Sealpod__Agent__V1__OOMEvent m = SEALPOD__AGENT__V1__OOMEVENT__INIT;
			m.container_id = c->id;
			return reply_msg(r, &m.base);
		}
		uint64_t tick = sp_now_ns() + NS_PER_S;
		if (!agent_wait(a, min_deadline(deadline, tick)) &&
		    (a->stopping || agent_cancelled() || (deadline && sp_now_ns() >= deadline)))
			return reply_wait_end(a, r, "GetOOMEvent") ?:
				reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					    "GetOOMEvent: no OOM event before the deadline");
	}
}
