/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the SEV-SNP report parser, encoder and JSON rendering. */
#include <string.h>

#include "sealpod/snp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_snp_report r;
	sp_err *err = NULL;
	if (sp_snp_report_parse(&r, data, size, &err) < 0) {
		sp_err_clear(&err);
		return 0;
	}
	/* Whatever parses must encode to a report that parses the same. */
	uint8_t buf[SP_SNP_REPORT_LEN];
	sp_snp_report_encode(&r, buf);
	sp_snp_report back;
	if (sp_snp_report_parse(&back, buf, sizeof(buf), NULL) < 0 ||
	    memcmp(&back, &r, sizeof(r)) != 0)
		abort();
	json_t *j = sp_snp_report_to_json(&r, SP_SNP_CPU_UNKNOWN);
	json_decref(j);
	j = sp_snp_report_to_json(&r, SP_SNP_CPU_TURIN);
	json_decref(j);
	return 0;
}
