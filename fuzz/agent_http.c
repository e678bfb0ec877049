/* SPDX-License-Identifier: Apache-2.0 */
/* The workload attestation endpoint's request handling: any bytes as an
 * HTTP request head must give one well-formed response. */
#include <string.h>

#include "agent/agent_internal.h"
#include "sealpod/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fake_report(void *ctx, const uint8_t rd[64], uint8_t **report,
		       size_t *report_len, uint8_t **certs, size_t *certs_len,
		       sp_err **err)
{
	*report = sp_xzalloc(SP_SNP_REPORT_LEN);
	memcpy(*report + 0x50, rd, 64);
	*report_len = SP_SNP_REPORT_LEN;
	*certs = NULL;
	*certs_len = 0;
	return 0;
}

static char *http_dir;

/* The state directory goes when the process ends: a replay leaves
 * nothing behind. */
static void remove_dir(void)
{
	if (http_dir)
		sp_rm_rf(http_dir, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sp_agent *a;
	if (!a) {
		sp_agent_tee tee = {"sim", fake_report, NULL};
		if (sp_mkdtemp(&http_dir, "sp-fuzz-http", NULL) < 0)
			abort();
		atexit(remove_dir);
		sp_agent_opts o = {.version = 1, .native = true, .state_dir = http_dir, .tee = &tee};
		if (sp_agent_new(&a, &o, NULL) < 0)
			abort();
	}
	if (size > 8192)
		size = 8192;
	sp_buf b = SP_BUF_INIT;
	attest_handle(a, data, size, &b);
	if (b.len < 12 || memcmp(b.data, "HTTP/1.1 ", 9) != 0)
		abort();
	sp_buf_free(&b);
	return 0;
}
