/* SPDX-License-Identifier: Apache-2.0 */
/* Verifying an SEV-SNP report: ARK -> ASK/ASVK -> VCEK/VLEK (RSASSA-PSS,
 * SHA-384), the VEK's extensions against the report, the report's ECDSA
 * P-384 signature, then the appraisal of its claims. Every check starts
 * from "refuse" and every refusal names the check. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "sealpod/codec.h"
#include "sealpod/hash.h"
#include "sealpod/log.h"
#include "snp-internal.h"

#define CACHE_MAX 16

struct cached_vek {
	uint8_t fp[SP_SHA256_LEN]; /* SHA-256 of the VEK's DER */
	EVP_PKEY *key;
	sp_snp_vek_info info;
	bool sim;
	char root_cn[64];
	time_t from, until; /* the chain is valid in [from, until] */
};

struct sp_snp_verifier {
	STACK_OF(X509) *roots;     /* AMD's ARKs (built in) */
	STACK_OF(X509) *sim_roots; /* sim ARKs the caller chose to trust */
	STACK_OF(X509) *pool;      /* ASKs/ASVKs: built in and offered */
	X509 *vcek, *vlek;         /* offered VEKs */
	struct cached_vek cache[CACHE_MAX];
	size_t n_cache;
	char *kds_dir;
	bool kds_offline;
};

static bool self_signed(X509 *x)
{
	return X509_NAME_cmp(X509_get_subject_name(x),
			     X509_get_issuer_name(x)) == 0;
}

static void add_pem(STACK_OF(X509) *sk, const char *pem)
{
	STACK_OF(X509) *tmp = NULL;
	if (snp_load_certs(&tmp, (const uint8_t *)pem, strlen(pem), NULL) < 0)
		abort(); /* built-in data: cannot fail */
	X509 *x;
	while ((x = sk_X509_shift(tmp)))
		sk_X509_push(sk, x);
	sk_X509_free(tmp);
}

sp_snp_verifier *sp_snp_verifier_new(void)
{
	sp_snp_verifier *v = sp_xzalloc(sizeof(*v));
	v->roots = sk_X509_new_null();
	v->sim_roots = sk_X509_new_null();
	v->pool = sk_X509_new_null();
	if (!v->roots || !v->sim_roots || !v->pool)
		sp_oom();
	size_t n;
	const sp_snp_builtin_root *r = sp_snp_builtin_roots(&n);
	for (size_t i = 0; i < n; i++) {
		add_pem(v->roots, r[i].ark_pem);
		add_pem(v->pool, r[i].ask_pem);
		add_pem(v->pool, r[i].asvk_pem);
	}
	return v;
}

void sp_snp_verifier_free(sp_snp_verifier *v)
{
	if (!v)
		return;
	sk_X509_pop_free(v->roots, X509_free);
	sk_X509_pop_free(v->sim_roots, X509_free);
	sk_X509_pop_free(v->pool, X509_free);
	X509_free(v->vcek);
	X509_free(v->vlek);
	for (size_t i = 0; i < v->n_cache; i++)
		EVP_PKEY_free(v->cache[i].key);
	free(v->kds_dir);
	free(v);
}

void sp_snp_verifier_set_kds(sp_snp_verifier *v, const char *dir, bool offline)
{
	free(v->kds_dir);
	v->kds_dir = dir ? sp_xstrdup(dir) : NULL;
	v->kds_offline = offline;
}

int sp_snp_verifier_trust_sim_root(sp_snp_verifier *v, const uint8_t *data,
				   size_t len, sp_err **err)
{
	STACK_OF(X509) *sk = NULL;
	if (snp_load_certs(&sk, data, len, err) < 0)
		return sp_error_wrap(err, "sim root");
	X509 *x;
	int rc = 0;
	while ((x = sk_X509_shift(sk))) {
		char cn[64];
		snp_x509_cn(x, cn, sizeof(cn));
		if (!self_signed(x) ||
		    strncmp(cn, "ARK-" SNP_SIM_PRODUCT_PREFIX,
			    strlen("ARK-" SNP_SIM_PRODUCT_PREFIX)) != 0) {
			rc = sp_error(err, SP_ERR_CERTIFICATE,
				      "sim root: `%s` is not a self-signed sim "
				      "ARK (CN ARK-Sim-*)", cn);
			X509_free(x);
			continue;
		}
		sk_X509_push(v->sim_roots, x);
	}
	sk_X509_free(sk);
	return rc;
}

