/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "sealpod/file.h"
#include "sealpod/json.h"

int sp_json_parse(json_t **out, const void *data, size_t len, const char *what,
		  sp_err **err)
{
	json_error_t je;
	json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return sp_error(err, SP_ERR_PARSE, "%s: invalid JSON at line %d column %d: %s",
				what, je.line, je.column, je.text);
	*out = j;
	return 0;
}

int sp_json_load_file(json_t **out, const char *path, size_t max, sp_err **err)
{
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	if (sp_read_file(&data, &len, path, max, err) < 0)
		return (*err)->code;
	return sp_json_parse(out, data, len, path, err);
}

char *sp_json_dump_canonical(const json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		sp_oom();
	return s;
}

char *sp_json_dump_pretty(const json_t *j)
{
	char *s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENCODE_ANY);
	if (!s)
		sp_oom();
	return s;
}

static const char *type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

/* Fetches obj[key] and checks its type; returns 1 if found, 0 if absent
 * and optional, or a negative code. A JSON null counts as absent. */
static int get_typed(const json_t *obj, const char *key, bool required,
		     json_type want, const char *want_name, json_t **out,
		     const char *path, sp_err **err)
{
	if (!json_is_object(obj))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object", path);
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v)) {
		if (required)
			return sp_error(err, SP_ERR_PARSE, "%s.%s: missing", path, key);
		return 0;
	}
	bool ok = json_typeof(v) == want ||
		  (want == JSON_TRUE && json_is_boolean(v));
	if (!ok)
		return sp_error(err, SP_ERR_PARSE, "%s.%s: expected %s, got %s",
				path, key, want_name, type_name(v));
	*out = v;
	return 1;
}

int sp_json_get_object(const json_t *obj, const char *key, bool required,
		       json_t **out, const char *path, sp_err **err)
{
	int r = get_typed(obj, key, required, JSON_OBJECT, "an object", out, path, err);
	return r < 0 ? r : 0;
}

int sp_json_get_array(const json_t *obj, const char *key, bool required,
		      json_t **out, const char *path, sp_err **err)
{
	int r = get_typed(obj, key, required, JSON_ARRAY, "an array", out, path, err);
	return r < 0 ? r : 0;
}

int sp_json_get_string(const json_t *obj, const char *key, bool required,
		       const char **out, const char *path, sp_err **err)
{
	json_t *v;
	int r = get_typed(obj, key, required, JSON_STRING, "a string", &v, path, err);
	if (r == 1)
		*out = json_string_value(v);
	return r < 0 ? r : 0;
}

int sp_json_get_bool(const json_t *obj, const char *key, bool required,
		     bool *out, const char *path, sp_err **err)
{
	json_t *v;
	int r = get_typed(obj, key, required, JSON_TRUE, "a boolean", &v, path, err);
	if (r == 1)
		*out = json_is_true(v);
	return r < 0 ? r : 0;
}

int sp_json_get_int(const json_t *obj, const char *key, bool required,
		    int64_t *out, const char *path, sp_err **err)
{
	json_t *v;
	int r = get_typed(obj, key, required, JSON_INTEGER, "an integer", &v, path, err);
	if (r == 1)
		*out = (int64_t)json_integer_value(v);
	return r < 0 ? r : 0;
}

int sp_json_get_strv(const json_t *obj, const char *key, bool required,
		     char ***out, const char *path, sp_err **err)
{
	json_t *arr = NULL;
	if (sp_json_get_array(obj, key, required, &arr, path, err) < 0)
		return (*err)->code;
	if (!arr)
		return 0;
	size_t n = json_array_size(arr);
	char **v = sp_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(arr, i);
		if (!json_is_string(e)) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			return sp_error(err, SP_ERR_PARSE, "%s.%s[%zu]: expected a string, got %s",
					path, key, i, type_name(e));
		}
		v[i] = sp_xstrdup(json_string_value(e));
	}
	*out = v;
	return 0;
}
