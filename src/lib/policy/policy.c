/* SPDX-License-Identifier: Apache-2.0 */
/* Loading a policy: canonical-bytes check, strict schema validation (every
 * unknown key is an error, so a typo cannot silently widen a policy), and
 * compilation of the per-container views the evaluator uses. */
#include <string.h>

#include "internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"
#include "sealpod/sealed.h"

const char *const sp_policy_cap_sets[SP_CAP_SETS] = {
	"bounding", "effective", "inheritable", "permitted", "ambient",
};
const char *const sp_policy_ns_types[SP_NS_TYPES] = {
	"cgroup", "ipc", "mount", "network", "pid", "time", "uts",
};

static const char *const mount_kinds[] = {
	"emptyDir", "configMap", "secret", "projected", "downwardAPI", "hostPath",
};
static const char *const env_froms[] = {
	"pod", "image", "configMap", "secret", "field", "resource", "service", "runtime",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

/* Refuses keys not in `allowed` (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *allowed,
		      const char *path, sp_err **err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(k, *a))
				ok = true;
		if (!ok)
			return sp_error(err, SP_ERR_PARSE,
					"%s: unknown key `%s` (docs/policy.md lists the keys)",
					path, k);
	}
	return 0;
}

static int check_strv(const json_t *a, const char *path, sp_err **err)
{
	if (!json_is_array(a))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an array of strings", path);
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) if (!json_is_string(e)) return sp_error(
		err, SP_ERR_PARSE, "%s[%zu]: expected a string", path, i);
	return 0;
}

static int opt_strv(const json_t *obj, const char *key, const json_t **out,
		    const char *path, sp_err **err)
{
	json_t *v = json_object_get(obj, key);
	if (!v) {
		*out = NULL;
		return 0;
	}
	_cleanup_free_ char *p = sp_xasprintf("%s.%s", path, key);
	if (check_strv(v, p, err) < 0)
		return (*err)->code;
	*out = v;
	return 0;
}

static int opt_bool(const json_t *obj, const char *key, bool *out,
		    const char *path, sp_err **err)
{
	*out = false;
	return sp_json_get_bool(obj, key, false, out, path, err);
}

/* Patterns come with the policy, and glibc's regcomp copies a repeated
 * operand once per repetition (`x{3}` is `xxx`, `x+` is `xx*`): stacked or
 * nested repetitions grow the compiled tree geometrically (`[0-9]++...+`
 * took gigabytes). So a pattern is bounded before it is compiled: at most
 * RE_MAX_LEN bytes, and its size with every repetition expanded at most
 * RE_MAX_COST atoms. The estimate walks the ERE: an atom costs 1, a group
 * the sum of its alternatives' atoms, and a quantifier multiplies its
 * operand's cost (`*`, `+`, `?` by 2, `{m,n}` by max(m, n) + 1).
 * Back-references are refused: matching them backtracks. */
#define RE_MAX_LEN 1024
#define RE_MAX_COST 4096
#define RE_MAX_DEPTH 32

static int re_quantifier(const char **pp, unsigned long *mult)
{
	const char *p = *pp;
	if (*p == '*' || *p == '+' || *p == '?') {
		*pp = p + 1;
		*mult = 2;
		return 1;
	}
	if (*p != '{' || !(p[1] >= '0' && p[1] <= '9'))
		return 0;
	unsigned long m = 0, n = 0;
	p++;
	for (; *p >= '0' && *p <= '9'; p++) /* saturates past the bound */
		m = m > RE_MAX_COST ? m : m * 10 + (unsigned long)(*p - '0');
	n = m;
	if (*p == ',') {
		p++;
		n = 0;
		for (; *p >= '0' && *p <= '9'; p++)
			n = n > RE_MAX_COST ? n : n * 10 + (unsigned long)(*p - '0');
	}
	if (*p != '}')
		return -1;
	*pp = p + 1;
	*mult = (m > n ? m : n) + 1;
	return 1;
}

static int re_bounded(const char *pat, const char *path, sp_err **err)
{
	if (strlen(pat) > RE_MAX_LEN)
		return sp_error(err, SP_ERR_PARSE, "%s: pattern longer than %d bytes", path,
				RE_MAX_LEN);
	/* cost[d]: the finished alternatives and atoms of the open group at
	 * depth d; last[d]: the cost of its latest operand (what a following
	 * quantifier multiplies). */
	unsigned long cost[RE_MAX_DEPTH + 1] = {0}, last[RE_MAX_DEPTH + 1] = {0};
	int d = 0;
	const char *p = pat;
	while (*p) {
		unsigned long mult;
		int q = re_quantifier(&p, &mult);
		if (q < 0) {
			/* Not a bound: counted as a literal `{`; regcomp
			 * names it if it is malformed. */
			cost[d] += 1;
			last[d] = 1;
			p++;
		} else if (q > 0) {
			cost[d] += last[d] * (mult - 1);
			last[d] *= mult;
		} else if (*p == '(') {
			if (d == RE_MAX_DEPTH)
				return sp_error(err, SP_ERR_PARSE,
						"%s: pattern nests groups deeper than %d", path,
						RE_MAX_DEPTH);
			d++;
			cost[d] = last[d] = 0;
			p++;
		} else if (*p == ')' && d > 0) {
			unsigned long g = cost[d] + 1;
			d--;
			cost[d] += g;
			last[d] = g;
			p++;
		} else {
			if (*p == '\\' && p[1] >= '1' && p[1] <= '9')
				/* glibc's matcher backtracks on them: a host's
				 * value could stall the agent. */
				return sp_error(err, SP_ERR_PARSE,
						"%s: pattern has a back-reference (\\%c): not allowed",
						path, p[1]);
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '[') {
				/* A bracket expression is one atom: `]` first is a
				 * member, as are `[:class:]`, `[.x.]` and `[=x=]`. */
				p++;
				if (*p == '^')
					p++;
				if (*p == ']')
					p++;
				while (*p && *p != ']') {
					if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
						char end = p[1];
						const char *c = p + 2;
						while (*c && !(c[0] == end && c[1] == ']'))
							c++;
						p = *c ? c + 1 : c;
					}
					if (*p)
						p++;
				}
				if (!*p)
					break;
			}
			cost[d] += 1;
			last[d] = 1;
			p++;
		}
		if (cost[d] > RE_MAX_COST)
			return sp_error(err, SP_ERR_PARSE,
					"%s: pattern too costly to compile (its repetitions expand to more than %d atoms)",
					path, RE_MAX_COST);
	}
	return 0;
}

