/* SPDX-License-Identifier: Apache-2.0 */
/* Starting, watching and stopping the QEMU process of one UVM. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "sealpod/vm.h"
#include "vm/vm-internal.h"
#include "agent.pb-c.h"

#define QMP_START_TIMEOUT (30 * SP_VM_SEC)

struct sp_vm {
	pid_t pid;           /* 0 once reaped */
	int wait_status;
	bool exited;
	int accel;
	char *run_dir;
	bool own_run_dir;    /* created by us: removed whole */
	char *qmp_path, *agent_path, *agent_addr, *simpsp_path;
	char *console_path, *qemu_log_path;
	char *console_copy;  /* cfg.console_log */
	sp_qmp *qmp;
	uint64_t t_start, qmp_ms, ready_ms;
	bool ready;
	const volatile int *cancel;
};

static char *file_tail(const char *path, size_t nlines)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sp_xstrdup("");
	struct stat st;
	size_t want = 64 * 1024;
	off_t start = 0;
	if (fstat(fd, &st) == 0 && st.st_size > (off_t)want)
		start = st.st_size - (off_t)want;
	char *buf = sp_xmalloc(want + 1);
	ssize_t n = pread(fd, buf, want, start);
	close(fd);
	if (n < 0)
		n = 0;
	/* Drop CRs, NULs and terminal escapes (the firmware clears the
	 * screen) so the text prints cleanly in an error. */
	size_t len = 0;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == 0x1b) {
			if (i + 1 < n && buf[i + 1] == '[') {
				i += 2;
				while (i < n && !((buf[i] >= 'A' && buf[i] <= 'Z') ||
						  (buf[i] >= 'a' && buf[i] <= 'z')))
					i++;
			} else {
				i++;
			}
			continue;
		}
		if (buf[i] != '\r' && buf[i] != 0)
			buf[len++] = buf[i];
	}
	while (len && buf[len - 1] == '\n')
		len--;
	buf[len] = 0;
	size_t seen = 0;
	size_t i = len;
	while (i > 0) {
		if (buf[i - 1] == '\n' && ++seen == nlines)
			break;
		i--;
	}
	char *out = sp_xstrdup(buf + i);
	free(buf);
	return out;
}

char *sp_vm_console_tail(const sp_vm *vm, size_t nlines)
{
	return file_tail(vm->console_path, nlines);
}

static void describe_status(char *buf, size_t n, int status)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, n, "ended (status 0x%x)", status);
}

/* Reaps QEMU if it has exited. */
static bool reap(sp_vm *vm, int flags)
{
	if (vm->exited)
		return true;
	if (vm->pid <= 0)
		return true;
	int status;
	pid_t r = sp_waitpid(vm->pid, &status, flags);
	if (r == vm->pid || (r < 0 && errno == ECHILD)) {
		vm->exited = true;
		vm->wait_status = r == vm->pid ? status : 0;
		vm->pid = 0;
		return true;
	}
	return false;
}

bool sp_vm_running(sp_vm *vm)
{
	return !reap(vm, WNOHANG);
}

/* The console's last lines; when the kernel panicked, from the panic's
 * own line on (the stack trace after it can be longer than any fixed
 * tail), at most 80 lines, so the reason is always shown. */
static char *console_excerpt(const sp_vm *vm)
{
	char *tail = sp_vm_console_tail(vm, 200);
	char *panic = NULL;
	for (char *p = strstr(tail, "Kernel panic"); p; p = strstr(p + 1, "Kernel panic"))
		panic = p;
	char *from = tail;
	if (panic) {
		while (panic > tail && panic[-1] != '\n')
			panic--;
		from = panic;
	} else {
		/* The last 40 lines. */
		size_t seen = 0;
		char *q = tail + strlen(tail);
		while (q > tail && !(q[-1] == '\n' && ++seen == 40))
			q--;
		from = q;
	}
	size_t lines = 0;
	char *end = from;
	while (*end && lines < 80)
		if (*end++ == '\n')
			lines++;
	char *out = sp_xstrndup(from, (size_t)(end - from));
	free(tail);
	return out;
}

static int died_error(sp_vm *vm, const char *when, sp_err **err)
{
	char how[128];
	describe_status(how, sizeof(how), vm->wait_status);
	_cleanup_free_ char *qlog = file_tail(vm->qemu_log_path, 10);
	_cleanup_free_ char *con = console_excerpt(vm);
	return sp_error(err, SP_ERR_STATE,
			"QEMU %s %s\n--- QEMU's messages (%s):\n%s\n"
			"--- last lines of the guest console (%s):\n%s",
			how, when, vm->qemu_log_path, *qlog ? qlog : "(none)",
			vm->console_path, *con ? con : "(empty)");
}

