/* SPDX-License-Identifier: Apache-2.0 */
/* The field-by-field JSON form of an SEV-SNP report that CoCo's guest
 * components send (the serde layout of the virtee `sev` crate 6.x/7.x,
 * which both guest-components' SNP attester and Trustee's verifier use),
 * to and from the 1184 report bytes. Guest-safe.
 *
 * The object carries the named fields only, not the reserved bytes, so the
 * bytes are rebuilt with reserved areas zero (as the firmware writes them;
 * Trustee rebuilds them the same way before checking the signature). The
 * signature covers the rebuilt bytes, so a member we do not model cannot
 * change what is verified: it is ignored, and if it mattered the signature
 * fails. docs/kbs.md has the layout. */
#include <string.h>

#include "kbs-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"
#include "sealpod/snp.h"

/* An unsigned integer member no larger than max. Option<T> members may be
 * missing or null (then *present = false and *v = 0). */
static int get_uint(const json_t *o, const char *key, uint64_t max, bool optional,
		    uint64_t *v, bool *present, sp_err **err)
{
	json_t *m = json_object_get(o, key);
	*v = 0;
	if (present)
		*present = false;
	if (!m || json_is_null(m)) {
		if (optional)
			return 0;
		return sp_error(err, SP_ERR_PARSE, "attestation_report.%s: missing", key);
	}
	json_int_t x = json_is_integer(m) ? json_integer_value(m) : -1;
	if (x < 0 || (uint64_t)x > max)
		return sp_error(err, SP_ERR_PARSE,
				"attestation_report.%s: want an integer 0..%llu", key,
				(unsigned long long)max);
	*v = (uint64_t)x;
	if (present)
		*present = true;
	return 0;
}

/* A byte array member: exactly n integers 0..255 (serde's [u8; N]). */
static int get_bytes(const json_t *o, const char *key, uint8_t *out, size_t n, sp_err **err)
{
	json_t *a = json_object_get(o, key);
	if (!json_is_array(a) || json_array_size(a) != n)
		return sp_error(err, SP_ERR_PARSE,
				"attestation_report.%s: want an array of %zu byte values", key, n);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		json_int_t x = json_is_integer(e) ? json_integer_value(e) : -1;
		if (x < 0 || x > 255)
			return sp_error(err, SP_ERR_PARSE,
					"attestation_report.%s[%zu]: not a byte value", key, i);
		out[i] = (uint8_t)x;
	}
	return 0;
}

/* TcbVersion: {"fmc": u8|null, "bootloader", "tee", "snp", "microcode"}. */
static int get_tcb(const json_t *o, const char *key, sp_snp_tcb *t, sp_err **err)
{
	json_t *m = json_object_get(o, key);
	uint64_t v[5];
	static const char *const names[] = {"fmc", "bootloader", "tee", "snp", "microcode"};
	if (!json_is_object(m))
		return sp_error(err, SP_ERR_PARSE,
				"attestation_report.%s: want an object {bootloader, tee, snp, "
				"microcode, fmc}", key);
	for (size_t i = 0; i < 5; i++) {
		if (get_uint(m, names[i], 255, i == 0, &v[i], NULL, err) < 0)
			return sp_error_wrap(err, "attestation_report.%s", key);
	}
	*t = (sp_snp_tcb){.fmc = (uint8_t)v[0], .bl = (uint8_t)v[1], .tee = (uint8_t)v[2],
			  .snp = (uint8_t)v[3], .ucode = (uint8_t)v[4]};
	return 0;
}

/* Version: {"major", "minor", "build"}. */
static int get_version(const json_t *o, const char *key, uint8_t *major, uint8_t *minor,
		       uint8_t *build, sp_err **err)
{
	json_t *m = json_object_get(o, key);
	uint64_t a, b, c;
	if (!json_is_object(m))
		return sp_error(err, SP_ERR_PARSE,
				"attestation_report.%s: want an object {major, minor, build}", key);
	if (get_uint(m, "major", 255, false, &a, NULL, err) < 0 ||
	    get_uint(m, "minor", 255, false, &b, NULL, err) < 0 ||
	    get_uint(m, "build", 255, false, &c, NULL, err) < 0)
		return sp_error_wrap(err, "attestation_report.%s", key);
	*major = (uint8_t)a;
	*minor = (uint8_t)b;
	*build = (uint8_t)c;
	return 0;
}

