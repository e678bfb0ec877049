/* SPDX-License-Identifier: Apache-2.0 */
/* AMD SEV-SNP: the attestation report (codec and JSON), the certificate
 * chain and report verifier with appraisal, the launch-digest calculator,
 * and the sim PSP (a host-side stand-in for the AMD Secure Processor).
 * docs/attestation.md explains the choices. */
#ifndef SEALPOD_SNP_H
#define SEALPOD_SNP_H

#include <jansson.h>
#include <time.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/tee.h"

#define SP_SNP_SIGNED_LEN 0x2A0 /* bytes covered by the signature */
#define SP_SNP_MEASUREMENT_LEN 48
#define SP_SNP_HOST_DATA_LEN 32
#define SP_SNP_CHIP_ID_LEN 64

/* Policy bits (report offset 0x008). */
#define SP_SNP_POLICY_SMT (1ull << 16)
#define SP_SNP_POLICY_RESERVED1 (1ull << 17) /* must be 1 */
#define SP_SNP_POLICY_MIGRATE_MA (1ull << 18)
#define SP_SNP_POLICY_DEBUG (1ull << 19)
#define SP_SNP_POLICY_SINGLE_SOCKET (1ull << 20)
#define SP_SNP_POLICY_CXL (1ull << 21)
#define SP_SNP_POLICY_AES256XTS (1ull << 22)
#define SP_SNP_POLICY_RAPL_DIS (1ull << 23)
#define SP_SNP_POLICY_CIPHERTEXT_HIDING (1ull << 24)
#define SP_SNP_POLICY_PAGE_SWAP_DISABLE (1ull << 25)

/* signer_info SIGNING_KEY values. */
enum sp_snp_signing_key {
	SP_SNP_KEY_VCEK = 0,
	SP_SNP_KEY_VLEK = 1,
	SP_SNP_KEY_NONE = 7,
};

/* Which TCB_VERSION layout applies. */
enum sp_snp_cpu {
	SP_SNP_CPU_UNKNOWN = 0,
	SP_SNP_CPU_MILAN = 1,
	SP_SNP_CPU_GENOA = 2,
	SP_SNP_CPU_TURIN = 3,
};

/* A decoded TCB_VERSION. fmc is meaningful only in the Turin layout. */
typedef struct sp_snp_tcb {
	uint8_t fmc, bl, tee, snp, ucode;
} sp_snp_tcb;

/* Every field of ATTESTATION_REPORT versions 2, 3 (4) and 5. Raw TCB
 * values are kept; decode them with sp_snp_tcb_decode. */
typedef struct sp_snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[16];
	uint8_t image_id[16];
	uint32_t vmpl;
	uint32_t signature_algo;
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t signer_info;
	uint8_t report_data[SP_TEE_REPORT_DATA_LEN];
	uint8_t measurement[SP_SNP_MEASUREMENT_LEN];
	uint8_t host_data[SP_SNP_HOST_DATA_LEN];
	uint8_t id_key_digest[48];
	uint8_t author_key_digest[48];
	uint8_t report_id[32];
	uint8_t report_id_ma[32];
	uint64_t reported_tcb;
	uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* v3+ */
	uint8_t chip_id[SP_SNP_CHIP_ID_LEN];
	uint64_t committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	uint64_t launch_tcb;
	uint64_t launch_mit_vector, current_mit_vector; /* v5 */
	uint8_t sig_r[72], sig_s[72]; /* little-endian, as in the report */
} sp_snp_report;

/* Parses SP_SNP_REPORT_LEN bytes; refuses unknown versions, a signature
 * algorithm other than ECDSA P-384, and non-zero must-be-zero fields. */
SP_PUBLIC int sp_snp_report_parse(sp_snp_report *out, const uint8_t *data,
				  size_t len, sp_err **err);
