/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC framing and envelopes. Every byte here may come from a hostile
 * peer: lengths are bounded before anything is allocated, and the
 * protobuf is walked once by hand (counting fields) before protobuf-c
 * unpacks it, so that a 4 MiB message of tiny fields cannot turn into
 * millions of allocations. */
#include <string.h>

#include "sealpod/bytes.h"
#include "ttrpc.pb-c.h"
#include "ttrpc/wire.h"

/* Fields (at any depth) one envelope may hold: the metadata allowance
 * (3 per entry: the entry and its key and value) plus room for the fixed
 * fields and a few unknown ones from newer peers. */
#define MAX_FIELDS (3u * SP_TTRPC_MAX_METADATA + 64u)

void sp_ttrpc_header_decode(sp_ttrpc_header *out, const uint8_t *buf)
{
	out->length = sp_be32(buf);
	out->stream_id = sp_be32(buf + 4);
	out->type = buf[8];
	out->flags = buf[9];
}

void sp_ttrpc_header_encode(uint8_t *buf, const sp_ttrpc_header *h)
{
	sp_put_be32(buf, h->length);
	sp_put_be32(buf + 4, h->stream_id);
	buf[8] = h->type;
	buf[9] = h->flags;
}

uint8_t *sp_ttrpc_frame_build(size_t *out_len, uint32_t stream_id,
			      uint8_t type, const uint8_t *body, size_t body_len)
{
	size_t total;
	if (!sp_add_size(&total, body_len, SP_TTRPC_HEADER_LEN) ||
	    body_len > UINT32_MAX)
		sp_oom();
	uint8_t *f = sp_xmalloc(total);
	sp_ttrpc_header h = {(uint32_t)body_len, stream_id, type, 0};
	sp_ttrpc_header_encode(f, &h);
	if (body_len)
		memcpy(f + SP_TTRPC_HEADER_LEN, body, body_len);
	*out_len = total;
	return f;
}

static bool read_varint(sp_reader *r, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b;
		if (!sp_reader_u8(r, &b))
			return false;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return true;
		}
	}
	r->failed = true;
	return false;
}

/* Walks a protobuf message, counting its fields and those of the nested
 * messages named by nested[depth] (a bit per field number < 32). Returns
 * false on malformed wire data (including groups, which proto3 lacks). */
static bool count_fields(const uint8_t *data, size_t len, const uint32_t *nested,
			 size_t depth, size_t max_depth, size_t *count)
{
	sp_reader r;
	sp_reader_init(&r, data, len);
	while (sp_reader_left(&r) > 0) {
		uint64_t tag, v;
		if (!read_varint(&r, &tag))
			return false;
		uint64_t field = tag >> 3;
		if (field == 0 || field > 0x1fffffff)
			return false;
		if (++*count > MAX_FIELDS)
			return true; /* the caller checks the count */
		switch (tag & 7) {
		case 0:
			if (!read_varint(&r, &v))
				return false;
			break;
		case 1:
			if (!sp_reader_skip(&r, 8))
				return false;
			break;
		case 5:
			if (!sp_reader_skip(&r, 4))
				return false;
			break;
		case 2: {
			const uint8_t *p;
			if (!read_varint(&r, &v) || v > sp_reader_left(&r) ||
			    !sp_reader_ptr(&r, &p, (size_t)v))
				return false;
			if (depth < max_depth && field < 32 &&
			    (nested[depth] & (1u << field)) &&
			    !count_fields(p, (size_t)v, nested, depth + 1,
					  max_depth, count))
				return false;
			break;
		}
		default:
			return false;
		}
	}
	return true;
}

/* A NUL-terminated copy of a protobuf `bytes` string; false if it holds a
 * NUL (a C caller would see a different, shorter string). */
static bool dup_string(char **out, const ProtobufCBinaryData *b)
{
	if (b->len && memchr(b->data, 0, b->len))
		return false;
	*out = sp_xstrndup(b->len ? (const char *)b->data : "", b->len);
	return true;
}

void sp_ttrpc_request_free(sp_ttrpc_request *r)
{
	if (!r)
		return;
	free(r->service);
	free(r->method);
	free(r->payload);
	for (size_t i = 0; i < r->n_metadata; i++) {
		free((char *)r->metadata[i].key);
		free((char *)r->metadata[i].value);
	}
	free(r->metadata);
	free(r);
}

