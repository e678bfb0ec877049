/* SPDX-License-Identifier: Apache-2.0 */
/* CreateContainer and ExecProcess: the runtime-spec JSON the host sends is
 * compared field by field with the policy container it names. Every key
 * of the spec is either checked or explicitly ignored (with the reason
 * next to it); an unknown key is a denial. */
#include <string.h>

#include "internal.h"
#include "sealpod/json.h"

#define MAX_SPEC (1u << 20)

static char *q(const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *r = j ? sp_policy_render(j) : sp_xstrdup("(not UTF-8)");
	json_decref(j);
	return r;
}

/* "<prefix><rendered v>" as a new string. */
static char *prefixed(const char *prefix, const json_t *v)
{
	_cleanup_free_ char *r = sp_policy_render(v);
	return sp_xasprintf("%s%s", prefix, r);
}

static bool keys_ok(struct sp_eval *e, const json_t *obj, const char *const *allowed,
		    const char *path)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(k, *a))
				ok = true;
		if (!ok)
			return sp_eval_deny(e, sp_xstrdup("no such key (sealpod does not allow it)"),
					    sp_policy_render(v), "%s.%s", path, k);
	}
	return true;
}

/* A key that must be absent, null, empty or false. */
static bool empty_or_absent(struct sp_eval *e, const json_t *obj, const char *key,
			    const char *path)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v) || json_is_false(v) ||
	    (json_is_string(v) && !json_string_length(v)) ||
	    ((json_is_array(v) && !json_array_size(v))) || (json_is_object(v) && !json_object_size(v)))
		return true;
	return sp_eval_deny(e, sp_xstrdup("nothing (sealpod refuses it)"), sp_policy_render(v),
			    "%s.%s", path, key);
}

static bool str_in(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
	return false;
}

/* Every string of `a` is in `b`. A NULL array is empty. */
static bool subset(const json_t *a, const json_t *b)
{
	size_t i;
	json_t *v;
	if (!a)
		return true;
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || !b || !str_in(b, json_string_value(v)))
			return false;
	}
	return true;
}

static bool is_strv(const json_t *a)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

static const json_t *empty_array(void)
{
	static json_t *e;
	if (!e)
		e = json_array();
	return e;
}

bool sp_eval_env_entry(const struct pcontainer *c, struct sp_eval *e, const char *entry,
		       const char *path, int *rule_out)
{
	const char *eq = strchr(entry, '=');
	if (!eq || eq == entry)
		return sp_eval_deny(e, sp_xstrdup("NAME=value"), q(entry), "%s", path);
	size_t nl = (size_t)(eq - entry);
	const char *val = eq + 1;
	_cleanup_free_ char *name = sp_xstrndup(entry, nl);
	for (size_t i = 0; i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (!r->name || strcmp(r->name, name))
			continue;
		if (r->value ? !strcmp(r->value, val) : sp_policy_re_match(&r->value_re, val)) {
			*rule_out = (int)i;
			return true;
		}
		char *exp = r->value ? (r->secret ? sp_xstrdup("the value from a Secret") : q(r->value))
				     : sp_xasprintf("a value matching /%s/%s%s%s", r->pattern,
						    r->from ? " (from " : "", r->from ? r->from : "",
						    r->from ? ")" : "");
		char *got = r->secret ? sp_xstrdup("another value (from a Secret: not shown)") : q(val);
		return sp_eval_deny(e, exp, got, "%s (%s)", path, name);
	}
	for (size_t i = 0; i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (!r->has_name_re || !sp_policy_re_match(&r->name_re, name))
			continue;
		if (r->value ? !strcmp(r->value, val) : sp_policy_re_match(&r->value_re, val)) {
			*rule_out = (int)i;
			return true;
		}
	}
	return sp_eval_deny(e, sp_xstrdup("no such variable (the policy does not list it)"), q(entry),
			    "%s", path);
}

