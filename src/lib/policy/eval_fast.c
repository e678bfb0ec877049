/* SPDX-License-Identifier: Apache-2.0 */
/* The fast path of CreateContainer's oci_spec check (docs/policy.md,
 * "Performance"). It walks the tokens of jtok.c and repeats every check of
 * eval_container.c's spec part, in the same terms, without building
 * strings or JSON values. It can only say "allowed": at the first check
 * that does not plainly pass (or anything outside the tokenizer's subset)
 * it gives up and the full evaluator runs, which then denies with its
 * usual message, or allows what this path was too narrow to prove. So a
 * denial's path and text come from one place, and this file must never
 * pass what the full check would refuse: each function below names the
 * check it mirrors. */
#include <string.h>

#include "internal.h"

#define NONE UINT32_MAX

struct doc {
	const struct sp_jt *t;
};

/* Value of key in object obj, or NONE. */
static uint32_t get(const struct doc *d, uint32_t obj, const char *key)
{
	const struct sp_jt *t = d->t;
	for (uint32_t k = obj + 1; k < t[obj].end; k = t[k + 1].end)
		if (t[k].s[0] == key[0] && !strcmp(t[k].s, key))
			return k + 1;
	return NONE;
}

#define FOR_ARRAY(d, arr, i) for (uint32_t i = (arr) + 1; i < (d)->t[arr].end; i = (d)->t[i].end)
#define FOR_OBJECT(d, obj, k) for (uint32_t k = (obj) + 1; k < (d)->t[obj].end; k = (d)->t[k + 1].end)

static bool is(const struct doc *d, uint32_t v, int type)
{
	return v != NONE && d->t[v].type == type;
}

/* keys_ok */
static bool keys_ok(const struct doc *d, uint32_t obj, const char *const *allowed)
{
	FOR_OBJECT(d, obj, k) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = !strcmp(d->t[k].s, *a);
		if (!ok)
			return false;
	}
	return true;
}

/* empty_or_absent */
static bool empty_or_absent(const struct doc *d, uint32_t obj, const char *key)
{
	uint32_t v = get(d, obj, key);
	if (v == NONE)
		return true;
	const struct sp_jt *t = &d->t[v];
	return t->type == SP_JT_NULL || t->type == SP_JT_FALSE ||
	       ((t->type == SP_JT_STR || t->type == SP_JT_ARR || t->type == SP_JT_OBJ) && t->len == 0);
}

/* is_strv */
static bool is_strv(const struct doc *d, uint32_t arr)
{
	if (!is(d, arr, SP_JT_ARR))
		return false;
	FOR_ARRAY(d, arr, i) if (d->t[i].type != SP_JT_STR) return false;
	return true;
}

/* json_equal(token value, v). A real in v never equals (the tokenizer
 * has none), which at worst sends the request to the full check. */
static bool equal(const struct doc *d, uint32_t i, const json_t *v)
{
	const struct sp_jt *t = &d->t[i];
	switch (t->type) {
	case SP_JT_STR:
		return json_is_string(v) && json_string_length(v) == t->len &&
		       !memcmp(json_string_value(v), t->s, t->len);
	case SP_JT_INT:
		return json_is_integer(v) && json_integer_value(v) == t->i;
	case SP_JT_TRUE:
		return json_is_true(v);
	case SP_JT_FALSE:
		return json_is_false(v);
	case SP_JT_NULL:
		return json_is_null(v);
	case SP_JT_ARR: {
		if (!json_is_array(v) || json_array_size(v) != t->len)
			return false;
		size_t n = 0;
		FOR_ARRAY(d, i, x) if (!equal(d, x, json_array_get(v, n++))) return false;
		return true;
	}
	case SP_JT_OBJ: {
		/* Keys are unique on both sides: same count and every key
		 * found equal is equality. */
		if (!json_is_object(v) || json_object_size(v) != t->len)
			return false;
		FOR_OBJECT(d, i, k) {
			json_t *x = json_object_get(v, d->t[k].s);
			if (!x || !equal(d, k + 1, x))
				return false;
		}
		return true;
	}
	}
	return false;
}

