/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod run`'s control protocol: frame headers and requests
 * (include/sealpod/runctl.h). Pure functions over bytes; the sockets are
 * src/cli/run_ctl.c's. */
#include <stdlib.h>
#include <string.h>

#include "sealpod/json.h"
#include "sealpod/runctl.h"

void sp_runctl_header(uint8_t out[SP_RUNCTL_HEADER], int type, size_t len)
{
	out[0] = (uint8_t)type;
	out[1] = (uint8_t)(len >> 24);
	out[2] = (uint8_t)(len >> 16);
	out[3] = (uint8_t)(len >> 8);
	out[4] = (uint8_t)len;
}

int sp_runctl_header_parse(const uint8_t h[SP_RUNCTL_HEADER], int *type, size_t *len,
			   sp_err **err)
{
	size_t l = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
	if (l > SP_RUNCTL_MAX_FRAME)
		return sp_error(err, SP_ERR_LIMIT, "a %zu-byte frame (the limit is %u)", l,
				SP_RUNCTL_MAX_FRAME);
	*type = h[0];
	*len = l;
	return 0;
}

int sp_runctl_frame_next(const uint8_t *buf, size_t len, int *type, const uint8_t **payload,
			 size_t *plen, size_t *used, sp_err **err)
{
	if (len < SP_RUNCTL_HEADER)
		return 0;
	size_t l;
	if (sp_runctl_header_parse(buf, type, &l, err) < 0)
		return -1;
	if (len - SP_RUNCTL_HEADER < l)
		return 0;
	*payload = buf + SP_RUNCTL_HEADER;
	*plen = l;
	*used = SP_RUNCTL_HEADER + l;
	return 1;
}

void sp_runctl_req_free(sp_runctl_req *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_args; i++)
		free(r->args[i]);
	free(r->args);
	free(r->container);
	free(r);
}

/* A JSON string without NUL bytes (a C string must say all of it). */
static const char *plain_string(const json_t *v)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static int parse_exec(sp_runctl_req *r, const json_t *req, sp_err **err)
{
	const json_t *jc = json_object_get(req, "container");
	const json_t *args = json_object_get(req, "args");
	const json_t *tty = json_object_get(req, "tty");
	if ((jc && !plain_string(jc)) || (tty && !json_is_boolean(tty)) ||
	    !json_is_array(args) || json_array_size(args) == 0 ||
	    json_array_size(args) > SP_RUNCTL_MAX_ARGS)
		return sp_error(err, SP_ERR_PARSE,
				"exec: want {\"container\": NAME, \"args\": [1-%d strings], "
				"\"tty\": BOOL}", SP_RUNCTL_MAX_ARGS);
	r->args = sp_xcalloc(json_array_size(args), sizeof(char *));
	size_t i;
	const json_t *a;
	json_array_foreach(args, i, a) {
		const char *s = plain_string(a);
		if (!s)
			return sp_error(err, SP_ERR_PARSE, "exec: args[%zu] is not a string", i);
		r->args[r->n_args++] = sp_xstrdup(s);
	}
	if (jc)
		r->container = sp_xstrdup(json_string_value(jc));
	r->tty = json_is_true(tty);
	return 0;
}

static int parse_stop(sp_runctl_req *r, const json_t *req, sp_err **err)
{
	const json_t *g = json_object_get(req, "grace");
	if (!g)
		return 0;
	if (!json_is_integer(g) || json_integer_value(g) < 0 ||
	    json_integer_value(g) > SP_RUNCTL_MAX_GRACE)
		return sp_error(err, SP_ERR_PARSE, "stop: grace must be 0-%d seconds",
				SP_RUNCTL_MAX_GRACE);
	r->has_grace = true;
	r->grace = (unsigned)json_integer_value(g);
	return 0;
}

int sp_runctl_req_parse(sp_runctl_req **out, const uint8_t *data, size_t len, sp_err **err)
{
	*out = NULL;
	if (len > SP_RUNCTL_MAX_REQUEST)
		return sp_error(err, SP_ERR_LIMIT, "expected one request frame of at most %u bytes",
				SP_RUNCTL_MAX_REQUEST);
	_cleanup_json_ json_t *req = NULL;
	sp_err *perr = NULL;
	if (sp_json_parse(&req, data, len, "request", &perr) < 0 || !json_is_object(req)) {
		int rc = sp_error(err, SP_ERR_PARSE, "the request is not a JSON object%s%s",
				  perr ? ": " : "", perr ? sp_err_msg(perr) : "");
		sp_err_free(perr);
		return rc;
	}
	const json_t *jop = json_object_get(req, "op");
	const char *op = plain_string(jop);
	sp_runctl_req *r = sp_xzalloc(sizeof(*r));
	int rc;
	if (op && !strcmp(op, "exec")) {
		r->op = SP_RUNCTL_OP_EXEC;
		rc = parse_exec(r, req, err);
	} else if (op && !strcmp(op, "stop")) {
		r->op = SP_RUNCTL_OP_STOP;
		rc = parse_stop(r, req, err);
	} else {
		rc = sp_error(err, SP_ERR_PARSE, "unknown request op `%s` (exec or stop)",
			      op ? op : "");
	}
	if (rc < 0) {
		sp_runctl_req_free(r);
		return rc;
	}
	*out = r;
	return 0;
}