static int compile_re(regex_t *re, const char *pat, const char *path, sp_err **err)
{
	if (re_bounded(pat, path, err) < 0)
		return (*err)->code;
	/* Patterns match the whole value: anchor them here so that a policy
	 * author cannot forget to. */
	_cleanup_free_ char *anch = sp_xasprintf("^(%s)$", pat);
	int r = regcomp(re, anch, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		char buf[128];
		regerror(r, re, buf, sizeof(buf));
		return sp_error(err, SP_ERR_PARSE, "%s: bad pattern `%s`: %s", path, pat, buf);
	}
	return 0;
}

bool sp_policy_re_match(const regex_t *re, const char *s)
{
	return regexec(re, s, 0, NULL, 0) == 0;
}

/* env[].sealed: 1..64 distinct "repo/type/tag" resource paths (the
 * broker's path rules, sp_sealed_uri_parse). Needs policy.kbs: the broker
 * comes from the policy, never from the value. */
static int check_sealed_list(const json_t *s, const char *ep, sp_err **err);

static int load_sealed(const sp_policy *p, struct env_rule *r, const json_t *rule, const char *ep,
		       sp_err **err)
{
	const json_t *s = json_object_get(rule, "sealed");
	if (!s)
		return 0;
	if (!json_is_array(s) || json_array_size(s) == 0 || json_array_size(s) > 64)
		return sp_error(err, SP_ERR_PARSE, "%s.sealed: expected an array of 1 to 64 resource paths", ep);
	if (!r->name)
		return sp_error(err, SP_ERR_PARSE, "%s.sealed: only for a rule with `name`", ep);
	if (!p->kbs_url)
		return sp_error(err, SP_ERR_PARSE,
				"%s.sealed: a sealed variable needs the policy's key broker (`kbs`, sealpod policy gen --kbs URL)",
				ep);
	if (check_sealed_list(s, ep, err) < 0)
		return (*err)->code;
	r->sealed = s;
	return 0;
}

