/* SPDX-License-Identifier: Apache-2.0 */
/* ATTESTATION_REPORT codec (versions 2, 3/4, 5) and its JSON rendering. */
#include <string.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/snp.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int sp_snp_report_parse(sp_snp_report *out, const uint8_t *data, size_t len,
			sp_err **err)
{
	if (len != SP_SNP_REPORT_LEN)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: %zu bytes, want %d", len,
				SP_SNP_REPORT_LEN);
	sp_snp_report r;
	memset(&r, 0, sizeof(r));
	sp_reader rd;
	sp_reader_init(&rd, data, len);
	uint32_t reserved0 = 0;
	sp_reader_u32le(&rd, &r.version);
	sp_reader_u32le(&rd, &r.guest_svn);
	sp_reader_u64le(&rd, &r.policy);
	sp_reader_copy(&rd, r.family_id, 16);
	sp_reader_copy(&rd, r.image_id, 16);
	sp_reader_u32le(&rd, &r.vmpl);
	sp_reader_u32le(&rd, &r.signature_algo);
	sp_reader_u64le(&rd, &r.current_tcb);
	sp_reader_u64le(&rd, &r.platform_info);
	sp_reader_u32le(&rd, &r.signer_info);
	sp_reader_u32le(&rd, &reserved0);
	sp_reader_copy(&rd, r.report_data, 64);
	sp_reader_copy(&rd, r.measurement, 48);
	sp_reader_copy(&rd, r.host_data, 32);
	sp_reader_copy(&rd, r.id_key_digest, 48);
	sp_reader_copy(&rd, r.author_key_digest, 48);
	sp_reader_copy(&rd, r.report_id, 32);
	sp_reader_copy(&rd, r.report_id_ma, 32);
	sp_reader_u64le(&rd, &r.reported_tcb);
	/* 0x188 */
	if (r.version >= 3) {
		sp_reader_u8(&rd, &r.cpuid_fam_id);
		sp_reader_u8(&rd, &r.cpuid_mod_id);
		sp_reader_u8(&rd, &r.cpuid_step);
	}
	sp_reader_seek(&rd, 0x1A0);
	sp_reader_copy(&rd, r.chip_id, 64);
	sp_reader_u64le(&rd, &r.committed_tcb);
	sp_reader_u8(&rd, &r.current_build);
	sp_reader_u8(&rd, &r.current_minor);
	sp_reader_u8(&rd, &r.current_major);
	sp_reader_skip(&rd, 1);
	sp_reader_u8(&rd, &r.committed_build);
	sp_reader_u8(&rd, &r.committed_minor);
	sp_reader_u8(&rd, &r.committed_major);
	sp_reader_skip(&rd, 1);
	sp_reader_u64le(&rd, &r.launch_tcb);
	if (r.version >= 5) {
		sp_reader_u64le(&rd, &r.launch_mit_vector);
		sp_reader_u64le(&rd, &r.current_mit_vector);
	}
	sp_reader_seek(&rd, SP_SNP_SIGNED_LEN);
	sp_reader_copy(&rd, r.sig_r, 72);
	sp_reader_copy(&rd, r.sig_s, 72);
	if (!sp_reader_ok(&rd))
		return sp_error(err, SP_ERR_PARSE, "SNP report: truncated");

	if (r.version < 2 || r.version > 5)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: version %u is not supported "
				"(2, 3, 4 and 5 are)", r.version);
	if (r.signature_algo != 1)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: signature algorithm %u is not "
				"ECDSA P-384/SHA-384 (1)", r.signature_algo);
	if (reserved0 != 0)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: reserved bytes 0x04C-0x04F are "
				"not zero");
	if (r.signer_info >> 5)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: signer_info 0x%x has reserved "
				"bits 31:5 set", r.signer_info);
	int key = (int)((r.signer_info >> 2) & 7);
	if (key != SP_SNP_KEY_VCEK && key != SP_SNP_KEY_VLEK &&
	    key != SP_SNP_KEY_NONE)
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: signing key %d is reserved", key);
	/* Only 48 bytes of R and S are significant; the rest of the
	 * signature area must be zero. */
	if (!all_zero(r.sig_r + 48, 24) || !all_zero(r.sig_s + 48, 24) ||
	    !all_zero(data + 0x2A0 + 144, 512 - 144))
		return sp_error(err, SP_ERR_PARSE,
				"SNP report: signature padding is not zero");
	*out = r;
	return 0;
}