/* str_in, over a token array */
static bool tok_str_in(const struct doc *d, uint32_t arr, const char *s)
{
	size_t n = strlen(s);
	FOR_ARRAY(d, arr, i) if (d->t[i].len == n && !memcmp(d->t[i].s, s, n)) return true;
	return false;
}

/* str_in over a policy array (of strings: checked at load); s is token i. */
static bool pol_str_in(const json_t *arr, const struct sp_jt *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (json_is_string(v) && json_string_length(v) == s->len &&
					  !memcmp(json_string_value(v), s->s, s->len)) return true;
	return false;
}

/* set_equal(got, pol): every string of got is in pol and every one of
 * pol in got; got is a strv or NONE, pol an array of strings or NULL. */
static bool set_equal(const struct doc *d, uint32_t got, const json_t *pol)
{
	if (got != NONE)
		FOR_ARRAY(d, got, i) if (!pol || !pol_str_in(pol, &d->t[i])) return false;
	if (!pol)
		return true;
	size_t i;
	json_t *v;
	json_array_foreach(pol, i, v) {
		if (!json_is_string(v) || got == NONE || !tok_str_in(d, got, json_string_value(v)))
			return false;
	}
	return true;
}

/* sp_policy_path_normalize(p) returns p itself: absolute, no empty, "."
 * or ".." component, no trailing slash (except "/"). */
static bool path_normal(const char *p)
{
	if (p[0] != '/')
		return false;
	if (!p[1])
		return true;
	for (const char *s = p + 1;;) {
		const char *e = strchrnul(s, '/');
		size_t l = (size_t)(e - s);
		if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!*e)
			return true;
		s = e + 1;
	}
}

/* sp_eval_env_entry, allow side. */
static bool env_entry(const struct pcontainer *c, const char *entry, int *rule_out)
{
	const char *eq = strchr(entry, '=');
	if (!eq || eq == entry)
		return false;
	size_t nl = (size_t)(eq - entry);
	const char *val = eq + 1;
	for (size_t i = 0; i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (!r->name || strncmp(r->name, entry, nl) || r->name[nl])
			continue;
		/* The first rule with this name decides, as in the full check. */
		if (r->value ? strcmp(r->value, val) : !sp_policy_re_match(&r->value_re, val))
			return false;
		*rule_out = (int)i;
		return true;
	}
	char name[256];
	if (nl >= sizeof(name))
		return false;
	memcpy(name, entry, nl);
	name[nl] = 0;
	for (size_t i = 0; i < c->n_env; i++) {
		const struct env_rule *r = &c->env[i];
		if (!r->has_name_re || !sp_policy_re_match(&r->name_re, name))
			continue;
		if (r->value ? !strcmp(r->value, val) : sp_policy_re_match(&r->value_re, val)) {
			*rule_out = (int)i;
			return true;
		}
	}
	return false;
}

/* check_env, require_all (CreateContainer). */
static bool env_ok(const struct pcontainer *c, const struct doc *d, uint32_t env)
{
	if (env != NONE && !is_strv(d, env))
		return false;
	if (c->n_env > 64)
		return false;
	bool seen[64] = {0};
	if (env != NONE)
		FOR_ARRAY(d, env, i) {
			const char *s = d->t[i].s;
			int rule = -1;
			if (!env_entry(c, s, &rule))
				return false;
			/* Each name once. */
			size_t nl = strcspn(s, "=");
			for (uint32_t k = env + 1; k < i; k = d->t[k].end) {
				const char *o = d->t[k].s;
				if (strcspn(o, "=") == nl && !strncmp(o, s, nl))
					return false;
			}
			if (rule >= 0 && c->env[rule].name)
				seen[rule] = true;
		}
	for (size_t i = 0; i < c->n_env; i++)
		if (c->env[i].name && !c->env[i].optional && !seen[i])
			return false;
	return true;
}

