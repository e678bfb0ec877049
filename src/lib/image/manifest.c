/* SPDX-License-Identifier: Apache-2.0 */
/* Manifests, indexes and configs (OCI and Docker v2 schema 2). Every
 * descriptor's digest is checked for form here; its content is checked
 * against it when it is read. */
#include <string.h>

#include "image-internal.h"
#include "sealpod/json.h"

void img_desc_clear(struct img_desc *d)
{
	free(d->media_type);
	free(d->digest);
	memset(d, 0, sizeof(*d));
}

void img_manifest_clear(struct img_manifest *m)
{
	img_desc_clear(&m->config);
	for (size_t i = 0; i < m->nlayers; i++)
		img_desc_clear(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

static int parse_desc(struct img_desc *d, const json_t *j, const char *path,
		      sp_err **err)
{
	const char *mt = NULL, *dg = NULL;
	int64_t size = -1;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "%s: not a descriptor object", path);
	int r;
	if ((r = sp_json_get_string(j, "mediaType", true, &mt, path, err)) < 0 ||
	    (r = sp_json_get_string(j, "digest", true, &dg, path, err)) < 0 ||
	    (r = sp_json_get_int(j, "size", true, &size, path, err)) < 0)
		return r;
	if (!sp_image_digest_valid(dg))
		return sp_error(err, SP_ERR_PARSE,
				"%s.digest `%.80s` is not a sha256 digest (only sha256 is accepted)",
				path, dg);
	if (size < 0)
		return sp_error(err, SP_ERR_PARSE, "%s.size is negative", path);
	json_t *urls = json_object_get(j, "urls");
	if (urls && json_array_size(urls))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"%s has external urls (foreign layer); not supported",
				path);
	d->media_type = sp_xstrdup(mt);
	d->digest = sp_xstrdup(dg);
	d->size = size;
	return 0;
}

int img_manifest_kind(const uint8_t *data, size_t len, const char *hdr_type,
		      int *kind, sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	int r = sp_json_parse(&j, data, len, "image manifest", err);
	if (r < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "image manifest: not a JSON object");
	const char *mt = NULL;
	if ((r = sp_json_get_string(j, "mediaType", false, &mt, "manifest", err)) < 0)
		return r;
	/* The verified body says what it is; a header that disagrees with
	 * it is refused rather than trusted. */
	if (mt && hdr_type && *hdr_type && strcmp(mt, hdr_type) &&
	    strcmp(hdr_type, "application/json") &&
	    strcmp(hdr_type, "application/octet-stream"))
		return sp_error(err, SP_ERR_PROTOCOL,
				"image manifest: Content-Type `%s` differs from its mediaType `%s`",
				hdr_type, mt);
	if (!mt)
		mt = json_object_get(j, "manifests") ? IMG_MT_OCI_INDEX
		   : json_object_get(j, "layers")    ? IMG_MT_OCI_MANIFEST
						     : "";
	if (!strcmp(mt, IMG_MT_OCI_MANIFEST) || !strcmp(mt, IMG_MT_DOCKER_MANIFEST))
		*kind = IMG_KIND_MANIFEST;
	else if (!strcmp(mt, IMG_MT_OCI_INDEX) || !strcmp(mt, IMG_MT_DOCKER_LIST))
		*kind = IMG_KIND_INDEX;
	else
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"image manifest: media type `%.100s` is not supported (OCI or Docker v2 schema 2 only)",
				mt);
	int64_t sv = 0;
	if ((r = sp_json_get_int(j, "schemaVersion", true, &sv, "manifest", err)) < 0)
		return r;
	if (sv != 2)
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"image manifest: schemaVersion %lld is not supported (2 only)",
				(long long)sv);
	return 0;
}