void sp_snp_report_encode(const sp_snp_report *r,
			  uint8_t out[SP_SNP_REPORT_LEN])
{
	memset(out, 0, SP_SNP_REPORT_LEN);
	sp_put_le32(out + 0x000, r->version);
	sp_put_le32(out + 0x004, r->guest_svn);
	sp_put_le64(out + 0x008, r->policy);
	memcpy(out + 0x010, r->family_id, 16);
	memcpy(out + 0x020, r->image_id, 16);
	sp_put_le32(out + 0x030, r->vmpl);
	sp_put_le32(out + 0x034, r->signature_algo);
	sp_put_le64(out + 0x038, r->current_tcb);
	sp_put_le64(out + 0x040, r->platform_info);
	sp_put_le32(out + 0x048, r->signer_info);
	memcpy(out + 0x050, r->report_data, 64);
	memcpy(out + 0x090, r->measurement, 48);
	memcpy(out + 0x0C0, r->host_data, 32);
	memcpy(out + 0x0E0, r->id_key_digest, 48);
	memcpy(out + 0x110, r->author_key_digest, 48);
	memcpy(out + 0x140, r->report_id, 32);
	memcpy(out + 0x160, r->report_id_ma, 32);
	sp_put_le64(out + 0x180, r->reported_tcb);
	if (r->version >= 3) {
		out[0x188] = r->cpuid_fam_id;
		out[0x189] = r->cpuid_mod_id;
		out[0x18A] = r->cpuid_step;
	}
	memcpy(out + 0x1A0, r->chip_id, 64);
	sp_put_le64(out + 0x1E0, r->committed_tcb);
	out[0x1E8] = r->current_build;
	out[0x1E9] = r->current_minor;
	out[0x1EA] = r->current_major;
	out[0x1EC] = r->committed_build;
	out[0x1ED] = r->committed_minor;
	out[0x1EE] = r->committed_major;
	sp_put_le64(out + 0x1F0, r->launch_tcb);
	if (r->version >= 5) {
		sp_put_le64(out + 0x1F8, r->launch_mit_vector);
		sp_put_le64(out + 0x200, r->current_mit_vector);
	}
	memcpy(out + 0x2A0, r->sig_r, 72);
	memcpy(out + 0x2E8, r->sig_s, 72);
}

int sp_snp_signing_key(const sp_snp_report *r)
{
	return (int)((r->signer_info >> 2) & 7);
}

int sp_snp_report_cpu(const sp_snp_report *r)
{
	if (r->version >= 3 && (r->cpuid_fam_id || r->cpuid_mod_id)) {
		uint8_t f = r->cpuid_fam_id, m = r->cpuid_mod_id;
		if (f == 0x19 && m <= 0x0F)
			return SP_SNP_CPU_MILAN;
		if (f == 0x19 && ((m >= 0x10 && m <= 0x1F) ||
				  (m >= 0xA0 && m <= 0xAF)))
			return SP_SNP_CPU_GENOA;
		if (f == 0x1A && m <= 0x11)
			return SP_SNP_CPU_TURIN;
		return SP_SNP_CPU_UNKNOWN;
	}
	/* v2 has no CPUID: Turin chip IDs are 8 bytes long, so the tail is
	 * zero there. A masked (all-zero) chip id says nothing. */
	if (all_zero(r->chip_id, 64))
		return SP_SNP_CPU_UNKNOWN;
	if (all_zero(r->chip_id + 8, 56))
		return SP_SNP_CPU_TURIN;
	return SP_SNP_CPU_MILAN;
}

void sp_snp_tcb_decode(uint64_t raw, int cpu, sp_snp_tcb *out)
{
	uint8_t b[8];
	sp_put_le64(b, raw);
	memset(out, 0, sizeof(*out));
	if (cpu == SP_SNP_CPU_TURIN) {
		out->fmc = b[0];
		out->bl = b[1];
		out->tee = b[2];
		out->snp = b[3];
	} else {
		out->bl = b[0];
		out->tee = b[1];
		out->snp = b[6];
	}
	out->ucode = b[7];
}

