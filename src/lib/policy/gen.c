/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes objects to policies, following what kubelet and containerd
 * do with a pod spec: command/args against the image's Entrypoint/Cmd,
 * env merging and $(VAR) expansion, containerd's default capabilities,
 * masked paths and mounts, securityContext, volumes and exec probes. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sealpod/bytes.h"
#include "sealpod/json.h"
#include "sealpod/sealed.h"

/* containerd's default capability set (oci.WithDefaultSpec). */
static const char *const default_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
};
static const char *const all_caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};
static const char *const masked_paths[] = {
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};
/* sealpod's RuntimeDefault seccomp profile: a denylist of the syscalls
 * that reach kernel-wide state (modules, kexec, keyrings, mounts, time,
 * tracing other processes). Weaker than Docker's allowlist; the VM is the
 * main boundary (docs/policy.md). */
static const char *const seccomp_denied[] = {
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
	"delete_module", "finit_module", "get_kernel_syms", "init_module", "ioperm", "iopl",
	"kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount",
	"move_mount", "open_by_handle_at", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key",
	"setns", "settimeofday", "swapoff", "swapon", "syslog", "umount2", "unshare", "uselib",
	"userfaultfd", "vm86", "vm86old",
};
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DNS_RE "[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
#define SERVICE_NAME_RE "[A-Z_][A-Z0-9_]*_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)"
#define SERVICE_VALUE_RE "[]a-z0-9.:/[-]*"

static bool is_strv_nonempty(const json_t *a)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a) || !json_array_size(a))
		return false;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