static int add_x509(sp_snp_verifier *v, X509 *x, sp_err **err)
{
	sp_snp_vek_info info;
	_cleanup_err_ sp_err *ierr = NULL;
	if (snp_vek_info_from_x509(&info, x, &ierr) == 0) {
		X509 **slot = info.is_vlek ? &v->vlek : &v->vcek;
		X509_free(*slot);
		*slot = x;
		return 0;
	}
	char cn[128];
	snp_x509_cn(x, cn, sizeof(cn));
	if (!strcmp(cn, "SEV-VCEK") || !strcmp(cn, "SEV-VLEK")) {
		X509_free(x);
		return sp_error(err, SP_ERR_CERTIFICATE, "%s: %s", cn,
				sp_err_msg(ierr));
	}
	/* Roots offered by a caller are never trusted for being offered:
	 * only built-in (or explicitly trusted sim) roots anchor a chain. */
	if (self_signed(x))
		X509_free(x);
	else
		sk_X509_push(v->pool, x);
	return 0;
}

int sp_snp_verifier_add_certs(sp_snp_verifier *v, const uint8_t *data,
			      size_t len, sp_err **err)
{
	STACK_OF(X509) *sk = NULL;
	if (snp_load_certs(&sk, data, len, err) < 0)
		return -1;
	X509 *x;
	int rc = 0;
	while ((x = sk_X509_shift(sk)))
		if (add_x509(v, x, err) < 0)
			rc = -1;
	sk_X509_free(sk);
	return rc;
}

int sp_snp_verifier_add_cert_table(sp_snp_verifier *v, const uint8_t *data,
				   size_t len, sp_err **err)
{
	sp_snp_cert_entry e[16];
	size_t n = 0;
	if (sp_snp_cert_table_parse(e, SP_ARRAY_LEN(e), &n, data, len, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (e[i].kind == SP_SNP_CERT_OTHER)
			continue;
		const unsigned char *p = e[i].der;
		X509 *x = d2i_X509(NULL, &p, (long)e[i].len);
		if (!x)
			return sp_error(err, SP_ERR_PARSE,
					"certificate table: entry %zu is not a "
					"DER certificate", i);
		if (add_x509(v, x, err) < 0)
			return -1;
	}
	return 0;
}

void sp_snp_appraisal_init(sp_snp_appraisal *a)
{
	memset(a, 0, sizeof(*a));
	a->version = 1;
	a->vmpl = -1;
}

/* ---- chain ----------------------------------------------------------- */

static int check_validity(X509 *x, time_t at, const char *what,
			  time_t *from, time_t *until, sp_err **err)
{
	char cn[64];
	snp_x509_cn(x, cn, sizeof(cn));
	if (X509_cmp_time(X509_get0_notBefore(x), &at) >= 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s %s is not valid yet at the verification "
				"time (%lld)", what, cn, (long long)at);
	if (X509_cmp_time(X509_get0_notAfter(x), &at) <= 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s %s has expired at the verification time "
				"(%lld); pin a time with --at if verifying old "
				"evidence on purpose", what, cn, (long long)at);
	struct tm tm;
	if (ASN1_TIME_to_tm(X509_get0_notBefore(x), &tm) == 1) {
		time_t t = timegm(&tm);
		if (t > *from)
			*from = t;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
		time_t t = timegm(&tm);
		if (t < *until)
			*until = t;
	}
	return 0;
}

/* AMD signs every certificate of the chain with RSASSA-PSS/SHA-384. */
static int check_pss(X509 *x, const char *what, sp_err **err)
{
	int md = 0, pk = 0, bits = 0;
	uint32_t flags = 0;
	char cn[64];
	snp_x509_cn(x, cn, sizeof(cn));
	if (X509_get_signature_nid(x) != NID_rsassaPss ||
	    X509_get_signature_info(x, &md, &pk, &bits, &flags) != 1 ||
	    md != NID_sha384)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s %s is not signed with RSASSA-PSS/SHA-384",
				what, cn);
	return 0;
}

