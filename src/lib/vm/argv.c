/* SPDX-License-Identifier: Apache-2.0 */
/* The QEMU command line for a UVM, built from an sp_vm_config. Kept apart
 * from process handling so that every configuration can be checked as an
 * exact argv in unit tests. */
#include <string.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/tee.h"
#include "sealpod/vm.h"
#include "vm/vm-internal.h"

void sp_vm_config_init(sp_vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->version = SP_VM_CONFIG_VERSION;
	cfg->accel = SP_VM_ACCEL_AUTO;
	cfg->machine = SP_VM_MACHINE_Q35;
	cfg->mem_mb = 256;
	cfg->vcpus = 1;
}

const char *sp_vm_accel_name(int accel)
{
	switch (accel) {
	case SP_VM_ACCEL_AUTO:
		return "auto";
	case SP_VM_ACCEL_KVM:
		return "kvm";
	case SP_VM_ACCEL_TCG:
		return "tcg";
	}
	return "?";
}

typedef struct strv {
	char **v;
	size_t n, cap;
} strv;

static void add(strv *s, char *owned)
{
	if (s->n + 2 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->v = sp_xrealloc(s->v, s->cap * sizeof(char *));
	}
	s->v[s->n++] = owned;
	s->v[s->n] = NULL;
}

static void add2(strv *s, const char *opt, char *owned_val)
{
	add(s, sp_xstrdup(opt));
	add(s, owned_val);
}

static void strv_free(strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

/* QEMU's option parser splits on commas; a literal comma is doubled. */
char *sp_vm_qemu_escape(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p; p++)
		n += *p == ',' ? 2 : 1;
	char *out = sp_xmalloc(n + 1), *o = out;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = 0;
	return out;
}

/* Values spliced into an option string without escaping must not be able
 * to add options of their own. */
static int check_token(const char *what, const char *v, bool allow_eq,
		       sp_err **err)
{
	if (!v || !*v)
		return sp_error(err, SP_ERR_INVALID, "%s is empty", what);
	for (const char *p = v; *p; p++)
		if (*p == ',' || *p == '\n' || *p == ' ' || (*p == '=' && !allow_eq))
			return sp_error(err, SP_ERR_INVALID,
					"%s `%s` contains '%c', which QEMU would read "
					"as a separator; give one plain value",
					what, v, *p == '\n' ? 'n' : *p);
	return 0;
}

static int check_serial(const char *s, sp_err **err)
{
	size_t n = strlen(s);
	if (n == 0 || n > 20)
		return sp_error(err, SP_ERR_INVALID,
				"disk serial `%s` must have 1 to 20 characters", s);
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return sp_error(err, SP_ERR_INVALID,
					"disk serial `%s` may hold only letters, digits, "
					"'.', '_' and '-'", s);
	return 0;
}

static int check_config(const sp_vm_config *cfg, const char *run_dir, int accel,
			sp_err **err)
{
	if (cfg->version != SP_VM_CONFIG_VERSION)
		return sp_error(err, SP_ERR_INVALID,
				"sp_vm_config version %u is not %u; call "
				"sp_vm_config_init()", cfg->version, SP_VM_CONFIG_VERSION);
	if (!cfg->kernel || !*cfg->kernel)
		return sp_error(err, SP_ERR_INVALID, "no guest kernel given");
	if (!cfg->initrd || !*cfg->initrd)
		return sp_error(err, SP_ERR_INVALID, "no guest initrd given");
	if (cfg->mem_mb < 64 || cfg->mem_mb > 1024 * 1024)
		return sp_error(err, SP_ERR_INVALID,
				"guest memory %u MiB is outside 64 MiB..1 TiB", cfg->mem_mb);
	if (cfg->vcpus < 1 || cfg->vcpus > 255)
		return sp_error(err, SP_ERR_INVALID,
				"%u vCPUs is outside 1..255", cfg->vcpus);
	if (accel != SP_VM_ACCEL_KVM && accel != SP_VM_ACCEL_TCG)
		return sp_error(err, SP_ERR_INVALID,
				"accelerator must be resolved to kvm or tcg");
	if (cfg->machine != SP_VM_MACHINE_Q35 && cfg->machine != SP_VM_MACHINE_MICROVM)
		return sp_error(err, SP_ERR_INVALID, "unknown machine type %d",
				cfg->machine);
	/* sun_path holds 107 bytes and a NUL; "/simpsp.sock" is the longest. */
	if (strlen(run_dir) + strlen("/simpsp.sock") > 107)
		return sp_error(err, SP_ERR_INVALID,
				"run directory `%s` is too long for unix socket paths; "
				"use a path under 90 bytes", run_dir);
	if (cfg->tee == SP_VM_TEE_SNP) {
		if (accel != SP_VM_ACCEL_KVM)
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"SEV-SNP needs KVM; this host can only use TCG");
		if (cfg->machine != SP_VM_MACHINE_Q35)
			return sp_error(err, SP_ERR_INVALID,
					"SEV-SNP needs the q35 machine type");
		if (!cfg->ovmf || !*cfg->ovmf)
			return sp_error(err, SP_ERR_INVALID,
					"SEV-SNP needs an OVMF firmware (cfg.ovmf)");
		if (cfg->host_data_len != 32 || !cfg->host_data)
			return sp_error(err, SP_ERR_INVALID,
					"SEV-SNP host data must be 32 bytes, got %zu",
					cfg->host_data_len);
	} else if (cfg->tee != SP_VM_TEE_NONE && cfg->tee != SP_VM_TEE_SIM) {
		return sp_error(err, SP_ERR_INVALID, "unknown TEE kind %d", cfg->tee);
	}
	for (size_t i = 0; i < cfg->n_disks; i++) {
		if (!cfg->disks[i].path || !*cfg->disks[i].path)
			return sp_error(err, SP_ERR_INVALID, "disk %zu has no path", i);
		if (cfg->disks[i].serial && check_serial(cfg->disks[i].serial, err) < 0)
			return SP_ERR_INVALID;
	}
	const sp_vm_net *n = &cfg->net;
	if (n->kind == SP_VM_NET_USER) {
		for (size_t i = 0; i < n->n_hostfwd; i++)
			if (check_token("hostfwd rule", n->hostfwd[i], true, err) < 0)
				return SP_ERR_INVALID;
		for (size_t i = 0; i < n->n_guestfwd; i++)
			if (check_token("guestfwd rule", n->guestfwd[i], true, err) < 0)
				return SP_ERR_INVALID;
	} else if (n->kind == SP_VM_NET_TAP) {
		if (check_token("tap interface name", n->tap_ifname, false, err) < 0)
			return SP_ERR_INVALID;
	} else if (n->kind != SP_VM_NET_NONE) {
		return sp_error(err, SP_ERR_INVALID, "unknown network kind %d", n->kind);
	}
	if (n->kind != SP_VM_NET_NONE && n->mac && check_token("MAC address", n->mac, false, err) < 0)
		return SP_ERR_INVALID;
	return 0;
}