static bool check_env(const struct pcontainer *c, struct sp_eval *e, const json_t *env,
		      const char *base, bool require_all)
{
	if (env && !is_strv(env))
		return sp_eval_deny(e, sp_xstrdup("an array of NAME=value strings"), sp_policy_render(env),
				    "%s.env", base);
	size_t n = env ? json_array_size(env) : 0;
	bool seen_small[64] = {0};
	bool *seen = c->n_env <= 64 ? seen_small : sp_xcalloc(c->n_env, 1);
	bool ok = true;
	for (size_t i = 0; ok && i < n; i++) {
		const char *s = json_string_value(json_array_get(env, i));
		_cleanup_free_ char *p = sp_xasprintf("%s.env[%zu]", base, i);
		int rule = -1;
		if (!sp_eval_env_entry(c, e, s, p, &rule)) {
			ok = false;
			break;
		}
		/* A name given twice would let the later one shadow the checked one. */
		size_t nl = strcspn(s, "=");
		for (size_t k = 0; k < i; k++) {
			const char *o = json_string_value(json_array_get(env, k));
			if (strcspn(o, "=") == nl && !strncmp(o, s, nl)) {
				bool secret = rule >= 0 && c->env[rule].secret;
				ok = sp_eval_deny(e, sp_xstrdup("each variable once"),
						  secret ? sp_xasprintf("%.*s twice (from a Secret: value not shown)", (int)nl, s)
							 : q(s), "%s", p);
				break;
			}
		}
		if (rule >= 0 && c->env[rule].name)
			seen[rule] = true;
	}
	for (size_t i = 0; ok && require_all && i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (r->name && !r->optional && !seen[i])
			ok = sp_eval_deny(e, sp_xasprintf("%s to be set", r->name), sp_xstrdup("(absent)"),
					  "%s.env", base);
	}
	if (seen != seen_small)
		free(seen);
	return ok;
}

static bool set_equal(const json_t *a, const json_t *b)
{
	return subset(a, b) && subset(b, a);
}

/* process: args (or exec allow-list), env, cwd, user, capabilities,
 * noNewPrivileges, terminal, AppArmor, SELinux. */