/* check_process with is_exec false. */
static bool process_ok(const struct pcontainer *c, const struct doc *d, uint32_t proc)
{
	static const char *const keys[] = {"terminal", "consoleSize", "user", "args", "env",
					   "cwd", "capabilities", "rlimits", "apparmorProfile",
					   "oomScoreAdj", "noNewPrivileges", "selinuxLabel",
					   "ioPriority", "commandLine", "scheduler", "execCPUAffinity",
					   NULL};
	if (!is(d, proc, SP_JT_OBJ) || !keys_ok(d, proc, keys) ||
	    !empty_or_absent(d, proc, "selinuxLabel") || !empty_or_absent(d, proc, "commandLine") ||
	    !empty_or_absent(d, proc, "scheduler") || !empty_or_absent(d, proc, "execCPUAffinity"))
		return false;
	uint32_t args = get(d, proc, "args");
	if (args == NONE || !equal(d, args, c->args))
		return false;
	if (!env_ok(c, d, get(d, proc, "env")))
		return false;
	uint32_t cwd = get(d, proc, "cwd");
	if (!is(d, cwd, SP_JT_STR) || strcmp(d->t[cwd].s, c->cwd))
		return false;

	static const char *const ukeys[] = {"uid", "gid", "additionalGids", "umask", "username", NULL};
	uint32_t user = get(d, proc, "user");
	if (!is(d, user, SP_JT_OBJ) || !keys_ok(d, user, ukeys) || !empty_or_absent(d, user, "username"))
		return false;
	uint32_t uid = get(d, user, "uid"), gid = get(d, user, "gid");
	if (!is(d, uid, SP_JT_INT) || d->t[uid].i != c->uid || !is(d, gid, SP_JT_INT) ||
	    d->t[gid].i != c->gid)
		return false;
	uint32_t ag = get(d, user, "additionalGids");
	if (ag != NONE && !is(d, ag, SP_JT_ARR))
		return false;
	/* Same set both ways; an absent list and an absent policy are empty. */
	size_t np = c->groups ? json_array_size(c->groups) : 0;
	if (ag != NONE)
		FOR_ARRAY(d, ag, i) {
			bool f = false;
			for (size_t k = 0; k < np && !f; k++)
				f = equal(d, i, json_array_get(c->groups, k));
			if (!f)
				return false;
		}
	for (size_t k = 0; k < np; k++) {
		bool f = false;
		if (ag != NONE)
			FOR_ARRAY(d, ag, i) if (!f) f = equal(d, i, json_array_get(c->groups, k));
		if (!f)
			return false;
	}

	static const char *const ckeys[] = {"bounding", "effective", "inheritable", "permitted",
					    "ambient", NULL};
	uint32_t caps = get(d, proc, "capabilities");
	if (caps != NONE && (!is(d, caps, SP_JT_OBJ) || !keys_ok(d, caps, ckeys)))
		return false;
	for (int s = 0; s < SP_CAP_SETS; s++) {
		uint32_t got = caps != NONE ? get(d, caps, sp_policy_cap_sets[s]) : NONE;
		if ((got != NONE && !is_strv(d, got)) || !set_equal(d, got, c->caps[s]))
			return false;
	}
	uint32_t nnp = get(d, proc, "noNewPrivileges");
	if (nnp != NONE && !is(d, nnp, SP_JT_TRUE) && !is(d, nnp, SP_JT_FALSE))
		return false;
	if (is(d, nnp, SP_JT_TRUE) != c->no_new_privs)
		return false;
	uint32_t term = get(d, proc, "terminal");
	if (term != NONE && !is(d, term, SP_JT_TRUE) && !is(d, term, SP_JT_FALSE))
		return false;
	if (is(d, term, SP_JT_TRUE) != c->terminal)
		return false;
	uint32_t aa = get(d, proc, "apparmorProfile");
	if (aa != NONE && !is(d, aa, SP_JT_STR))
		return false;
	return !strcmp(aa != NONE ? d->t[aa].s : "", c->apparmor);
}

