/* SPDX-License-Identifier: Apache-2.0 */
/* A bounded JSON tokenizer for the evaluator's fast path (docs/policy.md,
 * "Performance"). One allocation holds a copy of the input, whose strings
 * are decoded in place and NUL-terminated, and a flat token array; nothing
 * else is allocated. It accepts a strict subset of JSON: whatever falls
 * outside (non-ASCII or \u0000 in strings, reals, integers beyond int64,
 * duplicate keys, deep nesting, many tokens) returns -1 and the caller
 * uses jansson instead. Inside the subset every value is what jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) would build, so the two paths cannot
 * disagree about what the host sent. */
#include <string.h>

#include "internal.h"
#include "sealpod/codec.h"

#define MAX_DEPTH 32
#define MAX_TOKENS 8192
#define MAX_KEYS 64 /* per object: duplicate check is quadratic */

struct parser {
	char *p, *end;
	struct sp_jt *t;
	size_t n, cap;
	int depth;
};

static void skip_ws(struct parser *P)
{
	while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r'))
		P->p++;
}

/* Bytes that stand for themselves inside a string. */
static const bool plain[256] = {[0x20 ... 0x21] = true, [0x23 ... 0x5b] = true,
				[0x5d ... 0x7f] = true}; /* not '"' (0x22), '\\' (0x5c) */

/* At the opening quote. Decoded bytes never outrun the encoded ones, so
 * the string is written over itself and its NUL lands at most on its
 * closing quote. */
static int string(struct parser *P, const char **out, uint32_t *out_len)
{
	char *start = ++P->p;
	/* Until the first escape nothing moves. */
	while (P->p < P->end && plain[(unsigned char)*P->p])
		P->p++;
	char *w = P->p;
	while (P->p < P->end) {
		unsigned char c = (unsigned char)*P->p;
		if (c == '"') {
			*w = 0;
			*out = start;
			*out_len = (uint32_t)(w - start);
			P->p++;
			return 0;
		}
		if (c < 0x20 || c >= 0x80)
			return -1;
		if (c == '\\') {
			if (++P->p >= P->end)
				return -1;
			switch (*P->p) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case '/': c = '/'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				if (P->end - P->p < 5)
					return -1;
				int v = 0;
				for (int k = 1; k <= 4; k++) {
					int h = sp_hex_digit(P->p[k]);
					if (h < 0)
						return -1;
					v = v * 16 + h;
				}
				if (v == 0 || v >= 0x80)
					return -1;
				c = (unsigned char)v;
				P->p += 4;
				break;
			}
			default:
				return -1;
			}
		}
		*w++ = (char)c;
		P->p++;
	}
	return -1;
}

static int number(struct parser *P, int64_t *out)
{
	char *s = P->p;
	bool neg = false;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (s >= P->end || *s < '0' || *s > '9')
		return -1;
	if (*s == '0' && s + 1 < P->end && s[1] >= '0' && s[1] <= '9')
		return -1;
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; s < P->end && *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (lim - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (s < P->end && (*s == '.' || *s == 'e' || *s == 'E'))
		return -1; /* a real: jansson's business */
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	P->p = s;
	return 0;
}

static int literal(struct parser *P, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n))
		return -1;
	P->p += n;
	return 0;
}

static struct sp_jt *new_token(struct parser *P)
{
	if (P->n >= P->cap)
		return NULL;
	struct sp_jt *t = &P->t[P->n++];
	memset(t, 0, sizeof(*t));
	return t;
}

static int value(struct parser *P);

static int object(struct parser *P, size_t idx)
{
	uint32_t keys[MAX_KEYS];
	uint32_t n = 0;
	P->p++;
	skip_ws(P);
	if (P->p < P->end && *P->p == '}') {
		P->p++;
		return 0;
	}
	for (;;) {
		skip_ws(P);
		if (P->p >= P->end || *P->p != '"' || n >= MAX_KEYS)
			return -1;
		size_t k = P->n;
		struct sp_jt *kt = new_token(P);
		if (!kt)
			return -1;
		kt->type = SP_JT_STR;
		if (string(P, &kt->s, &kt->len) < 0)
			return -1;
		kt->end = (uint32_t)(k + 1);
		for (uint32_t i = 0; i < n; i++) {
			const struct sp_jt *o = &P->t[keys[i]];
			if (o->len == kt->len && !memcmp(o->s, kt->s, kt->len))
				return -1; /* jansson refuses duplicates */
		}
		keys[n++] = (uint32_t)k;
		skip_ws(P);
		if (P->p >= P->end || *P->p != ':')
			return -1;
		P->p++;
		if (value(P) < 0)
			return -1;
		skip_ws(P);
		if (P->p < P->end && *P->p == ',') {
			P->p++;
			continue;
		}
		if (P->p < P->end && *P->p == '}') {
			P->p++;
			P->t[idx].len = n;
			return 0;
		}
		return -1;
	}
}

