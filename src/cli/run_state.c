/* SPDX-License-Identifier: Apache-2.0 */
/* The state directory of a running pod, <pods>/<name>/: lock (flock'ed by
 * the supervisor for its whole life: that is how `ps` tells a live pod
 * from a stale entry), status.json, logs/<container>.log, ctl.sock and
 * supervisor.log. Everything is root's and 0600/0700. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"

char *run_pods_dir(void)
{
	const char *env = getenv("SEALPOD_PODS_DIR");
	return sp_xstrdup(env && *env ? env : "/run/sealpod/pods");
}

bool run_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63 || name[0] == '-' || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

int run_state_alive(const char *dir)
{
	_cleanup_free_ char *lock = sp_xasprintf("%s/lock", dir);
	_cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? 1 : 0;
	return 0; /* closing the fd drops the lock we just took */
}

/* A sandbox directory a status.json may name: absolute, canonical, and
 * ending in <name>-<8 hex> as run_sandbox_id makes it, so a forged or
 * corrupt status.json cannot make ps remove anything else. */
static bool sandbox_dir_ok(const char *p, const char *name)
{
	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
		return false;
	const char *base = strrchr(p, '/') + 1;
	size_t n = strlen(name);
	if (strncmp(base, name, n) || base[n] != '-' || strlen(base + n + 1) != 8)
		return false;
	for (const char *c = base + n + 1; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

static int state_write(struct run_state *st, const struct run_live *pod, sp_err **err);

int run_state_remove_stale(const char *dir, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/status.json", dir);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (sp_read_file(&data, &len, path, 1 << 20, NULL) == 0) {
		_cleanup_json_ json_t *j = NULL;
		const char *sb = NULL;
		if (sp_json_parse(&j, data, len, path, NULL) == 0)
			sb = json_string_value(json_object_get(j, "sandbox_dir"));
		if (sb && sandbox_dir_ok(sb, name) && access(sb, F_OK) == 0) {
			_cleanup_err_ sp_err *e = NULL;
			if (sp_rm_rf(sb, &e) < 0)
				sp_log_warn("pod %s: %s", name, sp_err_msg(e));
		}
	}
	return sp_rm_rf(dir, err);
}

int run_state_claim(struct run_state *st, const char *name, const char *file, sp_err **err)
{
	memset(st, 0, sizeof(*st));
	st->lockfd = -1;
	if (!run_name_valid(name))
		return sp_error(err, SP_ERR_INVALID,
				"pod name `%s` is not usable: 1-63 letters, digits, '-', '_' or '.'; "
				"pick another with --name", name);
	_cleanup_free_ char *pods = run_pods_dir();
	if (sp_mkdir_p(pods, 0700, err) < 0)
		return sp_error_wrap(err, "the pods' state directory");
	/* Claims are serialised on the pods directory itself, so two runs of
	 * one name cannot both see it free. */
	_cleanup_close_ int pfd = open(pods, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 || flock(pfd, LOCK_EX) < 0)
		return sp_error_sys(err, errno, "lock %s", pods);
	_cleanup_free_ char *dir = sp_xasprintf("%s/%s", pods, name);
	struct stat sb;
	if (lstat(dir, &sb) == 0) {
		if (run_state_alive(dir))
			return sp_error(err, SP_ERR_EXISTS,
					"a pod named %s is already running; stop it with `sealpod stop %s` "
					"or give this one another name with --name",
					name, name);
		sp_log_info("removing the stale state of pod %s", name);
		if (run_state_remove_stale(dir, err) < 0)
			return sp_error_wrap(err, "stale pod state %s", dir);
	}
	if (mkdir(dir, 0700) < 0)
		return sp_error_sys(err, errno, "mkdir %s", dir);
	_cleanup_free_ char *logs = sp_xasprintf("%s/logs", dir);
	_cleanup_free_ char *lock = sp_xasprintf("%s/lock", dir);
	if (mkdir(logs, 0700) < 0) {
		sp_error_sys(err, errno, "mkdir %s", logs);
		sp_rm_rf(dir, NULL);
		return SP_ERR_SYSTEM;
	}
	st->lockfd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (st->lockfd < 0 || flock(st->lockfd, LOCK_EX | LOCK_NB) < 0) {
		sp_error_sys(err, errno, "lock %s", lock);
		if (st->lockfd >= 0)
			close(st->lockfd);
		st->lockfd = -1;
		sp_rm_rf(dir, NULL);
		return SP_ERR_SYSTEM;
	}
	st->dir = sp_xstrdup(dir);
	st->name = sp_xstrdup(name);
	_cleanup_free_ char *abs = realpath(file, NULL);
	st->file = sp_xstrdup(abs ? abs : file);
	st->created = (int64_t)time(NULL);
	st->pid = getpid();
	/* A state directory that cannot take the first status.json (a full
	 * disk) is refused now, not found empty by `sealpod ps` later. */
	if (state_write(st, NULL, err) < 0) {
		sp_error_wrap(err, "pod %s: state directory", name);
		run_state_release(st);
		return SP_ERR_SYSTEM;
	}
	return 0;
}

static int state_write(struct run_state *st, const struct run_live *pod, sp_err **err)
{
	_cleanup_json_ json_t *cs = json_array();
	for (size_t i = 0; pod && i < pod->n; i++) {
		const struct run_ctr *c = &pod->ctrs[i];
		const char *state = c->exited ? "exited" : c->started ? "running"
				    : c->created ? "created" : "waiting";
		json_t *e = json_pack("{s:s,s:b,s:s}", "name", c->name, "init", c->init,
				      "state", state);
		if (c->started && !c->exited)
			json_object_set_new(e, "ready", json_boolean(c->ready));
		if (c->exited)
			json_object_set_new(e, "exit_code", json_integer(c->status));
		json_array_append_new(cs, e);
	}
	/* The pid is the supervisor's, fixed at fork time. */
	_cleanup_json_ json_t *j = json_pack(
		"{s:s,s:s,s:I,s:I,s:s,s:O}", "name", st->name, "file", st->file, "created",
		(json_int_t)st->created, "pid", (json_int_t)getpid(), "phase",
		pod && pod->phase ? pod->phase : "starting", "containers", cs);
	if (st->sandbox_dir)
		json_object_set_new(j, "sandbox_dir", json_string(st->sandbox_dir));
	if (st->ports)
		json_object_set(j, "ports", st->ports);
	_cleanup_free_ char *text = sp_json_dump_pretty(j);
	_cleanup_free_ char *path = sp_xasprintf("%s/status.json", st->dir);
	return sp_write_file_atomic(path, text, strlen(text), 0600, err);
}

void run_state_write(struct run_state *st, const struct run_live *pod)
{
	if (!st || !st->dir)
		return;
	_cleanup_err_ sp_err *e = NULL;
	if (state_write(st, pod, &e) < 0)
		sp_log_warn("%s", sp_err_msg(e));
}

int run_state_open_log(struct run_state *st, const char *container)
{
	if (!st || !st->dir || !run_name_valid(container))
		return -1;
	_cleanup_free_ char *path = sp_xasprintf("%s/logs/%s.log", st->dir, container);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		sp_log_warn("open %s: %s", path, strerror(errno));
	return fd;
}

void run_state_release(struct run_state *st)
{
	if (st->dir) {
		_cleanup_err_ sp_err *e = NULL;
		if (sp_rm_rf(st->dir, &e) < 0)
			sp_log_warn("%s", sp_err_msg(e));
	}
	if (st->lockfd >= 0)
		close(st->lockfd);
	free(st->dir);
	free(st->name);
	free(st->file);
	free(st->sandbox_dir);
	json_decref(st->ports);
	memset(st, 0, sizeof(*st));
	st->lockfd = -1;
}
