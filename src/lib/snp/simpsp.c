/* SPDX-License-Identifier: Apache-2.0 */
/* The sim PSP: a host-side stand-in for the AMD Secure Processor, for
 * machines without SEV-SNP. It keeps an ARK/ASK/VCEK hierarchy shaped like
 * AMD's (RSA-4096 RSASSA-PSS roots, an EC P-384 VCEK with AMD's
 * extensions, product "Sim-Milan"), and signs reports whose MEASUREMENT
 * and HOST_DATA come from the launcher. It proves nothing about memory
 * encryption; docs/attestation.md says what it is and is not. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/log.h"
#include "snp-internal.h"

/* The sim chip's TCB (Milan layout). Values >= 128 exercise the DER
 * INTEGER leading-zero case in the VCEK's extensions. */
static const sp_snp_tcb sim_tcb = {.bl = 4, .tee = 0, .snp = 22, .ucode = 213};

struct sp_simpsp {
	char *state_dir;
	char *root_path;
	EVP_PKEY *vcek_key;
	uint8_t chip_id[64];
	uint8_t *ark_der, *ask_der, *vcek_der;
	size_t ark_len, ask_len, vcek_len;
	uint8_t measurement[48];
	uint8_t host_data[32];
	uint8_t report_id[32];
	uint64_t policy;
	uint32_t guest_svn;
};

const char *sp_simpsp_default_state(void)
{
	const char *e = getenv("SEALPOD_SIM_STATE");
	return e && *e ? e : SP_SIMPSP_DEFAULT_STATE;
}

void sp_simpsp_config_init(sp_simpsp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = 1;
}

/* ---- key hierarchy --------------------------------------------------- */

static EVP_PKEY *gen_rsa4096(void)
{
	EVP_PKEY *k = EVP_RSA_gen(4096);
	if (!k)
		sp_oom();
	return k;
}

static EVP_PKEY *gen_p384(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-384");
	if (!k)
		sp_oom();
	return k;
}

static void name_set(X509_NAME *n, const char *cn)
{
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC,
				   (const unsigned char *)"Engineering", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "C", MBSTRING_ASC,
				   (const unsigned char *)"US", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
				   (const unsigned char *)"sealpod sim PSP (not AMD)",
				   -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
}

static void add_ext_der(X509 *x, const char *suffix, const uint8_t *der,
			size_t len)
{
	char oid[64];
	snprintf(oid, sizeof(oid), SNP_OID_PREFIX "%s", suffix);
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(os, der, (int)len);
	X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
}

static void add_ext_int(X509 *x, const char *suffix, unsigned v)
{
	uint8_t der[4] = {0x02, 1, (uint8_t)v};
	size_t n = 3;
	if (v >= 128) {
		der[1] = 2;
		der[2] = 0;
		der[3] = (uint8_t)v;
		n = 4;
	}
	add_ext_der(x, suffix, der, n);
}

