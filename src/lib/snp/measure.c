/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP launch digest: what the PSP's SNP_LAUNCH_UPDATE chain yields for
 * an OVMF image, its metadata sections, the kernel hashes table and one
 * VMSA per vCPU. The algorithm follows AMD's SNP ABI as implemented by
 * virtee/sev-snp-measure (the reference the cloud providers use). */
#include <string.h>

#include <openssl/evp.h>

#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/snp.h"

#define PAGE 4096u
#define FOUR_GB 0x100000000ull
#define VMSA_GPA 0xFFFFFFFFF000ull
#define BSP_EIP 0xFFFFFFF0u
#define MAX_OVMF (64u << 20)

enum page_type {
	PT_NORMAL = 1,
	PT_VMSA = 2,
	PT_ZERO = 3,
	PT_UNMEASURED = 4,
	PT_SECRETS = 5,
	PT_CPUID = 6,
};

enum section_type {
	SEC_SNP_SEC_MEM = 1,
	SEC_SNP_SECRETS = 2,
	SEC_CPUID = 3,
	SEC_SVSM_CAA = 4,
	SEC_SNP_KERNEL_HASHES = 0x10,
};

/* GUIDs in their on-disk (little-endian) byte order. */
static const uint8_t guid_footer[16] = {
	0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
	0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d};
static const uint8_t guid_sev_meta[16] = {
	0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
	0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc};
static const uint8_t guid_hash_table_rv[16] = {
	0x1f, 0x37, 0x55, 0x72, 0x3b, 0x3a, 0x04, 0x4b,
	0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54};
static const uint8_t guid_reset_block[16] = {
	0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f,
	0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e};
static const uint8_t guid_hashes_table[16] = {
	0x06, 0xd6, 0x38, 0x94, 0x22, 0x4f, 0xc9, 0x4c,
	0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21};
static const uint8_t guid_cmdline[16] = {
	0xd8, 0x2d, 0xd0, 0x97, 0x20, 0xbd, 0x94, 0x4c,
	0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a};
static const uint8_t guid_initrd[16] = {
	0x31, 0xf7, 0xba, 0x44, 0x2f, 0x3a, 0xd7, 0x4b,
	0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d};
static const uint8_t guid_kernel[16] = {
	0x37, 0x94, 0xe7, 0x4d, 0xd2, 0xab, 0x7f, 0x42,
	0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b};

struct section {
	uint32_t gpa, size, type;
};

struct ovmf {
	const uint8_t *data;
	size_t len;
	struct section sections[32];
	size_t n_sections;
	bool has_hash_gpa, has_reset_eip;
	uint32_t hash_gpa, reset_eip;
};

struct gctx {
	uint8_t ld[48];
	EVP_MD_CTX *md;
};

static void page_update(struct gctx *g, uint64_t gpa, int type,
			const uint8_t contents[48])
{
	uint8_t info[0x70];
	memcpy(info, g->ld, 48);
	memcpy(info + 48, contents, 48);
	sp_put_le16(info + 96, 0x70);
	info[98] = (uint8_t)type;
	info[99] = 0;  /* is_imi */
	info[100] = 0; /* vmpl3 perms */
	info[101] = 0; /* vmpl2 perms */
	info[102] = 0; /* vmpl1 perms */
	info[103] = 0;
	sp_put_le64(info + 104, gpa);
	unsigned int n = 0;
	EVP_DigestInit_ex(g->md, EVP_sha384(), NULL);
	EVP_DigestUpdate(g->md, info, sizeof(info));
	EVP_DigestFinal_ex(g->md, g->ld, &n);
}

static void page_hash(struct gctx *g, const uint8_t *page, uint8_t out[48])
{
	unsigned int n = 0;
	EVP_DigestInit_ex(g->md, EVP_sha384(), NULL);
	EVP_DigestUpdate(g->md, page, PAGE);
	EVP_DigestFinal_ex(g->md, out, &n);
}

static void update_normal(struct gctx *g, uint64_t gpa, const uint8_t *data,
			  size_t len)
{
	uint8_t h[48];
	for (size_t off = 0; off < len; off += PAGE) {
		page_hash(g, data + off, h);
		page_update(g, gpa + off, PT_NORMAL, h);
	}
}

static void update_empty(struct gctx *g, uint64_t gpa, size_t len, int type)
{
	static const uint8_t zero[48];
	for (size_t off = 0; off < len; off += PAGE)
		page_update(g, gpa + off, type, zero);
}

#define SEV_SECTIONS_MAX (16u << 20)

