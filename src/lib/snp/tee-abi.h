/* SPDX-License-Identifier: Apache-2.0 */
/* The /dev/sev-guest ioctl ABI (include/uapi/linux/sev-guest.h), mirrored
 * here so the guest agent builds against any kernel headers; every offset
 * is asserted, and, where the system has the kernel's header, checked
 * against it too. */
#ifndef SP_SNP_TEE_ABI_H
#define SP_SNP_TEE_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <linux/ioctl.h>

struct tee_snp_report_req {
	uint8_t user_data[64];
	uint32_t vmpl;
	uint8_t rsvd[28];
};

struct tee_snp_report_resp {
	uint8_t data[4000]; /* MSG_REPORT_RSP: status, size, report @0x20 */
};

struct tee_snp_ext_report_req {
	struct tee_snp_report_req data;
	uint64_t certs_address;
	uint32_t certs_len;
};

struct tee_snp_guest_request_ioctl {
	uint8_t msg_version;
	uint64_t req_data;
	uint64_t resp_data;
	union {
		uint64_t exitinfo2;
		struct {
			uint32_t fw_error;
			uint32_t vmm_error;
		};
	};
};

#define TEE_SNP_GET_REPORT _IOWR('S', 0x0, struct tee_snp_guest_request_ioctl)
#define TEE_SNP_GET_DERIVED_KEY                                                \
	_IOWR('S', 0x1, struct tee_snp_guest_request_ioctl)
#define TEE_SNP_GET_EXT_REPORT                                                 \
	_IOWR('S', 0x2, struct tee_snp_guest_request_ioctl)
#define TEE_SNP_VMM_ERR_INVALID_LEN 1

_Static_assert(offsetof(struct tee_snp_report_req, vmpl) == 64, "vmpl");
_Static_assert(sizeof(struct tee_snp_report_req) == 96, "report_req");
_Static_assert(sizeof(struct tee_snp_report_resp) == 4000, "report_resp");
_Static_assert(offsetof(struct tee_snp_ext_report_req, certs_address) == 96,
	       "certs_address");
_Static_assert(offsetof(struct tee_snp_ext_report_req, certs_len) == 104,
	       "certs_len");
_Static_assert(sizeof(struct tee_snp_ext_report_req) == 112, "ext_req");
_Static_assert(offsetof(struct tee_snp_guest_request_ioctl, req_data) == 8,
	       "req_data");
_Static_assert(offsetof(struct tee_snp_guest_request_ioctl, resp_data) == 16,
	       "resp_data");
_Static_assert(offsetof(struct tee_snp_guest_request_ioctl, exitinfo2) == 24,
	       "exitinfo2");
_Static_assert(offsetof(struct tee_snp_guest_request_ioctl, fw_error) == 24,
	       "fw_error");
_Static_assert(offsetof(struct tee_snp_guest_request_ioctl, vmm_error) == 28,
	       "vmm_error");
_Static_assert(sizeof(struct tee_snp_guest_request_ioctl) == 32, "ioctl");

#if __has_include(<linux/sev-guest.h>)
#include <linux/sev-guest.h>
_Static_assert(TEE_SNP_GET_REPORT == SNP_GET_REPORT, "SNP_GET_REPORT");
_Static_assert(TEE_SNP_GET_EXT_REPORT == SNP_GET_EXT_REPORT,
	       "SNP_GET_EXT_REPORT");
_Static_assert(sizeof(struct snp_report_req) ==
		       sizeof(struct tee_snp_report_req), "kernel report_req");
_Static_assert(sizeof(struct snp_ext_report_req) ==
		       sizeof(struct tee_snp_ext_report_req), "kernel ext_req");
_Static_assert(sizeof(struct snp_guest_request_ioctl) ==
		       sizeof(struct tee_snp_guest_request_ioctl),
	       "kernel ioctl");
_Static_assert(offsetof(struct snp_ext_report_req, certs_len) ==
		       offsetof(struct tee_snp_ext_report_req, certs_len),
	       "kernel certs_len");
#endif

#endif