static bool check_process(const struct pcontainer *c, struct sp_eval *e, const json_t *proc,
			  const char *base, bool is_exec)
{
	static const char *const keys[] = {"terminal", "consoleSize", "user", "args", "env",
					   "cwd", "capabilities", "rlimits", "apparmorProfile",
					   "oomScoreAdj", "noNewPrivileges", "selinuxLabel",
					   "ioPriority", "commandLine", "scheduler", "execCPUAffinity",
					   NULL};
	/* rlimits, oomScoreAdj, consoleSize, ioPriority: resource knobs the
	 * host controls anyway (it owns the VM's CPU and memory). */
	if (!json_is_object(proc))
		return sp_eval_deny(e, sp_xstrdup("a runtime-spec process object"), sp_policy_render(proc),
				    "%s", base);
	if (!keys_ok(e, proc, keys, base) || !empty_or_absent(e, proc, "selinuxLabel", base) ||
	    !empty_or_absent(e, proc, "commandLine", base) ||
	    !empty_or_absent(e, proc, "scheduler", base) ||
	    !empty_or_absent(e, proc, "execCPUAffinity", base))
		return false;

	json_t *args = json_object_get(proc, "args");
	if (!is_exec) {
		if (!args || !json_equal(args, (json_t *)c->args))
			return sp_eval_deny(e, sp_policy_render(c->args), sp_policy_render(args),
					    "%s.args", base);
	} else {
		bool ok = false;
		size_t i;
		json_t *cmd;
		if (c->exec)
			json_array_foreach(c->exec, i, cmd) if (args && json_equal(args, cmd)) ok = true;
		if (!ok)
			return sp_eval_deny(e, c->exec && json_array_size(c->exec)
						       ? prefixed("one of ", c->exec)
						       : sp_xasprintf("no exec in container %s", c->name),
					    sp_policy_render(args), "%s.args", base);
	}
	if (!check_env(c, e, json_object_get(proc, "env"), base, !is_exec))
		return false;

	json_t *cwd = json_object_get(proc, "cwd");
	if (!(is_exec && !cwd) && (!json_is_string(cwd) || strcmp(json_string_value(cwd), c->cwd)))
		return sp_eval_deny(e, q(c->cwd), sp_policy_render(cwd), "%s.cwd", base);

	json_t *user = json_object_get(proc, "user");
	_cleanup_free_ char *up = sp_xasprintf("%s.user", base);
	static const char *const ukeys[] = {"uid", "gid", "additionalGids", "umask", "username", NULL};
	if (!json_is_object(user))
		return sp_eval_deny(e, sp_xasprintf("{\"uid\":%lld,\"gid\":%lld}", (long long)c->uid,
						    (long long)c->gid),
				    sp_policy_render(user), "%s", up);
	if (!keys_ok(e, user, ukeys, up) || !empty_or_absent(e, user, "username", up))
		return false;
	json_t *uid = json_object_get(user, "uid"), *gid = json_object_get(user, "gid");
	if (!json_is_integer(uid) || json_integer_value(uid) != c->uid)
		return sp_eval_deny(e, sp_xasprintf("%lld", (long long)c->uid), sp_policy_render(uid),
				    "%s.uid", up);
	if (!json_is_integer(gid) || json_integer_value(gid) != c->gid)
		return sp_eval_deny(e, sp_xasprintf("%lld", (long long)c->gid), sp_policy_render(gid),
				    "%s.gid", up);
	json_t *ag = json_object_get(user, "additionalGids");
	const json_t *pg = c->groups ? c->groups : empty_array();
	bool ag_ok = !ag || json_is_array(ag);
	if (ag_ok) {
		size_t i, k;
		json_t *a, *b;
		const json_t *x = ag ? ag : empty_array();
		/* Same set of integers, both ways. */
		json_array_foreach(x, i, a) {
			bool f = false;
			json_array_foreach(pg, k, b) if (json_equal(a, b)) f = true;
			ag_ok &= f;
		}
		json_array_foreach(pg, k, b) {
			bool f = false;
			json_array_foreach(x, i, a) if (json_equal(a, b)) f = true;
			ag_ok &= f;
		}
	}
	if (!ag_ok)
		return sp_eval_deny(e, sp_policy_render(pg), sp_policy_render(ag), "%s.additionalGids", up);

	json_t *caps = json_object_get(proc, "capabilities");
	_cleanup_free_ char *cp = sp_xasprintf("%s.capabilities", base);
	if (caps && !json_is_object(caps))
		return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(caps), "%s", cp);
	if (caps) {
		static const char *const ckeys[] = {"bounding", "effective", "inheritable",
						    "permitted", "ambient", NULL};
		if (!keys_ok(e, caps, ckeys, cp))
			return false;
	}
	for (int s = 0; s < SP_CAP_SETS; s++) {
		json_t *got = caps ? json_object_get(caps, sp_policy_cap_sets[s]) : NULL;
		if (got && !is_strv(got))
			return sp_eval_deny(e, sp_xstrdup("an array of capability names"),
					    sp_policy_render(got), "%s.%s", cp, sp_policy_cap_sets[s]);
		/* Exec processes may drop capabilities, never gain them. */
		bool ok = is_exec ? subset(got, c->caps[s]) : set_equal(got, c->caps[s]);
		if (!ok)
			return sp_eval_deny(e, sp_policy_render(c->caps[s] ? c->caps[s] : empty_array()),
					    sp_policy_render(got ? got : empty_array()), "%s.%s", cp,
					    sp_policy_cap_sets[s]);
	}

	json_t *nnp = json_object_get(proc, "noNewPrivileges");
	bool nnp_v = json_is_true(nnp);
	if ((nnp && !json_is_boolean(nnp)) || (is_exec ? (c->no_new_privs && !nnp_v) : nnp_v != c->no_new_privs))
		return sp_eval_deny(e, sp_xstrdup(c->no_new_privs ? "true" : "false"), sp_policy_render(nnp),
				    "%s.noNewPrivileges", base);
	json_t *term = json_object_get(proc, "terminal");
	if (!is_exec && (json_is_true(term) != c->terminal || (term && !json_is_boolean(term))))
		return sp_eval_deny(e, sp_xstrdup(c->terminal ? "true" : "false"), sp_policy_render(term),
				    "%s.terminal", base);
	json_t *aa = json_object_get(proc, "apparmorProfile");
	const char *aav = json_is_string(aa) ? json_string_value(aa) : "";
	if ((aa && !json_is_string(aa)) || strcmp(aav, c->apparmor))
		return sp_eval_deny(e, q(c->apparmor), sp_policy_render(aa), "%s.apparmorProfile", base);
	return true;
}

/* Mounts the runtime adds to every container; they carry no pod data.
 * Bind sources must be the agent's own files for them. */