static int check_rsa4096(X509 *x, const char *what, sp_err **err)
{
	EVP_PKEY *k = X509_get0_pubkey(x);
	char cn[64];
	snp_x509_cn(x, cn, sizeof(cn));
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(k) != 4096)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s %s does not hold an RSA-4096 key", what, cn);
	return 0;
}

/* Finds the certificate in sk that issued x and whose key verifies x. */
static X509 *find_issuer(STACK_OF(X509) *sk, X509 *x)
{
	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *c = sk_X509_value(sk, i);
		if (X509_NAME_cmp(X509_get_subject_name(c),
				  X509_get_issuer_name(x)) != 0)
			continue;
		EVP_PKEY *k = X509_get0_pubkey(c);
		if (k && X509_verify(x, k) == 1)
			return c;
		ERR_clear_error();
	}
	return NULL;
}

static int verify_chain(sp_snp_verifier *v, X509 *vek, time_t at,
			struct cached_vek *out, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (snp_vek_info_from_x509(&out->info, vek, err) < 0)
		return SP_ERR_CERTIFICATE;
	const sp_snp_vek_info *info = &out->info;
	const char *kind = info->is_vlek ? "VLEK" : "VCEK";
	bool sim_product = !strncmp(info->product, SNP_SIM_PRODUCT_PREFIX,
				    strlen(SNP_SIM_PRODUCT_PREFIX));
	int cpu = sp_snp_product_cpu(info->product);
	if (cpu == SP_SNP_CPU_UNKNOWN)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s: unknown product `%s` (Milan, Genoa, Turin "
				"are known)", kind, info->product);
	EVP_PKEY *key = X509_get0_pubkey(vek);
	char group[32] = "";
	size_t glen = 0;
	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group),
					   &glen) != 1 ||
	    strcmp(group, "secp384r1") != 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s does not hold an EC P-384 key", kind);
	X509 *ask = find_issuer(v->pool, vek);
	if (!ask) {
		if (sim_product && sk_X509_num(v->sim_roots) == 0)
			goto sim_refused;
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s (product %s): no %s among the known "
				"intermediates issued it with a valid signature; "
				"pass the chain with --chain", kind,
				info->product, info->is_vlek ? "ASVK" : "ASK");
	}
	X509 *ark = find_issuer(v->roots, ask);
	bool sim = false;
	if (!ark) {
		ark = find_issuer(v->sim_roots, ask);
		sim = ark != NULL;
	}
	char ask_cn[64], ark_cn[64];
	snp_x509_cn(ask, ask_cn, sizeof(ask_cn));
	if (!ark) {
		if (sim_product)
			goto sim_refused;
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s does not chain to a trusted root (AMD's "
				"built-in ARKs for Milan, Genoa and Turin)",
				ask_cn);
	}
	snp_x509_cn(ark, ark_cn, sizeof(ark_cn));
	if (sim != sim_product)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s: product `%s` does not match its root %s",
				kind, info->product, ark_cn);
	/* The root must name the same CPU generation as the VEK, and a VLEK
	 * must come from an ASVK (a VCEK from an ASK). */
	char want[64];
	snprintf(want, sizeof(want), "ARK-%s%s", sim ? SNP_SIM_PRODUCT_PREFIX : "",
		 sp_snp_cpu_name(cpu));
	if (strcmp(ark_cn, want) != 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s: product `%s` but the chain's root is %s",
				kind, info->product, ark_cn);
	if ((strstr(ask_cn, "VLEK") != NULL) != info->is_vlek)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s was issued by %s, which is not an %s", kind,
				ask_cn, info->is_vlek ? "ASVK" : "ASK");
	EVP_PKEY *ark_key = X509_get0_pubkey(ark);
	if (!ark_key || X509_verify(ark, ark_key) != 1) {
		ERR_clear_error();
		return sp_error(err, SP_ERR_CERTIFICATE,
				"%s: the self-signature does not verify", ark_cn);
	}
	out->from = 0;
	out->until = (time_t)INT64_MAX;
	if (check_pss(ark, "ARK", err) < 0 || check_pss(ask, "ASK", err) < 0 ||
	    check_pss(vek, kind, err) < 0 || check_rsa4096(ark, "ARK", err) < 0 ||
	    check_rsa4096(ask, "ASK", err) < 0 ||
	    check_validity(ark, at, "ARK", &out->from, &out->until, err) < 0 ||
	    check_validity(ask, at, info->is_vlek ? "ASVK" : "ASK", &out->from,
			   &out->until, err) < 0 ||
	    check_validity(vek, at, kind, &out->from, &out->until, err) < 0)
		return SP_ERR_CERTIFICATE;
	size_t dlen;
	uint8_t *der = snp_x509_der(vek, &dlen);
	sp_sha256(out->fp, der, dlen);
	free(der);
	EVP_PKEY_up_ref(key);
	out->key = key;
	out->sim = sim;
	snprintf(out->root_cn, sizeof(out->root_cn), "%s", ark_cn);
	return 0;
