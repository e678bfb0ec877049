/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod-kbs: the broker's configuration and its HTTP handlers. */
#ifndef SEALPOD_KBS_SERVER_H
#define SEALPOD_KBS_SERVER_H

#include <microhttpd.h>

#include "sealpod/kbs.h"
#include "sealpod/snp.h"

struct kbs_config {
	sp_kbs_store *store;
	sp_kbs_key *token_key;   /* ES256 key that signs attestation tokens */
	char *admin_token;       /* NULL: the admin API is refused */
	bool allow_sim;
	uint8_t *sim_root;       /* PEM of the trusted sim root */
	size_t sim_root_len;
	const char *kds_cache;   /* NULL: no KDS */
	bool kds_offline;
	/* Broker-wide appraisal: empty lists accept any value. */
	uint8_t (*measurements)[SP_SNP_MEASUREMENT_LEN];
	size_t n_measurements;
	uint8_t (*host_data)[SP_SNP_HOST_DATA_LEN];
	size_t n_host_data;
	bool check_min_tcb;
	sp_snp_tcb min_tcb;
	int session_ttl;
};

/* The libmicrohttpd access handler and completion callback; cls is the
 * struct kbs_config. Requests are served one at a time (one polling
 * thread), so the store and the verifier need no locks. */
enum MHD_Result kbs_handle(void *cls, struct MHD_Connection *conn, const char *url,
			   const char *method, const char *version, const char *upload,
			   size_t *upload_size, void **con_cls);
void kbs_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		   enum MHD_RequestTerminationCode toe);

#endif
