/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-runc: runc's command line over the sealpod container engine, so
 * that containerd's runc shim and runtime-tools' validation drive it like
 * runc. Each command fills options and calls the library. */
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/oci.h"

static const char *g_root = "/run/sealpod-runc";
static bool g_log_to_file;

static int fail(sp_err *e)
{
	fprintf(stderr, "sealpod-runc: %s\n", sp_err_msg(e));
	if (g_log_to_file)
		sp_log_error("%s", sp_err_msg(e));
	sp_err_free(e);
	return 1;
}

static int usage_error(const char *fmt, ...) SP_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	char *msg;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		sp_oom();
	va_end(ap);
	fprintf(stderr, "sealpod-runc: %s\n", msg);
	if (g_log_to_file)
		sp_log_error("%s", msg);
	free(msg);
	return 1;
}

/* Flags in runc's style: -x, --name, --name=value, -name; value flags
 * take the next argument. Parsing stops at the first positional. */
struct flag {
	const char *name, *alias; /* long name, one-letter alias or NULL */
	bool has_value;
	const char **value; /* last value */
	bool *set;
	char ***multi; /* repeated values */
};

static int parse_flags(int argc, char **argv, const struct flag *flags, int *idx)
{
	int i = *idx;
	for (; i < argc; i++) {
		char *a = argv[i];
		if (a[0] != '-' || !a[1])
			break;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		const char *name = a + (a[1] == '-' ? 2 : 1);
		const char *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = NULL;
		for (const struct flag *k = flags; k && k->name; k++)
			if ((strlen(k->name) == nl && !strncmp(k->name, name, nl)) ||
			    (k->alias && strlen(k->alias) == nl && !strncmp(k->alias, name, nl)))
				f = k;
		if (!f)
			return usage_error("unknown flag `%s`", a), -1;
		const char *val = NULL;
		if (f->has_value) {
			if (eq)
				val = eq + 1;
			else if (i + 1 < argc)
				val = argv[++i];
			else
				return usage_error("flag `%s` needs a value", a), -1;
		} else if (eq) {
			val = eq + 1;
			if (f->set)
				*f->set = strcmp(val, "false") != 0;
			continue;
		}
		if (f->set)
			*f->set = true;
		if (f->value)
			*f->value = val;
		if (f->multi) {
			size_t n = 0;
			while (*f->multi && (*f->multi)[n])
				n++;
			*f->multi = sp_xrealloc(*f->multi, (n + 2) * sizeof(char *));
			(*f->multi)[n] = sp_xstrdup(val);
			(*f->multi)[n + 1] = NULL;
		}
	}
	*idx = i;
	return 0;
}

static int write_pid_file(const char *path, pid_t pid)
{
	if (!path)
		return 0;
	char b[32];
	int n = snprintf(b, sizeof(b), "%d", pid);
	_cleanup_err_ sp_err *e = NULL;
	if (sp_write_file_atomic(path, b, (size_t)n, 0644, &e) < 0) {
		fprintf(stderr, "sealpod-runc: --pid-file: %s\n", sp_err_msg(e));
		return -1;
	}
	return 0;
}

static int need_id(int argc, char **argv, int i, const char *cmd)
{
	if (i >= argc)
		return usage_error("%s: give the container id", cmd);
	return 0;
}

struct create_args {
	const char *bundle, *console, *pid_file, *preserve;
	bool detach, no_pivot, no_keyring, keep;
};

static int do_create(const char *id, struct create_args *ca, sp_container **out)
{
	sp_err *e = NULL;
	const char *bundle = ca->bundle ? ca->bundle : ".";
	_cleanup_free_ char *cfg = sp_xasprintf("%s/config.json", bundle);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, cfg, 16 << 20, &e) < 0)
		return fail(e);
	sp_container_opts o = {.version = SP_CONTAINER_OPTS_VERSION, .state_root = g_root,
			       .bundle = bundle, .console_socket = ca->console, .console_fd = -1};
	if (ca->preserve)
		o.preserve_fds = (unsigned)strtoul(ca->preserve, NULL, 10);
	if (sp_container_create(out, id, (const char *)data, len, NULL, NULL, &o, &e) < 0)
		return fail(e);
	if (write_pid_file(ca->pid_file, sp_container_pid(*out)) < 0) {
		sp_container_delete(*out, true, NULL);
		sp_container_free(*out);
		return 1;
	}
	return 0;
}

