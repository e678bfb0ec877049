/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the SNP module's files (not public API). */
#ifndef SP_SNP_INTERNAL_H
#define SP_SNP_INTERNAL_H

#include <openssl/x509.h>

#include "sealpod/snp.h"

#define SNP_OID_PREFIX "1.3.6.1.4.1.3704.1."
/* Product names the sim PSP puts in its certificates; a verifier treats
 * any product starting with this as sim and refuses it unless told to
 * trust the sim root. */
#define SNP_SIM_PRODUCT_PREFIX "Sim-"
#define SNP_SIM_PRODUCT "Sim-Milan"

int snp_vek_info_from_x509(sp_snp_vek_info *out, X509 *x, sp_err **err);
/* Parses PEM (one or more certificates) or a single DER certificate. */
int snp_load_certs(STACK_OF(X509) **out, const uint8_t *data, size_t len,
		   sp_err **err);
/* The certificate's DER bytes (new buffer). */
uint8_t *snp_x509_der(X509 *x, size_t *len);
/* The CN of a certificate's subject, or "?". */
void snp_x509_cn(X509 *x, char *out, size_t n);

#endif
