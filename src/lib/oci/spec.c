/* SPDX-License-Identifier: Apache-2.0 */
/* config.json into struct oci_spec. The host sends this document to the
 * agent, so it is hostile input: every field is type-checked, every error
 * names its JSON path, and nothing from it is trusted later without the
 * checks here (ids, paths, numbers in range). */
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>

#include "sealpod/log.h"

#include "oci-internal.h"

#define MAX_ITEMS 4096 /* per array: mounts, devices, rules, ... */

static int get_u32(const json_t *o, const char *key, bool req, uint32_t *out,
		   const char *path, sp_err **err)
{
	int64_t v = OCI_UNSET;
	if (sp_json_get_int(o, key, req, &v, path, err) < 0)
		return (*err)->code;
	if (v == OCI_UNSET)
		return 0;
	if (v < 0 || v > UINT32_MAX)
		return sp_error(err, SP_ERR_PARSE, "%s.%s: %lld is out of range",
				path, key, (long long)v);
	*out = (uint32_t)v;
	return 0;
}

/* An optional integer; OCI_UNSET when absent. */
static int get_i64(const json_t *o, const char *key, int64_t *out,
		   const char *path, sp_err **err)
{
	*out = OCI_UNSET;
	if (sp_json_get_int(o, key, false, out, path, err) < 0)
		return (*err)->code;
	return 0;
}

/* Unsigned 64-bit values (memory limits may exceed INT64_MAX only as -1
 * style "unlimited"; jansson holds them as json_int_t). */
static int get_u64(const json_t *o, const char *key, uint64_t *out,
		   bool *present, const char *path, sp_err **err)
{
	int64_t v;
	if (get_i64(o, key, &v, path, err) < 0)
		return (*err)->code;
	*present = v != OCI_UNSET;
	if (*present && v < 0)
		return sp_error(err, SP_ERR_PARSE, "%s.%s: must not be negative",
				path, key);
	*out = (uint64_t)v;
	return 0;
}

static int get_str(const json_t *o, const char *key, bool req, char **out,
		   const char *path, sp_err **err)
{
	const char *s = NULL;
	if (sp_json_get_string(o, key, req, &s, path, err) < 0)
		return (*err)->code;
	if (s)
		*out = sp_xstrdup(s);
	return 0;
}

static int check_array(const json_t *a, const char *path, sp_err **err)
{
	if (json_array_size(a) > MAX_ITEMS)
		return sp_error(err, SP_ERR_LIMIT, "%s: more than %d entries",
				path, MAX_ITEMS);
	return 0;
}

static const struct {
	const char *name;
	int type;
} ns_types[] = {
	{"pid", CLONE_NEWPID},	   {"network", CLONE_NEWNET},
	{"mount", CLONE_NEWNS},	   {"ipc", CLONE_NEWIPC},
	{"uts", CLONE_NEWUTS},	   {"user", CLONE_NEWUSER},
	{"cgroup", CLONE_NEWCGROUP}, {"time", 0x80 /* CLONE_NEWTIME */},
};

const char *oci_ns_name(int type)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(ns_types); i++)
		if (ns_types[i].type == type)
			return ns_types[i].name;
	return "?";
}

bool oci_spec_has_ns(const struct oci_spec *s, int type, const char **path)
{
	for (size_t i = 0; i < s->n_ns; i++)
		if (s->ns[i].type == type) {
			if (path)
				*path = s->ns[i].path;
			return true;
		}
	return false;
}

static int parse_namespaces(struct oci_spec *s, const json_t *arr,
			    sp_err **err)
{
	if (check_array(arr, "linux.namespaces", err) < 0)
		return (*err)->code;
	s->ns = sp_xcalloc(json_array_size(arr) + 1, sizeof(*s->ns));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "linux.namespaces[%zu]", i);
		const char *type;
		if (sp_json_get_string(e, "type", true, &type, p, err) < 0)
			return (*err)->code;
		int t = -1;
		for (size_t k = 0; k < SP_ARRAY_LEN(ns_types); k++)
			if (!strcmp(type, ns_types[k].name))
				t = ns_types[k].type;
		if (t < 0)
			return sp_error(err, SP_ERR_PARSE,
					"%s.type: unknown namespace type `%s`", p, type);
		if (oci_spec_has_ns(s, t, NULL))
			return sp_error(err, SP_ERR_PARSE,
					"%s.type: namespace `%s` listed twice", p, type);
		s->ns[s->n_ns].type = t;
		if (get_str(e, "path", false, &s->ns[s->n_ns].path, p, err) < 0)
			return (*err)->code;
		const char *np = s->ns[s->n_ns].path;
		s->n_ns++;
		if (np && np[0] != '/')
			return sp_error(err, SP_ERR_PARSE,
					"%s.path: `%s` is not an absolute path", p, np);
	}
	return 0;
}