/* 1..64 distinct "repo/type/tag" resource paths (ep names the member). */
static int check_sealed_list(const json_t *s, const char *ep, sp_err **err)
{
	if (!json_is_array(s) || json_array_size(s) == 0 || json_array_size(s) > 64)
		return sp_error(err, SP_ERR_PARSE, "%s.sealed: expected an array of 1 to 64 resource paths", ep);
	size_t i;
	json_t *v;
	json_array_foreach(s, i, v) {
		const char *path = json_string_value(v);
		if (!path)
			return sp_error(err, SP_ERR_PARSE, "%s.sealed[%zu]: expected a string", ep, i);
		_cleanup_free_ char *uri = sp_xasprintf("kbs:///%s", path);
		sp_sealed_uri u;
		_cleanup_err_ sp_err *e = NULL;
		if (sp_sealed_uri_parse(&u, uri, &e) < 0)
			return sp_error(err, SP_ERR_PARSE,
					"%s.sealed[%zu]: `%s` is not a resource path repo/type/tag (%s)", ep, i,
					path, sp_err_msg(e));
		for (size_t k = 0; k < i; k++)
			if (!strcmp(json_string_value(json_array_get(s, k)), path))
				return sp_error(err, SP_ERR_PARSE, "%s.sealed[%zu]: `%s` listed twice", ep, i, path);
	}
	return 0;
}

/* A file name a Secret volume may mark sealed: one component of
 * Kubernetes' key characters [-._a-zA-Z0-9], 1-253 long, not "." and not
 * starting with ".." (kubelet's own ..data and timestamped names). */
static bool sealed_key_ok(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > 253 || !strcmp(k, ".") || !strncmp(k, "..", 2))
		return false;
	for (const char *c = k; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return false;
	return true;
}

/* requests.sealed_files: {dir: {key: [repo/type/tag, ...]}} where dir is
 * one of copy_file's directories. Needs policy.kbs. */
static int load_sealed_files(sp_policy *p, const json_t *req, sp_err **err)
{
	const json_t *sf = req ? json_object_get(req, "sealed_files") : NULL;
	if (!sf)
		return 0;
	const char *rp = "policy.requests.sealed_files";
	if (!json_is_object(sf) || json_object_size(sf) > 64)
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object of at most 64 directories", rp);
	if (json_object_size(sf) && !p->kbs_url)
		return sp_error(err, SP_ERR_PARSE,
				"%s: sealed files need the policy's key broker (`kbs`, sealpod policy gen --kbs URL)",
				rp);
	const char *dir;
	json_t *files;
	json_object_foreach((json_t *)sf, dir, files) {
		bool listed = false;
		size_t i;
		json_t *d;
		if (p->copy_file)
			json_array_foreach(p->copy_file, i, d) listed |= !strcmp(json_string_value(d), dir);
		if (!listed)
			return sp_error(err, SP_ERR_PARSE, "%s: `%.200s` is not one of copy_file's directories",
					rp, dir);
		if (!json_is_object(files) || json_object_size(files) == 0 ||
		    json_object_size(files) > 256)
			return sp_error(err, SP_ERR_PARSE,
					"%s[\"%.200s\"]: expected an object of 1 to 256 file names", rp, dir);
		const char *key;
		json_t *res;
		json_object_foreach(files, key, res) {
			if (!sealed_key_ok(key))
				return sp_error(err, SP_ERR_PARSE,
						"%s[\"%.200s\"]: `%.200s` is not a volume key (1-253 of [-._a-zA-Z0-9], not starting with \"..\")",
						rp, dir, key);
			_cleanup_free_ char *ep = sp_xasprintf("%s[\"%.200s\"][\"%s\"]", rp, dir, key);
			if (check_sealed_list(res, ep, err) < 0)
				return (*err)->code;
		}
	}
	p->sealed_files = sf;
	return 0;
}

