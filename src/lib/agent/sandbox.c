/* SPDX-License-Identifier: Apache-2.0 */
/* The pod's shared resources, made at CreateSandbox and referenced by the
 * specs the policy builds (sp_policy_container_spec):
 *
 *   <sb>/ns/{network,ipc,uts}   bind mounts of namespaces made for the pod
 *   <sb>/etc/{hostname,hosts,resolv.conf}
 *   <sb>/shm                    a tmpfs for /dev/shm
 *   <sb>/emptydir/<volume>      directories on one tmpfs
 *
 * where <sb> is /run/sealpod/sandbox in the guest (sandbox_dir(): under
 * --state-dir in native mode). The namespaces are made by a short-lived
 * thread: unshare() of net, ipc and uts affects only the calling thread,
 * and a bind mount of /proc/thread-self/ns/<type> keeps each alive after
 * the thread exits, so no holder process is needed (as `ip netns add`). */
#include <fcntl.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"

/* Where the policy's specs place pod resources (docs/policy.md). */
#define GUEST_SANDBOX "/run/sealpod/sandbox"

static const struct {
	const char *name; /* runtime-spec type, also the file under ns/ */
	const char *proc; /* /proc/thread-self/ns/<proc> */
	int flag;
} NS[3] = {
	{"network", "net", CLONE_NEWNET},
	{"ipc", "ipc", CLONE_NEWIPC},
	{"uts", "uts", CLONE_NEWUTS},
};

/* ---- namespaces ---- */

struct ns_job {
	const char *sb;
	const char *hostname;
	bool made[3];
	int err;
	const char *what;
};

static void *ns_thread(void *arg)
{
	struct ns_job *j = arg;
	if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0) {
		j->err = errno;
		j->what = "unshare the pod's network, IPC and UTS namespaces";
		return NULL;
	}
	if (j->hostname[0] && sethostname(j->hostname, strlen(j->hostname)) < 0) {
		j->err = errno;
		j->what = "set the pod's hostname";
		return NULL;
	}
	/* Loopback up, as every pod expects. */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0)) {
		j->err = errno;
		j->what = "bring up the pod's loopback interface";
		if (s >= 0)
			close(s);
		return NULL;
	}
	close(s);
	for (size_t i = 0; i < SP_ARRAY_LEN(NS); i++) {
		char src[64];
		snprintf(src, sizeof(src), "/proc/thread-self/ns/%s", NS[i].proc);
		_cleanup_free_ char *dst = sp_xasprintf("%s/ns/%s", j->sb, NS[i].name);
		int fd = open(dst, O_CREAT | O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
		if (fd < 0 || (close(fd), mount(src, dst, NULL, MS_BIND, NULL) < 0)) {
			j->err = errno;
			j->what = "bind-mount the pod's namespaces";
			return NULL;
		}
		j->made[i] = true;
	}
	return NULL;
}

static int make_namespaces(sp_agent *a, const char *sb, sp_err **err)
{
	_cleanup_free_ char *d = sp_xasprintf("%s/ns", sb);
	if (sp_mkdir_p(d, 0755, err) < 0)
		return (*err)->code;
	struct ns_job j = {.sb = sb, .hostname = a->hostname};
	pthread_t t;
	int r = pthread_create(&t, NULL, ns_thread, &j);
	if (r)
		return sp_error_sys(err, r, "CreateSandbox: namespace thread");
	pthread_join(t, NULL);
	memcpy(a->ns_made, j.made, sizeof(j.made));
	if (j.err)
		return sp_error_sys(err, j.err, "CreateSandbox: %s", j.what);
	return 0;
}

/* ---- files and mounts ---- */

static int write_etc(sp_agent *a, const char *sb, const ACreateSandbox *q,
		     sp_err **err)
{
	_cleanup_free_ char *d = sp_xasprintf("%s/etc", sb);
	if (sp_mkdir_p(d, 0755, err) < 0)
		return (*err)->code;
	const char *h = a->hostname[0] ? a->hostname : "localhost";
	_cleanup_free_ char *hostname = sp_xasprintf("%s\n", h);
	_cleanup_free_ char *hosts = sp_xasprintf(
		"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
		"127.0.1.1\t%s\n", h);
	_cleanup_buf_ sp_buf resolv = SP_BUF_INIT;
	for (size_t i = 0; i < q->n_dns; i++)
		sp_buf_printf(&resolv, "%s\n", q->dns[i]);
	struct {
		const char *name;
		const void *data;
		size_t len;
	} files[] = {
		{"hostname", hostname, strlen(hostname)},
		{"hosts", hosts, strlen(hosts)},
		{"resolv.conf", resolv.data ? (const void *)resolv.data : "", resolv.len},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(files); i++) {
		_cleanup_free_ char *p = sp_xasprintf("%s/%s", d, files[i].name);
		if (sp_write_file_atomic(p, files[i].data, files[i].len, 0644, err) < 0)
			return (*err)->code;
	}
	return 0;
}

