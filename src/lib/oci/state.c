/* SPDX-License-Identifier: Apache-2.0 */
/* The state directory: <root>/<id>/state.json (what the runtime needs to
 * find the container again) and config.json (the spec, for hooks and
 * cgroups at delete time). */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "oci-internal.h"
#include "sealpod/file.h"

bool oci_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (!n || n > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == '+'))
			return false;
	}
	return true;
}

char *oci_now_rfc3339(void)
{
	struct timespec ts;
	struct tm tm;
	char b[64];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	return sp_xasprintf("%s.%09ldZ", b, ts.tv_nsec);
}

int oci_proc_start_time(pid_t pid, uint64_t *out)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* comm may hold spaces and parens: fields start after the last ')'. */
	char *s = strrchr(buf, ')');
	if (!s || s[1] != ' ')
		return -1;
	s += 2;
	if (s[0] == 'Z' || s[0] == 'X')
		return -2; /* a zombie: exited */
	for (int field = 3; field < 22; field++) {
		s = strchr(s, ' ');
		if (!s)
			return -1;
		s++;
	}
	*out = strtoull(s, NULL, 10);
	return 0;
}

char *oci_state_json(const sp_container *c, const char *status)
{
	json_t *o = json_object();
	json_object_set_new(o, "ociVersion", json_string("1.2.0"));
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "status", json_string(status));
	if (strcmp(status, "stopped") != 0 || c->pid > 0)
		json_object_set_new(o, "pid", json_integer(strcmp(status, "stopped") ? c->pid : 0));
	json_object_set_new(o, "bundle", json_string(c->bundle ? c->bundle : ""));
	json_object_set_new(o, "rootfs", json_string(c->rootfs ? c->rootfs : ""));
	json_object_set_new(o, "created", json_string(c->created ? c->created : ""));
	json_object_set_new(o, "owner", json_string(""));
	json_t *ann = c->spec ? json_object_get(c->spec->json, "annotations") : NULL;
	if (ann)
		json_object_set(o, "annotations", ann);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		sp_oom();
	return s;
}

int oci_state_save(const sp_container *c, sp_err **err)
{
	json_t *o = json_object(), *dirs = json_array();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "pid", json_integer(c->pid));
	json_object_set_new(o, "startTime", json_integer((json_int_t)c->start_time));
	json_object_set_new(o, "bundle", json_string(c->bundle ? c->bundle : ""));
	json_object_set_new(o, "rootfs", json_string(c->rootfs));
	json_object_set_new(o, "created", json_string(c->created));
	json_object_set_new(o, "ownPidns", json_boolean(c->own_pidns));
	json_object_set_new(o, "cgroupPath", json_string(c->cg.path ? c->cg.path : ""));
	for (size_t i = 0; i < c->cg.n; i++) {
		json_t *d = json_array();
		json_array_append_new(d, json_string(c->cg.dirs[i]));
		json_array_append_new(d, json_string(c->cg.ctrls[i]));
		json_array_append_new(dirs, d);
	}
	json_object_set_new(o, "cgroupDirs", dirs);
	json_t *made = json_array();
	for (size_t i = 0; i < c->cg.n_made; i++)
		json_array_append_new(made, json_string(c->cg.made[i]));
	json_object_set_new(o, "cgroupMade", made);
	_cleanup_free_ char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	_cleanup_free_ char *p = sp_xasprintf("%s/state.json", c->dir);
	return sp_write_file_atomic(p, s, strlen(s), 0600, err);
}