static int cmd_create(int argc, char **argv, bool run)
{
	struct create_args ca = {0};
	const struct flag flags[] = {
		{"bundle", "b", true, &ca.bundle, NULL, NULL},
		{"console-socket", NULL, true, &ca.console, NULL, NULL},
		{"pid-file", NULL, true, &ca.pid_file, NULL, NULL},
		{"preserve-fds", NULL, true, &ca.preserve, NULL, NULL},
		{"detach", "d", false, NULL, &ca.detach, NULL},
		{"no-pivot", NULL, false, NULL, &ca.no_pivot, NULL},
		{"no-new-keyring", NULL, false, NULL, &ca.no_keyring, NULL},
		{"keep", NULL, false, NULL, &ca.keep, NULL},
		{"no-subreaper", NULL, false, NULL, NULL, NULL},
		{NULL, NULL, false, NULL, NULL, NULL},
	};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, argv[0]) < 0)
		return 1;
	const char *id = argv[i];
	sp_container *c;
	int rc = do_create(id, &ca, &c);
	if (rc || !run) {
		if (!rc)
			sp_container_free(c);
		return rc;
	}
	sp_err *e = NULL;
	if (sp_container_start(c, &e) < 0) {
		sp_container_delete(c, true, NULL);
		sp_container_free(c);
		return fail(e);
	}
	if (ca.detach) {
		sp_container_free(c);
		return 0;
	}
	int code = 0;
	if (sp_container_wait(c, &code, &e) < 0)
		rc = fail(e);
	else
		rc = code;
	if (!ca.keep && sp_container_delete(c, true, &e) < 0)
		fail(e);
	sp_container_free(c);
	return rc;
}

static int load(const char *id, sp_container **c)
{
	sp_err *e = NULL;
	if (sp_container_load(c, g_root, id, &e) < 0)
		return fail(e);
	return 0;
}

static int cmd_start(int argc, char **argv)
{
	if (need_id(argc, argv, 1, "start"))
		return 1;
	sp_container *c;
	if (load(argv[1], &c))
		return 1;
	sp_err *e = NULL;
	int rc = sp_container_start(c, &e) < 0 ? fail(e) : 0;
	sp_container_free(c);
	return rc;
}

static int cmd_state(int argc, char **argv)
{
	if (need_id(argc, argv, 1, "state"))
		return 1;
	sp_container *c;
	if (load(argv[1], &c))
		return 1;
	_cleanup_free_ char *s = sp_container_state_json(c);
	_cleanup_json_ json_t *j = json_loads(s, 0, NULL);
	_cleanup_free_ char *pretty = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", pretty ? pretty : s);
	sp_container_free(c);
	return 0;
}

