/* SPDX-License-Identifier: Apache-2.0 */
/* Host side: importing docker-archives and OCI layouts into a local OCI
 * layout store, and packing a subset of a store into one tar for the
 * guest's read-only image disk. Every blob is verified as it is copied. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "image-internal.h"
#include "sealpod/bytes.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"

struct blobset {
	char **digests;
	char **types;
	size_t n;
};

static bool blobset_has(const struct blobset *b, const char *digest)
{
	for (size_t i = 0; i < b->n; i++)
		if (!strcmp(b->digests[i], digest))
			return true;
	return false;
}

static void blobset_add(struct blobset *b, const char *digest)
{
	if (blobset_has(b, digest))
		return;
	b->digests = sp_xrealloc(b->digests, (b->n + 2) * sizeof(char *));
	b->digests[b->n++] = sp_xstrdup(digest);
	b->digests[b->n] = NULL;
}

/* Collects the blobs of the image at digest: manifest or index (with its
 * linux/amd64 manifest), config, layers. *media_type: the top object's. */
static int collect(sp_image_store *s, const sp_image_ref *ref, const char *digest,
		   struct blobset *out, char **media_type, int64_t *size,
		   sp_err **err)
{
	sp_image_ref r2 = *ref;
	r2.digest = (char *)digest;
	_cleanup_free_ uint8_t *data = NULL;
	_cleanup_free_ char *mt = NULL;
	size_t len;
	int r = s->ops->get_manifest(s, &r2, &data, &len, &mt, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *got = sp_sha256_digest_str(data, len);
	if (strcmp(got, digest))
		return sp_error(err, SP_ERR_APPRAISAL,
				"image %s: manifest content has digest %s; the source is corrupt",
				digest, got);
	int kind;
	if ((r = img_manifest_kind(data, len, mt, &kind, err)) < 0)
		return r;
	_cleanup_json_ json_t *j = NULL;
	if (sp_json_parse(&j, data, len, "manifest", NULL) == 0) {
		const char *m = json_string_value(json_object_get(j, "mediaType"));
		*media_type = sp_xstrdup(m ? m : kind == IMG_KIND_INDEX ? IMG_MT_OCI_INDEX
									: IMG_MT_OCI_MANIFEST);
	}
	*size = (int64_t)len;
	blobset_add(out, digest);
	if (kind == IMG_KIND_INDEX) {
		struct img_desc d = {0};
		if ((r = img_index_select(&d, data, len, err)) < 0)
			return r;
		_cleanup_free_ char *sub_mt = NULL;
		int64_t sub_size;
		r = collect(s, ref, d.digest, out, &sub_mt, &sub_size, err);
		img_desc_clear(&d);
		return r;
	}
	struct img_manifest m;
	if ((r = img_manifest_parse(&m, data, len, err)) < 0)
		return r;
	blobset_add(out, m.config.digest);
	for (size_t i = 0; i < m.nlayers; i++)
		blobset_add(out, m.layers[i].digest);
	img_manifest_clear(&m);
	return 0;
}

/* Copies a blob, verified, to fd (tar) or into dir/blobs/sha256. */
static int copy_blob(sp_image_store *s, const sp_image_ref *ref, const char *digest,
		     int out_fd, const char *store_dir, sp_err **err)
{
	_cleanup_free_ char *final = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	if (store_dir) {
		final = sp_xasprintf("%s/blobs/sha256/%s", store_dir, digest + 7);
		if (access(final, F_OK) == 0)
			return 0;
		tmp = sp_xasprintf("%s.tmp-XXXXXX", final);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return sp_error_sys(err, errno, "create `%s`", tmp);
		out_fd = fd;
	}
	img_stream *raw = NULL;
	sp_image_ref r2 = *ref;
	r2.digest = NULL;
	int r = s->ops->open_blob(s, &r2, digest, -1, &raw, err);
	if (r == 0) {
		img_stream *v = img_verify_stream(raw, digest, -1, "blob");
		static uint8_t buf[1 << 16];
		ssize_t n;
		while ((n = v->read(v, buf, sizeof(buf), err)) > 0)
			if (sp_write_all(out_fd, buf, (size_t)n) < 0) {
				n = sp_error_sys(err, errno, "write blob %s", digest);
				break;
			}
		img_stream_close(v);
		r = n < 0 ? (int)n : 0;
	}
	if (r == 0 && store_dir && (fchmod(fd, 0644) < 0 || rename(tmp, final) < 0))
		r = sp_error_sys(err, errno, "store blob %s", digest);
	if (r < 0 && tmp)
		unlink(tmp);
	return r;
}

static int64_t blob_size(sp_image_store *s, const sp_image_ref *ref, const char *digest,
			 sp_err **err)
{
	img_stream *raw = NULL;
	if (s->ops->open_blob(s, ref, digest, -1, &raw, err) < 0)
		return -1;
	_cleanup_stream_ img_stream *v = raw;
	int64_t n = 0;
	static uint8_t buf[1 << 16];
	ssize_t k;
	while ((k = v->read(v, buf, sizeof(buf), err)) > 0)
		n += k;
	return k < 0 ? -1 : n;
}

static int load_index(json_t **out, const char *store_dir, sp_err **err)
{
	_cleanup_free_ char *p = sp_xasprintf("%s/index.json", store_dir);
	if (access(p, F_OK) != 0) {
		*out = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType",
				 IMG_MT_OCI_INDEX, "manifests");
		return 0;
	}
	return sp_json_load_file(out, p, IMG_MAX_JSON, err);
}