static int parse_idmaps(struct oci_idmap **out, size_t *n, const json_t *arr,
			const char *path, sp_err **err)
{
	if (check_array(arr, path, err) < 0)
		return (*err)->code;
	if (json_array_size(arr) > 340) /* kernel limit on map lines */
		return sp_error(err, SP_ERR_LIMIT, "%s: more than 340 ranges", path);
	*out = sp_xcalloc(json_array_size(arr) + 1, sizeof(**out));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		struct oci_idmap *m = &(*out)[i];
		if (get_u32(e, "containerID", true, &m->container_id, p, err) < 0 ||
		    get_u32(e, "hostID", true, &m->host_id, p, err) < 0 ||
		    get_u32(e, "size", true, &m->size, p, err) < 0)
			return (*err)->code;
		if (m->size == 0)
			return sp_error(err, SP_ERR_PARSE, "%s.size: must not be 0", p);
		*n = i + 1;
	}
	return 0;
}

static int parse_strv_checked(char ***out, const json_t *o, const char *key,
			      const char *path, sp_err **err)
{
	json_t *a = NULL;
	if (sp_json_get_array(o, key, false, &a, path, err) < 0)
		return (*err)->code;
	if (a) {
		char p[128];
		snprintf(p, sizeof(p), "%s.%s", path, key);
		if (check_array(a, p, err) < 0)
			return (*err)->code;
	}
	return sp_json_get_strv(o, key, false, out, path, err);
}

int oci_process_parse(struct oci_process *p, const json_t *j, const char *path,
		      sp_err **err)
{
	char sub[128];
	memset(p, 0, sizeof(*p));
	p->umask = OCI_UNSET;
	p->oom_score_adj = OCI_UNSET;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object", path);
	if (sp_json_get_bool(j, "terminal", false, &p->terminal, path, err) < 0)
		return (*err)->code;
	json_t *o = NULL;
	if (sp_json_get_object(j, "consoleSize", false, &o, path, err) < 0)
		return (*err)->code;
	if (o) {
		snprintf(sub, sizeof(sub), "%s.consoleSize", path);
		if (get_u32(o, "height", true, &p->console_h, sub, err) < 0 ||
		    get_u32(o, "width", true, &p->console_w, sub, err) < 0)
			return (*err)->code;
	}
	o = NULL;
	if (sp_json_get_object(j, "user", false, &o, path, err) < 0)
		return (*err)->code;
	if (o) {
		snprintf(sub, sizeof(sub), "%s.user", path);
		if (get_u32(o, "uid", false, &p->uid, sub, err) < 0 ||
		    get_u32(o, "gid", false, &p->gid, sub, err) < 0 ||
		    get_i64(o, "umask", &p->umask, sub, err) < 0)
			return (*err)->code;
		if (p->umask != OCI_UNSET && (p->umask < 0 || p->umask > 0777))
			return sp_error(err, SP_ERR_PARSE, "%s.umask: %lld is not a mode",
					sub, (long long)p->umask);
		json_t *g = NULL;
		if (sp_json_get_array(o, "additionalGids", false, &g, sub, err) < 0)
			return (*err)->code;
		if (g) {
			if (json_array_size(g) > 65536)
				return sp_error(err, SP_ERR_LIMIT,
						"%s.additionalGids: too many", sub);
			p->gids = sp_xcalloc(json_array_size(g) + 1, sizeof(uint32_t));
			size_t i;
			json_t *e;
			json_array_foreach(g, i, e) {
				if (!json_is_integer(e) || json_integer_value(e) < 0 ||
				    json_integer_value(e) > UINT32_MAX)
					return sp_error(err, SP_ERR_PARSE,
							"%s.additionalGids[%zu]: expected a gid",
							sub, i);
				p->gids[p->n_gids++] = (uint32_t)json_integer_value(e);
			}
		}
	}
	if (parse_strv_checked(&p->args, j, "args", path, err) < 0 ||
	    parse_strv_checked(&p->env, j, "env", path, err) < 0 ||
	    get_str(j, "cwd", false, &p->cwd, path, err) < 0 ||
	    get_str(j, "apparmorProfile", false, &p->apparmor, path, err) < 0 ||
	    get_str(j, "selinuxLabel", false, &p->selinux, path, err) < 0 ||
	    sp_json_get_bool(j, "noNewPrivileges", false, &p->nnp, path, err) < 0 ||
	    get_i64(j, "oomScoreAdj", &p->oom_score_adj, path, err) < 0)
		return (*err)->code;
	if (!p->args || !p->args[0])
		return sp_error(err, SP_ERR_PARSE,
				"%s.args: missing or empty; name the program to run", path);
	if (!p->cwd)
		p->cwd = sp_xstrdup("/");
	if (p->cwd[0] != '/')
		return sp_error(err, SP_ERR_PARSE,
				"%s.cwd: `%s` is not an absolute path", path, p->cwd);
	if (p->oom_score_adj != OCI_UNSET &&
	    (p->oom_score_adj < -1000 || p->oom_score_adj > 1000))
		return sp_error(err, SP_ERR_PARSE,
				"%s.oomScoreAdj: %lld is outside -1000..1000", path,
				(long long)p->oom_score_adj);
	for (char **e = p->env; e && *e; e++)
		if (!strchr(*e, '='))
			return sp_error(err, SP_ERR_PARSE,
					"%s.env: `%s` is not NAME=VALUE", path, *e);

	o = NULL;
	if (sp_json_get_object(j, "capabilities", false, &o, path, err) < 0)
		return (*err)->code;
	if (o) {
		static const char *sets[] = {"bounding", "effective", "inheritable",
					     "permitted", "ambient"};
		uint64_t *dst[] = {&p->caps.bounding, &p->caps.effective,
				   &p->caps.inheritable, &p->caps.permitted,
				   &p->caps.ambient};
		for (size_t i = 0; i < SP_ARRAY_LEN(sets); i++) {
			json_t *a = NULL;
			snprintf(sub, sizeof(sub), "%s.capabilities", path);
			if (sp_json_get_array(o, sets[i], false, &a, sub, err) < 0)
				return (*err)->code;
			snprintf(sub, sizeof(sub), "%s.capabilities.%s", path, sets[i]);
			if (a && oci_caps_parse(dst[i], a, sub, err) < 0)
				return (*err)->code;
		}
	}

	json_t *rl = NULL;
	if (sp_json_get_array(j, "rlimits", false, &rl, path, err) < 0)
		return (*err)->code;
	if (rl) {
		if (json_array_size(rl) > 64)
			return sp_error(err, SP_ERR_LIMIT, "%s.rlimits: too many", path);
		p->rlimits = sp_xcalloc(json_array_size(rl) + 1, sizeof(*p->rlimits));
		size_t i;
		json_t *e;
		json_array_foreach(rl, i, e) {
			snprintf(sub, sizeof(sub), "%s.rlimits[%zu]", path, i);
			const char *type;
			bool pr;
			struct oci_rlimit *r = &p->rlimits[i];
			if (sp_json_get_string(e, "type", true, &type, sub, err) < 0 ||
			    get_u64(e, "soft", &r->soft, &pr, sub, err) < 0 ||
			    get_u64(e, "hard", &r->hard, &pr, sub, err) < 0)
				return (*err)->code;
			r->resource = oci_rlimit_from_name(type);
			if (r->resource < 0)
				return sp_error(err, SP_ERR_PARSE,
						"%s.type: unknown rlimit `%s`", sub, type);
			for (size_t k = 0; k < i; k++)
				if (p->rlimits[k].resource == r->resource)
					return sp_error(err, SP_ERR_PARSE,
							"%s.type: `%s` set twice", sub, type);
			p->n_rlimits = i + 1;
		}
	}
	return 0;
}