int sp_kbs_sev_report_from_json(uint8_t out[SP_SNP_REPORT_LEN], const json_t *obj,
				sp_err **err)
{
	sp_snp_report r;
	sp_snp_tcb cur, rep, com, lau;
	uint64_t v;
	bool have;
	int rc;
	memset(&r, 0, sizeof(r));
	if (!json_is_object(obj))
		return sp_error(err, SP_ERR_PARSE, "attestation_report: want an object");
#define U(key, max, field)                                                        \
	do {                                                                      \
		if ((rc = get_uint(obj, key, max, false, &v, NULL, err)) < 0)     \
			return rc;                                                \
		r.field = v;                                                      \
	} while (0)
#define B(key, field)                                                             \
	do {                                                                      \
		if ((rc = get_bytes(obj, key, r.field, sizeof(r.field), err)) < 0) \
			return rc;                                                \
	} while (0)
	U("version", UINT32_MAX, version);
	U("guest_svn", UINT32_MAX, guest_svn);
	/* bitfields serialize as their integer (jansson's json_int_t is
	 * signed: values past 2^63 are refused by the JSON parser). */
	U("policy", INT64_MAX, policy);
	B("family_id", family_id);
	B("image_id", image_id);
	U("vmpl", UINT32_MAX, vmpl);
	U("sig_algo", UINT32_MAX, signature_algo);
	U("plat_info", INT64_MAX, platform_info);
	U("key_info", UINT32_MAX, signer_info);
	B("report_data", report_data);
	B("measurement", measurement);
	B("host_data", host_data);
	B("id_key_digest", id_key_digest);
	B("author_key_digest", author_key_digest);
	B("report_id", report_id);
	B("report_id_ma", report_id_ma);
	B("chip_id", chip_id);
#undef U
#undef B
	if ((rc = get_uint(obj, "cpuid_fam_id", 255, true, &v, NULL, err)) < 0)
		return rc;
	r.cpuid_fam_id = (uint8_t)v;
	if ((rc = get_uint(obj, "cpuid_mod_id", 255, true, &v, NULL, err)) < 0)
		return rc;
	r.cpuid_mod_id = (uint8_t)v;
	if ((rc = get_uint(obj, "cpuid_step", 255, true, &v, NULL, err)) < 0)
		return rc;
	r.cpuid_step = (uint8_t)v;
	if ((rc = get_uint(obj, "launch_mit_vector", INT64_MAX, true, &v, &have, err)) < 0)
		return rc;
	r.launch_mit_vector = v;
	if ((rc = get_uint(obj, "current_mit_vector", INT64_MAX, true, &v, &have, err)) < 0)
		return rc;
	r.current_mit_vector = v;
	if ((rc = get_tcb(obj, "current_tcb", &cur, err)) < 0 ||
	    (rc = get_tcb(obj, "reported_tcb", &rep, err)) < 0 ||
	    (rc = get_tcb(obj, "committed_tcb", &com, err)) < 0 ||
	    (rc = get_tcb(obj, "launch_tcb", &lau, err)) < 0 ||
	    (rc = get_version(obj, "current", &r.current_major, &r.current_minor,
			      &r.current_build, err)) < 0 ||
	    (rc = get_version(obj, "committed", &r.committed_major, &r.committed_minor,
			      &r.committed_build, err)) < 0)
		return rc;
	json_t *sig = json_object_get(obj, "signature");
	if (!json_is_object(sig))
		return sp_error(err, SP_ERR_PARSE,
				"attestation_report.signature: want an object {r, s}");
	if ((rc = get_bytes(sig, "r", r.sig_r, sizeof(r.sig_r), err)) < 0 ||
	    (rc = get_bytes(sig, "s", r.sig_s, sizeof(r.sig_s), err)) < 0)
		return sp_error_wrap(err, "attestation_report.signature");
	/* The TCB byte layout follows the CPU generation, found as the sev
	 * crate finds it: CPUID for v3+, the chip id's shape for v2. */
	int cpu = sp_snp_report_cpu(&r);
	r.current_tcb = sp_snp_tcb_encode(&cur, cpu);
	r.reported_tcb = sp_snp_tcb_encode(&rep, cpu);
	r.committed_tcb = sp_snp_tcb_encode(&com, cpu);
	r.launch_tcb = sp_snp_tcb_encode(&lau, cpu);
	sp_snp_report_encode(&r, out);
	/* Whatever the members said, the bytes must be a report we parse
	 * (version, algorithm, must-be-zero fields). */
	sp_snp_report check;
	if ((rc = sp_snp_report_parse(&check, out, SP_SNP_REPORT_LEN, err)) < 0)
		return sp_error_wrap(err, "attestation_report (object form)");
	return 0;
}

static json_t *bytes_json(const uint8_t *b, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(b[i]));
	return a;
}

static json_t *tcb_json(uint64_t raw, int cpu)
{
	sp_snp_tcb t;
	sp_snp_tcb_decode(raw, cpu, &t);
	json_t *fmc = cpu == SP_SNP_CPU_TURIN ? json_integer(t.fmc) : json_null();
	return json_pack("{s:o,s:i,s:i,s:i,s:i}", "fmc", fmc, "bootloader", t.bl, "tee", t.tee,
			 "snp", t.snp, "microcode", t.ucode);
}

static json_t *opt_json(bool present, uint64_t v)
{
	return present ? json_integer((json_int_t)v) : json_null();
}

