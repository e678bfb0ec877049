/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-agent, minimal placeholder until the agent services land
 * (issue 8 replaces this file): as PID 1 it sets up the guest, prints the
 * ready line on the console with its timings, and serves Health.Check on
 * the agent's virtio-serial port. SIGTERM or SIGINT (ctrl-alt-del) powers
 * the guest off. */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/reboot.h>

#include "agent.pb-c.h"
#include "pid1.h"
#include "sealpod/log.h"
#include "sealpod/ttrpc.h"
#include "sealpod/vm.h"

static int health_check(void *user, const sp_ttrpc_call *call, uint8_t **out,
			size_t *out_len, char **status_msg)
{
	Sealpod__Agent__V1__HealthCheckResponse r =
		SEALPOD__AGENT__V1__HEALTH_CHECK_RESPONSE__INIT;
	r.status = "SERVING";
	r.agent_version = SEALPOD_VERSION;
	*out_len = protobuf_c_message_get_packed_size(&r.base);
	*out = sp_xmalloc(*out_len ? *out_len : 1);
	protobuf_c_message_pack(&r.base, *out);
	return SP_RPC_OK;
}

static const sp_ttrpc_method methods[] = {
	{"sealpod.agent.v1.Health", "Check", health_check},
};

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int sig = 0;
	sigwait(set, &sig);
	sp_log_info("signal %d: powering off", sig);
	if (getpid() == 1)
		sp_pid1_poweroff();
	exit(0);
}

int main(int argc, char **argv)
{
	sp_log_init("sealpod-agent", SP_LOG_INFO);
	bool pid1 = getpid() == 1;
	sp_pid1_stats st = {0};
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_free_ char *addr = NULL;
	if (pid1) {
		if (sp_pid1_setup(&st, &err) < 0) {
			sp_log_error("%s", sp_err_msg(err));
			sp_pid1_poweroff();
		}
		/* ctrl-alt-del sends SIGINT to PID 1 instead of rebooting. */
		reboot(RB_DISABLE_CAD);
	}
	/* Blocked before any thread starts, so only signal_thread sees them. */
	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (sp_reaper_start(&err) < 0)
		goto fail;
	pthread_t th;
	pthread_create(&th, NULL, signal_thread, &set);

	const char *port = argc > 1 ? argv[1] : NULL; /* outside a VM: a path */
	char *dev = NULL;
	if (!port && sp_pid1_wait_port(SP_VM_AGENT_PORT, 5 * SP_VM_SEC, &dev, &err) < 0)
		goto fail;
	if (!port)
		port = dev;
	int fd = -1;
	addr = sp_xasprintf("serial:%s", port);
	if (sp_ttrpc_dial(&fd, addr, 0, &err) < 0)
		goto fail;
	sp_ttrpc_server *srv = sp_ttrpc_server_new(methods, SP_ARRAY_LEN(methods), NULL, NULL);
	if (sp_ttrpc_server_add_stream(srv, fd, port, &err) < 0)
		goto fail;
	uint64_t total = 0, used = sp_pid1_mem_used_kb(&total);
	/* One line the host's benchmarks parse. */
	printf(SP_VM_READY_LINE " kernel_ms=%llu setup_ms=%llu modules=%u "
	       "mem_used_kb=%llu mem_total_kb=%llu uptime_ms=%llu port=%s\n",
	       (unsigned long long)st.kernel_ms, (unsigned long long)st.setup_ms,
	       st.modules_loaded, (unsigned long long)used, (unsigned long long)total,
	       (unsigned long long)(pid1 ? sp_pid1_uptime_ms() : 0), port);
	fflush(stdout);
	if (sp_ttrpc_server_run(srv, &err) < 0)
		goto fail;
	sp_ttrpc_server_free(srv);
	free(dev);
	return 0;
fail:
	sp_log_error("%s", sp_err_msg(err));
	if (pid1)
		sp_pid1_poweroff();
	return 1;
}
