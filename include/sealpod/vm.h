/* SPDX-License-Identifier: Apache-2.0 */
/* The UVM launcher: starts one QEMU process per pod, wires its host-guest
 * channels (virtio-serial ports on unix sockets), captures its console,
 * waits for the guest agent, and tears everything down again.
 *
 * Typical use (`sealpod run`, the containerd shim):
 *
 *	sp_vm_config cfg;
 *	sp_vm_config_init(&cfg);             // defaults, cfg.version set
 *	cfg.kernel = img.kernel; cfg.initrd = img.initrd;
 *	cfg.cmdline = img.cmdline;           // from sp_guest_image_load()
 *	cfg.tee = SP_VM_TEE_SIM;             // adds the sim PSP port
 *	sp_vm *vm;
 *	if (sp_vm_start(&vm, &cfg, &err) < 0) ...
 *	// the sim PSP (host side) connects to sp_vm_simpsp_socket(vm)
 *	if (sp_vm_wait_ready(vm, 60 * SP_VM_SEC, &err) < 0) ...
 *	// ttRPC client: sp_ttrpc_client_connect(&c, sp_vm_agent_address(vm),
 *	// ...); one client at a time on the agent port
 *	...
 *	sp_vm_stop(vm, 5 * SP_VM_SEC);
 *	sp_vm_free(vm);                      // also stops it if still running
 *
 * Everything the VM creates on the host lives in one run directory (QMP,
 * agent and sim PSP sockets, console log, QEMU's stderr); sp_vm_free()
 * removes it (or, when the caller supplied run_dir, the files in it), and
 * kills QEMU if it still runs. QEMU gets PR_SET_PDEATHSIG=SIGKILL, so it
 * also dies when the thread that started it exits: start VMs from a
 * long-lived thread.
 *
 * Not thread-safe per sp_vm: one thread drives a VM at a time. */
#ifndef SEALPOD_VM_H
#define SEALPOD_VM_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_VM_SEC 1000000000ull
/* The virtio-serial port name of the agent's ttRPC channel. */
#define SP_VM_AGENT_PORT "sealpod.agent"
/* The line the guest agent writes on the console when it is ready, with
 * its timings (key=value); benchmarks read it. Readiness itself is
 * Health.Check answering on the agent port. */
#define SP_VM_READY_LINE "sealpod-agent: ready"

enum sp_vm_accel {
	SP_VM_ACCEL_AUTO = 0, /* KVM if it can run a guest here, else TCG */
	SP_VM_ACCEL_KVM = 1,
	SP_VM_ACCEL_TCG = 2,
};

enum sp_vm_machine {
	SP_VM_MACHINE_Q35 = 0,     /* PCI; the only choice for SEV-SNP */
	SP_VM_MACHINE_MICROVM = 1, /* virtio-mmio; no TEE */
};

enum sp_vm_tee {
	SP_VM_TEE_NONE = 0,
	SP_VM_TEE_SIM = 1, /* a sim PSP port (SP_SIM_PSP_PORT) on a socket */
	SP_VM_TEE_SNP = 2, /* sev-snp-guest, OVMF, kernel-hashes=on */
};

enum sp_vm_net_kind {
	SP_VM_NET_NONE = 0,
	SP_VM_NET_USER = 1, /* QEMU user networking (tests) */
	SP_VM_NET_TAP = 2,  /* a tap device the caller made (pods) */
};

/* A block device, read-only unless writable is set. */
typedef struct sp_vm_disk {
	const char *path;
	/* virtio-blk serial (the guest sees /sys/block/vdX/serial);
	 * [A-Za-z0-9._-], at most 20 characters; NULL = none. */
	const char *serial;
	bool writable;
} sp_vm_disk;

typedef struct sp_vm_net {
	int kind; /* sp_vm_net_kind */
	/* USER: hostfwd / guestfwd rules in QEMU's syntax, e.g.
	 * "tcp:127.0.0.1:8080-:80" and "tcp:10.0.2.100:80-cmd:..." */
	const char *const *hostfwd;
	size_t n_hostfwd;
	const char *const *guestfwd;
	size_t n_guestfwd;
	/* TAP: the interface name (created and configured by the caller). */
	const char *tap_ifname;
	/* "52:54:00:xx:xx:xx"; NULL = QEMU's default. */
	const char *mac;
} sp_vm_net;

#define SP_VM_CONFIG_VERSION 1

typedef struct sp_vm_config {
	unsigned version;   /* SP_VM_CONFIG_VERSION */
	const char *qemu;   /* NULL = "qemu-system-x86_64" from PATH */
	int accel;          /* sp_vm_accel */
	int machine;        /* sp_vm_machine */
	unsigned mem_mb;    /* default 256 */
	unsigned vcpus;     /* default 1 */
	const char *kernel; /* required */
	const char *initrd; /* required */
	const char *cmdline;
	const sp_vm_disk *disks;
	size_t n_disks;
	sp_vm_net net;
	int tee;            /* sp_vm_tee */
	/* SNP: 32 bytes placed in the report's HOST_DATA (the policy hash). */
	const uint8_t *host_data;
	size_t host_data_len;
	const char *ovmf;   /* SNP: firmware for -bios (OVMF built for SNP) */
	uint64_t snp_policy; /* SNP: guest policy; 0 = 0x30000 */
	/* Where sockets and logs go. NULL = a new directory under
	 * $XDG_RUNTIME_DIR or /tmp, removed by sp_vm_free(). Must be short:
	 * socket paths are limited to 107 bytes. */
	const char *run_dir;
	/* Copy of the console to this file as well (kept after teardown);
	 * NULL = the console lives only in the run directory. */
	const char *console_log;
	/* Extra QEMU arguments appended verbatim (debugging). */
	const char *const *extra_args;
	size_t n_extra_args;
	/* TCG translation cache in MiB; 0 = SP_VM_TCG_TB_MB. */
	unsigned tcg_tb_mb;
} sp_vm_config;