static int ovmf_parse(struct ovmf *o, const uint8_t *data, size_t len,
		      sp_err **err)
{
	memset(o, 0, sizeof(*o));
	o->data = data;
	o->len = len;
	if (len == 0 || len % PAGE || len > MAX_OVMF)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: size %zu is not a non-zero multiple of "
				"4 KiB up to 64 MiB", len);
	/* The footer entry (u16 size, GUID) sits 32 bytes before the end;
	 * the table's entries run backwards from it, each data|size|GUID. */
	const size_t hdr = 18;
	if (len < 32 + hdr)
		return sp_error(err, SP_ERR_PARSE, "OVMF: too small");
	size_t footer = len - 32 - hdr;
	if (memcmp(data + footer + 2, guid_footer, 16) != 0)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: no GUIDed footer table at 32 bytes before "
				"the end; is this an SEV-capable OVMF build?");
	uint16_t table_size = sp_le16(data + footer);
	if (table_size < hdr || table_size - hdr > footer)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: footer table size %u is out of range",
				table_size);
	size_t start = footer - (table_size - hdr);
	size_t end = footer; /* exclusive end of the remaining table */
	bool has_meta = false;
	uint32_t meta_off = 0;
	while (end - start >= hdr) {
		const uint8_t *eh = data + end - hdr;
		uint16_t esize = sp_le16(eh);
		if (esize < hdr || esize > end - start)
			return sp_error(err, SP_ERR_PARSE,
					"OVMF: footer table entry of size %u is "
					"out of range", esize);
		const uint8_t *edata = data + end - esize;
		size_t dlen = esize - hdr;
		const uint8_t *g = eh + 2;
		if (!memcmp(g, guid_sev_meta, 16) && dlen >= 4) {
			has_meta = true;
			meta_off = sp_le32(edata);
		} else if (!memcmp(g, guid_hash_table_rv, 16) && dlen >= 4) {
			o->has_hash_gpa = true;
			o->hash_gpa = sp_le32(edata);
		} else if (!memcmp(g, guid_reset_block, 16) && dlen >= 4) {
			o->has_reset_eip = true;
			o->reset_eip = sp_le32(edata);
		}
		end -= esize;
	}
	if (!has_meta)
		return 0;
	if (meta_off > len || meta_off < 16)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: SEV metadata offset %u is out of range",
				meta_off);
	sp_reader r;
	sp_reader_init(&r, data + (len - meta_off), meta_off);
	uint8_t sig[4];
	uint32_t msize = 0, version = 0, n = 0;
	sp_reader_copy(&r, sig, 4);
	sp_reader_u32le(&r, &msize);
	sp_reader_u32le(&r, &version);
	sp_reader_u32le(&r, &n);
	if (!sp_reader_ok(&r) || memcmp(sig, "ASEV", 4) != 0)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: SEV metadata has no ASEV header");
	if (version != 1)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: SEV metadata version %u (want 1)",
				version);
	if (n > SP_ARRAY_LEN(o->sections))
		return sp_error(err, SP_ERR_LIMIT,
				"OVMF: %u SEV metadata sections (at most %zu)",
				n, SP_ARRAY_LEN(o->sections));
	/* Each section's pages are measured one by one: a footer claiming
	 * gigabytes would take minutes (the fuzz campaign's timeout). OVMF's
	 * sections cover tens of KiB; 16 MiB in all is far above that. */
	uint64_t covered = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct section *s = &o->sections[i];
		sp_reader_u32le(&r, &s->gpa);
		sp_reader_u32le(&r, &s->size);
		sp_reader_u32le(&r, &s->type);
		if (!sp_reader_ok(&r))
			return sp_error(err, SP_ERR_PARSE,
					"OVMF: SEV metadata is truncated");
		if (s->gpa % PAGE || s->size % PAGE)
			return sp_error(err, SP_ERR_PARSE,
					"OVMF: SEV section %u (0x%x+0x%x) is not "
					"page-aligned", i, s->gpa, s->size);
		covered += s->size;
		if ((uint64_t)s->gpa + s->size > (1ull << 32) || covered > SEV_SECTIONS_MAX)
			return sp_error(err, SP_ERR_LIMIT,
					"OVMF: SEV section %u (0x%x+0x%x) ends beyond 4 GiB or "
					"brings the sections past %u MiB",
					i, s->gpa, s->size, SEV_SECTIONS_MAX >> 20);
	}
	o->n_sections = n;
	return 0;
}