int sp_image_import(const char *source, const char *store_dir, const char *tag,
		    char **digests_out, sp_err **err)
{
	struct stat st;
	if (stat(source, &st) < 0)
		return sp_error_sys(err, errno, "image import: `%s`", source);
	_cleanup_image_store_ sp_image_store *s = NULL;
	int r = S_ISDIR(st.st_mode) ? img_layout_open_dir(&s, source, err)
				    : img_layout_open_tar(&s, source, err);
	if (r < 0)
		return r;
	_cleanup_strv_ char **names = NULL;
	_cleanup_strv_ char **digests = NULL;
	if ((r = img_layout_list(s, &names, &digests, err)) < 0)
		return r;
	if (!names[0])
		return sp_error(err, SP_ERR_NOT_FOUND, "image import: `%s` holds no image", source);
	for (size_t i = 1; tag && names[i]; i++)
		if (strcmp(digests[i], digests[0]))
			return sp_error(err, SP_ERR_INVALID,
					"image import: `%s` holds several images; --tag needs exactly one",
					source);
	_cleanup_free_ char *blobdir = sp_xasprintf("%s/blobs/sha256", store_dir);
	if ((r = sp_mkdir_p(blobdir, 0755, err)) < 0)
		return r;
	_cleanup_free_ char *lay = sp_xasprintf("%s/oci-layout", store_dir);
	const char *lay_json = "{\"imageLayoutVersion\":\"1.0.0\"}";
	if (access(lay, F_OK) != 0 &&
	    (r = sp_write_file_atomic(lay, lay_json, strlen(lay_json), 0644, err)) < 0)
		return r;
	_cleanup_json_ json_t *index = NULL;
	if ((r = load_index(&index, store_dir, err)) < 0)
		return r;
	json_t *ms = json_object_get(index, "manifests");
	if (!json_is_array(ms))
		return sp_error(err, SP_ERR_PARSE, "image store %s: index.json has no manifests",
				store_dir);
	sp_buf report = SP_BUF_INIT;
	for (size_t i = 0; names[i]; i++) {
		const char *nm = tag ? tag : names[i];
		if (tag && i > 0)
			break;
		if (!*nm || (!strchr(nm, '/') && !strchr(nm, ':'))) {
			sp_buf_free(&report);
			return sp_error(err, SP_ERR_INVALID,
					"image import: the image in `%s` has no full name (`%s`); give one with --tag NAME",
					source, nm);
		}
		_cleanup_image_ref_ sp_image_ref *ref = NULL;
		if ((r = sp_image_ref_parse(&ref, nm, err)) < 0) {
			sp_buf_free(&report);
			return r;
		}
		free(ref->digest);
		ref->digest = NULL;
		struct blobset bs = {0};
		_cleanup_free_ char *mt = NULL;
		int64_t size = 0;
		r = collect(s, ref, digests[i], &bs, &mt, &size, err);
		for (size_t k = 0; r == 0 && k < bs.n; k++)
			r = copy_blob(s, ref, bs.digests[k], -1, store_dir, err);
		/* A docker-archive's manifest is synthesised: store it too. */
		if (r == 0) {
			_cleanup_free_ char *mp = sp_xasprintf("%s/blobs/sha256/%s", store_dir,
							       digests[i] + 7);
			if (access(mp, F_OK) != 0) {
				sp_image_ref r2 = *ref;
				r2.digest = digests[i];
				_cleanup_free_ uint8_t *data = NULL;
				_cleanup_free_ char *hmt = NULL;
				size_t len;
				r = s->ops->get_manifest(s, &r2, &data, &len, &hmt, err);
				if (r == 0)
					r = sp_write_file_atomic(mp, data, len, 0644, err);
			}
		}
		sp_strv_freep(&bs.digests);
		if (r < 0) {
			sp_buf_free(&report);
			return r;
		}
		_cleanup_free_ char *full = sp_image_ref_str(ref);
		/* Replace an earlier image of the same name. */
		for (size_t k = json_array_size(ms); k-- > 0;) {
			json_t *a = json_object_get(json_array_get(ms, k), "annotations");
			const char *cn = json_string_value(json_object_get(a, "io.containerd.image.name"));
			if (cn && !strcmp(cn, full))
				json_array_remove(ms, k);
		}
		json_array_append_new(ms, json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "mediaType", mt,
						    "digest", digests[i], "size", (json_int_t)size,
						    "annotations", "io.containerd.image.name", full,
						    "org.opencontainers.image.ref.name",
						    ref->tag ? ref->tag : "latest"));
		sp_buf_printf(&report, "%s %s\n", full, digests[i]);
	}
	_cleanup_free_ char *idx = sp_json_dump_pretty(index);
	_cleanup_free_ char *ip = sp_xasprintf("%s/index.json", store_dir);
	if ((r = sp_write_file_atomic(ip, idx, strlen(idx), 0644, err)) < 0) {
		sp_buf_free(&report);
		return r;
	}
	sp_buf_terminate(&report);
	if (digests_out)
		*digests_out = (char *)sp_buf_steal(&report, NULL);
	else
		sp_buf_free(&report);
	return 0;
}