static int parse_signal(const char *s)
{
	static const struct {
		const char *n;
		int v;
	} sigs[] = {
		{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},
		{"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS},	 {"FPE", SIGFPE},
		{"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
		{"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
		{"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
		{"TTOU", SIGTTOU}, {"URG", SIGURG},   {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
		{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
		{"PWR", SIGPWR},   {"SYS", SIGSYS},
	};
	char *end;
	long v = strtol(s, &end, 10);
	if (!*end && v > 0 && v < 65)
		return (int)v;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < SP_ARRAY_LEN(sigs); i++)
		if (!strcasecmp(s, sigs[i].n))
			return sigs[i].v;
	return -1;
}

static int cmd_kill(int argc, char **argv)
{
	bool all = false;
	const struct flag flags[] = {{"all", "a", false, NULL, &all, NULL},
				     {NULL, NULL, false, NULL, NULL, NULL}};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "kill"))
		return 1;
	const char *id = argv[i++];
	/* runc also takes --all after the id. */
	if (i < argc && (!strcmp(argv[i], "--all") || !strcmp(argv[i], "-a")))
		all = true, i++;
	int sig = SIGTERM;
	if (i < argc && (sig = parse_signal(argv[i])) < 0)
		return usage_error("kill: unknown signal `%s`", argv[i]);
	sp_container *c;
	if (load(id, &c))
		return 1;
	sp_err *e = NULL;
	int rc = sp_container_kill(c, sig, all, &e) < 0 ? fail(e) : 0;
	sp_container_free(c);
	return rc;
}

static int cmd_delete(int argc, char **argv)
{
	bool force = false;
	const struct flag flags[] = {{"force", "f", false, NULL, &force, NULL},
				     {NULL, NULL, false, NULL, NULL, NULL}};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "delete"))
		return 1;
	sp_container *c;
	sp_err *e = NULL;
	if (sp_container_load(&c, g_root, argv[i], &e) < 0) {
		/* runc: deleting a missing container with --force succeeds. */
		if (force && e->code == SP_ERR_NOT_FOUND) {
			sp_err_free(e);
			return 0;
		}
		return fail(e);
	}
	int rc = sp_container_delete(c, force, &e) < 0 ? fail(e) : 0;
	sp_container_free(c);
	return rc;
}

static int cmd_exec(int argc, char **argv)
{
	const char *process = NULL, *console = NULL, *pid_file = NULL, *cwd = NULL, *user = NULL,
		   *preserve = NULL;
	bool detach = false, tty = false, nnp = false;
	_cleanup_strv_ char **env = NULL, **caps = NULL, **gids = NULL;
	const struct flag flags[] = {
		{"process", "p", true, &process, NULL, NULL},
		{"console-socket", NULL, true, &console, NULL, NULL},
		{"pid-file", NULL, true, &pid_file, NULL, NULL},
		{"cwd", NULL, true, &cwd, NULL, NULL},
		{"user", "u", true, &user, NULL, NULL},
		{"preserve-fds", NULL, true, &preserve, NULL, NULL},
		{"env", "e", true, NULL, NULL, &env},
		{"cap", "c", true, NULL, NULL, &caps},
		{"additional-gids", "g", true, NULL, NULL, &gids},
		{"detach", "d", false, NULL, &detach, NULL},
		{"tty", "t", false, NULL, &tty, NULL},
		{"no-new-privs", NULL, false, NULL, &nnp, NULL},
		{"process-label", NULL, true, NULL, NULL, NULL},
		{"apparmor", NULL, true, NULL, NULL, NULL},
		{NULL, NULL, false, NULL, NULL, NULL},
	};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "exec"))
		return 1;
	const char *id = argv[i++];
	sp_container *c;
	if (load(id, &c))
		return 1;
	sp_err *e = NULL;
	_cleanup_free_ char *pjson = NULL;
	size_t plen = 0;
	if (process) {
		uint8_t *d;
		if (sp_read_file(&d, &plen, process, 16 << 20, &e) < 0) {
			sp_container_free(c);
			return fail(e);
		}
		pjson = (char *)d;
	} else {
		if (i >= argc) {
			sp_container_free(c);
			return usage_error("exec: give a command (or --process %s)", "FILE");
		}
		/* The container's own process, with the overrides. */
		_cleanup_free_ char *cfgp = sp_xasprintf("%s/%s/config.json", g_root, id);
		_cleanup_json_ json_t *cfg = NULL;
		if (sp_json_load_file(&cfg, cfgp, 16 << 20, &e) < 0) {
			sp_container_free(c);
			return fail(e);
		}
		json_t *p = json_deep_copy(json_object_get(cfg, "process"));
		if (!p)
			p = json_object();
		json_t *args = json_array();
		for (int k = i; k < argc; k++)
			json_array_append_new(args, json_string(argv[k]));
		json_object_set_new(p, "args", args);
		json_object_set_new(p, "terminal", json_boolean(tty));
		if (cwd)
			json_object_set_new(p, "cwd", json_string(cwd));
		if (nnp)
			json_object_set_new(p, "noNewPrivileges", json_true());
		json_t *pe = json_object_get(p, "env");
		if (!json_is_array(pe)) {
			pe = json_array();
			json_object_set_new(p, "env", pe);
		}
		for (char **v = env; v && *v; v++)
			json_array_append_new(pe, json_string(*v));
		if (user) {
			json_t *u = json_object();
			unsigned uid = 0, gid = 0;
			int n = sscanf(user, "%u:%u", &uid, &gid);
			json_object_set_new(u, "uid", json_integer(uid));
			json_object_set_new(u, "gid", json_integer(n == 2 ? gid : 0));
			json_object_set_new(p, "user", u);
		}
		if (caps) {
			json_t *cs = json_object_get(p, "capabilities");
			static const char *sets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
			for (size_t k = 0; cs && k < SP_ARRAY_LEN(sets); k++) {
				json_t *a = json_object_get(cs, sets[k]);
				for (char **v = caps; json_is_array(a) && v && *v; v++)
					json_array_append_new(a, json_string(*v));
			}
		}
		pjson = json_dumps(p, JSON_COMPACT);
		json_decref(p);
		plen = strlen(pjson);
	}
	sp_container_opts o = {.version = SP_CONTAINER_OPTS_VERSION, .state_root = g_root,
			       .console_socket = console, .console_fd = -1};
	if (preserve)
		o.preserve_fds = (unsigned)strtoul(preserve, NULL, 10);
	pid_t pid;
	if (sp_container_exec(c, pjson, plen, NULL, &o, &pid, &e) < 0) {
		sp_container_free(c);
		return fail(e);
	}
	sp_container_free(c);
	if (write_pid_file(pid_file, pid) < 0)
		return 1;
	if (detach)
		return 0;
	int st;
	if (sp_waitpid(pid, &st, 0) < 0)
		return usage_error("exec: waiting for the process: %s", strerror(errno));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmd_ps(int argc, char **argv)
{
	const char *format = "table";
	const struct flag flags[] = {{"format", "f", true, &format, NULL, NULL},
				     {NULL, NULL, false, NULL, NULL, NULL}};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "ps"))
		return 1;
	sp_container *c;
	if (load(argv[i], &c))
		return 1;
	sp_err *e = NULL;
	pid_t *pids;
	size_t n;
	if (sp_container_pids(c, &pids, &n, &e) < 0) {
		sp_container_free(c);
		return fail(e);
	}
	sp_container_free(c);
	if (!strcmp(format, "json")) {
		printf("[");
		for (size_t k = 0; k < n; k++)
			printf("%s%d", k ? "," : "", pids[k]);
		printf("]\n");
	} else {
		printf("PID\n");
		for (size_t k = 0; k < n; k++)
			printf("%d\n", pids[k]);
	}
	free(pids);
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	const char *format = "table";
	bool quiet = false;
	const struct flag flags[] = {{"format", "f", true, &format, NULL, NULL},
				     {"quiet", "q", false, NULL, &quiet, NULL},
				     {NULL, NULL, false, NULL, NULL, NULL}};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0)
		return 1;
	sp_err *e = NULL;
	_cleanup_strv_ char **ids = NULL;
	if (sp_container_list(&ids, g_root, &e) < 0)
		return fail(e);
	json_t *arr = json_array();
	if (!quiet && strcmp(format, "json"))
		printf("%-20s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
	for (char **id = ids; *id; id++) {
		sp_container *c;
		if (sp_container_load(&c, g_root, *id, &e) < 0) {
			sp_err_clear(&e);
			continue;
		}
		sp_container_status st = sp_container_status_get(c);
		_cleanup_free_ char *sj = sp_container_state_json(c);
		if (quiet)
			printf("%s\n", *id);
		else if (!strcmp(format, "json")) {
			json_t *o = json_loads(sj, 0, NULL);
			if (o)
				json_array_append_new(arr, o);
		} else {
			_cleanup_json_ json_t *o = json_loads(sj, 0, NULL);
			printf("%-20s %-8d %-10s %-40s %s\n", *id,
			       st == SP_CONTAINER_STOPPED ? 0 : sp_container_pid(c),
			       sp_container_status_name(st),
			       json_string_value(json_object_get(o, "bundle")),
			       json_string_value(json_object_get(o, "created")));
		}
		sp_container_free(c);
	}
	if (!quiet && !strcmp(format, "json")) {
		char *s = json_dumps(arr, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
	}
	json_decref(arr);
	return 0;
}

static int cmd_events(int argc, char **argv)
{
	bool stats = false;
	const char *interval = NULL;
	const struct flag flags[] = {{"stats", NULL, false, NULL, &stats, NULL},
				     {"interval", NULL, true, &interval, NULL, NULL},
				     {NULL, NULL, false, NULL, NULL, NULL}};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "events"))
		return 1;
	if (!stats)
		return usage_error("events: only `events --stats %s` is supported", argv[i]);
	sp_container *c;
	if (load(argv[i], &c))
		return 1;
	sp_err *e = NULL;
	sp_container_stats s;
	if (sp_container_stats_get(c, &s, &e) < 0) {
		sp_container_free(c);
		return fail(e);
	}
	json_t *d = json_pack(
		"{s:{s:{s:I,s:I,s:I},s:{s:I,s:I,s:I}},s:{s:{s:I,s:I,s:I},s:I,s:I,s:I},s:{s:I,s:I}}",
		"cpu", "usage", "total", (json_int_t)s.cpu_usage_ns, "user", (json_int_t)s.cpu_user_ns,
		"kernel", (json_int_t)s.cpu_system_ns, "throttling", "periods",
		(json_int_t)s.cpu_periods, "throttledPeriods", (json_int_t)s.cpu_throttled_periods,
		"throttledTime", (json_int_t)s.cpu_throttled_ns, "memory", "usage", "usage",
		(json_int_t)s.mem_usage, "max", (json_int_t)s.mem_max_usage, "limit",
		(json_int_t)s.mem_limit, "cache", (json_int_t)s.mem_cache, "oomEvents",
		(json_int_t)s.oom_events, "oomKills", (json_int_t)s.oom_kills, "pids", "current",
		(json_int_t)s.pids_current, "limit", (json_int_t)s.pids_limit);
	json_t *o = json_pack("{s:s,s:s,s:o}", "type", "stats", "id", sp_container_id(c), "data", d);
	char *out = json_dumps(o, JSON_COMPACT);
	printf("%s\n", out);
	free(out);
	json_decref(o);
	sp_container_free(c);
	return 0;
}

