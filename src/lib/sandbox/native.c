/* SPDX-License-Identifier: Apache-2.0 */
/* The "native" backend: the guest agent as a host process on a unix
 * socket. No isolation at all; it exists so that the shim's containerd
 * side can be tested without booting a UVM (docs/shim.md). */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/image.h"
#include "sandbox-internal.h"

typedef struct native {
	pid_t pid;
	bool reaped;
	sp_sandbox_psp *psp;
} native;

static bool native_dead(sp_sandbox *sb)
{
	native *n = sb->be_data;
	if (!n || n->pid <= 0 || n->reaped)
		return true;
	int st;
	pid_t r = waitpid(n->pid, &st, WNOHANG);
	if (r == n->pid || (r < 0 && errno == ECHILD)) {
		n->reaped = true;
		return true;
	}
	return false;
}

static int native_launch(sp_sandbox *sb, sp_err **err)
{
	native *n = sp_xzalloc(sizeof(*n));
	sb->be_data = n;
	_cleanup_free_ char *sock = sp_xasprintf("%s/agent.sock", sb->run_dir);
	_cleanup_free_ char *listen = sp_xasprintf("unix:%s", sock);
	_cleanup_free_ char *state = sp_xasprintf("%s/agent", sb->run_dir);
	_cleanup_free_ char *log = sp_xasprintf("%s/agent.log", sb->run_dir);
	_cleanup_free_ char *psp_sock = sp_xasprintf("%s/psp.sock", sb->run_dir);
	_cleanup_free_ char *psp_listen = sp_xasprintf("unix:%s", psp_sock);
	_cleanup_free_ char *tee = sp_xasprintf("sim:%s", psp_sock);
	/* The agent accepts a policy only if its hash is HOST_DATA in a
	 * report from its TEE: here the sim PSP, with the policy's hash. */
	if (sp_sandbox_psp_start(&n->psp, sb, psp_listen, err) < 0)
		return SP_ERR_STATE;
	const char *argv[20];
	size_t a = 0;
	argv[a++] = sb->cfg.agent;
	argv[a++] = "--listen";
	argv[a++] = listen;
	argv[a++] = "--tee";
	argv[a++] = tee;
	argv[a++] = "--state-dir";
	argv[a++] = state;
	argv[a++] = "--attest";
	argv[a++] = "none";
	_cleanup_free_ char *disk = sb->image_disk
		? sp_xasprintf("tar:%s", sp_image_disk_path(sb->image_disk)) : NULL;
	if (sb->cfg.image_store || disk) {
		argv[a++] = "--image-store";
		argv[a++] = disk ? disk : sb->cfg.image_store;
	}
	if (sb->cfg.rootfs_dir) {
		argv[a++] = "--rootfs-dir";
		argv[a++] = sb->cfg.rootfs_dir;
	}
	argv[a] = NULL;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return sp_error_sys(err, errno, "fork");
	if (pid == 0) {
		/* Die with the sandbox thread, like a VMM would. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		setpgid(0, 0);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0)
			dup2(nul, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	n->pid = pid;
	sb->pid = pid;
	sb->agent_addr = sp_xasprintf("unix:%s", sock);
	if (sp_sandbox_wait_agent(sb, sb->agent_addr,
				  (uint64_t)sb->cfg.boot_timeout_s * 1000000000ull,
				  NULL, err) < 0) {
		_cleanup_free_ uint8_t *text = NULL;
		size_t len = 0;
		sp_read_file(&text, &len, log, 8192, NULL);
		return sp_error_wrap(err, "native agent %s (log: %s)", sb->cfg.agent,
				     text ? (char *)text : "");
	}
	return 0;
}

static void native_teardown(sp_sandbox *sb)
{
	native *n = sb->be_data;
	if (!n)
		return;
	if (n->pid > 0 && !n->reaped) {
		kill(n->pid, SIGTERM);
		for (int i = 0; i < 30 && !native_dead(sb); i++)
			usleep(100 * 1000);
		if (!native_dead(sb)) {
			kill(-n->pid, SIGKILL);
			kill(n->pid, SIGKILL);
			int st;
			sp_waitpid(n->pid, &st, 0);
			n->reaped = true;
		}
	}
	/* The agent's process group: container processes it left behind. */
	if (n->pid > 0)
		kill(-n->pid, SIGKILL);
	sp_sandbox_psp_stop(n->psp);
	free(n);
	sb->be_data = NULL;
}

const sp_sandbox_backend sp_sandbox_native_backend = {
	.name = "native",
	.launch = native_launch,
	.dead = native_dead,
	.teardown = native_teardown,
};
