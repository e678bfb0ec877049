/* SPDX-License-Identifier: Apache-2.0 */
/* Reports from the guest's TEE, through the agent (GetReport). */
#include <string.h>

#include "agent.pb-c.h"
#include "sandbox-internal.h"

#define REPORT_TIMEOUT (60ull * 1000000000ull)

int sp_sandbox_get_report(sp_sandbox *sb, const uint8_t *report_data,
			  size_t report_data_len, uint8_t **report, size_t *report_len,
			  uint8_t **certs, size_t *certs_len, char **tee, sp_err **err)
{
	if (report_data_len > 64)
		return sp_error(err, SP_ERR_INVALID,
				"report data is %zu bytes; at most 64 fit REPORT_DATA",
				report_data_len);
	if (!sb->agent)
		return sp_error(err, SP_ERR_STATE, "sandbox %s: the guest agent is not connected",
				sb->id);
	Sealpod__Agent__V1__GetReportRequest req = SEALPOD__AGENT__V1__GET_REPORT_REQUEST__INIT;
	req.report_data.data = (uint8_t *)report_data;
	req.report_data.len = report_data_len;
	size_t len = protobuf_c_message_get_packed_size(&req.base);
	_cleanup_free_ uint8_t *buf = sp_xmalloc(len ? len : 1);
	protobuf_c_message_pack(&req.base, buf);
	_cleanup_free_ uint8_t *out = NULL;
	size_t out_len = 0;
	if (sp_ttrpc_client_call(sb->agent, "sealpod.agent.v1.AgentService", "GetReport", buf,
				 len, NULL, 0, REPORT_TIMEOUT, &out, &out_len, NULL, err) < 0)
		return sp_error_wrap(err, "sandbox %s: agent", sb->id);
	Sealpod__Agent__V1__GetReportResponse *resp =
		sealpod__agent__v1__get_report_response__unpack(NULL, out_len, out);
	if (!resp)
		return sp_error(err, SP_ERR_PROTOCOL,
				"sandbox %s: agent GetReport: malformed response", sb->id);
	*report = sp_xmemdup(resp->report.data, resp->report.len);
	*report_len = resp->report.len;
	if (certs) {
		*certs = resp->certs.len ? sp_xmemdup(resp->certs.data, resp->certs.len) : NULL;
		*certs_len = resp->certs.len;
	}
	if (tee)
		*tee = sp_xstrdup(resp->tee ? resp->tee : "");
	sealpod__agent__v1__get_report_response__free_unpacked(resp, NULL);
	return 0;
}