int img_manifest_parse(struct img_manifest *m, const uint8_t *data, size_t len,
		       sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	memset(m, 0, sizeof(*m));
	int r = sp_json_parse(&j, data, len, "image manifest", err);
	if (r < 0)
		return r;
	json_t *cfg = NULL, *layers = NULL;
	if ((r = sp_json_get_object(j, "config", true, &cfg, "manifest", err)) < 0 ||
	    (r = sp_json_get_array(j, "layers", true, &layers, "manifest", err)) < 0)
		return r;
	if ((r = parse_desc(&m->config, cfg, "manifest.config", err)) < 0)
		goto fail;
	if (strcmp(m->config.media_type, IMG_MT_OCI_CONFIG) &&
	    strcmp(m->config.media_type, IMG_MT_DOCKER_CONFIG)) {
		r = sp_error(err, SP_ERR_UNSUPPORTED,
			     "manifest.config: media type `%.100s` is not an image config",
			     m->config.media_type);
		goto fail;
	}
	if (m->config.size > IMG_MAX_JSON) {
		r = sp_error(err, SP_ERR_LIMIT, "manifest.config: too large");
		goto fail;
	}
	size_t n = json_array_size(layers);
	if (n > IMG_MAX_LAYERS) {
		r = sp_error(err, SP_ERR_LIMIT, "manifest: %zu layers (limit %d)",
			     n, IMG_MAX_LAYERS);
		goto fail;
	}
	m->layers = sp_xcalloc(n ? n : 1, sizeof(*m->layers));
	for (size_t i = 0; i < n; i++) {
		char path[48];
		snprintf(path, sizeof(path), "manifest.layers[%zu]", i);
		if ((r = parse_desc(&m->layers[i], json_array_get(layers, i), path, err)) < 0)
			goto fail;
		m->nlayers++;
		const char *algo;
		if ((r = img_layer_compression(m->layers[i].media_type, &algo, err)) < 0)
			goto fail;
	}
	return 0;
fail:
	img_manifest_clear(m);
	return r;
}

int img_layer_compression(const char *mt, const char **algo, sp_err **err)
{
	static const struct {
		const char *mt, *algo;
	} types[] = {
		{"application/vnd.oci.image.layer.v1.tar", NULL},
		{"application/vnd.oci.image.layer.v1.tar+gzip", "gzip"},
		{"application/vnd.oci.image.layer.v1.tar+zstd", "zstd"},
		{"application/vnd.docker.image.rootfs.diff.tar", NULL},
		{"application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"},
		{"application/vnd.docker.image.rootfs.diff.tar.zstd", "zstd"},
	};
	for (size_t i = 0; i < SP_ARRAY_LEN(types); i++)
		if (!strcmp(mt, types[i].mt)) {
			*algo = types[i].algo;
			return 0;
		}
	return sp_error(err, SP_ERR_UNSUPPORTED,
			"layer media type `%.100s` is not supported (tar, tar+gzip, tar+zstd)",
			mt);
}

int img_index_select(struct img_desc *out, const uint8_t *data, size_t len,
		     sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	int r = sp_json_parse(&j, data, len, "image index", err);
	if (r < 0)
		return r;
	json_t *ms = NULL;
	if ((r = sp_json_get_array(j, "manifests", true, &ms, "index", err)) < 0)
		return r;
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m) {
		json_t *p = json_object_get(m, "platform");
		const char *os = json_string_value(json_object_get(p, "os"));
		const char *arch = json_string_value(json_object_get(p, "architecture"));
		if (!os || !arch || strcmp(os, "linux") || strcmp(arch, "amd64"))
			continue;
		char path[48];
		snprintf(path, sizeof(path), "index.manifests[%zu]", i);
		if ((r = parse_desc(out, m, path, err)) < 0)
			return r;
		if (strcmp(out->media_type, IMG_MT_OCI_MANIFEST) &&
		    strcmp(out->media_type, IMG_MT_DOCKER_MANIFEST)) {
			img_desc_clear(out);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"%s: media type is not an image manifest", path);
		}
		if (out->size > IMG_MAX_JSON) {
			img_desc_clear(out);
			return sp_error(err, SP_ERR_LIMIT, "%s: manifest too large", path);
		}
		return 0;
	}
	return sp_error(err, SP_ERR_NOT_FOUND,
			"image index has no linux/amd64 manifest; the image does not run in this guest");
}

