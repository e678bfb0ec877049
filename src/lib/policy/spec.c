/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime-spec config.json a policy container allows. `sealpod run`
 * and the shim send this as-is, so what the generator wrote and what the
 * evaluator accepts cannot drift apart: they are built from one entry. */
#include <string.h>

#include "internal.h"
#include "sealpod/json.h"

static json_t *strv_or_empty(const json_t *a)
{
	return a ? json_deep_copy(a) : json_array();
}

static json_t *mount(const char *dest, const char *type, const char *src, const char *opts)
{
	json_t *m = json_pack("{s:s, s:s, s:s}", "destination", dest, "type", type, "source", src);
	json_t *o = json_array();
	char *dup = sp_xstrdup(opts), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(o, json_string(t));
	free(dup);
	json_object_set_new(m, "options", o);
	return m;
}

static int build_env(const struct pcontainer *c, const json_t *values, json_t *env, sp_err **err)
{
	for (size_t i = 0; i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (!r->name)
			continue;
		if (r->value) {
			json_array_append_new(env, json_sprintf("%s=%s", r->name, r->value));
			continue;
		}
		json_t *v = values ? json_object_get(values, r->name) : NULL;
		if (!v) {
			if (r->optional)
				continue;
			return sp_error(err, SP_ERR_NOT_FOUND,
					"container %s: env %s comes from %s at run time; give its value",
					c->name, r->name, r->from ? r->from : "outside the policy");
		}
		if (!json_is_string(v) || !sp_policy_re_match(&r->value_re, json_string_value(v)))
			return sp_error(err, SP_ERR_INVALID,
					"container %s: the value given for env %s does not match /%s/",
					c->name, r->name, r->pattern);
		json_array_append_new(env, json_sprintf("%s=%s", r->name, json_string_value(v)));
	}
	/* Values for name patterns (service links): added when they fit. */
	const char *k;
	json_t *v;
	if (values)
		json_object_foreach((json_t *)values, k, v) {
			bool named = false, fits = false;
			for (size_t i = 0; i < c->n_env; i++)
				if (c->env[i].name && !strcmp(c->env[i].name, k))
					named = true;
			for (size_t i = 0; !named && json_is_string(v) && i < c->n_env; i++) {
				const struct env_rule *r = &c->env[i];
				if (r->has_name_re && sp_policy_re_match(&r->name_re, k) &&
				    (r->value ? !strcmp(r->value, json_string_value(v))
					      : sp_policy_re_match(&r->value_re, json_string_value(v))))
					fits = true;
			}
			if (fits)
				json_array_append_new(env, json_sprintf("%s=%s", k, json_string_value(v)));
		}
	return 0;
}

