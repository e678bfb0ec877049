/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-agent: the guest agent. As PID 1 of the UVM it sets the guest
 * up (pid1.c), then serves the agent API on the virtio-serial port
 * "sealpod.agent" (and vsock port 1024 when AF_VSOCK works). Run by hand
 * (not PID 1) it serves on the unix sockets given with --listen: the
 * native mode the tests use. The services live in src/lib/agent. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/reboot.h>

#include "pid1.h"
#include "sealpod/agent.h"
#include "sealpod/log.h"
#include "sealpod/tee.h"
#include "sealpod/ttrpc.h"
#include "sealpod/vm.h"

#define MAX_LISTEN 8
#define VSOCK_AGENT "vsock:any:1024"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod-agent [--listen unix:PATH]... [--tee sim:PATH|snp|auto|none]\n"
		"                     [--state-dir DIR] [--image-store DIR] [--rootfs-dir DIR]\n"
		"                     [--attest IP:PORT|none]\n"
		"                     [--workers N] [--log-level LEVEL]\n"
		"As PID 1 it serves the virtio-serial port \"%s\" and %s.\n",
		SP_VM_AGENT_PORT, VSOCK_AGENT);
}

static int tee_report(void *ctx, const uint8_t rd[64], uint8_t **report,
		      size_t *report_len, uint8_t **certs, size_t *certs_len,
		      sp_err **err)
{
	return sp_tee_get_report(ctx, rd, report, report_len, certs, certs_len, err);
}

static void on_exit_status(void *user, pid_t pid, int status)
{
	sp_agent_child_exited(user, pid, status);
}

static void watch_child(sp_agent *agent, pid_t pid)
{
	sp_reaper_watch(pid, on_exit_status, agent);
}

struct sigctx {
	sigset_t set;
	sp_ttrpc_server *server;
	sp_agent *agent;
};

static void *signal_thread(void *arg)
{
	struct sigctx *s = arg;
	int sig = 0;
	sigwait(&s->set, &sig);
	sp_log_info("signal %d: shutting down", sig);
	sp_agent_shutdown(s->agent);
	sp_ttrpc_server_shutdown(s->server);
	return NULL;
}