int img_config_diff_ids(char ***out, const uint8_t *data, size_t len,
			sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	int r = sp_json_parse(&j, data, len, "image config", err);
	if (r < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "image config: not a JSON object");
	const char *os = NULL, *arch = NULL;
	if ((r = sp_json_get_string(j, "os", true, &os, "config", err)) < 0 ||
	    (r = sp_json_get_string(j, "architecture", true, &arch, "config", err)) < 0)
		return r;
	if (strcmp(os, "linux") || strcmp(arch, "amd64"))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"image config: platform %.20s/%.20s does not run in this guest (linux/amd64)",
				os, arch);
	json_t *rootfs = NULL;
	const char *type = NULL;
	if ((r = sp_json_get_object(j, "rootfs", true, &rootfs, "config", err)) < 0 ||
	    (r = sp_json_get_string(rootfs, "type", true, &type, "config.rootfs", err)) < 0)
		return r;
	if (strcmp(type, "layers"))
		return sp_error(err, SP_ERR_PARSE, "image config: rootfs.type is not `layers`");
	char **ids = NULL;
	if ((r = sp_json_get_strv(rootfs, "diff_ids", true, &ids, "config.rootfs", err)) < 0)
		return r;
	size_t n = 0;
	for (; ids[n]; n++)
		if (!sp_image_digest_valid(ids[n]) || n >= IMG_MAX_LAYERS) {
			sp_strv_freep(&ids);
			return sp_error(err, SP_ERR_PARSE,
					"image config: rootfs.diff_ids[%zu] is not a sha256 digest (or too many)",
					n);
		}
	*out = ids;
	return 0;
}

char *img_docker_archive_manifest(const char *config_digest, int64_t config_size,
				  char *const *diff_ids, const int64_t *sizes,
				  size_t n)
{
	_cleanup_json_ json_t *j = json_object();
	json_object_set_new(j, "schemaVersion", json_integer(2));
	json_object_set_new(j, "mediaType", json_string(IMG_MT_OCI_MANIFEST));
	json_object_set_new(j, "config",
			    json_pack("{s:s,s:s,s:I}", "mediaType", IMG_MT_OCI_CONFIG,
				      "digest", config_digest, "size",
				      (json_int_t)config_size));
	json_t *layers = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(layers,
				      json_pack("{s:s,s:s,s:I}", "mediaType",
						"application/vnd.oci.image.layer.v1.tar",
						"digest", diff_ids[i], "size",
						(json_int_t)sizes[i]));
	json_object_set_new(j, "layers", layers);
	return sp_json_dump_canonical(j);
}

/* ---- config for policies and containers ---- */

void sp_image_config_free(sp_image_config *c)
{
	if (!c)
		return;
	sp_strv_freep(&c->entrypoint);
	sp_strv_freep(&c->cmd);
	sp_strv_freep(&c->env);
	free(c->working_dir);
	free(c->user);
	free(c->architecture);
	free(c->os);
	free(c);
}

int sp_image_config_get(sp_image_config **out, const char *config_json,
			sp_err **err)
{
	_cleanup_json_ json_t *j = NULL;
	int r = sp_json_parse(&j, config_json, strlen(config_json), "image config", err);
	if (r < 0)
		return r;
	if (!json_is_object(j))
		return sp_error(err, SP_ERR_PARSE, "image config: not a JSON object");
	sp_image_config *c = sp_xzalloc(sizeof(*c));
	const char *s;
	json_t *cfg = json_object_get(j, "config");
	if (cfg && !json_is_null(cfg)) {
		if (!json_is_object(cfg)) {
			sp_image_config_free(c);
			return sp_error(err, SP_ERR_PARSE, "image config: `config` is not an object");
		}
		/* Null arrays mean "unset" in Docker's configs. */
		static const char *const keys[] = {"Entrypoint", "Cmd", "Env"};
		char ***dst[] = {&c->entrypoint, &c->cmd, &c->env};
		for (size_t i = 0; i < 3; i++) {
			json_t *a = json_object_get(cfg, keys[i]);
			if (!a || json_is_null(a))
				continue;
			if ((r = sp_json_get_strv(cfg, keys[i], false, dst[i], "config.config", err)) < 0) {
				sp_image_config_free(c);
				return r;
			}
		}
		const char *wd = NULL, *user = NULL;
		if ((r = sp_json_get_string(cfg, "WorkingDir", false, &wd, "config.config", err)) < 0 ||
		    (r = sp_json_get_string(cfg, "User", false, &user, "config.config", err)) < 0) {
			sp_image_config_free(c);
			return r;
		}
		if (wd && *wd)
			c->working_dir = sp_xstrdup(wd);
		if (user && *user)
			c->user = sp_xstrdup(user);
	}
	s = json_string_value(json_object_get(j, "architecture"));
	c->architecture = s ? sp_xstrdup(s) : NULL;
	s = json_string_value(json_object_get(j, "os"));
	c->os = s ? sp_xstrdup(s) : NULL;
	*out = c;
	return 0;
}