int sp_vm_build_argv(char ***out, const sp_vm_config *cfg, const char *run_dir,
		     int accel, sp_err **err)
{
	if (check_config(cfg, run_dir, accel, err) < 0)
		return sp_error_wrap(err, "VM configuration");
	bool micro = cfg->machine == SP_VM_MACHINE_MICROVM;
	bool snp = cfg->tee == SP_VM_TEE_SNP;
	/* microvm has no PCI: its virtio devices sit on virtio-mmio. */
	const char *vdev = micro ? "device" : "pci";
	_cleanup_free_ char *rd = sp_vm_qemu_escape(run_dir);
	strv s = {0};

	add(&s, sp_xstrdup(cfg->qemu ? cfg->qemu : "qemu-system-x86_64"));
	/* Only what we ask for: no default NIC, VGA, monitor or config. */
	add(&s, sp_xstrdup("-nodefaults"));
	add(&s, sp_xstrdup("-no-user-config"));
	add(&s, sp_xstrdup("-nographic"));
	add(&s, sp_xstrdup("-no-reboot"));
	/* TCG's translation cache is a 1 GiB mapping by default that fills
	 * as code runs (48 MiB of PSS by the agent's ready line with Debian's
	 * kernel, 36 MiB with sealpod's); capped, it costs no measurable
	 * boot time (docs/launcher.md). */
	if (accel == SP_VM_ACCEL_TCG)
		add2(&s, "-accel", sp_xasprintf("tcg,tb-size=%u",
						cfg->tcg_tb_mb ? cfg->tcg_tb_mb : SP_VM_TCG_TB_MB));
	else
		add2(&s, "-accel", sp_xstrdup(sp_vm_accel_name(accel)));
	if (snp)
		add2(&s, "-machine",
		     sp_xstrdup("q35,confidential-guest-support=sev0,"
				"memory-backend=ram0"));
	else if (micro)
		add2(&s, "-machine", sp_xstrdup("microvm"));
	else { /* no AHCI, SMBus, vmport or PS/2 controller: the guest uses none */
		add2(&s, "-machine", sp_xstrdup("q35,sata=off,smbus=off,vmport=off,i8042=off"));
		/* No ACPI PCI hotplug: nothing is ever hot-plugged into a UVM,
		 * and without its slot methods the DSDT the guest interprets at
		 * boot is smaller (20-40 ms of TCG time; docs/launcher.md). */
		add2(&s, "-global", sp_xstrdup("ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"));
	}
	if (snp)
		add2(&s, "-cpu", sp_xstrdup("EPYC-v4"));
	else if (accel == SP_VM_ACCEL_KVM)
		add2(&s, "-cpu", sp_xstrdup("host"));
	else
		add2(&s, "-cpu", sp_xstrdup("max"));
	add2(&s, "-m", sp_xasprintf("%u", cfg->mem_mb));
	add2(&s, "-smp", sp_xasprintf("%u", cfg->vcpus));
	if (snp) {
		_cleanup_free_ char *hd =
			sp_base64_encode(cfg->host_data, cfg->host_data_len, SP_B64_STD);
		add2(&s, "-object",
		     sp_xasprintf("memory-backend-memfd,id=ram0,size=%uM,share=true,"
				  "prealloc=false", cfg->mem_mb));
		add2(&s, "-object",
		     sp_xasprintf("sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,"
				  "policy=0x%llx,kernel-hashes=on,host-data=%s",
				  (unsigned long long)(cfg->snp_policy ? cfg->snp_policy
								       : 0x30000),
				  hd));
		add2(&s, "-bios", sp_xstrdup(cfg->ovmf));
	} else if (!micro) {
		/* qboot (in QEMU's data directory; microvm's default) instead
		 * of SeaBIOS: it only loads the kernel, about 0.7 s sooner
		 * under TCG (docs/launcher.md). SNP keeps OVMF. */
		add2(&s, "-bios", sp_xstrdup("qboot.rom"));
	}
	add2(&s, "-kernel", sp_xstrdup(cfg->kernel));
	add2(&s, "-initrd", sp_xstrdup(cfg->initrd));
	if (cfg->cmdline)
		add2(&s, "-append", sp_xstrdup(cfg->cmdline));

	/* Console to a file in the run directory: the launcher tails it for
	 * the ready line and for error messages. */
	add2(&s, "-chardev", sp_xasprintf("file,id=con0,path=%s/console.log", rd));
	add2(&s, "-serial", sp_xstrdup("chardev:con0"));
	add2(&s, "-chardev",
	     sp_xasprintf("socket,id=qmp0,path=%s/qmp.sock,server=on,wait=off", rd));
	add2(&s, "-mon", sp_xstrdup("chardev=qmp0,mode=control"));

	add2(&s, "-device", sp_xasprintf("virtio-serial-%s,id=vser0", vdev));
	add2(&s, "-chardev",
	     sp_xasprintf("socket,id=agent0,path=%s/agent.sock,server=on,wait=off", rd));
	add2(&s, "-device",
	     sp_xstrdup("virtserialport,bus=vser0.0,chardev=agent0,name=" SP_VM_AGENT_PORT));
	if (cfg->tee == SP_VM_TEE_SIM) {
		add2(&s, "-chardev",
		     sp_xasprintf("socket,id=simpsp0,path=%s/simpsp.sock,server=on,"
				  "wait=off", rd));
		add2(&s, "-device",
		     sp_xstrdup("virtserialport,bus=vser0.0,chardev=simpsp0,"
				"name=" SP_SIM_PSP_PORT));
	}
	for (size_t i = 0; i < cfg->n_disks; i++) {
		const sp_vm_disk *d = &cfg->disks[i];
		_cleanup_free_ char *p = sp_vm_qemu_escape(d->path);
		add2(&s, "-drive",
		     sp_xasprintf("file=%s,if=none,id=disk%zu,format=raw,readonly=%s", p, i,
				  d->writable ? "off" : "on"));
		if (d->serial)
			add2(&s, "-device",
			     sp_xasprintf("virtio-blk-%s,drive=disk%zu,serial=%s", vdev, i,
					  d->serial));
		else
			add2(&s, "-device", sp_xasprintf("virtio-blk-%s,drive=disk%zu", vdev, i));
	}
	const sp_vm_net *n = &cfg->net;
	if (n->kind == SP_VM_NET_USER) {
		sp_buf b = SP_BUF_INIT;
		sp_buf_printf(&b, "user,id=net0");
		for (size_t i = 0; i < n->n_hostfwd; i++)
			sp_buf_printf(&b, ",hostfwd=%s", n->hostfwd[i]);
		for (size_t i = 0; i < n->n_guestfwd; i++)
			sp_buf_printf(&b, ",guestfwd=%s", n->guestfwd[i]);
		sp_buf_terminate(&b);
		add2(&s, "-netdev", (char *)sp_buf_steal(&b, NULL));
	} else if (n->kind == SP_VM_NET_TAP) {
		add2(&s, "-netdev",
		     sp_xasprintf("tap,id=net0,ifname=%s,script=no,downscript=no",
				  n->tap_ifname));
	}
	if (n->kind != SP_VM_NET_NONE) {
		if (n->mac)
			add2(&s, "-device",
			     sp_xasprintf("virtio-net-%s,netdev=net0,mac=%s", vdev, n->mac));
		else
			add2(&s, "-device", sp_xasprintf("virtio-net-%s,netdev=net0", vdev));
	}
	/* Free page reporting: the guest hands pages it freed (the
	 * decompressed kernel's buffers, the initrd, init memory) back to
	 * the host. Not under SNP, where guest memory is private. */
	if (!snp)
		add2(&s, "-device", sp_xasprintf("virtio-balloon-%s,free-page-reporting=on", vdev));
	for (size_t i = 0; i < cfg->n_extra_args; i++)
		add(&s, sp_xstrdup(cfg->extra_args[i]));
	if (!s.v) {
		strv_free(&s);
		return sp_error(err, SP_ERR_INVALID, "empty argv");
	}
	*out = s.v;
	return 0;
}
