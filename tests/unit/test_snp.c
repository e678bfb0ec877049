/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP: report codec, verifier on real AMD-signed vectors, appraisal,
 * certificate table, KDS cache, launch digest API, sim PSP and guest TEE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/snp.h"
#include "vectors.h"
#include "sealpod/tee.h"
#include "snp/tee-abi.h"

#define VEC SP_SOURCE_ROOT "/tests/vectors/snp/"
#define MVEC SP_SOURCE_ROOT "/tests/vectors/measure/"

static void add_file(sp_snp_verifier *v, const char *path)
{
	size_t n;
	uint8_t *d = load_vector(path, &n);
	sp_err *err = NULL;
	if (sp_snp_verifier_add_certs(v, d, n, &err) < 0)
		fail_msg("%s: %s", path, sp_err_msg(err));
	free(d);
}

struct vcase {
	const char *name, *report, *vek, *chain;
	time_t at;
	bool debug;
};

static const struct vcase cases[] = {
	{"gsg-milan-v2", VEC "go-sev-guest/verify_testdata_attestation.bin",
	 VEC "go-sev-guest/verify_testdata_vcek.testcer",
	 VEC "go-sev-guest/verify_trust_ask_ark_milan.pem", 0, true},
	{"virtee-milan-v2", VEC "virtee-sev/tests_certs_data_report_milan.hex",
	 VEC "virtee-sev/tests_certs_data_vcek_milan.der",
	 VEC "virtee-sev/tests_certs_data_cert_chain_milan", 0, false},
	{"trustee-milan-v2", VEC "trustee/deps_verifier_test_data_snp_test-report.bin",
	 VEC "trustee/deps_verifier_test_data_snp_test-vcek.der",
	 VEC "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem", 0, false},
	{"trustee-milan-v3-vlek",
	 VEC "trustee/deps_verifier_test_data_snp_test-vlek-report.bin",
	 VEC "trustee/deps_verifier_test_data_snp_test-vlek.der",
	 VEC "trustee/deps_verifier_src_snp_milan_ask_ark_asvk.pem",
	 1748736000 /* 2025-06-01 */, false},
	{"ms-aci-milan-v2", VEC "ms-aci/pkg_attest_test_data_snp_report.bin",
	 VEC "ms-aci/DERIVED_vcek.pem", VEC "ms-aci/DERIVED_ask_ark.pem", 0,
	 false},
};

static sp_snp_verifier *verifier_for(const struct vcase *c)
{
	sp_snp_verifier *v = sp_snp_verifier_new();
	add_file(v, c->chain);
	add_file(v, c->vek);
	return v;
}

static int verify_case(sp_snp_verifier *v, const struct vcase *c,
		       const uint8_t *rep, size_t len, sp_err **err)
{
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	a.at = c->at;
	a.allow_debug = c->debug;
	return sp_snp_verify(v, rep, len, &a, NULL, err);
}

static void test_builtin_root_fingerprints(void **state)
{
	static const char *want[] = {
		"69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
		"4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
		"1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
	};
	size_t n;
	const sp_snp_builtin_root *r = sp_snp_builtin_roots(&n);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		BIO *b = BIO_new_mem_buf(r[i].ark_pem, -1);
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		assert_non_null(x);
		unsigned char *der = NULL;
		int dl = i2d_X509(x, &der);
		uint8_t h[32];
		char hex[65];
		sp_sha256(h, der, (size_t)dl);
		sp_hex_encode(hex, h, 32);
		assert_string_equal(hex, want[i]);
		OPENSSL_free(der);
		X509_free(x);
		BIO_free(b);
	}
}

static void test_vectors_verify(void **state)
{
	for (size_t i = 0; i < SP_ARRAY_LEN(cases); i++) {
		const struct vcase *c = &cases[i];
		size_t len;
		uint8_t *rep = load_vector(c->report, &len);
		sp_snp_verifier *v = verifier_for(c);
		sp_err *err = NULL;
		if (verify_case(v, c, rep, len, &err) < 0)
			fail_msg("%s: %s", c->name, sp_err_msg(err));
		/* Round trip of the codec on real reports. */
		sp_snp_report r;
		uint8_t enc[SP_SNP_REPORT_LEN];
		assert_int_equal(sp_snp_report_parse(&r, rep, len, NULL), 0);
		sp_snp_report_encode(&r, enc);
		assert_memory_equal(enc, rep, SP_SNP_REPORT_LEN);
		sp_snp_verifier_free(v);
		free(rep);
	}
}