static int array(struct parser *P, size_t idx)
{
	uint32_t n = 0;
	P->p++;
	skip_ws(P);
	if (P->p < P->end && *P->p == ']') {
		P->p++;
		return 0;
	}
	for (;;) {
		if (value(P) < 0)
			return -1;
		n++;
		skip_ws(P);
		if (P->p < P->end && *P->p == ',') {
			P->p++;
			continue;
		}
		if (P->p < P->end && *P->p == ']') {
			P->p++;
			P->t[idx].len = n;
			return 0;
		}
		return -1;
	}
}

static int value(struct parser *P)
{
	skip_ws(P);
	if (P->p >= P->end)
		return -1;
	size_t idx = P->n;
	struct sp_jt *t = new_token(P);
	if (!t)
		return -1;
	int r;
	switch (*P->p) {
	case '{':
	case '[':
		if (++P->depth > MAX_DEPTH)
			return -1;
		t->type = *P->p == '{' ? SP_JT_OBJ : SP_JT_ARR;
		r = t->type == SP_JT_OBJ ? object(P, idx) : array(P, idx);
		P->depth--;
		break;
	case '"':
		t->type = SP_JT_STR;
		r = string(P, &t->s, &t->len);
		break;
	case 't':
		t->type = SP_JT_TRUE;
		r = literal(P, "true");
		break;
	case 'f':
		t->type = SP_JT_FALSE;
		r = literal(P, "false");
		break;
	case 'n':
		t->type = SP_JT_NULL;
		r = literal(P, "null");
		break;
	default:
		t->type = SP_JT_INT;
		r = number(P, &t->i);
		break;
	}
	/* The array never moves, but index for clarity. */
	P->t[idx].end = (uint32_t)P->n;
	return r;
}

static int parse(struct sp_jt_doc *d, char *buf, const void *data, size_t len)
{
	if (len) /* data may be NULL then (an empty protobuf bytes field) */
		memcpy(buf, data, len);
	buf[len] = 0;
	struct parser P = {.p = buf, .end = buf + len, .t = d->t, .cap = d->cap};
	skip_ws(&P);
	if (P.p >= P.end || *P.p != '{' || value(&P) < 0)
		return P.n >= P.cap ? -2 : -1;
	skip_ws(&P);
	if (P.p != P.end)
		return -1;
	d->n = P.n;
	return 0;
}

int sp_jt_parse(struct sp_jt_doc *d, const void *data, size_t len, void *scratch,
		size_t scratch_len)
{
	memset(d, 0, sizeof(*d));
	/* The scratch space (the caller's stack) fits a few-KB spec; a token
	 * takes at least two bytes of input, so the heap retry always has
	 * room, up to MAX_TOKENS. */
	if (scratch && scratch_len > len + 1 &&
	    (scratch_len - len - 1) / sizeof(struct sp_jt) >= 16) {
		d->t = scratch;
		d->cap = (scratch_len - len - 1) / sizeof(struct sp_jt);
		int r = parse(d, (char *)(d->t + d->cap), data, len);
		if (r != -2)
			return r;
	}
	d->cap = len / 2 + 2;
	if (d->cap > MAX_TOKENS)
		d->cap = MAX_TOKENS;
	d->mem = sp_xmalloc(d->cap * sizeof(struct sp_jt) + len + 1);
	d->t = d->mem;
	if (parse(d, (char *)(d->t + d->cap), data, len) < 0) {
		sp_jt_free(d);
		return -1;
	}
	return 0;
}

void sp_jt_free(struct sp_jt_doc *d)
{
	free(d->mem);
	memset(d, 0, sizeof(*d));
}