int sp_ttrpc_request_decode(sp_ttrpc_request **out, const uint8_t *data,
			    size_t len, int *rpc_code, sp_err **err)
{
	*rpc_code = SP_RPC_INVALID_ARGUMENT;
	if (len > SP_TTRPC_MAX_MESSAGE) {
		*rpc_code = SP_RPC_RESOURCE_EXHAUSTED;
		return sp_error(err, SP_ERR_LIMIT,
				"request of %zu bytes exceeds the %u-byte limit",
				len, SP_TTRPC_MAX_MESSAGE);
	}
	static const uint32_t nested[] = {1u << 5};
	size_t count = 0;
	if (!count_fields(data, len, nested, 0, 1, &count))
		return sp_error(err, SP_ERR_PARSE,
				"unmarshal request error: malformed protobuf");
	if (count > MAX_FIELDS) {
		*rpc_code = SP_RPC_RESOURCE_EXHAUSTED;
		return sp_error(err, SP_ERR_LIMIT,
				"request has more than %u fields (at most %u metadata entries are accepted)",
				MAX_FIELDS, SP_TTRPC_MAX_METADATA);
	}
	Ttrpc__Request *pb = ttrpc__request__unpack(NULL, len, data);
	if (!pb)
		return sp_error(err, SP_ERR_PARSE,
				"unmarshal request error: not a ttrpc.Request");
	if (pb->n_metadata > SP_TTRPC_MAX_METADATA) {
		size_t n_md = pb->n_metadata;
		ttrpc__request__free_unpacked(pb, NULL);
		*rpc_code = SP_RPC_RESOURCE_EXHAUSTED;
		return sp_error(err, SP_ERR_LIMIT,
				"request carries %zu metadata entries, more than the %u accepted",
				n_md, SP_TTRPC_MAX_METADATA);
	}
	sp_ttrpc_request *r = sp_xzalloc(sizeof(*r));
	bool ok = dup_string(&r->service, &pb->service) &&
		  dup_string(&r->method, &pb->method);
	if (ok && pb->n_metadata) {
		r->metadata = sp_xcalloc(pb->n_metadata, sizeof(*r->metadata));
		for (size_t i = 0; ok && i < pb->n_metadata; i++) {
			char *k = NULL, *v = NULL;
			ok = dup_string(&k, &pb->metadata[i]->key) &&
			     dup_string(&v, &pb->metadata[i]->value);
			r->metadata[i].key = k;
			r->metadata[i].value = v;
			r->n_metadata = i + 1;
		}
	}
	if (!ok) {
		ttrpc__request__free_unpacked(pb, NULL);
		sp_ttrpc_request_free(r);
		return sp_error(err, SP_ERR_PARSE,
				"unmarshal request error: service, method or metadata holds a NUL byte");
	}
	if (pb->payload.len) {
		r->payload = pb->payload.data; /* take it over */
		r->payload_len = pb->payload.len;
		pb->payload.data = NULL;
		pb->payload.len = 0;
	}
	r->timeout_nano = pb->timeout_nano;
	ttrpc__request__free_unpacked(pb, NULL);
	*rpc_code = SP_RPC_OK;
	*out = r;
	return 0;
}

static ProtobufCBinaryData bin(const void *p, size_t n)
{
	return (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)p};
}

uint8_t *sp_ttrpc_request_encode(size_t *out_len, const char *service,
				 const char *method, const uint8_t *payload,
				 size_t payload_len, const sp_ttrpc_kv *md,
				 size_t n_md, int64_t timeout_nano)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	req.service = bin(service, strlen(service));
	req.method = bin(method, strlen(method));
	req.payload = bin(payload, payload ? payload_len : 0);
	req.timeout_nano = timeout_nano;
	Ttrpc__KeyValue *kvs = NULL, **ptrs = NULL;
	if (n_md) {
		kvs = sp_xcalloc(n_md, sizeof(*kvs));
		ptrs = sp_xcalloc(n_md, sizeof(*ptrs));
		for (size_t i = 0; i < n_md; i++) {
			ttrpc__key_value__init(&kvs[i]);
			kvs[i].key = bin(md[i].key, strlen(md[i].key));
			kvs[i].value = bin(md[i].value, strlen(md[i].value));
			ptrs[i] = &kvs[i];
		}
	}
	req.n_metadata = n_md;
	req.metadata = ptrs;
	size_t n = ttrpc__request__get_packed_size(&req);
	uint8_t *buf = sp_xmalloc(n ? n : 1);
	ttrpc__request__pack(&req, buf);
	free(kvs);
	free(ptrs);
	*out_len = n;
	return buf;
}

