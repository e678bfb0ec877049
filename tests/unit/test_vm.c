/* SPDX-License-Identifier: Apache-2.0 */
/* The launcher's QEMU command lines, asserted as exact argvs, and the
 * checks that refuse unusable configurations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "sealpod/bytes.h"
#include "sealpod/vm.h"
#include "vm/vm-internal.h"

#define RUN "/run/sp/vm1"

/* q35 outside SNP: without the devices the guest does not use. */
#define Q35 "q35,sata=off,smbus=off,vmport=off,i8042=off", "-global", \
	"ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"
/* Firmware outside SNP. */
#define QBOOT "-bios", "qboot.rom"
/* Free page reporting, last (not under SNP). */
#define BALLOON(bus) "-device", "virtio-balloon-" bus ",free-page-reporting=on"

/* The part every configuration shares, after "-smp N". */
#define COMMON_TAIL_PCI                                                         \
	"-kernel", "/g/vmlinuz", "-initrd", "/g/initrd.img", "-append",         \
		"console=ttyS0 quiet", "-chardev",                              \
		"file,id=con0,path=" RUN "/console.log", "-serial",             \
		"chardev:con0", "-chardev",                                     \
		"socket,id=qmp0,path=" RUN "/qmp.sock,server=on,wait=off",      \
		"-mon", "chardev=qmp0,mode=control", "-device",                 \
		"virtio-serial-pci,id=vser0", "-chardev",                       \
		"socket,id=agent0,path=" RUN "/agent.sock,server=on,wait=off",  \
		"-device",                                                      \
		"virtserialport,bus=vser0.0,chardev=agent0,name=sealpod.agent"

static void base(sp_vm_config *c)
{
	sp_vm_config_init(c);
	c->kernel = "/g/vmlinuz";
	c->initrd = "/g/initrd.img";
	c->cmdline = "console=ttyS0 quiet";
}

static void expect(const sp_vm_config *c, int accel, const char *const *want,
		   size_t n)
{
	char **argv = NULL;
	sp_err *err = NULL;
	int r = sp_vm_build_argv(&argv, c, RUN, accel, &err);
	if (r < 0)
		fail_msg("%s", sp_err_msg(err));
	size_t i = 0;
	for (; argv[i] && i < n; i++)
		if (strcmp(argv[i], want[i]))
			fail_msg("argv[%zu]: got `%s`, want `%s`", i, argv[i], want[i]);
	if (argv[i] || i != n)
		fail_msg("argv length: got %s at %zu, want %zu entries",
			 argv[i] ? argv[i] : "end", i, n);
	sp_strv_freep(&argv);
}

static void test_argv_tcg_default(void **state)
{
	sp_vm_config c;
	base(&c);
	const char *want[] = {"qemu-system-x86_64", "-nodefaults", "-no-user-config",
			      "-nographic", "-no-reboot", "-accel", "tcg,tb-size=16", "-machine", Q35,
			      "-cpu", "max", "-m", "256", "-smp", "1", QBOOT, COMMON_TAIL_PCI,
			      BALLOON("pci")};
	expect(&c, SP_VM_ACCEL_TCG, want, SP_ARRAY_LEN(want));
}

static void test_argv_kvm_sim_disks_usernet(void **state)
{
	sp_vm_config c;
	base(&c);
	c.qemu = "/usr/bin/qemu-system-x86_64";
	c.mem_mb = 512;
	c.vcpus = 2;
	c.tee = SP_VM_TEE_SIM;
	sp_vm_disk disks[] = {{.path = "/img/store,1.img", .serial = "oci-store"},
			      {.path = "/img/rw.img", .writable = true}};
	c.disks = disks;
	c.n_disks = 2;
	const char *fwd[] = {"tcp:127.0.0.1:8080-:80"};
	const char *gfwd[] = {"tcp:10.0.2.100:5000-tcp:127.0.0.1:5000"};
	c.net = (sp_vm_net){.kind = SP_VM_NET_USER, .hostfwd = fwd, .n_hostfwd = 1,
			    .guestfwd = gfwd, .n_guestfwd = 1, .mac = "52:54:00:12:34:56"};
	const char *want[] = {
		"/usr/bin/qemu-system-x86_64", "-nodefaults", "-no-user-config",
		"-nographic", "-no-reboot", "-accel", "kvm", "-machine", Q35, "-cpu",
		"host", "-m", "512", "-smp", "2", QBOOT, COMMON_TAIL_PCI, "-chardev",
		"socket,id=simpsp0,path=" RUN "/simpsp.sock,server=on,wait=off", "-device",
		"virtserialport,bus=vser0.0,chardev=simpsp0,name=sealpod.simpsp", "-drive",
		"file=/img/store,,1.img,if=none,id=disk0,format=raw,readonly=on", "-device",
		"virtio-blk-pci,drive=disk0,serial=oci-store", "-drive",
		"file=/img/rw.img,if=none,id=disk1,format=raw,readonly=off", "-device",
		"virtio-blk-pci,drive=disk1", "-netdev",
		"user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,"
		"guestfwd=tcp:10.0.2.100:5000-tcp:127.0.0.1:5000",
		"-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56", BALLOON("pci")};
	expect(&c, SP_VM_ACCEL_KVM, want, SP_ARRAY_LEN(want));
}

