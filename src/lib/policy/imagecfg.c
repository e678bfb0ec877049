/* SPDX-License-Identifier: Apache-2.0 */
/* An image's config for the generator: from an OCI image layout or a
 * registry (distribution API). Every blob is checked against its digest;
 * a tag resolves to the digest of the manifest (or index) it names. */
#include <curl/curl.h>
#include <string.h>

#include "internal.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define MAX_BLOB (16u << 20)
#define MT_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DLIST "application/vnd.docker.distribution.manifest.list.v2+json"

void sp_image_config_clear(sp_image_config *c)
{
	free(c->reference);
	sp_strv_freep(&c->entrypoint);
	sp_strv_freep(&c->cmd);
	sp_strv_freep(&c->env);
	free(c->working_dir);
	free(c->user);
	memset(c, 0, sizeof(*c));
}

/* A parsed reference: registry (may be NULL), repository, tag, digest. */
struct ref {
	char *registry, *repo, *tag, *digest, *name; /* name: as written, without tag/digest */
};

static void ref_clear(struct ref *r)
{
	free(r->registry);
	free(r->repo);
	free(r->tag);
	free(r->digest);
	free(r->name);
}

static int ref_parse(struct ref *r, const char *s, sp_err **err)
{
	memset(r, 0, sizeof(*r));
	_cleanup_free_ char *dup = sp_xstrdup(s);
	char *at = strchr(dup, '@');
	if (at) {
		*at = 0;
		r->digest = sp_xstrdup(at + 1);
		if (strncmp(r->digest, "sha256:", 7) || strlen(r->digest) != 71 ||
		    strspn(r->digest + 7, "0123456789abcdef") != 64)
			return sp_error(err, SP_ERR_PARSE, "image %s: digest must be sha256:<64 hex>", s);
	}
	char *slash = strrchr(dup, '/');
	char *colon = strrchr(dup, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = 0;
		r->tag = sp_xstrdup(colon + 1);
	}
	if (!dup[0])
		return sp_error(err, SP_ERR_PARSE, "image %s: no name", s);
	r->name = sp_xstrdup(dup);
	char *first = strchr(dup, '/');
	if (first && (memchr(dup, '.', (size_t)(first - dup)) || memchr(dup, ':', (size_t)(first - dup)) ||
		      !strncmp(dup, "localhost/", 10))) {
		*first = 0;
		r->registry = sp_xstrdup(dup);
		r->repo = sp_xstrdup(first + 1);
	} else {
		r->registry = sp_xstrdup("docker.io");
		r->repo = strchr(dup, '/') ? sp_xstrdup(dup) : sp_xasprintf("library/%s", dup);
	}
	if (!r->tag && !r->digest)
		r->tag = sp_xstrdup("latest");
	return 0;
}

static int check_digest(const uint8_t *data, size_t len, const char *want, const char *what, sp_err **err)
{
	_cleanup_free_ char *got = sp_sha256_digest_str(data, len);
	if (strcmp(got, want))
		return sp_error(err, SP_ERR_APPRAISAL, "%s: content has digest %s, expected %s", what, got, want);
	return 0;
}

static int strv_from(const json_t *cfg, const char *key, char ***out, sp_err **err)
{
	json_t *v = json_object_get(cfg, key);
	if (!v || json_is_null(v))
		return 0;
	return sp_json_get_strv(cfg, key, false, out, "image config", err);
}

static int parse_config(const uint8_t *data, size_t len, sp_image_config *out, sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_parse(&j, data, len, "image config", err) < 0)
		return (*err)->code;
	json_t *cfg = json_object_get(j, "config");
	if (!json_is_object(cfg))
		return 0; /* an image without config runs only with command set */
	const char *s = NULL;
	if (strv_from(cfg, "Entrypoint", &out->entrypoint, err) < 0 ||
	    strv_from(cfg, "Cmd", &out->cmd, err) < 0 || strv_from(cfg, "Env", &out->env, err) < 0 ||
	    sp_json_get_string(cfg, "WorkingDir", false, &s, "image config", err) < 0)
		return (*err)->code;
	if (s)
		out->working_dir = sp_xstrdup(s);
	s = NULL;
	if (sp_json_get_string(cfg, "User", false, &s, "image config", err) < 0)
		return (*err)->code;
	if (s)
		out->user = sp_xstrdup(s);
	return 0;
}