const struct sp_std_mount sp_policy_std_mounts[SP_STD_MOUNTS] = {
	{"/proc", "proc", NULL, NULL, false},
	{"/dev", "tmpfs", NULL, NULL, false},
	{"/dev/pts", "devpts", NULL, NULL, false},
	{"/dev/shm", "tmpfs", "bind", SP_POLICY_VOLUME_ROOT "/shm", false},
	{"/dev/mqueue", "mqueue", NULL, NULL, false},
	{"/sys", "sysfs", NULL, NULL, true},
	{"/sys/fs/cgroup", "cgroup", "cgroup2", NULL, true},
	{"/etc/hostname", "bind", NULL, SP_POLICY_VOLUME_ROOT "/etc/hostname", false},
	{"/etc/hosts", "bind", NULL, SP_POLICY_VOLUME_ROOT "/etc/hosts", false},
	{"/etc/resolv.conf", "bind", NULL, SP_POLICY_VOLUME_ROOT "/etc/resolv.conf", false},
	{"/dev/termination-log", "bind", NULL, SP_POLICY_VOLUME_ROOT "/termination/", false},
};

const char *const sp_policy_volume_opts[] = {"bind", "rbind", "ro", "rw", "nosuid", "nodev",
					  "noexec", "private", "rprivate", "slave", "rslave", NULL};

static bool check_mounts(const struct pcontainer *c, struct sp_eval *e, const json_t *mounts)
{
	if (mounts && !json_is_array(mounts))
		return sp_eval_deny(e, sp_xstrdup("an array"), sp_policy_render(mounts), "oci_spec.mounts");
	bool vseen[64] = {0}, sseen[SP_STD_MOUNTS] = {0};
	if (c->n_mounts > 64)
		return sp_eval_deny(e, sp_xstrdup("at most 64 volume mounts"), sp_xasprintf("%zu", c->n_mounts),
				    "policy.containers[%s].mounts", c->name);
	size_t i;
	json_t *m;
	json_array_foreach(mounts ? mounts : empty_array(), i, m) {
		static const char *const mkeys[] = {"destination", "type", "source", "options",
						    "uidMappings", "gidMappings", NULL};
		_cleanup_free_ char *mp = sp_xasprintf("oci_spec.mounts[%zu]", i);
		if (!json_is_object(m))
			return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(m), "%s", mp);
		if (!keys_ok(e, m, mkeys, mp) || !empty_or_absent(e, m, "uidMappings", mp) ||
		    !empty_or_absent(e, m, "gidMappings", mp))
			return false;
		json_t *dj = json_object_get(m, "destination"), *tj = json_object_get(m, "type"),
		       *sj = json_object_get(m, "source"), *oj = json_object_get(m, "options");
		if (!json_is_string(dj))
			return sp_eval_deny(e, sp_xstrdup("a string"), sp_policy_render(dj), "%s.destination", mp);
		if ((tj && !json_is_string(tj)) || (sj && !json_is_string(sj)) || (oj && !is_strv(oj)))
			return sp_eval_deny(e, sp_xstrdup("type and source strings, options an array of strings"),
					    sp_policy_render(m), "%s", mp);
		_cleanup_free_ char *dest = sp_policy_path_normalize(json_string_value(dj));
		if (!dest)
			return sp_eval_deny(e, sp_xstrdup("an absolute path without `..`"), sp_policy_render(dj),
					    "%s.destination", mp);
		const char *type = tj ? json_string_value(tj) : "";
		const char *src = sj ? json_string_value(sj) : "";
		_cleanup_free_ char *nsrc = src[0] == '/' ? sp_policy_path_normalize(src) : NULL;
		bool ro = oj && str_in(oj, "ro");

		int vi = -1;
		for (size_t k = 0; k < c->n_mounts; k++)
			if (!strcmp(c->mounts[k].destination, dest))
				vi = (int)k;
		if (vi >= 0) {
			const struct mount_rule *r = &c->mounts[vi];
			if (vseen[vi])
				return sp_eval_deny(e, sp_xstrdup("one mount per destination"), q(dest), "%s.destination", mp);
			vseen[vi] = true;
			if (strcmp(type, "bind") && strcmp(type, "none") && type[0])
				return sp_eval_deny(e, sp_xstrdup("\"bind\""), q(type), "%s.type", mp);
			if (!nsrc || strcmp(nsrc, r->source))
				return sp_eval_deny(e, q(r->source), q(src), "%s.source (volume %s)", mp, r->volume);
			if (!oj || !(str_in(oj, "bind") || str_in(oj, "rbind")))
				return sp_eval_deny(e, sp_xstrdup("options with bind or rbind"), sp_policy_render(oj),
						    "%s.options", mp);
			if (ro != r->read_only || (r->read_only && str_in(oj, "rw")))
				return sp_eval_deny(e, sp_xstrdup(r->read_only ? "read-only (ro)" : "read-write (no ro)"),
						    sp_policy_render(oj), "%s.options", mp);
			size_t k;
			json_t *o;
			json_array_foreach(oj, k, o) {
				bool good = false;
				for (const char *const *a = sp_policy_volume_opts; *a; a++)
					if (!strcmp(*a, json_string_value(o)))
						good = true;
				if (!good)
					return sp_eval_deny(e, sp_xstrdup("bind, rbind, ro, rw, nosuid, nodev, noexec or propagation"),
							    sp_policy_render(o), "%s.options[%zu]", mp, k);
			}
			continue;
		}
		int si = -1;
		for (size_t k = 0; k < SP_STD_MOUNTS; k++)
			if (!strcmp(sp_policy_std_mounts[k].dest, dest))
				si = (int)k;
		if (si < 0)
			return sp_eval_deny(e, sp_xstrdup("a volume the policy lists or a standard runtime mount"),
					    q(dest), "%s.destination", mp);
		const struct sp_std_mount *sm = &sp_policy_std_mounts[si];
		if (sseen[si])
			return sp_eval_deny(e, sp_xstrdup("one mount per destination"), q(dest), "%s.destination", mp);
		sseen[si] = true;
		bool is_bind = !strcmp(type, "bind") || (oj && (str_in(oj, "bind") || str_in(oj, "rbind")));
		if (strcmp(type, sm->type) && !(sm->type2 && !strcmp(type, sm->type2)))
			return sp_eval_deny(e, sm->type2 ? sp_xasprintf("\"%s\" or \"%s\"", sm->type, sm->type2)
							 : q(sm->type),
					    q(type), "%s.type", mp);
		if (is_bind) {
			size_t pl = sm->bind_src ? strlen(sm->bind_src) : 0;
			bool dir = pl && sm->bind_src[pl - 1] == '/';
			bool ok = sm->bind_src && nsrc &&
				  (dir ? !strncmp(nsrc, sm->bind_src, pl) && nsrc[pl] && !strchr(nsrc + pl, '/')
				       : !strcmp(nsrc, sm->bind_src));
			if (!ok)
				return sp_eval_deny(e, sm->bind_src ? q(sm->bind_src) : sp_xstrdup("no bind mount here"),
						    q(src), "%s.source", mp);
		}
		if (sm->ro_unless_privileged && !c->privileged && !ro)
			return sp_eval_deny(e, sp_xstrdup("read-only (ro) for an unprivileged container"),
					    sp_policy_render(oj), "%s.options", mp);
	}
	for (size_t k = 0; k < c->n_mounts; k++)
		if (!vseen[k])
			return sp_eval_deny(e, sp_xasprintf("a mount of volume %s at %s", c->mounts[k].volume,
							    c->mounts[k].destination),
					    sp_xstrdup("none"), "oci_spec.mounts");
	return true;
}

