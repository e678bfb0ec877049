/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: firmware parsing in the launch-digest calculator (the OVMF
 * footer table and SEV metadata). */
#include "sealpod/snp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	sp_snp_measure_opts o;
	sp_snp_measure_opts_init(&o);
	o.vcpu_type = "EPYC-v4";
	o.vcpus = 2;
	uint8_t d[48];
	sp_err *err = NULL;
	sp_snp_measure_buf(d, data, size, &o, &err);
	sp_err_clear(&err);
	o.vmm = SP_SNP_VMM_EC2;
	sp_snp_measure_buf(d, data, size, &o, &err);
	sp_err_clear(&err);
	return 0;
}