/* Writes SP_SNP_REPORT_LEN bytes (reserved bytes zero). */
SP_PUBLIC void sp_snp_report_encode(const sp_snp_report *r,
				    uint8_t out[SP_SNP_REPORT_LEN]);
SP_PUBLIC int sp_snp_signing_key(const sp_snp_report *r);
/* The CPU generation from CPUID (v3+) or, for v2, a guess from chip_id. */
SP_PUBLIC int sp_snp_report_cpu(const sp_snp_report *r);
SP_PUBLIC void sp_snp_tcb_decode(uint64_t raw, int cpu, sp_snp_tcb *out);
SP_PUBLIC uint64_t sp_snp_tcb_encode(const sp_snp_tcb *t, int cpu);
SP_PUBLIC const char *sp_snp_cpu_name(int cpu);
/* Every field as JSON; TCBs decoded in the layout of cpu (pass
 * SP_SNP_CPU_UNKNOWN to use sp_snp_report_cpu). */
SP_PUBLIC json_t *sp_snp_report_to_json(const sp_snp_report *r, int cpu);
/* Parses "bl=3,tee=0,snp=8,ucode=115[,fmc=1]" (missing parts are 0). */
SP_PUBLIC int sp_snp_tcb_parse(sp_snp_tcb *out, const char *s, sp_err **err);

/* ---- Certificates ---------------------------------------------------- */

/* The VCEK/VLEK extensions (OID 1.3.6.1.4.1.3704.1.*). */
typedef struct sp_snp_vek_info {
	int struct_version;
	char product[64];
	sp_snp_tcb spl;    /* bl/tee/snp/ucode/fmc SPLs */
	bool has_fmc;
	uint8_t hwid[SP_SNP_CHIP_ID_LEN];
	size_t hwid_len;   /* 0 when absent (VLEK), 64, or 8 on Turin */
	char csp_id[128];  /* VLEK only, else "" */
	bool is_vlek;
} sp_snp_vek_info;

/* Parses a DER certificate's SEV extensions. Fails on a certificate that
 * OpenSSL cannot parse or whose extensions are malformed. */
SP_PUBLIC int sp_snp_vek_info_parse(sp_snp_vek_info *out, const uint8_t *der,
				    size_t len, sp_err **err);
/* The CPU generation a product name ("Milan-B0", "Genoa", "Sim-Milan")
 * stands for. */
SP_PUBLIC int sp_snp_product_cpu(const char *product);

/* GUIDs of the extended report's certificate table. */
enum sp_snp_cert_kind {
	SP_SNP_CERT_OTHER = 0,
	SP_SNP_CERT_VCEK,
	SP_SNP_CERT_VLEK,
	SP_SNP_CERT_ASK,
	SP_SNP_CERT_ARK,
};
typedef struct sp_snp_cert_entry {
	int kind;
	uint8_t guid[16];
	const uint8_t *der; /* points into the table */
	size_t len;
} sp_snp_cert_entry;
/* Parses a GHCB certificate table; entries point into data. At most
 * `max` entries; the terminating all-zero entry is required. */
SP_PUBLIC int sp_snp_cert_table_parse(sp_snp_cert_entry *entries, size_t max,
				      size_t *count, const uint8_t *data,
				      size_t len, sp_err **err);
/* Builds a table from (kind, DER) pairs. */
SP_PUBLIC uint8_t *sp_snp_cert_table_build(const int *kinds,
					   const uint8_t *const *ders,
					   const size_t *lens, size_t n,
					   size_t *out_len);

/* AMD's KDS: URLs and a local cache. */
SP_PUBLIC char *sp_snp_kds_vcek_url(const char *product,
				    const uint8_t chip_id[SP_SNP_CHIP_ID_LEN],
				    const sp_snp_tcb *tcb, int cpu);