static void test_vector_facts(void **state)
{
	size_t len;
	sp_snp_report r;
	sp_snp_tcb t;
	uint8_t *rep = load_vector(cases[0].report, &len);
	assert_int_equal(sp_snp_report_parse(&r, rep, len, NULL), 0);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.policy, 0xb0000);
	static const uint8_t rd[5] = {1, 2, 3, 4, 5};
	assert_memory_equal(r.report_data, rd, 5);
	sp_snp_tcb_decode(r.reported_tcb, SP_SNP_CPU_MILAN, &t);
	assert_int_equal(t.bl, 2);
	assert_int_equal(t.tee, 0);
	assert_int_equal(t.snp, 5);
	assert_int_equal(t.ucode, 68);
	free(rep);

	rep = load_vector(cases[1].report, &len);
	assert_int_equal(sp_snp_report_parse(&r, rep, len, NULL), 0);
	sp_snp_tcb_decode(r.reported_tcb, SP_SNP_CPU_MILAN, &t);
	assert_int_equal(t.bl, 3);
	assert_int_equal(t.snp, 8);
	assert_int_equal(t.ucode, 115);
	json_t *j = sp_snp_report_to_json(&r, SP_SNP_CPU_UNKNOWN);
	assert_string_equal(json_string_value(json_object_get(j, "cpu")), "Milan");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(j, "reported_tcb"), "ucode")),
			 115);
	json_decref(j);
	free(rep);

	rep = load_vector(cases[3].report, &len);
	assert_int_equal(sp_snp_report_parse(&r, rep, len, NULL), 0);
	assert_int_equal(r.version, 3);
	assert_int_equal(sp_snp_signing_key(&r), SP_SNP_KEY_VLEK);
	assert_int_equal(r.vmpl, 1);
	assert_int_equal(sp_snp_report_cpu(&r), SP_SNP_CPU_MILAN);
	free(rep);

	/* The Turin layout puts FMC first. */
	static const sp_snp_tcb turin = {.fmc = 1, .bl = 2, .tee = 3, .snp = 4,
					 .ucode = 5};
	uint64_t raw = sp_snp_tcb_encode(&turin, SP_SNP_CPU_TURIN);
	assert_true(raw == 0x0500000004030201ull);
	sp_snp_tcb_decode(raw, SP_SNP_CPU_TURIN, &t);
	assert_memory_equal(&t, &turin, sizeof(t));
	sp_snp_tcb_decode(0x7300000000000203ull, SP_SNP_CPU_MILAN, &t);
	assert_int_equal(t.bl, 3);
	assert_int_equal(t.tee, 2);
	assert_int_equal(t.ucode, 0x73);
}

/* Flipping any one bit of the signed bytes must make verification fail.
 * The chain is verified once and cached, so this is quick. */
static void test_every_bit_flip_fails(void **state)
{
	const struct vcase *c = &cases[2];
	size_t len;
	uint8_t *rep = load_vector(c->report, &len);
	sp_snp_verifier *v = verifier_for(c);
	assert_int_equal(verify_case(v, c, rep, len, NULL), 0);
	size_t failures = 0;
	for (size_t byte = 0; byte < SP_SNP_SIGNED_LEN; byte++)
		for (int bit = 0; bit < 8; bit++) {
			rep[byte] ^= (uint8_t)(1u << bit);
			sp_err *err = NULL;
			if (verify_case(v, c, rep, len, &err) < 0)
				failures++;
			else
				fail_msg("flip of byte 0x%zx bit %d verified",
					 byte, bit);
			sp_err_clear(&err);
			rep[byte] ^= (uint8_t)(1u << bit);
		}
	assert_int_equal(failures, SP_SNP_SIGNED_LEN * 8);
	assert_int_equal(verify_case(v, c, rep, len, NULL), 0);
	/* And a flipped signature bit too. */
	rep[0x2A0] ^= 1;
	assert_int_not_equal(verify_case(v, c, rep, len, NULL), 0);
	sp_snp_verifier_free(v);
	free(rep);
}

