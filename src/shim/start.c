/* SPDX-License-Identifier: Apache-2.0 */
/* The binary side of the shim v2 contract: `start` finds or starts the
 * pod's shim daemon and prints its ttRPC address; `delete` cleans up after
 * a shim that is gone. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "containerd_runtimeoptions.pb-c.h"
#include "containerd_task.pb-c.h"
#include "containerd_types.pb-c.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "shim.h"

#define SPEC_MAX (8u << 20)
#define SHIM_PROBE_NS (1000ull * 1000 * 1000)

int shim_read_spec(json_t **out, const char *bundle, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/config.json", bundle);
	if (sp_json_load_file(out, path, SPEC_MAX, err) < 0)
		return sp_error_wrap(err, "bundle %s", bundle);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sp_error(err, SP_ERR_PARSE, "%s: not a JSON object", path);
	}
	return 0;
}

const char *shim_annotation(const json_t *spec, const char *key)
{
	json_t *v = json_object_get(json_object_get(spec, "annotations"), key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

char *shim_socket_path(const char *address, const char *ns, const char *group)
{
	/* Next to containerd's own socket, as runc's shim does under
	 * /run/containerd/s, so that a containerd with its own state
	 * directory (tests) gets its own shim sockets. */
	_cleanup_free_ char *dir = sp_xstrdup(address && *address ? address
								 : "/run/containerd/containerd.sock");
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = 0;
	else
		strcpy(dir, "/run/containerd");
	_cleanup_free_ char *key = sp_xasprintf("%s/%s/%s", address ? address : "", ns, group);
	uint8_t d[SP_SHA256_LEN];
	sp_sha256(d, key, strlen(key));
	char hex[2 * SP_SHA256_LEN + 1];
	sp_hex_encode(hex, d, sizeof(d));
	/* Keep within sun_path (108 bytes) even for long test directories. */
	size_t room = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	size_t used = strlen(dir) + 3; /* "/s/" */
	size_t n = used < room ? room - used : 0;
	if (n > 64)
		n = 64;
	if (n < 16)
		return sp_xasprintf("/run/containerd/s/%s", hex);
	hex[n] = 0;
	return sp_xasprintf("%s/s/%s", dir, hex);
}

/* The group a container belongs to: CRI puts every container of a pod
 * under its sandbox id; anything else is a pod of one. */
static char *group_of(const json_t *spec, const char *id)
{
	const char *sid = shim_annotation(spec, ANN_SANDBOX_ID);
	return sp_xstrdup(sid && *sid ? sid : id);
}

/* Whether a shim serves on path: a Task call answered within a second.
 * A bare connect() is not enough: the kernel queues connections on a
 * listening socket that some other process still holds open (seen after a
 * SIGKILLed shim, under load), and nobody would ever answer them. */
static bool socket_answers(const char *path)
{
	_cleanup_free_ char *addr = sp_xasprintf("unix:%s", path);
	int fd = -1;
	if (sp_ttrpc_dial(&fd, addr, SHIM_PROBE_NS, NULL) < 0)
		return false;
	sp_ttrpc_client *c = sp_ttrpc_client_new(fd);
	int code = SP_RPC_UNAVAILABLE;
	uint8_t *resp = NULL;
	size_t len = 0;
	_cleanup_err_ sp_err *err = NULL;
	/* An empty ConnectRequest: any status but a transport failure or
	 * the deadline means a shim read it and answered. */
	int r = sp_ttrpc_client_call(c, "containerd.task.v2.Task", "Connect", NULL, 0, NULL, 0,
				     SHIM_PROBE_NS, &resp, &len, &code, &err);
	free(resp);
	sp_ttrpc_client_free(c);
	return r == 0 || (code != SP_RPC_UNAVAILABLE && code != SP_RPC_DEADLINE_EXCEEDED);
}

/* Runtime options on stdin (a protobuf Any): the runtime configuration
 * file CRI's `options.ConfigPath` or `ctr --runtime-config-path` names. */
