/* SPDX-License-Identifier: Apache-2.0 */
/* The "vm" backend: one UVM per pod through the launcher (vm.h), with the
 * policy's SHA-256 as HOST_DATA (SNP host-data, or the sim PSP's). The
 * host image store, if configured, is the UVM's first disk (read-only,
 * untrusted: the guest verifies every blob against its digest). */
#include <string.h>

#include "sandbox/sandbox-config.h"
#include "sealpod/hash.h"
#include "sealpod/image.h"
#include "sealpod/log.h"
#include "sandbox-internal.h"

#if SP_SANDBOX_HAVE_VM
#include "sealpod/vm.h"

typedef struct vmstate {
	sp_vm *vm;
	sp_sandbox_psp *psp;
	uint8_t host_data[SP_SHA256_LEN];
} vmstate;

static int vm_launch(sp_sandbox *sb, sp_err **err)
{
	vmstate *v = sp_xzalloc(sizeof(*v));
	sb->be_data = v;
	const sp_runtime_config *c = &sb->cfg;
	sp_vm_config vc;
	sp_vm_config_init(&vc);
	vc.qemu = c->qemu;
	vc.accel = !strcmp(c->accel, "kvm") ? SP_VM_ACCEL_KVM
		 : !strcmp(c->accel, "tcg") ? SP_VM_ACCEL_TCG : SP_VM_ACCEL_AUTO;
	vc.mem_mb = (unsigned)c->memory_mib;
	vc.vcpus = c->vcpus;
	vc.kernel = c->kernel;
	vc.initrd = c->initrd;
	vc.cmdline = c->kernel_cmdline;
	vc.tee = !strcmp(c->tee, "snp") ? SP_VM_TEE_SNP
	       : !strcmp(c->tee, "sim") ? SP_VM_TEE_SIM : SP_VM_TEE_NONE;
	memcpy(v->host_data, sb->host_data, sizeof(v->host_data));
	vc.host_data = v->host_data;
	vc.host_data_len = sizeof(v->host_data);
	_cleanup_free_ char *run = sp_xasprintf("%s/vm", sb->run_dir);
	vc.run_dir = run;
	sp_vm_disk disk = {.path = c->image_store, .serial = "sealpod-images"};
	if (sb->image_disk)
		disk.path = sp_image_disk_path(sb->image_disk);
	if (disk.path) {
		vc.disks = &disk;
		vc.n_disks = 1;
	}
	/* A registry pull: QEMU user networking, where the guest reaches
	 * this host's 127.0.0.1 as 10.0.2.2 (sp_sandbox_guest_registry);
	 * nothing is forwarded into the guest. */
	if (sb->guest_registry || sb->net_mode == SP_SANDBOX_NET_USER) {
		vc.net.kind = SP_VM_NET_USER;
		vc.net.mac = SP_SANDBOX_USER_NET_MAC;
		/* The pod's published ports (sp_sandbox_net_setup). */
		vc.net.hostfwd = (const char *const *)sb->hostfwd;
		vc.net.n_hostfwd = sb->n_hostfwd;
	}
	if (sb->net_mode == SP_SANDBOX_NET_NETNS) {
		/* QEMU (and its tap) in the pod's namespace: this thread is the
		 * sandbox's own and lives as long as the UVM. */
		vc.net.kind = SP_VM_NET_TAP;
		if (sp_sandbox_net_enter(sb, &vc.net.tap_ifname, &vc.net.mac, err) < 0)
			return SP_ERR_STATE;
	}
	if (sp_vm_start(&v->vm, &vc, err) < 0)
		return SP_ERR_STATE;
	sb->pid = sp_vm_pid(v->vm);
	if (vc.tee == SP_VM_TEE_SIM) {
		_cleanup_free_ char *spec = sp_xasprintf("connect:%s", sp_vm_simpsp_socket(v->vm));
		if (sp_sandbox_psp_start(&v->psp, sb, spec, err) < 0)
			return SP_ERR_STATE;
	}
	if (sp_vm_wait_ready(v->vm, (uint64_t)c->boot_timeout_s * SP_VM_SEC, err) < 0)
		return SP_ERR_STATE;
	if (sb->net_mode == SP_SANDBOX_NET_NETNS && sp_sandbox_net_join(sb, err) < 0)
		return SP_ERR_STATE;
	sb->agent_addr = sp_xstrdup(sp_vm_agent_address(v->vm));
	sp_log_info("sandbox %s: UVM pid %d ready in %llu ms", sb->id, (int)sb->pid,
		    (unsigned long long)sp_vm_ready_ms(v->vm));
	return 0;
}

static bool vm_dead(sp_sandbox *sb)
{
	vmstate *v = sb->be_data;
	return !v || !v->vm || !sp_vm_running(v->vm);
}

static void vm_teardown(sp_sandbox *sb)
{
	vmstate *v = sb->be_data;
	if (!v)
		return;
	if (v->vm)
		sp_vm_stop(v->vm, 3 * SP_VM_SEC, NULL);
	/* The tap went with QEMU; the CNI interface's qdisc stays unless
	 * removed. */
	sp_sandbox_net_unjoin(sb);
	sp_sandbox_psp_stop(v->psp);
	sp_vm_free(v->vm);
	free(v);
	sb->be_data = NULL;
}
#else
static int vm_launch(sp_sandbox *sb, sp_err **err)
{
	return sp_error(err, SP_ERR_UNSUPPORTED,
			"this sealpod was built without the UVM launcher");
}

static bool vm_dead(sp_sandbox *sb)
{
	return true;
}

static void vm_teardown(sp_sandbox *sb)
{
}
#endif

const sp_sandbox_backend sp_sandbox_vm_backend = {
	.name = "vm",
	.launch = vm_launch,
	.dead = vm_dead,
	.teardown = vm_teardown,
};
