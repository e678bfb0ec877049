/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod ps`, `logs`, `exec`, `stop`: the pods `sealpod run` runs, seen
 * through their state directories (<pods>/<name>/, run_state.c) and
 * control sockets (run_ctl.c). docs/run.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "run.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

static int usage_err(const char *cmd, const char *usage)
{
	fprintf(stderr, "usage: sealpod %s %s\n", cmd, usage);
	return 2;
}

/* <pods>/<name>, or an error naming what is wrong (exit 1). */
static char *pod_dir(const char *cmd, const char *name)
{
	if (!run_name_valid(name)) {
		fprintf(stderr, "sealpod %s: `%s` is not a pod name (`sealpod ps` lists them)\n",
			cmd, name);
		return NULL;
	}
	_cleanup_free_ char *pods = run_pods_dir();
	char *dir = sp_xasprintf("%s/%s", pods, name);
	if (access(dir, F_OK) < 0) {
		fprintf(stderr, "sealpod %s: no pod named %s (`sealpod ps` lists them)\n", cmd, name);
		free(dir);
		return NULL;
	}
	return dir;
}

static json_t *load_status(const char *dir)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/status.json", dir);
	json_t *j = NULL;
	if (sp_json_load_file(&j, path, 1u << 20, NULL) < 0 || !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* ---- ps ------------------------------------------------------------------- */

static void age(char *out, size_t n, int64_t created)
{
	int64_t s = (int64_t)time(NULL) - created;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, n, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, n, "%lldm", (long long)(s / 60));
	else if (s < 2 * 86400)
		snprintf(out, n, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, n, "%lldd", (long long)(s / 86400));
}

static char *describe_containers(const json_t *cs)
{
	_cleanup_buf_ sp_buf b = SP_BUF_INIT;
	size_t i;
	const json_t *c;
	json_array_foreach(cs, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *state = json_string_value(json_object_get(c, "state"));
		sp_buf_printf(&b, "%s%s (%s", i ? ", " : "", name ? name : "?", state ? state : "?");
		const json_t *code = json_object_get(c, "exit_code");
		if (json_is_integer(code))
			sp_buf_printf(&b, " %lld", (long long)json_integer_value(code));
		const json_t *ready = json_object_get(c, "ready");
		if (json_is_boolean(ready))
			sp_buf_printf(&b, ", %s", json_is_true(ready) ? "ready" : "not ready");
		sp_buf_printf(&b, ")");
	}
	sp_buf_terminate(&b);
	return (char *)sp_buf_steal(&b, NULL);
}

int cmd_ps(int argc, char **argv)
{
	bool json_out = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json_out = true;
		else
			return usage_err("ps", "[--json]");
	}
	_cleanup_free_ char *pods = run_pods_dir();
	_cleanup_json_ json_t *all = json_array();
	DIR *d = opendir(pods);
	if (d) {
		/* The claim lock: an entry being created is not stale. */
		_cleanup_close_ int pfd = open(pods, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0)
			flock(pfd, LOCK_EX);
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' || !run_name_valid(e->d_name))
				continue;
			_cleanup_free_ char *dir = sp_xasprintf("%s/%s", pods, e->d_name);
			if (!run_state_alive(dir)) {
				/* Its supervisor died without cleaning up. */
				fprintf(stderr, "sealpod ps: removed pod %s: its supervisor is gone\n",
					e->d_name);
				run_state_remove_stale(dir, NULL);
				continue;
			}
			json_t *st = load_status(dir);
			if (!st)
				st = json_pack("{s:s,s:s,s:[]}", "name", e->d_name, "phase", "starting",
					       "containers");
			json_array_append_new(all, st);
		}
		closedir(d);
	}
	if (json_out) {
		_cleanup_free_ char *text = sp_json_dump_pretty(all);
		printf("%s\n", text);
		return 0;
	}
	printf("%-20s %-9s %-6s %-24s %s\n", "NAME", "STATUS", "AGE", "PORTS", "CONTAINERS");
	size_t i;
	json_t *p;
	json_array_foreach(all, i, p) {
		char a[32] = "-";
		const json_t *cr = json_object_get(p, "created");
		if (json_is_integer(cr))
			age(a, sizeof(a), json_integer_value(cr));
		const char *phase = json_string_value(json_object_get(p, "phase"));
		_cleanup_free_ char *cs = describe_containers(json_object_get(p, "containers"));
		/* podman's PORTS: 0.0.0.0:8080->80/tcp, comma-separated. */
		_cleanup_buf_ sp_buf ports = SP_BUF_INIT;
		size_t k;
		json_t *pt;
		json_array_foreach(json_object_get(p, "ports"), k, pt)
			if (json_is_string(pt))
				sp_buf_printf(&ports, "%s%s", k ? "," : "", json_string_value(pt));
		sp_buf_terminate(&ports);
		printf("%-20s %-9s %-6s %-24s %s\n", json_string_value(json_object_get(p, "name")),
		       phase ? phase : "?", a, ports.len ? (const char *)ports.data : "-", cs);
	}
	return 0;
}

/* ---- logs ----------------------------------------------------------------- */

/* Copies what is new in fd to stdout; true if there was something. */
static bool drain(int fd)
{
	bool any = false;
	char buf[16384];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		any = true;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			exit(1); /* the reader went away */
	}
	fflush(stdout);
	return any;
}

int cmd_logs(int argc, char **argv)
{
	static const struct option opts[] = {
		{"follow", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
	bool follow = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': follow = true; break;
		case 'h': printf("usage: sealpod logs NAME [CONTAINER] [-f]\n"); return 0;
		default: return usage_err("logs", "NAME [CONTAINER] [-f]");
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return usage_err("logs", "NAME [CONTAINER] [-f]");
	const char *name = argv[optind];
	const char *want = argc - optind == 2 ? argv[optind + 1] : NULL;
	_cleanup_free_ char *dir = pod_dir("logs", name);
	if (!dir)
		return 1;
	_cleanup_json_ json_t *st = load_status(dir);
	const json_t *cs = json_object_get(st, "containers");
	int fds[64];
	size_t nfd = 0;
	_cleanup_buf_ sp_buf names = SP_BUF_INIT;
	size_t i;
	const json_t *e;
	json_array_foreach(cs, i, e) {
		const char *cn = json_string_value(json_object_get(e, "name"));
		if (!cn || !run_name_valid(cn) || nfd == 64)
			continue;
		sp_buf_printf(&names, "%s%s", names.len ? ", " : "", cn);
		if (want && strcmp(want, cn))
			continue;
		_cleanup_free_ char *path = sp_xasprintf("%s/logs/%s.log", dir, cn);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			fds[nfd++] = fd;
	}
	sp_buf_terminate(&names);
	if (want && !nfd) {
		fprintf(stderr, "sealpod logs: pod %s has no container %s; its containers: %s\n", name,
			want, names.len ? (char *)names.data : "(none yet)");
		return 1;
	}
	/* One container after the other; while following, whatever comes
	 * next from any of them (each line carries its container's name). */
	for (size_t k = 0; k < nfd; k++)
		drain(fds[k]);
	while (follow) {
		bool alive = run_state_alive(dir);
		bool any = false;
		for (size_t k = 0; k < nfd; k++)
			any |= drain(fds[k]);
		if (!alive && !any)
			break;
		if (!any)
			usleep(200 * 1000);
	}
	for (size_t k = 0; k < nfd; k++)
		close(fds[k]);
	return 0;
}

/* ---- exec ----------------------------------------------------------------- */

/* Sends one request and returns the connection, or -1 after saying why. */
static int request(const char *cmd, const char *name, const char *dir, const json_t *req)
{
	sp_err *err = NULL;
	int fd = run_ctl_connect(dir, &err);
	if (fd < 0) {
		fprintf(stderr, "sealpod %s: pod %s does not answer (%s); `sealpod ps` shows "
				"whether it still runs\n", cmd, name, sp_err_msg(err));
		sp_err_free(err);
		return -1;
	}
	_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
	if (!text)
		sp_oom();
	if (run_ctl_send(fd, RUN_FRAME_REQUEST, text, strlen(text)) < 0) {
		fprintf(stderr, "sealpod %s: pod %s: sending the request: %s\n", cmd, name,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Relays frames until the exit status; returns the exit code. */
static int relay(const char *cmd, int fd)
{
	for (;;) {
		int type;
		_cleanup_free_ uint8_t *data = NULL;
		size_t len;
		_cleanup_err_ sp_err *err = NULL;
		if (run_ctl_recv(fd, &type, &data, &len, &err) < 0) {
			fprintf(stderr, "sealpod %s: the pod's supervisor: %s\n", cmd, sp_err_msg(err));
			return 1;
		}
		switch (type) {
		case RUN_FRAME_STDOUT:
			fwrite(data, 1, len, stdout);
			fflush(stdout);
			break;
		case RUN_FRAME_STDERR:
			fwrite(data, 1, len, stderr);
			break;
		case RUN_FRAME_EXIT: {
			char *end;
			long v = strtol((char *)data, &end, 10);
			if (!len || *end || v < 0 || v > 255) {
				fprintf(stderr, "sealpod %s: the supervisor sent a bad status\n", cmd);
				return 1;
			}
			return (int)v;
		}
		case RUN_FRAME_ERROR:
			fprintf(stderr, "sealpod %s: %.*s\n", cmd, (int)len, (char *)data);
			return 1;
		default:
			fprintf(stderr, "sealpod %s: the supervisor sent frame type %d\n", cmd, type);
			return 1;
		}
	}
}

int cmd_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{"container", required_argument, NULL, 'c'},
		{"tty", no_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *u = "NAME [-c CONTAINER] [-t] -- CMD [ARG...]";
	const char *container = NULL;
	bool tty = false;
	int c;
	optind = 1;
	/* "+": options end at the command, so its own flags stay its own. */
	while ((c = getopt_long(argc, argv, "+c:th", opts, NULL)) != -1) {
		switch (c) {
		case 'c': container = optarg; break;
		case 't': tty = true; break;
		case 'h': printf("usage: sealpod exec %s\n", u); return 0;
		default: return usage_err("exec", u);
		}
	}
	if (optind >= argc)
		return usage_err("exec", u);
	const char *name = argv[optind++];
	/* Options may follow the name too: `exec NAME -c C -- CMD`. */
	while (optind < argc && argv[optind][0] == '-') {
		if (!strcmp(argv[optind], "--")) {
			optind++;
			break;
		}
		if ((!strcmp(argv[optind], "-c") || !strcmp(argv[optind], "--container")) &&
		    optind + 1 < argc) {
			container = argv[optind + 1];
			optind += 2;
		} else if (!strcmp(argv[optind], "-t") || !strcmp(argv[optind], "--tty")) {
			tty = true;
			optind++;
		} else {
			return usage_err("exec", u);
		}
	}
	if (optind >= argc)
		return usage_err("exec", u);
	_cleanup_free_ char *dir = pod_dir("exec", name);
	if (!dir)
		return 1;
	_cleanup_json_ json_t *args = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(args, json_string(argv[i]));
	_cleanup_json_ json_t *req = json_pack("{s:s,s:O,s:b}", "op", "exec", "args", args, "tty",
					       tty);
	if (container)
		json_object_set_new(req, "container", json_string(container));
	signal(SIGPIPE, SIG_IGN);
	int fd = request("exec", name, dir, req);
	if (fd < 0)
		return 1;
	int rc = relay("exec", fd);
	close(fd);
	return rc;
}

/* ---- stop ----------------------------------------------------------------- */

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{"grace", required_argument, NULL, 'g'},
		{"time", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	long grace = -1;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'g':
		case 't': {
			char *end;
			grace = strtol(optarg, &end, 10);
			if (!*optarg || *end || grace < 0 || grace > 3600) {
				fprintf(stderr, "sealpod stop: --grace takes 0-3600 seconds, not `%s`\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'h': printf("usage: sealpod stop NAME [--grace SECONDS]\n"); return 0;
		default: return usage_err("stop", "NAME [--grace SECONDS]");
		}
	}
	if (optind != argc - 1)
		return usage_err("stop", "NAME [--grace SECONDS]");
	const char *name = argv[optind];
	_cleanup_free_ char *dir = pod_dir("stop", name);
	if (!dir)
		return 1;
	if (!run_state_alive(dir)) {
		sp_rm_rf(dir, NULL);
		printf("%s\n", name);
		return 0;
	}
	_cleanup_json_ json_t *req = json_pack("{s:s}", "op", "stop");
	if (grace >= 0)
		json_object_set_new(req, "grace", json_integer(grace));
	signal(SIGPIPE, SIG_IGN);
	sp_err *err = NULL;
	int fd = run_ctl_connect(dir, &err);
	if (fd < 0) {
		/* Still booting, before its socket exists: the supervisor
		 * stops on SIGTERM as a foreground run does on Ctrl-C. */
		sp_err_free(err);
		_cleanup_json_ json_t *st = load_status(dir);
		json_int_t pid = json_integer_value(json_object_get(st, "pid"));
		if (pid <= 1 || kill((pid_t)pid, SIGTERM) < 0) {
			fprintf(stderr, "sealpod stop: pod %s does not answer and its supervisor's "
					"pid is unknown; see %s/supervisor.log\n", name, dir);
			return 1;
		}
	} else {
		_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
		if (!text)
			sp_oom();
		int rc = run_ctl_send(fd, RUN_FRAME_REQUEST, text, strlen(text)) < 0
				 ? 1 : relay("stop", fd);
		close(fd);
		if (rc != 0)
			return 1;
	}
	/* Gone means: the supervisor released its lock and removed the
	 * directory, after the UVM stopped. */
	uint64_t limit = (uint64_t)(grace >= 0 ? grace : 30) + 120;
	uint64_t until = sp_now_ns() + limit * 1000000000ull;
	while (run_state_alive(dir) || access(dir, F_OK) == 0) {
		if (sp_now_ns() > until) {
			fprintf(stderr, "sealpod stop: pod %s is still stopping after %llu s; see "
					"%s/supervisor.log\n", name, (unsigned long long)limit, dir);
			return 1;
		}
		usleep(100 * 1000);
	}
	printf("%s\n", name);
	return 0;
}
