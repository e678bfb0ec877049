/* SPDX-License-Identifier: Apache-2.0 */
/* JSON helpers over jansson: typed getters whose errors name the path. */
#ifndef SEALPOD_JSON_H
#define SEALPOD_JSON_H

#include <jansson.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

static inline void sp_json_decrefp(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(sp_json_decrefp)))

/* Parses bytes (no trailing garbage; duplicate keys refused). */
SP_PUBLIC int sp_json_parse(json_t **out, const void *data, size_t len,
			    const char *what, sp_err **err);
SP_PUBLIC int sp_json_load_file(json_t **out, const char *path, size_t max,
				sp_err **err);
/* Canonical bytes: keys sorted, no spaces, UTF-8 unescaped. */
SP_PUBLIC char *sp_json_dump_canonical(const json_t *j);
SP_PUBLIC char *sp_json_dump_pretty(const json_t *j);

/* Getters. `path` is used only in error messages ("spec.process").
 * A missing optional member leaves *out untouched and returns 0. */
SP_PUBLIC int sp_json_get_object(const json_t *obj, const char *key,
				 bool required, json_t **out, const char *path,
				 sp_err **err);
SP_PUBLIC int sp_json_get_array(const json_t *obj, const char *key,
				bool required, json_t **out, const char *path,
				sp_err **err);
SP_PUBLIC int sp_json_get_string(const json_t *obj, const char *key,
				 bool required, const char **out,
				 const char *path, sp_err **err);
SP_PUBLIC int sp_json_get_bool(const json_t *obj, const char *key,
			       bool required, bool *out, const char *path,
			       sp_err **err);
SP_PUBLIC int sp_json_get_int(const json_t *obj, const char *key,
			      bool required, int64_t *out, const char *path,
			      sp_err **err);
/* A NULL-terminated array of new strings from an array of strings. */
SP_PUBLIC int sp_json_get_strv(const json_t *obj, const char *key,
			       bool required, char ***out, const char *path,
			       sp_err **err);

#endif