#define SP_VM_TCG_TB_MB 16

/* Fills defaults: version, mem 256, 1 vCPU, accel auto, q35. */
SP_PUBLIC void sp_vm_config_init(sp_vm_config *cfg);

/* The QEMU argument vector for cfg with sockets and logs in run_dir and
 * accelerator accel (KVM or TCG, already resolved), NULL-terminated, for
 * inspection and tests; sp_vm_start() uses the same function. */
SP_PUBLIC int sp_vm_build_argv(char ***out, const sp_vm_config *cfg,
			       const char *run_dir, int accel, sp_err **err);

/* Resolves SP_VM_ACCEL_AUTO: KVM only if /dev/kvm opens and a tiny guest
 * (64-bit, paging, a million-step loop) finishes within half a second in a child
 * process; otherwise TCG, with a log line saying why. The result is cached
 * for the process and, per host boot, in /run/sealpod or $TMPDIR. */
SP_PUBLIC int sp_vm_resolve_accel(int accel);
SP_PUBLIC const char *sp_vm_accel_name(int accel);

typedef struct sp_vm sp_vm;

/* Starts QEMU and returns once its QMP socket answers (the guest is then
 * booting). On failure nothing is left behind and err shows QEMU's
 * stderr. */
SP_PUBLIC int sp_vm_start(sp_vm **out, const sp_vm_config *cfg, sp_err **err);

/* Waits until the guest agent is ready, at most timeout_ns: ready means
 * sealpod.agent.v1.Health/Check answers SERVING on the agent port. Each
 * attempt connects and disconnects again (a QEMU chardev socket serves one
 * client at a time), so the caller can connect its own client after. If
 * QEMU exits or the time runs out, the error says so and carries the
 * console's last lines. */
SP_PUBLIC int sp_vm_wait_ready(sp_vm *vm, uint64_t timeout_ns, sp_err **err);
/* While *flag is nonzero (set from a signal handler, say),
 * sp_vm_wait_ready() gives up with SP_ERR_STATE ("interrupted"). */
SP_PUBLIC void sp_vm_set_cancel(sp_vm *vm, const volatile int *flag);

/* "serial:<run_dir>/agent.sock": the ttRPC address of the agent port. */
SP_PUBLIC const char *sp_vm_agent_address(const sp_vm *vm);
/* The unix socket of the sim PSP port (a sim PSP connects to it as a
 * client), or NULL when cfg.tee is not SP_VM_TEE_SIM. */
SP_PUBLIC const char *sp_vm_simpsp_socket(const sp_vm *vm);
SP_PUBLIC const char *sp_vm_run_dir(const sp_vm *vm);
SP_PUBLIC const char *sp_vm_console_path(const sp_vm *vm);
SP_PUBLIC pid_t sp_vm_pid(const sp_vm *vm);
/* The accelerator in use (KVM or TCG). */
SP_PUBLIC int sp_vm_accel(const sp_vm *vm);
/* Milliseconds from sp_vm_start() to QMP answering / to ready (0 until
 * known), for benchmarks. */
SP_PUBLIC uint64_t sp_vm_qmp_ms(const sp_vm *vm);
SP_PUBLIC uint64_t sp_vm_ready_ms(const sp_vm *vm);

/* The last nlines lines of the console (a new string, maybe empty). */
SP_PUBLIC char *sp_vm_console_tail(const sp_vm *vm, size_t nlines);

/* QMP "query-status": *status gets e.g. "running", "paused",
 * "shutdown" (new string). */
SP_PUBLIC int sp_vm_status(sp_vm *vm, char **status, sp_err **err);
/* True while the QEMU process exists (reaps it if it exited). */
SP_PUBLIC bool sp_vm_running(sp_vm *vm);

/* Stops the VM: QMP "quit", then SIGKILL once grace_ns has passed (or at
 * once when QMP does not answer). Idempotent. Returns QEMU's wait status
 * in *status if not NULL. */
SP_PUBLIC int sp_vm_stop(sp_vm *vm, uint64_t grace_ns, int *status);
/* Stops (no grace) if still running and removes the run directory. */
SP_PUBLIC void sp_vm_free(sp_vm *vm);

/* QMP, exposed for tools: connect to a QMP unix socket, negotiate
 * capabilities, and run commands. */
typedef struct sp_qmp sp_qmp;
SP_PUBLIC int sp_qmp_connect(sp_qmp **out, const char *path,
			     uint64_t timeout_ns, sp_err **err);
/* Runs {"execute": cmd, "arguments": args_json} (args_json may be NULL)
 * and returns the "return" member as JSON text in *ret (may be NULL).
 * Events arriving meanwhile are skipped. */
SP_PUBLIC int sp_qmp_execute(sp_qmp *q, const char *cmd, const char *args_json,
			     char **ret, uint64_t timeout_ns, sp_err **err);
SP_PUBLIC void sp_qmp_close(sp_qmp *q);

#endif
