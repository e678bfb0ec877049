/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes YAML through libyaml: documents to JSON (core-schema scalars,
 * bounded against alias bombs), and back out with the policy annotation
 * added to each pod template. Re-emission goes through libyaml's node
 * graph, so keys, order and scalar styles survive; comments do not (libyaml
 * does not keep them). */
#include <string.h>
#include <yaml.h>

#include "internal.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/json.h"

#define MAX_DEPTH 64
#define MAX_NODES 200000

struct conv {
	yaml_document_t *doc;
	size_t budget;
	sp_err **err;
};

static json_t *scalar_value(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	size_t len = n->data.scalar.length;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || strcmp((char *)n->tag, YAML_STR_TAG))
		return json_stringn_nocheck(s, len);
	if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 0);
	if (*end == 0 && errno == 0 && (s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')) &&
	    !(s[0] == '0' && len > 1 && s[1] != 'x' && s[1] != 'o')) /* 0755 stays text */
		return json_integer(v);
	if (s[0] == '0' && s[1] == 'o') {
		v = strtoll(s + 2, &end, 8);
		if (*end == 0 && s[2])
			return json_integer(v);
	}
	double d = strtod(s, &end);
	if (*end == 0 && strspn(s, "+-0123456789.eE") == len && strpbrk(s, "0123456789"))
		return json_real(d);
	return json_stringn_nocheck(s, len);
}

static json_t *convert(struct conv *c, int id, int depth)
{
	yaml_node_t *n = yaml_document_get_node(c->doc, id);
	if (!n) {
		sp_error(c->err, SP_ERR_PARSE, "YAML: dangling node");
		return NULL;
	}
	if (depth > MAX_DEPTH || c->budget == 0) {
		sp_error(c->err, SP_ERR_LIMIT, "YAML: nested too deep or too many nodes (aliases?)");
		return NULL;
	}
	c->budget--;
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		json_t *j = scalar_value(n);
		if (!j)
			sp_error(c->err, SP_ERR_PARSE, "YAML: a scalar is not valid UTF-8");
		return j;
	}
	case YAML_SEQUENCE_NODE: {
		json_t *a = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			json_t *v = convert(c, *it, depth + 1);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE) {
				json_decref(o);
				sp_error(c->err, SP_ERR_PARSE, "YAML: mapping keys must be scalars");
				return NULL;
			}
			_cleanup_free_ char *key = sp_xstrndup((char *)k->data.scalar.value, k->data.scalar.length);
			if (strlen(key) != k->data.scalar.length || json_object_get(o, key)) {
				json_decref(o);
				sp_error(c->err, SP_ERR_PARSE, "YAML: key `%s` appears twice (or holds NUL)", key);
				return NULL;
			}
			json_t *v = convert(c, p->value, depth + 1);
			if (!v) {
				json_decref(o);
				return NULL;
			}
			if (json_object_set_new(o, key, v) < 0) {
				json_decref(o);
				sp_error(c->err, SP_ERR_PARSE, "YAML: key is not valid UTF-8");
				return NULL;
			}
		}
		return o;
	}
	default:
		sp_error(c->err, SP_ERR_PARSE, "YAML: empty node");
		return NULL;
	}
}

/* Calls fn for each document; stops at the first error. */
typedef int (*doc_fn)(void *ctx, yaml_document_t *doc, json_t *j, sp_err **err);

static int each_doc(const void *yaml, size_t len, doc_fn fn, void *ctx, sp_err **err)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		sp_oom();
	yaml_parser_set_input_string(&parser, yaml, len);
	int rc = 0;
	size_t budget = MAX_NODES;
	for (size_t i = 0;; i++) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			rc = sp_error(err, SP_ERR_PARSE, "YAML: %s at line %zu column %zu",
				      parser.problem ? parser.problem : "error", parser.problem_mark.line + 1,
				      parser.problem_mark.column + 1);
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break;
		}
		struct conv c = {.doc = &doc, .budget = budget, .err = err};
		json_t *j = convert(&c, 1, 0);
		budget = c.budget;
		if (!j) {
			yaml_document_delete(&doc);
			rc = sp_error_wrap(err, "document %zu", i + 1);
			break;
		}
		rc = fn(ctx, &doc, j, err);
		json_decref(j);
		if (rc < 0)
			break;
	}
	yaml_parser_delete(&parser);
	return rc;
}

