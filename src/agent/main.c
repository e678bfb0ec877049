/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-agent, minimal placeholder until the agent services land
 * (issue 8 replaces this file): as PID 1 it sets up the guest, prints the
 * ready line on the console with its timings, and waits; SIGTERM or
 * SIGINT (ctrl-alt-del) powers the guest off. */
#include <signal.h>
#include <string.h>
#include <sys/reboot.h>

#include "pid1.h"
#include "sealpod/log.h"
#include "sealpod/vm.h"

int main(int argc, char **argv)
{
	sp_log_init("sealpod-agent", SP_LOG_INFO);
	bool pid1 = getpid() == 1;
	sp_pid1_stats st = {0};
	if (pid1) {
		_cleanup_err_ sp_err *err = NULL;
		if (sp_pid1_setup(&st, &err) < 0) {
			sp_log_error("%s", sp_err_msg(err));
			sp_pid1_poweroff();
		}
		/* ctrl-alt-del sends SIGINT to PID 1 instead of rebooting. */
		reboot(RB_DISABLE_CAD);
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	_cleanup_err_ sp_err *err = NULL;
	if (sp_reaper_start(&err) < 0) {
		sp_log_error("%s", sp_err_msg(err));
		if (pid1)
			sp_pid1_poweroff();
		return 1;
	}
	char *port = NULL;
	if (pid1 && sp_pid1_wait_port(SP_VM_AGENT_PORT, 2 * SP_VM_SEC, &port, &err) < 0)
		sp_log_warn("%s", sp_err_msg(err));
	uint64_t total = 0, used = sp_pid1_mem_used_kb(&total);
	/* One line the host's launcher and benchmarks parse. */
	printf(SP_VM_READY_LINE " kernel_ms=%llu setup_ms=%llu modules=%u "
	       "mem_used_kb=%llu mem_total_kb=%llu port=%s\n",
	       (unsigned long long)st.kernel_ms, (unsigned long long)st.setup_ms,
	       st.modules_loaded, (unsigned long long)used, (unsigned long long)total,
	       port ? port : "none");
	fflush(stdout);
	free(port);
	if (!pid1 && !(argc > 1 && !strcmp(argv[1], "--wait")))
		return 0;
	int sig = 0;
	sigwait(&set, &sig);
	sp_log_info("signal %d: powering off", sig);
	if (pid1)
		sp_pid1_poweroff();
	return 0;
}
