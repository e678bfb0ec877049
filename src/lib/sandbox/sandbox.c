/* SPDX-License-Identifier: Apache-2.0 */
/* Pod sandbox lifecycle and the host side of the agent API. A sandbox owns
 * one thread that launches the guest (through a backend), watches it and
 * tears it down: a VMM started with PR_SET_PDEATHSIG dies with the thread
 * that forked it, so that thread must live exactly as long as the pod. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "agent.pb-c.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/image.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sandbox-internal.h"

#define AGENT_SERVICE "sealpod.agent.v1.AgentService"
#define SEC 1000000000ull
/* Creating a container pulls and verifies its image in the guest: slow
 * under TCG. */
#define CREATE_TIMEOUT (600 * SEC)
#define CALL_TIMEOUT (60 * SEC)

int sp_sandbox_agent_call(sp_sandbox *sb, const char *method,
			  const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc,
			  ProtobufCMessage **resp, uint64_t timeout_ns,
			  sp_err **err)
{
	if (!sb->agent)
		return sp_error(err, SP_ERR_STATE,
				"sandbox %s: the guest agent is not connected", sb->id);
	size_t len = protobuf_c_message_get_packed_size(req);
	_cleanup_free_ uint8_t *buf = sp_xmalloc(len ? len : 1);
	protobuf_c_message_pack(req, buf);
	_cleanup_free_ uint8_t *out = NULL;
	size_t out_len = 0;
	if (sp_ttrpc_client_call(sb->agent, AGENT_SERVICE, method, buf, len,
				 NULL, 0, timeout_ns, &out, &out_len, NULL,
				 err) < 0)
		return sp_error_wrap(err, "sandbox %s: agent", sb->id);
	if (resp_desc && resp) {
		*resp = protobuf_c_message_unpack(resp_desc, NULL, out_len, out);
		if (!*resp)
			return sp_error(err, SP_ERR_PROTOCOL,
					"sandbox %s: agent %s: malformed %s response",
					sb->id, method, resp_desc->name);
	}
	return 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

static void *sandbox_thread(void *arg)
{
	sp_sandbox *sb = arg;
	sp_err *e = NULL;
	int r = sb->be->launch(sb, &e);
	pthread_mutex_lock(&sb->mu);
	if (r < 0) {
		sb->launch_err = e;
		sb->phase = PHASE_DEAD;
		pthread_cond_broadcast(&sb->cv);
		pthread_mutex_unlock(&sb->mu);
		sb->be->teardown(sb);
		return NULL;
	}
	sb->phase = PHASE_RUNNING;
	pthread_cond_broadcast(&sb->cv);
	while (!sb->stop_req) {
		pthread_mutex_unlock(&sb->mu);
		bool dead = sb->be->dead(sb);
		pthread_mutex_lock(&sb->mu);
		if (dead) {
			sp_log_warn("sandbox %s: the guest is gone", sb->id);
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&sb->cv, &sb->mu, &ts);
	}
	pthread_mutex_unlock(&sb->mu);
	sb->be->teardown(sb);
	pthread_mutex_lock(&sb->mu);
	sb->phase = PHASE_DEAD;
	pthread_cond_broadcast(&sb->cv);
	pthread_mutex_unlock(&sb->mu);
	return NULL;
}

int sp_sandbox_wait_agent(sp_sandbox *sb, const char *addr,
			  uint64_t timeout_ns, bool (*alive)(sp_sandbox *),
			  sp_err **err)
{
	uint64_t deadline = sp_now_ns() + timeout_ns;
	Sealpod__Agent__V1__CheckRequest req = SEALPOD__AGENT__V1__CHECK_REQUEST__INIT;
	size_t len = protobuf_c_message_get_packed_size(&req.base);
	uint8_t buf[64];
	protobuf_c_message_pack(&req.base, buf);
	char *last = NULL;
	for (;;) {
		sp_ttrpc_client *c = NULL;
		_cleanup_err_ sp_err *e = NULL;
		if (sp_ttrpc_client_connect(&c, addr, 2 * SEC, &e) == 0) {
			_cleanup_free_ uint8_t *out = NULL;
			size_t out_len = 0;
			int r = sp_ttrpc_client_call(c, "sealpod.agent.v1.Health",
						     "Check", buf, len, NULL, 0,
						     5 * SEC, &out, &out_len,
						     NULL, &e);
			sp_ttrpc_client_free(c);
			if (r == 0) {
				Sealpod__Agent__V1__HealthCheckResponse *h =
					sealpod__agent__v1__health_check_response__unpack(
						NULL, out_len, out);
				bool ok = h && !strcmp(h->status, "SERVING");
				if (h)
					sealpod__agent__v1__health_check_response__free_unpacked(h, NULL);
				if (ok) {
					free(last);
					return 0;
				}
			}
		}
		if (e) {
			free(last);
			last = sp_xstrdup(sp_err_msg(e));
		}
		if (alive && !alive(sb)) {
			int r = sp_error(err, SP_ERR_STATE,
					 "sandbox %s: the guest died before its agent answered (%s)",
					 sb->id, last ? last : "no answer");
			free(last);
			return r;
		}
		if (sp_now_ns() > deadline) {
			int r = sp_error(err, SP_ERR_TIMEOUT,
					 "sandbox %s: the agent at %s did not answer in time (%s); raise boot_timeout_s in the runtime configuration if the host is slow",
					 sb->id, addr, last ? last : "no answer");
			free(last);
			return r;
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int guest_init(sp_sandbox *sb, const sp_sandbox_opts *o, sp_err **err)
{
	if (sp_ttrpc_client_connect(&sb->agent, sb->agent_addr, 10 * SEC, err) < 0)
		return sp_error_wrap(err, "sandbox %s: connect to the agent", sb->id);
	/* The agent port is one byte stream that outlives host connections
	 * (virtio-serial): requests of an earlier client (the launcher's
	 * readiness probe) may still be in flight there, with stream ids a
	 * new client would reuse. Idempotent health checks first, until one
	 * is answered, before anything that changes state. */
	Sealpod__Agent__V1__CheckRequest chk = SEALPOD__AGENT__V1__CHECK_REQUEST__INIT;
	for (int i = 0;; i++) {
		_cleanup_err_ sp_err *e = NULL;
		ProtobufCMessage *h = NULL;
		_cleanup_free_ uint8_t *buf = sp_xmalloc(16);
		size_t len = protobuf_c_message_get_packed_size(&chk.base);
		protobuf_c_message_pack(&chk.base, buf);
		_cleanup_free_ uint8_t *out = NULL;
		size_t out_len = 0;
		if (sp_ttrpc_client_call(sb->agent, "sealpod.agent.v1.Health", "Check", buf,
					 len, NULL, 0, 2 * SEC, &out, &out_len, NULL, &e) == 0) {
			h = protobuf_c_message_unpack(
				&sealpod__agent__v1__health_check_response__descriptor,
				NULL, out_len, out);
			if (h) {
				protobuf_c_message_free_unpacked(h, NULL);
				break;
			}
		}
		if (i >= 20)
			return sp_error(err, SP_ERR_PROTOCOL,
					"sandbox %s: the agent does not answer Health.Check on %s: %s",
					sb->id, sb->agent_addr, e ? sp_err_msg(e) : "malformed answer");
		sp_log_debug("sandbox %s: health check: %s (retrying)", sb->id,
			     e ? sp_err_msg(e) : "malformed answer");
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	Sealpod__Agent__V1__SetPolicyRequest pol = SEALPOD__AGENT__V1__SET_POLICY_REQUEST__INIT;
	pol.policy = (char *)sb->policy;
	if (sp_sandbox_agent_call(sb, "SetPolicy", &pol.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "set the pod policy");
	Sealpod__Agent__V1__CreateSandboxRequest cs =
		SEALPOD__AGENT__V1__CREATE_SANDBOX_REQUEST__INIT;
	cs.hostname = (char *)(o->hostname ? o->hostname : "");
	cs.sandbox_id = sb->id;
	cs.pod_name = (char *)(o->pod_name ? o->pod_name : "");
	cs.pod_namespace = (char *)(o->pod_namespace ? o->pod_namespace : "");
	cs.sandbox_pidns = false;
	cs.n_dns = sb->n_dns;
	cs.dns = sb->dns;
	if (sp_sandbox_agent_call(sb, "CreateSandbox", &cs.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "create the guest sandbox");
	if (sp_sandbox_net_guest(sb, err) < 0)
		return sp_error_wrap(err, "sandbox %s", sb->id);
	return 0;
}

/* Host-pulled images: the pod's image disk, empty until its containers'
 * images are added (sp_sandbox_create_container). Sparse, so its size
 * only bounds the pod's images. */
#define IMAGE_DISK_SIZE (256ull << 30)

static int image_disk_create(sp_sandbox *sb, sp_err **err)
{
	const char *dir = sb->cfg.image_disk_dir ? sb->cfg.image_disk_dir : sb->run_dir;
	if (sp_mkdir_p(dir, 0700, err) < 0)
		return sp_error_wrap(err, "image_disk_dir in %s",
				     sb->cfg.source ? sb->cfg.source : "the runtime configuration");
	_cleanup_free_ char *path = sp_xasprintf("%s/%s.images", dir, sb->id);
	unlink(path); /* a crashed shim's leftover for this id */
	return sp_image_disk_create(&sb->image_disk, path, IMAGE_DISK_SIZE, err);
}

/* Adds a container's image (the policy's reference, pinned by digest) to
 * the pod's image disk from containerd's content store. */
static int image_disk_add(sp_sandbox *sb, const char *id, const char *image,
			  sp_err **err)
{
	const char *at = strrchr(image, '@');
	if (!at)
		return sp_error(err, SP_ERR_INVALID,
				"container %s: image `%s` is not pinned by digest", id, image);
	if (sp_image_disk_add_content(sb->image_disk, sb->cfg.content_store, image, at + 1,
				      err) < 0)
		return sp_error_wrap(err,
				     "container %s: host-pulled image (content_store in %s; pull the image on this node first, e.g. crictl pull or ctr image pull, or name an image_store or registry there)",
				     id, sb->cfg.source ? sb->cfg.source : "the runtime configuration");
	return 0;
}

static bool valid_id(const char *id)
{
	if (!id || !*id || strlen(id) > 128)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		      *p == '.'))
			return false;
	return id[0] != '.';
}

int sp_sandbox_start(sp_sandbox **out, const sp_runtime_config *cfg,
		     const sp_sandbox_opts *o, sp_err **err)
{
	if (!o || o->version != 1)
		return sp_error(err, SP_ERR_INVALID, "sp_sandbox_opts: version must be 1");
	if (!valid_id(o->id))
		return sp_error(err, SP_ERR_INVALID,
				"sandbox id \"%s\" is not usable (letters, digits, - _ . only, at most 128)",
				o->id ? o->id : "");
	if (!o->policy || !o->policy_len)
		return sp_error(err, SP_ERR_INVALID,
				"sandbox %s: no policy; a confidential pod needs one (annotation io.sealpod.policy)",
				o->id);
	sp_sandbox *sb = sp_xzalloc(sizeof(*sb));
	sb->id = sp_xstrdup(o->id);
	sb->hostname = sp_xstrdup(o->hostname ? o->hostname : o->id);
	sb->cfg = *cfg; /* strings stay the caller's: cfg outlives the sandbox */
	sb->cfgp = cfg;
	sb->policy = sp_xmalloc(o->policy_len + 1);
	memcpy(sb->policy, o->policy, o->policy_len);
	sb->policy[o->policy_len] = 0;
	sb->policy_len = o->policy_len;
	if (o->unsafe_host_data)
		memcpy(sb->host_data, o->unsafe_host_data, sizeof(sb->host_data));
	else
		sp_sha256(sb->host_data, sb->policy, sb->policy_len);
	if (memchr(o->policy, 0, o->policy_len)) {
		sp_sandbox_free(sb);
		return sp_error(err, SP_ERR_INVALID, "sandbox %s: the policy contains a NUL byte", o->id);
	}
	sb->be = !strcmp(cfg->backend, "native") ? &sp_sandbox_native_backend
						 : &sp_sandbox_vm_backend;
	if (cfg->registry && !cfg->image_store &&
	    sp_sandbox_guest_registry(&sb->guest_registry, cfg->registry,
				      sb->be == &sp_sandbox_vm_backend, err) < 0) {
		sp_sandbox_free(sb);
		return sp_error_wrap(err, "sandbox %s: registry in %s", o->id,
				     cfg->source ? cfg->source : "the runtime configuration");
	}
	if (sp_sandbox_net_setup(sb, o->net, err) < 0) {
		sp_sandbox_free(sb);
		return sp_error_wrap(err, "sandbox %s: network", o->id);
	}
	sb->pid = -1;
	pthread_mutex_init(&sb->mu, NULL);
	pthread_cond_init(&sb->cv, NULL);
	sb->run_dir = sp_xasprintf("%s/%s", cfg->state_dir, sb->id);
	if (sp_mkdir_p(sb->run_dir, 0700, err) < 0) {
		sp_sandbox_free(sb);
		return sp_error_wrap(err, "sandbox %s: state directory (state_dir in %s)",
				     o->id, cfg->source ? cfg->source : "the runtime configuration");
	}
	if (!cfg->image_store && !cfg->registry && cfg->content_store &&
	    image_disk_create(sb, err) < 0) {
		sp_sandbox_free(sb);
		return sp_error_wrap(err, "sandbox %s", o->id);
	}
	sb->phase = PHASE_STARTING;
	if (pthread_create(&sb->thread, NULL, sandbox_thread, sb) != 0) {
		sp_sandbox_free(sb);
		return sp_error_sys(err, errno, "sandbox %s: thread", o->id);
	}
	sb->thread_started = true;
	pthread_mutex_lock(&sb->mu);
	while (sb->phase == PHASE_STARTING)
		pthread_cond_wait(&sb->cv, &sb->mu);
	bool failed = sb->phase == PHASE_DEAD;
	pthread_mutex_unlock(&sb->mu);
	if (failed) {
		int code = sb->launch_err ? sb->launch_err->code : SP_ERR_STATE;
		sp_error(err, code, "sandbox %s: %s UVM: %s", o->id, sb->be->name,
			 sp_err_msg(sb->launch_err));
		sp_sandbox_free(sb);
		return code;
	}
	_cleanup_err_ sp_err *e = NULL;
	if (guest_init(sb, o, &e) < 0) {
		int code = e->code;
		sp_error(err, code, "%s", sp_err_msg(e));
		sp_sandbox_free(sb);
		return code;
	}
	sp_log_info("sandbox %s: ready (%s, pid %d)", sb->id, sb->be->name, (int)sb->pid);
	*out = sb;
	return 0;
}

pid_t sp_sandbox_pid(const sp_sandbox *sb)
{
	return sb->pid;
}

const char *sp_sandbox_id(const sp_sandbox *sb)
{
	return sb->id;
}

bool sp_sandbox_alive(sp_sandbox *sb)
{
	pthread_mutex_lock(&sb->mu);
	bool alive = sb->phase == PHASE_RUNNING && !sb->stop_req;
	pthread_mutex_unlock(&sb->mu);
	return alive;
}

void sp_sandbox_wait_dead(sp_sandbox *sb)
{
	pthread_mutex_lock(&sb->mu);
	while (sb->phase != PHASE_DEAD)
		pthread_cond_wait(&sb->cv, &sb->mu);
	pthread_mutex_unlock(&sb->mu);
}

int sp_sandbox_stop(sp_sandbox *sb, sp_err **err)
{
	if (!sb->destroyed && sb->agent && sp_sandbox_alive(sb)) {
		sb->destroyed = true;
		Sealpod__Agent__V1__DestroySandboxRequest req =
			SEALPOD__AGENT__V1__DESTROY_SANDBOX_REQUEST__INIT;
		_cleanup_err_ sp_err *e = NULL;
		if (sp_sandbox_agent_call(sb, "DestroySandbox", &req.base, NULL, NULL,
			       10 * SEC, &e) < 0)
			sp_log_warn("%s (stopping the UVM anyway)", sp_err_msg(e));
	}
	if (sb->thread_started) {
		pthread_mutex_lock(&sb->mu);
		sb->stop_req = true;
		pthread_cond_broadcast(&sb->cv);
		pthread_mutex_unlock(&sb->mu);
		pthread_join(sb->thread, NULL);
		sb->thread_started = false;
	}
	sp_image_disk_free(sb->image_disk);
	sb->image_disk = NULL;
	/* Nothing stays behind once the UVM is gone: sockets, logs, the
	 * agent's native state. */
	if (sb->run_dir && access(sb->run_dir, F_OK) == 0) {
		_cleanup_err_ sp_err *e = NULL;
		if (sp_rm_rf(sb->run_dir, &e) < 0)
			sp_log_warn("%s", sp_err_msg(e));
	}
	(void)err;
	return 0;
}

void sp_sandbox_free(sp_sandbox *sb)
{
	if (!sb)
		return;
	sp_sandbox_stop(sb, NULL);
	sp_ttrpc_client_free(sb->agent);
	sp_err_free(sb->launch_err);
	pthread_mutex_destroy(&sb->mu);
	pthread_cond_destroy(&sb->cv);
	free(sb->agent_addr);
	free(sb->run_dir);
	free(sb->policy);
	free(sb->id);
	free(sb->hostname);
	free(sb->guest_registry);
	sp_sandbox_net_clear(sb);
	free(sb);
}

int sp_sandbox_guest_registry(char **out, const char *url, bool vm, sp_err **err)
{
	*out = NULL;
	_cleanup_free_ char *u = sp_xstrdup(url ? url : "");
	size_t n = strlen(u);
	while (n > 0 && u[n - 1] == '/')
		u[--n] = 0;
	bool tls = !strncmp(u, "https://", 8);
	if ((!tls && strncmp(u, "http://", 7) != 0) || !u[tls ? 8 : 7])
		return sp_error(err, SP_ERR_INVALID,
				"registry URL `%s` must be https://HOST[:PORT], or http://127.0.0.1:PORT for a registry on this machine",
				url ? url : "");
	const char *scheme = tls ? "https" : "http";
	const char *host = u + (tls ? 8 : 7);
	const char *port = NULL;
	if (!strncmp(host, "127.0.0.1", 9) && (!host[9] || host[9] == ':'))
		port = host + 9;
	else if (!strncmp(host, "localhost", 9) && (!host[9] || host[9] == ':'))
		port = host + 9;
	else if (!strncmp(host, "[::1]", 5) && (!host[5] || host[5] == ':')) {
		if (vm)
			return sp_error(err, SP_ERR_INVALID,
					"registry URL `%s`: a UVM reaches only this host's 127.0.0.1 (as 10.0.2.2, QEMU user networking); serve the registry on 127.0.0.1",
					url);
		port = host + 5;
	}
	if (tls && !port) {
		/* Another host: the guest reaches it by its own name. */
		*out = sp_steal_ptr(&u);
		return 0;
	}
	if (port && *port && (!port[1] || strspn(port + 1, "0123456789") != strlen(port + 1)))
		return sp_error(err, SP_ERR_INVALID,
				"registry URL `%s`: the port must be a number", url);
	if (!port)
		return sp_error(err, SP_ERR_INVALID,
				"registry URL `%s`: plain http is allowed only to a registry on this machine (http://127.0.0.1:PORT, which a UVM reaches as http://10.0.2.2:PORT); use https for any other registry",
				url);
	if (!vm && (tls || !strncmp(host, "[::1]", 5)))
		*out = sp_xstrdup(u);
	else
		/* In a UVM, this host's loopback is 10.0.2.2; an https
		 * registry there needs a certificate for IP 10.0.2.2. */
		*out = sp_xasprintf("%s://%s%s", scheme, vm ? "10.0.2.2" : "127.0.0.1", port);
	return 0;
}

/* ---- containers --------------------------------------------------------- */

static char *str_or_empty(const char *s)
{
	return (char *)(s ? s : "");
}

int sp_sandbox_create_container(sp_sandbox *sb, const sp_container_opts *o,
				sp_err **err)
{
	if (!o || o->version != 1 || !o->spec)
		return sp_error(err, SP_ERR_INVALID, "sp_container_opts: version 1 and a spec are required");
	/* Canonical (sorted keys, compact): a spec the policy built is then
	 * byte for byte the agent's own serialisation of it, which the
	 * evaluator's fast path recognises (docs/policy.md). */
	_cleanup_free_ char *spec = sp_json_dump_canonical(o->spec);
	Sealpod__Agent__V1__CreateContainerRequest req =
		SEALPOD__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
	req.container_id = (char *)o->id;
	req.oci_spec.data = (uint8_t *)spec;
	req.oci_spec.len = strlen(spec);
	req.image = str_or_empty(o->image);
	req.container_name = str_or_empty(o->name);
	req.container_type = o->init ? "init" : "";
	Sealpod__Agent__V1__Storage store = SEALPOD__AGENT__V1__STORAGE__INIT;
	Sealpod__Agent__V1__Storage *stores[1] = {&store};
	_cleanup_free_ char *auth_opt = NULL;
	if (sb->image_disk && o->image && *o->image) {
		/* Host-pulled: exactly the blobs containerd holds for the
		 * policy's digest, on the pod's image disk (the UVM's first
		 * disk; natively the file itself). The guest verifies them. */
		int rc = image_disk_add(sb, o->id, o->image, err);
		if (rc < 0)
			return rc;
		/* Natively the agent has the disk as its --image-store. */
		if (!strcmp(sb->cfg.backend, "vm")) {
			store.driver = "oci-store";
			store.source = "/dev/vda";
			req.n_storages = 1;
			req.storages = stores;
		}
	} else if (sb->cfg.image_store && !strcmp(sb->cfg.backend, "vm")) {
		/* The host's image store is the UVM's first disk (vm.c): an
		 * untrusted tar of an OCI layout the guest verifies. */
		store.driver = "oci-store";
		store.source = "/dev/vda";
		req.n_storages = 1;
		req.storages = stores;
	} else if (sb->guest_registry) {
		/* The guest pulls by the policy's digest and verifies as
		 * for a disk (docs/images.md). */
		store.driver = "registry";
		store.source = sb->guest_registry;
		if (sb->cfg.registry_auth) {
			auth_opt = sp_xasprintf("auth=%s", sb->cfg.registry_auth);
			store.n_options = 1;
			store.options = &auth_opt;
		}
		req.n_storages = 1;
		req.storages = stores;
	}
	if (sp_sandbox_agent_call(sb, "CreateContainer", &req.base, NULL, NULL,
		       CREATE_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s", o->id);
	return 0;
}

int sp_sandbox_start_container(sp_sandbox *sb, const char *id, sp_err **err)
{
	Sealpod__Agent__V1__StartContainerRequest req =
		SEALPOD__AGENT__V1__START_CONTAINER_REQUEST__INIT;
	req.container_id = (char *)id;
	if (sp_sandbox_agent_call(sb, "StartContainer", &req.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s", id);
	return 0;
}

int sp_sandbox_exec(sp_sandbox *sb, const char *id, const char *exec_id,
		    const char *process_json, sp_err **err)
{
	Sealpod__Agent__V1__ExecProcessRequest req =
		SEALPOD__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = (char *)exec_id;
	req.process.data = (uint8_t *)process_json;
	req.process.len = strlen(process_json);
	if (sp_sandbox_agent_call(sb, "ExecProcess", &req.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s exec %s", id, exec_id);
	return 0;
}

int sp_sandbox_signal(sp_sandbox *sb, const char *id, const char *exec_id,
		      int sig, sp_err **err)
{
	Sealpod__Agent__V1__SignalProcessRequest req =
		SEALPOD__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = str_or_empty(exec_id);
	req.signal = (uint32_t)sig;
	if (sp_sandbox_agent_call(sb, "SignalProcess", &req.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s: signal %d", id, sig);
	return 0;
}

int sp_sandbox_wait(sp_sandbox *sb, const char *id, const char *exec_id,
		    int *status, sp_err **err)
{
	Sealpod__Agent__V1__WaitProcessRequest req =
		SEALPOD__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = str_or_empty(exec_id);
	ProtobufCMessage *resp = NULL;
	if (sp_sandbox_agent_call(sb, "WaitProcess", &req.base,
		       &sealpod__agent__v1__wait_process_response__descriptor,
		       &resp, 0, err) < 0)
		return sp_error_wrap(err, "container %s: wait", id);
	*status = ((Sealpod__Agent__V1__WaitProcessResponse *)resp)->status;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int sp_sandbox_read(sp_sandbox *sb, const char *id, const char *exec_id,
		    int stream, uint8_t **data, size_t *len, sp_err **err)
{
	Sealpod__Agent__V1__ReadStreamRequest req =
		SEALPOD__AGENT__V1__READ_STREAM_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = str_or_empty(exec_id);
	req.len = 64 * 1024;
	ProtobufCMessage *resp = NULL;
	if (sp_sandbox_agent_call(sb, stream == SP_STREAM_STDERR ? "ReadStderr" : "ReadStdout",
		       &req.base, &sealpod__agent__v1__read_stream_response__descriptor,
		       &resp, 0, err) < 0)
		return SP_ERR_PROTOCOL;
	Sealpod__Agent__V1__ReadStreamResponse *r = (void *)resp;
	*len = r->data.len;
	*data = sp_xmalloc(r->data.len + 1);
	if (r->data.len)
		memcpy(*data, r->data.data, r->data.len);
	(*data)[r->data.len] = 0;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int sp_sandbox_write_stdin(sp_sandbox *sb, const char *id, const char *exec_id,
			   const uint8_t *data, size_t len, sp_err **err)
{
	while (len > 0) {
		size_t chunk = len > 1024 * 1024 ? 1024 * 1024 : len;
		Sealpod__Agent__V1__WriteStreamRequest req =
			SEALPOD__AGENT__V1__WRITE_STREAM_REQUEST__INIT;
		req.container_id = (char *)id;
		req.exec_id = str_or_empty(exec_id);
		req.data.data = (uint8_t *)data;
		req.data.len = chunk;
		ProtobufCMessage *resp = NULL;
		if (sp_sandbox_agent_call(sb, "WriteStdin", &req.base,
			       &sealpod__agent__v1__write_stream_response__descriptor,
			       &resp, CALL_TIMEOUT, err) < 0)
			return SP_ERR_PROTOCOL;
		size_t n = ((Sealpod__Agent__V1__WriteStreamResponse *)resp)->len;
		protobuf_c_message_free_unpacked(resp, NULL);
		if (n == 0 || n > chunk)
			return sp_error(err, SP_ERR_PROTOCOL,
					"container %s: the agent accepted %zu of %zu stdin bytes",
					id, n, chunk);
		data += n;
		len -= n;
	}
	return 0;
}

int sp_sandbox_close_stdin(sp_sandbox *sb, const char *id, const char *exec_id,
			   sp_err **err)
{
	Sealpod__Agent__V1__CloseStdinRequest req =
		SEALPOD__AGENT__V1__CLOSE_STDIN_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = str_or_empty(exec_id);
	return sp_sandbox_agent_call(sb, "CloseStdin", &req.base, NULL, NULL, CALL_TIMEOUT, err);
}

int sp_sandbox_resize(sp_sandbox *sb, const char *id, const char *exec_id,
		      unsigned rows, unsigned cols, sp_err **err)
{
	Sealpod__Agent__V1__TtyWinResizeRequest req =
		SEALPOD__AGENT__V1__TTY_WIN_RESIZE_REQUEST__INIT;
	req.container_id = (char *)id;
	req.exec_id = str_or_empty(exec_id);
	req.row = rows;
	req.column = cols;
	return sp_sandbox_agent_call(sb, "TtyWinResize", &req.base, NULL, NULL, CALL_TIMEOUT, err);
}

int sp_sandbox_remove_container(sp_sandbox *sb, const char *id,
				unsigned timeout_s, sp_err **err)
{
	Sealpod__Agent__V1__RemoveContainerRequest req =
		SEALPOD__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
	req.container_id = (char *)id;
	req.timeout = timeout_s;
	if (sp_sandbox_agent_call(sb, "RemoveContainer", &req.base, NULL, NULL,
		       CALL_TIMEOUT + timeout_s * SEC, err) < 0)
		return sp_error_wrap(err, "container %s: remove", id);
	return 0;
}

int sp_sandbox_stats(sp_sandbox *sb, const char *id, sp_container_stats *out,
		     sp_err **err)
{
	Sealpod__Agent__V1__StatsContainerRequest req =
		SEALPOD__AGENT__V1__STATS_CONTAINER_REQUEST__INIT;
	req.container_id = (char *)id;
	ProtobufCMessage *resp = NULL;
	if (sp_sandbox_agent_call(sb, "StatsContainer", &req.base,
		       &sealpod__agent__v1__stats_container_response__descriptor,
		       &resp, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s: stats", id);
	Sealpod__Agent__V1__StatsContainerResponse *r = (void *)resp;
	out->cpu_usage_ns = r->cpu_usage_ns;
	out->memory_usage_bytes = r->memory_usage_bytes;
	out->memory_limit_bytes = r->memory_limit_bytes;
	out->pids_current = r->pids_current;
	out->oom_kill_count = r->oom_kill_count;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

int sp_sandbox_pids(sp_sandbox *sb, const char *id, uint32_t **pids, size_t *n,
		    sp_err **err)
{
	Sealpod__Agent__V1__ListProcessesRequest req =
		SEALPOD__AGENT__V1__LIST_PROCESSES_REQUEST__INIT;
	req.container_id = (char *)id;
	req.format = "json";
	ProtobufCMessage *resp = NULL;
	if (sp_sandbox_agent_call(sb, "ListProcesses", &req.base,
		       &sealpod__agent__v1__list_processes_response__descriptor,
		       &resp, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s: list processes", id);
	Sealpod__Agent__V1__ListProcessesResponse *r = (void *)resp;
	_cleanup_json_ json_t *arr = NULL;
	int rc = sp_json_parse(&arr, r->process_list.data, r->process_list.len,
			       "process list", err);
	protobuf_c_message_free_unpacked(resp, NULL);
	if (rc < 0)
		return rc;
	if (!json_is_array(arr))
		return sp_error(err, SP_ERR_PROTOCOL,
				"container %s: the agent's process list is not a JSON array", id);
	*n = 0;
	*pids = sp_xcalloc(json_array_size(arr) + 1, sizeof(uint32_t));
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (json_is_integer(v) && json_integer_value(v) > 0 &&
		    json_integer_value(v) <= UINT32_MAX)
			(*pids)[(*n)++] = (uint32_t)json_integer_value(v);
	}
	return 0;
}

int sp_sandbox_update(sp_sandbox *sb, const char *id, const char *resources_json,
		      sp_err **err)
{
	Sealpod__Agent__V1__UpdateContainerRequest req =
		SEALPOD__AGENT__V1__UPDATE_CONTAINER_REQUEST__INIT;
	req.container_id = (char *)id;
	req.resources.data = (uint8_t *)resources_json;
	req.resources.len = strlen(resources_json);
	if (sp_sandbox_agent_call(sb, "UpdateContainer", &req.base, NULL, NULL, CALL_TIMEOUT, err) < 0)
		return sp_error_wrap(err, "container %s: update", id);
	return 0;
}

int sp_sandbox_wait_oom(sp_sandbox *sb, char **container_id, sp_err **err)
{
	Sealpod__Agent__V1__GetOOMEventRequest req =
		SEALPOD__AGENT__V1__GET_OOMEVENT_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	if (sp_sandbox_agent_call(sb, "GetOOMEvent", &req.base,
		       &sealpod__agent__v1__oomevent__descriptor, &resp, 0, err) < 0)
		return SP_ERR_PROTOCOL;
	*container_id = sp_xstrdup(((Sealpod__Agent__V1__OOMEvent *)resp)->container_id);
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}
