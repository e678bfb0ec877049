/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod run --attest`: ask the guest for a report over a fresh nonce,
 * verify it and print the claims. The expected measurement is what the
 * calculator predicts for this guest image and vCPU count; the expected
 * HOST_DATA is the policy's hash. */
#include <string.h>
#include <sys/random.h>

#include "run.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/policy.h"
#include "sealpod/sandbox.h"
#include "sealpod/snp.h"

int run_attest(sp_sandbox *sb, const struct run_opts *o, const sp_runtime_config *cfg,
	       const sp_policy *policy, sp_err **err)
{
	uint8_t nonce[SP_TEE_REPORT_DATA_LEN];
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
		return sp_error_sys(err, errno, "getrandom for the attestation nonce");
	_cleanup_free_ uint8_t *report = NULL, *certs = NULL;
	_cleanup_free_ char *tee = NULL;
	size_t rlen = 0, clen = 0;
	run_progress("attesting: asking the guest for a report over a fresh nonce");
	if (sp_sandbox_get_report(sb, nonce, sizeof(nonce), &report, &rlen, &certs, &clen, &tee,
				  err) < 0)
		return sp_error_wrap(err, "--attest");

	sp_snp_verifier *v = sp_snp_verifier_new();
	_cleanup_json_ json_t *claims = NULL;
	int r = 0;
	bool sim = !strcmp(tee, "sim");
	if (sim) {
		/* The sim root is trusted here only because this command
		 * started the sim TEE itself; a remote verifier would not. */
		sp_simpsp_config pc;
		sp_simpsp_config_init(&pc);
		sp_simpsp *psp = NULL;
		if ((r = sp_simpsp_new(&psp, &pc, err)) < 0)
			goto out;
		_cleanup_free_ uint8_t *root = NULL;
		size_t root_len;
		r = sp_read_file(&root, &root_len, sp_simpsp_root_path(psp), 1u << 20, err);
		sp_simpsp_free(psp);
		if (r < 0 || (r = sp_snp_verifier_trust_sim_root(v, root, root_len, err)) < 0)
			goto out;
	}
	if (clen && (r = sp_snp_verifier_add_cert_table(v, certs, clen, err)) < 0)
		goto out;

	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	a.allow_sim = sim;
	a.check_host_data = true;
	sp_policy_hash(policy, a.host_data);
	a.check_report_data = true;
	memcpy(a.report_data, nonce, sizeof(nonce));
	uint8_t expect[SP_SNP_MEASUREMENT_LEN];
	bool predicted = false;
	if (!strcmp(cfg->backend, "vm") && (sim || o->guest_dir)) {
		sp_snp_measure_opts mo;
		sp_sandbox_launch_measure_opts(&mo, cfg);
		if ((r = sp_snp_measure(expect, &mo, err)) < 0) {
			sp_error_wrap(err, "predicting the launch measurement");
			goto out;
		}
		a.measurements = (const uint8_t (*)[SP_SNP_MEASUREMENT_LEN])expect;
		a.n_measurements = 1;
		predicted = true;
	}
	if ((r = sp_snp_verify(v, report, rlen, &a, &claims, err)) < 0) {
		sp_error_wrap(err, "--attest: the guest's report");
		goto out;
	}
	char hex[2 * SP_SNP_MEASUREMENT_LEN + 1];
	json_t *summary = json_object();
	json_object_set_new(summary, "root_of_trust", json_string(sim ? "sim (NOT AMD: no confidentiality)" : "AMD"));
	json_object_set(summary, "measurement", json_object_get(claims, "measurement"));
	if (predicted) {
		sp_hex_encode(hex, expect, sizeof(expect));
		json_object_set_new(summary, "measurement_predicted", json_string(hex));
		json_object_set_new(summary, "measurement_matches", json_true());
	}
	sp_hex_encode(hex, a.host_data, SP_SNP_HOST_DATA_LEN);
	json_object_set_new(summary, "policy_hash", json_string(hex));
	json_object_set(summary, "host_data", json_object_get(claims, "host_data"));
	json_object_set_new(summary, "host_data_matches", json_true());
	json_object_set_new(summary, "report_data_bound", json_true());
	json_object_set(summary, "reported_tcb", json_object_get(claims, "reported_tcb"));
	json_object_set(summary, "verified", json_object_get(claims, "verified"));
	char *txt = sp_json_dump_pretty(summary);
	json_decref(summary);
	printf("%s\n", txt);
	fflush(stdout);
	free(txt);
out:
	sp_snp_verifier_free(v);
	return r;
}
