/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC wire format: the 10-byte frame header and the Request/Response
 * envelopes. Pure functions over bytes (no I/O), shared by the server, the
 * client, the unit tests and the fuzz target. */
#ifndef SP_TTRPC_WIRE_H
#define SP_TTRPC_WIRE_H

#include "sealpod/ttrpc.h"

#define SP_TTRPC_HEADER_LEN 10u

enum {
	SP_TTRPC_TYPE_REQUEST = 1,
	SP_TTRPC_TYPE_RESPONSE = 2,
	SP_TTRPC_TYPE_DATA = 3, /* protocol 1.2 streams; ignored here */
};

/* Frame flags (protocol 1.2; v1.1 peers send 0). */
enum {
	SP_TTRPC_FLAG_REMOTE_CLOSED = 0x1,
	SP_TTRPC_FLAG_REMOTE_OPEN = 0x2,
	SP_TTRPC_FLAG_NO_DATA = 0x4,
};

/* An oversized frame up to this length is read and thrown away, then
 * answered RESOURCE_EXHAUSTED (as Go's ttrpc does); a longer one is not a
 * plausible message and closes the connection. */
#define SP_TTRPC_MAX_SKIP (64u << 20)

typedef struct sp_ttrpc_header {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
} sp_ttrpc_header;

void sp_ttrpc_header_decode(sp_ttrpc_header *out, const uint8_t *buf);
void sp_ttrpc_header_encode(uint8_t *buf, const sp_ttrpc_header *h);

/* A decoded and checked Request: strings are NUL-terminated copies and
 * contain no NUL of their own. */
typedef struct sp_ttrpc_request {
	char *service;
	char *method;
	uint8_t *payload;
	size_t payload_len;
	int64_t timeout_nano;
	sp_ttrpc_kv *metadata;
	size_t n_metadata;
} sp_ttrpc_request;

/* Decodes a Request body. On failure returns an sp_err code and sets
 * *rpc_code to the status a server answers with (INVALID_ARGUMENT, or
 * RESOURCE_EXHAUSTED for too much metadata). */
int sp_ttrpc_request_decode(sp_ttrpc_request **out, const uint8_t *data,
			    size_t len, int *rpc_code, sp_err **err);
void sp_ttrpc_request_free(sp_ttrpc_request *r);
/* Serializes a Request body; the caller checks the size against the limit. */
uint8_t *sp_ttrpc_request_encode(size_t *out_len, const char *service,
				 const char *method, const uint8_t *payload,
				 size_t payload_len, const sp_ttrpc_kv *md,
				 size_t n_md, int64_t timeout_nano);

typedef struct sp_ttrpc_response {
	int code;          /* google.rpc.Code; OK when status is absent */
	char *message;     /* status message, never NULL */
	uint8_t *payload;  /* NULL when empty */
	size_t payload_len;
} sp_ttrpc_response;

int sp_ttrpc_response_decode(sp_ttrpc_response *out, const uint8_t *data,
			     size_t len, sp_err **err);
void sp_ttrpc_response_clear(sp_ttrpc_response *r);
/* Serializes a Response body (no status for a plain OK, as Go does). */
uint8_t *sp_ttrpc_response_encode(size_t *out_len, int code, const char *msg,
				  const uint8_t *payload, size_t payload_len);

/* A whole frame (header + body) in one allocation, ready to write. */
uint8_t *sp_ttrpc_frame_build(size_t *out_len, uint32_t stream_id,
			      uint8_t type, const uint8_t *body,
			      size_t body_len);

/* Fuzzing entry: walks data as a stream of frames and decodes each body
 * by its type. Returns the number of frames decoded without error. */
size_t sp_ttrpc_decode_stream(const uint8_t *data, size_t len);

#endif
