/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the image module shared between its files. Names start
 * with img_; nothing here is exported from the library. */
#ifndef SEALPOD_IMAGE_INTERNAL_H
#define SEALPOD_IMAGE_INTERNAL_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/image.h"

/* Size limits on what an untrusted source may hand us. */
#define IMG_MAX_JSON (4u << 20)        /* manifests, indexes, configs */
#define IMG_MAX_PATH 4096              /* a name in a tar */
#define IMG_MAX_PAX (1u << 20)         /* one PAX extended header */
#define IMG_MAX_XATTR (64u << 10)      /* one xattr value */
#define IMG_MAX_LAYERS 256

/* A byte stream from an untrusted source. read returns the bytes read,
 * 0 at the end, or a negative sp_err code. skip is optional. */
typedef struct img_stream img_stream;
struct img_stream {
	ssize_t (*read)(img_stream *s, void *buf, size_t n, sp_err **err);
	int (*skip)(img_stream *s, uint64_t n, sp_err **err);
	void (*close)(img_stream *s);
};
/* Reads exactly n bytes; a short stream is a parse error naming what. */
int img_read_full(img_stream *s, void *buf, size_t n, const char *what,
		  sp_err **err);
int img_skip(img_stream *s, uint64_t n, sp_err **err);
void img_stream_close(img_stream *s);
static inline void img_stream_closep(img_stream **s)
{
	img_stream_close(*s);
}
#define _cleanup_stream_ __attribute__((cleanup(img_stream_closep)))

/* A stream over memory (fuzzing, tests); data must outlive it. */
img_stream *img_mem_stream(const void *data, size_t len);
/* A stream over fd from offset, at most len bytes (pread; fd kept). */
img_stream *img_fd_stream(int fd, uint64_t offset, uint64_t len);
/* A stream over all of fd, which it closes. */
img_stream *img_fd_stream_take(int fd);

/* Verifying stream: hashes what passes through, counts it, refuses more
 * than size bytes and, at the end, a count or digest that differs. */
img_stream *img_verify_stream(img_stream *inner, const char *digest,
			      int64_t size, const char *what);
/* Reads inner ahead in a thread (takes inner). */
img_stream *img_readahead_stream(img_stream *inner);
/* Decompression: "gzip", "zstd" or NULL (none). Takes inner. */
img_stream *img_decompress_stream(img_stream *inner, const char *algo);

/* ---- tar reader ---- */
struct img_xattr {
	char *name;
	uint8_t *value;
	size_t len;
};

struct img_tar_entry {
	char *path;      /* as in the archive (not cleaned) */
	char *linkname;  /* hard or symbolic link target, or NULL */
	char type;       /* '0' file, '1' hard link, '2' symlink, '3' char,
			    '4' block, '5' dir, '6' fifo */
	uint64_t size;   /* data bytes (files only) */
	uint32_t mode;   /* permission bits incl. setuid/setgid/sticky */
	uint64_t uid, gid;
	int64_t mtime;
	uint32_t devmajor, devminor;
	size_t nxattrs;
	struct img_xattr *xattrs;
	uint64_t data_offset; /* offset of the data in the stream */
};

typedef struct img_tar img_tar;
/* The tar reader does not take ownership of in. */
img_tar *img_tar_new(img_stream *in);
void img_tar_free(img_tar *t);
/* 1 and *out set: an entry; 0: the end of the archive; <0: an error. The
 * entry is valid until the next call. Unread data is skipped. */
int img_tar_next(img_tar *t, const struct img_tar_entry **out, sp_err **err);
/* Reads the current entry's data; 0 at its end. */
ssize_t img_tar_read(img_tar *t, void *buf, size_t n, sp_err **err);

/* ---- tar writer (host side) ---- */
int img_tar_write_header(int fd, const char *name, char type, uint64_t size,
			 uint32_t mode, sp_err **err);
int img_tar_write_pad(int fd, uint64_t size, sp_err **err);
int img_tar_write_end(int fd, sp_err **err);

