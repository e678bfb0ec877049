/* SPDX-License-Identifier: Apache-2.0 */
/* VCEK/VLEK certificate extensions and the GHCB certificate table. AMD's
 * Key Distribution Service client is in kds.c: it needs libcurl, which must
 * stay out of the guest agent (the agent links this file through tee.c). */
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "snp-internal.h"

/* One DER TLV with a short or long (<= 2 bytes) length. */
static bool der_tlv(const uint8_t *p, size_t n, uint8_t want_tag,
		    const uint8_t **val, size_t *vlen)
{
	sp_reader r;
	sp_reader_init(&r, p, n);
	uint8_t tag = 0, l0 = 0;
	sp_reader_u8(&r, &tag);
	sp_reader_u8(&r, &l0);
	size_t len = l0;
	if (l0 == 0x81) {
		uint8_t b = 0;
		sp_reader_u8(&r, &b);
		len = b;
	} else if (l0 == 0x82) {
		uint16_t b = 0;
		sp_reader_u16be(&r, &b);
		len = b;
	} else if (l0 & 0x80) {
		return false;
	}
	if (!sp_reader_ok(&r) || tag != want_tag || sp_reader_left(&r) != len)
		return false;
	*vlen = len;
	return sp_reader_ptr(&r, val, len);
}

static const ASN1_OCTET_STRING *ext_value(X509 *x, const char *suffix)
{
	char oid[64];
	snprintf(oid, sizeof(oid), SNP_OID_PREFIX "%s", suffix);
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	if (!obj)
		return NULL;
	int idx = X509_get_ext_by_OBJ(x, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return NULL;
	X509_EXTENSION *e = X509_get_ext(x, idx);
	return e ? X509_EXTENSION_get_data(e) : NULL;
}

/* An SPL: a DER INTEGER 0..255 (a leading 00 for values >= 128). */
static int ext_int(X509 *x, const char *suffix, bool required, int *out,
		   int max, sp_err **err)
{
	const ASN1_OCTET_STRING *os = ext_value(x, suffix);
	if (!os) {
		if (required)
			return sp_error(err, SP_ERR_CERTIFICATE,
					"VEK certificate: extension %s%s is "
					"missing", SNP_OID_PREFIX, suffix);
		return 0;
	}
	const uint8_t *v = NULL;
	size_t vl = 0;
	if (!der_tlv(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os),
		     0x02, &v, &vl) || vl < 1 || vl > 2 || (v[0] & 0x80) ||
	    (vl == 2 && (v[0] != 0 || !(v[1] & 0x80))))
		return sp_error(err, SP_ERR_CERTIFICATE,
				"VEK certificate: extension %s%s is not a "
				"small DER INTEGER", SNP_OID_PREFIX, suffix);
	int val = vl == 1 ? v[0] : v[1];
	if (val > max)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"VEK certificate: extension %s%s value %d is "
				"out of range", SNP_OID_PREFIX, suffix, val);
	*out = val;
	return 1;
}

static int ext_ia5(X509 *x, const char *suffix, char *out, size_t n,
		   sp_err **err)
{
	const ASN1_OCTET_STRING *os = ext_value(x, suffix);
	if (!os)
		return 0;
	const uint8_t *v = NULL;
	size_t vl = 0;
	if (!der_tlv(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os),
		     0x16, &v, &vl) || vl >= n)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"VEK certificate: extension %s%s is not a short "
				"IA5String", SNP_OID_PREFIX, suffix);
	for (size_t i = 0; i < vl; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return sp_error(err, SP_ERR_CERTIFICATE,
					"VEK certificate: extension %s%s has a "
					"non-printable character",
					SNP_OID_PREFIX, suffix);
	memcpy(out, v, vl);
	out[vl] = '\0';
	return 1;
}

int sp_snp_product_cpu(const char *product)
{
	const char *p = product;
	if (!strncmp(p, SNP_SIM_PRODUCT_PREFIX, strlen(SNP_SIM_PRODUCT_PREFIX)))
		p += strlen(SNP_SIM_PRODUCT_PREFIX);
	if (!strncmp(p, "Milan", 5))
		return SP_SNP_CPU_MILAN;
	if (!strncmp(p, "Genoa", 5))
		return SP_SNP_CPU_GENOA;
	if (!strncmp(p, "Turin", 5))
		return SP_SNP_CPU_TURIN;
	return SP_SNP_CPU_UNKNOWN;
}