static int collect(void *ctx, yaml_document_t *doc, json_t *j, sp_err **err)
{
	json_array_append(ctx, j);
	yaml_document_delete(doc);
	return 0;
}

int sp_yaml_to_json(const void *yaml, size_t len, json_t **out, sp_err **err)
{
	json_t *a = json_array();
	if (each_doc(yaml, len, collect, a, err) < 0) {
		json_decref(a);
		return (*err)->code;
	}
	*out = a;
	return 0;
}

/* ---- writing the annotation back ---- */

static int map_get(yaml_document_t *doc, int map, const char *key)
{
	yaml_node_t *n = yaml_document_get_node(doc, map);
	if (!n || n->type != YAML_MAPPING_NODE)
		return 0;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
			return p->value;
	}
	return 0;
}

static int add_scalar(yaml_document_t *doc, const char *s)
{
	int id = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)s, (int)strlen(s), YAML_PLAIN_SCALAR_STYLE);
	if (!id)
		sp_oom();
	return id;
}

/* The mapping under map[key], created if missing; 0 if map[key] exists
 * but is not a mapping. */
static int map_child(yaml_document_t *doc, int map, const char *key)
{
	int v = map_get(doc, map, key);
	if (v) {
		yaml_node_t *n = yaml_document_get_node(doc, v);
		if (n->type == YAML_MAPPING_NODE)
			return v;
		if (n->type != YAML_SCALAR_NODE || n->data.scalar.length)
			return 0;
		/* `annotations:` with nothing: replace the null by a mapping. */
		int m = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
		yaml_node_t *mn = yaml_document_get_node(doc, map);
		for (yaml_node_pair_t *p = mn->data.mapping.pairs.start; p < mn->data.mapping.pairs.top; p++)
			if (p->value == v)
				p->value = m;
		return m;
	}
	int k = add_scalar(doc, key);
	int m = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
	if (!m || !yaml_document_append_mapping_pair(doc, map, k, m))
		sp_oom();
	return m;
}

static int set_annotation(yaml_document_t *doc, int template, const char *value, sp_err **err)
{
	int meta = map_child(doc, template, "metadata");
	int ann = meta ? map_child(doc, meta, "annotations") : 0;
	if (!ann)
		return sp_error(err, SP_ERR_PARSE, "pod template: metadata.annotations is not a mapping");
	int val = add_scalar(doc, value);
	int old = map_get(doc, ann, SP_POLICY_ANNOTATION);
	yaml_node_t *an = yaml_document_get_node(doc, ann);
	if (old) {
		for (yaml_node_pair_t *p = an->data.mapping.pairs.start; p < an->data.mapping.pairs.top; p++)
			if (p->value == old)
				p->value = val;
		return 0;
	}
	int k = add_scalar(doc, SP_POLICY_ANNOTATION);
	if (!yaml_document_append_mapping_pair(doc, ann, k, val))
		sp_oom();
	return 0;
}

static int template_node(yaml_document_t *doc, const char *kind)
{
	if (!strcmp(kind, "Pod"))
		return 1;
	int spec = map_get(doc, 1, "spec");
	if (!strcmp(kind, "CronJob")) {
		int jt = map_get(doc, spec, "jobTemplate");
		spec = map_get(doc, jt, "spec");
	}
	return map_get(doc, spec, "template");
}

struct gen_ctx {
	const sp_policy_gen_opts *opts;
	json_t *config_maps;
	yaml_emitter_t *em;
	sp_buf *hashes;
	bool emit_failed;
	size_t docs; /* documents handed to the emitter */
};