static void test_argv_tap(void **state)
{
	sp_vm_config c;
	base(&c);
	c.net = (sp_vm_net){.kind = SP_VM_NET_TAP, .tap_ifname = "sp-tap0"};
	c.tcg_tb_mb = 64;
	const char *want[] = {"qemu-system-x86_64", "-nodefaults", "-no-user-config",
			      "-nographic", "-no-reboot", "-accel", "tcg,tb-size=64", "-machine", Q35,
			      "-cpu", "max", "-m", "256", "-smp", "1", QBOOT, COMMON_TAIL_PCI,
			      "-netdev", "tap,id=net0,ifname=sp-tap0,script=no,downscript=no",
			      "-device", "virtio-net-pci,netdev=net0", BALLOON("pci")};
	expect(&c, SP_VM_ACCEL_TCG, want, SP_ARRAY_LEN(want));
}

static void test_argv_snp(void **state)
{
	sp_vm_config c;
	base(&c);
	uint8_t hd[32];
	for (int i = 0; i < 32; i++)
		hd[i] = (uint8_t)i;
	c.tee = SP_VM_TEE_SNP;
	c.host_data = hd;
	c.host_data_len = 32;
	c.ovmf = "/usr/share/ovmf/OVMF.amdsev.fd";
	const char *want[] = {
		"qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic",
		"-no-reboot", "-accel", "kvm", "-machine",
		"q35,confidential-guest-support=sev0,memory-backend=ram0", "-cpu", "EPYC-v4",
		"-m", "256", "-smp", "1", "-object",
		"memory-backend-memfd,id=ram0,size=256M,share=true,prealloc=false",
		"-object",
		"sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,policy=0x30000,"
		"kernel-hashes=on,host-data=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"-bios", "/usr/share/ovmf/OVMF.amdsev.fd", COMMON_TAIL_PCI};
	expect(&c, SP_VM_ACCEL_KVM, want, SP_ARRAY_LEN(want));
}

static void test_argv_microvm(void **state)
{
	sp_vm_config c;
	base(&c);
	c.machine = SP_VM_MACHINE_MICROVM;
	c.cmdline = NULL;
	sp_vm_disk d = {.path = "/d.img"};
	c.disks = &d;
	c.n_disks = 1;
	const char *want[] = {
		"qemu-system-x86_64", "-nodefaults", "-no-user-config", "-nographic",
		"-no-reboot", "-accel", "tcg,tb-size=16", "-machine", "microvm", "-cpu", "max", "-m",
		"256", "-smp", "1", "-kernel", "/g/vmlinuz", "-initrd", "/g/initrd.img",
		"-chardev", "file,id=con0,path=" RUN "/console.log", "-serial",
		"chardev:con0", "-chardev",
		"socket,id=qmp0,path=" RUN "/qmp.sock,server=on,wait=off", "-mon",
		"chardev=qmp0,mode=control", "-device", "virtio-serial-device,id=vser0",
		"-chardev", "socket,id=agent0,path=" RUN "/agent.sock,server=on,wait=off",
		"-device", "virtserialport,bus=vser0.0,chardev=agent0,name=sealpod.agent",
		"-drive", "file=/d.img,if=none,id=disk0,format=raw,readonly=on", "-device",
		"virtio-blk-device,drive=disk0", BALLOON("device")};
	expect(&c, SP_VM_ACCEL_TCG, want, SP_ARRAY_LEN(want));
}

static void refuse(const sp_vm_config *c, const char *run, int accel, int code,
		   const char *needle)
{
	char **argv = NULL;
	sp_err *err = NULL;
	assert_int_equal(sp_vm_build_argv(&argv, c, run, accel, &err), code);
	assert_null(argv);
	if (!strstr(sp_err_msg(err), needle))
		fail_msg("error `%s` lacks `%s`", sp_err_msg(err), needle);
	sp_err_free(err);
}

static void test_argv_refusals(void **state)
{
	sp_vm_config c;
	base(&c);
	c.tee = SP_VM_TEE_SNP;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_UNSUPPORTED, "needs KVM");
	c.ovmf = "/ovmf";
	refuse(&c, RUN, SP_VM_ACCEL_KVM, SP_ERR_INVALID, "host data must be 32 bytes");
	base(&c);
	c.version = 7;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "sp_vm_config_init");
	base(&c);
	c.kernel = NULL;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "kernel");
	base(&c);
	refuse(&c, RUN, SP_VM_ACCEL_AUTO, SP_ERR_INVALID, "resolved");
	char longdir[200];
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = 0;
	refuse(&c, longdir, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "too long");
	/* Values that QEMU would split into options of their own. */
	const char *bad[] = {"tcp::80-:80,smb=/"};
	c.net = (sp_vm_net){.kind = SP_VM_NET_USER, .hostfwd = bad, .n_hostfwd = 1};
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "hostfwd rule");
	c.net = (sp_vm_net){.kind = SP_VM_NET_TAP, .tap_ifname = "tap0,script=/x"};
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "tap interface name");
	c.net = (sp_vm_net){0};
	sp_vm_disk d = {.path = "/x", .serial = "a,b"};
	c.disks = &d;
	c.n_disks = 1;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "disk serial");
	c.n_disks = 0;
	c.mem_mb = 16;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "memory");
	c.mem_mb = 256;
	c.vcpus = 0;
	refuse(&c, RUN, SP_VM_ACCEL_TCG, SP_ERR_INVALID, "vCPUs");
}

