/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: VCEK/VLEK certificate extensions, PEM/DER certificate
 * loading and the GHCB certificate table. */
#include <openssl/x509.h>

#include "sealpod/snp.h"
#include "snp/snp-internal.h"

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

	/* PEM or DER, as the verifier loads offered certificates. */
	STACK_OF(X509) *sk = NULL;
	if (snp_load_certs(&sk, data, size, &err) == 0) {
		for (int i = 0; i < sk_X509_num(sk); i++)
			snp_vek_info_from_x509(&info, sk_X509_value(sk, i), NULL);
		sk_X509_pop_free(sk, X509_free);
	}
	sp_err_clear(&err);
	return 0;
}