static json_t *strv_json(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static json_t *jget(const json_t *o, const char *path)
{
	_cleanup_free_ char *dup = sp_xstrdup(path);
	char *save = NULL;
	const json_t *cur = o;
	for (char *t = strtok_r(dup, ".", &save); t && cur; t = strtok_r(NULL, ".", &save))
		cur = json_is_object(cur) ? json_object_get(cur, t) : NULL;
	return (json_t *)cur;
}

/* env as the generator builds it: ordered name -> rule object. */
struct envset {
	json_t *rules; /* array of env rule objects */
};

static json_t *env_find(struct envset *e, const char *name)
{
	size_t i;
	json_t *r;
	json_array_foreach(e->rules, i, r) if (jstr(r, "name") && !strcmp(jstr(r, "name"), name)) return r;
	return NULL;
}

static void env_put(struct envset *e, json_t *rule /* stolen */)
{
	const char *name = jstr(rule, "name");
	size_t i;
	json_t *r;
	json_array_foreach(e->rules, i, r) if (name && jstr(r, "name") && !strcmp(jstr(r, "name"), name)) {
		json_array_set_new(e->rules, i, rule);
		return;
	}
	json_array_append_new(e->rules, rule);
}

/* $(VAR) expansion as kubelet does it: known exact values substitute,
 * $$ escapes, unknown references stay as written. A reference to a value
 * only known at run time cannot be pinned: an error. */
static int expand(struct envset *e, const char *in, char **out, const char *what, sp_err **err)
{
	sp_buf b = SP_BUF_INIT;
	for (const char *s = in; *s;) {
		if (s[0] == '$' && s[1] == '$') {
			sp_buf_put_u8(&b, '$');
			s += 2;
			continue;
		}
		if (s[0] == '$' && s[1] == '(') {
			const char *close = strchr(s + 2, ')');
			if (close) {
				_cleanup_free_ char *name = sp_xstrndup(s + 2, (size_t)(close - s - 2));
				json_t *r = env_find(e, name);
				if (r && jstr(r, "value")) {
					sp_buf_put(&b, jstr(r, "value"), strlen(jstr(r, "value")));
					s = close + 1;
					continue;
				}
				if (r) {
					sp_buf_free(&b);
					return sp_error(err, SP_ERR_UNSUPPORTED,
							"%s refers to $(%s), whose value comes from %s at run time; "
							"the policy cannot pin it (use a literal value)",
							what, name, jstr(r, "from") ? jstr(r, "from") : "outside");
				}
			}
		}
		sp_buf_put_u8(&b, (uint8_t)*s++);
	}
	sp_buf_terminate(&b);
	*out = b.data ? (char *)sp_buf_steal(&b, NULL) : sp_xstrdup("");
	return 0;
}

static json_t *pattern_rule(const char *name, const char *pattern, const char *from, bool optional)
{
	json_t *r = json_pack("{s:s, s:s, s:s}", "name", name, "pattern", pattern, "from", from);
	if (optional)
		json_object_set_new(r, "optional", json_true());
	return r;
}

static int field_rule(const json_t *pod_meta, const char *kind, const char *name,
		      const char *fp, json_t **out, sp_err **err)
{
	const char *podname = !strcmp(kind, "Pod") ? jstr(pod_meta, "name") : NULL;
	const char *ns = jstr(pod_meta, "namespace");
	if (!strcmp(fp, "metadata.name") && podname)
		*out = json_pack("{s:s, s:s, s:s}", "name", name, "value", podname, "from", "field");
	else if (!strcmp(fp, "metadata.namespace") && ns)
		*out = json_pack("{s:s, s:s, s:s}", "name", name, "value", ns, "from", "field");
	else if (!strcmp(fp, "metadata.name") || !strcmp(fp, "metadata.namespace") ||
		 !strcmp(fp, "spec.nodeName") || !strcmp(fp, "spec.serviceAccountName"))
		*out = pattern_rule(name, DNS_RE, "field", false);
	else if (!strcmp(fp, "status.podIP") || !strcmp(fp, "status.hostIP") ||
		 !strcmp(fp, "status.podIPs") || !strcmp(fp, "status.hostIPs"))
		*out = pattern_rule(name, "[0-9a-fA-F.:,]+", "field", false);
	else if (!strcmp(fp, "metadata.uid"))
		*out = pattern_rule(name, "[0-9a-f-]{36}", "field", false);
	else if (!strncmp(fp, "metadata.labels['", 17) || !strncmp(fp, "metadata.annotations['", 22)) {
		bool lab = fp[9] == 'l';
		const char *k0 = fp + (lab ? 17 : 22);
		_cleanup_free_ char *key = sp_xstrndup(k0, strcspn(k0, "'"));
		const char *v = jstr(json_object_get(pod_meta, lab ? "labels" : "annotations"), key);
		*out = v ? json_pack("{s:s, s:s, s:s}", "name", name, "value", v, "from", "field")
			 : pattern_rule(name, ".*", "field", false);
	} else
		return sp_error(err, SP_ERR_UNSUPPORTED, "env %s: fieldRef %s is not supported", name, fp);
	return 0;
}

static int build_env(struct envset *e, const json_t *cont, const sp_policy_image *img,
		     const json_t *pod_meta, const char *kind, const json_t *cms,
		     bool service_links, sp_err **err)
{
	const char *cname = jstr(cont, "name");
	for (char **p = img->env; p && *p; p++) {
		const char *eq = strchr(*p, '=');
		if (!eq)
			continue;
		_cleanup_free_ char *n = sp_xstrndup(*p, (size_t)(eq - *p));
		env_put(e, json_pack("{s:s, s:s, s:s}", "name", n, "value", eq + 1, "from", "image"));
	}
	if (!env_find(e, "PATH"))
		env_put(e, json_pack("{s:s, s:s, s:s}", "name", "PATH", "value", DEFAULT_PATH, "from", "runtime"));
	env_put(e, pattern_rule("HOSTNAME", DNS_RE, "runtime", false));

	json_t *ef = json_object_get(cont, "envFrom");
	size_t i;
	json_t *x;
	json_array_foreach(ef, i, x) {
		const json_t *cm = json_object_get(x, "configMapRef");
		const char *prefix = jstr(x, "prefix") ? jstr(x, "prefix") : "";
		if (!cm)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"container %s: envFrom %s: only configMapRef of a ConfigMap in the same "
					"file can be pinned; list Secret keys with env[].valueFrom.secretKeyRef",
					cname, json_object_get(x, "secretRef") ? "secretRef" : "entry");
		const json_t *data = json_object_get(cms, jstr(cm, "name") ? jstr(cm, "name") : "");
		if (!data)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"container %s: envFrom configMapRef %s: put the ConfigMap in the same file "
					"so that its keys and values are known", cname, jstr(cm, "name"));
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)data, k, v) {
			_cleanup_free_ char *n = sp_xasprintf("%s%s", prefix, k);
			if (json_is_string(v))
				env_put(e, json_pack("{s:s, s:s, s:s}", "name", n, "value", json_string_value(v),
						     "from", "configMap"));
		}
	}
	json_t *env = json_object_get(cont, "env");
	json_array_foreach(env, i, x) {
		const char *name = jstr(x, "name");
		if (!name || !name[0])
			return sp_error(err, SP_ERR_PARSE, "container %s: env[%zu] has no name", cname, i);
		json_t *vf = json_object_get(x, "valueFrom");
		if (!vf) {
			_cleanup_free_ char *val = NULL;
			_cleanup_free_ char *what = sp_xasprintf("container %s env %s", cname, name);
			if (expand(e, jstr(x, "value") ? jstr(x, "value") : "", &val, what, err) < 0)
				return (*err)->code;
			env_put(e, json_pack("{s:s, s:s, s:s}", "name", name, "value", val, "from", "pod"));
			continue;
		}
		json_t *r = NULL;
		const json_t *ref;
		if ((ref = json_object_get(vf, "configMapKeyRef"))) {
			const json_t *data = json_object_get(cms, jstr(ref, "name") ? jstr(ref, "name") : "");
			const char *v = data ? jstr(data, jstr(ref, "key") ? jstr(ref, "key") : "") : NULL;
			r = v ? json_pack("{s:s, s:s, s:s}", "name", name, "value", v, "from", "configMap")
			      : pattern_rule(name, ".*", "configMap", json_is_true(json_object_get(ref, "optional")));
		} else if ((ref = json_object_get(vf, "secretKeyRef"))) {
			r = pattern_rule(name, ".*", "secret", json_is_true(json_object_get(ref, "optional")));
		} else if ((ref = json_object_get(vf, "fieldRef"))) {
			if (field_rule(pod_meta, kind, name,
				       jstr(ref, "fieldPath") ? jstr(ref, "fieldPath") : "", &r, err) < 0)
				return sp_error_wrap(err, "container %s", cname);
		} else if (json_object_get(vf, "resourceFieldRef")) {
			r = pattern_rule(name, "[0-9]+", "resource", false);
		} else {
			return sp_error(err, SP_ERR_UNSUPPORTED, "container %s: env %s: unknown valueFrom", cname, name);
		}
		env_put(e, r);
	}
	if (service_links)
		json_array_append_new(e->rules, json_pack("{s:s, s:s, s:s, s:b}", "name_pattern", SERVICE_NAME_RE,
							  "pattern", SERVICE_VALUE_RE, "from", "service",
							  "optional", 1));
	return 0;
}

static int parse_image_user(const char *u, int64_t *uid, int64_t *gid, const char *cname, sp_err **err)
{
	if (!u || !u[0])
		return 0;
	char *end;
	long long a = strtoll(u, &end, 10);
	if (end == u || (*end && *end != ':') || a < 0)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"container %s: the image runs as user `%s`, a name the generator cannot "
				"resolve; set securityContext.runAsUser (and runAsGroup)", cname, u);
	*uid = a;
	if (*end == ':') {
		const char *g = end + 1;
		long long b = strtoll(g, &end, 10);
		if (end == g || *end || b < 0)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"container %s: image group `%s` is a name; set securityContext.runAsGroup",
					cname, g);
		*gid = b;
	}
	return 0;
}