static int load_env(const sp_policy *p, struct pcontainer *c, const json_t *env, const char *path,
		    sp_err **err)
{
	static const char *const keys[] = {"name", "name_pattern", "value", "pattern",
					   "from", "optional", "sealed", NULL};
	if (!json_is_array(env))
		return sp_error(err, SP_ERR_PARSE, "%s.env: expected an array", path);
	c->n_env = json_array_size(env);
	c->env = sp_xcalloc(c->n_env ? c->n_env : 1, sizeof(*c->env));
	for (size_t i = 0; i < c->n_env; i++) {
		json_t *e = json_array_get(env, i);
		struct env_rule *r = &c->env[i];
		_cleanup_free_ char *ep = sp_xasprintf("%s.env[%zu]", path, i);
		if (!json_is_object(e))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an object", ep);
		if (check_keys(e, keys, ep, err) < 0 ||
		    sp_json_get_string(e, "name", false, &r->name, ep, err) < 0 ||
		    sp_json_get_string(e, "name_pattern", false, &r->name_pattern, ep, err) < 0 ||
		    sp_json_get_string(e, "value", false, &r->value, ep, err) < 0 ||
		    sp_json_get_string(e, "pattern", false, &r->pattern, ep, err) < 0 ||
		    sp_json_get_string(e, "from", false, &r->from, ep, err) < 0 ||
		    opt_bool(e, "optional", &r->optional, ep, err) < 0)
			return (*err)->code;
		if (!r->name == !r->name_pattern)
			return sp_error(err, SP_ERR_PARSE, "%s: give exactly one of name, name_pattern", ep);
		if (!r->value == !r->pattern)
			return sp_error(err, SP_ERR_PARSE, "%s: give exactly one of value, pattern", ep);
		if (r->name && (!r->name[0] || strchr(r->name, '=')))
			return sp_error(err, SP_ERR_PARSE, "%s.name: must be non-empty and without `=`", ep);
		if (r->from && !in_list(r->from, env_froms, SP_ARRAY_LEN(env_froms)))
			return sp_error(err, SP_ERR_PARSE, "%s.from: unknown source `%s`", ep, r->from);
		r->secret = r->from && !strcmp(r->from, "secret");
		if (load_sealed(p, r, e, ep, err) < 0)
			return (*err)->code;
		if (r->name_pattern) {
			if (compile_re(&r->name_re, r->name_pattern, ep, err) < 0)
				return (*err)->code;
			r->has_name_re = true;
		}
		if (r->pattern) {
			if (compile_re(&r->value_re, r->pattern, ep, err) < 0)
				return (*err)->code;
			r->has_value_re = true;
		}
	}
	return 0;
}

static const char *kind_dir(const char *kind)
{
	if (!strcmp(kind, "emptyDir"))
		return "emptydir";
	if (!strcmp(kind, "configMap"))
		return "configmap";
	if (!strcmp(kind, "downwardAPI"))
		return "downwardapi";
	return kind; /* secret, projected */
}

static int load_mounts(struct pcontainer *c, const json_t *mounts,
		       const char *path, sp_err **err)
{
	static const char *const keys[] = {"destination", "kind", "volume", "read_only",
					   "sub_path", "source", NULL};
	if (!json_is_array(mounts))
		return sp_error(err, SP_ERR_PARSE, "%s.mounts: expected an array", path);
	c->n_mounts = json_array_size(mounts);
	c->mounts = sp_xcalloc(c->n_mounts ? c->n_mounts : 1, sizeof(*c->mounts));
	for (size_t i = 0; i < c->n_mounts; i++) {
		json_t *m = json_array_get(mounts, i);
		struct mount_rule *r = &c->mounts[i];
		const char *sub = NULL, *src = NULL;
		_cleanup_free_ char *mp = sp_xasprintf("%s.mounts[%zu]", path, i);
		if (!json_is_object(m))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an object", mp);
		if (check_keys(m, keys, mp, err) < 0 ||
		    sp_json_get_string(m, "destination", true, &r->destination, mp, err) < 0 ||
		    sp_json_get_string(m, "kind", true, &r->kind, mp, err) < 0 ||
		    sp_json_get_string(m, "volume", true, &r->volume, mp, err) < 0 ||
		    sp_json_get_string(m, "sub_path", false, &sub, mp, err) < 0 ||
		    sp_json_get_string(m, "source", false, &src, mp, err) < 0 ||
		    opt_bool(m, "read_only", &r->read_only, mp, err) < 0)
			return (*err)->code;
		if (!in_list(r->kind, mount_kinds, SP_ARRAY_LEN(mount_kinds)))
			return sp_error(err, SP_ERR_PARSE, "%s.kind: unknown volume kind `%s`", mp, r->kind);
		_cleanup_free_ char *dn = sp_policy_path_normalize(r->destination);
		if (!dn || strcmp(dn, r->destination))
			return sp_error(err, SP_ERR_PARSE,
					"%s.destination: `%s` must be absolute and normalised, without `..`",
					mp, r->destination);
		if (!r->volume[0] || strchr(r->volume, '/') || !strcmp(r->volume, ".") ||
		    !strcmp(r->volume, ".."))
			return sp_error(err, SP_ERR_PARSE, "%s.volume: `%s` is not a volume name", mp, r->volume);
		bool host = !strcmp(r->kind, "hostPath");
		if (host != !!src)
			return sp_error(err, SP_ERR_PARSE, "%s: source is required for hostPath and only there", mp);
		if (host) {
			_cleanup_free_ char *sn = sp_policy_path_normalize(src);
			if (!sn || strcmp(sn, src))
				return sp_error(err, SP_ERR_PARSE, "%s.source: `%s` must be absolute and normalised", mp, src);
			r->source = sp_xstrdup(src);
		} else {
			r->source = sp_xasprintf(SP_POLICY_VOLUME_ROOT "/%s/%s", kind_dir(r->kind), r->volume);
		}
		if (sub && sub[0]) {
			_cleanup_free_ char *abs = sp_xasprintf("/%s", sub);
			_cleanup_free_ char *n = sp_policy_path_normalize(abs);
			if (!n || sub[0] == '/')
				return sp_error(err, SP_ERR_PARSE, "%s.sub_path: `%s` must be relative, without `..`", mp, sub);
			char *s = sp_xasprintf("%s%s", r->source, n);
			free(r->source);
			r->source = s;
		}
	}
	return 0;
}