SP_PUBLIC char *sp_snp_kds_chain_url(const char *product, bool vlek);
/* The cache file for url under dir. */
SP_PUBLIC char *sp_snp_kds_cache_path(const char *dir, const char *url);
/* From the cache if present, else over HTTPS (then stored). */
SP_PUBLIC int sp_snp_kds_get(uint8_t **out, size_t *len, const char *url,
			     const char *cache_dir, bool offline, sp_err **err);

/* Built-in AMD roots (PEM text of ARK, ASK and ASVK for a product). */
typedef struct sp_snp_builtin_root {
	const char *product; /* "Milan", "Genoa", "Turin" */
	const char *ark_pem;
	const char *ask_pem;
	const char *asvk_pem;
} sp_snp_builtin_root;
SP_PUBLIC const sp_snp_builtin_root *sp_snp_builtin_roots(size_t *count);

/* ---- Verification ---------------------------------------------------- */

/* A verifier holds trust anchors, certificates offered by the caller
 * and a cache of verified chains, so repeated verifications only check
 * the report's signature. Not thread-safe; use one per thread. */
typedef struct sp_snp_verifier sp_snp_verifier;

SP_PUBLIC sp_snp_verifier *sp_snp_verifier_new(void);
SP_PUBLIC void sp_snp_verifier_free(sp_snp_verifier *v);
/* Trusts a sim PSP's root (PEM or DER). Without it, sim reports fail. */
SP_PUBLIC int sp_snp_verifier_trust_sim_root(sp_snp_verifier *v,
					     const uint8_t *data, size_t len,
					     sp_err **err);
/* Adds certificates (PEM with one or more, or one DER): a VCEK/VLEK, or
 * intermediates/roots (roots must still equal a trusted one). */
SP_PUBLIC int sp_snp_verifier_add_certs(sp_snp_verifier *v,
					const uint8_t *data, size_t len,
					sp_err **err);
/* Adds the certificates of an extended report's certificate table. */
SP_PUBLIC int sp_snp_verifier_add_cert_table(sp_snp_verifier *v,
					     const uint8_t *data, size_t len,
					     sp_err **err);
/* Lets the verifier fetch a missing VCEK/chain from AMD's KDS, caching
 * under dir (NULL disables KDS; offline uses the cache only). */
SP_PUBLIC void sp_snp_verifier_set_kds(sp_snp_verifier *v, const char *dir,
				       bool offline);

/* What the appraisal requires. Start from sp_snp_appraisal_init: the
 * defaults refuse debug, sim reports, and any VMPL other than 0..3. */
typedef struct sp_snp_appraisal {
	int version; /* 1 */
	time_t at;   /* verification time; 0 = now */
	bool allow_debug;
	bool allow_sim;
	bool check_min_tcb;
	sp_snp_tcb min_tcb;
	const uint8_t (*measurements)[SP_SNP_MEASUREMENT_LEN];
	size_t n_measurements; /* 0 = any measurement */
	bool check_host_data;
	uint8_t host_data[SP_SNP_HOST_DATA_LEN];
	bool check_report_data;
	uint8_t report_data[SP_TEE_REPORT_DATA_LEN];
	int vmpl; /* -1 = any */
	uint32_t min_guest_svn;
} sp_snp_appraisal;
SP_PUBLIC void sp_snp_appraisal_init(sp_snp_appraisal *a);

/* Verifies a report: chain to a trusted root, VEK extensions, report
 * signature, reported_tcb against the VEK's SPLs, chip_id against hwID,
 * then the appraisal. On success *claims (optional) gets the report as
 * JSON plus "verified" facts; on failure the error says which check failed
 * (SP_ERR_SIGNATURE, SP_ERR_CERTIFICATE, SP_ERR_APPRAISAL, SP_ERR_PARSE). */
SP_PUBLIC int sp_snp_verify(sp_snp_verifier *v, const uint8_t *report,
			    size_t len, const sp_snp_appraisal *a,
			    json_t **claims, sp_err **err);

/* ---- Launch digest ---------------------------------------------------- */