int snp_vek_info_from_x509(sp_snp_vek_info *out, X509 *x, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	int v = 0;
	if (ext_int(x, "1", false, &v, 255, err) < 0)
		return -1;
	out->struct_version = v;
	int r = ext_ia5(x, "2", out->product, sizeof(out->product), err);
	if (r < 0)
		return -1;
	if (r == 0)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"VEK certificate: no productName extension "
				"(%s2); is this a VCEK or VLEK?", SNP_OID_PREFIX);
	int cpu = sp_snp_product_cpu(out->product);
	int bl = 0, tee = 0, snp = 0, uc = 0, fmc = 0;
	if (ext_int(x, "3.1", true, &bl, 255, err) < 0 ||
	    ext_int(x, "3.2", true, &tee, 255, err) < 0 ||
	    ext_int(x, "3.3", true, &snp, 255, err) < 0 ||
	    ext_int(x, "3.8", true, &uc, 255, err) < 0)
		return -1;
	r = ext_int(x, "3.9", cpu == SP_SNP_CPU_TURIN, &fmc, 255, err);
	if (r < 0)
		return -1;
	out->has_fmc = r > 0;
	out->spl.bl = (uint8_t)bl;
	out->spl.tee = (uint8_t)tee;
	out->spl.snp = (uint8_t)snp;
	out->spl.ucode = (uint8_t)uc;
	out->spl.fmc = (uint8_t)fmc;

	const ASN1_OCTET_STRING *hw = ext_value(x, "4");
	if (hw) {
		const uint8_t *d = ASN1_STRING_get0_data(hw);
		size_t n = (size_t)ASN1_STRING_length(hw);
		const uint8_t *v2 = NULL;
		size_t vl = 0;
		/* Older certificates hold the raw bytes; newer ones wrap
		 * them in an OCTET STRING. */
		if ((n == 66 || n == 10) && der_tlv(d, n, 0x04, &v2, &vl)) {
			d = v2;
			n = vl;
		}
		if (n != 64 && n != 8)
			return sp_error(err, SP_ERR_CERTIFICATE,
					"VEK certificate: hwID extension has "
					"%zu bytes (want 64, or 8 on Turin)", n);
		memcpy(out->hwid, d, n);
		out->hwid_len = n;
	}
	r = ext_ia5(x, "5", out->csp_id, sizeof(out->csp_id), err);
	if (r < 0)
		return -1;
	out->is_vlek = r > 0;
	if (!out->is_vlek && !hw)
		return sp_error(err, SP_ERR_CERTIFICATE,
				"VEK certificate: a VCEK without a hwID "
				"extension");
	return 0;
}

int sp_snp_vek_info_parse(sp_snp_vek_info *out, const uint8_t *der,
			  size_t len, sp_err **err)
{
	if (len > 64 * 1024)
		return sp_error(err, SP_ERR_LIMIT, "VEK certificate: too large");
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	if (!x)
		return sp_error(err, SP_ERR_PARSE,
				"VEK certificate: not a DER X.509 certificate");
	if (p != der + len) {
		X509_free(x);
		return sp_error(err, SP_ERR_PARSE,
				"VEK certificate: trailing bytes after the DER");
	}
	int rc = snp_vek_info_from_x509(out, x, err);
	X509_free(x);
	return rc;
}

int snp_load_certs(STACK_OF(X509) **out, const uint8_t *data, size_t len,
		   sp_err **err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (!sk)
		sp_oom();
	if (len > 1024 * 1024) {
		sk_X509_free(sk);
		return sp_error(err, SP_ERR_LIMIT, "certificates: too large");
	}
	if (memmem(data, len, "-----BEGIN", 10)) {
		BIO *b = BIO_new_mem_buf(data, (int)len);
		X509 *x;
		while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
			sk_X509_push(sk, x);
		BIO_free(b);
		ERR_clear_error();
	} else {
		const unsigned char *p = data;
		X509 *x = d2i_X509(NULL, &p, (long)len);
		if (x && p == data + len)
			sk_X509_push(sk, x);
		else
			X509_free(x);
	}
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return sp_error(err, SP_ERR_PARSE,
				"certificates: no PEM or DER X.509 certificate "
				"found");
	}
	*out = sk;
	return 0;
}