static void test_upstream_mutations(void **state)
{
	sp_err *err = NULL;
	size_t len;
	/* virtee: byte 21 bit 7 */
	uint8_t *rep = load_vector(cases[1].report, &len);
	sp_snp_verifier *v = verifier_for(&cases[1]);
	rep[21] ^= 0x80;
	assert_int_equal(verify_case(v, &cases[1], rep, len, &err),
			 SP_ERR_SIGNATURE);
	sp_err_clear(&err);
	sp_snp_verifier_free(v);
	free(rep);

	/* trustee: byte 42 + 1 -> signature; byte 0x180 + 1 -> TCB */
	rep = load_vector(cases[2].report, &len);
	v = verifier_for(&cases[2]);
	rep[42]++;
	assert_int_equal(verify_case(v, &cases[2], rep, len, &err),
			 SP_ERR_SIGNATURE);
	assert_non_null(strstr(sp_err_msg(err), "signature"));
	sp_err_clear(&err);
	rep[42]--;
	rep[0x180]++;
	assert_int_equal(verify_case(v, &cases[2], rep, len, &err),
			 SP_ERR_CERTIFICATE);
	assert_non_null(strstr(sp_err_msg(err), "reported_tcb"));
	sp_err_clear(&err);
	rep[0x180]--;
	/* The chip id is checked against the VCEK's hwID. */
	rep[0x1A0] ^= 1;
	assert_int_equal(verify_case(v, &cases[2], rep, len, &err),
			 SP_ERR_CERTIFICATE);
	assert_non_null(strstr(sp_err_msg(err), "chip_id"));
	sp_err_clear(&err);
	sp_snp_verifier_free(v);
	free(rep);
}

static void test_vlek_time_window(void **state)
{
	const struct vcase *c = &cases[3];
	size_t len;
	uint8_t *rep = load_vector(c->report, &len);
	sp_snp_verifier *v = verifier_for(c);
	struct vcase k = *c;
	sp_err *err = NULL;
	assert_int_equal(verify_case(v, &k, rep, len, NULL), 0);
	k.at = 0; /* now: after 2025-12-10 */
	assert_int_equal(verify_case(v, &k, rep, len, &err), SP_ERR_CERTIFICATE);
	assert_non_null(strstr(sp_err_msg(err), "expired"));
	sp_err_clear(&err);
	k.at = 1733011200; /* 2024-12-01, before the VLEK */
	assert_int_equal(verify_case(v, &k, rep, len, &err), SP_ERR_CERTIFICATE);
	assert_non_null(strstr(sp_err_msg(err), "not valid yet"));
	sp_err_clear(&err);
	/* The VLEK's claims name the CSP. */
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	a.at = c->at;
	a.vmpl = 0;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "vmpl"));
	sp_err_clear(&err);
	a.vmpl = 1;
	json_t *claims = NULL;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, &claims, NULL), 0);
	json_t *vj = json_object_get(claims, "verified");
	assert_string_equal(json_string_value(json_object_get(vj, "csp_id")),
			    "CN=cc-us-east-2.amazonaws.com");
	assert_string_equal(json_string_value(json_object_get(vj, "signer")),
			    "vlek");
	json_decref(claims);
	sp_snp_verifier_free(v);
	free(rep);
}

static void test_invalid_certs(void **state)
{
	static const char *files[] = {
		VEC "trustee/deps_verifier_test_data_snp_test-vcek-invalid-legacy.der",
		VEC "trustee/deps_verifier_test_data_snp_test-vcek-invalid-new.der",
	};
	size_t len;
	uint8_t *rep = load_vector(cases[2].report, &len);
	for (size_t i = 0; i < 2; i++) {
		size_t n;
		uint8_t *der = load_vector(files[i], &n);
		/* The hwID parses in both encodings ... */
		sp_snp_vek_info info;
		assert_int_equal(sp_snp_vek_info_parse(&info, der, n, NULL), 0);
		assert_int_equal(info.hwid_len, 64);
		/* ... but the certificate does not verify. */
		sp_snp_verifier *v = sp_snp_verifier_new();
		assert_int_equal(sp_snp_verifier_add_certs(v, der, n, NULL), 0);
		sp_err *err = NULL;
		assert_int_not_equal(verify_case(v, &cases[2], rep, len, &err), 0);
		sp_err_clear(&err);
		sp_snp_verifier_free(v);
		free(der);
	}
	free(rep);
	/* Turin VCEK: FMC SPL and an 8-byte hwID. */
	size_t n;
	uint8_t *der = load_vector(VEC "virtee-sev/tests_certs_data_vcek_turin.der", &n);
	sp_snp_vek_info info;
	assert_int_equal(sp_snp_vek_info_parse(&info, der, n, NULL), 0);
	assert_string_equal(info.product, "Turin");
	assert_true(info.has_fmc);
	assert_int_equal(info.struct_version, 1);
	assert_int_equal(info.hwid_len, 8);
	static const uint8_t hw[8] = {0x1e, 0x55, 0x0a, 0x8e, 0xe5, 0xcf, 0x9f, 0x4d};
	assert_memory_equal(info.hwid, hw, 8);
	free(der);
}