/* A size for --memory and friends: bytes, or with a binary suffix (k, m,
 * g, t, optionally followed by b), or -1 for unlimited. */
static int parse_bytes(const char *flag, const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (end == v || errno)
		return usage_error("update: --%s `%s` is not a size (e.g. 512m, 1g, -1)", flag, v);
	if (n == -1 && !*end) {
		*out = -1;
		return 0;
	}
	int shift = 0;
	switch (*end | 0x20) {
	case 'k': shift = 10; break;
	case 'm': shift = 20; break;
	case 'g': shift = 30; break;
	case 't': shift = 40; break;
	case 'b': case 0x20: break;
	default:
		return usage_error("update: --%s `%s` is not a size (e.g. 512m, 1g, -1)", flag, v);
	}
	if (shift)
		end++;
	if ((*end | 0x20) == 'b')
		end++;
	if (*end || n < 0 || n > (INT64_MAX >> shift))
		return usage_error("update: --%s `%s` is not a size (e.g. 512m, 1g, -1)", flag, v);
	*out = (int64_t)n << shift;
	return 0;
}

static int parse_int(const char *flag, const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (end == v || *end || errno)
		return usage_error("update: --%s `%s` is not an integer", flag, v);
	*out = n;
	return 0;
}

/* runc update: new limits from flags, or a linux.resources object from a
 * file (or stdin with `-r -`, as containerd's shim sends them). */