static void test_escape(void **state)
{
	char *s = sp_vm_qemu_escape("a,b,,c");
	assert_string_equal(s, "a,,b,,,,c");
	free(s);
	s = sp_vm_qemu_escape("");
	assert_string_equal(s, "");
	free(s);
}

static void test_accel_forced(void **state)
{
	assert_int_equal(sp_vm_resolve_accel(SP_VM_ACCEL_TCG), SP_VM_ACCEL_TCG);
	assert_int_equal(sp_vm_resolve_accel(SP_VM_ACCEL_KVM), SP_VM_ACCEL_KVM);
	setenv("SEALPOD_ACCEL", "tcg", 1);
	assert_int_equal(sp_vm_resolve_accel(SP_VM_ACCEL_AUTO), SP_VM_ACCEL_TCG);
	unsetenv("SEALPOD_ACCEL");
	assert_string_equal(sp_vm_accel_name(SP_VM_ACCEL_AUTO), "auto");
}

static void test_start_refuses_missing_kernel(void **state)
{
	sp_vm_config c;
	base(&c);
	c.kernel = "/nonexistent/vmlinuz";
	c.accel = SP_VM_ACCEL_TCG;
	sp_vm *vm = (sp_vm *)1;
	sp_err *err = NULL;
	assert_int_equal(sp_vm_start(&vm, &c, &err), SP_ERR_SYSTEM);
	assert_null(vm);
	assert_non_null(strstr(sp_err_msg(err), "/nonexistent/vmlinuz"));
	assert_non_null(strstr(sp_err_msg(err), "sealpod image build"));
	sp_err_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_tcg_default),
		cmocka_unit_test(test_argv_kvm_sim_disks_usernet),
		cmocka_unit_test(test_argv_tap),
		cmocka_unit_test(test_argv_snp),
		cmocka_unit_test(test_argv_microvm),
		cmocka_unit_test(test_argv_refusals),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_accel_forced),
		cmocka_unit_test(test_start_refuses_missing_kernel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