/* The SEV hashes table: header GUID + u16 length, then cmdline, initrd
 * and kernel entries {GUID, u16 50, SHA-256}; padded to 16 bytes. */
static int build_hashes_page(uint8_t page[PAGE], size_t offset,
			     const sp_snp_measure_opts *o, sp_err **err)
{
	uint8_t h_cmd[32], h_initrd[32], h_kernel[32];
	if (sp_sha256_file(h_kernel, o->kernel, err) < 0)
		return sp_error_wrap(err, "kernel hash");
	if (o->initrd) {
		if (sp_sha256_file(h_initrd, o->initrd, err) < 0)
			return sp_error_wrap(err, "initrd hash");
	} else {
		sp_sha256(h_initrd, "", 0);
	}
	const char *append = o->append ? o->append : "";
	sp_sha256(h_cmd, append, strlen(append) + 1); /* with its NUL */
	memset(page, 0, PAGE);
	if (offset + 176 > PAGE)
		return sp_error(err, SP_ERR_PARSE,
				"OVMF: hashes table offset 0x%zx leaves no room "
				"in its page", offset);
	uint8_t *t = page + offset;
	memcpy(t, guid_hashes_table, 16);
	sp_put_le16(t + 16, 168);
	const uint8_t *guids[3] = {guid_cmdline, guid_initrd, guid_kernel};
	const uint8_t *hashes[3] = {h_cmd, h_initrd, h_kernel};
	for (int i = 0; i < 3; i++) {
		uint8_t *e = t + 18 + 50 * i;
		memcpy(e, guids[i], 16);
		sp_put_le16(e + 16, 50);
		memcpy(e + 18, hashes[i], 32);
	}
	return 0;
}

struct vmsa_regs {
	uint32_t eip;
	uint16_t cs_attr, ss_attr, tr_attr;
	uint64_t rdx, g_pat;
	uint32_t mxcsr;
	uint16_t fcw;
};

static void put_seg(uint8_t *p, uint16_t sel, uint16_t attr, uint32_t limit,
		    uint64_t base)
{
	sp_put_le16(p, sel);
	sp_put_le16(p + 2, attr);
	sp_put_le32(p + 4, limit);
	sp_put_le64(p + 8, base);
}

/* A VMSA page (the kernel's struct sev_es_save_area) at reset state. */
static void build_vmsa(uint8_t page[PAGE], const struct vmsa_regs *v,
		       uint64_t features)
{
	memset(page, 0, PAGE);
	put_seg(page + 0x000, 0, 0x93, 0xffff, 0);             /* es */
	put_seg(page + 0x010, 0xf000, v->cs_attr, 0xffff,
		v->eip & 0xffff0000u);                        /* cs */
	put_seg(page + 0x020, 0, v->ss_attr, 0xffff, 0);       /* ss */
	put_seg(page + 0x030, 0, 0x93, 0xffff, 0);             /* ds */
	put_seg(page + 0x040, 0, 0x93, 0xffff, 0);             /* fs */
	put_seg(page + 0x050, 0, 0x93, 0xffff, 0);             /* gs */
	put_seg(page + 0x060, 0, 0, 0xffff, 0);                /* gdtr */
	put_seg(page + 0x070, 0, 0x82, 0xffff, 0);             /* ldtr */
	put_seg(page + 0x080, 0, 0, 0xffff, 0);                /* idtr */
	put_seg(page + 0x090, 0, v->tr_attr, 0xffff, 0);       /* tr */
	sp_put_le64(page + 0x0D0, 0x1000);                     /* efer */
	sp_put_le64(page + 0x148, 0x40);                       /* cr4 */
	sp_put_le64(page + 0x158, 0x10);                       /* cr0 */
	sp_put_le64(page + 0x160, 0x400);                      /* dr7 */
	sp_put_le64(page + 0x168, 0xffff0ff0);                 /* dr6 */
	sp_put_le64(page + 0x170, 0x2);                        /* rflags */
	sp_put_le64(page + 0x178, v->eip & 0xffff);            /* rip */
	sp_put_le64(page + 0x268, v->g_pat);                   /* g_pat */
	sp_put_le64(page + 0x310, v->rdx);                     /* rdx */
	sp_put_le64(page + 0x3B0, features);                   /* sev_features */
	sp_put_le64(page + 0x3E8, 0x1);                        /* xcr0 */
	sp_put_le32(page + 0x408, v->mxcsr);                   /* mxcsr */
	sp_put_le16(page + 0x410, v->fcw);                     /* x87_fcw */
}