static void test_appraisal(void **state)
{
	sp_err *err = NULL;
	size_t len;
	/* debug refused unless allowed */
	uint8_t *rep = load_vector(cases[0].report, &len);
	sp_snp_verifier *v = verifier_for(&cases[0]);
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "debug"));
	sp_err_clear(&err);
	a.allow_debug = true;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, NULL), 0);
	/* report data binding */
	a.check_report_data = true;
	a.report_data[0] = 1;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "report-data"));
	sp_err_clear(&err);
	memcpy(a.report_data, (uint8_t[]){1, 2, 3, 4, 5}, 5);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, NULL), 0);
	/* minimum TCB */
	a.check_min_tcb = true;
	assert_int_equal(sp_snp_tcb_parse(&a.min_tcb, "bl=2,snp=5,ucode=68", NULL), 0);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, NULL), 0);
	a.min_tcb.ucode = 69;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "min-tcb"));
	sp_err_clear(&err);
	assert_int_not_equal(sp_snp_tcb_parse(&a.min_tcb, "bl=300", &err), 0);
	sp_err_clear(&err);
	a.check_min_tcb = false;
	/* measurements */
	sp_snp_report r;
	sp_snp_report_parse(&r, rep, len, NULL);
	uint8_t meas[2][48];
	memset(meas, 0x11, sizeof(meas));
	a.measurements = (const uint8_t(*)[48])meas;
	a.n_measurements = 2;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "measurement"));
	sp_err_clear(&err);
	memcpy(meas[1], r.measurement, 48);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, NULL), 0);
	sp_snp_verifier_free(v);
	free(rep);

	/* ms-aci: HOST_DATA is the SHA-256 of the decoded policy. */
	rep = load_vector(cases[4].report, &len);
	v = verifier_for(&cases[4]);
	size_t pn;
	uint8_t *pol64 = load_vector(VEC "ms-aci/pkg_attest_test_data_uvm_security_policy.base64", &pn);
	while (pn && (pol64[pn - 1] == '\n' || pol64[pn - 1] == '\r'))
		pn--;
	uint8_t *pol = NULL;
	size_t plen = 0;
	assert_int_equal(sp_base64_decode(&pol, &plen, (char *)pol64, pn,
					  SP_B64_STD, NULL), 0);
	sp_snp_appraisal_init(&a);
	a.check_host_data = true;
	sp_sha256(a.host_data, pol, plen);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, NULL), 0);
	a.host_data[31] ^= 1;
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "host-data"));
	sp_err_clear(&err);
	free(pol);
	free(pol64);
	sp_snp_verifier_free(v);
	free(rep);

	/* No VEK: the refusal says what is missing. */
	rep = load_vector(cases[2].report, &len);
	v = sp_snp_verifier_new();
	sp_snp_appraisal_init(&a);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err),
			 SP_ERR_NOT_FOUND);
	assert_non_null(strstr(sp_err_msg(err), "VCEK"));
	sp_err_clear(&err);
	sp_snp_verifier_free(v);
	free(rep);
}

