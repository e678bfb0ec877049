/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod agent call: one agent API request from JSON, for tests and for
 * debugging `sealpod run`. The request JSON is mapped to the message by
 * the policy module (the same mapping `sealpod policy eval` uses); the
 * response is printed as JSON. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "sealpod/agent.h"
#include "sealpod/json.h"
#include "sealpod/policy.h"
#include "sealpod/ttrpc.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpod agent call --address ADDR [--timeout SECONDS] METHOD [JSON]\n"
		"  ADDR: unix:PATH, serial:PATH or vsock:CID:PORT\n"
		"  METHOD: an AgentService method (CreateContainer) or Health/Check\n"
		"  JSON: the request, fields as in proto/agent.proto; oci_spec,\n"
		"        process and resources may be JSON objects; bytes are base64.\n"
		"Prints the response as JSON; on an error status prints\n"
		"`CODE: message` on stderr and exits 1.\n");
}

static int agent_call(int argc, char **argv)
{
	const char *address = NULL;
	double timeout = 30;
	static const struct option opts[] = {
		{"address", required_argument, NULL, 'a'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+a:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': address = optarg; break;
		case 't': timeout = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!address || optind >= argc || argc - optind > 2 || timeout < 0) {
		usage(stderr);
		return 2;
	}
	const char *mname = argv[optind];
	const char *json = optind + 1 < argc ? argv[optind + 1] : "{}";
	const char *service, *method, *rtype;
	if (!sp_agent_method_info(mname, &service, &method, &rtype, NULL, NULL)) {
		fprintf(stderr, "sealpod agent call: unknown method `%s`\n", mname);
		return 2;
	}
	_cleanup_err_ sp_err *err = NULL;
	_cleanup_json_ json_t *req = NULL;
	if (sp_json_parse(&req, json, strlen(json), "request JSON", &err) < 0) {
		fprintf(stderr, "sealpod agent call: %s\n", sp_err_msg(err));
		return 2;
	}
	/* The policy mapping wants the request message's name; ReadStdout
	 * and ReadStderr share one message and are told apart by method. */
	json_t *doc = json_pack("{s:s, s:O}", "kind",
				!strcmp(method, "ReadStdout") || !strcmp(method, "ReadStderr")
					? method : rtype,
				"request", req);
	const char *kind;
	ProtobufCMessage *msg = NULL;
	int rc = sp_policy_request_from_json(doc, &kind, &msg, &err);
	json_decref(doc);
	if (rc < 0 || !msg) {
		fprintf(stderr, "sealpod agent call: %s\n",
			rc < 0 ? sp_err_msg(err) : "no message for this method");
		protobuf_c_message_free_unpacked(msg, NULL);
		return 2;
	}
	size_t n = protobuf_c_message_get_packed_size(msg);
	_cleanup_free_ uint8_t *payload = sp_xmalloc(n + 1);
	protobuf_c_message_pack(msg, payload);
	protobuf_c_message_free_unpacked(msg, NULL);

	uint64_t tns = (uint64_t)(timeout * 1e9);
	sp_ttrpc_client *cl = NULL;
	if (sp_ttrpc_client_connect(&cl, address, 10ull * 1000000000u, &err) < 0) {
		fprintf(stderr, "sealpod agent call: %s\n", sp_err_msg(err));
		return 1;
	}
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	int code = 0;
	rc = sp_ttrpc_client_call(cl, service, method, payload, n, NULL, 0, tns,
				  &resp, &resp_len, &code, &err);
	sp_ttrpc_client_free(cl);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", sp_rpc_code_name(code), sp_err_msg(err));
		return 1;
	}
	_cleanup_free_ char *out = NULL;
	rc = sp_agent_response_to_json(&out, mname, resp, resp_len, &err);
	free(resp);
	if (rc < 0) {
		fprintf(stderr, "sealpod agent call: %s\n", sp_err_msg(err));
		return 1;
	}
	printf("%s\n", out);
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "call"))
		return agent_call(argc - 1, argv + 1);
	usage(argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		      ? stdout : stderr);
	return 2;
}
