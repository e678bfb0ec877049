/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's request dispatcher under a hostile host: a sequence of
 * requests (method chosen by a byte, payload as given), in any order, with
 * any ids, against one agent. Input: repeated [method u8][len u16le][payload].
 * The stand-in TEE reports HOST_DATA = SHA-256 of the policy "{}", so an
 * input can get past SetPolicy. No container can start (no root
 * filesystem is configured), which keeps the target free of processes. */
#include <signal.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const methods[] = {
	"CreateSandbox", "DestroySandbox", "CreateContainer", "StartContainer",
	"RemoveContainer", "ExecProcess", "SignalProcess", "WaitProcess",
	"ReadStdout", "ReadStderr", "WriteStdin", "CloseStdin", "TtyWinResize",
	"StatsContainer", "ListProcesses", "UpdateContainer", "GetOOMEvent",
	"GetGuestDetails", "SetPolicy", "CopyFile", "GetReport", "Check",
	"NoSuchMethod",
};

static int fake_report(void *ctx, const uint8_t rd[64], uint8_t **report,
		       size_t *report_len, uint8_t **certs, size_t *certs_len,
		       sp_err **err)
{
	uint8_t *r = sp_xzalloc(SP_SNP_REPORT_LEN);
	memcpy(r + 0x50, rd, 64);
	sp_sha256(r + 0xC0, "{}", 2);
	*report = r;
	*report_len = SP_SNP_REPORT_LEN;
	*certs = NULL;
	*certs_len = 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *dir;
	if (!dir) {
		signal(SIGPIPE, SIG_IGN);
		if (sp_mkdtemp(&dir, "sp-fuzz-agent", NULL) < 0)
			abort();
	}
	sp_agent_tee tee = {"sim", fake_report, NULL};
	sp_agent_opts o = {.version = 1, .native = true, .state_dir = dir, .tee = &tee};
	sp_agent *a = NULL;
	if (sp_agent_new(&a, &o, NULL) < 0)
		abort();
	size_t off = 0;
	while (off + 3 <= size) {
		uint8_t m = data[off];
		size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
		off += 3;
		if (len > size - off)
			len = size - off;
		const char *name = methods[m % SP_ARRAY_LEN(methods)];
		const char *svc = strcmp(name, "Check") ? SP_AGENT_SERVICE
							: SP_AGENT_HEALTH_SERVICE;
		uint8_t *out = NULL;
		size_t out_len = 0;
		char *msg = NULL;
		/* Blocking calls give up almost at once. */
		int rc = sp_agent_dispatch(a, svc, name, data + off, len,
					   sp_now_ns() + 1000000, &out, &out_len, &msg);
		if (rc == SP_RPC_OK && msg)
			abort();
		if (rc != SP_RPC_OK && (!msg || out))
			abort();
		free(out);
		free(msg);
		off += len;
	}
	sp_agent_free(a);
	sp_rm_rf(dir, NULL);
	sp_mkdir_p(dir, 0700, NULL);
	return 0;
}