enum sp_snp_vmm { SP_SNP_VMM_QEMU = 0, SP_SNP_VMM_EC2 = 1, SP_SNP_VMM_GCE = 2 };

typedef struct sp_snp_measure_opts {
	int version;          /* 1 */
	const char *ovmf;     /* firmware file (required) */
	unsigned vcpus;       /* >= 1 */
	const char *vcpu_type;/* QEMU CPU model, e.g. "EPYC-v4"; or NULL */
	uint32_t vcpu_sig;    /* used when vcpu_type is NULL (0 = none) */
	int vmm;              /* sp_snp_vmm */
	const char *kernel, *initrd, *append; /* optional */
	uint64_t guest_features; /* sev_features of each VMSA (CLI: 0x1) */
	/* Sealpod's sim direct boot: when the firmware has no
	 * SNP_KERNEL_HASHES section but a kernel is given, measure the hashes
	 * table as a NORMAL page at SP_SNP_SIM_HASHES_GPA after the metadata
	 * sections (docs/attestation.md). Off = refuse, as upstream does. */
	bool sim_direct_boot;
} sp_snp_measure_opts;
#define SP_SNP_SIM_HASHES_GPA 0x810000u
#define SP_SNP_SIM_HASHES_OFFSET 0xc00u

SP_PUBLIC void sp_snp_measure_opts_init(sp_snp_measure_opts *o);
SP_PUBLIC int sp_snp_measure(uint8_t out[SP_SNP_MEASUREMENT_LEN],
			     const sp_snp_measure_opts *o, sp_err **err);
/* Same over firmware bytes already in memory. */
SP_PUBLIC int sp_snp_measure_buf(uint8_t out[SP_SNP_MEASUREMENT_LEN],
				 const uint8_t *ovmf, size_t ovmf_len,
				 const sp_snp_measure_opts *o, sp_err **err);
/* The CPUID signature of a QEMU CPU model name; 0 if unknown. */
SP_PUBLIC uint32_t sp_snp_vcpu_sig(const char *vcpu_type);
SP_PUBLIC int sp_snp_vmm_parse(const char *name);

/* ---- Sim PSP ----------------------------------------------------------- */

/* Where the sim keeps its keys unless told otherwise ($SEALPOD_SIM_STATE
 * overrides). The root a verifier trusts with --allow-sim is
 * <state>/ark.pem. */
#define SP_SIMPSP_DEFAULT_STATE "/var/lib/sealpod/sim-psp"
#define SP_SIMPSP_DEFAULT_OVMF "/usr/share/ovmf/OVMF.fd"
#define SP_SIMPSP_DEFAULT_VCPU "EPYC-v4"
SP_PUBLIC const char *sp_simpsp_default_state(void);

/* Wire protocol (docs/attestation.md): every frame is
 *   "SPSP" u16 version(1) u16 type u32 id u32 body_len, body
 * Request type 1 body: report_data[64] u32 vmpl.
 * Response type 0x81 body: u32 status u32 report_len report
 *   u32 certs_len certs (a GHCB certificate table). */
#define SP_SIMPSP_MAGIC "SPSP"
#define SP_SIMPSP_HDR_LEN 16
#define SP_SIMPSP_MAX_BODY (64u * 1024)
#define SP_SIMPSP_REQ_REPORT 1
#define SP_SIMPSP_RESP_REPORT 0x81
enum sp_simpsp_status {
	SP_SIMPSP_OK = 0,
	SP_SIMPSP_BAD_REQUEST = 1,
	SP_SIMPSP_BAD_VMPL = 2,
	SP_SIMPSP_INTERNAL = 3,
};

typedef struct sp_simpsp_frame {
	uint16_t type;
	uint32_t id;
	const uint8_t *body;
	uint32_t body_len;
} sp_simpsp_frame;
/* Parses a frame header (SP_SIMPSP_HDR_LEN bytes) and checks limits. */
SP_PUBLIC int sp_simpsp_parse_header(sp_simpsp_frame *out, const uint8_t *hdr,
				     size_t len, sp_err **err);