/* A tmpfs at <sb>/<name>. In native mode without the right to mount, a
 * plain directory does (tests). */
static int mount_tmpfs(sp_agent *a, const char *sb, const char *name,
		       const char *opts, bool *mounted, sp_err **err)
{
	_cleanup_free_ char *d = sp_xasprintf("%s/%s", sb, name);
	if (sp_mkdir_p(d, 0755, err) < 0)
		return (*err)->code;
	if (mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
		if (a->native && errno == EPERM) {
			sp_log_warn("CreateSandbox: no tmpfs at %s (%s); a directory it is", d,
				    strerror(errno));
			return 0;
		}
		return sp_error_sys(err, errno, "CreateSandbox: mount a tmpfs at %s", d);
	}
	*mounted = true;
	return 0;
}

static bool plain_name(const char *s)
{
	return valid_id(s);
}

static int emptydir_make(const char *sb, const char *name, sp_err **err)
{
	if (!plain_name(name))
		return sp_error(err, SP_ERR_INVALID,
				"emptyDir volume name `%.64s` must be 1-128 characters [A-Za-z0-9_.-]",
				name);
	_cleanup_free_ char *d = sp_xasprintf("%s/emptydir/%s", sb, name);
	/* World-writable like Kubernetes' emptyDir: containers of the pod
	 * may run as different users. */
	if (mkdir(d, 0777) < 0 && errno != EEXIST)
		return sp_error_sys(err, errno, "emptyDir volume %s", d);
	if (chmod(d, 0777) < 0)
		return sp_error_sys(err, errno, "emptyDir volume %s", d);
	return 0;
}

void sandbox_teardown(sp_agent *a)
{
	_cleanup_free_ char *sb = sandbox_dir(a);
	attest_stop(a);
	for (size_t i = 0; i < SP_ARRAY_LEN(NS); i++)
		if (a->ns_made[i]) {
			_cleanup_free_ char *p = sp_xasprintf("%s/ns/%s", sb, NS[i].name);
			if (umount2(p, MNT_DETACH) < 0)
				sp_log_warn("DestroySandbox: unmount %s: %s", p, strerror(errno));
			a->ns_made[i] = false;
		}
	const char *mnts[] = {"shm", "emptydir"};
	bool *flags[] = {&a->shm_mounted, &a->emptydir_mounted};
	for (size_t i = 0; i < SP_ARRAY_LEN(mnts); i++)
		if (*flags[i]) {
			_cleanup_free_ char *p = sp_xasprintf("%s/%s", sb, mnts[i]);
			if (umount2(p, MNT_DETACH) < 0)
				sp_log_warn("DestroySandbox: unmount %s: %s", p, strerror(errno));
			*flags[i] = false;
		}
	_cleanup_err_ sp_err *e = NULL;
	if (sp_rm_rf(sb, &e) < 0)
		sp_log_warn("DestroySandbox: %s", sp_err_msg(e));
	free(a->pod_store);
	a->pod_store = NULL;
	agent_net_forget(a);
}

/* ---- the handlers ---- */

static bool printable(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
	return n <= max;
}