int oci_state_load(sp_container **out, const char *root, const char *id, sp_err **err)
{
	if (!oci_id_valid(id))
		return sp_error(err, SP_ERR_INVALID,
				"container id `%s`: use letters, digits, `-`, `_`, `.`, `+`", id);
	_cleanup_free_ char *dir = sp_xasprintf("%s/%s", root, id);
	_cleanup_free_ char *sp = sp_xasprintf("%s/state.json", dir);
	if (access(sp, F_OK) < 0)
		return sp_error(err, SP_ERR_NOT_FOUND, "container `%s` does not exist (in %s)", id,
				root);
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_load_file(&j, sp, 1 << 20, err) < 0)
		return (*err)->code;
	_cleanup_free_ char *cp = sp_xasprintf("%s/config.json", dir);
	_cleanup_free_ uint8_t *cfg = NULL;
	size_t cfg_len;
	if (sp_read_file(&cfg, &cfg_len, cp, 16 << 20, err) < 0)
		return (*err)->code;
	sp_container *c = sp_xzalloc(sizeof(*c));
	c->exit_status = -1;
	c->dir = sp_steal_ptr(&dir);
	const char *s;
	int64_t v = 0;
	bool own = false;
	json_t *dirs = NULL;
	if (sp_json_get_string(j, "id", true, &s, sp, err) < 0)
		goto fail;
	c->id = sp_xstrdup(s);
	if (sp_json_get_int(j, "pid", true, &v, sp, err) < 0)
		goto fail;
	c->pid = (pid_t)v;
	if (sp_json_get_int(j, "startTime", true, &v, sp, err) < 0)
		goto fail;
	c->start_time = (uint64_t)v;
	if (sp_json_get_string(j, "bundle", true, &s, sp, err) < 0)
		goto fail;
	c->bundle = sp_xstrdup(s);
	if (sp_json_get_string(j, "rootfs", true, &s, sp, err) < 0)
		goto fail;
	c->rootfs = sp_xstrdup(s);
	if (sp_json_get_string(j, "created", true, &s, sp, err) < 0)
		goto fail;
	c->created = sp_xstrdup(s);
	if (sp_json_get_bool(j, "ownPidns", false, &own, sp, err) < 0)
		goto fail;
	c->own_pidns = own;
	if (sp_json_get_string(j, "cgroupPath", false, &s, sp, err) < 0)
		goto fail;
	c->cg.path = sp_xstrdup(s ? s : "");
	c->cg.v2 = oci_cgroup_is_v2();
	if (sp_json_get_array(j, "cgroupDirs", true, &dirs, sp, err) < 0)
		goto fail;
	size_t i;
	json_t *e;
	c->cg.dirs = sp_xcalloc(json_array_size(dirs) + 1, sizeof(char *));
	c->cg.ctrls = sp_xcalloc(json_array_size(dirs) + 1, sizeof(char *));
	json_array_foreach(dirs, i, e) {
		const char *d = json_string_value(json_array_get(e, 0));
		const char *k = json_string_value(json_array_get(e, 1));
		if (!d || !k) {
			sp_error(err, SP_ERR_PARSE, "%s: cgroupDirs[%zu] is malformed", sp, i);
			goto fail;
		}
		c->cg.dirs[c->cg.n] = sp_xstrdup(d);
		c->cg.ctrls[c->cg.n++] = sp_xstrdup(k);
	}
	json_t *made = json_object_get(j, "cgroupMade");
	c->cg.made = sp_xcalloc(json_array_size(made) + 1, sizeof(char *));
	json_array_foreach(made, i, e) {
		const char *d = json_string_value(e);
		/* Only directories under the cgroup mount, never anything else. */
		if (d && !strncmp(d, "/sys/fs/cgroup/", 15) && !strstr(d, ".."))
			c->cg.made[c->cg.n_made++] = sp_xstrdup(d);
	}
	if (oci_spec_parse(&c->spec, cfg, cfg_len, err) < 0) {
		sp_error_wrap(err, "%s", cp);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	sp_container_free(c);
	return (*err)->code;
}

int sp_container_list(char ***out, const char *root, sp_err **err)
{
	size_t n = 0;
	char **v = sp_xcalloc(1, sizeof(char *));
	DIR *d = opendir(root);
	if (!d) {
		*out = v;
		if (errno == ENOENT)
			return 0;
		free(v);
		return sp_error_sys(err, errno, "--root %s", root);
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !oci_id_valid(e->d_name))
			continue;
		_cleanup_free_ char *p = sp_xasprintf("%s/%s/state.json", root, e->d_name);
		if (access(p, F_OK) < 0)
			continue;
		v = sp_xrealloc(v, (n + 2) * sizeof(char *));
		v[n++] = sp_xstrdup(e->d_name);
		v[n] = NULL;
	}
	closedir(d);
	*out = v;
	return 0;
}