static int sign_pss(X509 *x, EVP_PKEY *issuer_key)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = ctx &&
		 EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), NULL,
				    issuer_key) == 1 &&
		 EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		 EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) == 1 &&
		 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) == 1 &&
		 X509_sign_ctx(x, ctx) > 0;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
		       EVP_PKEY *issuer_key, const char *issuer_cn,
		       long days, bool ca, long serial)
{
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	/* A day's slack for clocks that differ between host and guest. */
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
	X509_set_pubkey(x, key);
	name_set(X509_get_subject_name(x), cn);
	if (issuer)
		X509_set_issuer_name(x, X509_get_subject_name(issuer));
	else
		name_set(X509_get_issuer_name(x), issuer_cn);
	if (ca) {
		X509V3_CTX v3;
		X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
		X509_EXTENSION *e = X509V3_EXT_conf_nid(
			NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
		e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage,
					"critical,keyCertSign,cRLSign");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	(void)issuer_key;
	return x;
}

static int write_pem_key(const char *path, EVP_PKEY *k, sp_err **err)
{
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	int rc = sp_write_file_atomic(path, data, (size_t)n, 0600, err);
	BIO_free(b);
	return rc;
}

static int write_pem_cert(const char *path, X509 *x, sp_err **err)
{
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	char *data;
	long n = BIO_get_mem_data(b, &data);
	int rc = sp_write_file_atomic(path, data, (size_t)n, 0644, err);
	BIO_free(b);
	return rc;
}

static int generate(const char *dir, sp_err **err)
{
	sp_log_info("sim PSP: generating a sim ARK/ASK/VCEK in %s (once)", dir);
	EVP_PKEY *ark = gen_rsa4096(), *ask = gen_rsa4096(), *vcek = gen_p384();
	uint8_t chip[64];
	RAND_bytes(chip, sizeof(chip));
	X509 *ark_c = make_cert(ark, "ARK-" SNP_SIM_PRODUCT, NULL, ark,
				"ARK-" SNP_SIM_PRODUCT, 25 * 365, true, 1);
	X509 *ask_c = make_cert(ask, "SEV-" SNP_SIM_PRODUCT, ark_c, ark, NULL,
				25 * 365, true, 2);
	X509 *vcek_c = make_cert(vcek, "SEV-VCEK", ask_c, ask, NULL, 7 * 365,
				 false, 0);
	uint8_t prod[32] = {0x16, (uint8_t)strlen(SNP_SIM_PRODUCT)};
	memcpy(prod + 2, SNP_SIM_PRODUCT, strlen(SNP_SIM_PRODUCT));
	add_ext_int(vcek_c, "1", 0);
	add_ext_der(vcek_c, "2", prod, 2 + strlen(SNP_SIM_PRODUCT));
	add_ext_int(vcek_c, "3.1", sim_tcb.bl);
	add_ext_int(vcek_c, "3.2", sim_tcb.tee);
	add_ext_int(vcek_c, "3.4", 0);
	add_ext_int(vcek_c, "3.5", 0);
	add_ext_int(vcek_c, "3.6", 0);
	add_ext_int(vcek_c, "3.7", 0);
	add_ext_int(vcek_c, "3.3", sim_tcb.snp);
	add_ext_int(vcek_c, "3.8", sim_tcb.ucode);
	add_ext_der(vcek_c, "4", chip, sizeof(chip));
	int rc = -1;
	_cleanup_free_ char *p1 = sp_xasprintf("%s/ark.key", dir);
	_cleanup_free_ char *p2 = sp_xasprintf("%s/ask.key", dir);
	_cleanup_free_ char *p3 = sp_xasprintf("%s/vcek.key", dir);
	_cleanup_free_ char *p4 = sp_xasprintf("%s/ark.pem", dir);
	_cleanup_free_ char *p5 = sp_xasprintf("%s/ask.pem", dir);
	_cleanup_free_ char *p6 = sp_xasprintf("%s/vcek.pem", dir);
	if (sign_pss(ark_c, ark) < 0 || sign_pss(ask_c, ark) < 0 ||
	    sign_pss(vcek_c, ask) < 0) {
		sp_error(err, SP_ERR_SYSTEM, "sim PSP: signing certificates "
			 "failed");
		goto out;
	}
	/* vcek.pem last: its presence marks a complete state dir. */
	if (write_pem_key(p1, ark, err) < 0 || write_pem_key(p2, ask, err) < 0 ||
	    write_pem_key(p3, vcek, err) < 0 ||
	    write_pem_cert(p4, ark_c, err) < 0 ||
	    write_pem_cert(p5, ask_c, err) < 0 ||
	    write_pem_cert(p6, vcek_c, err) < 0)
		goto out;
	rc = 0;
out:
	X509_free(ark_c);
	X509_free(ask_c);
	X509_free(vcek_c);
	EVP_PKEY_free(ark);
	EVP_PKEY_free(ask);
	EVP_PKEY_free(vcek);
	return rc;
}

static int load_cert_der(const char *dir, const char *name, uint8_t **der,
			 size_t *len, X509 **xout, sp_err **err)
{
	_cleanup_free_ char *path = sp_xasprintf("%s/%s", dir, name);
	_cleanup_free_ uint8_t *data = NULL;
	size_t n = 0;
	if (sp_read_file(&data, &n, path, 64 * 1024, err) < 0)
		return -1;
	STACK_OF(X509) *sk = NULL;
	if (snp_load_certs(&sk, data, n, err) < 0)
		return sp_error_wrap(err, "%s", path);
	X509 *x = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	*der = snp_x509_der(x, len);
	if (xout)
		*xout = x;
	else
		X509_free(x);
	return 0;
}

static int load_state(sp_simpsp *p, sp_err **err)
{
	const char *dir = p->state_dir;
	if (sp_mkdir_p(dir, 0700, err) < 0)
		return sp_error_wrap(err, "sim PSP state");
	_cleanup_free_ char *lock = sp_xasprintf("%s/.lock", dir);
	_cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
		return sp_error_sys(err, errno, "sim PSP: lock %s", lock);
	_cleanup_free_ char *marker = sp_xasprintf("%s/vcek.pem", dir);
	if (access(marker, F_OK) != 0 && generate(dir, err) < 0)
		return -1;
	X509 *vcek = NULL;
	if (load_cert_der(dir, "ark.pem", &p->ark_der, &p->ark_len, NULL,
			  err) < 0 ||
	    load_cert_der(dir, "ask.pem", &p->ask_der, &p->ask_len, NULL,
			  err) < 0 ||
	    load_cert_der(dir, "vcek.pem", &p->vcek_der, &p->vcek_len, &vcek,
			  err) < 0)
		return -1;
	sp_snp_vek_info info;
	int rc = snp_vek_info_from_x509(&info, vcek, err);
	X509_free(vcek);
	if (rc < 0)
		return sp_error_wrap(err, "sim PSP: %s", marker);
	memcpy(p->chip_id, info.hwid, 64);
	_cleanup_free_ char *kpath = sp_xasprintf("%s/vcek.key", dir);
	FILE *f = fopen(kpath, "re");
	if (!f)
		return sp_error_sys(err, errno, "sim PSP: open %s", kpath);
	p->vcek_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!p->vcek_key)
		return sp_error(err, SP_ERR_PARSE,
				"sim PSP: %s is not a PEM private key; remove "
				"the state dir %s to regenerate", kpath, dir);
	return 0;
}

