/* SPDX-License-Identifier: Apache-2.0 */
/* Does KVM work here? /dev/kvm existing is not enough: on nested hosts
 * KVM_RUN can hang, or crawl so slowly that a guest never boots. So a child process runs a one-instruction
 * guest (HLT) and the parent gives it a deadline; a hung or failed probe
 * means TCG. The answer is cached per host boot because a hung probe costs
 * its whole timeout. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sealpod/file.h"
#include "sealpod/log.h"
#include "sealpod/vm.h"
#include "vm/vm-internal.h"

/* The probe guest: 64-bit mode with paging (identity-mapped 2 MiB page),
 * counting down from 3,000,000, then HLT. KVM that works runs it in about
 * a millisecond; nested KVM that traps every instruction (this project's
 * CI host) needs most of a second, and some hosts never finish. */
static const uint8_t probe_code[] = {
	0xb9, 0xc0, 0xc6, 0x2d, 0x00, /* mov ecx, 3000000 */
	0xff, 0xc9,                   /* 1: dec ecx */
	0x75, 0xfc,                   /* jnz 1b */
	0xf4,                         /* hlt */
};

/* In the child: 0 if the guest halted, else a small code saying where it
 * failed (reported by the parent). */
static int probe_child(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return 10;
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return 11;
	int vmfd = ioctl(kvm, KVM_CREATE_VM, 0UL);
	if (vmfd < 0)
		return 12;
	const size_t memsz = 0x200000;
	uint8_t *mem = mmap(NULL, memsz, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 13;
	/* Page tables at 0x2000 (PML4), 0x3000 (PDPT), 0x4000 (PD, one 2 MiB
	 * page at 0); code at 0x1000. */
	uint64_t pml4 = 0x3000 | 3, pdpt = 0x4000 | 3, pde = 0x83;
	memcpy(mem + 0x2000, &pml4, 8);
	memcpy(mem + 0x3000, &pdpt, 8);
	memcpy(mem + 0x4000, &pde, 8);
	memcpy(mem + 0x1000, probe_code, sizeof(probe_code));
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = memsz,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return 14;
	int vcpu = ioctl(vmfd, KVM_CREATE_VCPU, 0UL);
	if (vcpu < 0)
		return 15;
	int sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return 16;
	struct kvm_run *run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE,
				   MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return 17;
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return 18;
	sregs.cr3 = 0x2000;
	sregs.cr4 = 1u << 5;          /* PAE */
	sregs.cr0 = 0x80050033;       /* PG WP AM NE ET MP PE */
	sregs.efer = 0x500;           /* LMA LME */
	struct kvm_segment seg = {.base = 0, .limit = 0xffffffff, .selector = 8,
				  .present = 1, .type = 11, .s = 1, .l = 1, .g = 1};
	sregs.cs = seg;
	seg.type = 3;
	seg.selector = 16;
	seg.l = 0;
	seg.db = 1;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return 19;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2, .rsp = 0x8000};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return 20;
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return 21;
	return run->exit_reason == KVM_EXIT_HLT ? 0 : 22;
}

bool sp_vm_kvm_probe(uint64_t timeout_ns, char **why)
{
	*why = NULL;
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		*why = sp_xasprintf("/dev/kvm: %s", strerror(errno));
		return false;
	}
	pid_t pid = fork();
	if (pid < 0) {
		*why = sp_xasprintf("fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0)
		_exit(probe_child());
	uint64_t deadline = sp_now_ns() + timeout_ns;
	int status = 0;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			*why = sp_xasprintf("waitpid: %s", strerror(errno));
			return false;
		}
		if (sp_now_ns() >= deadline) {
			kill(pid, SIGKILL);
			/* A vCPU stuck in the host may take a moment to die; do
			 * not wait for it forever. */
			for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
				poll(NULL, 0, 10);
			*why = sp_xasprintf("a test guest did not finish within %llu ms "
					    "(nested KVM that cannot run guests?)",
					    (unsigned long long)(timeout_ns / 1000000));
			return false;
		}
		poll(NULL, 0, 5);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	*why = sp_xasprintf("the KVM test guest failed (step %d)",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
	return false;
}

static char *cache_path(void)
{
	if (geteuid() == 0 && sp_mkdir_p("/run/sealpod", 0755, NULL) == 0)
		return sp_xstrdup("/run/sealpod/kvm-probe");
	const char *tmp = getenv("TMPDIR");
	return sp_xasprintf("%s/sealpod-kvm-probe-%u", tmp && *tmp ? tmp : "/tmp",
			    (unsigned)geteuid());
}

static char *boot_id(void)
{
	uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, "/proc/sys/kernel/random/boot_id", 128, NULL) < 0)
		return sp_xstrdup("unknown");
	char *nl = strchr((char *)data, '\n');
	if (nl)
		*nl = 0;
	return (char *)data;
}

int sp_vm_resolve_accel(int accel)
{
	static int cached = -1;
	if (accel != SP_VM_ACCEL_AUTO)
		return accel;
	const char *force = getenv("SEALPOD_ACCEL");
	if (force && !strcmp(force, "tcg"))
		return SP_VM_ACCEL_TCG;
	if (force && !strcmp(force, "kvm"))
		return SP_VM_ACCEL_KVM;
	if (cached >= 0)
		return cached;
	_cleanup_free_ char *path = cache_path();
	_cleanup_free_ char *id = boot_id();
	uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, path, 256, NULL) == 0) {
		char want_kvm[200], want_tcg[200];
		snprintf(want_kvm, sizeof(want_kvm), "%s kvm\n", id);
		snprintf(want_tcg, sizeof(want_tcg), "%s tcg\n", id);
		int r = -1;
		if (!strcmp((char *)data, want_kvm))
			r = SP_VM_ACCEL_KVM;
		else if (!strcmp((char *)data, want_tcg))
			r = SP_VM_ACCEL_TCG;
		free(data);
		if (r >= 0) {
			if (r == SP_VM_ACCEL_TCG)
				sp_log_debug("KVM cannot run guests here (cached in %s); "
					     "using TCG", path);
			return cached = r;
		}
	}
	_cleanup_free_ char *why = NULL;
	bool ok = sp_vm_kvm_probe(SP_VM_SEC / 2, &why);
	cached = ok ? SP_VM_ACCEL_KVM : SP_VM_ACCEL_TCG;
	if (!ok)
		sp_log_info("KVM unusable (%s); falling back to TCG (slow)", why);
	_cleanup_free_ char *line = sp_xasprintf("%s %s\n", id, ok ? "kvm" : "tcg");
	if (sp_write_file_atomic(path, line, strlen(line), 0644, NULL) < 0)
		sp_log_debug("could not cache the KVM probe in %s", path);
	return cached;
}