void oci_process_clear(struct oci_process *p)
{
	free(p->gids);
	sp_strv_freep(&p->env);
	sp_strv_freep(&p->args);
	free(p->cwd);
	free(p->rlimits);
	free(p->apparmor);
	free(p->selinux);
	memset(p, 0, sizeof(*p));
}

static int parse_mounts(struct oci_spec *s, const json_t *arr, sp_err **err)
{
	if (check_array(arr, "mounts", err) < 0)
		return (*err)->code;
	s->mounts = sp_xcalloc(json_array_size(arr) + 1, sizeof(*s->mounts));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "mounts[%zu]", i);
		struct oci_mount *m = &s->mounts[i];
		s->n_mounts = i + 1;
		if (get_str(e, "destination", true, &m->dest, p, err) < 0 ||
		    get_str(e, "type", false, &m->type, p, err) < 0 ||
		    get_str(e, "source", false, &m->source, p, err) < 0)
			return (*err)->code;
		if (m->dest[0] != '/')
			return sp_error(err, SP_ERR_PARSE,
					"%s.destination: `%s` is not an absolute path",
					p, m->dest);
		json_t *opts = NULL;
		if (sp_json_get_array(e, "options", false, &opts, p, err) < 0)
			return (*err)->code;
		if (oci_mount_options_parse(m, opts, p, err) < 0)
			return (*err)->code;
		if (m->type && !strcmp(m->type, "bind"))
			m->bind = true;
		if (!m->type && !m->bind)
			return sp_error(err, SP_ERR_PARSE,
					"%s.type: missing (and not a bind mount)", p);
		if (!m->source && m->bind)
			return sp_error(err, SP_ERR_PARSE,
					"%s.source: a bind mount needs a source", p);
		if (json_object_get(e, "uidMappings") || json_object_get(e, "gidMappings"))
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"%s: idmapped mounts are not supported", p);
	}
	return 0;
}

