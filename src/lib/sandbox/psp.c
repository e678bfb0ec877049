/* SPDX-License-Identifier: Apache-2.0 */
/* The sim PSP of a sandbox: the host-side stand-in for the AMD Secure
 * Processor that signs the guest's reports. The pod policy's SHA-256 is
 * its HOST_DATA, as the VMM would place it with SEV-SNP hardware
 * (host-data of sev-snp-guest). */
#include <string.h>

#include "sandbox/sandbox-config.h"
#include "sealpod/hash.h"
#include "sandbox-internal.h"

#if SP_SANDBOX_HAVE_SIMPSP
#include "sealpod/snp.h"

struct sp_sandbox_psp {
	sp_simpsp *psp;
	sp_simpsp_thread *thread;
};

int sp_sandbox_psp_start(sp_sandbox_psp **out, sp_sandbox *sb, const char *spec,
			 sp_err **err)
{
	sp_simpsp_config pc;
	sp_simpsp_config_init(&pc);
	memcpy(pc.host_data, sb->host_data, sizeof(pc.host_data));
	/* MEASUREMENT over what the VMM really launched, as `sealpod measure
	 * --sim-direct-boot` predicts it (docs/attestation.md). */
	sp_snp_measure_opts mo;
	sp_sandbox_launch_measure_opts(&mo, &sb->cfg);
	if (!strcmp(sb->cfg.backend, "vm"))
		pc.launch = &mo;
	sp_sandbox_psp *p = sp_xzalloc(sizeof(*p));
	if (sp_simpsp_new(&p->psp, &pc, err) < 0) {
		free(p);
		return sp_error_wrap(err, "sim PSP");
	}
	if (sp_simpsp_start(&p->thread, p->psp, spec, err) < 0) {
		sp_simpsp_free(p->psp);
		free(p);
		return sp_error_wrap(err, "sim PSP on %s", spec);
	}
	*out = p;
	return 0;
}

void sp_sandbox_launch_measure_opts(sp_snp_measure_opts *mo, const sp_runtime_config *c)
{
	sp_snp_measure_opts_init(mo);
	mo->ovmf = SP_SANDBOX_SIM_OVMF;
	mo->vcpu_type = "EPYC-v4";
	mo->vcpus = c->vcpus;
	mo->kernel = c->kernel;
	mo->initrd = c->initrd;
	mo->append = c->kernel_cmdline;
	mo->sim_direct_boot = true;
}

void sp_sandbox_psp_stop(sp_sandbox_psp *p)
{
	if (!p)
		return;
	sp_simpsp_stop(p->thread);
	sp_simpsp_free(p->psp);
	free(p);
}
#else
int sp_sandbox_psp_start(sp_sandbox_psp **out, sp_sandbox *sb, const char *spec,
			 sp_err **err)
{
	return sp_error(err, SP_ERR_UNSUPPORTED,
			"the sim TEE is not built into this sealpod (no sim PSP module)");
}

void sp_sandbox_psp_stop(sp_sandbox_psp *p)
{
}
#endif