sim_refused:
	return sp_error(err, SP_ERR_CERTIFICATE,
			"%s is from the sealpod sim PSP (product %s), not from "
			"AMD hardware; sim reports are refused unless the "
			"verifier trusts the sim root (--allow-sim)", kind,
			info->product);
}

/* A verified chain for vek at time at, from the cache or verified now. */
static const struct cached_vek *chain_for(sp_snp_verifier *v, X509 *vek,
					  time_t at, int *rc, sp_err **err)
{
	size_t dlen;
	_cleanup_free_ uint8_t *der = snp_x509_der(vek, &dlen);
	uint8_t fp[SP_SHA256_LEN];
	sp_sha256(fp, der, dlen);
	for (size_t i = 0; i < v->n_cache; i++) {
		struct cached_vek *c = &v->cache[i];
		if (!memcmp(c->fp, fp, sizeof(fp)) && at > c->from &&
		    at < c->until &&
		    (!c->sim || sk_X509_num(v->sim_roots) > 0))
			return c;
	}
	struct cached_vek fresh;
	*rc = verify_chain(v, vek, at, &fresh, err);
	if (*rc < 0)
		return NULL;
	if (v->n_cache == CACHE_MAX) {
		EVP_PKEY_free(v->cache[0].key);
		memmove(&v->cache[0], &v->cache[1],
			sizeof(v->cache[0]) * (CACHE_MAX - 1));
		v->n_cache--;
	}
	v->cache[v->n_cache] = fresh;
	return &v->cache[v->n_cache++];
}

static X509 *fetch_vcek(sp_snp_verifier *v, const sp_snp_report *r, int *rc,
			sp_err **err)
{
	int cpu = sp_snp_report_cpu(r);
	if (cpu == SP_SNP_CPU_UNKNOWN) {
		*rc = sp_error(err, SP_ERR_NOT_FOUND,
			 "no VCEK given, and the report does not say which "
			 "CPU made it, so the KDS URL is unknown; pass --vcek");
		return NULL;
	}
	sp_snp_tcb tcb;
	sp_snp_tcb_decode(r->reported_tcb, cpu, &tcb);
	_cleanup_free_ char *url =
		sp_snp_kds_vcek_url(sp_snp_cpu_name(cpu), r->chip_id, &tcb, cpu);
	_cleanup_free_ uint8_t *der = NULL;
	size_t len = 0;
	*rc = sp_snp_kds_get(&der, &len, url, v->kds_dir, v->kds_offline, err);
	if (*rc < 0)
		return NULL;
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (!x)
		*rc = sp_error(err, SP_ERR_PARSE, "KDS: %s did not return a DER "
			       "certificate", url);
	return x;
}

static int report_signature(EVP_PKEY *key, const uint8_t *raw,
			    const sp_snp_report *r, sp_err **err)
{
	/* R and S are little-endian in the report; ECDSA wants integers. */
	BIGNUM *br = BN_lebin2bn(r->sig_r, 48, NULL);
	BIGNUM *bs = BN_lebin2bn(r->sig_s, 48, NULL);
	ECDSA_SIG *es = ECDSA_SIG_new();
	if (!br || !bs || !es)
		sp_oom();
	ECDSA_SIG_set0(es, br, bs);
	unsigned char *der = NULL;
	int dlen = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (dlen <= 0)
		sp_oom();
	uint8_t digest[SP_SHA384_LEN];
	sp_sha384(digest, raw, SP_SNP_SIGNED_LEN);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
	int ok = ctx && EVP_PKEY_verify_init(ctx) == 1 &&
		 EVP_PKEY_verify(ctx, der, (size_t)dlen, digest,
				 sizeof(digest)) == 1;
	EVP_PKEY_CTX_free(ctx);
	OPENSSL_free(der);
	ERR_clear_error();
	if (!ok)
		return sp_error(err, SP_ERR_SIGNATURE,
				"report signature: the ECDSA P-384 signature "
				"over bytes 0x000-0x29F does not verify with the "
				"VEK's key (report altered or wrong VEK)");
	return 0;
}