int sp_simpsp_new(sp_simpsp **out, const sp_simpsp_config *c, sp_err **err)
{
	sp_simpsp *p = sp_xzalloc(sizeof(*p));
	p->state_dir = sp_xstrdup(c->state_dir ? c->state_dir
					       : sp_simpsp_default_state());
	p->root_path = sp_xasprintf("%s/ark.pem", p->state_dir);
	p->policy = c->policy ? c->policy
			      : SP_SNP_POLICY_SMT | SP_SNP_POLICY_RESERVED1;
	p->guest_svn = c->guest_svn;
	memcpy(p->host_data, c->host_data, 32);
	if (c->launch) {
		sp_snp_measure_opts mo = *c->launch;
		if (!mo.ovmf) {
			mo.ovmf = SP_SIMPSP_DEFAULT_OVMF;
			mo.sim_direct_boot = true;
		}
		if (!mo.vcpu_type && !mo.vcpu_sig)
			mo.vcpu_type = SP_SIMPSP_DEFAULT_VCPU;
		if (sp_snp_measure(p->measurement, &mo, err) < 0) {
			sp_simpsp_free(p);
			return sp_error_wrap(err, "sim PSP: launch measurement");
		}
	} else {
		memcpy(p->measurement, c->measurement, 48);
	}
	RAND_bytes(p->report_id, sizeof(p->report_id));
	if (load_state(p, err) < 0) {
		sp_simpsp_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void sp_simpsp_free(sp_simpsp *p)
{
	if (!p)
		return;
	EVP_PKEY_free(p->vcek_key);
	free(p->ark_der);
	free(p->ask_der);
	free(p->vcek_der);
	free(p->state_dir);
	free(p->root_path);
	free(p);
}

const char *sp_simpsp_root_path(const sp_simpsp *p)
{
	return p->root_path;
}

const uint8_t *sp_simpsp_measurement(const sp_simpsp *p)
{
	return p->measurement;
}

/* ---- reports --------------------------------------------------------- */

int sp_simpsp_make_report(sp_simpsp *p, const uint8_t rd[SP_TEE_REPORT_DATA_LEN],
			  uint32_t vmpl, uint8_t **report, size_t *report_len,
			  uint8_t **certs, size_t *certs_len, sp_err **err)
{
	if (vmpl > 3)
		return sp_error(err, SP_ERR_INVALID,
				"sim PSP: VMPL %u (want 0-3)", vmpl);
	sp_snp_report r;
	memset(&r, 0, sizeof(r));
	r.version = 3;
	r.guest_svn = p->guest_svn;
	r.policy = p->policy;
	r.vmpl = vmpl;
	r.signature_algo = 1;
	uint64_t tcb = sp_snp_tcb_encode(&sim_tcb, SP_SNP_CPU_MILAN);
	r.current_tcb = r.reported_tcb = r.committed_tcb = r.launch_tcb = tcb;
	r.platform_info = 0x1; /* SMT enabled */
	r.signer_info = 0;     /* VCEK, chip id not masked */
	memcpy(r.report_data, rd, 64);
	memcpy(r.measurement, p->measurement, 48);
	memcpy(r.host_data, p->host_data, 32);
	memcpy(r.report_id, p->report_id, 32);
	memset(r.report_id_ma, 0xff, 32); /* no migration agent */
	r.cpuid_fam_id = 0x19;
	r.cpuid_mod_id = 0x01;
	r.cpuid_step = 0x01;
	memcpy(r.chip_id, p->chip_id, 64);
	r.current_major = r.committed_major = 1;
	r.current_minor = r.committed_minor = 55;
	r.current_build = r.committed_build = 21;
	uint8_t *buf = sp_xmalloc(SP_SNP_REPORT_LEN);
	sp_snp_report_encode(&r, buf);

	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[160];
	size_t siglen = sizeof(sig);
	int ok = ctx &&
		 EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL,
				    p->vcek_key) == 1 &&
		 EVP_DigestSign(ctx, sig, &siglen, buf, SP_SNP_SIGNED_LEN) == 1;
	EVP_MD_CTX_free(ctx);
	const unsigned char *sp = sig;
	ECDSA_SIG *es = ok ? d2i_ECDSA_SIG(NULL, &sp, (long)siglen) : NULL;
	if (!es) {
		free(buf);
		return sp_error(err, SP_ERR_SYSTEM, "sim PSP: ECDSA signing "
				"failed");
	}
	/* The report stores R and S little-endian in 72-byte fields. */
	BN_bn2lebinpad(ECDSA_SIG_get0_r(es), buf + 0x2A0, 72);
	BN_bn2lebinpad(ECDSA_SIG_get0_s(es), buf + 0x2E8, 72);
	ECDSA_SIG_free(es);
	*report = buf;
	*report_len = SP_SNP_REPORT_LEN;
	if (certs) {
		int kinds[3] = {SP_SNP_CERT_VCEK, SP_SNP_CERT_ASK,
				SP_SNP_CERT_ARK};
		const uint8_t *ders[3] = {p->vcek_der, p->ask_der, p->ark_der};
		size_t lens[3] = {p->vcek_len, p->ask_len, p->ark_len};
		*certs = sp_snp_cert_table_build(kinds, ders, lens, 3, certs_len);
	}
	return 0;
}

/* ---- protocol -------------------------------------------------------- */

static void put_header(sp_buf *b, uint16_t type, uint32_t id, uint32_t len)
{
	sp_buf_put(b, SP_SIMPSP_MAGIC, 4);
	sp_buf_put_u16le(b, 1);
	sp_buf_put_u16le(b, type);
	sp_buf_put_u32le(b, id);
	sp_buf_put_u32le(b, len);
}

int sp_simpsp_parse_header(sp_simpsp_frame *out, const uint8_t *hdr,
			   size_t len, sp_err **err)
{
	sp_reader r;
	sp_reader_init(&r, hdr, len);
	uint8_t magic[4];
	uint16_t version = 0;
	memset(out, 0, sizeof(*out));
	sp_reader_copy(&r, magic, 4);
	sp_reader_u16le(&r, &version);
	sp_reader_u16le(&r, &out->type);
	sp_reader_u32le(&r, &out->id);
	sp_reader_u32le(&r, &out->body_len);
	if (!sp_reader_ok(&r))
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP frame: header truncated");
	if (memcmp(magic, SP_SIMPSP_MAGIC, 4) != 0)
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP frame: bad magic (not SPSP)");
	if (version != 1)
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP frame: version %u (want 1)", version);
	if (out->body_len > SP_SIMPSP_MAX_BODY)
		return sp_error(err, SP_ERR_LIMIT,
				"sim PSP frame: body of %u bytes (at most %u)",
				out->body_len, SP_SIMPSP_MAX_BODY);
	if (sp_reader_left(&r) >= out->body_len)
		sp_reader_ptr(&r, &out->body, out->body_len);
	return 0;
}

uint8_t *sp_simpsp_encode_request(uint32_t id,
				  const uint8_t rd[SP_TEE_REPORT_DATA_LEN],
				  uint32_t vmpl, size_t *out_len)
{
	sp_buf b = SP_BUF_INIT;
	put_header(&b, SP_SIMPSP_REQ_REPORT, id, 68);
	sp_buf_put(&b, rd, 64);
	sp_buf_put_u32le(&b, vmpl);
	return sp_buf_steal(&b, out_len);
}

int sp_simpsp_parse_response(const uint8_t *body, size_t len, uint32_t *status,
			     const uint8_t **report, size_t *report_len,
			     const uint8_t **certs, size_t *certs_len,
			     sp_err **err)
{
	sp_reader r;
	sp_reader_init(&r, body, len);
	uint32_t st = 0, rl = 0, cl = 0;
	sp_reader_u32le(&r, &st);
	sp_reader_u32le(&r, &rl);
	sp_reader_ptr(&r, report, rl);
	sp_reader_u32le(&r, &cl);
	sp_reader_ptr(&r, certs, cl);
	if (!sp_reader_ok(&r))
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP response: lengths exceed the body");
	if (sp_reader_left(&r) != 0)
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP response: %zu trailing bytes",
				sp_reader_left(&r));
	if (st == SP_SIMPSP_OK && rl != SP_SNP_REPORT_LEN)
		return sp_error(err, SP_ERR_PROTOCOL,
				"sim PSP response: report of %u bytes", rl);
	*status = st;
	*report_len = rl;
	*certs_len = cl;
	return 0;
}