static bool valid_hostname(const char *h)
{
	size_t n = strlen(h);
	if (n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* An oci-store source: a block device in the guest, any absolute path
 * (a tar of an OCI layout) in native mode. */
static bool valid_store_source(sp_agent *a, const char *s)
{
	if (!s || s[0] != '/' || strlen(s) > 255 || strstr(s, "/../") ||
	    strstr(s, "/./") || !printable(s, 255))
		return false;
	return a->native || !strncmp(s, "/dev/", 5);
}

int h_create_sandbox(sp_agent *a, const ACreateSandbox *q, reply *r)
{
	if (a->sandbox_created)
		return reply_err(r, SP_RPC_ALREADY_EXISTS,
				 "CreateSandbox: the sandbox already exists");
	if (q->sandbox_id && q->sandbox_id[0] && !valid_id(q->sandbox_id))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateSandbox: sandbox_id must be 1-128 characters [A-Za-z0-9_.-]");
	const char *hostname = q->hostname ? q->hostname : "";
	if (!valid_hostname(hostname))
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateSandbox: hostname `%.64s` must be at most 63 characters [A-Za-z0-9.-]",
				 hostname);
	if (q->n_dns > 32)
		return reply_err(r, SP_RPC_INVALID_ARGUMENT,
				 "CreateSandbox: at most 32 dns lines");
	for (size_t i = 0; i < q->n_dns; i++)
		if (!printable(q->dns[i], 512))
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateSandbox: dns line %zu must be at most 512 characters without control characters",
					 i);
	const char *store = NULL, *registry = NULL;
	for (size_t i = 0; i < q->n_storages; i++) {
		const AStorage *s = q->storages[i];
		const char *d = s->driver ? s->driver : "";
		if (!strcmp(d, "emptydir")) {
			if (!plain_name(s->source))
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateSandbox: storage %zu: emptydir name must be 1-128 characters [A-Za-z0-9_.-]",
						 i);
		} else if (!strcmp(d, "oci-store")) {
			if (store || registry)
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateSandbox: storage %zu: only one image store (oci-store or registry) per sandbox",
						 i);
			if (!valid_store_source(a, s->source))
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateSandbox: storage %zu: oci-store source `%.64s` must be a block device path /dev/...",
						 i, s->source ? s->source : "");
			store = s->source;
		} else if (!strcmp(d, "registry")) {
			if (store || registry)
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateSandbox: storage %zu: only one image store (oci-store or registry) per sandbox",
						 i);
			if (!registry_source_ok(s->source))
				return reply_err(r, SP_RPC_INVALID_ARGUMENT,
						 "CreateSandbox: storage %zu: registry source `%.64s` must be https://host[:port] (or http://10.0.2.2:port, the host through QEMU user networking)",
						 i, s->source ? s->source : "");
			registry = s->source;
		} else {
			return reply_err(r, SP_RPC_INVALID_ARGUMENT,
					 "CreateSandbox: storage %zu: driver `%.64s` is not a sandbox storage (\"emptydir\", \"oci-store\" or \"registry\")",
					 i, d);
		}
	}
	free(a->sandbox_id);
	free(a->hostname);
	a->sandbox_id = sp_xstrdup(q->sandbox_id ? q->sandbox_id : "");
	a->hostname = sp_xstrdup(hostname);

	_cleanup_free_ char *sb = sandbox_dir(a);
	_cleanup_err_ sp_err *e = NULL;
	if (sp_mkdir_p(sb, 0755, &e) < 0 || write_etc(a, sb, q, &e) < 0 ||
	    mount_tmpfs(a, sb, "shm", "mode=1777,size=65536k", &a->shm_mounted, &e) < 0 ||
	    mount_tmpfs(a, sb, "emptydir", "mode=755", &a->emptydir_mounted, &e) < 0)
		goto fail;
	for (size_t i = 0; i < q->n_storages; i++)
		if (!strcmp(q->storages[i]->driver, "emptydir") &&
		    emptydir_make(sb, q->storages[i]->source, &e) < 0)
			goto fail;
	if (make_namespaces(a, sb, &e) < 0) {
		if (!a->native)
			goto fail;
		/* Native mode: the host may not allow it; containers then get
		 * namespaces of their own (sandbox_prepare_spec). */
		sp_log_warn("%s; containers get namespaces of their own", sp_err_msg(e));
		sp_err_free(e);
		e = NULL;
	}
	/* The workload attestation endpoint lives on the pod's loopback. */
	if (a->ns_made[0]) {
		_cleanup_free_ char *netns = sp_xasprintf("%s/ns/network", sb);
		if (attest_start(a, netns, &e) < 0)
			goto fail;
	} else if (a->attest_listen) {
		sp_log_warn("CreateSandbox: no pod network namespace, so no attestation endpoint for the workloads");
	}
	if (store)
		a->pod_store = sp_xasprintf("tar:%s", store);
	else if (registry)
		a->pod_store = sp_xasprintf("registry:%s", registry);
	a->sandbox_created = true;
	sp_log_info("sandbox %s created", a->sandbox_id);
	return reply_empty(r);
fail:
	sandbox_teardown(a);
	return reply_sp_err(r, e, "CreateSandbox");
}