uint8_t *snp_x509_der(X509 *x, size_t *len)
{
	unsigned char *buf = NULL;
	int n = i2d_X509(x, &buf);
	if (n <= 0)
		sp_oom();
	uint8_t *copy = sp_xmemdup(buf, (size_t)n);
	OPENSSL_free(buf);
	*len = (size_t)n;
	return copy;
}

void snp_x509_cn(X509 *x, char *out, size_t n)
{
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
				      NID_commonName, out, (int)n) < 0)
		snprintf(out, n, "?");
}

/* ---- certificate table ---------------------------------------------- */

static const struct {
	int kind;
	uint8_t guid[16]; /* as laid out in memory (little-endian fields) */
} table_guids[] = {
	{SP_SNP_CERT_VCEK, {0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45,
			    0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd}},
	{SP_SNP_CERT_VLEK, {0xc2, 0x4b, 0x07, 0xa8, 0x5a, 0xa2, 0x3e, 0x48,
			    0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1}},
	{SP_SNP_CERT_ASK, {0x79, 0xb3, 0xb7, 0x4a, 0xac, 0xbb, 0xe4, 0x4f,
			   0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82}},
	{SP_SNP_CERT_ARK, {0xa4, 0x06, 0xb4, 0xc0, 0x03, 0xa8, 0x52, 0x49,
			   0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae}},
};

int sp_snp_cert_table_parse(sp_snp_cert_entry *entries, size_t max,
			    size_t *count, const uint8_t *data, size_t len,
			    sp_err **err)
{
	static const uint8_t zero[24];
	sp_reader r;
	sp_reader_init(&r, data, len);
	size_t n = 0;
	for (;;) {
		const uint8_t *e;
		if (!sp_reader_ptr(&r, &e, 24))
			return sp_error(err, SP_ERR_PARSE,
					"certificate table: no terminating "
					"all-zero entry");
		if (!memcmp(e, zero, 24))
			break;
		if (n == max)
			return sp_error(err, SP_ERR_LIMIT,
					"certificate table: more than %zu "
					"entries", max);
		uint32_t off = sp_le32(e + 16), l = sp_le32(e + 20);
		if (off > len || l > len - off || l == 0)
			return sp_error(err, SP_ERR_PARSE,
					"certificate table: entry %zu (offset "
					"%u, length %u) is outside the %zu-byte "
					"table", n, off, l, len);
		sp_snp_cert_entry *ce = &entries[n++];
		memcpy(ce->guid, e, 16);
		ce->kind = SP_SNP_CERT_OTHER;
		for (size_t i = 0; i < SP_ARRAY_LEN(table_guids); i++)
			if (!memcmp(e, table_guids[i].guid, 16))
				ce->kind = table_guids[i].kind;
		ce->der = data + off;
		ce->len = l;
	}
	*count = n;
	return 0;
}

uint8_t *sp_snp_cert_table_build(const int *kinds, const uint8_t *const *ders,
				 const size_t *lens, size_t n, size_t *out_len)
{
	sp_buf b = SP_BUF_INIT;
	size_t off = 24 * (n + 1);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *g = NULL;
		for (size_t j = 0; j < SP_ARRAY_LEN(table_guids); j++)
			if (table_guids[j].kind == kinds[i])
				g = table_guids[j].guid;
		static const uint8_t none[16];
		sp_buf_put(&b, g ? g : none, 16);
		sp_buf_put_u32le(&b, (uint32_t)off);
		sp_buf_put_u32le(&b, (uint32_t)lens[i]);
		off += lens[i];
	}
	sp_buf_put_zeros(&b, 24);
	for (size_t i = 0; i < n; i++)
		sp_buf_put(&b, ders[i], lens[i]);
	return sp_buf_steal(&b, out_len);
}