static bool check_namespaces(const struct pcontainer *c, struct sp_eval *e, const json_t *nss)
{
	bool seen[SP_NS_TYPES] = {0};
	if (nss && !json_is_array(nss))
		return sp_eval_deny(e, sp_xstrdup("an array"), sp_policy_render(nss), "oci_spec.linux.namespaces");
	size_t i;
	json_t *n;
	json_array_foreach(nss ? nss : empty_array(), i, n) {
		const char *type = NULL, *path = "";
		if (!json_is_object(n) || sp_json_get_string(n, "type", true, &type, "ns", NULL) < 0 ||
		    sp_json_get_string(n, "path", false, &path, "ns", NULL) < 0 || json_object_size(n) > 2)
			return sp_eval_deny(e, sp_xstrdup("{\"type\",\"path\"}"), sp_policy_render(n),
					    "oci_spec.linux.namespaces[%zu]", i);
		int t = -1;
		for (int k = 0; k < SP_NS_TYPES; k++)
			if (!strcmp(type, sp_policy_ns_types[k]))
				t = k;
		if (t < 0 || !c->ns[t] || seen[t])
			return sp_eval_deny(e, sp_xstrdup("each namespace type of the policy once"), q(type),
					    "oci_spec.linux.namespaces[%zu].type", i);
		seen[t] = true;
		bool pod = !strcmp(c->ns[t], "pod");
		if (pod != (path[0] != 0))
			return sp_eval_deny(e, sp_xstrdup(pod ? "the pod's namespace (a path)" : "a new namespace (no path)"),
					    q(path), "oci_spec.linux.namespaces[%zu] (%s)", i, type);
		if (pod) {
			_cleanup_free_ char *np = sp_policy_path_normalize(path);
			if (!np || (strncmp(np, "/proc/", 6) && strncmp(np, "/run/sealpod/", 13)))
				return sp_eval_deny(e, sp_xstrdup("a path under /proc/ or /run/sealpod/"), q(path),
						    "oci_spec.linux.namespaces[%zu].path", i);
		}
	}
	for (int t = 0; t < SP_NS_TYPES; t++)
		if (c->ns[t] && !seen[t])
			return sp_eval_deny(e, sp_xasprintf("a %s namespace (%s)", sp_policy_ns_types[t], c->ns[t]),
					    sp_xstrdup("the agent's own (absent)"), "oci_spec.linux.namespaces");
	return true;
}