static int gen_doc(void *vctx, yaml_document_t *doc, json_t *j, sp_err **err)
{
	struct gen_ctx *g = vctx;
	_cleanup_json_ json_t *pol = NULL;
	if (sp_policy_generate(j, g->config_maps, g->opts, &pol, err) < 0) {
		yaml_document_delete(doc);
		const char *kind = json_string_value(json_object_get(j, "kind"));
		const char *name = json_string_value(json_object_get(json_object_get(j, "metadata"), "name"));
		return sp_error_wrap(err, "%s/%s", kind ? kind : "?", name ? name : "?");
	}
	if (pol) {
		const char *kind = json_string_value(json_object_get(j, "kind"));
		const char *name = json_string_value(json_object_get(json_object_get(j, "metadata"), "name"));
		_cleanup_free_ char *canon = sp_json_dump_canonical(pol);
		_cleanup_free_ char *b64 = sp_base64_encode(canon, strlen(canon), SP_B64_STD);
		uint8_t h[SP_SHA256_LEN];
		char hex[2 * SP_SHA256_LEN + 1];
		sp_sha256(h, canon, strlen(canon));
		sp_hex_encode(hex, h, sizeof(h));
		if (g->hashes)
			sp_buf_printf(g->hashes, "%s/%s %s\n", kind, name ? name : "?", hex);
		int t = template_node(doc, kind);
		if (!t || set_annotation(doc, t, b64, err) < 0) {
			yaml_document_delete(doc);
			return sp_error(err, SP_ERR_PARSE, "%s/%s: no pod template to annotate", kind, name ? name : "?");
		}
	}
	g->docs++;
	if (!yaml_emitter_dump(g->em, doc)) { /* dump deletes the document */
		g->emit_failed = true;
		return sp_error(err, SP_ERR_SYSTEM, "YAML emitter: %s", g->em->problem ? g->em->problem : "error");
	}
	return 0;
}

static int collect_config_maps(void *ctx, yaml_document_t *doc, json_t *j, sp_err **err)
{
	yaml_document_delete(doc);
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *name = json_string_value(json_object_get(json_object_get(j, "metadata"), "name"));
	json_t *data = json_object_get(j, "data");
	if (kind && name && !strcmp(kind, "ConfigMap"))
		json_object_set_new(ctx, name, json_is_object(data) ? json_incref(data) : json_object());
	return 0;
}

static int write_buf(void *data, unsigned char *buffer, size_t size)
{
	sp_buf_put(data, buffer, size);
	return 1;
}

int sp_policy_generate_yaml(const void *yaml, size_t len, const sp_policy_gen_opts *opts,
			    char **yaml_out, char **hashes, sp_err **err)
{
	*yaml_out = NULL;
	if (hashes)
		*hashes = NULL;
	_cleanup_json_ json_t *cms = json_object();
	if (each_doc(yaml, len, collect_config_maps, cms, err) < 0)
		return (*err)->code;
	yaml_emitter_t em;
	_cleanup_buf_ sp_buf out = SP_BUF_INIT;
	_cleanup_buf_ sp_buf hb = SP_BUF_INIT;
	if (!yaml_emitter_initialize(&em))
		sp_oom();
	yaml_emitter_set_output(&em, write_buf, &out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_indent(&em, 2);
	struct gen_ctx g = {.opts = opts, .config_maps = cms, .em = &em, .hashes = &hb};
	/* yaml_emitter_dump opens the stream on first use. */
	int rc = each_doc(yaml, len, gen_doc, &g, err);
	/* libyaml asserts on closing a stream it never opened. */
	if (rc == 0 && !g.docs)
		rc = sp_error(err, SP_ERR_PARSE,
			      "the YAML holds no document: expected a Pod or a workload");
	if (rc == 0 && !yaml_emitter_close(&em))
		rc = sp_error(err, SP_ERR_SYSTEM, "YAML emitter: %s", em.problem ? em.problem : "error");
	if (rc == 0 && !yaml_emitter_flush(&em))
		rc = sp_error(err, SP_ERR_SYSTEM, "YAML emitter: flush failed");
	yaml_emitter_delete(&em);
	if (rc < 0)
		return rc;
	sp_buf_terminate(&out);
	*yaml_out = (char *)sp_buf_steal(&out, NULL);
	if (hashes) {
		sp_buf_terminate(&hb);
		*hashes = hb.len ? (char *)sp_buf_steal(&hb, NULL) : sp_xstrdup("");
	}
	return 0;
}
