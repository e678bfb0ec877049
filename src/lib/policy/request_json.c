/* SPDX-License-Identifier: Apache-2.0 */
/* Agent requests written as JSON (test cases, `sealpod policy eval`) into
 * protobuf-c messages, driven by the generated descriptors so that every
 * message of agent.proto works without a hand-written mapping. */
#include <ctype.h>
#include <string.h>

#include "internal.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"


static char *snake(const char *k)
{
	size_t n = strlen(k);
	char *s = sp_xmalloc(2 * n + 1), *o = s;
	for (size_t i = 0; i < n; i++) {
		if (isupper((unsigned char)k[i])) {
			*o++ = '_';
			*o++ = (char)tolower((unsigned char)k[i]);
		} else {
			*o++ = k[i];
		}
	}
	*o = 0;
	return s;
}

static bool json_bytes_field(const char *name)
{
	return !strcmp(name, "oci_spec") || !strcmp(name, "process") || !strcmp(name, "resources");
}

static int from_json(ProtobufCMessage *m, const json_t *obj, const char *path, sp_err **err);

static int scalar(const ProtobufCFieldDescriptor *f, void *dst, const json_t *v,
		  const char *path, sp_err **err)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
		if (json_is_string(v))
			*(char **)dst = sp_xstrdup(json_string_value(v));
		else if (json_is_object(v) || json_is_array(v))
			*(char **)dst = sp_json_dump_canonical(v);
		else
			return sp_error(err, SP_ERR_PARSE, "%s: expected a string", path);
		return 0;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = dst;
		if (json_is_object(v) || json_is_array(v)) {
			char *s = sp_json_dump_canonical(v);
			b->data = (uint8_t *)s;
			b->len = strlen(s);
		} else if (json_is_string(v) && json_bytes_field(f->name)) {
			b->len = json_string_length(v);
			b->data = sp_xmemdup(json_string_value(v), b->len + 1);
		} else if (json_is_string(v)) {
			if (sp_base64_decode(&b->data, &b->len, json_string_value(v),
					     json_string_length(v), SP_B64_STD, err) < 0)
				return sp_error_wrap(err, "%s", path);
		} else {
			return sp_error(err, SP_ERR_PARSE, "%s: expected base64 (or JSON for %s)", path, f->name);
		}
		return 0;
	}
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(v))
			return sp_error(err, SP_ERR_PARSE, "%s: expected a boolean", path);
		*(protobuf_c_boolean *)dst = json_is_true(v);
		return 0;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64: {
		if (!json_is_integer(v))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an integer", path);
		json_int_t x = json_integer_value(v);
		if (f->type == PROTOBUF_C_TYPE_UINT32) {
			if (x < 0 || x > UINT32_MAX)
				return sp_error(err, SP_ERR_PARSE, "%s: out of range", path);
			*(uint32_t *)dst = (uint32_t)x;
		} else if (f->type == PROTOBUF_C_TYPE_INT32) {
			if (x < INT32_MIN || x > INT32_MAX)
				return sp_error(err, SP_ERR_PARSE, "%s: out of range", path);
			*(int32_t *)dst = (int32_t)x;
		} else if (f->type == PROTOBUF_C_TYPE_INT64) {
			*(int64_t *)dst = x;
		} else {
			if (x < 0)
				return sp_error(err, SP_ERR_PARSE, "%s: out of range", path);
			*(uint64_t *)dst = (uint64_t)x;
		}
		return 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *d = f->descriptor;
		ProtobufCMessage *sub = sp_xzalloc(d->sizeof_message);
		d->message_init(sub);
		*(ProtobufCMessage **)dst = sub;
		if (!json_is_object(v))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an object", path);
		return from_json(sub, v, path, err);
	}
	default:
		return sp_error(err, SP_ERR_UNSUPPORTED, "%s: field type not supported", path);
	}
}

static size_t type_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_UINT64:
		return 8;
	default:
		return 4;
	}
}

static int from_json(ProtobufCMessage *m, const json_t *obj, const char *path, sp_err **err)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		_cleanup_free_ char *sn = snake(k);
		_cleanup_free_ char *fp = sp_xasprintf("%s.%s", path, k);
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, sn);
		if (!f)
			f = protobuf_c_message_descriptor_get_field_by_name(d, k);
		if (!f)
			return sp_error(err, SP_ERR_PARSE, "%s: %s has no such field", fp, d->name);
		if (json_is_null(v))
			continue;
		char *base = (char *)m;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (!json_is_array(v))
				return sp_error(err, SP_ERR_PARSE, "%s: expected an array", fp);
			size_t n = json_array_size(v), sz = type_size(f);
			void *arr = sp_xcalloc(n ? n : 1, sz);
			*(void **)(base + f->offset) = arr;
			size_t *count = (size_t *)(base + f->quantifier_offset);
			*count = 0;
			for (size_t i = 0; i < n; i++) {
				_cleanup_free_ char *ep = sp_xasprintf("%s[%zu]", fp, i);
				/* Counted before filling, so a failure frees what exists. */
				(*count)++;
				if (scalar(f, (char *)arr + i * sz, json_array_get(v, i), ep, err) < 0)
					return (*err)->code;
			}
		} else {
			/* Replace the default (a static empty string) only. */
			if (scalar(f, base + f->offset, v, fp, err) < 0)
				return (*err)->code;
		}
	}
	return 0;
}