static bool check_linux(const struct pcontainer *c, struct sp_eval *e, const json_t *lx)
{
	static const char *const keys[] = {"namespaces", "sysctl", "devices", "seccomp",
					   "resources", "cgroupsPath", "maskedPaths",
					   "readonlyPaths", "uidMappings", "gidMappings",
					   "mountLabel", "rootfsPropagation", "intelRdt",
					   "personality", "timeOffsets", NULL};
	const char *b = "oci_spec.linux";
	if (!json_is_object(lx))
		return sp_eval_deny(e, sp_xstrdup("a linux object"), sp_policy_render(lx), "%s", b);
	if (!keys_ok(e, lx, keys, b))
		return false;
	static const char *const refused[] = {"uidMappings", "gidMappings", "mountLabel",
					      "intelRdt", "personality", "timeOffsets"};
	for (size_t i = 0; i < SP_ARRAY_LEN(refused); i++)
		if (!empty_or_absent(e, lx, refused[i], b))
			return false;
	json_t *rp = json_object_get(lx, "rootfsPropagation");
	_cleanup_free_ char *rpv = json_is_string(rp) ? sp_xasprintf(",%s,", json_string_value(rp)) : NULL;
	if (rp && (!rpv || !strstr(",private,rprivate,slave,rslave,", rpv)))
		return sp_eval_deny(e, sp_xstrdup("private or slave propagation"), sp_policy_render(rp),
				    "%s.rootfsPropagation", b);
	if (!check_namespaces(c, e, json_object_get(lx, "namespaces")))
		return false;

	json_t *sys = json_object_get(lx, "sysctl");
	json_t *empty_obj = json_object();
	bool sys_ok = json_equal(sys && json_object_size(sys) ? sys : empty_obj,
				 c->sysctls ? (json_t *)c->sysctls : empty_obj);
	json_decref(empty_obj);
	if (!sys_ok)
		return sp_eval_deny(e, sp_policy_render(c->sysctls), sp_policy_render(sys), "%s.sysctl", b);

	json_t *dev = json_object_get(lx, "devices");
	size_t nd = json_is_array(dev) ? json_array_size(dev) : 0;
	size_t np = c->devices ? json_array_size(c->devices) : 0;
	if ((dev && !json_is_array(dev)) || nd != np)
		return sp_eval_deny(e, sp_policy_render(c->devices), sp_policy_render(dev), "%s.devices", b);
	for (size_t i = 0; i < nd; i++) {
		json_t *d = json_array_get(dev, i);
		bool f = false;
		for (size_t k = 0; k < np && json_is_object(d); k++) {
			json_t *pd = json_array_get(c->devices, k);
			static const char *const f4[] = {"path", "type", "major", "minor"};
			bool all = true;
			for (int x = 0; x < 4; x++) {
				json_t *a = json_object_get(d, f4[x]), *bb = json_object_get(pd, f4[x]);
				if (!(a == bb || (a && bb && json_equal(a, bb))))
					all = false;
			}
			f |= all;
		}
		if (!f)
			return sp_eval_deny(e, sp_policy_render(c->devices), sp_policy_render(d), "%s.devices[%zu]", b, i);
	}

	json_t *sc = json_object_get(lx, "seccomp");
	if (sc && json_is_null(sc))
		sc = NULL;
	_cleanup_free_ char *scs = sc ? sp_json_dump_canonical(sc) : NULL;
	if ((!scs) != (!c->seccomp) || (scs && strcmp(scs, c->seccomp)))
		return sp_eval_deny(e, c->seccomp ? sp_xstrdup("the policy's seccomp profile") : sp_xstrdup("no seccomp profile"),
				    sp_policy_render(sc), "%s.seccomp", b);

	json_t *mp = json_object_get(lx, "maskedPaths"), *rop = json_object_get(lx, "readonlyPaths");
	if ((mp && !is_strv(mp)) || !subset(c->masked_paths, mp))
		return sp_eval_deny(e, prefixed("at least ", c->masked_paths),
				    sp_policy_render(mp), "%s.maskedPaths", b);
	if ((rop && !is_strv(rop)) || !subset(c->readonly_paths, rop))
		return sp_eval_deny(e, prefixed("at least ", c->readonly_paths),
				    sp_policy_render(rop), "%s.readonlyPaths", b);

	json_t *res = json_object_get(lx, "resources");
	if (res && !json_is_object(res))
		return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(res), "%s.resources", b);
	json_t *rd = res ? json_object_get(res, "devices") : NULL;
	size_t i;
	json_t *d;
	if (rd && !json_is_array(rd))
		return sp_eval_deny(e, sp_xstrdup("an array"), sp_policy_render(rd), "%s.resources.devices", b);
	/* A wildcard device allow plus CAP_MKNOD reaches every guest disk. */
	if (rd && !c->privileged)
		json_array_foreach(rd, i, d) {
			json_t *t = json_object_get(d, "type");
			if (json_is_true(json_object_get(d, "allow")) &&
			    (!json_is_string(t) || !strcmp(json_string_value(t), "a") ||
			     !json_is_integer(json_object_get(d, "major")) ||
			     !json_is_integer(json_object_get(d, "minor"))))
				return sp_eval_deny(e, sp_xstrdup("no wildcard device access (the container is not privileged)"),
						    sp_policy_render(d), "%s.resources.devices[%zu]", b, i);
		}
	return true;
}