/* From an index, the linux/amd64 manifest (or the only one). */
static int pick_platform(const json_t *index, const json_t **out, sp_err **err)
{
	json_t *ms = json_object_get(index, "manifests");
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m) {
		json_t *p = json_object_get(m, "platform");
		const char *os = json_string_value(json_object_get(p, "os"));
		const char *arch = json_string_value(json_object_get(p, "architecture"));
		if (os && arch && !strcmp(os, "linux") && !strcmp(arch, "amd64")) {
			*out = m;
			return 0;
		}
	}
	if (json_array_size(ms) == 1) {
		*out = json_array_get(ms, 0);
		return 0;
	}
	return sp_error(err, SP_ERR_NOT_FOUND, "the image index has no linux/amd64 manifest");
}

/* ---- OCI layout ---- */

static int layout_blob(const char *dir, const char *digest, uint8_t **out, size_t *len, sp_err **err)
{
	if (strncmp(digest, "sha256:", 7) || strlen(digest) != 71 || strspn(digest + 7, "0123456789abcdef") != 64)
		return sp_error(err, SP_ERR_PARSE, "layout %s: unsupported digest %s", dir, digest);
	_cleanup_free_ char *path = sp_xasprintf("%s/blobs/sha256/%s", dir, digest + 7);
	if (sp_read_file(out, len, path, MAX_BLOB, err) < 0)
		return (*err)->code;
	if (check_digest(*out, *len, digest, path, err) < 0) {
		free(*out);
		*out = NULL;
		return (*err)->code;
	}
	return 0;
}

static int layout_manifest(const char *dir, const json_t *desc, sp_image_config *out, int depth, sp_err **err)
{
	const char *digest = json_string_value(json_object_get(desc, "digest"));
	if (!digest || depth > 2)
		return sp_error(err, SP_ERR_PARSE, "layout %s: a descriptor without digest", dir);
	_cleanup_free_ uint8_t *data = NULL;
	size_t len;
	_cleanup_json_ json_t *m = NULL;
	if (layout_blob(dir, digest, &data, &len, err) < 0 || sp_json_parse(&m, data, len, digest, err) < 0)
		return (*err)->code;
	json_t *sz = json_object_get(desc, "size");
	if (json_is_integer(sz) && (size_t)json_integer_value(sz) != len)
		return sp_error(err, SP_ERR_APPRAISAL, "layout %s: %s has %zu bytes, descriptor says %lld", dir,
				digest, len, (long long)json_integer_value(sz));
	const char *mt = json_string_value(json_object_get(m, "mediaType"));
	if ((mt && (!strcmp(mt, MT_INDEX) || !strcmp(mt, MT_DLIST))) || json_object_get(m, "manifests")) {
		const json_t *sub;
		if (pick_platform(m, &sub, err) < 0)
			return (*err)->code;
		return layout_manifest(dir, sub, out, depth + 1, err);
	}
	const char *cd = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
	if (!cd)
		return sp_error(err, SP_ERR_PARSE, "layout %s: manifest %s has no config", dir, digest);
	_cleanup_free_ uint8_t *cfg = NULL;
	size_t clen;
	if (layout_blob(dir, cd, &cfg, &clen, err) < 0)
		return (*err)->code;
	return parse_config(cfg, clen, out, err);
}