static int cmd_update(int argc, char **argv)
{
	const char *res = NULL;
	const char *val[13] = {0};
	/* flag, JSON section, key, kind: 'b' bytes, 'i' integer, 's' string */
	static const struct {
		const char *flag, *sect, *key;
		char kind;
	} opts[] = {
		{"memory", "memory", "limit", 'b'},
		{"memory-reservation", "memory", "reservation", 'b'},
		{"memory-swap", "memory", "swap", 'b'},
		{"kernel-memory", "memory", "kernel", 'b'},
		{"kernel-memory-tcp", "memory", "kernelTCP", 'b'},
		{"cpu-shares", "cpu", "shares", 'i'},
		{"cpu-quota", "cpu", "quota", 'i'},
		{"cpu-period", "cpu", "period", 'i'},
		{"cpu-rt-period", "cpu", "realtimePeriod", 'i'},
		{"cpu-rt-runtime", "cpu", "realtimeRuntime", 'i'},
		{"cpuset-cpus", "cpu", "cpus", 's'},
		{"cpuset-mems", "cpu", "mems", 's'},
		{"pids-limit", "pids", "limit", 'i'},
	};
	_Static_assert(SP_ARRAY_LEN(opts) == SP_ARRAY_LEN(val), "one value per flag");
	const char *blkio = NULL;
	struct flag flags[SP_ARRAY_LEN(opts) + 3];
	memset(flags, 0, sizeof(flags));
	for (size_t k = 0; k < SP_ARRAY_LEN(opts); k++)
		flags[k] = (struct flag){opts[k].flag, NULL, true, &val[k], NULL, NULL};
	flags[SP_ARRAY_LEN(opts)] = (struct flag){"resources", "r", true, &res, NULL, NULL};
	flags[SP_ARRAY_LEN(opts) + 1] = (struct flag){"blkio-weight", NULL, true, &blkio, NULL, NULL};
	int i = 1;
	if (parse_flags(argc, argv, flags, &i) < 0 || need_id(argc, argv, i, "update"))
		return 1;
	const char *id = argv[i];
	bool any_flag = blkio != NULL;
	for (size_t k = 0; k < SP_ARRAY_LEN(opts); k++)
		any_flag |= val[k] != NULL;
	sp_err *e = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (res) {
		if (any_flag)
			return usage_error("update: give either --resources or the limit flags, not both");
		uint8_t *d;
		if (sp_read_file(&d, &len, strcmp(res, "-") ? res : "/dev/stdin", 16 << 20, &e) < 0)
			return fail(e);
		text = (char *)d;
	} else {
		if (!any_flag)
			return usage_error("update: give new limits (--memory, --cpu-quota, "
					   "--pids-limit, ... or --resources FILE)");
		_cleanup_json_ json_t *o = json_object();
		for (size_t k = 0; k < SP_ARRAY_LEN(opts); k++) {
			if (!val[k])
				continue;
			json_t *sect = json_object_get(o, opts[k].sect);
			if (!sect) {
				sect = json_object();
				json_object_set_new(o, opts[k].sect, sect);
			}
			int64_t n = 0;
			if (opts[k].kind == 's') {
				json_object_set_new(sect, opts[k].key, json_string(val[k]));
				continue;
			}
			if ((opts[k].kind == 'b' ? parse_bytes(opts[k].flag, val[k], &n)
						 : parse_int(opts[k].flag, val[k], &n)) != 0)
				return 1;
			json_object_set_new(sect, opts[k].key, json_integer(n));
		}
		if (blkio) {
			int64_t w;
			if (parse_int("blkio-weight", blkio, &w) != 0)
				return 1;
			json_object_set_new(o, "blockIO", json_pack("{s:I}", "weight", (json_int_t)w));
		}
		text = json_dumps(o, JSON_COMPACT);
		if (!text)
			sp_oom();
		len = strlen(text);
	}
	sp_container *c;
	if (load(id, &c))
		return 1;
	sp_container_status st = sp_container_status_get(c);
	int rc = 0;
	if (st == SP_CONTAINER_STOPPED)
		rc = usage_error("update: container `%s` is stopped", id);
	else if (sp_container_update(c, text, len, &e) < 0)
		rc = fail(e);
	sp_container_free(c);
	return rc;
}