static bool digest_of(const char *ref, const char **out)
{
	const char *at = ref ? strstr(ref, "@sha256:") : NULL;
	if (!at || strlen(at + 8) != 64 || strspn(at + 8, "0123456789abcdef") != 64)
		return false;
	*out = at + 1;
	return true;
}

bool sp_eval_create_container(const sp_policy *p, struct sp_eval *e,
			      const Sealpod__Agent__V1__CreateContainerRequest *r, int *index)
{
	bool init = !strcmp(r->container_type, "init");
	if (r->container_type[0] && !init)
		return sp_eval_deny(e, sp_xstrdup("\"\" or \"init\""), q(r->container_type), "container_type");
	const struct pcontainer *c = NULL;
	for (size_t i = 0; i < p->n_c; i++)
		if (!strcmp(p->c[i].name, r->container_name) && p->c[i].init == init) {
			c = &p->c[i];
			*index = (int)i;
		}
	if (!c) {
		json_t *names = json_array();
		for (size_t i = 0; i < p->n_c; i++)
			if (p->c[i].init == init)
				json_array_append_new(names, json_string(p->c[i].name));
		char *exp = prefixed(init ? "one of the policy's init containers " : "one of the policy's containers ",
				     names);
		json_decref(names);
		return sp_eval_deny(e, exp, q(r->container_name), "container_name");
	}
	const char *dg;
	if (!digest_of(r->image, &dg) || strcmp(dg, c->digest))
		return sp_eval_deny(e, q(c->image), q(r->image), "image");
	for (size_t i = 0; i < r->n_storages; i++) {
		const Sealpod__Agent__V1__Storage *st = r->storages[i];
		if (!strcmp(st->driver, "image")) {
			if (!digest_of(st->source, &dg) || strcmp(dg, c->digest))
				return sp_eval_deny(e, q(c->image), q(st->source), "storages[%zu].source", i);
			continue;
		}
		/* The host's image store: untrusted bytes the image module
		 * verifies against the pinned digest, so any disk will do. */
		if (!strcmp(st->driver, "oci-store") && !strncmp(st->source, "/dev/vd", 7) &&
		    st->source[7] >= 'a' && st->source[7] <= 'z' && !st->source[8] &&
		    !st->mount_point[0] && st->n_options == 0)
			continue;
		if (!strcmp(st->driver, "registry")) {
			if (sp_eval_registry_ok(p, st->source) && !st->mount_point[0] &&
			    st->n_options == 0)
				continue;
			return sp_eval_deny(e, sp_eval_registry_expected(p),
					    sp_xasprintf("%s %s", st->driver, st->source),
					    "storages[%zu]", i);
		}
		bool found = false;
		for (size_t k = 0; k < c->n_mounts; k++)
			if (!strcasecmp(c->mounts[k].kind, st->driver) && !strcmp(c->mounts[k].volume, st->source))
				found = true;
		if (!found)
			return sp_eval_deny(e, sp_xstrdup("the image, or a volume this container mounts"),
					    sp_xasprintf("%s %s", st->driver, st->source), "storages[%zu]", i);
	}
	if (r->oci_spec.len > MAX_SPEC)
		return sp_eval_deny(e, sp_xasprintf("at most %u bytes", MAX_SPEC),
				    sp_xasprintf("%zu bytes", r->oci_spec.len), "oci_spec");
	/* Most specs are allowed: prove that without building a JSON tree;
	 * anything else (and every denial's message) takes the full check. */
	if (sp_eval_spec_fast(c, r->oci_spec.data, r->oci_spec.len))
		return true;
	return sp_eval_spec_full(c, e, r->oci_spec.data, r->oci_spec.len);
}

