/* SPDX-License-Identifier: Apache-2.0 */
/* The guest's view of its TEE: fetch an attestation report over 64 bytes
 * of REPORT_DATA. The same code path serves SEV-SNP hardware
 * (/dev/sev-guest or configfs-tsm) and the sim TEE (a host-side "sim PSP"
 * reached over a dedicated virtio-serial port or, in native mode, a unix
 * socket); only the transport differs. */
#ifndef SEALPOD_TEE_H
#define SEALPOD_TEE_H

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_TEE_REPORT_DATA_LEN 64
#define SP_SNP_REPORT_LEN 1184
/* The virtio-serial port name the launcher gives the sim PSP channel. */
#define SP_SIM_PSP_PORT "sealpod.simpsp"

typedef struct sp_tee sp_tee;

/* spec: "auto" (SNP if the kernel offers it, else the sim port at
 * /dev/virtio-ports/sealpod.simpsp if present, else "none"), "snp",
 * "sim:PATH" (a character device or unix socket of a sim PSP), "none". */
SP_PUBLIC int sp_tee_open(sp_tee **out, const char *spec, sp_err **err);
/* "snp", "sim" or "none". */
SP_PUBLIC const char *sp_tee_kind(const sp_tee *t);
/* A report (SP_SNP_REPORT_LEN bytes) whose REPORT_DATA is report_data;
 * *certs gets the certificate table or chain when the TEE provides one
 * (may be NULL/0). With "none" this fails with SP_ERR_UNSUPPORTED. */
SP_PUBLIC int sp_tee_get_report(sp_tee *t,
				const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
				uint8_t **report, size_t *report_len,
				uint8_t **certs, size_t *certs_len, sp_err **err);
SP_PUBLIC void sp_tee_free(sp_tee *t);

#endif