static int load_container(sp_policy *p, struct pcontainer *c, const json_t *j,
			  size_t idx, sp_err **err)
{
	static const char *const keys[] = {
		"name", "init", "image", "args", "env", "cwd", "user", "capabilities",
		"privileged", "no_new_privileges", "terminal", "read_only_root", "mounts",
		"namespaces", "sysctls", "devices", "seccomp", "apparmor", "masked_paths",
		"readonly_paths", "exec", "logs", "stdin", "resources", NULL};
	_cleanup_free_ char *path = sp_xasprintf("containers[%zu]", idx);
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object", path);
	c->j = j;
	if (check_keys(j, keys, path, err) < 0 ||
	    sp_json_get_string(j, "name", true, &c->name, path, err) < 0 ||
	    opt_bool(j, "init", &c->init, path, err) < 0 ||
	    sp_json_get_string(j, "image", true, &c->image, path, err) < 0 ||
	    opt_strv(j, "args", &c->args, path, err) < 0 ||
	    sp_json_get_string(j, "cwd", true, &c->cwd, path, err) < 0 ||
	    opt_bool(j, "privileged", &c->privileged, path, err) < 0 ||
	    opt_bool(j, "no_new_privileges", &c->no_new_privs, path, err) < 0 ||
	    opt_bool(j, "terminal", &c->terminal, path, err) < 0 ||
	    opt_bool(j, "read_only_root", &c->read_only_root, path, err) < 0 ||
	    opt_bool(j, "logs", &c->logs, path, err) < 0 ||
	    opt_bool(j, "stdin", &c->stdin_, path, err) < 0 ||
	    sp_json_get_string(j, "apparmor", false, &c->apparmor, path, err) < 0 ||
	    opt_strv(j, "masked_paths", &c->masked_paths, path, err) < 0 ||
	    opt_strv(j, "readonly_paths", &c->readonly_paths, path, err) < 0)
		return (*err)->code;
	if (!c->args || json_array_size(c->args) == 0)
		return sp_error(err, SP_ERR_PARSE, "%s.args: required, with at least the program", path);
	if (!c->apparmor)
		c->apparmor = "";
	if (c->cwd[0] != '/')
		return sp_error(err, SP_ERR_PARSE, "%s.cwd: `%s` must be absolute", path, c->cwd);
	const char *at = strstr(c->image, "@sha256:");
	if (!at || strlen(at + 8) != 64 || strspn(at + 8, "0123456789abcdef") != 64 || at == c->image)
		return sp_error(err, SP_ERR_PARSE,
				"%s.image: `%s` must be pinned as name@sha256:<64 lowercase hex>",
				path, c->image);
	c->digest = at + 1;

	json_t *v = json_object_get(j, "env");
	if (v && load_env(p, c, v, path, err) < 0)
		return (*err)->code;
	if (!v)
		c->env = sp_xcalloc(1, sizeof(*c->env));

	json_t *user = NULL;
	static const char *const ukeys[] = {"uid", "gid", "groups", NULL};
	_cleanup_free_ char *up = sp_xasprintf("%s.user", path);
	if (sp_json_get_object(j, "user", true, &user, path, err) < 0 ||
	    check_keys(user, ukeys, up, err) < 0 ||
	    sp_json_get_int(user, "uid", true, &c->uid, up, err) < 0 ||
	    sp_json_get_int(user, "gid", true, &c->gid, up, err) < 0)
		return (*err)->code;
	if (c->uid < 0 || c->uid > UINT32_MAX || c->gid < 0 || c->gid > UINT32_MAX)
		return sp_error(err, SP_ERR_PARSE, "%s: uid and gid must fit 32 bits", up);
	c->groups = json_object_get(user, "groups");
	if (c->groups) {
		size_t i;
		json_t *g;
		if (!json_is_array(c->groups))
			return sp_error(err, SP_ERR_PARSE, "%s.groups: expected an array", up);
		json_array_foreach(c->groups, i, g) if (!json_is_integer(g)) return sp_error(
			err, SP_ERR_PARSE, "%s.groups[%zu]: expected an integer", up, i);
	}

	json_t *caps = NULL;
	_cleanup_free_ char *cp = sp_xasprintf("%s.capabilities", path);
	static const char *const ckeys[] = {"bounding", "effective", "inheritable",
					    "permitted", "ambient", NULL};
	if (sp_json_get_object(j, "capabilities", true, &caps, path, err) < 0 ||
	    check_keys(caps, ckeys, cp, err) < 0)
		return (*err)->code;
	for (int s = 0; s < SP_CAP_SETS; s++)
		if (opt_strv(caps, sp_policy_cap_sets[s], &c->caps[s], cp, err) < 0)
			return (*err)->code;

	v = json_object_get(j, "mounts");
	if (v && load_mounts(c, v, path, err) < 0)
		return (*err)->code;
	if (!v)
		c->mounts = sp_xcalloc(1, sizeof(*c->mounts));

	json_t *ns = NULL;
	_cleanup_free_ char *np = sp_xasprintf("%s.namespaces", path);
	if (sp_json_get_object(j, "namespaces", true, &ns, path, err) < 0)
		return (*err)->code;
	const char *k;
	json_object_foreach(ns, k, v) {
		int t = -1;
		for (int i = 0; i < SP_NS_TYPES; i++)
			if (!strcmp(k, sp_policy_ns_types[i]))
				t = i;
		if (t < 0)
			return sp_error(err, SP_ERR_PARSE, "%s: unknown namespace type `%s`", np, k);
		const char *val = json_string_value(v);
		if (!val || (strcmp(val, "new") && strcmp(val, "pod")))
			return sp_error(err, SP_ERR_PARSE, "%s.%s: expected \"new\" or \"pod\"", np, k);
		c->ns[t] = val;
	}
	if (!c->ns[2] || strcmp(c->ns[2], "new"))
		return sp_error(err, SP_ERR_PARSE, "%s.mount: every container needs its own mount namespace (\"new\")", np);

	c->sysctls = json_object_get(j, "sysctls");
	if (c->sysctls) {
		if (!json_is_object(c->sysctls))
			return sp_error(err, SP_ERR_PARSE, "%s.sysctls: expected an object", path);
		json_object_foreach((json_t *)c->sysctls, k, v) if (!json_is_string(v)) return sp_error(
			err, SP_ERR_PARSE, "%s.sysctls.%s: expected a string", path, k);
	}
	c->devices = json_object_get(j, "devices");
	if (c->devices) {
		static const char *const dkeys[] = {"path", "type", "major", "minor",
						    "file_mode", "uid", "gid", NULL};
		size_t i;
		json_t *d;
		if (!json_is_array(c->devices))
			return sp_error(err, SP_ERR_PARSE, "%s.devices: expected an array", path);
		json_array_foreach(c->devices, i, d) {
			_cleanup_free_ char *dp = sp_xasprintf("%s.devices[%zu]", path, i);
			const char *s;
			if (!json_is_object(d))
				return sp_error(err, SP_ERR_PARSE, "%s: expected an object", dp);
			if (check_keys(d, dkeys, dp, err) < 0 ||
			    sp_json_get_string(d, "path", true, &s, dp, err) < 0 ||
			    sp_json_get_string(d, "type", true, &s, dp, err) < 0)
				return (*err)->code;
		}
	}
	v = json_object_get(j, "seccomp");
	if (v) {
		if (!json_is_object(v))
			return sp_error(err, SP_ERR_PARSE, "%s.seccomp: expected a runtime-spec linux.seccomp object", path);
		c->seccomp = sp_json_dump_canonical(v);
	}
	c->exec = json_object_get(j, "exec");
	if (c->exec) {
		size_t i;
		json_t *e;
		if (!json_is_array(c->exec))
			return sp_error(err, SP_ERR_PARSE, "%s.exec: expected an array of commands", path);
		json_array_foreach(c->exec, i, e) {
			_cleanup_free_ char *ep = sp_xasprintf("%s.exec[%zu]", path, i);
			if (check_strv(e, ep, err) < 0)
				return (*err)->code;
			if (json_array_size(e) == 0)
				return sp_error(err, SP_ERR_PARSE, "%s: an empty command", ep);
		}
	}
	if (sp_policy_load_resources(c, json_object_get(j, "resources"), path, err) < 0)
		return (*err)->code;
	(void)p;
	return sp_policy_spec_template(c);
}