SP_PUBLIC uint8_t *sp_simpsp_encode_request(uint32_t id,
					    const uint8_t rd[SP_TEE_REPORT_DATA_LEN],
					    uint32_t vmpl, size_t *out_len);
/* Parses a response body. report and certs point into body. */
SP_PUBLIC int sp_simpsp_parse_response(const uint8_t *body, size_t len,
				       uint32_t *status, const uint8_t **report,
				       size_t *report_len, const uint8_t **certs,
				       size_t *certs_len, sp_err **err);

typedef struct sp_simpsp sp_simpsp;
typedef struct sp_simpsp_config {
	int version;           /* 1 */
	const char *state_dir; /* NULL: sp_simpsp_default_state() */
	/* MEASUREMENT: computed from launch (what the VMM really launched)
	 * when launch is non-NULL, else taken from measurement. A launch
	 * without firmware (TCG direct kernel boot) is measured with
	 * SP_SIMPSP_DEFAULT_OVMF and sim_direct_boot; a NULL vcpu_type with
	 * no vcpu_sig means SP_SIMPSP_DEFAULT_VCPU. */
	const sp_snp_measure_opts *launch;
	uint8_t measurement[SP_SNP_MEASUREMENT_LEN];
	uint8_t host_data[SP_SNP_HOST_DATA_LEN];
	uint64_t policy; /* 0: SMT allowed, debug off (0x30000) */
	uint32_t guest_svn;
} sp_simpsp_config;
SP_PUBLIC void sp_simpsp_config_init(sp_simpsp_config *c);

/* Loads (or generates once, on first use) the sim's ARK/ASK/VCEK. */
SP_PUBLIC int sp_simpsp_new(sp_simpsp **out, const sp_simpsp_config *c,
			    sp_err **err);
SP_PUBLIC void sp_simpsp_free(sp_simpsp *p);
/* The PEM path of the sim's root certificate. */
SP_PUBLIC const char *sp_simpsp_root_path(const sp_simpsp *p);
SP_PUBLIC const uint8_t *sp_simpsp_measurement(const sp_simpsp *p);
/* Makes a signed report directly (no transport). certs: a GHCB table
 * with VCEK, ASK and ARK. */
SP_PUBLIC int sp_simpsp_make_report(sp_simpsp *p,
				    const uint8_t rd[SP_TEE_REPORT_DATA_LEN],
				    uint32_t vmpl, uint8_t **report,
				    size_t *report_len, uint8_t **certs,
				    size_t *certs_len, sp_err **err);
/* Answers one request frame with one response frame (never fails: bad
 * requests get an error status). */
SP_PUBLIC uint8_t *sp_simpsp_handle(sp_simpsp *p, const uint8_t *frame,
				    size_t len, size_t *out_len);
/* Serves requests on a connected stream until EOF or a framing error. */
SP_PUBLIC int sp_simpsp_serve_fd(sp_simpsp *p, int fd, sp_err **err);
/* Serves "unix:PATH" (listens; one connection at a time) or
 * "connect:PATH" (connects, e.g. to QEMU's chardev server; reconnects)
 * until stop_fd becomes readable (-1: forever). */
SP_PUBLIC int sp_simpsp_serve(sp_simpsp *p, const char *spec, int stop_fd,
			      sp_err **err);

/* The same on a thread, as the VM launcher runs one per UVM. */
typedef struct sp_simpsp_thread sp_simpsp_thread;
SP_PUBLIC int sp_simpsp_start(sp_simpsp_thread **out, sp_simpsp *p,
			      const char *spec, sp_err **err);
/* Stops and joins the thread; the sim PSP stays the caller's. */
SP_PUBLIC void sp_simpsp_stop(sp_simpsp_thread *t);

#endif