int sp_kbs_sev_report_to_json(json_t **out, const uint8_t *report, size_t len, sp_err **err)
{
	sp_snp_report r;
	int rc;
	*out = NULL;
	if ((rc = sp_snp_report_parse(&r, report, len, err)) < 0)
		return rc;
	if (r.policy > INT64_MAX || r.platform_info > INT64_MAX ||
	    r.launch_mit_vector > INT64_MAX || r.current_mit_vector > INT64_MAX)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"report: a 64-bit field beyond 2^63 has no JSON integer here");
	int cpu = sp_snp_report_cpu(&r);
	bool v3 = r.version >= 3, v5 = r.version >= 5;
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(r.version));
	json_object_set_new(o, "guest_svn", json_integer(r.guest_svn));
	json_object_set_new(o, "policy", json_integer((json_int_t)r.policy));
	json_object_set_new(o, "family_id", bytes_json(r.family_id, 16));
	json_object_set_new(o, "image_id", bytes_json(r.image_id, 16));
	json_object_set_new(o, "vmpl", json_integer(r.vmpl));
	json_object_set_new(o, "sig_algo", json_integer(r.signature_algo));
	json_object_set_new(o, "current_tcb", tcb_json(r.current_tcb, cpu));
	json_object_set_new(o, "plat_info", json_integer((json_int_t)r.platform_info));
	json_object_set_new(o, "key_info", json_integer(r.signer_info));
	json_object_set_new(o, "report_data", bytes_json(r.report_data, 64));
	json_object_set_new(o, "measurement", bytes_json(r.measurement, 48));
	json_object_set_new(o, "host_data", bytes_json(r.host_data, 32));
	json_object_set_new(o, "id_key_digest", bytes_json(r.id_key_digest, 48));
	json_object_set_new(o, "author_key_digest", bytes_json(r.author_key_digest, 48));
	json_object_set_new(o, "report_id", bytes_json(r.report_id, 32));
	json_object_set_new(o, "report_id_ma", bytes_json(r.report_id_ma, 32));
	json_object_set_new(o, "reported_tcb", tcb_json(r.reported_tcb, cpu));
	json_object_set_new(o, "cpuid_fam_id", opt_json(v3, r.cpuid_fam_id));
	json_object_set_new(o, "cpuid_mod_id", opt_json(v3, r.cpuid_mod_id));
	json_object_set_new(o, "cpuid_step", opt_json(v3, r.cpuid_step));
	json_object_set_new(o, "chip_id", bytes_json(r.chip_id, 64));
	json_object_set_new(o, "committed_tcb", tcb_json(r.committed_tcb, cpu));
	json_object_set_new(o, "current",
			    json_pack("{s:i,s:i,s:i}", "major", r.current_major, "minor",
				      r.current_minor, "build", r.current_build));
	json_object_set_new(o, "committed",
			    json_pack("{s:i,s:i,s:i}", "major", r.committed_major, "minor",
				      r.committed_minor, "build", r.committed_build));
	json_object_set_new(o, "launch_tcb", tcb_json(r.launch_tcb, cpu));
	json_object_set_new(o, "launch_mit_vector", opt_json(v5, r.launch_mit_vector));
	json_object_set_new(o, "current_mit_vector", opt_json(v5, r.current_mit_vector));
	json_object_set_new(o, "signature",
			    json_pack("{s:o,s:o}", "r", bytes_json(r.sig_r, 72), "s",
				      bytes_json(r.sig_s, 72)));
	/* The object must give back the same bytes, or it is no use to a
	 * verifier (reserved bytes that are not zero cannot be carried). */
	uint8_t back[SP_SNP_REPORT_LEN];
	if ((rc = sp_kbs_sev_report_from_json(back, o, err)) < 0 ||
	    memcmp(back, report, SP_SNP_REPORT_LEN)) {
		json_decref(o);
		if (rc < 0)
			return rc;
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"report: its reserved bytes are not zero, so the field-by-field "
				"form cannot carry it; send it as base64");
	}
	*out = o;
	return 0;
}

int sp_kbs_evidence_to_sev(json_t *evidence, sp_err **err)
{
	json_t *rep = json_object_get(evidence, "attestation_report");
	json_t *cc = json_object_get(evidence, "cert_chain");
	_cleanup_free_ uint8_t *bytes = NULL;
	size_t n = 0;
	int rc;
	if (!json_is_string(rep))
		return sp_error(err, SP_ERR_INVALID, "evidence: attestation_report is not base64");
	if ((rc = sp_base64_decode(&bytes, &n, json_string_value(rep), json_string_length(rep),
				   SP_B64_STD, err)) < 0)
		return sp_error_wrap(err, "evidence: attestation_report");
	json_t *obj = NULL;
	if ((rc = sp_kbs_sev_report_to_json(&obj, bytes, n, err)) < 0)
		return rc;
	json_object_set_new(evidence, "attestation_report", obj);
	if (!json_is_array(cc))
		return 0;
	size_t i;
	json_t *e;
	json_array_foreach(cc, i, e) {
		json_t *d = json_object_get(e, "data");
		_cleanup_free_ uint8_t *der = NULL;
		size_t dl = 0;
		if (!json_is_string(d) ||
		    sp_base64_decode(&der, &dl, json_string_value(d), json_string_length(d),
				     SP_B64_STD, err) < 0)
			return sp_error(err, SP_ERR_INVALID, "evidence: cert_chain[%zu]", i);
		json_object_set_new(e, "data", bytes_json(der, dl));
	}
	return 0;
}
