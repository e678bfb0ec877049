/* SPDX-License-Identifier: Apache-2.0 */
/* Image references with Docker's defaults, parsed strictly: anything
 * the distribution grammar does not allow is refused, not repaired. */
#include <string.h>

#include "sealpod/image.h"

#define NAME_MAX_TOTAL 255

bool sp_image_digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static bool alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*,
 * separator := [_.] | "__" | "-"+ */
static bool component_valid(const char *s, size_t n)
{
	if (n == 0 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
		return false;
	for (size_t i = 0; i < n;) {
		if (alnum_lower(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		if (s[i] == '.') {
			j++;
		} else if (s[i] == '_') {
			j++;
			if (j < n && s[j] == '_')
				j++;
		} else if (s[i] == '-') {
			while (j < n && s[j] == '-')
				j++;
		} else {
			return false;
		}
		if (j >= n || !alnum_lower(s[j]))
			return false;
		i = j;
	}
	return true;
}

/* A registry host: DNS labels or an IPv4 address, an optional port. */
static bool registry_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	size_t host_end = n;
	const char *colon = memchr(s, ':', n);
	if (colon) {
		host_end = (size_t)(colon - s);
		size_t plen = n - host_end - 1;
		if (plen == 0 || plen > 5)
			return false;
		unsigned port = 0;
		for (size_t i = host_end + 1; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return false;
			port = port * 10 + (unsigned)(s[i] - '0');
		}
		if (port == 0 || port > 65535)
			return false;
	}
	if (host_end == 0)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < host_end; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || (c == '-' && label > 0);
		if (!ok || ++label > 63)
			return false;
	}
	return label > 0 && s[host_end - 1] != '-';
}

static bool tag_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_';
		if (!w && (i == 0 || (c != '.' && c != '-')))
			return false;
	}
	return true;
}

void sp_image_ref_free(sp_image_ref *r)
{
	if (!r)
		return;
	free(r->registry);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	free(r);
}

int sp_image_ref_parse(sp_image_ref **out, const char *s, sp_err **err)
{
	if (!s || !*s)
		return sp_error(err, SP_ERR_PARSE,
				"empty image reference; expected registry/repo[:tag][@sha256:hex]");
	if (strlen(s) > 1024)
		return sp_error(err, SP_ERR_PARSE, "image reference is too long");
	_cleanup_free_ char *copy = sp_xstrdup(s);
	sp_image_ref *r = sp_xzalloc(sizeof(*r));
	char *at = strchr(copy, '@');
	if (at) {
		*at = 0;
		if (!sp_image_digest_valid(at + 1)) {
			sp_image_ref_free(r);
			return sp_error(err, SP_ERR_PARSE,
					"image reference `%s`: the digest must be sha256: and 64 lowercase hex digits",
					s);
		}
		r->digest = sp_xstrdup(at + 1);
	}
	/* The tag follows the last ':' after the last '/'. */
	char *slash = strrchr(copy, '/');
	char *colon = strrchr(slash ? slash : copy, ':');
	if (colon) {
		*colon = 0;
		if (!tag_valid(colon + 1)) {
			sp_image_ref_free(r);
			return sp_error(err, SP_ERR_PARSE,
					"image reference `%s`: bad tag `%s` (letters, digits, _ . -, at most 128)",
					s, colon + 1);
		}
		r->tag = sp_xstrdup(colon + 1);
	}
	const char *name = copy;
	char *first_slash = strchr(copy, '/');
	if (first_slash) {
		size_t n = (size_t)(first_slash - copy);
		bool is_registry = memchr(copy, '.', n) || memchr(copy, ':', n) ||
				   (n == 9 && !memcmp(copy, "localhost", 9));
		for (size_t i = 0; i < n && !is_registry; i++)
			if (copy[i] >= 'A' && copy[i] <= 'Z')
				is_registry = true;
		if (is_registry) {
			if (!registry_valid(copy, n)) {
				sp_image_ref_free(r);
				return sp_error(err, SP_ERR_PARSE,
						"image reference `%s`: bad registry `%.*s`",
						s, (int)n, copy);
			}
			r->registry = sp_xstrndup(copy, n);
			name = first_slash + 1;
		}
	}
	if (!r->registry)
		r->registry = sp_xstrdup("docker.io");
	/* Docker's aliases of the hub. */
	if (!strcmp(r->registry, "index.docker.io") ||
	    !strcmp(r->registry, "registry-1.docker.io")) {
		free(r->registry);
		r->registry = sp_xstrdup("docker.io");
	}
	/* Validate each path component. */
	const char *p = name;
	size_t ncomp = 0;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (!component_valid(p, n)) {
			sp_image_ref_free(r);
			return sp_error(err, SP_ERR_PARSE,
					"image reference `%s`: bad repository component `%.*s` (lowercase letters, digits and . _ __ - separators)",
					s, (int)n, p);
		}
		ncomp++;
		if (!e)
			break;
		p = e + 1;
	}
	if (!strcmp(r->registry, "docker.io") && ncomp == 1)
		r->repository = sp_xasprintf("library/%s", name);
	else
		r->repository = sp_xstrdup(name);
	if (strlen(r->registry) + 1 + strlen(r->repository) > NAME_MAX_TOTAL) {
		sp_image_ref_free(r);
		return sp_error(err, SP_ERR_PARSE,
				"image reference `%s`: the name is longer than %d characters",
				s, NAME_MAX_TOTAL);
	}
	if (!r->tag && !r->digest)
		r->tag = sp_xstrdup("latest");
	*out = r;
	return 0;
}

char *sp_image_ref_name(const sp_image_ref *r)
{
	return sp_xasprintf("%s/%s", r->registry, r->repository);
}

char *sp_image_ref_str(const sp_image_ref *r)
{
	return sp_xasprintf("%s/%s%s%s%s%s", r->registry, r->repository,
			    r->tag ? ":" : "", r->tag ? r->tag : "",
			    r->digest ? "@" : "", r->digest ? r->digest : "");
}

/* Loopback names: "localhost", 127.0.0.0/8, ::1 (with an optional port). */
static bool loopback_host(const char *hp)
{
	if (!strncmp(hp, "[::1]", 5))
		return !hp[5] || hp[5] == ':';
	size_t n = strcspn(hp, ":");
	_cleanup_free_ char *h = sp_xstrndup(hp, n);
	if (!strcmp(h, "localhost"))
		return true;
	if (strncmp(h, "127.", 4))
		return false;
	int parts = 1;
	for (const char *p = h; *p; p++) {
		if (*p == '.')
			parts++;
		else if (*p < '0' || *p > '9')
			return false;
	}
	return parts == 4;
}

char *sp_image_registry_url(const sp_image_ref *ref)
{
	if (!strcmp(ref->registry, "docker.io"))
		return sp_xstrdup("https://registry-1.docker.io");
	if (loopback_host(ref->registry)) {
		/* The image module speaks plain http to 127.0.0.1 and ::1
		 * only: other loopback names map to 127.0.0.1. */
		const char *port = ref->registry[0] == '[' ? strchr(ref->registry, ']') : ref->registry;
		port = port ? strchr(port, ':') : NULL;
		if (ref->registry[0] == '[')
			return sp_xasprintf("http://[::1]%s", port ? port : "");
		return sp_xasprintf("http://127.0.0.1%s", port ? port : "");
	}
	return sp_xasprintf("https://%s", ref->registry);
}