static bool cap_in(const json_t *a, const char *cap)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);
		if (!s)
			continue;
		if (!strcasecmp(s, "ALL") || !strcasecmp(s, cap) ||
		    (!strncasecmp(cap, "CAP_", 4) && !strcasecmp(s, cap + 4)))
			return true;
	}
	return false;
}

static json_t *capabilities(const json_t *sc, bool privileged)
{
	json_t *set = json_array();
	const json_t *add = jget(sc, "capabilities.add"), *drop = jget(sc, "capabilities.drop");
	if (privileged) {
		json_decref(set);
		set = strv_json(all_caps, SP_ARRAY_LEN(all_caps));
	} else {
		for (size_t i = 0; i < SP_ARRAY_LEN(all_caps); i++) {
			bool def = false;
			for (size_t k = 0; k < SP_ARRAY_LEN(default_caps); k++)
				if (!strcmp(default_caps[k], all_caps[i]))
					def = true;
			bool added = cap_in(add, all_caps[i]);
			/* kubelet: drop applies to the defaults; add wins over a drop of ALL. */
			if ((def && !cap_in(drop, all_caps[i])) || added)
				json_array_append_new(set, json_string(all_caps[i]));
		}
	}
	json_t *r = json_pack("{s:O, s:O, s:O, s:[], s:[]}", "bounding", set, "effective", set,
			      "permitted", set, "inheritable", "ambient");
	json_decref(set);
	return r;
}

static json_t *seccomp_default(void)
{
	return json_pack("{s:s, s:[s,s,s], s:[{s:o, s:s, s:i}]}", "defaultAction", "SCMP_ACT_ALLOW",
			 "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls",
			 "names", strv_json(seccomp_denied, SP_ARRAY_LEN(seccomp_denied)), "action",
			 "SCMP_ACT_ERRNO", "errnoRet", 1);
}

/* A securityContext field: the container's, else the pod's. */
static json_t *sc_get(const json_t *csc, const json_t *psc, const char *path)
{
	json_t *v = jget(csc, path);
	return v ? v : jget(psc, path);
}

static int add_probe(json_t *exec, const json_t *probe)
{
	json_t *cmd = jget(probe, "exec.command");
	if (!is_strv_nonempty(cmd))
		return 0;
	size_t i;
	json_t *x;
	json_array_foreach(exec, i, x) if (json_equal(x, cmd)) return 0;
	json_array_append(exec, cmd);
	return 0;
}

struct podctx {
	const json_t *obj, *meta, *spec, *psc, *cms;
	const char *kind;
	const sp_policy_gen_opts *opts;
	json_t *volumes; /* name -> {kind, source} */
	json_t *logs_ann, *exec_ann, *sealed_ann;
};

/* Sealed values (docs/policy.md, "Sealed values"). A rule whose exact value
 * is a sealed secret (a literal in the YAML, an image Env, a key of a
 * ConfigMap in the file) is marked sealed with the resource it names; a
 * malformed one fails generation. The values of Secrets (and of ConfigMaps
 * not in the file) are not visible here: the annotation
 * io.sealpod.policy/sealed, {"container": {"VAR": ["repo/type/tag", ...]}},
 * marks those variables and lists the resources they may name. */
static int mark_sealed(const struct podctx *pc, json_t *rules, const char *cname, sp_err **err)
{
	const json_t *ann = json_object_get(pc->sealed_ann, cname);
	if (ann && !json_is_object(ann))
		return sp_error(err, SP_ERR_PARSE,
				"annotation io.sealpod.policy/sealed: %s: expected an object {\"VAR\": [\"repo/type/tag\", ...]}",
				cname);
	size_t i;
	json_t *r;
	json_array_foreach(rules, i, r) {
		const char *name = jstr(r, "name"), *val = jstr(r, "value");
		const json_t *listed = name ? json_object_get(ann, name) : NULL;
		if (listed && (!json_is_array(listed) || !json_array_size(listed)))
			return sp_error(err, SP_ERR_PARSE,
					"annotation io.sealpod.policy/sealed: %s.%s: expected a non-empty array of resource paths",
					cname, name);
		json_t *res = NULL;
		if (val && sp_sealed_is_sealed(val, strlen(val))) {
			sp_sealed_secret sec = {0};
			if (sp_sealed_parse(&sec, val, strlen(val), err) < 0) {
				sp_sealed_clear(&sec);
				return sp_error_wrap(err, "container %s env %s", cname, name ? name : "?");
			}
			if (sec.type != SP_SEALED_VAULT || strcmp(sec.provider, "kbs") || sec.resource.host[0]) {
				sp_sealed_clear(&sec);
				return sp_error(err, SP_ERR_UNSUPPORTED,
						"container %s env %s: only sealed secrets of type vault with provider kbs naming the pod's broker (kbs:///repo/type/tag) can be unsealed",
						cname, name ? name : "?");
			}
			_cleanup_free_ char *path = sp_xasprintf("%s/%s/%s", sec.resource.repo, sec.resource.type,
							       sec.resource.tag);
			bool in = !listed || sp_policy_sealed_listed(listed, sec.resource.repo, sec.resource.type,
								     sec.resource.tag);
			sp_sealed_clear(&sec);
			if (!in)
				return sp_error(err, SP_ERR_INVALID,
						"container %s env %s: its sealed value names %s, which annotation io.sealpod.policy/sealed does not list",
						cname, name, path);
			res = listed ? json_deep_copy(listed) : json_pack("[s]", path);
		} else if (listed) {
			if (val)
				return sp_error(err, SP_ERR_INVALID,
						"container %s env %s: annotation io.sealpod.policy/sealed marks it sealed, but its value in the file is not a sealed secret",
						cname, name);
			res = json_deep_copy(listed);
		}
		if (!res)
			continue;
		if (!pc->opts->kbs) {
			json_decref(res);
			return sp_error(err, SP_ERR_INVALID,
					"container %s env %s: a sealed value is unsealed from the pod's key broker: give --kbs URL",
					cname, name ? name : "?");
		}
		json_object_set_new(r, "sealed", res);
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)ann, k, v) {
		bool found = false;
		json_array_foreach(rules, i, r) if (jstr(r, "name") && !strcmp(jstr(r, "name"), k)) found = true;
		if (!found)
			return sp_error(err, SP_ERR_NOT_FOUND,
					"annotation io.sealpod.policy/sealed: container %s has no env variable %s", cname,
					k);
	}
	return 0;
}