static char *config_path_from_stdin(void)
{
	if (isatty(0))
		return NULL;
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	int fl = fcntl(0, F_GETFL);
	if (fl < 0)
		return NULL;
	if (sp_read_fd(&data, &len, 0, 1u << 20, "runtime options", NULL) < 0 || !len)
		return NULL;
	Containerd__V1__Types__Any *any = containerd__v1__types__any__unpack(NULL, len, data);
	if (!any)
		return NULL;
	char *path = NULL;
	const char *t = any->type_url;
	size_t tl = strlen(t);
	const char *want = "runtimeoptions.v1.Options";
	if (tl >= strlen(want) && !strcmp(t + tl - strlen(want), want)) {
		Runtimeoptions__V1__Options *o = runtimeoptions__v1__options__unpack(
			NULL, any->value.len, any->value.data);
		if (o && o->config_path && *o->config_path)
			path = sp_xstrdup(o->config_path);
		if (o)
			runtimeoptions__v1__options__free_unpacked(o, NULL);
	}
	containerd__v1__types__any__free_unpacked(any, NULL);
	return path;
}

static int write_address(const char *bundle, const char *addr, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/address", bundle);
	return sp_write_file_atomic(p, addr, strlen(addr), 0644, err);
}

int shim_start(const shim_flags *f, const char *self)
{
	_cleanup_err_ sp_err *err = NULL;
	char cwd[4096];
	const char *bundle = f->bundle;
	if (!bundle || !*bundle) {
		if (!getcwd(cwd, sizeof(cwd))) {
			sp_log_error("start: current directory: %s", strerror(errno));
			return -1;
		}
		bundle = cwd;
	}
	_cleanup_json_ json_t *spec = NULL;
	if (shim_read_spec(&spec, bundle, &err) < 0) {
		sp_log_error("start %s: %s", f->id, sp_err_msg(err));
		return -1;
	}
	_cleanup_free_ char *group = group_of(spec, f->id);
	_cleanup_free_ char *sock = shim_socket_path(f->address, f->ns, group);
	_cleanup_free_ char *addr = sp_xasprintf("unix://%s", sock);
	_cleanup_free_ char *config = config_path_from_stdin();

	if (access(sock, F_OK) == 0) {
		if (socket_answers(sock)) {
			/* The pod's shim runs: this container joins it. */
			if (write_address(bundle, addr, &err) < 0) {
				sp_log_error("start %s: %s", f->id, sp_err_msg(err));
				return -1;
			}
			printf("%s", addr);
			fflush(stdout);
			return 0;
		}
		unlink(sock); /* stale: its shim died */
	}
	_cleanup_free_ char *dir = sp_xstrdup(sock);
	*strrchr(dir, '/') = 0;
	if (sp_mkdir_p(dir, 0711, &err) < 0) {
		sp_log_error("start %s: socket directory: %s", f->id, sp_err_msg(err));
		return -1;
	}
	_cleanup_free_ char *listen_addr = sp_xasprintf("unix:%s", sock);
	_cleanup_close_ int lfd = -1;
	if (sp_ttrpc_listen(&lfd, listen_addr, &err) < 0) {
		/* Lost a race with a concurrent start of the same pod? */
		if (socket_answers(sock)) {
			write_address(bundle, addr, NULL);
			printf("%s", addr);
			fflush(stdout);
			return 0;
		}
		sp_log_error("start %s: listen on %s: %s", f->id, sock, sp_err_msg(err));
		return -1;
	}
	if (write_address(bundle, addr, &err) < 0) {
		unlink(sock);
		sp_log_error("start %s: %s", f->id, sp_err_msg(err));
		return -1;
	}

	pid_t pid = fork();
	if (pid < 0) {
		unlink(sock);
		sp_log_error("start %s: fork: %s", f->id, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		setsid();
		if (chdir(bundle) < 0)
			_exit(127);
		if (lfd != 3) {
			if (dup2(lfd, 3) < 0)
				_exit(127);
		} else {
			sp_set_cloexec(3, false);
		}
		int nul = open("/dev/null", O_RDWR);
		/* The bundle's "log" fifo carries the shim's log into
		 * containerd's; without a reader, the log goes nowhere. */
		int log = open("log", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (log >= 0)
			sp_set_nonblock(log, false);
		const char *logfile = getenv("SEALPOD_SHIM_LOG");
		if (logfile && *logfile) {
			if (log >= 0)
				close(log);
			log = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		}
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(log >= 0 ? log : nul, 2);
		if (config)
			setenv(ENV_CONFIG_PATH, config, 1);
		const char *argv[16];
		size_t a = 0;
		argv[a++] = self;
		argv[a++] = "-namespace";
		argv[a++] = f->ns;
		argv[a++] = "-id";
		argv[a++] = f->id;
		if (f->address) {
			argv[a++] = "-address";
			argv[a++] = f->address;
		}
		if (f->publish_binary) {
			argv[a++] = "-publish-binary";
			argv[a++] = f->publish_binary;
		}
		argv[a++] = "-bundle";
		argv[a++] = bundle;
		if (f->debug)
			argv[a++] = "-debug";
		argv[a] = NULL;
		execv("/proc/self/exe", (char *const *)argv);
		_exit(127);
	}
	/* The daemon serves on the listener it inherited; containerd may dial
	 * right away: the kernel queues the connection until it accepts. */
	printf("%s", addr);
	fflush(stdout);
	return 0;
}

#define STATE_DIR_FILE "sealpod-state-dir"

int shim_record_state_dir(const char *bundle, const char *state_dir, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/" STATE_DIR_FILE, bundle);
	if (sp_write_file_atomic(path, state_dir, strlen(state_dir), 0600, err) < 0)
		return sp_error_wrap(err, "bundle %s", bundle);
	return 0;
}

/* The state directory `start_sandbox` recorded in the bundle; else the
 * configuration the environment names (a shim that died before). */
static char *recorded_state_dir(const char *bundle)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/" STATE_DIR_FILE, bundle);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	if (sp_read_file(&data, &len, path, 4096, NULL) == 0 && len && data[0] == '/' &&
	    strlen((char *)data) == len)
		return sp_xstrdup((char *)data);
	sp_runtime_config *cfg = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_runtime_config_load(&cfg, getenv(ENV_CONFIG_PATH), &err) < 0) {
		sp_log_warn("delete: no state directory recorded in %s and %s", bundle,
			    sp_err_msg(err));
		return NULL;
	}
	char *dir = sp_xstrdup(cfg->state_dir);
	sp_runtime_config_free(cfg);
	return dir;
}

