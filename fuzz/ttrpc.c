/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC decoding of hostile bytes: the input is read as a stream of frames
 * (as the server reads a connection), and as one Request and one Response
 * body. A decoded Request must survive re-encoding unchanged. */
#include <string.h>

#include "sealpod/ttrpc.h"
#include "ttrpc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const sp_ttrpc_request *r)
{
	size_t n;
	uint8_t *b = sp_ttrpc_request_encode(&n, r->service, r->method, r->payload,
					     r->payload_len, r->metadata,
					     r->n_metadata, r->timeout_nano);
	sp_ttrpc_request *again = NULL;
	int code;
	sp_err *err = NULL;
	if (sp_ttrpc_request_decode(&again, b, n, &code, &err) != 0 ||
	    strcmp(again->service, r->service) || strcmp(again->method, r->method) ||
	    again->payload_len != r->payload_len ||
	    (r->payload_len && memcmp(again->payload, r->payload, r->payload_len)) ||
	    again->timeout_nano != r->timeout_nano ||
	    again->n_metadata != r->n_metadata)
		abort();
	for (size_t i = 0; i < r->n_metadata; i++)
		if (strcmp(again->metadata[i].key, r->metadata[i].key) ||
		    strcmp(again->metadata[i].value, r->metadata[i].value))
			abort();
	sp_ttrpc_request_free(again);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_ttrpc_decode_stream(data, size);

	sp_ttrpc_request *r = NULL;
	int code;
	sp_err *err = NULL;
	if (sp_ttrpc_request_decode(&r, data, size, &code, &err) == 0) {
		if (code != SP_RPC_OK)
			abort();
		roundtrip(r);
		sp_ttrpc_request_free(r);
	} else {
		if (code == SP_RPC_OK || !err)
			abort();
		sp_err_free(err);
		err = NULL;
	}

	sp_ttrpc_response resp;
	if (sp_ttrpc_response_decode(&resp, data, size, &err) == 0)
		sp_ttrpc_response_clear(&resp);
	else
		sp_err_free(err);
	return 0;
}