static const char *const volume_kinds[] = {"emptyDir", "configMap", "secret", "projected",
					   "downwardAPI", "hostPath"};

static int collect_volumes(struct podctx *pc, sp_err **err)
{
	pc->volumes = json_object();
	json_t *vols = json_object_get(pc->spec, "volumes");
	size_t i;
	json_t *v;
	json_array_foreach(vols, i, v) {
		const char *name = jstr(v, "name");
		const char *kind = NULL;
		for (size_t k = 0; k < SP_ARRAY_LEN(volume_kinds); k++)
			if (json_object_get(v, volume_kinds[k]))
				kind = volume_kinds[k];
		if (!name)
			return sp_error(err, SP_ERR_PARSE, "volumes[%zu]: no name", i);
		if (!kind)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"volume %s: only emptyDir, configMap, secret, projected, downwardAPI "
					"and listed hostPath volumes can run in a confidential pod", name);
		json_t *d = json_pack("{s:s}", "kind", kind);
		if (!strcmp(kind, "hostPath")) {
			const char *path = jstr(jget(v, "hostPath"), "path");
			bool ok = false;
			for (char **a = pc->opts->allow_host_paths; path && a && *a; a++)
				if (!strcmp(*a, path))
					ok = true;
			if (!ok) {
				json_decref(d);
				return sp_error(err, SP_ERR_DENIED,
						"volume %s: hostPath %s is refused; the host is untrusted. If the "
						"pod really needs it, pass --allow-host-path %s", name,
						path ? path : "(none)", path ? path : "PATH");
			}
			json_object_set_new(d, "source", json_string(path));
		}
		json_object_set_new(pc->volumes, name, d);
	}
	/* The service account token kubelet adds (as volume kube-api-access). */
	json_t *am = json_object_get(pc->spec, "automountServiceAccountToken");
	if (!json_is_false(am))
		json_object_set_new(pc->volumes, "kube-api-access", json_pack("{s:s}", "kind", "projected"));
	return 0;
}