void sp_ttrpc_response_clear(sp_ttrpc_response *r)
{
	free(r->message);
	free(r->payload);
	memset(r, 0, sizeof(*r));
}

int sp_ttrpc_response_decode(sp_ttrpc_response *out, const uint8_t *data,
			     size_t len, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	if (len > SP_TTRPC_MAX_MESSAGE)
		return sp_error(err, SP_ERR_LIMIT,
				"response of %zu bytes exceeds the %u-byte limit",
				len, SP_TTRPC_MAX_MESSAGE);
	static const uint32_t nested[] = {1u << 1, 1u << 3};
	size_t count = 0;
	if (!count_fields(data, len, nested, 0, 2, &count))
		return sp_error(err, SP_ERR_PARSE, "malformed ttrpc.Response");
	if (count > MAX_FIELDS)
		return sp_error(err, SP_ERR_LIMIT,
				"ttrpc.Response has more than %u fields", MAX_FIELDS);
	Ttrpc__Response *pb = ttrpc__response__unpack(NULL, len, data);
	if (!pb)
		return sp_error(err, SP_ERR_PARSE, "malformed ttrpc.Response");
	out->code = pb->status ? pb->status->code : SP_RPC_OK;
	out->message = sp_xstrdup(pb->status && pb->status->message ?
				  pb->status->message : "");
	if (pb->payload.len) {
		out->payload = pb->payload.data;
		out->payload_len = pb->payload.len;
		pb->payload.data = NULL;
		pb->payload.len = 0;
	}
	ttrpc__response__free_unpacked(pb, NULL);
	return 0;
}

uint8_t *sp_ttrpc_response_encode(size_t *out_len, int code, const char *msg,
				  const uint8_t *payload, size_t payload_len)
{
	Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
	st.code = code;
	st.message = (char *)(msg ? msg : "");
	Ttrpc__Response resp = TTRPC__RESPONSE__INIT;
	/* Go's server leaves the status out for OK; byte-identical replies
	 * make captures comparable. */
	resp.status = code == SP_RPC_OK && !(msg && *msg) ? NULL : &st;
	resp.payload = bin(payload, payload ? payload_len : 0);
	size_t n = ttrpc__response__get_packed_size(&resp);
	uint8_t *buf = sp_xmalloc(n ? n : 1);
	ttrpc__response__pack(&resp, buf);
	*out_len = n;
	return buf;
}

size_t sp_ttrpc_decode_stream(const uint8_t *data, size_t len)
{
	sp_reader r;
	sp_reader_init(&r, data, len);
	size_t good = 0;
	while (sp_reader_left(&r) >= SP_TTRPC_HEADER_LEN) {
		const uint8_t *hb, *body;
		sp_reader_ptr(&r, &hb, SP_TTRPC_HEADER_LEN);
		sp_ttrpc_header h;
		sp_ttrpc_header_decode(&h, hb);
		if (h.length > SP_TTRPC_MAX_MESSAGE ||
		    !sp_reader_ptr(&r, &body, h.length))
			break;
		sp_err *err = NULL;
		if (h.type == SP_TTRPC_TYPE_REQUEST) {
			sp_ttrpc_request *req = NULL;
			int code;
			if (sp_ttrpc_request_decode(&req, body, h.length, &code, &err) == 0) {
				good++;
				sp_ttrpc_request_free(req);
			}
		} else if (h.type == SP_TTRPC_TYPE_RESPONSE) {
			sp_ttrpc_response resp;
			if (sp_ttrpc_response_decode(&resp, body, h.length, &err) == 0) {
				good++;
				sp_ttrpc_response_clear(&resp);
			}
		}
		sp_err_free(err);
	}
	return good;
}