static char *default_run_dir(sp_err **err)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (!base || !*base || access(base, W_OK) < 0 || strlen(base) > 60)
		base = getenv("TMPDIR");
	if (!base || !*base || strlen(base) > 60)
		base = "/tmp";
	char *tmpl = sp_xasprintf("%s/sealpod-vm-XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		sp_error_sys(err, errno, "create a run directory under `%s`", base);
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

static void remove_files(sp_vm *vm)
{
	if (!vm->run_dir)
		return;
	if (vm->console_copy) {
		uint8_t *data = NULL;
		size_t len;
		if (sp_read_file(&data, &len, vm->console_path, 64u << 20, NULL) == 0) {
			if (sp_write_file_atomic(vm->console_copy, data, len, 0644, NULL) < 0)
				sp_log_warn("could not copy the console to %s", vm->console_copy);
			free(data);
		}
	}
	if (vm->own_run_dir) {
		_cleanup_err_ sp_err *e = NULL;
		if (sp_rm_rf(vm->run_dir, &e) < 0)
			sp_log_warn("removing the VM run directory: %s", sp_err_msg(e));
	} else {
		const char *files[] = {vm->qmp_path, vm->agent_path, vm->simpsp_path,
				       vm->console_path, vm->qemu_log_path};
		for (size_t i = 0; i < SP_ARRAY_LEN(files); i++)
			if (files[i])
				unlink(files[i]);
	}
}

int sp_vm_stop(sp_vm *vm, uint64_t grace_ns, int *status)
{
	if (!vm)
		return 0;
	if (!reap(vm, WNOHANG)) {
		bool asked = false;
		if (vm->qmp && grace_ns > 0) {
			_cleanup_err_ sp_err *e = NULL;
			asked = sp_qmp_execute(vm->qmp, "quit", NULL, NULL,
					       grace_ns < SP_VM_SEC ? grace_ns : SP_VM_SEC,
					       &e) == 0;
			if (!asked)
				sp_log_debug("QMP quit: %s", sp_err_msg(e));
		}
		uint64_t deadline = sp_now_ns() + (asked ? grace_ns : 0);
		while (!reap(vm, WNOHANG) && sp_now_ns() < deadline)
			poll(NULL, 0, 10);
		if (!reap(vm, WNOHANG)) {
			kill(vm->pid, SIGKILL);
			reap(vm, 0);
		}
	}
	sp_qmp_close(vm->qmp);
	vm->qmp = NULL;
	if (status)
		*status = vm->wait_status;
	return 0;
}

void sp_vm_free(sp_vm *vm)
{
	if (!vm)
		return;
	sp_vm_stop(vm, 0, NULL);
	remove_files(vm);
	free(vm->run_dir);
	free(vm->qmp_path);
	free(vm->agent_path);
	free(vm->agent_addr);
	free(vm->simpsp_path);
	free(vm->console_path);
	free(vm->qemu_log_path);
	free(vm->console_copy);
	free(vm);
}

static void child_exec(char **argv, int logfd, pid_t parent)
{
	/* QEMU must not outlive its launcher. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	/* Its own process group: a terminal's ^C reaches the launcher,
	 * which then stops QEMU in order. */
	setpgid(0, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int devnull = open("/dev/null", O_RDONLY);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
		_exit(127);
	execvp(argv[0], argv);
	dprintf(2, "sealpod: could not run `%s`: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int sp_vm_start(sp_vm **out, const sp_vm_config *cfg, sp_err **err)
{
	*out = NULL;
	if (cfg->version != SP_VM_CONFIG_VERSION)
		return sp_error(err, SP_ERR_INVALID,
				"sp_vm_config version %u is not %u; call sp_vm_config_init()",
				cfg->version, SP_VM_CONFIG_VERSION);
	const char *files[] = {cfg->kernel, cfg->initrd};
	for (size_t i = 0; i < SP_ARRAY_LEN(files); i++)
		if (files[i] && access(files[i], R_OK) < 0)
			return sp_error_sys(err, errno,
					    "guest %s `%s`; build the guest image with "
					    "`sealpod image build`",
					    i == 0 ? "kernel" : "initrd", files[i]);
	_cleanup_strv_ char **argv = NULL;
	_cleanup_close_ int logfd = -1;
	sp_vm *vm = sp_xzalloc(sizeof(*vm));
	vm->t_start = sp_now_ns();
	vm->accel = sp_vm_resolve_accel(cfg->accel);
	if (cfg->run_dir) {
		struct stat st;
		if (stat(cfg->run_dir, &st) < 0) {
			if (sp_mkdir_p(cfg->run_dir, 0700, err) < 0)
				goto fail;
			vm->own_run_dir = true;
		}
		vm->run_dir = sp_xstrdup(cfg->run_dir);
	} else {
		vm->run_dir = default_run_dir(err);
		if (!vm->run_dir)
			goto fail;
		vm->own_run_dir = true;
	}
	vm->qmp_path = sp_xasprintf("%s/qmp.sock", vm->run_dir);
	vm->agent_path = sp_xasprintf("%s/agent.sock", vm->run_dir);
	vm->agent_addr = sp_xasprintf("serial:%s", vm->agent_path);
	if (cfg->tee == SP_VM_TEE_SIM)
		vm->simpsp_path = sp_xasprintf("%s/simpsp.sock", vm->run_dir);
	vm->console_path = sp_xasprintf("%s/console.log", vm->run_dir);
	vm->qemu_log_path = sp_xasprintf("%s/qemu.log", vm->run_dir);
	if (cfg->console_log)
		vm->console_copy = sp_xstrdup(cfg->console_log);

	if (sp_vm_build_argv(&argv, cfg, vm->run_dir, vm->accel, err) < 0)
		goto fail;
	if (sp_log_get_level() >= SP_LOG_DEBUG) {
		sp_buf b = SP_BUF_INIT;
		for (char **a = argv; *a; a++)
			sp_buf_printf(&b, "%s%s", a == argv ? "" : " ", *a);
		sp_buf_terminate(&b);
		sp_log_debug("starting %s", (char *)b.data);
		sp_buf_free(&b);
	}
	logfd = open(vm->qemu_log_path,
		     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		sp_error_sys(err, errno, "create `%s`", vm->qemu_log_path);
		goto fail;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		sp_error_sys(err, errno, "fork for QEMU");
		goto fail;
	}
	if (pid == 0)
		child_exec(argv, logfd, parent);
	vm->pid = pid;
	sp_log_debug("QEMU pid %d (%s), run directory %s", (int)pid,
		     sp_vm_accel_name(vm->accel), vm->run_dir);

	/* QEMU creates its sockets during start-up: retry until it answers,
	 * noticing when it dies instead. */
	uint64_t deadline = vm->t_start + QMP_START_TIMEOUT;
	for (;;) {
		if (reap(vm, WNOHANG)) {
			died_error(vm, "while starting", err);
			goto fail;
		}
		_cleanup_err_ sp_err *e = NULL;
		if (access(vm->qmp_path, F_OK) == 0 &&
		    sp_qmp_connect(&vm->qmp, vm->qmp_path, 5 * SP_VM_SEC, &e) == 0)
			break;
		if (sp_now_ns() >= deadline) {
			sp_error(err, SP_ERR_TIMEOUT,
				 "QEMU's monitor socket `%s` did not answer within %llu s: %s",
				 vm->qmp_path,
				 (unsigned long long)(QMP_START_TIMEOUT / SP_VM_SEC),
				 e ? sp_err_msg(e) : "not created");
			goto fail;
		}
		poll(NULL, 0, 10);
	}
	vm->qmp_ms = (sp_now_ns() - vm->t_start) / 1000000;
	*out = vm;
	return 0;
fail:
	sp_vm_free(vm);
	return sp_error_wrap(err, "starting the UVM");
}

/* One Health.Check on the agent port over *c (connected on first use; the
 * client redials by itself after a transport error): true when it answers SERVING. */
static bool health_check(sp_vm *vm, sp_ttrpc_client **c, uint64_t timeout_ns,
			 char **why)
{
	Sealpod__Agent__V1__CheckRequest req = SEALPOD__AGENT__V1__CHECK_REQUEST__INIT;
	uint8_t buf[16];
	size_t len = protobuf_c_message_get_packed_size(&req.base);
	protobuf_c_message_pack(&req.base, buf);
	_cleanup_err_ sp_err *e = NULL;
	_cleanup_free_ uint8_t *out = NULL;
	size_t out_len = 0;
	int code = SP_RPC_OK;
	if (!*c && sp_ttrpc_client_connect(c, vm->agent_addr, timeout_ns, &e) < 0) {
		free(*why);
		*why = sp_xstrdup(sp_err_msg(e));
		return false;
	}
	if (sp_ttrpc_client_call(*c, "sealpod.agent.v1.Health", "Check", buf, len, NULL, 0,
				 timeout_ns, &out, &out_len, &code, &e) < 0) {
		free(*why);
		*why = sp_xstrdup(sp_err_msg(e));
		return false;
	}
	Sealpod__Agent__V1__HealthCheckResponse *h =
		sealpod__agent__v1__health_check_response__unpack(NULL, out_len, out);
	bool ok = h && h->status && !strcmp(h->status, "SERVING");
	if (!ok) {
		free(*why);
		*why = sp_xasprintf("Health.Check answered `%s`",
				    h && h->status ? h->status : "(unparsable)");
	}
	if (h)
		sealpod__agent__v1__health_check_response__free_unpacked(h, NULL);
	return ok;
}

int sp_vm_wait_ready(sp_vm *vm, uint64_t timeout_ns, sp_err **err)
{
	if (vm->ready)
		return 0;
	uint64_t deadline = sp_now_ns() + timeout_ns;
	_cleanup_free_ char *why = NULL;
	/* One connection for the whole wait: a QEMU chardev socket serves one
	 * client at a time, and each reconnection makes the guest reopen its
	 * port. It is closed before returning, for the caller's own client. */
	sp_ttrpc_client *c = NULL;
	int r = 0;
	for (;;) {
		if (reap(vm, WNOHANG)) {
			r = died_error(vm, "before the guest agent was ready", err);
			break;
		}
		if (vm->cancel && *vm->cancel) {
			r = sp_error(err, SP_ERR_STATE,
				     "interrupted while waiting for the guest agent");
			break;
		}
		uint64_t now = sp_now_ns();
		if (now >= deadline) {
			_cleanup_free_ char *con = sp_vm_console_tail(vm, 20);
			r = sp_error(err, SP_ERR_TIMEOUT,
					"the guest agent did not answer Health.Check on %s "
					"within %llu ms (accelerator %s; last attempt: %s); "
					"last lines of the guest console (%s):\n%s",
					vm->agent_path, (unsigned long long)(timeout_ns / 1000000),
					sp_vm_accel_name(vm->accel), why ? why : "none",
					vm->console_path, *con ? con : "(empty)");
			break;
		}
		/* Short attempts, so that a dead QEMU or a cancel is noticed;
		 * until the guest opens its port, the request just waits in
		 * QEMU, and a late answer to an abandoned call is discarded. */
		uint64_t slice = deadline - now < 500000000ull ? deadline - now : 500000000ull;
		if (health_check(vm, &c, slice, &why))
			break;
		poll(NULL, 0, 20);
	}
	sp_ttrpc_client_free(c);
	if (r < 0)
		return r;
	vm->ready = true;
	vm->ready_ms = (sp_now_ns() - vm->t_start) / 1000000;
	return 0;
}

int sp_vm_status(sp_vm *vm, char **status, sp_err **err)
{
	if (!vm->qmp)
		return sp_error(err, SP_ERR_STATE, "the VM is stopped");
	_cleanup_free_ char *ret = NULL;
	if (sp_qmp_execute(vm->qmp, "query-status", NULL, &ret, 5 * SP_VM_SEC, err) < 0)
		return SP_ERR_PROTOCOL;
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_parse(&j, ret, strlen(ret), "query-status answer", err) < 0)
		return SP_ERR_PARSE;
	const char *s = NULL;
	if (sp_json_get_string(j, "status", true, &s, "query-status", err) < 0)
		return SP_ERR_PARSE;
	*status = sp_xstrdup(s);
	return 0;
}

void sp_vm_set_cancel(sp_vm *vm, const volatile int *flag)
{
	vm->cancel = flag;
}

const char *sp_vm_agent_address(const sp_vm *vm)
{
	return vm->agent_addr;
}
const char *sp_vm_simpsp_socket(const sp_vm *vm)
{
	return vm->simpsp_path;
}
const char *sp_vm_run_dir(const sp_vm *vm)
{
	return vm->run_dir;
}
const char *sp_vm_console_path(const sp_vm *vm)
{
	return vm->console_path;
}
pid_t sp_vm_pid(const sp_vm *vm)
{
	return vm->pid;
}
int sp_vm_accel(const sp_vm *vm)
{
	return vm->accel;
}
uint64_t sp_vm_qmp_ms(const sp_vm *vm)
{
	return vm->qmp_ms;
}
uint64_t sp_vm_ready_ms(const sp_vm *vm)
{
	return vm->ready_ms;
}