static bool listed(const char *list, const char *name)
{
	if (!list)
		return false;
	if (!strcmp(list, "*") || !strcmp(list, "true"))
		return true;
	_cleanup_free_ char *dup = sp_xstrdup(list);
	char *save = NULL;
	for (char *t = strtok_r(dup, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		if (!strcmp(t, name))
			return true;
	return false;
}

/* cgroup v2 keys a generated policy lets the host set (values bounded by
 * the requests and limits; eval_resources.c). */
static const char *const gen_cgroup_keys[] = {"cpu.idle", "cpu.max", "cpu.weight",
					      "memory.high", "memory.low", "memory.max",
					      "memory.min", "memory.oom.group",
					      "memory.swap.max", "pids.max"};

/* A Kubernetes quantity: cpu in millicores (milli true), memory in bytes,
 * rounded up as Kubernetes does. */
static int quantity(const json_t *v, bool milli, int64_t *out, const char *what, sp_err **err)
{
	long double x;
	const char *suf = "";
	_cleanup_free_ char *s = NULL;
	if (json_is_integer(v)) {
		x = (long double)json_integer_value(v);
	} else if (json_is_real(v)) {
		x = (long double)json_real_value(v);
	} else if (json_is_string(v)) {
		s = sp_xstrdup(json_string_value(v));
		char *end = NULL;
		errno = 0;
		x = strtold(s, &end);
		if (end == s || errno)
			goto bad;
		suf = end;
	} else {
		goto bad;
	}
	static const struct { const char *s; long double m; } sufs[] = {
		{"", 1}, {"m", 1e-3L}, {"k", 1e3L}, {"M", 1e6L}, {"G", 1e9L}, {"T", 1e12L},
		{"P", 1e15L}, {"E", 1e18L}, {"Ki", 1024.0L}, {"Mi", 1048576.0L},
		{"Gi", 1073741824.0L}, {"Ti", 1099511627776.0L}, {"Pi", 1125899906842624.0L},
		{"Ei", 1152921504606846976.0L}};
	bool found = false;
	for (size_t i = 0; i < SP_ARRAY_LEN(sufs); i++)
		if (!strcmp(suf, sufs[i].s)) {
			x *= sufs[i].m;
			found = true;
		}
	if (!found || x < 0)
		goto bad;
	if (milli)
		x *= 1000;
	if (x > (long double)INT64_MAX / 2)
		goto bad;
	*out = (int64_t)x;
	if ((long double)*out < x - 1e-9L) /* round up, as Kubernetes does */
		(*out)++;
	return 0;
bad:
	return sp_error(err, SP_ERR_PARSE, "%s: not a Kubernetes quantity", what);
}

/* containers[].resources: the YAML's requests and limits (cpu, memory)
 * and the cgroup keys the host may set within them. */
static int gen_resources(const json_t *cont, const char *cname, json_t *c, sp_err **err)
{
	json_t *res = json_object();
	json_object_set_new(c, "resources", res);
	static const char *const which[] = {"requests", "limits"};
	for (int w = 0; w < 2; w++) {
		json_t *o = jget(cont, w ? "resources.limits" : "resources.requests");
		json_t *r = json_object();
		for (int k = 0; k < 2; k++) {
			const char *key = k ? "memory" : "cpu";
			json_t *v = json_object_get(o, key);
			int64_t n = 0;
			if (!v)
				continue;
			_cleanup_free_ char *what = sp_xasprintf("container %s: resources.%s.%s", cname,
								 which[w], key);
			if (quantity(v, !k, &n, what, err) < 0) {
				json_decref(r);
				return (*err)->code;
			}
			json_object_set_new(r, key, json_integer(n));
		}
		if (json_object_size(r))
			json_object_set_new(res, which[w], r);
		else
			json_decref(r);
	}
	/* Kubernetes: a request without a limit... and a limit without a
	 * request: the request is the limit. */
	json_t *rq = json_object_get(res, "requests"), *lm = json_object_get(res, "limits");
	for (int k = 0; lm && k < 2; k++) {
		const char *key = k ? "memory" : "cpu";
		if (json_object_get(lm, key) && !json_object_get(rq, key)) {
			if (!rq) {
				rq = json_object();
				json_object_set_new(res, "requests", rq);
			}
			json_object_set(rq, key, json_object_get(lm, key));
		}
		json_t *a = json_object_get(rq, key), *b = json_object_get(lm, key);
		if (a && b && json_integer_value(a) > json_integer_value(b))
			return sp_error(err, SP_ERR_PARSE, "container %s: resources.requests.%s is above its limit",
					cname, key);
	}
	json_object_set_new(res, "cgroup_keys", strv_json(gen_cgroup_keys, SP_ARRAY_LEN(gen_cgroup_keys)));
	return 0;
}

static int gen_container(struct podctx *pc, const json_t *cont, bool init, json_t **out, sp_err **err)
{
	const char *cname = jstr(cont, "name"), *image = jstr(cont, "image");
	if (!cname || !image)
		return sp_error(err, SP_ERR_PARSE, "a container without name or image");
	sp_policy_image img = {0};
	if (!pc->opts->resolve)
		return sp_error(err, SP_ERR_INVALID, "no image source: give --image-dir or --registry");
	if (pc->opts->resolve(pc->opts->resolve_ctx, image, &img, err) < 0) {
		/* The image module's messages usually name the image already. */
		if (err && *err && strstr(sp_err_msg(*err), image))
			return sp_error_wrap(err, "container %s", cname);
		return sp_error_wrap(err, "container %s: image %s", cname, image);
	}
	int rc = -1;
	json_t *c = json_object();
	struct envset e = {json_array()};
	json_t *psc = (json_t *)pc->psc, *csc = json_object_get(cont, "securityContext");

	/* env first: args may refer to it. */
	json_t *esl = json_object_get(pc->spec, "enableServiceLinks");
	if (build_env(&e, cont, &img, pc->meta, pc->kind, pc->cms, !json_is_false(esl), err) < 0 ||
	    mark_sealed(pc, e.rules, cname, err) < 0)
		goto out;

	/* Kubernetes: command replaces Entrypoint (and drops Cmd); args
	 * replaces Cmd. */
	json_t *cmd = json_object_get(cont, "command"), *args = json_object_get(cont, "args");
	json_t *argv = json_array();
	json_object_set_new(c, "args", argv);
	json_t *src[2];
	json_t *ep = NULL, *ic = NULL;
	if (img.entrypoint)
		ep = json_array();
	for (char **p = img.entrypoint; p && *p; p++)
		json_array_append_new(ep, json_string(*p));
	if (img.cmd)
		ic = json_array();
	for (char **p = img.cmd; p && *p; p++)
		json_array_append_new(ic, json_string(*p));
	if (cmd) {
		src[0] = cmd;
		src[1] = args;
	} else {
		src[0] = ep;
		src[1] = args ? args : ic;
	}
	for (int s = 0; s < 2; s++) {
		size_t i;
		json_t *a;
		json_array_foreach(src[s], i, a) {
			_cleanup_free_ char *x = NULL;
			_cleanup_free_ char *what = sp_xasprintf("container %s %s", cname, s ? "args" : "command");
			if (!json_is_string(a)) {
				sp_error(err, SP_ERR_PARSE, "%s[%zu]: expected a string", what, i);
				json_decref(ep);
				json_decref(ic);
				goto out;
			}
			if ((s == 0 && !cmd) || (s == 1 && !cmd && !args))
				x = sp_xstrdup(json_string_value(a)); /* image values are not expanded */
			else if (expand(&e, json_string_value(a), &x, what, err) < 0) {
				json_decref(ep);
				json_decref(ic);
				goto out;
			}
			json_array_append_new(argv, json_string(x));
		}
	}
	json_decref(ep);
	json_decref(ic);
	if (!json_array_size(argv)) {
		sp_error(err, SP_ERR_PARSE, "container %s: no command (the image has no Entrypoint or Cmd)", cname);
		goto out;
	}

	json_object_set_new(c, "name", json_string(cname));
	if (init)
		json_object_set_new(c, "init", json_true());
	json_object_set_new(c, "image", json_string(img.reference));
	json_object_set_new(c, "env", json_incref(e.rules));
	const char *wd = jstr(cont, "workingDir");
	json_object_set_new(c, "cwd", json_string(wd && wd[0] ? wd : img.working_dir && img.working_dir[0] ? img.working_dir : "/"));

	int64_t uid = 0, gid = 0;
	if (parse_image_user(img.user, &uid, &gid, cname, err) < 0) {
		json_t *ru = sc_get(csc, psc, "runAsUser");
		if (!json_is_integer(ru))
			goto out;
		sp_err_clear(err);
	}
	json_t *ru = sc_get(csc, psc, "runAsUser"), *rg = sc_get(csc, psc, "runAsGroup");
	if (json_is_integer(ru))
		uid = json_integer_value(ru);
	if (json_is_integer(rg))
		gid = json_integer_value(rg);
	json_t *groups = json_array();
	json_t *sg = json_object_get(psc, "supplementalGroups");
	size_t i;
	json_t *g;
	json_array_foreach(sg, i, g) if (json_is_integer(g)) json_array_append(groups, g);
	json_t *fsg = json_object_get(psc, "fsGroup");
	if (json_is_integer(fsg))
		json_array_append(groups, fsg);
	json_object_set_new(c, "user", json_pack("{s:I, s:I, s:o}", "uid", (json_int_t)uid, "gid", (json_int_t)gid,
						 "groups", groups));

	bool priv = json_is_true(jget(csc, "privileged"));
	if (priv)
		json_object_set_new(c, "privileged", json_true());
	json_object_set_new(c, "capabilities", capabilities(csc, priv));
	json_t *ape = jget(csc, "allowPrivilegeEscalation");
	if (json_is_false(ape) && !priv)
		json_object_set_new(c, "no_new_privileges", json_true());
	if (json_is_true(jget(csc, "readOnlyRootFilesystem")))
		json_object_set_new(c, "read_only_root", json_true());
	if (json_is_true(json_object_get(cont, "tty")))
		json_object_set_new(c, "terminal", json_true());
	if (json_is_true(json_object_get(cont, "stdin")))
		json_object_set_new(c, "stdin", json_true());
	if (listed(json_string_value(pc->logs_ann), cname))
		json_object_set_new(c, "logs", json_true());

	/* Mounts. */
	json_t *mounts = json_array();
	json_object_set_new(c, "mounts", mounts);
	json_t *vms = json_object_get(cont, "volumeMounts");
	json_t *vm;
	bool has_sa = false;
	json_array_foreach(vms, i, vm) {
		const char *vn = jstr(vm, "name"), *mp = jstr(vm, "mountPath");
		json_t *vol = vn ? json_object_get(pc->volumes, vn) : NULL;
		if (!vol || !mp) {
			sp_error(err, SP_ERR_PARSE, "container %s: volumeMounts[%zu] names no volume of the pod (%s)",
				 cname, i, vn ? vn : "no name");
			goto out;
		}
		const char *kind = jstr(vol, "kind");
		bool ro = json_is_true(json_object_get(vm, "readOnly")) ||
			  (strcmp(kind, "emptyDir") && strcmp(kind, "hostPath"));
		_cleanup_free_ char *dest = sp_policy_path_normalize(mp);
		if (!dest) {
			sp_error(err, SP_ERR_PARSE, "container %s: mountPath %s must be absolute, without ..", cname, mp);
			goto out;
		}
		json_t *m = json_pack("{s:s, s:s, s:s}", "destination", dest, "kind", kind, "volume", vn);
		if (ro)
			json_object_set_new(m, "read_only", json_true());
		if (jstr(vm, "subPath") && jstr(vm, "subPath")[0])
			json_object_set_new(m, "sub_path", json_string(jstr(vm, "subPath")));
		if (jstr(vol, "source"))
			json_object_set_new(m, "source", json_string(jstr(vol, "source")));
		if (!strcmp(dest, "/var/run/secrets/kubernetes.io/serviceaccount"))
			has_sa = true;
		json_array_append_new(mounts, m);
	}
	if (!has_sa && json_object_get(pc->volumes, "kube-api-access"))
		json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "destination",
							"/var/run/secrets/kubernetes.io/serviceaccount", "kind",
							"projected", "volume", "kube-api-access", "read_only", 1));

	json_object_set_new(c, "namespaces",
			    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "cgroup", "new", "ipc", "pod", "mount",
				      "new", "network", "pod", "pid",
				      json_is_true(json_object_get(pc->spec, "shareProcessNamespace")) ? "pod" : "new",
				      "uts", "pod"));
	json_t *sysctls = json_object();
	json_t *s;
	json_array_foreach(json_object_get(psc, "sysctls"), i, s) if (jstr(s, "name") && jstr(s, "value"))
		json_object_set_new(sysctls, jstr(s, "name"), json_string(jstr(s, "value")));
	if (json_object_size(sysctls))
		json_object_set_new(c, "sysctls", sysctls);
	else
		json_decref(sysctls);

	const char *sct = jstr(sc_get(csc, psc, "seccompProfile"), "type");
	if (sct && !strcmp(sct, "RuntimeDefault"))
		json_object_set_new(c, "seccomp", seccomp_default());
	else if (sct && strcmp(sct, "Unconfined")) {
		sp_error(err, SP_ERR_UNSUPPORTED, "container %s: seccompProfile %s is not supported "
			 "(RuntimeDefault or Unconfined)", cname, sct);
		goto out;
	}
	const char *aat = jstr(sc_get(csc, psc, "appArmorProfile"), "type");
	if (aat && !strcmp(aat, "Localhost")) {
		const char *prof = jstr(sc_get(csc, psc, "appArmorProfile"), "localhostProfile");
		json_object_set_new(c, "apparmor", json_string(prof ? prof : ""));
	}
	if (!priv && !(jstr(csc, "procMount") && !strcmp(jstr(csc, "procMount"), "Unmasked"))) {
		json_object_set_new(c, "masked_paths", strv_json(masked_paths, SP_ARRAY_LEN(masked_paths)));
		json_object_set_new(c, "readonly_paths", strv_json(readonly_paths, SP_ARRAY_LEN(readonly_paths)));
	}

	if (gen_resources(cont, cname, c, err) < 0)
		goto out;

	json_t *exec = json_array();
	add_probe(exec, json_object_get(cont, "livenessProbe"));
	add_probe(exec, json_object_get(cont, "readinessProbe"));
	add_probe(exec, json_object_get(cont, "startupProbe"));
	add_probe(exec, jget(cont, "lifecycle.postStart"));
	add_probe(exec, jget(cont, "lifecycle.preStop"));
	json_t *extra = json_object_get(pc->exec_ann, cname);
	json_array_foreach(extra, i, s) {
		if (!is_strv_nonempty(s)) {
			json_decref(exec);
			sp_error(err, SP_ERR_PARSE, "annotation io.sealpod.policy/exec: %s[%zu] is not a command",
				 cname, i);
			goto out;
		}
		json_array_append(exec, s);
	}
	if (json_array_size(exec))
		json_object_set_new(c, "exec", exec);
	else
		json_decref(exec);
	*out = json_incref(c);
	rc = 0;