static int load_doc(sp_policy *p, sp_err **err)
{
	static const char *const keys[] = {"version", "pod", "requests", "containers",
					   "registries", "kbs", NULL};
	static const char *const pkeys[] = {"name", "namespace", "share_process_namespace", NULL};
	static const char *const rkeys[] = {"copy_file", "sealed_files", "network", "report",
					    "set_policy_again", "stats", "list_processes",
					    "update_container", NULL};
	json_t *d = p->doc;
	int64_t version = 0;
	if (!json_is_object(d))
		return sp_error(err, SP_ERR_PARSE, "policy: expected a JSON object");
	if (check_keys(d, keys, "policy", err) < 0 ||
	    sp_json_get_int(d, "version", true, &version, "policy", err) < 0)
		return (*err)->code;
	if (version != SP_POLICY_VERSION)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"policy.version: %lld is not supported (this sealpod reads version %d)",
				(long long)version, SP_POLICY_VERSION);
	json_t *pod = NULL, *req = NULL, *cs = NULL;
	if (sp_json_get_object(d, "pod", false, &pod, "policy", err) < 0 ||
	    sp_json_get_object(d, "requests", false, &req, "policy", err) < 0 ||
	    sp_json_get_array(d, "containers", true, &cs, "policy", err) < 0)
		return (*err)->code;
	if (pod && (check_keys(pod, pkeys, "policy.pod", err) < 0 ||
		    sp_json_get_string(pod, "name", false, &p->pod_name, "policy.pod", err) < 0 ||
		    sp_json_get_string(pod, "namespace", false, &p->pod_namespace, "policy.pod", err) < 0 ||
		    opt_bool(pod, "share_process_namespace", &p->share_pid, "policy.pod", err) < 0))
		return (*err)->code;
	if (req) {
		const char *rp = "policy.requests";
		if (check_keys(req, rkeys, rp, err) < 0 ||
		    opt_strv(req, "copy_file", &p->copy_file, rp, err) < 0 ||
		    opt_bool(req, "network", &p->network, rp, err) < 0 ||
		    opt_bool(req, "report", &p->report, rp, err) < 0 ||
		    opt_bool(req, "set_policy_again", &p->set_policy_again, rp, err) < 0 ||
		    opt_bool(req, "stats", &p->stats, rp, err) < 0 ||
		    opt_bool(req, "list_processes", &p->list_processes, rp, err) < 0 ||
		    opt_bool(req, "update_container", &p->update_container, rp, err) < 0)
			return (*err)->code;
		size_t i;
		json_t *e;
		if (p->copy_file)
			json_array_foreach(p->copy_file, i, e) {
				const char *s = json_string_value(e);
				_cleanup_free_ char *n = sp_policy_path_normalize(s);
				if (!n || strcmp(n, s) || !strcmp(n, "/"))
					return sp_error(err, SP_ERR_PARSE,
							"%s.copy_file[%zu]: `%s` must be an absolute normalised directory other than /",
							rp, i, s);
			}
	}
	if (sp_policy_load_registries(p, json_object_get(d, "registries"), err) < 0 ||
	    sp_policy_load_kbs(p, json_object_get(d, "kbs"), err) < 0 ||
	    load_sealed_files(p, req, err) < 0)
		return (*err)->code;
	p->n_c = json_array_size(cs);
	p->c = sp_xcalloc(p->n_c ? p->n_c : 1, sizeof(*p->c));
	for (size_t i = 0; i < p->n_c; i++) {
		if (load_container(p, &p->c[i], json_array_get(cs, i), i, err) < 0)
			return (*err)->code;
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->c[k].name, p->c[i].name))
				return sp_error(err, SP_ERR_PARSE,
						"policy.containers[%zu].name: `%s` appears twice", i,
						p->c[i].name);
	}
	return 0;
}