int h_destroy_sandbox(sp_agent *a, uint64_t deadline, reply *r)
{
	_cleanup_free_ char *stuck = NULL;
	int rc = containers_remove_all(a, deadline, &stuck);
	if (rc == SP_ERR_TIMEOUT) {
		int w = reply_wait_end(a, r, "DestroySandbox");
		return w ? w : reply_err(r, SP_RPC_DEADLINE_EXCEEDED,
					 "DestroySandbox: container `%s` is still being created (its image pull has not returned); it is removed when the pull ends, call DestroySandbox again",
					 stuck);
	}
	if (rc == SP_ERR_STATE)
		return reply_err(r, SP_RPC_UNAVAILABLE,
				 "DestroySandbox: container `%s` is starting a process (ExecProcess) that has not returned; call DestroySandbox again",
				 stuck);
	if (rc < 0)
		return reply_err(r, SP_RPC_INTERNAL,
				 "DestroySandbox: container `%s` did not die after SIGKILL",
				 stuck);
	sandbox_teardown(a);
	a->sandbox_created = false;
	return reply_empty(r);
}

/* ---- specs ---- */

/* `rest` (below the sandbox directory) names an existing file or directory
 * without symbolic links, so a container that wrote a symlink into a
 * shared volume cannot point another container's bind mount elsewhere. */
static int check_beneath(const char *sb, const char *rest, const char *field,
			 sp_err **err)
{
	_cleanup_close_ int root = open(sb, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return sp_error_sys(err, errno, "%s: %s", field, sb);
	struct open_how how = {.flags = O_PATH | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					  RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, root, rest, &how, sizeof(how));
	if (fd < 0) {
		if (errno == ENOENT)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"%s: %s/%s does not exist; create the sandbox (CreateSandbox) and its volumes (CopyFile) first",
					field, GUEST_SANDBOX, rest);
		return sp_error_sys(err, errno, "%s: %s/%s (symbolic links are refused)",
				    field, GUEST_SANDBOX, rest);
	}
	close(fd);
	return 0;
}

static bool bad_rest(const char *rest)
{
	if (!rest[0] || rest[0] == '/')
		return true;
	for (const char *p = rest; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n + (e ? 1 : 0);
		if (e && !*p)
			return true;
	}
	return false;
}

/* Volume kinds whose directories a spec may name (docs/policy.md). */
static const char *const VOLUME_KINDS[] = {"emptydir", "configmap", "secret",
					   "projected", "downwardapi"};

/* Creates what a mount source may name on demand: a volume's directory
 * (the host need not list emptyDir volumes in CreateSandbox, and a
 * configMap, secret or projected volume whose files the host did not copy
 * is an empty directory, as it would be with nothing in it) and the
 * termination log file. Deeper paths (sub_path) must exist. */
