/* SPDX-License-Identifier: Apache-2.0 */
/* Agent requests against a fixed policy: the input is a length-prefixed
 * request name then the protobuf bytes, exactly what the agent decodes.
 * The policy marks env T sealed (r/t/k): sealed values are parsed there. */
#include <string.h>

#include "agent.pb-c.h"
#include "sealpod/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_json[] =
	"{\"containers\":[{\"args\":[\"sh\"],\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"]},"
	"\"cwd\":\"/\",\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"S\",\"pattern\":\".*\",\"from\":\"secret\"},"
	"{\"name\":\"T\",\"pattern\":\".*\",\"from\":\"secret\",\"optional\":true,\"sealed\":[\"r/t/k\"]}],"
	"\"exec\":[[\"true\"]],\"image\":\"x@sha256:0000000000000000000000000000000000000000000000000000000000000000\","
	"\"logs\":true,\"mounts\":[{\"destination\":\"/d\",\"kind\":\"emptyDir\",\"volume\":\"d\"}],"
	"\"name\":\"c\",\"namespaces\":{\"mount\":\"new\",\"network\":\"pod\",\"pid\":\"new\"},"
	"\"user\":{\"gid\":0,\"uid\":0}}],\"kbs\":{\"url\":\"http://10.0.2.2:8080\"},\"requests\":{\"copy_file\":[\"/run/sealpod/sandbox/configmap/x\"]},\"version\":1}";

static const char *const names[] = {
	"CreateSandbox", "DestroySandbox", "CreateContainer", "StartContainer", "RemoveContainer",
	"ExecProcess", "SignalProcess", "WaitProcess", "ReadStdout", "ReadStderr", "WriteStdin",
	"CloseStdin", "TtyWinResize", "StatsContainer", "ListProcesses", "UpdateContainer",
	"GetOOMEvent", "GetGuestDetails", "SetPolicy", "CopyFile", "GetReport", "Check",
};


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sp_policy *p;
	if (!p) {
		json_t *doc = json_loads(policy_json, 0, NULL);
		if (!doc || sp_policy_load_json(&p, doc, NULL) != 0)
			abort();
		json_decref(doc);
	}
	sp_policy_state *st = sp_policy_state_new();
	/* Several requests per input so that state matters: [name][len16][bytes]... */
	size_t off = 0;
	while (off + 3 <= size) {
		const char *name = names[data[off] % SP_ARRAY_LEN(names)];
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		const ProtobufCMessageDescriptor *d = sp_policy_request_descriptor(name);
		ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data + off);
		off += len;
		if (!m)
			continue;
		sp_policy_decision dec;
		if (sp_policy_eval(p, st, name, m, &dec) != 0)
			abort();
		if (!dec.allow && (!dec.message || !dec.path))
			abort(); /* every denial explains itself */
		sp_policy_decision_clear(&dec);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	sp_policy_state_free(st);
	return 0;
}