static void vmsa_regs_for(struct vmsa_regs *v, uint32_t eip, int vmm,
			  uint32_t sig)
{
	memset(v, 0, sizeof(*v));
	v->eip = eip;
	v->cs_attr = 0x9b;
	v->ss_attr = 0x93;
	v->tr_attr = 0x8b;
	v->rdx = sig;
	v->g_pat = 0x0007040600070406ull;
	v->mxcsr = 0x1f80;
	v->fcw = 0x37f;
	if (vmm == SP_SNP_VMM_EC2) {
		v->cs_attr = eip == BSP_EIP ? 0x9a : 0x9b;
		v->ss_attr = 0x92;
		v->tr_attr = 0x83;
		v->rdx = 0x600;
		v->mxcsr = 0;
		v->fcw = 0;
	} else if (vmm == SP_SNP_VMM_GCE) {
		v->rdx = 0x600;
		v->g_pat = 0x00070106ull;
		v->mxcsr = 0;
		v->fcw = 0;
	}
}

static const struct {
	const char *name;
	uint32_t sig;
} vcpu_sigs[] = {
	{"EPYC", 0x800f12},       {"EPYC-v1", 0x800f12},
	{"EPYC-v2", 0x800f12},    {"EPYC-v3", 0x800f12},
	{"EPYC-v4", 0x800f12},    {"EPYC-Rome", 0x830f10},
	{"EPYC-Rome-v1", 0x830f10}, {"EPYC-Rome-v2", 0x830f10},
	{"EPYC-Rome-v3", 0x830f10}, {"EPYC-Rome-v4", 0x830f10},
	{"EPYC-Milan", 0xa00f11}, {"EPYC-Milan-v1", 0xa00f11},
	{"EPYC-Milan-v2", 0xa00f11}, {"EPYC-Genoa", 0xa10f10},
	{"EPYC-Genoa-v1", 0xa10f10}, {"EPYC-Turin", 0xb00f00},
	{"EPYC-Turin-v1", 0xb00f00},
};

uint32_t sp_snp_vcpu_sig(const char *vcpu_type)
{
	if (!vcpu_type)
		return 0;
	for (size_t i = 0; i < SP_ARRAY_LEN(vcpu_sigs); i++)
		if (!strcmp(vcpu_sigs[i].name, vcpu_type))
			return vcpu_sigs[i].sig;
	return 0;
}

int sp_snp_vmm_parse(const char *name)
{
	if (!strcmp(name, "QEMU") || !strcmp(name, "qemu"))
		return SP_SNP_VMM_QEMU;
	if (!strcmp(name, "ec2"))
		return SP_SNP_VMM_EC2;
	if (!strcmp(name, "gce"))
		return SP_SNP_VMM_GCE;
	return -1;
}

void sp_snp_measure_opts_init(sp_snp_measure_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = 1;
	o->vcpus = 1;
	o->vmm = SP_SNP_VMM_QEMU;
	o->guest_features = 0x1;
}