uint64_t sp_snp_tcb_encode(const sp_snp_tcb *t, int cpu)
{
	uint8_t b[8] = {0};
	if (cpu == SP_SNP_CPU_TURIN) {
		b[0] = t->fmc;
		b[1] = t->bl;
		b[2] = t->tee;
		b[3] = t->snp;
	} else {
		b[0] = t->bl;
		b[1] = t->tee;
		b[6] = t->snp;
	}
	b[7] = t->ucode;
	return sp_le64(b);
}

const char *sp_snp_cpu_name(int cpu)
{
	switch (cpu) {
	case SP_SNP_CPU_MILAN: return "Milan";
	case SP_SNP_CPU_GENOA: return "Genoa";
	case SP_SNP_CPU_TURIN: return "Turin";
	default: return "unknown";
	}
}

int sp_snp_tcb_parse(sp_snp_tcb *out, const char *s, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *copy = sp_xstrdup(s);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq)
			goto bad;
		*eq = '\0';
		char *end;
		errno = 0;
		unsigned long v = strtoul(eq + 1, &end, 0);
		if (errno || *end || end == eq + 1 || v > 255)
			goto bad;
		if (!strcmp(tok, "bl"))
			out->bl = (uint8_t)v;
		else if (!strcmp(tok, "tee"))
			out->tee = (uint8_t)v;
		else if (!strcmp(tok, "snp"))
			out->snp = (uint8_t)v;
		else if (!strcmp(tok, "ucode") || !strcmp(tok, "microcode"))
			out->ucode = (uint8_t)v;
		else if (!strcmp(tok, "fmc"))
			out->fmc = (uint8_t)v;
		else
			goto bad;
	}
	return 0;
bad:
	return sp_error(err, SP_ERR_INVALID,
			"TCB `%s`: write it as bl=N,tee=N,snp=N,ucode=N[,fmc=N] "
			"with values 0-255", s);
}

static void set_hex(json_t *o, const char *k, const void *p, size_t n)
{
	char *h = sp_hex_dup(p, n);
	json_object_set_new(o, k, json_string(h));
	free(h);
}

static json_t *tcb_json(uint64_t raw, int cpu)
{
	sp_snp_tcb t;
	sp_snp_tcb_decode(raw, cpu, &t);
	json_t *o = json_object();
	char hex[19];
	snprintf(hex, sizeof(hex), "0x%016llx", (unsigned long long)raw);
	json_object_set_new(o, "raw", json_string(hex));
	if (cpu == SP_SNP_CPU_TURIN)
		json_object_set_new(o, "fmc", json_integer(t.fmc));
	json_object_set_new(o, "bl", json_integer(t.bl));
	json_object_set_new(o, "tee", json_integer(t.tee));
	json_object_set_new(o, "snp", json_integer(t.snp));
	json_object_set_new(o, "ucode", json_integer(t.ucode));
	return o;
}

static const char *const policy_bits[] = {
	[16] = "smt", [17] = "reserved_1", [18] = "migrate_ma",
	[19] = "debug", [20] = "single_socket", [21] = "cxl_allowed",
	[22] = "mem_aes_256_xts", [23] = "rapl_dis",
	[24] = "ciphertext_hiding", [25] = "page_swap_disable",
};
static const char *const platform_bits[] = {
	[0] = "smt_enabled", [1] = "tsme_enabled", [2] = "ecc_enabled",
	[3] = "rapl_disabled", [4] = "ciphertext_hiding_enabled",
	[5] = "alias_check_complete", [7] = "sev_tio_enabled",
};

static json_t *bits_json(uint64_t v, const char *const *names, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		if (names[i])
			json_object_set_new(o, names[i],
					    json_boolean((v >> i) & 1));
	return o;
}