static int parse_devices(struct oci_spec *s, const json_t *arr, sp_err **err)
{
	if (check_array(arr, "linux.devices", err) < 0)
		return (*err)->code;
	s->devices = sp_xcalloc(json_array_size(arr) + 1, sizeof(*s->devices));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "linux.devices[%zu]", i);
		struct oci_device *d = &s->devices[i];
		s->n_devices = i + 1;
		const char *type;
		if (get_str(e, "path", true, &d->path, p, err) < 0 ||
		    sp_json_get_string(e, "type", true, &type, p, err) < 0 ||
		    get_i64(e, "major", &d->major, p, err) < 0 ||
		    get_i64(e, "minor", &d->minor, p, err) < 0 ||
		    get_i64(e, "fileMode", &d->mode, p, err) < 0 ||
		    get_i64(e, "uid", &d->uid, p, err) < 0 ||
		    get_i64(e, "gid", &d->gid, p, err) < 0)
			return (*err)->code;
		if (strlen(type) != 1 || !strchr("cbup", type[0]))
			return sp_error(err, SP_ERR_PARSE,
					"%s.type: `%s` is not one of c, b, u, p", p, type);
		d->type = type[0];
		if (d->path[0] != '/' || strstr(d->path, ".."))
			return sp_error(err, SP_ERR_PARSE,
					"%s.path: `%s` must be absolute without `..`", p,
					d->path);
		if (d->type != 'p' && (d->major == OCI_UNSET || d->minor == OCI_UNSET))
			return sp_error(err, SP_ERR_PARSE,
					"%s: major and minor are required for type %c", p,
					d->type);
		if ((d->major != OCI_UNSET && (d->major < 0 || d->major > 0xfff)) ||
		    (d->minor != OCI_UNSET && (d->minor < 0 || d->minor > 0xfffff)))
			return sp_error(err, SP_ERR_PARSE,
					"%s: major/minor out of range", p);
		if (d->mode != OCI_UNSET && (d->mode < 0 || d->mode > 07777))
			return sp_error(err, SP_ERR_PARSE, "%s.fileMode: not a mode", p);
	}
	return 0;
}

static int parse_dev_rules(struct oci_resources *r, const json_t *arr,
			   sp_err **err)
{
	const char *path = "linux.resources.devices";
	if (check_array(arr, path, err) < 0)
		return (*err)->code;
	r->dev_rules = sp_xcalloc(json_array_size(arr) + 1, sizeof(*r->dev_rules));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[64];
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		struct oci_dev_rule *d = &r->dev_rules[i];
		const char *type = "a", *access = "rwm";
		if (sp_json_get_bool(e, "allow", true, &d->allow, p, err) < 0 ||
		    sp_json_get_string(e, "type", false, &type, p, err) < 0 ||
		    sp_json_get_string(e, "access", false, &access, p, err) < 0 ||
		    get_i64(e, "major", &d->major, p, err) < 0 ||
		    get_i64(e, "minor", &d->minor, p, err) < 0)
			return (*err)->code;
		if (strlen(type) != 1 || !strchr("acb", type[0]))
			return sp_error(err, SP_ERR_PARSE,
					"%s.type: `%s` is not one of a, c, b", p, type);
		d->type = type[0];
		if (d->major == OCI_UNSET)
			d->major = -1;
		if (d->minor == OCI_UNSET)
			d->minor = -1;
		if (d->major < -1 || d->minor < -1 || d->major > 0xfff || d->minor > 0xfffff)
			return sp_error(err, SP_ERR_PARSE, "%s: major/minor out of range", p);
		if (strlen(access) > 3 || strspn(access, "rwm") != strlen(access))
			return sp_error(err, SP_ERR_PARSE,
					"%s.access: `%s` is not a subset of rwm", p, access);
		snprintf(d->access, sizeof(d->access), "%s", access);
		r->n_dev_rules = i + 1;
	}
	return 0;
}

static int parse_rate_devs(struct oci_rate_dev **out, size_t *n,
			   const json_t *arr, const char *path, sp_err **err)
{
	if (check_array(arr, path, err) < 0)
		return (*err)->code;
	*out = sp_xcalloc(json_array_size(arr) + 1, sizeof(**out));
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e) {
		char p[256];
		bool pr;
		snprintf(p, sizeof(p), "%s[%zu]", path, i);
		struct oci_rate_dev *d = &(*out)[i];
		if (get_i64(e, "major", &d->major, p, err) < 0 ||
		    get_i64(e, "minor", &d->minor, p, err) < 0 ||
		    get_u64(e, "rate", &d->rate, &pr, p, err) < 0)
			return (*err)->code;
		if (d->major < 0 || d->minor < 0 || !pr)
			return sp_error(err, SP_ERR_PARSE,
					"%s: major, minor and rate are required", p);
		*n = i + 1;
	}
	return 0;
}