static bool volume_opt(const char *o)
{
	for (const char *const *a = sp_policy_volume_opts; *a; a++)
		if (!strcmp(*a, o))
			return true;
	return false;
}

/* check_mounts */
static bool mounts_ok(const struct pcontainer *c, const struct doc *d, uint32_t mounts)
{
	if (mounts != NONE && !is(d, mounts, SP_JT_ARR))
		return false;
	bool vseen[64] = {0}, sseen[SP_STD_MOUNTS] = {0};
	if (c->n_mounts > 64)
		return false;
	static const char *const mkeys[] = {"destination", "type", "source", "options",
					    "uidMappings", "gidMappings", NULL};
	if (mounts != NONE)
		FOR_ARRAY(d, mounts, m) {
			if (!is(d, m, SP_JT_OBJ) || !keys_ok(d, m, mkeys) ||
			    !empty_or_absent(d, m, "uidMappings") || !empty_or_absent(d, m, "gidMappings"))
				return false;
			uint32_t dj = get(d, m, "destination"), tj = get(d, m, "type"),
				 sj = get(d, m, "source"), oj = get(d, m, "options");
			if (!is(d, dj, SP_JT_STR) || (tj != NONE && !is(d, tj, SP_JT_STR)) ||
			    (sj != NONE && !is(d, sj, SP_JT_STR)) || (oj != NONE && !is_strv(d, oj)))
				return false;
			/* Paths the full check would rewrite go to it. */
			const char *dest = d->t[dj].s;
			const char *type = tj != NONE ? d->t[tj].s : "";
			const char *src = sj != NONE ? d->t[sj].s : "";
			if (!path_normal(dest) || (src[0] == '/' && !path_normal(src)))
				return false;
			const char *nsrc = src[0] == '/' ? src : NULL;
			bool ro = oj != NONE && tok_str_in(d, oj, "ro");
			bool bind = oj != NONE && (tok_str_in(d, oj, "bind") || tok_str_in(d, oj, "rbind"));

			int vi = -1;
			for (size_t k = 0; k < c->n_mounts; k++)
				if (!strcmp(c->mounts[k].destination, dest))
					vi = (int)k;
			if (vi >= 0) {
				const struct mount_rule *r = &c->mounts[vi];
				if (vseen[vi])
					return false;
				vseen[vi] = true;
				if (strcmp(type, "bind") && strcmp(type, "none") && type[0])
					return false;
				if (!nsrc || strcmp(nsrc, r->source) || !bind)
					return false;
				if (ro != r->read_only || (r->read_only && tok_str_in(d, oj, "rw")))
					return false;
				FOR_ARRAY(d, oj, o) if (!volume_opt(d->t[o].s)) return false;
				continue;
			}
			int si = -1;
			for (size_t k = 0; k < SP_STD_MOUNTS; k++)
				if (!strcmp(sp_policy_std_mounts[k].dest, dest))
					si = (int)k;
			if (si < 0 || sseen[si])
				return false;
			const struct sp_std_mount *sm = &sp_policy_std_mounts[si];
			sseen[si] = true;
			if (strcmp(type, sm->type) && !(sm->type2 && !strcmp(type, sm->type2)))
				return false;
			if (!strcmp(type, "bind") || bind) {
				size_t pl = sm->bind_src ? strlen(sm->bind_src) : 0;
				bool dir = pl && sm->bind_src[pl - 1] == '/';
				bool ok = sm->bind_src && nsrc &&
					  (dir ? !strncmp(nsrc, sm->bind_src, pl) && nsrc[pl] &&
							 !strchr(nsrc + pl, '/')
					       : !strcmp(nsrc, sm->bind_src));
				if (!ok)
					return false;
			}
			if (sm->ro_unless_privileged && !c->privileged && !ro)
				return false;
		}
	for (size_t k = 0; k < c->n_mounts; k++)
		if (!vseen[k])
			return false;
	return true;
}

