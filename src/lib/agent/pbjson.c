/* SPDX-License-Identifier: Apache-2.0 */
/* Responses as JSON for `sealpod agent call`, by walking protobuf-c's
 * descriptors (no per-message code). Requests go the other way through
 * the policy module's JSON mapping, so that there is one of each. */
#include <string.h>

#include "agent_internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"

static json_t *msg_to_json(const ProtobufCMessage *m);

static json_t *scalar(const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_STRING: {
		const char *s = *(char *const *)p;
		return json_string(s ? s : "");
	}
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;
		char *s = sp_base64_encode(b->data, b->len, SP_B64_STD);
		json_t *j = json_string(s);
		free(s);
		return j;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p
			? msg_to_json(*(ProtobufCMessage *const *)p)
			: json_null();
	}
	return json_null();
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static json_t *msg_to_json(const ProtobufCMessage *m)
{
	json_t *o = json_object();
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
			const char *arr = *(char *const *)base;
			json_t *a = json_array();
			for (size_t k = 0; k < n; k++)
				json_array_append_new(a, scalar(f, arr + k * elem_size(f)));
			json_object_set_new(o, f->name, a);
		} else {
			json_object_set_new(o, f->name, scalar(f, base));
		}
	}
	return o;
}

int sp_agent_response_to_json(char **out, const char *method,
			      const uint8_t *payload, size_t len, sp_err **err)
{
	const void *rd = NULL;
	if (!sp_agent_method_info(method, NULL, NULL, NULL, NULL, &rd))
		return sp_error(err, SP_ERR_NOT_FOUND,
				"unknown agent method `%s`", method);
	ProtobufCMessage *m = protobuf_c_message_unpack(rd, NULL, len,
							payload ? payload : (const uint8_t *)"");
	if (!m)
		return sp_error(err, SP_ERR_PARSE,
				"the response to %s is not a valid %s message",
				method, ((const ProtobufCMessageDescriptor *)rd)->short_name);
	json_t *j = msg_to_json(m);
	protobuf_c_message_free_unpacked(m, NULL);
	*out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!*out)
		sp_oom();
	return 0;
}