int sp_image_config_from_layout(const char *dir, const char *refstr, sp_image_config *out, sp_err **err)
{
	memset(out, 0, sizeof(*out));
	struct ref r;
	_cleanup_free_ char *idxpath = sp_xasprintf("%s/index.json", dir);
	_cleanup_json_ json_t *idx = NULL;
	if (ref_parse(&r, refstr, err) < 0) {
		ref_clear(&r);
		return (*err)->code;
	}
	int rc = 0;
	if (sp_json_load_file(&idx, idxpath, MAX_BLOB, err) < 0) {
		ref_clear(&r);
		return (*err)->code;
	}
	/* Candidate names for the ref.name annotation, most specific first. */
	_cleanup_free_ char *full = r.tag ? sp_xasprintf("%s:%s", r.name, r.tag) : NULL;
	const char *short_repo = !strncmp(r.repo, "library/", 8) ? r.repo + 8 : r.repo;
	_cleanup_free_ char *short_ref = r.tag ? sp_xasprintf("%s:%s", short_repo, r.tag) : NULL;
	const json_t *found = NULL;
	size_t i;
	json_t *m;
	for (int pass = 0; pass < 4 && !found; pass++) {
		json_array_foreach(json_object_get(idx, "manifests"), i, m) {
			const char *d = json_string_value(json_object_get(m, "digest"));
			const char *name = json_string_value(
				json_object_get(json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
			bool hit = false;
			if (pass == 0)
				hit = r.digest && d && !strcmp(d, r.digest);
			else if (!r.digest && name)
				hit = (pass == 1 && full && !strcmp(name, full)) ||
				      (pass == 2 && short_ref && !strcmp(name, short_ref)) ||
				      (pass == 3 && r.tag && !strcmp(name, r.tag));
			if (hit) {
				found = m;
				break;
			}
		}
	}
	if (!found) {
		rc = sp_error(err, SP_ERR_NOT_FOUND,
			      "image %s is not in the layout %s (looked for its digest, or a ref.name of %s, %s or %s)",
			      refstr, dir, full ? full : "-", short_ref ? short_ref : "-", r.tag ? r.tag : "-");
	} else if ((rc = layout_manifest(dir, found, out, 0, err)) == 0) {
		out->reference = sp_xasprintf("%s@%s", r.name, json_string_value(json_object_get(found, "digest")));
	}
	ref_clear(&r);
	if (rc < 0)
		sp_image_config_clear(out);
	return rc;
}

/* ---- registry ---- */

struct resp {
	sp_buf body;
	bool too_big;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	if (r->body.len + sz * n > MAX_BLOB) {
		r->too_big = true;
		return 0;
	}
	sp_buf_put(&r->body, p, sz * n);
	return sz * n;
}

static bool local_host(const char *host)
{
	return !strncmp(host, "localhost", 9) && (!host[9] || host[9] == ':' || host[9] == '/') ? true
	       : !strncmp(host, "127.0.0.1", 9) && (!host[9] || host[9] == ':' || host[9] == '/');
}

static int http_get(const char *url, const char *accept, struct resp *out, sp_err **err)
{
	CURL *c = curl_easy_init();
	if (!c)
		sp_oom();
	struct curl_slist *h = NULL;
	if (accept)
		h = curl_slist_append(h, accept);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* Redirects (to blob storage) may only go to HTTPS, or stay local. */
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, local_host(url + (strncmp(url, "http://", 7) ? 8 : 7)) ? "http,https" : "https");
	CURLcode cr = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	if (out->too_big)
		return sp_error(err, SP_ERR_LIMIT, "GET %s: more than %u bytes", url, MAX_BLOB);
	if (cr != CURLE_OK)
		return sp_error(err, SP_ERR_SYSTEM, "GET %s: %s", url, curl_easy_strerror(cr));
	if (code == 401)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"GET %s: the registry wants authentication, which the generator does not do; "
				"copy the image into an OCI layout (skopeo copy) and use --image-dir", url);
	if (code != 200)
		return sp_error(err, SP_ERR_NOT_FOUND, "GET %s: HTTP %ld", url, code);
	return 0;
}