int main(int argc, char **argv)
{
	/* glibc gives every thread that allocates an arena of its own (up to
	 * 8 per core); with 96 workers taking turns that is megabytes of
	 * half-used heaps in a guest whose memory is the pod's overhead. Two
	 * arenas keep the agent's RSS flat under load (test_agent_load); its
	 * workers mostly wait, so contention on them is low. */
	mallopt(M_ARENA_MAX, 2);
	sp_log_init("sealpod-agent", SP_LOG_INFO);
	const char *lvl = getenv("SEALPOD_LOG");
	if (lvl && sp_log_level_parse(lvl) >= 0)
		sp_log_set_level(sp_log_level_parse(lvl));
	bool pid1 = getpid() == 1;
	const char *listen[MAX_LISTEN];
	size_t n_listen = 0;
	const char *tee_spec = pid1 ? "auto" : "none";
	const char *attest = pid1 ? SP_AGENT_ATTEST_ADDR : NULL;
	sp_agent_opts o = {.version = 1, .native = !pid1};
	/* 96: one connection still runs 63 blocking calls at once (as many
	 * as the 64 workers it could once take all of), 12 are kept for
	 * control requests. */
	unsigned workers = 96;
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"tee", required_argument, NULL, 't'},
		{"state-dir", required_argument, NULL, 's'},
		{"image-store", required_argument, NULL, 'i'},
		{"rootfs-dir", required_argument, NULL, 'r'},
		{"attest", required_argument, NULL, 'a'},
		{"workers", required_argument, NULL, 'w'},
		{"log-level", required_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listen == MAX_LISTEN) {
				fprintf(stderr, "sealpod-agent: at most %d --listen\n", MAX_LISTEN);
				return 2;
			}
			listen[n_listen++] = optarg;
			break;
		case 't': tee_spec = optarg; break;
		case 's': o.state_dir = optarg; break;
		case 'i': o.image_store = optarg; break;
		case 'r': o.rootfs_dir = optarg; break;
		case 'a': attest = strcmp(optarg, "none") ? optarg : NULL; break;
		case 'w': {
			char *end;
			unsigned long w = strtoul(optarg, &end, 10);
			if (*end || w < 4 || w > 1024) {
				fprintf(stderr, "sealpod-agent: --workers must be 4..1024\n");
				return 2;
			}
			workers = (unsigned)w;
			break;
		}
		case 'v':
			if (sp_log_level_parse(optarg) < 0) {
				fprintf(stderr, "sealpod-agent: unknown log level `%s`\n", optarg);
				return 2;
			}
			sp_log_set_level(sp_log_level_parse(optarg));
			break;
		case 'h': usage(stdout); return 0;
		default:
			/* As PID 1 the arguments are the kernel command line's
			 * words the kernel did not know: exiting would panic
			 * the guest over a typo in `image build --append`. */
			if (pid1)
				break;
			usage(stderr);
			return 2;
		}
	}
	for (int i = optind; pid1 && i < argc; i++)
		fprintf(stderr, "sealpod-agent: ignoring `%s` from the kernel command line\n",
			argv[i]);
	if (!pid1 && (optind != argc || n_listen == 0)) {
		usage(stderr);
		return 2;
	}
	if (o.rootfs_dir && pid1) {
		fprintf(stderr, "sealpod-agent: --rootfs-dir is a native-mode test feature\n");
		return 2;
	}

	_cleanup_err_ sp_err *err = NULL;
	sp_pid1_stats st = {0};
	if (pid1) {
		if (sp_pid1_setup(&st, &err) < 0) {
			sp_log_error("%s", sp_err_msg(err));
			sp_pid1_poweroff();
		}
		/* ctrl-alt-del sends SIGINT to PID 1 instead of rebooting. */
		reboot(RB_DISABLE_CAD);
	}
	/* Before any thread: every thread inherits these blocked signals. */
	struct sigctx sc;
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	sigprocmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (sp_reaper_start(&err) < 0)
		goto fail;

	sp_tee *tee = NULL;
	sp_agent_tee at = {0};
	if (strcmp(tee_spec, "none") != 0) {
		if (sp_tee_open(&tee, tee_spec, &err) < 0)
			goto fail;
		at.kind = sp_tee_kind(tee);
		at.get_report = tee_report;
		at.ctx = tee;
	}
	o.tee = tee ? &at : NULL;
	o.watch_child = watch_child;
	o.attest_listen = attest;
	sp_agent *agent = NULL;
	if (sp_agent_new(&agent, &o, &err) < 0)
		goto fail;

	const sp_ttrpc_method *methods;
	size_t n_methods;
	sp_agent_methods(agent, &methods, &n_methods);
	/* Scheduling (docs/agent.md): a few workers are kept for control
	 * requests (health, stop, remove), one connection runs at most three
	 * quarters of the others, and a closed connection's blocked calls
	 * are cancelled. */
	unsigned reserved = workers / 8 ? workers / 8 : 1;
	sp_ttrpc_server_opts so = {.version = 1, .workers = workers,
				   .reserved_workers = reserved,
				   .max_running_per_conn = (workers - reserved) * 3 / 4,
				   .on_cancel = sp_agent_on_cancel};
	sp_ttrpc_server *server = sp_ttrpc_server_new(methods, n_methods, agent, &so);
	for (size_t i = 0; i < n_listen; i++) {
		int fd;
		if (sp_ttrpc_listen(&fd, listen[i], &err) < 0 ||
		    sp_ttrpc_server_add_listener(server, fd, &err) < 0)
			goto fail;
		sp_log_info("listening on %s", listen[i]);
	}
	char *port = NULL;
	if (pid1) {
		if (sp_pid1_wait_port(SP_VM_AGENT_PORT, 5 * SP_VM_SEC, &port, &err) < 0) {
			sp_log_warn("%s", sp_err_msg(err));
			sp_err_clear(&err);
		} else {
			int fd;
			_cleanup_free_ char *addr = sp_xasprintf("serial:%s", port);
			if (sp_ttrpc_dial(&fd, addr, 0, &err) < 0 ||
			    sp_ttrpc_server_add_stream(server, fd, port, &err) < 0) {
				sp_log_warn("%s", sp_err_msg(err));
				sp_err_clear(&err);
			}
		}
		int vfd;
		if (sp_ttrpc_listen(&vfd, VSOCK_AGENT, &err) == 0) {
			if (sp_ttrpc_server_add_listener(server, vfd, &err) < 0)
				sp_log_warn("%s", sp_err_msg(err));
		} else {
			sp_log_debug("no vsock: %s", sp_err_msg(err));
		}
		sp_err_clear(&err);
	}
	uint64_t total = 0, used = sp_pid1_mem_used_kb(&total);
	/* One line the host's launcher and the benchmarks parse. */
	printf(SP_VM_READY_LINE " kernel_ms=%llu setup_ms=%llu modules=%u "
	       "mem_used_kb=%llu mem_total_kb=%llu uptime_ms=%llu port=%s\n",
	       (unsigned long long)st.kernel_ms, (unsigned long long)st.setup_ms,
	       st.modules_loaded, (unsigned long long)used,
	       (unsigned long long)total,
	       (unsigned long long)(pid1 ? sp_pid1_uptime_ms() : 0), port ? port : "none");
	fflush(stdout);
	free(port);

	sc.server = server;
	sc.agent = agent;
	pthread_t sigt;
	pthread_create(&sigt, NULL, signal_thread, &sc);
	pthread_detach(sigt);
	int rc = sp_ttrpc_server_run(server, &err);
	sp_ttrpc_server_free(server);
	sp_agent_free(agent);
	sp_tee_free(tee);
	if (rc < 0)
		sp_log_error("%s", sp_err_msg(err));
	if (pid1)
		sp_pid1_poweroff();
	return rc < 0 ? 1 : 0;
fail:
	sp_log_error("%s", sp_err_msg(err));
	if (pid1)
		sp_pid1_poweroff();
	return 1;
}