int shim_delete(const shim_flags *f)
{
	/* containerd keeps delete's stderr only when it fails; tests name a
	 * log file, as for the daemon. */
	const char *logfile = getenv("SEALPOD_SHIM_LOG");
	if (logfile && *logfile) {
		int log = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (log >= 0) {
			dup2(log, 2);
			close(log);
		}
	}
	char cwd[4096];
	const char *bundle = f->bundle;
	if (!bundle || !*bundle)
		bundle = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *spec = NULL;
	if (shim_read_spec(&spec, bundle, &err) == 0) {
		_cleanup_free_ char *group = group_of(spec, f->id);
		_cleanup_free_ char *sock = shim_socket_path(f->address, f->ns, group);
		/* The shim is gone (containerd runs delete only then), so is
		 * its UVM: the VMM dies with it (PR_SET_PDEATHSIG). What can
		 * remain is the socket and the sandbox's state directory. */
		if (socket_answers(sock)) {
			sp_log_warn("delete %s: the pod's shim still answers on %s: its state stays",
				    f->id, sock);
		} else {
			unlink(sock);
			_cleanup_free_ char *dir = NULL;
			if (!strcmp(group, f->id) && (dir = recorded_state_dir(bundle))) {
				_cleanup_free_ char *st = sp_xasprintf("%s/%s", dir, group);
				if (sp_rm_rf(st, &err) < 0)
					sp_log_warn("delete %s: %s", f->id, sp_err_msg(err));
				else
					sp_log_info("delete %s: state directory %s removed", f->id, st);
			}
		}
	} else {
		sp_log_warn("delete %s: %s", f->id, sp_err_msg(err));
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	Containerd__V1__Types__Timestamp ts = CONTAINERD__V1__TYPES__TIMESTAMP__INIT;
	ts.seconds = now.tv_sec;
	ts.nanos = (int32_t)now.tv_nsec;
	Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
	resp.pid = 0;
	resp.exit_status = 128 + SIGKILL;
	resp.exited_at = &ts;
	size_t len = containerd__task__v2__delete_response__get_packed_size(&resp);
	_cleanup_free_ uint8_t *buf = sp_xmalloc(len);
	containerd__task__v2__delete_response__pack(&resp, buf);
	if (sp_write_all(1, buf, len) < 0)
		return -1;
	return 0;
}