static int tcb_matches(const sp_snp_report *r, const sp_snp_vek_info *info,
		       int cpu, sp_err **err)
{
	sp_snp_tcb t;
	sp_snp_tcb_decode(r->reported_tcb, cpu, &t);
	const sp_snp_tcb *c = &info->spl;
	if (t.bl != c->bl || t.tee != c->tee || t.snp != c->snp ||
	    t.ucode != c->ucode || (cpu == SP_SNP_CPU_TURIN && t.fmc != c->fmc))
		return sp_error(err, SP_ERR_CERTIFICATE,
				"reported_tcb (fmc=%u bl=%u tee=%u snp=%u "
				"ucode=%u) differs from the VEK's SPLs (fmc=%u "
				"bl=%u tee=%u snp=%u ucode=%u): the VEK was "
				"issued for another TCB",
				t.fmc, t.bl, t.tee, t.snp, t.ucode, c->fmc, c->bl,
				c->tee, c->snp, c->ucode);
	return 0;
}

static int chip_matches(const sp_snp_report *r, const sp_snp_vek_info *info,
			sp_err **err)
{
	if (info->is_vlek)
		return 0; /* a VLEK is not bound to a chip */
	if (r->signer_info & 2)
		return sp_error(err, SP_ERR_APPRAISAL,
				"chip_id: the report masks its chip id but was "
				"signed with a VCEK, whose hwID cannot be "
				"checked against it");
	static const uint8_t zero[64];
	if (memcmp(r->chip_id, info->hwid, info->hwid_len) != 0 ||
	    memcmp(r->chip_id + info->hwid_len, zero,
		   64 - info->hwid_len) != 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"chip_id: the report's chip_id differs from the "
				"VCEK's hwID: the VCEK belongs to another chip");
	return 0;
}

static bool tcb_ge(const sp_snp_tcb *a, const sp_snp_tcb *min, int cpu)
{
	return a->bl >= min->bl && a->tee >= min->tee && a->snp >= min->snp &&
	       a->ucode >= min->ucode &&
	       (cpu != SP_SNP_CPU_TURIN || a->fmc >= min->fmc);
}

