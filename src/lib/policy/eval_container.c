/* SPDX-License-Identifier: Apache-2.0 */
/* CreateContainer and ExecProcess: what the engine receives must be
 * exactly what the policy builds. The request's runtime spec (or exec
 * process) is compared with the spec sp_policy_spec_build() makes from
 * the policy container, over the whole tree: a field the request omits,
 * adds or changes is refused. Only the runtime-variable fields
 * (sp_policy_variable_fields, docs/policy.md) are checked by rules. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "sealpod/json.h"
#include "sealpod/sealed.h"

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

static bool is_strv(const json_t *a)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
	return true;
}

/* ---- the whole-spec comparison ---- */

/* Where a comparison is, as the denial will name it. */
struct cmp {
	const struct pcontainer *c;
	struct sp_eval *e;
	bool exec;
	char path[256];
	size_t len;
};

/* Paths relative to the spec (CreateContainer) or to the process
 * (ExecProcess, prefixed "process.") whose values vary at run time. */
const char *const sp_policy_variable_fields[] = {
	"process.env", /* by the policy's env rules */
	/* linux.resources within the policy's bounds (eval_resources.c);
	 * linux.resources.devices is not variable: exactly the policy's. */
	"linux.resources.memory", "linux.resources.cpu", "linux.resources.pids",
	"linux.resources.blockIO", "linux.resources.unified", NULL};
const char *const sp_policy_exec_variable_fields[] = {
	"process.args",        /* one of the container's exec commands */
	"process.env",         /* by the policy's env rules */
	"process.terminal",    /* the exec's own choice */
	"process.consoleSize", /* optional, the exec's terminal size */
	NULL};