json_t *sp_snp_report_to_json(const sp_snp_report *r, int cpu)
{
	if (cpu == SP_SNP_CPU_UNKNOWN)
		cpu = sp_snp_report_cpu(r);
	json_t *o = json_object();
	char buf[32];
	json_object_set_new(o, "version", json_integer(r->version));
	json_object_set_new(o, "guest_svn", json_integer(r->guest_svn));
	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)r->policy);
	json_t *pol = bits_json(r->policy, policy_bits,
				SP_ARRAY_LEN(policy_bits));
	json_object_set_new(pol, "raw", json_string(buf));
	json_object_set_new(pol, "abi_minor", json_integer(r->policy & 0xff));
	json_object_set_new(pol, "abi_major",
			    json_integer((r->policy >> 8) & 0xff));
	json_object_set_new(o, "policy", pol);
	set_hex(o, "family_id", r->family_id, 16);
	set_hex(o, "image_id", r->image_id, 16);
	json_object_set_new(o, "vmpl", json_integer(r->vmpl));
	json_object_set_new(o, "signature_algo",
			    json_integer(r->signature_algo));
	json_object_set_new(o, "cpu", json_string(sp_snp_cpu_name(cpu)));
	json_object_set_new(o, "current_tcb", tcb_json(r->current_tcb, cpu));
	json_t *pi = bits_json(r->platform_info, platform_bits,
			       SP_ARRAY_LEN(platform_bits));
	snprintf(buf, sizeof(buf), "0x%llx",
		 (unsigned long long)r->platform_info);
	json_object_set_new(pi, "raw", json_string(buf));
	json_object_set_new(o, "platform_info", pi);
	json_t *si = json_object();
	int key = sp_snp_signing_key(r);
	json_object_set_new(si, "author_key_en",
			    json_boolean(r->signer_info & 1));
	json_object_set_new(si, "mask_chip_key",
			    json_boolean((r->signer_info >> 1) & 1));
	json_object_set_new(si, "signing_key",
			    json_string(key == SP_SNP_KEY_VCEK   ? "vcek"
					: key == SP_SNP_KEY_VLEK ? "vlek"
					: key == SP_SNP_KEY_NONE ? "none"
								 : "reserved"));
	json_object_set_new(o, "signer_info", si);
	set_hex(o, "report_data", r->report_data, 64);
	set_hex(o, "measurement", r->measurement, 48);
	set_hex(o, "host_data", r->host_data, 32);
	set_hex(o, "id_key_digest", r->id_key_digest, 48);
	set_hex(o, "author_key_digest", r->author_key_digest, 48);
	set_hex(o, "report_id", r->report_id, 32);
	set_hex(o, "report_id_ma", r->report_id_ma, 32);
	json_object_set_new(o, "reported_tcb", tcb_json(r->reported_tcb, cpu));
	if (r->version >= 3) {
		json_object_set_new(o, "cpuid_fam_id",
				    json_integer(r->cpuid_fam_id));
		json_object_set_new(o, "cpuid_mod_id",
				    json_integer(r->cpuid_mod_id));
		json_object_set_new(o, "cpuid_step",
				    json_integer(r->cpuid_step));
	}
	set_hex(o, "chip_id", r->chip_id, 64);
	json_object_set_new(o, "committed_tcb",
			    tcb_json(r->committed_tcb, cpu));
	snprintf(buf, sizeof(buf), "%u.%u.%u", r->current_major,
		 r->current_minor, r->current_build);
	json_object_set_new(o, "current_version", json_string(buf));
	snprintf(buf, sizeof(buf), "%u.%u.%u", r->committed_major,
		 r->committed_minor, r->committed_build);
	json_object_set_new(o, "committed_version", json_string(buf));
	json_object_set_new(o, "launch_tcb", tcb_json(r->launch_tcb, cpu));
	if (r->version >= 5) {
		snprintf(buf, sizeof(buf), "0x%llx",
			 (unsigned long long)r->launch_mit_vector);
		json_object_set_new(o, "launch_mit_vector", json_string(buf));
		snprintf(buf, sizeof(buf), "0x%llx",
			 (unsigned long long)r->current_mit_vector);
		json_object_set_new(o, "current_mit_vector", json_string(buf));
	}
	/* The signature as big-endian hex, as tools print it. */
	uint8_t be[48];
	json_t *sig = json_object();
	for (int i = 0; i < 48; i++)
		be[i] = r->sig_r[47 - i];
	set_hex(sig, "r", be, 48);
	for (int i = 0; i < 48; i++)
		be[i] = r->sig_s[47 - i];
	set_hex(sig, "s", be, 48);
	json_object_set_new(o, "signature", sig);
	return o;
}