/* check_namespaces */
static bool namespaces_ok(const struct pcontainer *c, const struct doc *d, uint32_t nss)
{
	bool seen[SP_NS_TYPES] = {0};
	if (nss != NONE && !is(d, nss, SP_JT_ARR))
		return false;
	if (nss != NONE)
		FOR_ARRAY(d, nss, n) {
			if (!is(d, n, SP_JT_OBJ) || d->t[n].len > 2)
				return false;
			uint32_t tj = get(d, n, "type"), pj = get(d, n, "path");
			if (!is(d, tj, SP_JT_STR) || (pj != NONE && !is(d, pj, SP_JT_STR) && !is(d, pj, SP_JT_NULL)))
				return false;
			const char *type = d->t[tj].s;
			const char *path = is(d, pj, SP_JT_STR) ? d->t[pj].s : "";
			int t = -1;
			for (int k = 0; k < SP_NS_TYPES; k++)
				if (!strcmp(type, sp_policy_ns_types[k]))
					t = k;
			if (t < 0 || !c->ns[t] || seen[t])
				return false;
			seen[t] = true;
			bool pod = !strcmp(c->ns[t], "pod");
			if (pod != (path[0] != 0))
				return false;
			if (pod && (!path_normal(path) ||
				    (strncmp(path, "/proc/", 6) && strncmp(path, "/run/sealpod/", 13))))
				return false;
		}
	for (int t = 0; t < SP_NS_TYPES; t++)
		if (c->ns[t] && !seen[t])
			return false;
	return true;
}

/* check_linux */
static bool linux_ok(const struct pcontainer *c, const struct doc *d, uint32_t lx)
{
	static const char *const keys[] = {"namespaces", "sysctl", "devices", "seccomp",
					   "resources", "cgroupsPath", "maskedPaths",
					   "readonlyPaths", "uidMappings", "gidMappings",
					   "mountLabel", "rootfsPropagation", "intelRdt",
					   "personality", "timeOffsets", NULL};
	static const char *const refused[] = {"uidMappings", "gidMappings", "mountLabel",
					      "intelRdt", "personality", "timeOffsets"};
	if (!is(d, lx, SP_JT_OBJ) || !keys_ok(d, lx, keys))
		return false;
	for (size_t i = 0; i < SP_ARRAY_LEN(refused); i++)
		if (!empty_or_absent(d, lx, refused[i]))
			return false;
	uint32_t rp = get(d, lx, "rootfsPropagation");
	if (rp != NONE) {
		static const char *const prop[] = {"private", "rprivate", "slave", "rslave", NULL};
		bool ok = false;
		for (const char *const *a = prop; *a && is(d, rp, SP_JT_STR) && !ok; a++)
			ok = !strcmp(d->t[rp].s, *a);
		if (!ok)
			return false;
	}
	if (!namespaces_ok(c, d, get(d, lx, "namespaces")))
		return false;

	/* sysctl: anything but a non-empty object counts as none. */
	uint32_t sys = get(d, lx, "sysctl");
	bool sys_given = is(d, sys, SP_JT_OBJ) && d->t[sys].len > 0;
	if (sys_given ? !c->sysctls || !equal(d, sys, c->sysctls)
		      : c->sysctls && json_object_size(c->sysctls) > 0)
		return false;

	uint32_t dev = get(d, lx, "devices");
	size_t np = c->devices ? json_array_size(c->devices) : 0;
	if (dev != NONE && !is(d, dev, SP_JT_ARR))
		return false;
	if ((dev != NONE ? d->t[dev].len : 0) != np)
		return false;
	if (dev != NONE)
		FOR_ARRAY(d, dev, x) {
			static const char *const f4[] = {"path", "type", "major", "minor"};
			bool f = false;
			for (size_t k = 0; k < np && is(d, x, SP_JT_OBJ) && !f; k++) {
				json_t *pd = json_array_get(c->devices, k);
				bool all = true;
				for (int y = 0; y < 4 && all; y++) {
					uint32_t a = get(d, x, f4[y]);
					json_t *b = json_object_get(pd, f4[y]);
					all = (a == NONE && !b) || (a != NONE && b && equal(d, a, b));
				}
				f = all;
			}
			if (!f)
				return false;
		}

	/* seccomp: the canonical dumps are equal exactly when the values are
	 * (keys sorted on both sides, no reals here). */
	uint32_t sc = get(d, lx, "seccomp");
	if (is(d, sc, SP_JT_NULL))
		sc = NONE;
	const json_t *psc = json_object_get(c->j, "seccomp");
	if ((sc == NONE) != (c->seccomp == NULL) || (sc != NONE && (!psc || !equal(d, sc, psc))))
		return false;

	uint32_t mp = get(d, lx, "maskedPaths"), rop = get(d, lx, "readonlyPaths");
	const json_t *pol[2] = {c->masked_paths, c->readonly_paths};
	uint32_t got[2] = {mp, rop};
	for (int w = 0; w < 2; w++) {
		if (got[w] != NONE && !is_strv(d, got[w]))
			return false;
		size_t i;
		json_t *v;
		if (pol[w])
			json_array_foreach(pol[w], i, v) {
				if (!json_is_string(v) || got[w] == NONE ||
				    !tok_str_in(d, got[w], json_string_value(v)))
					return false;
			}
	}

	uint32_t res = get(d, lx, "resources");
	if (res != NONE && !is(d, res, SP_JT_OBJ))
		return false;
	uint32_t rd = res != NONE ? get(d, res, "devices") : NONE;
	if (rd != NONE && !is(d, rd, SP_JT_ARR))
		return false;
	/* A wildcard device allow plus CAP_MKNOD reaches every guest disk. */
	if (rd != NONE && !c->privileged)
		FOR_ARRAY(d, rd, x) {
			if (!is(d, x, SP_JT_OBJ) || !is(d, get(d, x, "allow"), SP_JT_TRUE))
				continue;
			uint32_t t = get(d, x, "type");
			if (!is(d, t, SP_JT_STR) || !strcmp(d->t[t].s, "a") ||
			    !is(d, get(d, x, "major"), SP_JT_INT) || !is(d, get(d, x, "minor"), SP_JT_INT))
				return false;
		}
	return true;
}