static uint8_t *response(uint32_t id, uint32_t status, const uint8_t *report,
			 size_t rl, const uint8_t *certs, size_t cl,
			 size_t *out_len)
{
	sp_buf b = SP_BUF_INIT;
	put_header(&b, SP_SIMPSP_RESP_REPORT, id, (uint32_t)(12 + rl + cl));
	sp_buf_put_u32le(&b, status);
	sp_buf_put_u32le(&b, (uint32_t)rl);
	if (rl)
		sp_buf_put(&b, report, rl);
	sp_buf_put_u32le(&b, (uint32_t)cl);
	if (cl)
		sp_buf_put(&b, certs, cl);
	return sp_buf_steal(&b, out_len);
}

uint8_t *sp_simpsp_handle(sp_simpsp *p, const uint8_t *frame, size_t len,
			  size_t *out_len)
{
	_cleanup_err_ sp_err *err = NULL;
	sp_simpsp_frame f;
	if (sp_simpsp_parse_header(&f, frame, len, &err) < 0 ||
	    f.type != SP_SIMPSP_REQ_REPORT || f.body_len != 68 || !f.body ||
	    len != SP_SIMPSP_HDR_LEN + f.body_len) {
		sp_log_warn("sim PSP: bad request: %s",
			    err ? sp_err_msg(err) : "wrong type or size");
		return response(f.id, SP_SIMPSP_BAD_REQUEST, NULL, 0, NULL, 0,
				out_len);
	}
	uint32_t vmpl = sp_le32(f.body + 64);
	if (vmpl > 3)
		return response(f.id, SP_SIMPSP_BAD_VMPL, NULL, 0, NULL, 0,
				out_len);
	_cleanup_free_ uint8_t *report = NULL, *certs = NULL;
	size_t rl = 0, cl = 0;
	if (sp_simpsp_make_report(p, f.body, vmpl, &report, &rl, &certs, &cl,
				  &err) < 0) {
		sp_log_error("sim PSP: %s", sp_err_msg(err));
		return response(f.id, SP_SIMPSP_INTERNAL, NULL, 0, NULL, 0,
				out_len);
	}
	return response(f.id, SP_SIMPSP_OK, report, rl, certs, cl, out_len);
}