int sp_snp_measure_buf(uint8_t out[SP_SNP_MEASUREMENT_LEN],
		       const uint8_t *ovmf, size_t ovmf_len,
		       const sp_snp_measure_opts *o, sp_err **err)
{
	if (o->vcpus < 1 || o->vcpus > 4096)
		return sp_error(err, SP_ERR_INVALID,
				"measure: %u vCPUs (want 1-4096)", o->vcpus);
	if (o->vmm < SP_SNP_VMM_QEMU || o->vmm > SP_SNP_VMM_GCE)
		return sp_error(err, SP_ERR_INVALID, "measure: unknown VMM type");
	uint32_t sig = o->vcpu_sig;
	if (o->vcpu_type) {
		sig = sp_snp_vcpu_sig(o->vcpu_type);
		if (!sig)
			return sp_error(err, SP_ERR_INVALID,
					"measure: unknown vCPU type `%s` (use "
					"a QEMU EPYC model such as EPYC-v4, "
					"EPYC-Milan, EPYC-Genoa)", o->vcpu_type);
	}
	if (!sig && o->vmm == SP_SNP_VMM_QEMU)
		return sp_error(err, SP_ERR_INVALID,
				"measure: the QEMU VMM type needs a vCPU type "
				"(--vcpu-type)");
	if ((o->initrd || o->append) && !o->kernel)
		return sp_error(err, SP_ERR_INVALID,
				"measure: an initrd or command line needs a "
				"kernel");
	struct ovmf fw;
	if (ovmf_parse(&fw, ovmf, ovmf_len, err) < 0)
		return -1;
	bool has_hashes_sec = false;
	for (size_t i = 0; i < fw.n_sections; i++)
		if (fw.sections[i].type == SEC_SNP_KERNEL_HASHES)
			has_hashes_sec = true;
	if (o->kernel && !has_hashes_sec && !o->sim_direct_boot)
		return sp_error(err, SP_ERR_INVALID,
				"measure: a kernel was given but the OVMF "
				"metadata has no SNP_KERNEL_HASHES section; use "
				"an AmdSev OVMF build");
	if (o->vcpus > 1 && !fw.has_reset_eip)
		return sp_error(err, SP_ERR_PARSE,
				"measure: OVMF has no SEV-ES reset block, so "
				"the APs' start address is unknown");

	struct gctx g;
	memset(&g, 0, sizeof(g));
	g.md = EVP_MD_CTX_new();
	if (!g.md)
		sp_oom();
	_cleanup_free_ uint8_t *page = sp_xmalloc(PAGE);
	int rc = 0;

	update_normal(&g, FOUR_GB - ovmf_len, ovmf, ovmf_len);

	const struct section *cpuid_last = NULL;
	for (size_t i = 0; i < fw.n_sections; i++) {
		const struct section *s = &fw.sections[i];
		switch (s->type) {
		case SEC_SNP_SEC_MEM:
			update_empty(&g, s->gpa, s->size,
				     o->vmm == SP_SNP_VMM_GCE ? PT_UNMEASURED
							      : PT_ZERO);
			break;
		case SEC_SNP_SECRETS:
			update_empty(&g, s->gpa, s->size, PT_SECRETS);
			break;
		case SEC_CPUID:
			if (o->vmm == SP_SNP_VMM_EC2)
				cpuid_last = s; /* EC2 adds it last */
			else
				update_empty(&g, s->gpa, s->size, PT_CPUID);
			break;
		case SEC_SVSM_CAA:
			update_empty(&g, s->gpa, s->size, PT_ZERO);
			break;
		case SEC_SNP_KERNEL_HASHES:
			if (o->kernel) {
				if (s->size != PAGE || !fw.has_hash_gpa) {
					rc = sp_error(err, SP_ERR_PARSE,
						      "OVMF: SNP_KERNEL_HASHES "
						      "section is not one page "
						      "or has no table GPA");
					goto out;
				}
				if (build_hashes_page(page, fw.hash_gpa & 0xfff,
						      o, err) < 0) {
					rc = -1;
					goto out;
				}
				update_normal(&g, s->gpa, page, PAGE);
			} else {
				update_empty(&g, s->gpa, s->size, PT_ZERO);
			}
			break;
		default:
			rc = sp_error(err, SP_ERR_PARSE,
				      "OVMF: unknown SEV section type 0x%x",
				      s->type);
			goto out;
		}
	}
	if (cpuid_last)
		update_empty(&g, cpuid_last->gpa, cpuid_last->size, PT_CPUID);
	if (o->kernel && !has_hashes_sec) {
		/* sim direct boot: see sp_snp_measure_opts. */
		if (build_hashes_page(page, SP_SNP_SIM_HASHES_OFFSET, o,
				      err) < 0) {
			rc = -1;
			goto out;
		}
		update_normal(&g, SP_SNP_SIM_HASHES_GPA, page, PAGE);
	}

	uint8_t h[48];
	struct vmsa_regs v;
	for (unsigned i = 0; i < o->vcpus; i++) {
		vmsa_regs_for(&v, i == 0 ? BSP_EIP : fw.reset_eip, o->vmm, sig);
		build_vmsa(page, &v, o->guest_features);
		page_hash(&g, page, h);
		page_update(&g, VMSA_GPA, PT_VMSA, h);
	}
	memcpy(out, g.ld, 48);
out:
	EVP_MD_CTX_free(g.md);
	return rc;
}

int sp_snp_measure(uint8_t out[SP_SNP_MEASUREMENT_LEN],
		   const sp_snp_measure_opts *o, sp_err **err)
{
	if (!o->ovmf)
		return sp_error(err, SP_ERR_INVALID,
				"measure: no OVMF firmware file given (--ovmf)");
	_cleanup_free_ uint8_t *fw = NULL;
	size_t len = 0;
	if (sp_read_file(&fw, &len, o->ovmf, MAX_OVMF, err) < 0)
		return sp_error_wrap(err, "measure: firmware");
	if (sp_snp_measure_buf(out, fw, len, o, err) < 0)
		return sp_error_wrap(err, "%s", o->ovmf);
	return 0;
}