static int tar_put_mem(int fd, const char *name, const void *data, size_t len,
		       sp_err **err)
{
	int r = img_tar_write_header(fd, name, '0', len, 0644, err);
	if (r == 0 && sp_write_all(fd, data, len) < 0)
		r = sp_error_sys(err, errno, "write `%s`", name);
	if (r == 0)
		r = img_tar_write_pad(fd, len, err);
	return r;
}

/* A compressed layer is also packed uncompressed, under its diff_id,
 * unless it unpacks to more than this (the disk grows by the whole
 * size). The guest then reads those bytes and skips inflating. */
#define PLAIN_LAYER_MAX (256ull << 20)

/* Appends layer d, decompressed, to the tar at fd as blobs/sha256/<diff_id
 * hex>. The size goes into the header once known; a layer over
 * PLAIN_LAYER_MAX is taken back out (*added false). */
static int pack_plain_layer(sp_image_store *s, int fd, const struct img_desc *d,
			    const char *algo, const char *diff_id, bool *added,
			    sp_err **err)
{
	*added = false;
	off_t at = lseek(fd, 0, SEEK_CUR);
	_cleanup_free_ char *name = sp_xasprintf("blobs/sha256/%s", diff_id + 7);
	if (at < 0)
		return sp_error_sys(err, errno, "seek");
	int r = img_tar_write_header(fd, name, '0', 0, 0644, err);
	if (r < 0)
		return r;
	sp_image_ref none = {0};
	img_stream *raw = NULL;
	if ((r = s->ops->open_blob(s, &none, d->digest, d->size, &raw, err)) < 0)
		return r;
	img_stream *comp = img_verify_stream(raw, d->digest, d->size, "layer");
	_cleanup_stream_ img_stream *v = img_verify_stream(img_decompress_stream(comp, algo),
							   diff_id, -1, "uncompressed layer");
	static uint8_t buf[1 << 16];
	uint64_t total = 0;
	ssize_t n;
	while ((n = v->read(v, buf, sizeof(buf), err)) > 0) {
		if ((total += (uint64_t)n) > PLAIN_LAYER_MAX)
			break;
		if (sp_write_all(fd, buf, (size_t)n) < 0)
			return sp_error_sys(err, errno, "write layer %s", diff_id);
	}
	if (n < 0)
		return sp_error_wrap(err, "layer %s", d->digest);
	if (total > PLAIN_LAYER_MAX) {
		if (ftruncate(fd, at) < 0 || lseek(fd, at, SEEK_SET) < 0)
			return sp_error_sys(err, errno, "truncate");
		return 0;
	}
	if ((r = img_tar_write_pad(fd, total, err)) < 0)
		return r;
	off_t end = lseek(fd, 0, SEEK_CUR);
	if (end < 0 || lseek(fd, at, SEEK_SET) < 0)
		return sp_error_sys(err, errno, "seek");
	if ((r = img_tar_write_header(fd, name, '0', total, 0644, err)) < 0)
		return r;
	if (lseek(fd, end, SEEK_SET) < 0)
		return sp_error_sys(err, errno, "seek");
	*added = true;
	return 0;
}