static int on_demand(const char *sb, const char *rest, sp_err **err)
{
	for (size_t k = 0; k < SP_ARRAY_LEN(VOLUME_KINDS); k++) {
		size_t kl = strlen(VOLUME_KINDS[k]);
		if (strncmp(rest, VOLUME_KINDS[k], kl) != 0 || rest[kl] != '/')
			continue;
		const char *name = rest + kl + 1;
		const char *slash = strchr(name, '/');
		_cleanup_free_ char *vol = slash ? sp_xstrndup(name, (size_t)(slash - name))
						 : sp_xstrdup(name);
		if (!strcmp(VOLUME_KINDS[k], "emptydir")) {
			_cleanup_free_ char *d = sp_xasprintf("%s/emptydir", sb);
			if (access(d, F_OK) < 0)
				return 0; /* no sandbox: check_beneath says so */
			return emptydir_make(sb, vol, err);
		}
		if (!plain_name(vol))
			return 0;
		_cleanup_free_ char *kd = sp_xasprintf("%s/%s", sb, VOLUME_KINDS[k]);
		_cleanup_free_ char *d = sp_xasprintf("%s/%s", kd, vol);
		if ((mkdir(kd, 0755) < 0 && errno != EEXIST) ||
		    (mkdir(d, 0755) < 0 && errno != EEXIST))
			return sp_error_sys(err, errno, "volume directory %s", d);
		return 0;
	}
	if (!strncmp(rest, "termination/", 12) && !strchr(rest + 12, '/') &&
	    plain_name(rest + 12)) {
		_cleanup_free_ char *d = sp_xasprintf("%s/termination", sb);
		_cleanup_free_ char *f = sp_xasprintf("%s/%s", d, rest + 12);
		if (sp_mkdir_p(d, 0755, err) < 0)
			return (*err)->code;
		int fd = open(f, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
		if (fd < 0)
			return sp_error_sys(err, errno, "termination log %s", f);
		close(fd);
	}
	return 0;
}

int sandbox_prepare_spec(sp_agent *a, json_t *spec, const char *cid, sp_err **err)
{
	_cleanup_free_ char *sb = sandbox_dir(a);
	const size_t gl = strlen(GUEST_SANDBOX);
	json_t *mounts = json_object_get(spec, "mounts");
	size_t i;
	json_t *m;
	json_array_foreach(mounts, i, m) {
		json_t *src = json_object_get(m, "source");
		const char *s = json_string_value(src);
		const char *dst = json_string_value(json_object_get(m, "destination"));
		char field[48];
		/* Paths are compared as strings here and by the policy: only
		 * canonical ones (no //, /./, /../, trailing /), so that both
		 * look at the very value the kernel will resolve. */
		if (dst && (dst[0] != '/' || (dst[1] && bad_rest(dst + 1))))
			return sp_error(err, SP_ERR_INVALID,
					"mounts[%zu].destination: `%.200s` is not a canonical absolute path",
					i, dst);
		if (s && s[0] == '/' && s[1] && bad_rest(s + 1))
			return sp_error(err, SP_ERR_INVALID,
					"mounts[%zu].source: `%.200s` is not a canonical path", i, s);
		if (!s || strncmp(s, GUEST_SANDBOX "/", gl + 1) != 0)
			continue;
		const char *rest = s + gl + 1;
		snprintf(field, sizeof(field), "mounts[%zu].source", i);
		if (bad_rest(rest))
			return sp_error(err, SP_ERR_INVALID, "%s: `%.200s` is not a plain path",
					field, s);
		if (on_demand(sb, rest, err) < 0 || check_beneath(sb, rest, field, err) < 0)
			return (*err)->code;
		json_object_set_new(m, "source", json_sprintf("%s/%s", sb, rest));
	}
	json_t *lx = json_object_get(spec, "linux");
	if (!lx) {
		lx = json_object();
		json_object_set_new(spec, "linux", lx);
	}
	if (!json_is_object(lx))
		return sp_error(err, SP_ERR_INVALID, "linux: must be an object");
	json_t *nss = json_object_get(lx, "namespaces");
	json_array_foreach(nss, i, m) {
		json_t *path = json_object_get(m, "path");
		const char *s = json_string_value(path);
		if (!path || json_is_null(path))
			continue;
		/* A container joins only the pod's own namespaces, by the one
		 * name the policy builds (<sandbox>/ns/<type>): never a path
		 * such as /proc/1/ns/net, the agent's own. */
		const char *ntype = json_string_value(json_object_get(m, "type"));
		if (!s || !ntype || strncmp(s, GUEST_SANDBOX "/ns/", gl + 4) != 0 ||
		    strcmp(s + gl + 4, ntype) != 0)
			return sp_error(err, SP_ERR_INVALID,
					"linux.namespaces[%zu].path: `%.200s` is not the pod's %s namespace (%s/ns/%s)",
					i, s ? s : "(not a string)", ntype ? ntype : "?",
					GUEST_SANDBOX, ntype ? ntype : "TYPE");
		const char *type = s + gl + 4;
		size_t k;
		for (k = 0; k < SP_ARRAY_LEN(NS); k++)
			if (!strcmp(type, NS[k].name))
				break;
		if (k < SP_ARRAY_LEN(NS) && a->ns_made[k]) {
			json_object_set_new(m, "path", json_sprintf("%s/ns/%s", sb, type));
			continue;
		}
		if (a->native && k < SP_ARRAY_LEN(NS)) {
			/* CreateSandbox could not make it here: a new one. */
			json_object_del(m, "path");
			continue;
		}
		return sp_error(err, SP_ERR_NOT_FOUND,
				"linux.namespaces[%zu].path: the pod has no %s namespace%s",
				i, type,
				k < SP_ARRAY_LEN(NS) ? "; call CreateSandbox first"
						     : " (only network, ipc and uts are shared)");
	}
	/* The agent's cgroup layout, whatever the host asked: one directory
	 * per container under /sealpod; in native mode, where several agents
	 * share the host's hierarchy, one flat directory per agent and
	 * container (a shared parent would outlive its first container). */
	if (a->native)
		json_object_set_new(lx, "cgroupsPath",
				    json_sprintf("/sealpod-agent-%d-%s", (int)getpid(), cid));
	else
		json_object_set_new(lx, "cgroupsPath", json_sprintf("/sealpod/%s", cid));
	return 0;
}
