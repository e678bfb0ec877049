/* SPDX-License-Identifier: Apache-2.0 */
/* linux.resources in CreateContainer and UpdateContainer. The policy
 * records the pod YAML's requests and limits and a closed set of cgroup
 * v2 keys (containers[].resources); the host may set memory, cpu, pids
 * and blockIO weights within those bounds, the listed unified keys, and
 * nothing else. The device cgroup rules are the policy's, exactly: they
 * are what keeps a container with CAP_MKNOD off the guest's disks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sealpod/json.h"

/* Unified (cgroup v2) keys a policy may list. Interface files that act
 * on processes or on the hierarchy (cgroup.procs, cgroup.kill,
 * cgroup.threads, cgroup.subtree_control, cgroup.freeze...) never. */
static const char *const known_unified[] = {
	"memory.max", "memory.high",	"memory.low", "memory.min",  "memory.swap.max",
	"memory.oom.group", "cpu.max",	"cpu.weight", "cpu.weight.nice", "cpu.idle",
	"cpuset.cpus", "cpuset.mems",	"pids.max",   "io.weight",   NULL};

static bool in(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (!strcmp(*list, s))
			return true;
	return false;
}

static int get_i64(const json_t *o, const char *k, int64_t *out, const char *path, sp_err **err)
{
	json_t *v = json_object_get(o, k);
	*out = -1;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return sp_error(err, SP_ERR_PARSE, "%s.%s: expected a non-negative integer", path, k);
	*out = json_integer_value(v);
	return 0;
}

int sp_policy_load_resources(struct pcontainer *c, const json_t *res, const char *path,
			     sp_err **err)
{
	c->mem_request = c->mem_limit = c->cpu_request = c->cpu_limit = -1;
	c->cgroup_keys = NULL;
	if (!res)
		return 0;
	_cleanup_free_ char *rp = sp_xasprintf("%s.resources", path);
	if (!json_is_object(res))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object", rp);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)res, k, v) {
		if (strcmp(k, "requests") && strcmp(k, "limits") && strcmp(k, "cgroup_keys"))
			return sp_error(err, SP_ERR_PARSE, "%s.%s: unknown key", rp, k);
	}
	static const char *const which[] = {"requests", "limits"};
	int64_t *dst[2][2] = {{&c->cpu_request, &c->mem_request}, {&c->cpu_limit, &c->mem_limit}};
	for (int w = 0; w < 2; w++) {
		json_t *o = json_object_get(res, which[w]);
		if (!o)
			continue;
		_cleanup_free_ char *wp = sp_xasprintf("%s.%s", rp, which[w]);
		if (!json_is_object(o))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an object", wp);
		json_object_foreach(o, k, v) {
			if (strcmp(k, "cpu") && strcmp(k, "memory"))
				return sp_error(err, SP_ERR_PARSE,
						"%s.%s: unknown key (cpu in millicores, memory in bytes)", wp, k);
		}
		if (get_i64(o, "cpu", dst[w][0], wp, err) < 0 || get_i64(o, "memory", dst[w][1], wp, err) < 0)
			return (*err)->code;
	}
	if ((c->cpu_limit >= 0 && c->cpu_request > c->cpu_limit) ||
	    (c->mem_limit >= 0 && c->mem_request > c->mem_limit))
		return sp_error(err, SP_ERR_PARSE, "%s: a request above its limit", rp);
	json_t *keys = json_object_get(res, "cgroup_keys");
	if (keys) {
		size_t i;
		if (!json_is_array(keys))
			return sp_error(err, SP_ERR_PARSE, "%s.cgroup_keys: expected an array", rp);
		json_array_foreach(keys, i, v) {
			const char *s = json_string_value(v);
			if (!s || !in(known_unified, s))
				return sp_error(err, SP_ERR_PARSE,
						"%s.cgroup_keys[%zu]: `%s` is not a cgroup key a host may set (memory.*, cpu.*, cpuset.*, pids.max, io.weight; never cgroup.*)",
						rp, i, s ? s : "(not a string)");
		}
		c->cgroup_keys = keys;
	}
	return 0;
}

static bool deny_v(struct sp_eval *e, const char *expected, const json_t *got, const char *path,
		   const char *k)
{
	return sp_eval_deny(e, sp_xstrdup(expected), got ? sp_policy_render(got) : sp_xstrdup("(absent)"),
			    "%s.%s", path, k);
}

/* Every key of o is in keys. */
static bool only(struct sp_eval *e, const json_t *o, const char *const *keys, const char *path)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		if (!in(keys, k))
			return deny_v(e, "nothing (the policy does not name this field)", v, path, k);
	}
	return true;
}