static int cmd_pause_resume(int argc, char **argv, bool pause)
{
	if (need_id(argc, argv, 1, argv[0]))
		return 1;
	sp_container *c;
	if (load(argv[1], &c))
		return 1;
	sp_err *e = NULL;
	int rc = (pause ? sp_container_pause(c, &e) : sp_container_resume(c, &e)) < 0 ? fail(e) : 0;
	sp_container_free(c);
	return rc;
}

static int cmd_features(int argc, char **argv)
{
	_cleanup_free_ char *s = sp_oci_features_json();
	printf("%s\n", s);
	return 0;
}

static void help(void)
{
	printf("usage: sealpod-runc [--root DIR] [--log FILE] [--log-format text|json] COMMAND [ARGS]\n\n"
	       "commands: create, start, run, state, kill, delete, exec, ps, list, events, update,\n"
	       "          pause, resume, features\n");
}

int main(int argc, char **argv)
{
	sp_log_init("sealpod-runc", SP_LOG_WARN);
	const char *root = NULL, *log = NULL, *fmt = NULL, *criu = NULL, *rootless = NULL;
	bool debug = false, systemd = false, version = false, h = false;
	const struct flag globals[] = {
		{"root", NULL, true, &root, NULL, NULL},
		{"log", NULL, true, &log, NULL, NULL},
		{"log-format", NULL, true, &fmt, NULL, NULL},
		{"criu", NULL, true, &criu, NULL, NULL},
		{"rootless", NULL, true, &rootless, NULL, NULL},
		{"debug", NULL, false, NULL, &debug, NULL},
		{"systemd-cgroup", NULL, false, NULL, &systemd, NULL},
		{"version", "v", false, NULL, &version, NULL},
		{"help", "h", false, NULL, &h, NULL},
		{NULL, NULL, false, NULL, NULL, NULL},
	};
	int i = 1;
	if (parse_flags(argc, argv, globals, &i) < 0)
		return 1;
	if (root)
		g_root = root;
	if (log) {
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "sealpod-runc: --log %s: %s\n", log, strerror(errno));
			return 1;
		}
		sp_log_set_fd(fd);
		g_log_to_file = true;
	}
	if (fmt && strcmp(fmt, "json") && strcmp(fmt, "text"))
		return usage_error("--log-format `%s`: use text or json", fmt);
	sp_log_set_json(fmt && !strcmp(fmt, "json"));
	if (debug)
		sp_log_set_level(SP_LOG_DEBUG);
	if (systemd)
		fprintf(stderr, "sealpod-runc: warning: --systemd-cgroup is ignored\n");
	if (systemd)
		sp_log_warn("--systemd-cgroup is ignored: cgroups are managed directly (cgroupfs)");
	if (version || (i < argc && !strcmp(argv[i], "version"))) {
		printf("sealpod-runc version %s\nspec: 1.2.0\n", SEALPOD_VERSION);
		return 0;
	}
	if (h || i >= argc) {
		help();
		return h ? 0 : 1;
	}
	/* The caller must see exit statuses of the processes we start. */
	signal(SIGCHLD, SIG_DFL);
	int sub_argc = argc - i;
	char **sub = argv + i;
	const char *cmd = sub[0];
	if (!strcmp(cmd, "create"))
		return cmd_create(sub_argc, sub, false);
	if (!strcmp(cmd, "run"))
		return cmd_create(sub_argc, sub, true);
	if (!strcmp(cmd, "start"))
		return cmd_start(sub_argc, sub);
	if (!strcmp(cmd, "state"))
		return cmd_state(sub_argc, sub);
	if (!strcmp(cmd, "kill"))
		return cmd_kill(sub_argc, sub);
	if (!strcmp(cmd, "delete"))
		return cmd_delete(sub_argc, sub);
	if (!strcmp(cmd, "exec"))
		return cmd_exec(sub_argc, sub);
	if (!strcmp(cmd, "ps"))
		return cmd_ps(sub_argc, sub);
	if (!strcmp(cmd, "list"))
		return cmd_list(sub_argc, sub);
	if (!strcmp(cmd, "events"))
		return cmd_events(sub_argc, sub);
	if (!strcmp(cmd, "features"))
		return cmd_features(sub_argc, sub);
	if (!strcmp(cmd, "update"))
		return cmd_update(sub_argc, sub);
	if (!strcmp(cmd, "pause"))
		return cmd_pause_resume(sub_argc, sub, true);
	if (!strcmp(cmd, "resume"))
		return cmd_pause_resume(sub_argc, sub, false);
	return usage_error("unknown command `%s`; run `sealpod-runc --help`", cmd);
}