int sp_policy_request_from_json(const json_t *doc, const char **kind,
				ProtobufCMessage **msg, sp_err **err)
{
	*msg = NULL;
	const char *k = NULL;
	json_t *req = NULL;
	if (sp_json_get_string(doc, "kind", true, &k, "request", err) < 0 ||
	    sp_json_get_object(doc, "request", false, &req, "request", err) < 0)
		return (*err)->code;
	*kind = k;
	const ProtobufCMessageDescriptor *d = sp_policy_request_descriptor(k);
	if (!d) {
		/* Known requests without a message (network changes) pass
		 * through with msg NULL; the evaluator decides by name. */
		return 0;
	}
	ProtobufCMessage *m = sp_xzalloc(d->sizeof_message);
	d->message_init(m);
	if (req && from_json(m, req, "request", err) < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return (*err)->code;
	}
	*msg = m;
	return 0;
}

/* Walks "a/b/0" below root; creates missing objects when `create`. Returns
 * the parent container and the last token. */
static json_t *walk(json_t *root, const char *path, char **last, bool create)
{
	_cleanup_free_ char *dup = sp_xstrdup(path);
	char *save = NULL, *tok = strtok_r(dup, "/", &save), *next;
	json_t *cur = root;
	while (tok && (next = strtok_r(NULL, "/", &save))) {
		json_t *child;
		if (json_is_array(cur))
			child = json_array_get(cur, strtoul(tok, NULL, 10));
		else
			child = json_object_get(cur, tok);
		if (!child && create && json_is_object(cur)) {
			child = json_object();
			json_object_set_new(cur, tok, child);
		}
		if (!child)
			return NULL;
		cur = child;
		tok = next;
	}
	if (!tok)
		return NULL;
	*last = sp_xstrdup(tok);
	return cur;
}

static int apply_edits(json_t *target, const json_t *spec, sp_err **err)
{
	const char *k;
	json_t *v;
	json_t *set = json_object_get(spec, "$set"), *del = json_object_get(spec, "$delete"),
	       *app = json_object_get(spec, "$append");
	json_object_foreach(set, k, v) {
		_cleanup_free_ char *last = NULL;
		json_t *parent = walk(target, k, &last, true);
		if (!parent)
			return sp_error(err, SP_ERR_PARSE, "$set: no place `%s`", k);
		if (json_is_array(parent))
			json_array_set(parent, strtoul(last, NULL, 10), v);
		else
			json_object_set(parent, last, v);
	}
	json_object_foreach(app, k, v) {
		_cleanup_free_ char *last = NULL;
		json_t *parent = walk(target, k, &last, true);
		json_t *arr = parent ? json_object_get(parent, last) : NULL;
		if (parent && !arr) {
			arr = json_array();
			json_object_set_new(parent, last, arr);
		}
		if (!json_is_array(arr))
			return sp_error(err, SP_ERR_PARSE, "$append: `%s` is not an array", k);
		json_array_append(arr, v);
	}
	size_t i;
	json_array_foreach(del, i, v) {
		_cleanup_free_ char *last = NULL;
		json_t *parent = json_is_string(v) ? walk(target, json_string_value(v), &last, false) : NULL;
		if (!parent)
			return sp_error(err, SP_ERR_PARSE, "$delete: no place %s", sp_policy_render(v));
		if (json_is_array(parent))
			json_array_remove(parent, strtoul(last, NULL, 10));
		else
			json_object_del(parent, last);
	}
	return 0;
}

int sp_policy_request_expand(const sp_policy *p, json_t *doc, sp_err **err)
{
	json_t *req = json_object_get(doc, "request");
	static const char *const fields[] = {"oci_spec", "ociSpec", "process"};
	for (size_t f = 0; req && f < SP_ARRAY_LEN(fields); f++) {
		json_t *v = json_object_get(req, fields[f]);
		json_t *from = v ? json_object_get(v, "$from_policy") : NULL;
		if (!from)
			continue;
		int idx = json_is_string(from) ? sp_policy_container_find(p, json_string_value(from)) : -1;
		if (idx < 0)
			return sp_error(err, SP_ERR_NOT_FOUND, "$from_policy: no container %s",
					sp_policy_render(from));
		json_t *spec = NULL;
		if (sp_policy_container_spec(p, (size_t)idx, json_object_get(v, "$values"), &spec, err) < 0)
			return (*err)->code;
		json_t *target = spec;
		if (!strcmp(fields[f], "process")) {
			target = json_incref(json_object_get(spec, "process"));
			json_decref(spec);
		}
		if (apply_edits(target, v, err) < 0) {
			json_decref(target);
			return (*err)->code;
		}
		json_object_set_new(req, fields[f], target);
	}
	return 0;
}
