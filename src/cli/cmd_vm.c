/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod vm`: boots the guest image on its own, for debugging the guest
 * and for benchmarks (bench/bench-boot). Pods are started by `sealpod run`
 * and the shim through the same launcher API (sealpod/vm.h). */
#include <getopt.h>
#include <signal.h>
#include <string.h>

#include "cli.h"
#include "sealpod/guest.h"
#include "sealpod/log.h"
#include "sealpod/vm.h"

static volatile int got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: sealpod vm boot [--image DIR] [--accel auto|kvm|tcg]\n"
		"         [--machine q35|microvm] [--mem MB] [--vcpus N] [--tee none|sim]\n"
		"         [--timeout SECONDS] [--run-dir DIR] [--console-log FILE] [--hold]\n"
		"       sealpod vm accel    (prints the accelerator `auto` resolves to)\n"
		"`boot` starts the UVM, waits for the agent's ready line, prints one JSON\n"
		"line of timings, then stops the VM (with --hold: on SIGINT/SIGTERM).\n");
}

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi,
		      unsigned *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || v < lo || v > hi) {
		fprintf(stderr, "sealpod vm: %s `%s` is not a number from %u to %u\n", opt,
			s, lo, hi);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static void print_ready(sp_vm *vm)
{
	_cleanup_free_ char *tail = sp_vm_console_tail(vm, 50);
	const char *ready = strstr(tail, SP_VM_READY_LINE);
	_cleanup_free_ char *line = ready ? sp_xstrndup(ready, strcspn(ready, "\r\n"))
					  : sp_xstrdup("");
	_cleanup_free_ char *status = NULL;
	_cleanup_err_ sp_err *err = NULL;
	if (sp_vm_status(vm, &status, &err) < 0)
		status = sp_xstrdup("unknown");
	printf("{\"accel\":\"%s\",\"qmp_ms\":%llu,\"ready_ms\":%llu,\"status\":\"%s\","
	       "\"ready_line\":\"%s\"}\n",
	       sp_vm_accel_name(sp_vm_accel(vm)), (unsigned long long)sp_vm_qmp_ms(vm),
	       (unsigned long long)sp_vm_ready_ms(vm), status, line);
	fflush(stdout);
}

static int vm_boot(int argc, char **argv)
{
	static const struct option opts[] = {
		{"image", required_argument, NULL, 'i'},
		{"accel", required_argument, NULL, 'a'},
		{"machine", required_argument, NULL, 'M'},
		{"mem", required_argument, NULL, 'm'},
		{"vcpus", required_argument, NULL, 'c'},
		{"tee", required_argument, NULL, 'T'},
		{"timeout", required_argument, NULL, 't'},
		{"run-dir", required_argument, NULL, 'r'},
		{"console-log", required_argument, NULL, 'l'},
		{"hold", no_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	_cleanup_free_ char *def_image = sp_guest_default_dir();
	const char *image = def_image;
	sp_vm_config cfg;
	sp_vm_config_init(&cfg);
	unsigned timeout_s = 120;
	bool hold = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': image = optarg; break;
		case 'a':
			if (!strcmp(optarg, "auto")) cfg.accel = SP_VM_ACCEL_AUTO;
			else if (!strcmp(optarg, "kvm")) cfg.accel = SP_VM_ACCEL_KVM;
			else if (!strcmp(optarg, "tcg")) cfg.accel = SP_VM_ACCEL_TCG;
			else {
				fprintf(stderr, "sealpod vm: --accel `%s` is not auto, kvm or tcg\n", optarg);
				return 2;
			}
			break;
		case 'M':
			if (!strcmp(optarg, "q35")) cfg.machine = SP_VM_MACHINE_Q35;
			else if (!strcmp(optarg, "microvm")) cfg.machine = SP_VM_MACHINE_MICROVM;
			else {
				fprintf(stderr, "sealpod vm: --machine `%s` is not q35 or microvm\n", optarg);
				return 2;
			}
			break;
		case 'T':
			if (!strcmp(optarg, "none")) cfg.tee = SP_VM_TEE_NONE;
			else if (!strcmp(optarg, "sim")) cfg.tee = SP_VM_TEE_SIM;
			else {
				fprintf(stderr, "sealpod vm: --tee `%s` is not none or sim\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (parse_uint("--mem", optarg, 64, 65536, &cfg.mem_mb) < 0)
				return 2;
			break;
		case 'c':
			if (parse_uint("--vcpus", optarg, 1, 255, &cfg.vcpus) < 0)
				return 2;
			break;
		case 't':
			if (parse_uint("--timeout", optarg, 1, 3600, &timeout_s) < 0)
				return 2;
			break;
		case 'r': cfg.run_dir = optarg; break;
		case 'l': cfg.console_log = optarg; break;
		case 'H': hold = true; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	_cleanup_err_ sp_err *err = NULL;
	sp_guest_image *img = NULL;
	if (sp_guest_image_load(&img, image, &err) < 0) {
		fprintf(stderr, "sealpod vm boot: %s\n", sp_err_msg(err));
		return 1;
	}
	cfg.kernel = img->kernel;
	cfg.initrd = img->initrd;
	cfg.cmdline = img->cmdline;

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	sp_vm *vm = NULL;
	int rc = 1;
	if (sp_vm_start(&vm, &cfg, &err) < 0) {
		fprintf(stderr, "sealpod vm boot: %s\n", sp_err_msg(err));
		goto out;
	}
	/* Machine-readable for tests: where things are, before waiting. */
	fprintf(stderr, "sealpod vm: qemu pid %d, run directory %s\n", (int)sp_vm_pid(vm),
		sp_vm_run_dir(vm));
	sp_vm_set_cancel(vm, &got_signal);
	if (sp_vm_wait_ready(vm, (uint64_t)timeout_s * SP_VM_SEC, &err) < 0) {
		fprintf(stderr, "sealpod vm boot: %s\n", sp_err_msg(err));
		goto out;
	}
	print_ready(vm);
	if (hold) {
		while (!got_signal && sp_vm_running(vm))
			usleep(100000);
	}
	rc = 0;
out:
	if (vm) {
		int st = 0;
		sp_vm_stop(vm, 3 * SP_VM_SEC, &st);
		sp_vm_free(vm);
	}
	sp_guest_image_free(img);
	return rc;
}

int cmd_vm(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "boot"))
		return vm_boot(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "accel")) {
		printf("%s\n", sp_vm_accel_name(sp_vm_resolve_accel(SP_VM_ACCEL_AUTO)));
		return 0;
	}
	usage();
	return 2;
}