static int finish_load(sp_policy **out, json_t *doc, sp_err **err)
{
	sp_policy *p = sp_xzalloc(sizeof(*p));
	p->doc = doc;
	if (load_doc(p, err) < 0) {
		sp_policy_free(p);
		return (*err)->code;
	}
	p->bytes = sp_json_dump_canonical(doc);
	p->len = strlen(p->bytes);
	sp_sha256(p->hash, p->bytes, p->len);
	*out = p;
	return 0;
}

int sp_policy_load(sp_policy **out, const void *bytes, size_t len, sp_err **err)
{
	*out = NULL;
	if (len > SP_POLICY_MAX)
		return sp_error(err, SP_ERR_LIMIT, "policy: %zu bytes is more than the %u allowed",
				len, SP_POLICY_MAX);
	json_t *doc = NULL;
	if (sp_json_parse(&doc, bytes, len, "policy", err) < 0)
		return (*err)->code;
	_cleanup_free_ char *canon = sp_json_dump_canonical(doc);
	if (strlen(canon) != len || memcmp(canon, bytes, len) != 0) {
		json_decref(doc);
		return sp_error(err, SP_ERR_PARSE,
				"policy: not in canonical form (sorted keys, no spaces); "
				"`sealpod policy gen` writes canonical policies");
	}
	return finish_load(out, doc, err);
}

