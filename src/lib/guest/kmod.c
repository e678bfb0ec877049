/* SPDX-License-Identifier: Apache-2.0 */
/* Which kernel modules go into the initramfs, and in what order pid 1
 * loads them: names resolved through modules.dep (dependencies first),
 * built-in drivers skipped through modules.builtin. */
#include <string.h>

#include "sealpod/bytes.h"
#include "sealpod/guest.h"

int sp_guest_kernel_release(char **out, const uint8_t *img, size_t len,
			    sp_err **err)
{
	sp_reader r;
	sp_reader_init(&r, img, len);
	uint32_t magic = 0;
	uint16_t proto = 0, ver_off = 0;
	if (!sp_reader_seek(&r, 0x202) || !sp_reader_u32le(&r, &magic) ||
	    !sp_reader_u16le(&r, &proto) || magic != 0x53726448 /* "HdrS" */)
		return sp_error(err, SP_ERR_PARSE,
				"not a bzImage (no setup header); give the modules "
				"directory with --modules");
	if (!sp_reader_seek(&r, 0x20e) || !sp_reader_u16le(&r, &ver_off) ||
	    proto < 0x200 || ver_off == 0)
		return sp_error(err, SP_ERR_PARSE, "bzImage has no kernel version string");
	size_t off = (size_t)ver_off + 0x200;
	if (off >= len)
		return sp_error(err, SP_ERR_PARSE,
				"bzImage kernel version offset 0x%zx is past the end", off);
	size_t n = 0;
	while (off + n < len && n < 256 && img[off + n] > ' ' && img[off + n] < 0x7f)
		n++;
	if (n == 0 || off + n >= len || n >= 256)
		return sp_error(err, SP_ERR_PARSE, "bzImage kernel version is malformed");
	*out = sp_xstrndup((const char *)img + off, n);
	return 0;
}

typedef struct mod {
	char *path;    /* "kernel/drivers/.../virtio_blk.ko" */
	char *name;    /* "virtio_blk" */
	char **deps;   /* paths */
	size_t n_deps;
	int state;     /* 0 new, 1 visiting, 2 done */
} mod;

typedef struct modtab {
	mod *v;
	size_t n;
} modtab;

/* "kernel/x/virtio-rng.ko.xz" -> "virtio_rng" */
static char *mod_name(const char *path, size_t len)
{
	const char *base = path;
	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			base = path + i + 1;
	size_t n = (size_t)(path + len - base);
	const char *ko = NULL;
	for (size_t i = 0; i + 3 <= n; i++)
		if (!memcmp(base + i, ".ko", 3))
			ko = base + i;
	if (ko)
		n = (size_t)(ko - base);
	char *s = sp_xstrndup(base, n);
	for (char *p = s; *p; p++)
		if (*p == '-')
			*p = '_';
	return s;
}

static void modtab_free(modtab *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].path);
		free(t->v[i].name);
		for (size_t j = 0; j < t->v[i].n_deps; j++)
			free(t->v[i].deps[j]);
		free(t->v[i].deps);
	}
	free(t->v);
}

static int parse_dep(modtab *t, const char *text, size_t len, sp_err **err)
{
	size_t pos = 0, lineno = 0;
	while (pos < len) {
		lineno++;
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl ? 1 : 0);
		if (ll == 0 || line[0] == '#')
			continue;
		const char *colon = memchr(line, ':', ll);
		if (!colon || colon == line)
			return sp_error(err, SP_ERR_PARSE, "modules.dep line %zu has no ':'",
					lineno);
		mod m = {0};
		m.path = sp_xstrndup(line, (size_t)(colon - line));
		m.name = mod_name(line, (size_t)(colon - line));
		const char *p = colon + 1, *end = line + ll;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			const char *s = p;
			while (p < end && *p != ' ' && *p != '\t')
				p++;
			if (p > s) {
				m.deps = sp_xrealloc(m.deps, (m.n_deps + 1) * sizeof(char *));
				m.deps[m.n_deps++] = sp_xstrndup(s, (size_t)(p - s));
			}
		}
		t->v = sp_xrealloc(t->v, (t->n + 1) * sizeof(mod));
		t->v[t->n++] = m;
	}
	return 0;
}

static mod *find_path(modtab *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].path, path))
			return &t->v[i];
	return NULL;
}

static mod *find_name(modtab *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return &t->v[i];
	return NULL;
}

static bool in_builtin(const char *builtin, size_t len, const char *name)
{
	size_t pos = 0;
	while (builtin && pos < len) {
		const char *line = builtin + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl ? 1 : 0);
		if (!ll)
			continue;
		_cleanup_free_ char *n = mod_name(line, ll);
		if (!strcmp(n, name))
			return true;
	}
	return false;
}

typedef struct strv {
	char **v;
	size_t n;
} strv;

static void push(strv *s, char *owned)
{
	s->v = sp_xrealloc(s->v, (s->n + 2) * sizeof(char *));
	s->v[s->n++] = owned;
	s->v[s->n] = NULL;
}

static int visit(modtab *t, mod *m, strv *order, int depth, sp_err **err)
{
	if (m->state == 2)
		return 0;
	if (m->state == 1 || depth > 64)
		return sp_error(err, SP_ERR_PARSE,
				"modules.dep has a dependency cycle through %s", m->path);
	m->state = 1;
	/* modules.dep lists every dependency, nearest last; visiting each one
	 * recursively yields a valid order whatever the listing order is. */
	for (size_t i = m->n_deps; i-- > 0;) {
		mod *d = find_path(t, m->deps[i]);
		if (!d)
			return sp_error(err, SP_ERR_PARSE,
					"modules.dep: %s needs %s, which has no entry",
					m->path, m->deps[i]);
		if (visit(t, d, order, depth + 1, err) < 0)
			return SP_ERR_PARSE;
	}
	m->state = 2;
	push(order, sp_xstrdup(m->path));
	return 0;
}

int sp_guest_resolve_modules(char ***paths, char ***status, const char *modules_dep,
			     size_t dep_len, const char *builtin, size_t builtin_len,
			     const char *const *names, size_t n_names, sp_err **err)
{
	modtab t = {0};
	strv order = {0}, st = {0};
	int r = parse_dep(&t, modules_dep, dep_len, err);
	for (size_t i = 0; r == 0 && i < n_names; i++) {
		_cleanup_free_ char *want = mod_name(names[i], strlen(names[i]));
		mod *m = find_name(&t, want);
		if (m) {
			r = visit(&t, m, &order, 0, err);
			push(&st, sp_xstrdup("module"));
		} else if (in_builtin(builtin, builtin_len, want)) {
			push(&st, sp_xstrdup("builtin"));
		} else {
			push(&st, sp_xstrdup("absent"));
		}
	}
	modtab_free(&t);
	if (r < 0) {
		sp_strv_freep(&order.v);
		sp_strv_freep(&st.v);
		return r;
	}
	if (!order.v)
		order.v = sp_xcalloc(1, sizeof(char *));
	if (!st.v)
		st.v = sp_xcalloc(1, sizeof(char *));
	*paths = order.v;
	*status = st.v;
	return 0;
}