out:
	json_decref(c);
	json_decref(e.rules);
	sp_policy_image_clear(&img);
	return rc < 0 ? (*err)->code : 0;
}

int sp_policy_generate(const json_t *object, const json_t *config_maps,
		       const sp_policy_gen_opts *opts, json_t **out, sp_err **err)
{
	*out = NULL;
	const char *kind = jstr(object, "kind");
	if (!kind)
		return 0;
	const json_t *tmpl;
	if (!strcmp(kind, "Pod"))
		tmpl = object;
	else if (!strcmp(kind, "Deployment") || !strcmp(kind, "StatefulSet") || !strcmp(kind, "DaemonSet") ||
		 !strcmp(kind, "ReplicaSet") || !strcmp(kind, "Job") || !strcmp(kind, "ReplicationController"))
		tmpl = jget(object, "spec.template");
	else if (!strcmp(kind, "CronJob"))
		tmpl = jget(object, "spec.jobTemplate.spec.template");
	else
		return 0;
	struct podctx pc = {.obj = object, .kind = kind, .opts = opts, .cms = config_maps};
	pc.spec = json_object_get(tmpl, "spec");
	if (!json_is_object(pc.spec))
		return sp_error(err, SP_ERR_PARSE, "%s: no pod spec", kind);
	/* Names and namespace: the object's (a template's own name is unused). */
	json_t *meta = json_deep_copy(json_object_get(tmpl, "metadata"));
	if (!json_is_object(meta)) {
		json_decref(meta);
		meta = json_object();
	}
	const json_t *ometa = json_object_get(object, "metadata");
	if (jstr(ometa, "namespace"))
		json_object_set_new(meta, "namespace", json_string(jstr(ometa, "namespace")));
	if (!strcmp(kind, "Pod") && jstr(ometa, "name"))
		json_object_set_new(meta, "name", json_string(jstr(ometa, "name")));
	pc.meta = meta;
	pc.psc = json_object_get(pc.spec, "securityContext");
	json_t *ann = json_object_get(meta, "annotations");
	pc.logs_ann = json_object_get(ann, "io.sealpod.policy/logs");
	int rc = -1;
	json_t *pol = NULL, *exec_ann = NULL, *req_ann = NULL, *sealed_ann = NULL;
	if (jstr(ann, "io.sealpod.policy/exec") &&
	    sp_json_parse(&exec_ann, jstr(ann, "io.sealpod.policy/exec"), strlen(jstr(ann, "io.sealpod.policy/exec")),
			  "annotation io.sealpod.policy/exec", err) < 0)
		goto out;
	if (jstr(ann, "io.sealpod.policy/requests") &&
	    sp_json_parse(&req_ann, jstr(ann, "io.sealpod.policy/requests"),
			  strlen(jstr(ann, "io.sealpod.policy/requests")), "annotation io.sealpod.policy/requests", err) < 0)
		goto out;
	pc.exec_ann = exec_ann;
	if (jstr(ann, "io.sealpod.policy/sealed") &&
	    (sp_json_parse(&sealed_ann, jstr(ann, "io.sealpod.policy/sealed"),
			   strlen(jstr(ann, "io.sealpod.policy/sealed")), "annotation io.sealpod.policy/sealed",
			   err) < 0 ||
	     !json_is_object(sealed_ann))) {
		if (sealed_ann)
			sp_error(err, SP_ERR_PARSE,
				 "annotation io.sealpod.policy/sealed: expected a JSON object {\"container\": {\"VAR\": [\"repo/type/tag\"]}}");
		goto out;
	}
	pc.sealed_ann = sealed_ann;
	{
		const char *cn;
		json_t *cv;
		json_object_foreach(sealed_ann, cn, cv) {
			bool found = false;
			static const char *const ls[] = {"initContainers", "containers"};
			for (int l = 0; l < 2; l++) {
				size_t ci;
				json_t *cont;
				json_array_foreach(json_object_get(pc.spec, ls[l]), ci, cont) if (
					jstr(cont, "name") && !strcmp(jstr(cont, "name"), cn)) found = true;
			}
			if (!found) {
				sp_error(err, SP_ERR_NOT_FOUND,
					 "annotation io.sealpod.policy/sealed: the pod has no container %s", cn);
				goto out;
			}
		}
	}
	static const char *const host_ns[] = {"hostNetwork", "hostPID", "hostIPC", "hostUsers"};
	for (size_t i = 0; i < 3; i++)
		if (json_is_true(json_object_get(pc.spec, host_ns[i]))) {
			sp_error(err, SP_ERR_UNSUPPORTED, "%s: a confidential pod runs in its own VM; "
				 "it cannot share the host's namespaces", host_ns[i]);
			goto out;
		}
	if (collect_volumes(&pc, err) < 0)
		goto out;

	pol = json_object();
	json_object_set_new(pol, "version", json_integer(SP_POLICY_VERSION));
	json_t *pod = json_object();
	if (!strcmp(kind, "Pod") && jstr(meta, "name"))
		json_object_set_new(pod, "name", json_string(jstr(meta, "name")));
	if (jstr(meta, "namespace"))
		json_object_set_new(pod, "namespace", json_string(jstr(meta, "namespace")));
	if (json_is_true(json_object_get(pc.spec, "shareProcessNamespace")))
		json_object_set_new(pod, "share_process_namespace", json_true());
	json_object_set_new(pol, "pod", pod);

	json_t *copy = json_array();
	const char *vn;
	json_t *v;
	json_object_foreach(pc.volumes, vn, v) {
		const char *k = jstr(v, "kind");
		if (!strcmp(k, "configMap") || !strcmp(k, "secret") || !strcmp(k, "projected") ||
		    !strcmp(k, "downwardAPI"))
			json_array_append_new(copy, json_sprintf(SP_POLICY_VOLUME_ROOT "/%s/%s",
								 !strcmp(k, "configMap") ? "configmap"
								 : !strcmp(k, "downwardAPI") ? "downwardapi" : k, vn));
	}
	/* Sealed Secret volume files (docs/policy.md, "Sealed values"): the
	 * annotation io.sealpod.policy/sealed-files, {"volume": {"key":
	 * ["repo/type/tag", ...]}}, marks keys of secret (or projected)
	 * volumes; the agent unseals them into the container's own copy. */
	json_t *sealed_files = NULL;
	if (jstr(ann, "io.sealpod.policy/sealed-files")) {
		const char *sa = jstr(ann, "io.sealpod.policy/sealed-files");
		json_t *sfa = NULL;
		if (sp_json_parse(&sfa, sa, strlen(sa), "annotation io.sealpod.policy/sealed-files",
				  err) < 0) {
			json_decref(copy);
			goto out;
		}
		sealed_files = json_object();
		const char *svn;
		json_t *sv;
		json_object_foreach(json_is_object(sfa) ? sfa : NULL, svn, sv) {
			const json_t *vol = json_object_get(pc.volumes, svn);
			const char *vk = vol ? jstr(vol, "kind") : NULL;
			if (!vk || (strcmp(vk, "secret") && strcmp(vk, "projected"))) {
				sp_error(err, SP_ERR_INVALID,
					 "annotation io.sealpod.policy/sealed-files: %s is not a secret or projected volume of the pod",
					 svn);
				break;
			}
			if (!json_is_object(sv) || !json_object_size(sv)) {
				sp_error(err, SP_ERR_PARSE,
					 "annotation io.sealpod.policy/sealed-files: %s: expected an object {\"key\": [\"repo/type/tag\", ...]}",
					 svn);
				break;
			}
			_cleanup_free_ char *dir = sp_xasprintf(SP_POLICY_VOLUME_ROOT "/%s/%s", vk, svn);
			json_object_set(sealed_files, dir, sv);
		}
		bool bad = json_object_size(sealed_files) != (json_is_object(sfa) ? json_object_size(sfa) : 1);
		if (!json_is_object(sfa))
			sp_error(err, SP_ERR_PARSE,
				 "annotation io.sealpod.policy/sealed-files: expected a JSON object {\"volume\": {\"key\": [\"repo/type/tag\"]}}");
		else if (!bad && json_object_size(sealed_files) && !pc.opts->kbs)
			bad = sp_error(err, SP_ERR_INVALID,
				       "annotation io.sealpod.policy/sealed-files: sealed files are unsealed from the pod's key broker: give --kbs URL") < 0;
		json_decref(sfa);
		if (bad) {
			json_decref(sealed_files);
			json_decref(copy);
			goto out;
		}
	}
	/* Every pod gets its network from the host (CNI, or `sealpod run`):
	 * UpdateInterface/UpdateRoutes before the first container
	 * (docs/network.md). */
	json_t *reqs = json_pack("{s:o, s:b, s:b, s:b}", "copy_file", copy, "network", 1, "stats", 1,
				 "update_container", 1);
	if (sealed_files && json_object_size(sealed_files))
		json_object_set(reqs, "sealed_files", sealed_files);
	json_decref(sealed_files);
	if (json_is_object(req_ann))
		json_object_update(reqs, req_ann);
	json_object_set_new(pol, "requests", reqs);

	if (json_array_size(pc.opts->registries))
		json_object_set_new(pol, "registries", json_deep_copy(pc.opts->registries));
	if (pc.opts->kbs)
		json_object_set_new(pol, "kbs", json_deep_copy(pc.opts->kbs));

	json_t *cs = json_array();
	json_object_set_new(pol, "containers", cs);
	static const char *const lists[] = {"initContainers", "containers"};
	for (int l = 0; l < 2; l++) {
		size_t i;
		json_t *cont;
		json_array_foreach(json_object_get(pc.spec, lists[l]), i, cont) {
			json_t *c = NULL;
			if (gen_container(&pc, cont, l == 0, &c, err) < 0)
				goto out;
			json_array_append_new(cs, c);
		}
	}
	if (!json_array_size(cs)) {
		sp_error(err, SP_ERR_PARSE, "%s: the pod has no containers", kind);
		goto out;
	}
	/* The result must load: generation and evaluation share one schema. */
	sp_policy *check = NULL;
	if (sp_policy_load_json(&check, pol, err) < 0) {
		sp_error_wrap(err, "generated policy");
		goto out;
	}
	sp_policy_free(check);
	*out = json_incref(pol);
	rc = 0;
out:
	json_decref(pol);
	json_decref(exec_ann);
	json_decref(req_ann);
	json_decref(sealed_ann);
	json_decref(pc.volumes);
	json_decref(meta);
	return rc < 0 ? (*err)->code : 0;
}