/* An integer in [lo, hi], or -1 ("unlimited") when minus1. */
static bool int_in(struct sp_eval *e, const json_t *o, const char *k, int64_t lo, int64_t hi,
		   bool minus1, const char *path)
{
	json_t *v = json_object_get(o, k);
	if (!v)
		return true;
	int64_t x = json_is_integer(v) ? json_integer_value(v) : 0;
	if (json_is_integer(v) && ((x >= lo && x <= hi) || (minus1 && x == -1)))
		return true;
	_cleanup_free_ char *exp = hi == INT64_MAX ? sp_xasprintf("an integer >= %lld%s", (long long)lo,
								    minus1 ? " or -1" : "")
						   : sp_xasprintf("an integer in %lld..%lld%s", (long long)lo,
								  (long long)hi, minus1 ? " or -1" : "");
	return deny_v(e, exp, v, path, k);
}

/* Bytes bounded below by the request and above by the limit. */
static bool mem_value(const struct pcontainer *c, struct sp_eval *e, const json_t *o, const char *k,
		      bool floor_request, const char *path)
{
	int64_t lo = floor_request && c->mem_request > 0 ? c->mem_request : (floor_request ? 1 : 0);
	int64_t hi = c->mem_limit >= 0 ? c->mem_limit : INT64_MAX;
	return int_in(e, o, k, lo, hi, c->mem_limit < 0, path);
}

/* quota/period within the cpu request..limit (millicores). */
static bool cpu_quota_ok(const struct pcontainer *c, int64_t quota, int64_t period)
{
	if (quota == -1)
		return c->cpu_limit < 0;
	if (quota < 1000 || quota > (1LL << 40) || period < 1000 || period > 1000000)
		return false;
	__int128 q = (__int128)quota * 1000;
	if (c->cpu_limit >= 0 && q > (__int128)c->cpu_limit * period)
		return false;
	if (c->cpu_request > 0 && q < (__int128)c->cpu_request * period)
		return false;
	return true;
}

static bool cpuset_ok(const char *s)
{
	return strlen(s) <= 64 && strspn(s, "0123456789,-") == strlen(s);
}

static bool digits(const char *s, int64_t *out)
{
	if (!*s || strlen(s) > 18 || strspn(s, "0123456789") != strlen(s))
		return false;
	*out = strtoll(s, NULL, 10);
	return true;
}

static bool unified_value(const struct pcontainer *c, const char *k, const char *v)
{
	int64_t n;
	if (strlen(v) > 64 || strspn(v, "0123456789abcdefghijklmnopqrstuvwxyz .:,=-") != strlen(v))
		return false;
	if (!strcmp(k, "memory.max") || !strcmp(k, "memory.high") || !strcmp(k, "memory.swap.max")) {
		if (!strcmp(v, "max"))
			return c->mem_limit < 0;
		return digits(v, &n) && (c->mem_limit < 0 || n <= c->mem_limit) &&
		       (strcmp(k, "memory.max") || n >= (c->mem_request > 0 ? c->mem_request : 1));
	}
	if (!strcmp(k, "memory.low") || !strcmp(k, "memory.min"))
		return digits(v, &n) && (c->mem_limit < 0 || n <= c->mem_limit);
	if (!strcmp(k, "cpu.max")) {
		const char *sp = strchr(v, ' ');
		_cleanup_free_ char *qs = sp ? sp_xstrndup(v, (size_t)(sp - v)) : sp_xstrdup(v);
		int64_t q = -1, per = 100000;
		if (strcmp(qs, "max") && !digits(qs, &q))
			return false;
		if (sp && !digits(sp + 1, &per))
			return false;
		return cpu_quota_ok(c, q, per);
	}
	if (!strcmp(k, "cpuset.cpus") || !strcmp(k, "cpuset.mems"))
		return cpuset_ok(v);
	if (!strcmp(k, "memory.oom.group") || !strcmp(k, "cpu.idle"))
		return !strcmp(v, "0") || !strcmp(v, "1");
	if (!strcmp(k, "cpu.weight"))
		return digits(v, &n) && n >= 1 && n <= 10000;
	if (!strcmp(k, "cpu.weight.nice")) {
		const char *d = v[0] == '-' ? v + 1 : v;
		return digits(d, &n) && n <= 20;
	}
	if (!strcmp(k, "pids.max"))
		return !strcmp(v, "max") || (digits(v, &n) && n >= 1);
	if (!strcmp(k, "io.weight")) {
		const char *d = !strncmp(v, "default ", 8) ? v + 8 : v;
		return digits(d, &n) && n >= 1 && n <= 10000;
	}
	return false;
}

