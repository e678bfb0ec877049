/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: VCEK/VLEK certificate extensions, PEM/DER certificate
 * loading and the GHCB certificate table. */
#include "sealpod/snp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_err *err = NULL;
	sp_snp_vek_info info;
	if (sp_snp_vek_info_parse(&info, data, size, &err) == 0 &&
	    info.hwid_len > sizeof(info.hwid))
		abort();
	sp_err_clear(&err);

	sp_snp_cert_entry e[8];
	size_t n = 0;
	if (sp_snp_cert_table_parse(e, 8, &n, data, size, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			if (e[i].der < data || e[i].der + e[i].len > data + size)
				abort();
	}
	sp_err_clear(&err);

	sp_snp_verifier *v = sp_snp_verifier_new();
	sp_snp_verifier_add_certs(v, data, size, &err);
	sp_err_clear(&err);
	sp_snp_verifier_add_cert_table(v, data, size, &err);
	sp_err_clear(&err);
	sp_snp_verifier_free(v);
	return 0;
}