/* ---- serving --------------------------------------------------------- */

/* Waits until fd is readable; 1 if so, 0 if stop_fd fired, -1 on error. */
static int wait_readable(int fd, int stop_fd)
{
	struct pollfd pf[2] = {{.fd = fd, .events = POLLIN},
			       {.fd = stop_fd, .events = POLLIN}};
	for (;;) {
		int n = poll(pf, stop_fd >= 0 ? 2 : 1, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (stop_fd >= 0 && pf[1].revents)
			return 0;
		return 1;
	}
}

static ssize_t read_stop(int fd, void *buf, size_t len, int stop_fd)
{
	size_t got = 0;
	while (got < len) {
		int w = wait_readable(fd, stop_fd);
		if (w <= 0)
			return w;
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Serves one connection; returns 0 at EOF or stop, -1 on error. */
static int serve_conn(sp_simpsp *p, int fd, int stop_fd, sp_err **err)
{
	_cleanup_free_ uint8_t *frame =
		sp_xmalloc(SP_SIMPSP_HDR_LEN + SP_SIMPSP_MAX_BODY);
	for (;;) {
		ssize_t n = read_stop(fd, frame, SP_SIMPSP_HDR_LEN, stop_fd);
		if (n == 0)
			return 0;
		if (n < 0)
			return sp_error_sys(err, errno, "sim PSP: read");
		sp_simpsp_frame f;
		_cleanup_err_ sp_err *perr = NULL;
		if (sp_simpsp_parse_header(&f, frame, SP_SIMPSP_HDR_LEN,
					   &perr) < 0) {
			/* A byte stream cannot resynchronise: answer and
			 * drop the connection. */
			size_t rl;
			_cleanup_free_ uint8_t *resp = response(
				0, SP_SIMPSP_BAD_REQUEST, NULL, 0, NULL, 0, &rl);
			sp_write_all(fd, resp, rl);
			return sp_error(err, SP_ERR_PROTOCOL, "%s",
					sp_err_msg(perr));
		}
		if (f.body_len) {
			n = read_stop(fd, frame + SP_SIMPSP_HDR_LEN, f.body_len,
				      stop_fd);
			if (n == 0)
				return 0;
			if (n < 0)
				return sp_error_sys(err, errno, "sim PSP: read");
		}
		size_t rl;
		_cleanup_free_ uint8_t *resp = sp_simpsp_handle(
			p, frame, SP_SIMPSP_HDR_LEN + f.body_len, &rl);
		if (sp_write_all(fd, resp, rl) < 0)
			return sp_error_sys(err, errno, "sim PSP: write");
	}
}

int sp_simpsp_serve_fd(sp_simpsp *p, int fd, sp_err **err)
{
	return serve_conn(p, fd, -1, err);
}

static int unix_addr(struct sockaddr_un *sa, const char *path, sp_err **err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return sp_error(err, SP_ERR_INVALID,
				"sim PSP: socket path `%s` is too long", path);
	strcpy(sa->sun_path, path);
	return 0;
}

static int listen_unix(const char *path, sp_err **err)
{
	struct sockaddr_un sa;
	if (unix_addr(&sa, path, err) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return sp_error_sys(err, errno, "sim PSP: socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 4) < 0) {
		int e = errno;
		close(fd);
		return sp_error_sys(err, e, "sim PSP: listen on %s", path);
	}
	return fd;
}

static int serve_listener(sp_simpsp *p, int lfd, int stop_fd)
{
	for (;;) {
		int w = wait_readable(lfd, stop_fd);
		if (w <= 0)
			return w;
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		_cleanup_err_ sp_err *err = NULL;
		if (serve_conn(p, c, stop_fd, &err) < 0)
			sp_log_warn("sim PSP: connection dropped: %s",
				    sp_err_msg(err));
		close(c);
	}
}

/* Connects to path (QEMU's chardev server), retrying until stop. */
static int serve_connect(sp_simpsp *p, const char *path, int stop_fd,
			 sp_err **err)
{
	struct sockaddr_un sa;
	if (unix_addr(&sa, path, err) < 0)
		return -1;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return sp_error_sys(err, errno, "sim PSP: socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			_cleanup_err_ sp_err *cerr = NULL;
			if (serve_conn(p, fd, stop_fd, &cerr) < 0)
				sp_log_warn("sim PSP: connection dropped: %s",
					    sp_err_msg(cerr));
		}
		close(fd);
		struct pollfd pf = {.fd = stop_fd, .events = POLLIN};
		if (poll(&pf, stop_fd >= 0 ? 1 : 0, 100) > 0)
			return 0;
	}
}

int sp_simpsp_serve(sp_simpsp *p, const char *spec, int stop_fd, sp_err **err)
{
	if (!strncmp(spec, "unix:", 5)) {
		_cleanup_close_ int lfd = listen_unix(spec + 5, err);
		if (lfd < 0)
			return -1;
		int rc = serve_listener(p, lfd, stop_fd);
		unlink(spec + 5);
		return rc < 0 ? sp_error_sys(err, errno, "sim PSP: poll") : 0;
	}
	if (!strncmp(spec, "connect:", 8))
		return serve_connect(p, spec + 8, stop_fd, err);
	return sp_error(err, SP_ERR_INVALID,
			"sim PSP: endpoint `%s`: want unix:PATH or "
			"connect:PATH", spec);
}

struct sp_simpsp_thread {
	pthread_t tid;
	sp_simpsp *p;
	int stop[2];
	int lfd;
	char *path; /* listening socket to remove, or connect target */
	bool listen;
};

static void *thread_main(void *arg)
{
	sp_simpsp_thread *t = arg;
	if (t->listen) {
		serve_listener(t->p, t->lfd, t->stop[0]);
	} else {
		_cleanup_err_ sp_err *err = NULL;
		if (serve_connect(t->p, t->path, t->stop[0], &err) < 0)
			sp_log_error("sim PSP: %s", sp_err_msg(err));
	}
	return NULL;
}

int sp_simpsp_start(sp_simpsp_thread **out, sp_simpsp *p, const char *spec,
		    sp_err **err)
{
	sp_simpsp_thread *t = sp_xzalloc(sizeof(*t));
	t->p = p;
	t->lfd = -1;
	if (!strncmp(spec, "unix:", 5)) {
		t->listen = true;
		t->path = sp_xstrdup(spec + 5);
		/* Bound before returning, so a VMM started next finds it. */
		t->lfd = listen_unix(t->path, err);
		if (t->lfd < 0)
			goto fail;
	} else if (!strncmp(spec, "connect:", 8)) {
		t->path = sp_xstrdup(spec + 8);
	} else {
		sp_error(err, SP_ERR_INVALID, "sim PSP: endpoint `%s`: want "
			 "unix:PATH or connect:PATH", spec);
		goto fail;
	}
	if (pipe2(t->stop, O_CLOEXEC) < 0) {
		sp_error_sys(err, errno, "sim PSP: pipe");
		goto fail;
	}
	int e = pthread_create(&t->tid, NULL, thread_main, t);
	if (e) {
		close(t->stop[0]);
		close(t->stop[1]);
		sp_error_sys(err, e, "sim PSP: thread");
		goto fail;
	}
	*out = t;
	return 0;
fail:
	if (t->lfd >= 0) {
		close(t->lfd);
		unlink(t->path);
	}
	free(t->path);
	free(t);
	return -1;
}

void sp_simpsp_stop(sp_simpsp_thread *t)
{
	if (!t)
		return;
	char c = 1;
	if (write(t->stop[1], &c, 1) < 0)
		sp_log_warn("sim PSP: stop: %s", strerror(errno));
	pthread_join(t->tid, NULL);
	close(t->stop[0]);
	close(t->stop[1]);
	if (t->listen) {
		close(t->lfd);
		unlink(t->path);
	}
	free(t->path);
	free(t);
}