bool sp_eval_resources(const struct pcontainer *c, struct sp_eval *e, const json_t *res,
		       const json_t *devices, bool update, const char *path)
{
	static const char *const keys[] = {"devices", "memory", "cpu", "pids", "blockIO", "unified", NULL};
	if (!res) {
		if (update)
			return true;
		return sp_eval_deny(e, sp_xstrdup("the policy's device cgroup rules"), sp_xstrdup("(absent)"),
				    "%s", path);
	}
	if (!json_is_object(res))
		return sp_eval_deny(e, sp_xstrdup("a runtime-spec linux.resources object"),
				    sp_policy_render(res), "%s", path);
	if (!only(e, res, keys, path))
		return false;
	json_t *dev = json_object_get(res, "devices");
	if (update ? dev != NULL : !dev || !json_equal(dev, (json_t *)devices))
		return sp_eval_deny(e, update ? sp_xstrdup("no change to the device cgroup rules")
					      : sp_policy_render(devices),
				    dev ? sp_policy_render(dev) : sp_xstrdup("(absent)"), "%s.devices", path);

	json_t *o;
	_cleanup_free_ char *sub = NULL;
	if ((o = json_object_get(res, "memory"))) {
		static const char *const mk[] = {"limit", "reservation", "swap", NULL};
		sub = sp_xasprintf("%s.memory", path);
		if (!json_is_object(o))
			return deny_v(e, "an object", o, path, "memory");
		if (!only(e, o, mk, sub) || !mem_value(c, e, o, "limit", true, sub) ||
		    !mem_value(c, e, o, "reservation", false, sub) || !mem_value(c, e, o, "swap", true, sub))
			return false;
		free(sub);
		sub = NULL;
	}
	if ((o = json_object_get(res, "cpu"))) {
		static const char *const ck[] = {"shares", "quota", "period", "cpus", "mems", NULL};
		sub = sp_xasprintf("%s.cpu", path);
		if (!json_is_object(o))
			return deny_v(e, "an object", o, path, "cpu");
		if (!only(e, o, ck, sub) || !int_in(e, o, "shares", 2, 262144, false, sub) ||
		    !int_in(e, o, "period", 1000, 1000000, false, sub))
			return false;
		json_t *q = json_object_get(o, "quota"), *per = json_object_get(o, "period");
		if (q && (!json_is_integer(q) ||
			  !cpu_quota_ok(c, json_integer_value(q), per ? json_integer_value(per) : 100000))) {
			_cleanup_free_ char *exp = sp_xasprintf(
				"a quota/period within the policy's cpu request..limit (%lld..%lld millicores)",
				(long long)(c->cpu_request > 0 ? c->cpu_request : 0), (long long)c->cpu_limit);
			return deny_v(e, c->cpu_limit >= 0 ? exp : "-1 or at least 1000", q, sub, "quota");
		}
		for (int i = 0; i < 2; i++) {
			const char *k = i ? "mems" : "cpus";
			json_t *v = json_object_get(o, k);
			if (v && (!json_is_string(v) || !cpuset_ok(json_string_value(v))))
				return deny_v(e, "a cpu list such as 0-3,5", v, sub, k);
		}
		free(sub);
		sub = NULL;
	}
	if ((o = json_object_get(res, "pids"))) {
		static const char *const pk[] = {"limit", NULL};
		sub = sp_xasprintf("%s.pids", path);
		if (!json_is_object(o))
			return deny_v(e, "an object", o, path, "pids");
		if (!only(e, o, pk, sub) || !int_in(e, o, "limit", 1, INT64_MAX, true, sub))
			return false;
		free(sub);
		sub = NULL;
	}
	if ((o = json_object_get(res, "blockIO"))) {
		static const char *const bk[] = {"weight", "leafWeight", NULL};
		sub = sp_xasprintf("%s.blockIO", path);
		if (!json_is_object(o))
			return deny_v(e, "an object", o, path, "blockIO");
		if (!only(e, o, bk, sub) || !int_in(e, o, "weight", 10, 1000, false, sub) ||
		    !int_in(e, o, "leafWeight", 10, 1000, false, sub))
			return false;
		free(sub);
		sub = NULL;
	}
	if ((o = json_object_get(res, "unified"))) {
		sub = sp_xasprintf("%s.unified", path);
		if (!json_is_object(o))
			return deny_v(e, "an object", o, path, "unified");
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v) {
			bool listed = false;
			size_t i;
			json_t *x;
			if (c->cgroup_keys)
				json_array_foreach(c->cgroup_keys, i, x) if (!strcmp(json_string_value(x), k)) listed = true;
			if (!listed || !in(known_unified, k)) {
				_cleanup_free_ char *exp = c->cgroup_keys && json_array_size(c->cgroup_keys)
								   ? sp_policy_render(c->cgroup_keys)
								   : sp_xstrdup("none");
				_cleanup_free_ char *m = sp_xasprintf("a key of the policy's cgroup_keys %s", exp);
				return deny_v(e, m, v, sub, k);
			}
			if (!json_is_string(v) || !unified_value(c, k, json_string_value(v)))
				return deny_v(e, "a value within the policy's requests and limits", v, sub, k);
		}
	}
	return true;
}