json_t *sp_policy_spec_build(const struct pcontainer *c, json_t *env)
{
	json_t *caps = json_object();
	for (int s = 0; s < SP_CAP_SETS; s++)
		json_object_set_new(caps, sp_policy_cap_sets[s], strv_or_empty(c->caps[s]));
	json_t *user = json_pack("{s:I, s:I, s:o}", "uid", (json_int_t)c->uid, "gid", (json_int_t)c->gid,
				 "additionalGids", c->groups ? json_deep_copy(c->groups) : json_array());
	json_t *proc = json_pack("{s:b, s:o, s:o, s:o, s:s, s:o, s:b}", "terminal", c->terminal,
				 "user", user, "args", json_deep_copy(c->args), "env", env, "cwd", c->cwd,
				 "capabilities", caps, "noNewPrivileges", c->no_new_privs);
	if (c->apparmor[0])
		json_object_set_new(proc, "apparmorProfile", json_string(c->apparmor));

	json_t *mounts = json_array();
	const char *ro_sys = c->privileged ? "nosuid,noexec,nodev,rw" : "nosuid,noexec,nodev,ro";
	json_array_append_new(mounts, mount("/proc", "proc", "proc", "nosuid,noexec,nodev"));
	json_array_append_new(mounts, mount("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
	json_array_append_new(mounts, mount("/dev/pts", "devpts", "devpts",
					    "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
	json_array_append_new(mounts, mount("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
	json_array_append_new(mounts, mount("/sys", "sysfs", "sysfs", ro_sys));
	json_array_append_new(mounts, mount("/sys/fs/cgroup", "cgroup", "cgroup",
					    c->privileged ? "nosuid,noexec,nodev,relatime,rw"
							  : "nosuid,noexec,nodev,relatime,ro"));
	json_array_append_new(mounts, mount("/dev/shm", "bind", SP_POLICY_VOLUME_ROOT "/shm",
					    "rbind,nosuid,nodev,noexec"));
	json_array_append_new(mounts, mount("/etc/hostname", "bind", SP_POLICY_VOLUME_ROOT "/etc/hostname", "rbind,rprivate,rw"));
	json_array_append_new(mounts, mount("/etc/hosts", "bind", SP_POLICY_VOLUME_ROOT "/etc/hosts", "rbind,rprivate,rw"));
	json_array_append_new(mounts, mount("/etc/resolv.conf", "bind", SP_POLICY_VOLUME_ROOT "/etc/resolv.conf", "rbind,rprivate,rw"));
	for (size_t i = 0; i < c->n_mounts; i++) {
		const struct mount_rule *m = &c->mounts[i];
		json_array_append_new(mounts, mount(m->destination, "bind", m->source,
						    m->read_only ? "rbind,rprivate,ro" : "rbind,rprivate,rw"));
	}

	json_t *nss = json_array();
	for (int t = 0; t < SP_NS_TYPES; t++) {
		if (!c->ns[t])
			continue;
		json_t *n = json_pack("{s:s}", "type", sp_policy_ns_types[t]);
		if (!strcmp(c->ns[t], "pod"))
			json_object_set_new(n, "path", json_sprintf(SP_POLICY_VOLUME_ROOT "/ns/%s", sp_policy_ns_types[t]));
		json_array_append_new(nss, n);
	}
	json_t *lx = json_pack("{s:o, s:{s:[{s:b, s:s}]}}", "namespaces", nss, "resources",
				  "devices", "allow", 0, "access", "rwm");
	if (c->sysctls && json_object_size(c->sysctls))
		json_object_set_new(lx, "sysctl", json_deep_copy(c->sysctls));
	if (c->devices && json_array_size(c->devices)) {
		json_t *devs = json_array();
		size_t i;
		json_t *d;
		json_array_foreach(c->devices, i, d) {
			json_t *o = json_object();
			static const char *const map[][2] = {{"path", "path"}, {"type", "type"}, {"major", "major"},
							     {"minor", "minor"}, {"file_mode", "fileMode"},
							     {"uid", "uid"}, {"gid", "gid"}};
			for (size_t k = 0; k < SP_ARRAY_LEN(map); k++) {
				json_t *v = json_object_get(d, map[k][0]);
				if (v)
					json_object_set_new(o, map[k][1], json_deep_copy(v));
			}
			json_array_append_new(devs, o);
		}
		json_object_set_new(lx, "devices", devs);
	}
	if (c->seccomp)
		/* A copy: callers edit specs, never the policy. */
		json_object_set_new(lx, "seccomp", json_deep_copy(json_object_get(c->j, "seccomp")));
	if (c->masked_paths)
		json_object_set_new(lx, "maskedPaths", json_deep_copy(c->masked_paths));
	if (c->readonly_paths)
		json_object_set_new(lx, "readonlyPaths", json_deep_copy(c->readonly_paths));

	json_t *spec = json_pack("{s:s, s:o, s:{s:s, s:b}, s:o, s:o}", "ociVersion", "1.1.0",
				 "process", proc, "root", "path", "rootfs", "readonly", c->read_only_root,
				 "mounts", mounts, "linux", lx);
	if (!spec)
		sp_oom();
	return spec;
}

int sp_policy_container_spec(const sp_policy *p, size_t index, const json_t *values,
			     json_t **out, sp_err **err)
{
	*out = NULL;
	if (index >= p->n_c)
		return sp_error(err, SP_ERR_NOT_FOUND, "policy has no container %zu", index);
	const struct pcontainer *c = &p->c[index];
	json_t *env = json_array();
	if (build_env(c, values, env, err) < 0) {
		json_decref(env);
		return (*err)->code;
	}
	*out = sp_policy_spec_build(c, env);
	return 0;
}

/* The marker that stands for the env entries in the serialised template. */
#define ENV_MARK "@@sealpod:env@@"

int sp_policy_spec_template(struct pcontainer *c)
{
	c->tmpl = sp_policy_spec_build(c, json_array());
	/* The bytes the host sends (sp_sandbox_create_container: the
	 * canonical form of this very builder's output), split around the
	 * env entries, for the fast path (eval_container.c). */
	_cleanup_json_ json_t *marked = sp_policy_spec_build(c, json_pack("[s]", ENV_MARK));
	_cleanup_free_ char *b = sp_json_dump_canonical(marked);
	static const char mark[] = "\"env\":[\"" ENV_MARK "\"]";
	char *at = strstr(b, mark);
	if (!at || strstr(at + 1, mark))
		return 0; /* not unique (a seccomp key "env"?): no fast path */
	size_t pre = (size_t)(at - b) + strlen("\"env\":[");
	c->fast_pre = sp_xstrndup(b, pre);
	c->fast_post = sp_xstrdup(at + strlen(mark) - 1);
	c->fast_pre_len = pre;
	c->fast_post_len = strlen(c->fast_post);
	return 0;
}