static const char *accept_manifests =
	"Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
	"application/vnd.docker.distribution.manifest.list.v2+json, "
	"application/vnd.docker.distribution.manifest.v2+json";

static int reg_manifest(const char *base, const char *repo, const char *ref, const char *want,
			char **digest_out, sp_image_config *out, int depth, sp_err **err)
{
	_cleanup_free_ char *url = sp_xasprintf("%s/v2/%s/manifests/%s", base, repo, ref);
	struct resp r = {SP_BUF_INIT, false};
	_cleanup_json_ json_t *m = NULL;
	int rc = http_get(url, accept_manifests, &r, err);
	if (rc == 0 && want)
		rc = check_digest(r.body.data, r.body.len, want, url, err);
	if (rc == 0)
		rc = sp_json_parse(&m, r.body.data, r.body.len, url, err);
	if (rc == 0 && digest_out)
		*digest_out = sp_sha256_digest_str(r.body.data, r.body.len);
	sp_buf_free(&r.body);
	if (rc < 0)
		return rc;
	if (json_object_get(m, "manifests")) {
		const json_t *sub;
		const char *d;
		if (depth > 1 || pick_platform(m, &sub, err) < 0)
			return depth > 1 ? sp_error(err, SP_ERR_PARSE, "%s: nested indexes", url) : (*err)->code;
		if (!(d = json_string_value(json_object_get(sub, "digest"))))
			return sp_error(err, SP_ERR_PARSE, "%s: manifest without digest", url);
		return reg_manifest(base, repo, d, d, NULL, out, depth + 1, err);
	}
	const char *cd = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
	if (!cd)
		return sp_error(err, SP_ERR_PARSE, "%s: manifest has no config", url);
	_cleanup_free_ char *curl_cfg = sp_xasprintf("%s/v2/%s/blobs/%s", base, repo, cd);
	struct resp b = {SP_BUF_INIT, false};
	rc = http_get(curl_cfg, NULL, &b, err);
	if (rc == 0)
		rc = check_digest(b.body.data, b.body.len, cd, curl_cfg, err);
	if (rc == 0)
		rc = parse_config(b.body.data, b.body.len, out, err);
	sp_buf_free(&b.body);
	return rc;
}

int sp_image_config_from_registry(const char *registry, const char *refstr, sp_image_config *out,
				  sp_err **err)
{
	memset(out, 0, sizeof(*out));
	struct ref r;
	if (ref_parse(&r, refstr, err) < 0) {
		ref_clear(&r);
		return (*err)->code;
	}
	_cleanup_free_ char *base = NULL;
	if (registry) {
		size_t n = strlen(registry);
		while (n && registry[n - 1] == '/')
			n--;
		base = sp_xstrndup(registry, n);
	} else if (local_host(r.registry)) {
		base = sp_xasprintf("http://%s", r.registry);
	} else {
		base = sp_xasprintf("https://%s", !strcmp(r.registry, "docker.io") ? "registry-1.docker.io" : r.registry);
	}
	int rc = 0;
	if (!strncmp(base, "http://", 7) && !local_host(base + 7))
		rc = sp_error(err, SP_ERR_DENIED, "registry %s: plain HTTP is allowed only for localhost and 127.0.0.1",
			      base);
	else if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
		rc = sp_error(err, SP_ERR_INVALID, "registry %s: expected an http:// or https:// URL", base);
	char *digest = NULL;
	if (rc == 0)
		rc = reg_manifest(base, r.repo, r.digest ? r.digest : r.tag, r.digest, &digest, out, 0, err);
	if (rc == 0)
		out->reference = sp_xasprintf("%s@%s", r.name, digest);
	else
		sp_image_config_clear(out);
	free(digest);
	ref_clear(&r);
	return rc < 0 ? (*err)->code : 0;
}