static size_t push(struct cmp *x, const char *fmt, ...) SP_PRINTF(2, 3);
static size_t push(struct cmp *x, const char *fmt, ...)
{
	size_t old = x->len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(x->path + x->len, sizeof(x->path) - x->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		x->len += (size_t)n < sizeof(x->path) - x->len ? (size_t)n : sizeof(x->path) - x->len - 1;
	return old;
}

static void pop(struct cmp *x, size_t old)
{
	x->len = old;
	x->path[old] = 0;
}

static bool deny_here(struct cmp *x, char *expected, char *got)
{
	return sp_eval_deny(x->e, expected, got, "%s", x->path);
}

/* The path without its root ("oci_spec." or ""): "process.env". */
static const char *rel(const struct cmp *x)
{
	const char *p = x->path;
	if (!strncmp(p, "oci_spec.", 9))
		return p + 9;
	return p;
}

static bool check_env(const struct pcontainer *c, struct sp_eval *e, const json_t *env,
		      const char *base, bool require_all);

static bool exec_args(struct cmp *x, const json_t *got)
{
	const struct pcontainer *c = x->c;
	size_t i;
	json_t *cmd;
	if (c->exec && got)
		json_array_foreach(c->exec, i, cmd) if (json_equal((json_t *)got, cmd)) return true;
	return deny_here(x, c->exec && json_array_size(c->exec) ? prefixed("one of ", c->exec)
								: sp_xasprintf("no exec in container %s", c->name),
			 got ? sp_policy_render(got) : sp_xstrdup("(absent)"));
}

static bool console_size(struct cmp *x, const json_t *got)
{
	if (!got)
		return true;
	const char *k;
	json_t *v;
	bool ok = json_is_object(got);
	if (ok)
		json_object_foreach((json_t *)got, k, v) {
			if ((strcmp(k, "height") && strcmp(k, "width")) || !json_is_integer(v) ||
			    json_integer_value(v) < 0 || json_integer_value(v) > 65535)
				ok = false;
		}
	return ok || deny_here(x, sp_xstrdup("{\"height\", \"width\"} of 0..65535"), sp_policy_render(got));
}

/* A runtime-variable field: true when handled (allowed or denied, with
 * *ok the verdict). */
static bool variable(struct cmp *x, const json_t *exp, const json_t *got, bool *ok)
{
	const char *r = rel(x);
	/* Path strings are unambiguous only where the template has the
	 * node: a request's root key "process.env" must not pass for the
	 * env. The one variable field the template lacks is an exec's
	 * consoleSize, a key of the root (the process object) itself. */
	if (!exp && !(x->exec && !strcmp(x->path, "process.consoleSize")))
		return false;
	if (!strcmp(r, "process.env")) {
		if (!got) {
			*ok = deny_here(x, sp_xstrdup("an env array (the policy builds one)"), sp_xstrdup("(absent)"));
			return true;
		}
		*ok = check_env(x->c, x->e, got, x->exec ? "process" : "oci_spec.process", true);
		return true;
	}
	if (!x->exec && !strcmp(r, "linux.resources")) {
		*ok = sp_eval_resources(x->c, x->e, got, json_object_get(exp, "devices"), false, x->path);
		return true;
	}
	if (!x->exec)
		return false;
	if (!strcmp(r, "process.args")) {
		*ok = exec_args(x, got);
		return true;
	}
	if (!strcmp(r, "process.terminal")) {
		*ok = json_is_boolean(got) ||
		      deny_here(x, sp_xstrdup("true or false"), got ? sp_policy_render(got) : sp_xstrdup("(absent)"));
		return true;
	}
	if (!strcmp(r, "process.consoleSize")) {
		*ok = console_size(x, got);
		return true;
	}
	return false;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a real";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* exp is what the policy builds (NULL: the policy names nothing here),
 * got what the request has (NULL: absent). */
static bool same(struct cmp *x, const json_t *exp, const json_t *got)
{
	bool ok;
	if (variable(x, exp, got, &ok))
		return ok;
	if (!exp)
		return deny_here(x, sp_xstrdup("nothing (the policy does not name this field)"),
				 sp_policy_render(got));
	if (!got)
		return deny_here(x, sp_policy_render(exp), sp_xstrdup("(absent)"));
	bool eb = json_is_boolean(exp), gb = json_is_boolean(got);
	_cleanup_free_ char *_r = NULL;
	if (json_typeof(exp) != json_typeof(got) && !(eb && gb))
		return deny_here(x, sp_xasprintf("%s: %s", type_name(exp), _r = sp_policy_render(exp)),
				 sp_policy_render(got));
	if (json_is_object(exp)) {
		const char *k;
		json_t *v;
		/* What the request adds, first: the denial names it. */
		json_object_foreach((json_t *)got, k, v) {
			if (json_object_get(exp, k))
				continue;
			size_t o = push(x, ".%s", k);
			ok = same(x, NULL, v);
			pop(x, o);
			if (!ok)
				return false;
		}
		json_object_foreach((json_t *)exp, k, v) {
			size_t o = push(x, ".%s", k);
			ok = same(x, v, json_object_get(got, k));
			pop(x, o);
			if (!ok)
				return false;
		}
		return true;
	}
	if (json_is_array(exp)) {
		size_t ne = json_array_size(exp), ng = json_array_size(got);
		for (size_t i = 0; i < (ne > ng ? ne : ng); i++) {
			size_t o = push(x, "[%zu]", i);
			ok = same(x, json_array_get(exp, i), json_array_get(got, i));
			pop(x, o);
			if (!ok)
				return false;
		}
		return true;
	}
	if (json_equal((json_t *)exp, (json_t *)got))
		return true;
	return deny_here(x, sp_policy_render(exp), sp_policy_render(got));
}

bool sp_eval_spec_full(const struct pcontainer *c, struct sp_eval *e, const void *data, size_t len)
{
	_cleanup_json_ json_t *spec = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_json_parse(&spec, data, len, "oci_spec", &err) < 0)
		return sp_eval_deny(e, sp_xstrdup("runtime-spec JSON"), sp_xstrdup(sp_err_msg(err)), "oci_spec");
	struct cmp x = {.c = c, .e = e, .exec = false};
	push(&x, "oci_spec");
	return same(&x, c->tmpl, spec);
}

bool sp_eval_spec_fast(const struct pcontainer *c, const void *spec, size_t len)
{
	const char *b = spec;
	if (!c->fast_pre || len < c->fast_pre_len + c->fast_post_len ||
	    memcmp(b, c->fast_pre, c->fast_pre_len) ||
	    memcmp(b + len - c->fast_post_len, c->fast_post, c->fast_post_len))
		return false;
	/* The middle is the env array's inside: parsed alone, as an array,
	 * it must be strings only, and then the whole document is the
	 * template with exactly these env entries (nothing can close the
	 * array early: "[" middle "]" would not be one JSON value). */
	size_t ml = len - c->fast_pre_len - c->fast_post_len;
	char *m = sp_xmalloc(ml + 3);
	m[0] = '[';
	memcpy(m + 1, b + c->fast_pre_len, ml);
	m[ml + 1] = ']';
	m[ml + 2] = 0;
	json_t *env = NULL;
	sp_err *err = NULL;
	bool ok = sp_json_parse(&env, m, ml + 2, "env", &err) == 0 && json_is_array(env);
	free(m);
	sp_err_free(err);
	if (ok) {
		sp_policy_decision d = {0};
		struct sp_eval e = {&d, "CreateContainerRequest"};
		ok = check_env(c, &e, env, "oci_spec.process", true);
		sp_policy_decision_clear(&d);
	}
	json_decref(env);
	return ok;
}

/* Sealed values (docs/policy.md, "Sealed values"): a variable the policy
 * marks sealed must carry a well-formed sealed secret naming, on the
 * policy's own broker, one of the resources listed; any other variable
 * must not carry one (the agent unseals only what the policy marks). The
 * messages name the resource, never the value. */
static bool check_sealed(const struct env_rule *r, struct sp_eval *e, const char *path,
			 const char *name, const char *val)
{
	bool is = sp_sealed_is_sealed(val, strlen(val));
	if (!r->sealed) {
		if (!is)
			return true;
		return sp_eval_deny(e, sp_xasprintf("a plain value (the policy does not mark %s sealed)", name),
				    sp_xstrdup("a sealed secret (sealed.…)"), "%s (%s)", path, name);
	}
	_cleanup_free_ char *allowed = sp_policy_render(r->sealed);
	if (!is)
		return sp_eval_deny(e, sp_xasprintf("a sealed secret naming one of %s", allowed),
				    sp_xstrdup("a value that is not sealed (not shown)"), "%s (%s)", path, name);
	sp_sealed_secret s = {0};
	_cleanup_err_ sp_err *err = NULL;
	if (sp_sealed_parse(&s, val, strlen(val), &err) < 0) {
		sp_sealed_clear(&s);
		return sp_eval_deny(e, sp_xasprintf("a sealed secret naming one of %s", allowed),
				    sp_xasprintf("a malformed sealed secret (%s)", sp_err_msg(err)), "%s (%s)",
				    path, name);
	}
	bool ok = true;
	if (s.type != SP_SEALED_VAULT || strcmp(s.provider, "kbs"))
		ok = sp_eval_deny(e, sp_xasprintf("a sealed secret naming one of %s", allowed),
				  sp_xstrdup("a sealed secret that is not a kbs vault pointer"), "%s (%s)", path,
				  name);
	else if (s.resource.host[0])
		ok = sp_eval_deny(e, sp_xasprintf("a sealed secret on the policy's broker (kbs:///...)"),
				  sp_xasprintf("a sealed secret naming the broker `%s`", s.resource.host),
				  "%s (%s)", path, name);
	else if (!sp_policy_sealed_listed(r->sealed, s.resource.repo, s.resource.type, s.resource.tag))
		ok = sp_eval_deny(e, sp_xasprintf("a sealed secret naming one of %s", allowed),
				  sp_xasprintf("a sealed secret naming %s/%s/%s", s.resource.repo,
					       s.resource.type, s.resource.tag),
				  "%s (%s)", path, name);
	sp_sealed_clear(&s);
	return ok;
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
			return check_sealed(r, e, path, name, val);
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
			return check_sealed(r, e, path, name, val);
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
			/* One option may carry the registry's credentials
			 * ("auth=" base64 user:password, sealpod run
			 * --authfile): they decide nothing about what runs. */
			bool opts_ok = st->n_options == 0 ||
				       (st->n_options == 1 &&
					!strncmp(st->options[0], "auth=", 5) &&
					strlen(st->options[0]) <= 8192);
			if (sp_eval_registry_ok(p, st->source) && !st->mount_point[0] && opts_ok)
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

bool sp_eval_exec_process(const sp_policy *p, struct sp_eval *e, const struct pcontainer *c,
			  const Sealpod__Agent__V1__ExecProcessRequest *r)
{
	(void)p;
	if (r->process.len > MAX_SPEC)
		return sp_eval_deny(e, sp_xasprintf("at most %u bytes", MAX_SPEC),
				    sp_xasprintf("%zu bytes", r->process.len), "process");
	_cleanup_json_ json_t *proc = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_json_parse(&proc, r->process.data, r->process.len, "process", &err) < 0)
		return sp_eval_deny(e, sp_xstrdup("a runtime-spec process object"), sp_xstrdup(sp_err_msg(err)),
				    "process");
	/* The exec runs as the container's process does (the shim and
	 * `sealpod run` send that process with other args and terminal). */
	struct cmp x = {.c = c, .e = e, .exec = true};
	push(&x, "process");
	return same(&x, json_object_get(c->tmpl, "process"), proc);
}