/* ---- safe unpacker ---- */
typedef struct img_unpack img_unpack;
struct img_unpack_opts {
	uint64_t max_bytes;
	uint64_t max_entries;
	bool chown;
	/* Keep whiteouts as overlayfs markers (layer cache) instead of
	 * applying them to what is below (flattened rootfs). */
	bool overlay_whiteouts;
};
/* root_fd: an open directory (kept by the caller). */
img_unpack *img_unpack_new(int root_fd, const struct img_unpack_opts *o);
void img_unpack_free(img_unpack *u);
/* Applies one layer, read from tar (its stream is drained by the caller). */
int img_unpack_layer(img_unpack *u, img_tar *tar, sp_err **err);
uint64_t img_unpack_bytes(const img_unpack *u);
/* Copies the layer tree at layer_fd (unpacked with overlay whiteouts)
 * onto the rootfs, applying its whiteouts: the fallback without overlay. */
int img_unpack_merge_tree(img_unpack *u, int layer_fd, sp_err **err);
/* Removes name under dirfd, recursively, never following symlinks. */
int img_remove_at(int dirfd, const char *name, sp_err **err);

/* Cleans an archive path: strips "./" and "/" runs, refuses absolute
 * paths and "..". Returns a new string, or NULL and an error. "" is the
 * root itself. */
char *img_clean_path(const char *path, sp_err **err);

/* ---- stores ---- */
struct img_store_ops {
	/* Fetches a manifest or an index by tag or digest (ref->digest
	 * wins). *media_type may be NULL when the source does not say. */
	int (*get_manifest)(sp_image_store *s, const sp_image_ref *ref,
			    uint8_t **data, size_t *len, char **media_type,
			    sp_err **err);
	/* Opens a blob (not yet verified). */
	int (*open_blob)(sp_image_store *s, const sp_image_ref *ref,
			 const char *digest, int64_t size, img_stream **out,
			 sp_err **err);
	/* Whether the store holds a blob, without reading it (NULL: a
	 * remote store, where asking would cost a request). */
	bool (*has_blob)(sp_image_store *s, const char *digest);
	void (*close)(sp_image_store *s);
};

struct sp_image_store {
	const struct img_store_ops *ops;
	char *spec;
};

int img_layout_open_dir(sp_image_store **out, const char *path, sp_err **err);
int img_layout_open_tar(sp_image_store **out, const char *path, sp_err **err);
int img_registry_open(sp_image_store **out, const char *url,
		      const struct sp_image_store_opts *opts, sp_err **err);
/* Lists "name\tdigest" of each image a layout store holds (import). */
int img_layout_list(sp_image_store *s, char ***names, char ***digests,
		    sp_err **err);

/* ---- manifests ---- */
struct img_desc {
	char *media_type;
	char *digest;
	int64_t size;
};
struct img_manifest {
	struct img_desc config;
	size_t nlayers;
	struct img_desc *layers;
};
/* The manifest's layers and the config's diff_ids of the image ref_s
 * whose manifest (or index) has digest pin, each verified. */
int img_layers(sp_image_store *s, const char *ref_s, const char *pin,
	       struct img_manifest *m, char ***diff_ids, sp_err **err);
enum img_kind { IMG_KIND_MANIFEST = 1, IMG_KIND_INDEX = 2 };
/* Classifies a manifest or index by its mediaType (field or header). */
int img_manifest_kind(const uint8_t *data, size_t len, const char *hdr_type,
		      int *kind, sp_err **err);
int img_manifest_parse(struct img_manifest *m, const uint8_t *data,
		       size_t len, sp_err **err);
void img_manifest_clear(struct img_manifest *m);
/* Picks the linux/amd64 manifest from an index. */
int img_index_select(struct img_desc *out, const uint8_t *data, size_t len,
		     sp_err **err);
void img_desc_clear(struct img_desc *d);
/* Layer media type -> compression ("gzip", "zstd", NULL) or error. */
int img_layer_compression(const char *media_type, const char **algo,
			  sp_err **err);
/* Parses a config's rootfs.diff_ids (NULL-terminated) and checks its
 * platform. */
int img_config_diff_ids(char ***out, const uint8_t *data, size_t len,
			sp_err **err);
/* The manifest a docker-archive's image gets (canonical JSON), from its
 * config blob and layer sizes. */
char *img_docker_archive_manifest(const char *config_digest,
				  int64_t config_size, char *const *diff_ids,
				  const int64_t *layer_sizes, size_t nlayers);

#define IMG_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define IMG_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define IMG_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define IMG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define IMG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define IMG_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"

#endif