static int parse_resources(struct oci_resources *r, const json_t *j,
			   sp_err **err)
{
	const char *P = "linux.resources";
	char p[160];
	json_t *o = NULL, *a = NULL;
	r->any = true;
	if (sp_json_get_array(j, "devices", false, &a, P, err) < 0)
		return (*err)->code;
	if (a && parse_dev_rules(r, a, err) < 0)
		return (*err)->code;
	r->has_devices = a != NULL;

	if (sp_json_get_object(j, "memory", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		snprintf(p, sizeof(p), "%s.memory", P);
		if (get_i64(o, "limit", &r->mem_limit, p, err) < 0 ||
		    get_i64(o, "reservation", &r->mem_reservation, p, err) < 0 ||
		    get_i64(o, "swap", &r->mem_swap, p, err) < 0 ||
		    get_i64(o, "kernel", &r->mem_kernel, p, err) < 0 ||
		    get_i64(o, "kernelTCP", &r->mem_kernel_tcp, p, err) < 0 ||
		    get_i64(o, "swappiness", &r->mem_swappiness, p, err) < 0 ||
		    sp_json_get_bool(o, "disableOOMKiller", false,
				     &r->mem_disable_oom_killer, p, err) < 0)
			return (*err)->code;
		if (r->mem_swappiness != OCI_UNSET &&
		    (r->mem_swappiness < 0 || r->mem_swappiness > 100))
			return sp_error(err, SP_ERR_PARSE,
					"%s.swappiness: %lld is outside 0..100", p,
					(long long)r->mem_swappiness);
		if (r->mem_limit != OCI_UNSET && r->mem_swap != OCI_UNSET &&
		    r->mem_limit > 0 && r->mem_swap > 0 && r->mem_swap < r->mem_limit)
			return sp_error(err, SP_ERR_PARSE,
					"%s.swap: must be at least memory.limit (swap counts memory+swap)",
					p);
	}
	o = NULL;
	if (sp_json_get_object(j, "cpu", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		snprintf(p, sizeof(p), "%s.cpu", P);
		if (get_i64(o, "shares", &r->cpu_shares, p, err) < 0 ||
		    get_i64(o, "quota", &r->cpu_quota, p, err) < 0 ||
		    get_i64(o, "period", &r->cpu_period, p, err) < 0 ||
		    get_i64(o, "realtimeRuntime", &r->cpu_rt_runtime, p, err) < 0 ||
		    get_i64(o, "realtimePeriod", &r->cpu_rt_period, p, err) < 0 ||
		    get_i64(o, "idle", &r->cpu_idle, p, err) < 0 ||
		    get_str(o, "cpus", false, &r->cpus, p, err) < 0 ||
		    get_str(o, "mems", false, &r->mems, p, err) < 0)
			return (*err)->code;
		if (r->cpu_shares != OCI_UNSET && (r->cpu_shares < 2 || r->cpu_shares > 262144))
			return sp_error(err, SP_ERR_PARSE,
					"%s.shares: %lld is outside 2..262144", p,
					(long long)r->cpu_shares);
		if (r->cpu_period != OCI_UNSET && (r->cpu_period < 1000 || r->cpu_period > 1000000))
			return sp_error(err, SP_ERR_PARSE,
					"%s.period: %lld is outside 1000..1000000 us", p,
					(long long)r->cpu_period);
		for (const char *s = r->cpus; s && *s; s++)
			if (!strchr("0123456789,-", *s))
				return sp_error(err, SP_ERR_PARSE, "%s.cpus: `%s` is not a cpu list", p, r->cpus);
		for (const char *s = r->mems; s && *s; s++)
			if (!strchr("0123456789,-", *s))
				return sp_error(err, SP_ERR_PARSE, "%s.mems: `%s` is not a node list", p, r->mems);
	}
	o = NULL;
	if (sp_json_get_object(j, "pids", false, &o, P, err) < 0)
		return (*err)->code;
	if (o && get_i64(o, "limit", &r->pids_limit, "linux.resources.pids", err) < 0)
		return (*err)->code;
	o = NULL;
	if (sp_json_get_object(j, "blockIO", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		snprintf(p, sizeof(p), "%s.blockIO", P);
		if (get_i64(o, "weight", &r->blkio_weight, p, err) < 0 ||
		    get_i64(o, "leafWeight", &r->blkio_leaf_weight, p, err) < 0)
			return (*err)->code;
		if (r->blkio_weight != OCI_UNSET && (r->blkio_weight < 10 || r->blkio_weight > 1000))
			return sp_error(err, SP_ERR_PARSE, "%s.weight: outside 10..1000", p);
		a = NULL;
		if (sp_json_get_array(o, "weightDevice", false, &a, p, err) < 0)
			return (*err)->code;
		if (a) {
			if (check_array(a, "linux.resources.blockIO.weightDevice", err) < 0)
				return (*err)->code;
			r->weight_devs = sp_xcalloc(json_array_size(a) + 1, sizeof(*r->weight_devs));
			size_t i;
			json_t *e;
			json_array_foreach(a, i, e) {
				char q[224];
				snprintf(q, sizeof(q), "%s.weightDevice[%zu]", p, i);
				struct oci_weight_dev *d = &r->weight_devs[i];
				if (get_i64(e, "major", &d->major, q, err) < 0 ||
				    get_i64(e, "minor", &d->minor, q, err) < 0 ||
				    get_i64(e, "weight", &d->weight, q, err) < 0 ||
				    get_i64(e, "leafWeight", &d->leaf_weight, q, err) < 0)
					return (*err)->code;
				if (d->major < 0 || d->minor < 0)
					return sp_error(err, SP_ERR_PARSE, "%s: major and minor are required", q);
				r->n_weight_devs = i + 1;
			}
		}
		static const char *keys[] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
					     "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
		for (int k = 0; k < 4; k++) {
			a = NULL;
			if (sp_json_get_array(o, keys[k], false, &a, p, err) < 0)
				return (*err)->code;
			char q[224];
			snprintf(q, sizeof(q), "%s.%s", p, keys[k]);
			if (a && parse_rate_devs(&r->throttle[k], &r->n_throttle[k], a, q, err) < 0)
				return (*err)->code;
		}
	}
	a = NULL;
	if (sp_json_get_array(j, "hugepageLimits", false, &a, P, err) < 0)
		return (*err)->code;
	if (a) {
		if (check_array(a, "linux.resources.hugepageLimits", err) < 0)
			return (*err)->code;
		r->hugepages = sp_xcalloc(json_array_size(a) + 1, sizeof(*r->hugepages));
		size_t i;
		json_t *e;
		json_array_foreach(a, i, e) {
			snprintf(p, sizeof(p), "%s.hugepageLimits[%zu]", P, i);
			bool pr;
			struct oci_hugepage *h = &r->hugepages[i];
			r->n_hugepages = i + 1;
			if (get_str(e, "pageSize", true, &h->size, p, err) < 0 ||
			    get_u64(e, "limit", &h->limit, &pr, p, err) < 0)
				return (*err)->code;
			if (strspn(h->size, "0123456789KMGB") != strlen(h->size) || !h->size[0])
				return sp_error(err, SP_ERR_PARSE, "%s.pageSize: `%s` is not a size like 2MB",
						p, h->size);
		}
	}
	o = NULL;
	if (sp_json_get_object(j, "network", false, &o, P, err) < 0)
		return (*err)->code;
	if (o && get_i64(o, "classID", &r->net_classid, "linux.resources.network", err) < 0)
		return (*err)->code;
	if (sp_json_get_object(j, "unified", false, &r->unified, P, err) < 0)
		return (*err)->code;
	if (r->unified) {
		const char *k;
		json_t *v;
		json_object_foreach(r->unified, k, v) {
			if (!json_is_string(v))
				return sp_error(err, SP_ERR_PARSE,
						"linux.resources.unified.%s: expected a string", k);
			if (!k[0] || strchr(k, '/') || k[0] == '.')
				return sp_error(err, SP_ERR_PARSE,
						"linux.resources.unified: `%s` is not a cgroup file name", k);
		}
	}
	if (json_object_get(j, "rdma"))
		sp_log_debug("linux.resources.rdma: ignored");
	return 0;
}

static void resources_init(struct oci_resources *r)
{
	memset(r, 0, sizeof(*r));
	r->mem_limit = r->mem_reservation = r->mem_swap = r->mem_kernel =
		r->mem_kernel_tcp = r->mem_swappiness = OCI_UNSET;
	r->cpu_shares = r->cpu_quota = r->cpu_period = r->cpu_rt_runtime =
		r->cpu_rt_period = r->cpu_idle = OCI_UNSET;
	r->pids_limit = r->blkio_weight = r->blkio_leaf_weight = OCI_UNSET;
	r->net_classid = OCI_UNSET;
}

static int parse_linux(struct oci_spec *s, const json_t *l, sp_err **err)
{
	const char *P = "linux";
	json_t *a = NULL, *o = NULL;
	if (sp_json_get_array(l, "namespaces", false, &a, P, err) < 0)
		return (*err)->code;
	if (a && parse_namespaces(s, a, err) < 0)
		return (*err)->code;
	a = NULL;
	if (sp_json_get_array(l, "uidMappings", false, &a, P, err) < 0)
		return (*err)->code;
	if (a && parse_idmaps(&s->uid_map, &s->n_uid_map, a, "linux.uidMappings", err) < 0)
		return (*err)->code;
	a = NULL;
	if (sp_json_get_array(l, "gidMappings", false, &a, P, err) < 0)
		return (*err)->code;
	if (a && parse_idmaps(&s->gid_map, &s->n_gid_map, a, "linux.gidMappings", err) < 0)
		return (*err)->code;
	a = NULL;
	if (sp_json_get_array(l, "devices", false, &a, P, err) < 0)
		return (*err)->code;
	if (a && parse_devices(s, a, err) < 0)
		return (*err)->code;
	if (get_str(l, "cgroupsPath", false, &s->cgroups_path, P, err) < 0)
		return (*err)->code;
	if (s->cgroups_path) {
		/* "slice:prefix:name" is systemd's form; refused below. */
		if (strstr(s->cgroups_path, "..") || strchr(s->cgroups_path, ':'))
			return sp_error(err, SP_ERR_PARSE,
					"linux.cgroupsPath: `%s` must be a path without `..` (systemd slice:prefix:name is not supported)",
					s->cgroups_path);
	}
	if (sp_json_get_object(l, "resources", false, &o, P, err) < 0)
		return (*err)->code;
	if (o && parse_resources(&s->res, o, err) < 0)
		return (*err)->code;
	o = NULL;
	if (sp_json_get_object(l, "sysctl", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		if (json_object_size(o) > MAX_ITEMS)
			return sp_error(err, SP_ERR_LIMIT, "linux.sysctl: too many");
		s->sysctls = sp_xcalloc(json_object_size(o) + 1, sizeof(*s->sysctls));
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v) {
			if (!json_is_string(v))
				return sp_error(err, SP_ERR_PARSE,
						"linux.sysctl.%s: expected a string", k);
			if (!k[0] || strstr(k, "..") || k[0] == '/' || k[0] == '.')
				return sp_error(err, SP_ERR_PARSE,
						"linux.sysctl: `%s` is not a sysctl name", k);
			s->sysctls[s->n_sysctls].key = sp_xstrdup(k);
			s->sysctls[s->n_sysctls++].value = sp_xstrdup(json_string_value(v));
		}
	}
	if (parse_strv_checked(&s->masked, l, "maskedPaths", P, err) < 0 ||
	    parse_strv_checked(&s->readonly, l, "readonlyPaths", P, err) < 0 ||
	    get_str(l, "mountLabel", false, &s->mount_label, P, err) < 0)
		return (*err)->code;
	const char *prop = NULL;
	if (sp_json_get_string(l, "rootfsPropagation", false, &prop, P, err) < 0)
		return (*err)->code;
	if (prop && prop[0]) {
		static const struct {
			const char *n;
			unsigned long f;
		} props[] = {
			{"private", MS_PRIVATE},	  {"rprivate", MS_PRIVATE | MS_REC},
			{"shared", MS_SHARED},		  {"rshared", MS_SHARED | MS_REC},
			{"slave", MS_SLAVE},		  {"rslave", MS_SLAVE | MS_REC},
			{"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
		};
		for (size_t i = 0; i < SP_ARRAY_LEN(props); i++)
			if (!strcmp(prop, props[i].n))
				s->rootfs_propagation = props[i].f;
		if (!s->rootfs_propagation)
			return sp_error(err, SP_ERR_PARSE,
					"linux.rootfsPropagation: unknown value `%s`", prop);
	}
	if (sp_json_get_object(l, "seccomp", false, &s->seccomp, P, err) < 0)
		return (*err)->code;
	if (s->seccomp && oci_seccomp_validate(s->seccomp, err) < 0)
		return (*err)->code;
	o = NULL;
	if (sp_json_get_object(l, "timeOffsets", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		static const char *clocks[] = {"monotonic", "boottime"};
		s->has_time_offsets = true;
		for (int i = 0; i < 2; i++) {
			json_t *c = NULL;
			if (sp_json_get_object(o, clocks[i], false, &c, "linux.timeOffsets", err) < 0)
				return (*err)->code;
			if (!c)
				continue;
			char p[64];
			snprintf(p, sizeof(p), "linux.timeOffsets.%s", clocks[i]);
			int64_t secs = 0;
			uint32_t ns = 0;
			if (sp_json_get_int(c, "secs", false, &secs, p, err) < 0 ||
			    get_u32(c, "nanosecs", false, &ns, p, err) < 0)
				return (*err)->code;
			s->time_offsets[i][0] = secs;
			s->time_offsets[i][1] = ns;
		}
	}
	o = NULL;
	if (sp_json_get_object(l, "personality", false, &o, P, err) < 0)
		return (*err)->code;
	if (o) {
		const char *dom;
		if (sp_json_get_string(o, "domain", true, &dom, "linux.personality", err) < 0)
			return (*err)->code;
		s->has_personality = true;
		if (!strcmp(dom, "LINUX"))
			s->personality = PER_LINUX;
		else if (!strcmp(dom, "LINUX32"))
			s->personality = PER_LINUX32;
		else
			return sp_error(err, SP_ERR_PARSE,
					"linux.personality.domain: unknown `%s`", dom);
	}
	if (json_object_get(l, "intelRdt"))
		return sp_error(err, SP_ERR_UNSUPPORTED, "linux.intelRdt: not supported");
	return 0;
}

int oci_spec_parse(struct oci_spec **out, const void *data, size_t len,
		   sp_err **err)
{
	if (len > 16 << 20)
		return sp_error(err, SP_ERR_LIMIT, "config.json: larger than 16 MiB");
	struct oci_spec *s = sp_xzalloc(sizeof(*s));
	resources_init(&s->res);
	if (sp_json_parse(&s->json, data, len, "config.json", err) < 0)
		goto fail;
	json_t *j = s->json, *o = NULL;
	const char *P = "config.json";
	if (!json_is_object(j)) {
		sp_error(err, SP_ERR_PARSE, "config.json: expected an object");
		goto fail;
	}
	if (get_str(j, "ociVersion", true, &s->version, P, err) < 0)
		goto fail;
	if (strncmp(s->version, "1.", 2) != 0) {
		sp_error(err, SP_ERR_UNSUPPORTED,
			 "ociVersion: `%s` is not supported (1.0 to 1.2 are)", s->version);
		goto fail;
	}
	if (sp_json_get_object(j, "root", false, &o, P, err) < 0)
		goto fail;
	if (o && (get_str(o, "path", true, &s->root_path, "root", err) < 0 ||
		  sp_json_get_bool(o, "readonly", false, &s->root_readonly, "root", err) < 0))
		goto fail;
	if (get_str(j, "hostname", false, &s->hostname, P, err) < 0 ||
	    get_str(j, "domainname", false, &s->domainname, P, err) < 0)
		goto fail;
	if ((s->hostname && strlen(s->hostname) > 64) ||
	    (s->domainname && strlen(s->domainname) > 64)) {
		sp_error(err, SP_ERR_PARSE, "hostname/domainname: longer than 64 bytes");
		goto fail;
	}
	o = NULL;
	if (sp_json_get_object(j, "process", false, &o, P, err) < 0)
		goto fail;
	if (o) {
		s->has_process = true;
		if (oci_process_parse(&s->process, o, "process", err) < 0)
			goto fail;
	}
	json_t *a = NULL;
	if (sp_json_get_array(j, "mounts", false, &a, P, err) < 0)
		goto fail;
	if (a && parse_mounts(s, a, err) < 0)
		goto fail;
	o = NULL;
	if (sp_json_get_object(j, "hooks", false, &o, P, err) < 0)
		goto fail;
	if (o && oci_hooks_parse(&s->hooks, o, err) < 0)
		goto fail;
	o = NULL;
	if (sp_json_get_object(j, "annotations", false, &o, P, err) < 0)
		goto fail;
	if (o) {
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v) if (!json_is_string(v))
		{
			sp_error(err, SP_ERR_PARSE, "annotations.%s: expected a string", k);
			goto fail;
		}
	}
	o = NULL;
	if (sp_json_get_object(j, "linux", false, &o, P, err) < 0)
		goto fail;
	if (o && parse_linux(s, o, err) < 0)
		goto fail;
	if ((s->n_uid_map || s->n_gid_map) && !oci_spec_has_ns(s, CLONE_NEWUSER, NULL)) {
		sp_error(err, SP_ERR_PARSE,
			 "linux.uidMappings: mappings need a user namespace in linux.namespaces");
		goto fail;
	}
	const char *upath = NULL;
	if (oci_spec_has_ns(s, CLONE_NEWUSER, &upath) && !upath &&
	    (!s->n_uid_map || !s->n_gid_map)) {
		sp_error(err, SP_ERR_PARSE,
			 "linux.uidMappings: a new user namespace needs uidMappings and gidMappings");
		goto fail;
	}
	if ((s->hostname || s->domainname) && !oci_spec_has_ns(s, CLONE_NEWUTS, NULL)) {
		sp_error(err, SP_ERR_PARSE,
			 "hostname: setting it needs a uts namespace in linux.namespaces");
		goto fail;
	}
	const char *tpath = NULL;
	if (s->has_time_offsets &&
	    (!oci_spec_has_ns(s, 0x80, &tpath) || tpath)) {
		sp_error(err, SP_ERR_PARSE,
			 "linux.timeOffsets: needs a new time namespace in linux.namespaces");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	oci_spec_free(s);
	return (*err)->code;
}

void oci_spec_free(struct oci_spec *s)
{
	if (!s)
		return;
	free(s->version);
	free(s->root_path);
	free(s->hostname);
	free(s->domainname);
	oci_process_clear(&s->process);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].dest);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		free(s->mounts[i].data);
	}
	free(s->mounts);
	oci_hooks_clear(&s->hooks);
	for (size_t i = 0; i < s->n_ns; i++)
		free(s->ns[i].path);
	free(s->ns);
	free(s->uid_map);
	free(s->gid_map);
	for (size_t i = 0; i < s->n_devices; i++)
		free(s->devices[i].path);
	free(s->devices);
	struct oci_resources *r = &s->res;
	free(r->cpus);
	free(r->mems);
	free(r->weight_devs);
	for (int k = 0; k < 4; k++)
		free(r->throttle[k]);
	for (size_t i = 0; i < r->n_hugepages; i++)
		free(r->hugepages[i].size);
	free(r->hugepages);
	free(r->dev_rules);
	free(s->cgroups_path);
	for (size_t i = 0; i < s->n_sysctls; i++) {
		free(s->sysctls[i].key);
		free(s->sysctls[i].value);
	}
	free(s->sysctls);
	sp_strv_freep(&s->masked);
	sp_strv_freep(&s->readonly);
	free(s->mount_label);
	if (s->json)
		json_decref(s->json);
	free(s);
}

int sp_oci_spec_check(const void *data, size_t len, sp_err **err)
{
	struct oci_spec *s;
	if (oci_spec_parse(&s, data, len, err) < 0)
		return (*err)->code;
	oci_spec_free(s);
	return 0;
}