/* The spec part of sp_eval_create_container. */
static bool spec_ok(const struct pcontainer *c, const struct doc *d)
{
	static const char *const keys[] = {"ociVersion", "process", "root", "hostname", "domainname",
					   "mounts", "hooks", "annotations", "linux", NULL};
	if (!keys_ok(d, 0, keys) || !empty_or_absent(d, 0, "hooks"))
		return false;
	uint32_t root = get(d, 0, "root");
	if (root != NONE && !is(d, root, SP_JT_OBJ))
		return false;
	uint32_t rro = root != NONE ? get(d, root, "readonly") : NONE;
	if (rro != NONE && !is(d, rro, SP_JT_TRUE) && !is(d, rro, SP_JT_FALSE))
		return false;
	if (is(d, rro, SP_JT_TRUE) != c->read_only_root)
		return false;
	uint32_t ann = get(d, 0, "annotations");
	if (ann != NONE) {
		if (!is(d, ann, SP_JT_OBJ))
			return false;
		FOR_OBJECT(d, ann, k) if (strncmp(d->t[k].s, "io.kubernetes.", 14) ||
					  d->t[k + 1].type != SP_JT_STR) return false;
	}
	return process_ok(c, d, get(d, 0, "process")) && mounts_ok(c, d, get(d, 0, "mounts")) &&
	       linux_ok(c, d, get(d, 0, "linux"));
}

bool sp_eval_spec_fast(const struct pcontainer *c, const void *spec, size_t len)
{
	/* 24 KB of stack: a typical 3-4 KB spec needs ~400 tokens. */
	struct sp_jt scratch[1024];
	struct sp_jt_doc jd;
	if (sp_jt_parse(&jd, spec, len, scratch, sizeof(scratch)) < 0)
		return false;
	struct doc d = {jd.t};
	bool ok = spec_ok(c, &d);
	sp_jt_free(&jd);
	return ok;
}