static void test_report_parse_refusals(void **state)
{
	size_t len;
	uint8_t *rep = load_vector(cases[2].report, &len);
	sp_snp_report r;
	sp_err *err = NULL;
	assert_int_equal(sp_snp_report_parse(&r, rep, len - 1, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	rep[0] = 9;
	assert_int_equal(sp_snp_report_parse(&r, rep, len, &err), SP_ERR_PARSE);
	assert_non_null(strstr(sp_err_msg(err), "version"));
	sp_err_clear(&err);
	rep[0] = 2;
	rep[0x34] = 2;
	assert_int_equal(sp_snp_report_parse(&r, rep, len, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	rep[0x34] = 1;
	rep[0x2A0 + 60] = 1;
	assert_int_equal(sp_snp_report_parse(&r, rep, len, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	rep[0x2A0 + 60] = 0;
	rep[0x4B] = 0x80;
	assert_int_equal(sp_snp_report_parse(&r, rep, len, &err), SP_ERR_PARSE);
	sp_err_clear(&err);
	free(rep);
	/* v5 fields round-trip through the encoder. */
	memset(&r, 0, sizeof(r));
	r.version = 5;
	r.signature_algo = 1;
	r.launch_mit_vector = 0x1122;
	r.current_mit_vector = 0x3344;
	r.cpuid_fam_id = 0x1A;
	r.cpuid_mod_id = 0x02;
	uint8_t buf[SP_SNP_REPORT_LEN];
	sp_snp_report_encode(&r, buf);
	sp_snp_report back;
	assert_int_equal(sp_snp_report_parse(&back, buf, sizeof(buf), NULL), 0);
	assert_true(back.current_mit_vector == 0x3344);
	assert_int_equal(sp_snp_report_cpu(&back), SP_SNP_CPU_TURIN);
	json_t *j = sp_snp_report_to_json(&back, SP_SNP_CPU_UNKNOWN);
	assert_string_equal(json_string_value(json_object_get(j, "launch_mit_vector")),
			    "0x1122");
	assert_non_null(json_object_get(json_object_get(j, "reported_tcb"), "fmc"));
	json_decref(j);
}

static void test_cert_table_and_kds_cache(void **state)
{
	size_t vn;
	uint8_t *vcek = load_vector(cases[2].vek, &vn);
	int kinds[1] = {SP_SNP_CERT_VCEK};
	const uint8_t *ders[1] = {vcek};
	size_t lens[1] = {vn};
	size_t tlen;
	uint8_t *table = sp_snp_cert_table_build(kinds, ders, lens, 1, &tlen);
	sp_snp_cert_entry e[4];
	size_t n = 0;
	assert_int_equal(sp_snp_cert_table_parse(e, 4, &n, table, tlen, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].kind, SP_SNP_CERT_VCEK);
	assert_int_equal(e[0].len, vn);
	assert_memory_equal(e[0].der, vcek, vn);
	/* GUID bytes as the kernel lays them out. */
	static const uint8_t g[4] = {0x8d, 0x75, 0xda, 0x63};
	assert_memory_equal(table, g, 4);
	sp_err *err = NULL;
	assert_int_not_equal(sp_snp_cert_table_parse(e, 4, &n, table, 30, &err), 0);
	sp_err_clear(&err);
	sp_put_le32(table + 20, (uint32_t)tlen); /* length past the end */
	assert_int_not_equal(sp_snp_cert_table_parse(e, 4, &n, table, tlen, &err), 0);
	sp_err_clear(&err);
	free(table);

	/* KDS URLs */
	uint8_t chip[64];
	for (int i = 0; i < 64; i++)
		chip[i] = (uint8_t)i;
	sp_snp_tcb t = {.bl = 3, .tee = 0, .snp = 8, .ucode = 115, .fmc = 1};
	char *url = sp_snp_kds_vcek_url("Milan-B0", chip, &t, SP_SNP_CPU_UNKNOWN);
	assert_string_equal(url,
		"https://kdsintf.amd.com/vcek/v1/Milan/"
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		"?blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115");
	free(url);
	url = sp_snp_kds_vcek_url("Turin", chip, &t, SP_SNP_CPU_TURIN);
	assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Turin/"
				 "0001020304050607?fmcSPL=01&blSPL=03&teeSPL=00"
				 "&snpSPL=08&ucodeSPL=115");
	free(url);
	url = sp_snp_kds_chain_url("Genoa", true);
	assert_string_equal(url, "https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain");
	free(url);
	assert_null(sp_snp_kds_vcek_url("Bogus", chip, &t, SP_SNP_CPU_UNKNOWN));

	/* A verifier with only a KDS cache finds the VCEK there, offline. */
	char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "snp-kds", NULL), 0);
	size_t len;
	uint8_t *rep = load_vector(cases[2].report, &len);
	sp_snp_report r;
	sp_snp_report_parse(&r, rep, len, NULL);
	sp_snp_tcb_decode(r.reported_tcb, SP_SNP_CPU_MILAN, &t);
	url = sp_snp_kds_vcek_url("Milan", r.chip_id, &t, SP_SNP_CPU_MILAN);
	char *path = sp_snp_kds_cache_path(dir, url);
	sp_snp_verifier *v = sp_snp_verifier_new();
	sp_snp_verifier_set_kds(v, dir, true);
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	assert_int_equal(sp_snp_verify(v, rep, len, &a, NULL, &err), SP_ERR_NOT_FOUND);
	assert_non_null(strstr(sp_err_msg(err), "cache"));
	sp_err_clear(&err);
	assert_int_equal(sp_write_file_atomic(path, vcek, vn, 0644, NULL), 0);
	if (sp_snp_verify(v, rep, len, &a, NULL, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	sp_snp_verifier_free(v);
	sp_rm_rf(dir, NULL);
	free(path);
	free(url);
	free(dir);
	free(rep);
	free(vcek);
}

static void test_measure_api(void **state)
{
	sp_snp_measure_opts o;
	sp_snp_measure_opts_init(&o);
	o.ovmf = MVEC "ovmf_AmdSev_suffix.bin";
	o.vcpu_type = "EPYC-v4";
	uint8_t d[48];
	char hex[97];
	assert_int_equal(sp_snp_measure(d, &o, NULL), 0);
	sp_hex_encode(hex, d, 48);
	assert_string_equal(hex, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6"
				 "013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d");
	sp_err *err = NULL;
	o.vcpu_type = "Pentium";
	assert_int_equal(sp_snp_measure(d, &o, &err), SP_ERR_INVALID);
	sp_err_clear(&err);
	o.vcpu_type = "EPYC-v4";
	o.ovmf = MVEC "ovmf_OvmfX64_suffix.bin";
	o.kernel = MVEC "kernel-small.bin";
	assert_int_equal(sp_snp_measure(d, &o, &err), SP_ERR_INVALID);
	assert_non_null(strstr(sp_err_msg(err), "SNP_KERNEL_HASHES"));
	sp_err_clear(&err);
	/* sim direct boot measures the hashes at a fixed page instead. */
	o.sim_direct_boot = true;
	assert_int_equal(sp_snp_measure(d, &o, NULL), 0);
	uint8_t d2[48];
	o.append = "console=ttyS0";
	assert_int_equal(sp_snp_measure(d2, &o, NULL), 0);
	assert_memory_not_equal(d, d2, 48);
	/* Not firmware at all */
	o.ovmf = MVEC "kernel-small.bin";
	o.kernel = NULL;
	o.append = NULL;
	assert_int_not_equal(sp_snp_measure(d, &o, &err), 0);
	sp_err_clear(&err);
}

static char *sim_state(void)
{
	const char *b = getenv("SP_BUILD_ROOT");
	return sp_xasprintf("%s/snp-sim-state", b ? b : "/tmp");
}

static sp_simpsp *new_sim(void)
{
	char *st = sim_state();
	sp_simpsp_config cfg;
	sp_simpsp_config_init(&cfg);
	cfg.state_dir = st;
	memset(cfg.measurement, 0xab, 48);
	memset(cfg.host_data, 0xcd, 32);
	sp_simpsp *p = NULL;
	sp_err *err = NULL;
	if (sp_simpsp_new(&p, &cfg, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	free(st);
	return p;
}

static void trust_sim(sp_snp_verifier *v, sp_simpsp *p)
{
	size_t n;
	uint8_t *pem = load_vector(sp_simpsp_root_path(p), &n);
	assert_int_equal(sp_snp_verifier_trust_sim_root(v, pem, n, NULL), 0);
	free(pem);
}

static void test_sim_report_verifies_only_when_trusted(void **state)
{
	sp_simpsp *p = new_sim();
	uint8_t rd[64] = {7, 7, 7};
	uint8_t *rep = NULL, *certs = NULL;
	size_t rl, cl;
	assert_int_equal(sp_simpsp_make_report(p, rd, 0, &rep, &rl, &certs, &cl, NULL), 0);
	sp_err *err = NULL;
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	a.check_report_data = true;
	memcpy(a.report_data, rd, 64);
	a.check_host_data = true;
	memset(a.host_data, 0xcd, 32);

	/* Default: refused, and the reason says sim. */
	sp_snp_verifier *v = sp_snp_verifier_new();
	assert_int_equal(sp_snp_verifier_add_cert_table(v, certs, cl, NULL), 0);
	assert_int_not_equal(sp_snp_verify(v, rep, rl, &a, NULL, &err), 0);
	assert_non_null(strstr(sp_err_msg(err), "sim"));
	sp_err_clear(&err);
	/* Root trusted but sim not allowed: still refused. */
	trust_sim(v, p);
	assert_int_equal(sp_snp_verify(v, rep, rl, &a, NULL, &err), SP_ERR_APPRAISAL);
	assert_non_null(strstr(sp_err_msg(err), "--allow-sim"));
	sp_err_clear(&err);
	a.allow_sim = true;
	json_t *claims = NULL;
	if (sp_snp_verify(v, rep, rl, &a, &claims, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	assert_true(json_is_true(json_object_get(json_object_get(claims, "verified"), "sim")));
	json_decref(claims);
	/* A flipped bit in a sim report fails like in a real one. */
	rep[0x90] ^= 1;
	assert_int_equal(sp_snp_verify(v, rep, rl, &a, NULL, &err), SP_ERR_SIGNATURE);
	sp_err_clear(&err);
	sp_snp_verifier_free(v);

	/* An AMD root can not be passed off as the sim root, nor the sim
	 * root as AMD's. */
	v = sp_snp_verifier_new();
	size_t n;
	uint8_t *pem = load_vector(VEC "virtee-sev/src_certs_snp_builtin_milan_ark.pem", &n);
	assert_int_not_equal(sp_snp_verifier_trust_sim_root(v, pem, n, &err), 0);
	sp_err_clear(&err);
	free(pem);
	pem = load_vector(sp_simpsp_root_path(p), &n);
	assert_int_equal(sp_snp_verifier_add_certs(v, pem, n, NULL), 0);
	assert_int_equal(sp_snp_verifier_add_cert_table(v, certs, cl, NULL), 0);
	rep[0x90] ^= 1;
	assert_int_not_equal(sp_snp_verify(v, rep, rl, &a, NULL, &err), 0);
	sp_err_clear(&err);
	free(pem);
	sp_snp_verifier_free(v);
	free(rep);
	free(certs);
	sp_simpsp_free(p);
}

static void test_sim_protocol_and_tee(void **state)
{
	sp_simpsp *p = new_sim();
	uint8_t rd[64];
	memset(rd, 0x42, 64);
	size_t qlen, rlen;
	uint8_t *q = sp_simpsp_encode_request(99, rd, 0, &qlen);
	uint8_t *resp = sp_simpsp_handle(p, q, qlen, &rlen);
	sp_simpsp_frame f;
	assert_int_equal(sp_simpsp_parse_header(&f, resp, rlen, NULL), 0);
	assert_int_equal(f.id, 99);
	assert_int_equal(f.type, SP_SIMPSP_RESP_REPORT);
	uint32_t st;
	const uint8_t *r, *c;
	size_t rl, cl;
	assert_int_equal(sp_simpsp_parse_response(f.body, f.body_len, &st, &r, &rl,
						  &c, &cl, NULL), 0);
	assert_int_equal(st, SP_SIMPSP_OK);
	assert_int_equal(rl, SP_SNP_REPORT_LEN);
	free(resp);
	/* bad vmpl, bad magic, truncated */
	free(q);
	q = sp_simpsp_encode_request(1, rd, 4, &qlen);
	resp = sp_simpsp_handle(p, q, qlen, &rlen);
	sp_simpsp_parse_header(&f, resp, rlen, NULL);
	sp_simpsp_parse_response(f.body, f.body_len, &st, &r, &rl, &c, &cl, NULL);
	assert_int_equal(st, SP_SIMPSP_BAD_VMPL);
	free(resp);
	q[0] = 'X';
	resp = sp_simpsp_handle(p, q, qlen, &rlen);
	sp_simpsp_parse_header(&f, resp, rlen, NULL);
	sp_simpsp_parse_response(f.body, f.body_len, &st, &r, &rl, &c, &cl, NULL);
	assert_int_equal(st, SP_SIMPSP_BAD_REQUEST);
	free(resp);
	resp = sp_simpsp_handle(p, q, 10, &rlen);
	free(resp);
	free(q);

	/* End to end: the sim PSP on a thread, the guest side through
	 * tee.h over a unix socket. */
	char *dir = NULL;
	assert_int_equal(sp_mkdtemp(&dir, "snp-sim", NULL), 0);
	char *sock = sp_xasprintf("%s/psp.sock", dir);
	char *spec = sp_xasprintf("unix:%s", sock);
	sp_simpsp_thread *t = NULL;
	sp_err *err = NULL;
	if (sp_simpsp_start(&t, p, spec, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	char *tspec = sp_xasprintf("sim:%s", sock);
	sp_tee *tee = NULL;
	assert_int_equal(sp_tee_open(&tee, tspec, NULL), 0);
	assert_string_equal(sp_tee_kind(tee), "sim");
	uint8_t *rep = NULL, *certs = NULL;
	if (sp_tee_get_report(tee, rd, &rep, &rl, &certs, &cl, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	assert_int_equal(rl, SP_SNP_REPORT_LEN);
	assert_non_null(certs);
	sp_snp_verifier *v = sp_snp_verifier_new();
	trust_sim(v, p);
	assert_int_equal(sp_snp_verifier_add_cert_table(v, certs, cl, NULL), 0);
	sp_snp_appraisal a;
	sp_snp_appraisal_init(&a);
	a.allow_sim = true;
	a.check_report_data = true;
	memcpy(a.report_data, rd, 64);
	a.n_measurements = 1;
	a.measurements = (const uint8_t(*)[48])sp_simpsp_measurement(p);
	if (sp_snp_verify(v, rep, rl, &a, NULL, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	/* A second request on a new connection works too. */
	free(rep);
	free(certs);
	assert_int_equal(sp_tee_get_report(tee, rd, &rep, &rl, NULL, NULL, NULL), 0);
	assert_int_equal(sp_snp_verify(v, rep, rl, &a, NULL, NULL), 0);
	free(rep);
	sp_snp_verifier_free(v);
	sp_tee_free(tee);
	sp_simpsp_stop(t);
	assert_int_not_equal(access(sock, F_OK), 0); /* socket removed */
	/* "none" refuses with UNSUPPORTED; bad specs are refused. */
	assert_int_equal(sp_tee_open(&tee, "none", NULL), 0);
	assert_int_equal(sp_tee_get_report(tee, rd, &rep, &rl, NULL, NULL, &err),
			 SP_ERR_UNSUPPORTED);
	sp_err_clear(&err);
	sp_tee_free(tee);
	assert_int_not_equal(sp_tee_open(&tee, "bogus", &err), 0);
	sp_err_clear(&err);
	assert_int_not_equal(sp_tee_open(&tee, tspec, &err), 0); /* gone */
	sp_err_clear(&err);
	sp_rm_rf(dir, NULL);
	free(tspec);
	free(spec);
	free(sock);
	free(dir);
	sp_simpsp_free(p);
}

/* Under TCG there is no firmware: the sim measures Debian's OVMF with the
 * direct-boot rule, which `sealpod measure --sim-direct-boot` predicts. */
static void test_sim_measures_direct_boot(void **state)
{
	if (access(SP_SIMPSP_DEFAULT_OVMF, R_OK) != 0)
		skip();
	char *st = sim_state();
	sp_snp_measure_opts lo;
	sp_snp_measure_opts_init(&lo);
	lo.vcpus = 2;
	lo.kernel = MVEC "kernel-small.bin";
	lo.append = "console=hvc0";
	sp_simpsp_config cfg;
	sp_simpsp_config_init(&cfg);
	cfg.state_dir = st;
	cfg.launch = &lo;
	sp_simpsp *p = NULL;
	sp_err *err = NULL;
	if (sp_simpsp_new(&p, &cfg, &err) < 0)
		fail_msg("%s", sp_err_msg(err));
	lo.ovmf = SP_SIMPSP_DEFAULT_OVMF;
	lo.vcpu_type = SP_SIMPSP_DEFAULT_VCPU;
	lo.sim_direct_boot = true;
	uint8_t d[48];
	assert_int_equal(sp_snp_measure(d, &lo, NULL), 0);
	assert_memory_equal(sp_simpsp_measurement(p), d, 48);
	sp_simpsp_free(p);
	free(st);
}

static void test_ioctl_abi(void **state)
{
	/* The values the kernel's _IOWR('S', n, 32-byte struct) yields. */
	assert_int_equal((unsigned long)TEE_SNP_GET_REPORT, 0xc0205300ul);
	assert_int_equal((unsigned long)TEE_SNP_GET_EXT_REPORT, 0xc0205302ul);
	assert_int_equal(sizeof(struct tee_snp_ext_report_req), 112);
	assert_int_equal(offsetof(struct tee_snp_guest_request_ioctl, vmm_error), 28);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_root_fingerprints),
		cmocka_unit_test(test_vectors_verify),
		cmocka_unit_test(test_vector_facts),
		cmocka_unit_test(test_every_bit_flip_fails),
		cmocka_unit_test(test_upstream_mutations),
		cmocka_unit_test(test_vlek_time_window),
		cmocka_unit_test(test_invalid_certs),
		cmocka_unit_test(test_appraisal),
		cmocka_unit_test(test_report_parse_refusals),
		cmocka_unit_test(test_cert_table_and_kds_cache),
		cmocka_unit_test(test_measure_api),
		cmocka_unit_test(test_sim_report_verifies_only_when_trusted),
		cmocka_unit_test(test_sim_protocol_and_tee),
		cmocka_unit_test(test_sim_measures_direct_boot),
		cmocka_unit_test(test_ioctl_abi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