bool sp_eval_spec_full(const struct pcontainer *c, struct sp_eval *e, const void *data, size_t len)
{
	_cleanup_json_ json_t *spec = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_json_parse(&spec, data, len, "oci_spec", &err) < 0)
		return sp_eval_deny(e, sp_xstrdup("runtime-spec JSON"), sp_xstrdup(sp_err_msg(err)), "oci_spec");
	if (!json_is_object(spec))
		return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(spec), "oci_spec");
	static const char *const keys[] = {"ociVersion", "process", "root", "hostname", "domainname",
					   "mounts", "hooks", "annotations", "linux", NULL};
	if (!keys_ok(e, spec, keys, "oci_spec") || !empty_or_absent(e, spec, "hooks", "oci_spec"))
		return false;
	json_t *root = json_object_get(spec, "root");
	if (root && !json_is_object(root))
		return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(root), "oci_spec.root");
	json_t *rro = root ? json_object_get(root, "readonly") : NULL;
	if ((rro && !json_is_boolean(rro)) || json_is_true(rro) != c->read_only_root)
		return sp_eval_deny(e, sp_xstrdup(c->read_only_root ? "true" : "false"), sp_policy_render(rro),
				    "oci_spec.root.readonly");
	/* Annotations: only the CRI's informational ones; the agent acts on none. */
	json_t *ann = json_object_get(spec, "annotations");
	if (ann) {
		const char *k;
		json_t *v;
		if (!json_is_object(ann))
			return sp_eval_deny(e, sp_xstrdup("an object"), sp_policy_render(ann), "oci_spec.annotations");
		json_object_foreach(ann, k, v) if (strncmp(k, "io.kubernetes.", 14) || !json_is_string(v))
			return sp_eval_deny(e, sp_xstrdup("only io.kubernetes.* string annotations"), q(k),
					    "oci_spec.annotations");
	}
	if (!check_process(c, e, json_object_get(spec, "process"), "oci_spec.process", false))
		return false;
	if (!check_mounts(c, e, json_object_get(spec, "mounts")))
		return false;
	return check_linux(c, e, json_object_get(spec, "linux"));
}

bool sp_eval_exec_process(const sp_policy *p, struct sp_eval *e, const struct pcontainer *c,
			  const Sealpod__Agent__V1__ExecProcessRequest *r)
{
	if (r->process.len > MAX_SPEC)
		return sp_eval_deny(e, sp_xasprintf("at most %u bytes", MAX_SPEC),
				    sp_xasprintf("%zu bytes", r->process.len), "process");
	_cleanup_json_ json_t *proc = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_json_parse(&proc, r->process.data, r->process.len, "process", &err) < 0)
		return sp_eval_deny(e, sp_xstrdup("a runtime-spec process object"), sp_xstrdup(sp_err_msg(err)),
				    "process");
	return check_process(c, e, proc, "process", true);
}