int sp_policy_load_json(sp_policy **out, const json_t *doc, sp_err **err)
{
	*out = NULL;
	/* A deep copy, so later changes by the caller cannot reach p. */
	return finish_load(out, json_deep_copy(doc), err);
}

void sp_policy_free(sp_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_c; i++) {
		struct pcontainer *c = &p->c[i];
		for (size_t k = 0; c->env && k < c->n_env; k++) {
			if (c->env[k].has_name_re)
				regfree(&c->env[k].name_re);
			if (c->env[k].has_value_re)
				regfree(&c->env[k].value_re);
		}
		free(c->env);
		for (size_t k = 0; c->mounts && k < c->n_mounts; k++)
			free(c->mounts[k].source);
		free(c->mounts);
		free(c->seccomp);
		json_decref(c->tmpl);
		free(c->fast_pre);
		free(c->fast_post);
	}
	free(p->c);
	free(p->regs);
	free(p->bytes);
	json_decref(p->doc);
	free(p);
}

void sp_policy_hash(const sp_policy *p, uint8_t out[SP_SHA256_LEN])
{
	memcpy(out, p->hash, SP_SHA256_LEN);
}

const char *sp_policy_bytes(const sp_policy *p, size_t *len)
{
	if (len)
		*len = p->len;
	return p->bytes;
}

const json_t *sp_policy_json(const sp_policy *p)
{
	return p->doc;
}

size_t sp_policy_container_count(const sp_policy *p)
{
	return p->n_c;
}

int sp_policy_container_find(const sp_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_c; i++)
		if (!strcmp(p->c[i].name, name))
			return (int)i;
	return -1;
}

const json_t *sp_policy_env_sealed(const sp_policy *p, size_t index, const char *name)
{
	if (!p || index >= p->n_c || !name)
		return NULL;
	const struct pcontainer *c = &p->c[index];
	for (size_t i = 0; i < c->n_env; i++)
		if (c->env[i].name && !strcmp(c->env[i].name, name))
			return c->env[i].sealed;
	return NULL;
}

const json_t *sp_policy_sealed_files(const sp_policy *p, const char *dir)
{
	if (!p || !p->sealed_files || !dir)
		return NULL;
	return json_object_get(p->sealed_files, dir);
}

bool sp_policy_sealed_listed(const json_t *resources, const char *repo, const char *type,
			     const char *tag)
{
	size_t i;
	json_t *v;
	_cleanup_free_ char *want = sp_xasprintf("%s/%s/%s", repo, type, tag);
	json_array_foreach(resources, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), want))
		return true;
	return false;
}

char *sp_policy_path_normalize(const char *path)
{
	if (!path || path[0] != '/')
		return NULL;
	size_t n = strlen(path);
	char *out = sp_xmalloc(n + 2);
	size_t o = 0;
	const char *s = path;
	while (*s) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *e = strchrnul(s, '/');
		size_t l = (size_t)(e - s);
		if (l == 1 && s[0] == '.') {
			s = e;
			continue;
		}
		if (l == 2 && s[0] == '.' && s[1] == '.') {
			free(out);
			return NULL;
		}
		out[o++] = '/';
		memcpy(out + o, s, l);
		o += l;
		s = e;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = 0;
	return out;
}

char *sp_policy_render(const json_t *v)
{
	if (!v)
		return sp_xstrdup("(absent)");
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	if (!s)
		sp_oom();
	if (strlen(s) > 240) {
		s[236] = 0;
		strcat(s, "...");
	}
	return s;
}