static int appraise(const sp_snp_report *r, const sp_snp_appraisal *a,
		    int cpu, bool sim, sp_err **err)
{
	if (sim && !a->allow_sim)
		return sp_error(err, SP_ERR_APPRAISAL,
				"sim: the report comes from the sealpod sim PSP, "
				"not AMD hardware; pass --allow-sim to accept "
				"it");
	if ((r->policy & SP_SNP_POLICY_DEBUG) && !a->allow_debug)
		return sp_error(err, SP_ERR_APPRAISAL,
				"debug: the guest policy 0x%llx allows debugging "
				"(bit 19), so the host can read its memory; pass "
				"--allow-debug to accept",
				(unsigned long long)r->policy);
	if (a->check_min_tcb) {
		sp_snp_tcb t;
		sp_snp_tcb_decode(r->reported_tcb, cpu, &t);
		if (!tcb_ge(&t, &a->min_tcb, cpu))
			return sp_error(err, SP_ERR_APPRAISAL,
					"min-tcb: reported TCB bl=%u tee=%u "
					"snp=%u ucode=%u fmc=%u is below the "
					"minimum bl=%u tee=%u snp=%u ucode=%u "
					"fmc=%u", t.bl, t.tee, t.snp, t.ucode,
					t.fmc, a->min_tcb.bl, a->min_tcb.tee,
					a->min_tcb.snp, a->min_tcb.ucode,
					a->min_tcb.fmc);
	}
	if (a->n_measurements) {
		bool found = false;
		for (size_t i = 0; i < a->n_measurements; i++)
			if (sp_memeq_ct(a->measurements[i], r->measurement, 48))
				found = true;
		if (!found) {
			char hex[97];
			sp_hex_encode(hex, r->measurement, 48);
			return sp_error(err, SP_ERR_APPRAISAL,
					"measurement: %s is not one of the %zu "
					"allowed launch measurements", hex,
					a->n_measurements);
		}
	}
	if (a->check_host_data &&
	    !sp_memeq_ct(a->host_data, r->host_data, 32)) {
		char hex[65];
		sp_hex_encode(hex, r->host_data, 32);
		return sp_error(err, SP_ERR_APPRAISAL,
				"host-data: the report's HOST_DATA %s differs "
				"from the expected value", hex);
	}
	if (a->check_report_data &&
	    !sp_memeq_ct(a->report_data, r->report_data, 64))
		return sp_error(err, SP_ERR_APPRAISAL,
				"report-data: the report's REPORT_DATA differs "
				"from the expected value (stale or replayed "
				"evidence?)");
	if (a->vmpl >= 0 && r->vmpl != (uint32_t)a->vmpl)
		return sp_error(err, SP_ERR_APPRAISAL,
				"vmpl: the report was requested at VMPL %u, "
				"expected %d", r->vmpl, a->vmpl);
	if (r->guest_svn < a->min_guest_svn)
		return sp_error(err, SP_ERR_APPRAISAL,
				"guest-svn: %u is below the minimum %u",
				r->guest_svn, a->min_guest_svn);
	return 0;
}

int sp_snp_verify(sp_snp_verifier *v, const uint8_t *raw, size_t len,
		  const sp_snp_appraisal *a, json_t **claims, sp_err **err)
{
	sp_snp_report r;
	int rc = sp_snp_report_parse(&r, raw, len, err);
	if (rc < 0)
		return rc;
	time_t at = a->at ? a->at : time(NULL);
	int key = sp_snp_signing_key(&r);
	if (key == SP_SNP_KEY_NONE)
		return sp_error(err, SP_ERR_SIGNATURE,
				"signer: the report is unsigned (signing key 7)");
	X509 *vek = key == SP_SNP_KEY_VLEK ? v->vlek : v->vcek;
	X509 *fetched = NULL;
	if (!vek && key == SP_SNP_KEY_VCEK && v->kds_dir) {
		fetched = fetch_vcek(v, &r, &rc, err);
		if (!fetched)
			return rc;
		vek = fetched;
	}
	if (!vek)
		return sp_error(err, SP_ERR_NOT_FOUND,
				"signer: the report is signed by a %s but none "
				"was given (--vcek, or an extended report's "
				"certificates)",
				key == SP_SNP_KEY_VLEK ? "VLEK" : "VCEK");
	const struct cached_vek *c = chain_for(v, vek, at, &rc, err);
	X509_free(fetched);
	if (!c) {
		sp_error_wrap(err, "certificate chain");
		return rc;
	}
	int cpu = sp_snp_product_cpu(c->info.product);
	/* All three must pass; the order only decides which refusal a
	 * tampered report gets. */
	if ((rc = tcb_matches(&r, &c->info, cpu, err)) < 0 ||
	    (rc = chip_matches(&r, &c->info, err)) < 0 ||
	    (rc = report_signature(c->key, raw, &r, err)) < 0 ||
	    (rc = appraise(&r, a, cpu, c->sim, err)) < 0)
		return rc;
	if (claims) {
		json_t *o = sp_snp_report_to_json(&r, cpu);
		json_t *vj = json_object();
		json_object_set_new(vj, "signer", json_string(c->info.is_vlek
								  ? "vlek"
								  : "vcek"));
		json_object_set_new(vj, "product", json_string(c->info.product));
		json_object_set_new(vj, "root", json_string(c->root_cn));
		json_object_set_new(vj, "sim", json_boolean(c->sim));
		if (c->info.csp_id[0])
			json_object_set_new(vj, "csp_id",
					    json_string(c->info.csp_id));
		json_object_set_new(vj, "time", json_integer((json_int_t)at));
		json_object_set_new(o, "verified", vj);
		*claims = o;
	}
	return 0;
}