/* Every compressed layer of the images, uncompressed, once each. */
static int pack_plain_layers(sp_image_store *s, int fd, const char *const *refs,
			     char *const *pins, const struct blobset *bs, sp_err **err)
{
	struct blobset done = {0};
	int r = 0;
	for (size_t i = 0; r == 0 && refs[i]; i++) {
		struct img_manifest m = {0};
		_cleanup_strv_ char **diff_ids = NULL;
		if ((r = img_layers(s, refs[i], pins[i], &m, &diff_ids, err)) < 0)
			break;
		for (size_t k = 0; r == 0 && k < m.nlayers; k++) {
			const char *algo = NULL;
			if (img_layer_compression(m.layers[k].media_type, &algo, NULL) < 0 ||
			    !algo || blobset_has(&done, diff_ids[k]) || blobset_has(bs, diff_ids[k]))
				continue;
			bool added;
			r = pack_plain_layer(s, fd, &m.layers[k], algo, diff_ids[k], &added, err);
			if (r == 0 && added)
				blobset_add(&done, diff_ids[k]);
		}
		img_manifest_clear(&m);
	}
	sp_strv_freep(&done.digests);
	return r;
}

int sp_image_pack(const char *store_dir, const char *output,
		  const char *const *refs, sp_err **err)
{
	_cleanup_image_store_ sp_image_store *s = NULL;
	int r = img_layout_open_dir(&s, store_dir, err);
	if (r < 0)
		return r;
	struct blobset bs = {0};
	_cleanup_json_ json_t *index = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2,
						 "mediaType", IMG_MT_OCI_INDEX, "manifests");
	json_t *ms = json_object_get(index, "manifests");
	size_t nrefs = 0;
	while (refs[nrefs])
		nrefs++;
	_cleanup_strv_ char **pins = sp_xcalloc(nrefs + 1, sizeof(char *));
	for (size_t i = 0; r == 0 && refs[i]; i++) {
		_cleanup_image_ref_ sp_image_ref *ref = NULL;
		if ((r = sp_image_ref_parse(&ref, refs[i], err)) < 0)
			break;
		_cleanup_free_ uint8_t *data = NULL;
		_cleanup_free_ char *mt = NULL;
		size_t len;
		if ((r = s->ops->get_manifest(s, ref, &data, &len, &mt, err)) < 0)
			break;
		pins[i] = sp_sha256_digest_str(data, len);
		const char *digest = pins[i];
		_cleanup_free_ char *tmt = NULL;
		int64_t size;
		if ((r = collect(s, ref, digest, &bs, &tmt, &size, err)) < 0)
			break;
		free(ref->digest);
		ref->digest = NULL;
		_cleanup_free_ char *full = sp_image_ref_str(ref);
		json_array_append_new(ms, json_pack("{s:s,s:s,s:I,s:{s:s,s:s}}", "mediaType", tmt,
						    "digest", digest, "size", (json_int_t)size,
						    "annotations", "io.containerd.image.name", full,
						    "org.opencontainers.image.ref.name",
						    ref->tag ? ref->tag : "latest"));
	}
	if (r < 0) {
		sp_strv_freep(&bs.digests);
		return r;
	}
	_cleanup_free_ char *tmp = sp_xasprintf("%s.tmp-XXXXXX", output);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		sp_strv_freep(&bs.digests);
		return sp_error_sys(err, errno, "create `%s`", tmp);
	}
	_cleanup_free_ char *idx = sp_json_dump_canonical(index);
	const char *lay = "{\"imageLayoutVersion\":\"1.0.0\"}";
	r = tar_put_mem(fd, "oci-layout", lay, strlen(lay), err);
	if (r == 0)
		r = tar_put_mem(fd, "index.json", idx, strlen(idx), err);
	if (r == 0)
		r = img_tar_write_header(fd, "blobs/", '5', 0, 0755, err);
	if (r == 0)
		r = img_tar_write_header(fd, "blobs/sha256/", '5', 0, 0755, err);
	sp_image_ref none = {0};
	for (size_t i = 0; r == 0 && i < bs.n; i++) {
		_cleanup_free_ char *name = sp_xasprintf("blobs/sha256/%s", bs.digests[i] + 7);
		int64_t size = blob_size(s, &none, bs.digests[i], err);
		if (size < 0) {
			r = SP_ERR_NOT_FOUND;
			break;
		}
		if ((r = img_tar_write_header(fd, name, '0', (uint64_t)size, 0644, err)) == 0 &&
		    (r = copy_blob(s, &none, bs.digests[i], fd, NULL, err)) == 0)
			r = img_tar_write_pad(fd, (uint64_t)size, err);
	}
	if (r == 0)
		r = pack_plain_layers(s, fd, refs, pins, &bs, err);
	if (r == 0)
		r = img_tar_write_end(fd, err);
	if (r == 0 && (fchmod(fd, 0644) < 0 || rename(tmp, output) < 0))
		r = sp_error_sys(err, errno, "write `%s`", output);
	if (r < 0)
		unlink(tmp);
	sp_strv_freep(&bs.digests);
	return r;
}
