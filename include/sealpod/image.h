/* SPDX-License-Identifier: Apache-2.0 */
/* Container images: references, untrusted stores (OCI registry, OCI image
 * layout or docker-archive as a directory or a tar on a file or block
 * device), verification of every blob against its digest, and a safe
 * unpacker. The guest agent calls sp_image_pull(); the host-side policy
 * generator calls sp_image_fetch_config(). docs/images.md has the design. */
#ifndef SEALPOD_IMAGE_H
#define SEALPOD_IMAGE_H

#include "sealpod/common.h"
#include "sealpod/err.h"

/* "registry/repo[:tag][@sha256:hex]", normalised with Docker's defaults:
 * "busybox" is docker.io/library/busybox:latest. */
typedef struct sp_image_ref {
	char *registry;   /* "docker.io", "127.0.0.1:5000" */
	char *repository; /* "library/busybox" */
	char *tag;        /* "latest"; NULL when only a digest was given */
	char *digest;     /* "sha256:<64 hex>" or NULL */
} sp_image_ref;

SP_PUBLIC int sp_image_ref_parse(sp_image_ref **out, const char *s,
				 sp_err **err);
SP_PUBLIC void sp_image_ref_free(sp_image_ref *ref);
/* "registry/repository[:tag][@digest]", fully qualified. */
SP_PUBLIC char *sp_image_ref_str(const sp_image_ref *ref);
/* "registry/repository" */
SP_PUBLIC char *sp_image_ref_name(const sp_image_ref *ref);
/* The base URL of ref's registry by the usual rules: docker.io is
 * https://registry-1.docker.io; a loopback registry (localhost,
 * 127.0.0.0/8, [::1]) speaks plain http, as http://127.0.0.1[:PORT] (or
 * http://[::1][:PORT]); any other is https://REGISTRY. New string. */
SP_PUBLIC char *sp_image_registry_url(const sp_image_ref *ref);
/* True for "sha256:" followed by 64 lowercase hex digits. */
SP_PUBLIC bool sp_image_digest_valid(const char *digest);
static inline void sp_image_ref_freep(sp_image_ref **r)
{
	sp_image_ref_free(*r);
}
#define _cleanup_image_ref_ __attribute__((cleanup(sp_image_ref_freep)))

/* Registry credentials for ref from an auth file as podman, skopeo and
 * docker write them ({"auths": {KEY: {"auth": base64("user:pass")}}};
 * KEY a registry, a registry/path prefix (the longest match wins) or a
 * docker URL). *user and *pass are NULL when no entry matches. */
SP_PUBLIC int sp_image_auth_parse(const uint8_t *data, size_t len,
				  const sp_image_ref *ref, char **user,
				  char **pass, sp_err **err);
/* base64("user:password") -> user, password (both new). */
SP_PUBLIC int sp_image_auth_decode(const char *b64, char **user, char **pass,
				   sp_err **err);
/* The same from authfile, or with authfile NULL from the first of
 * $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json (else
 * /run/containers/UID/auth.json), $XDG_CONFIG_HOME/containers/auth.json
 * (else ~/.config/containers/auth.json), $DOCKER_CONFIG/config.json (else
 * ~/.docker/config.json) that has an entry. *source (may be NULL) names
 * the file used. */
SP_PUBLIC int sp_image_auth_lookup(const char *authfile, const sp_image_ref *ref,
				   char **user, char **pass, char **source,
				   sp_err **err);

/* Options for sp_image_store_open. */
struct sp_image_store_opts {
	unsigned version;   /* SP_IMAGE_STORE_OPTS_VERSION */
	/* registry: allow plain http, only to 127.0.0.1 / 10.0.2.2 / ::1. */
	bool insecure_http;
	const char *username; /* registry credentials (basic, or for the token */
	const char *password; /* endpoint); NULL for anonymous */
	const char *ca_file;  /* PEM bundle for https; NULL = system default */
	/* Resolve registry names with the library's stub resolver through
	 * this resolv.conf (the guest: the pod's); NULL = the C library. */
	const char *resolv_conf;
};
#define SP_IMAGE_STORE_OPTS_VERSION 1

typedef struct sp_image_store sp_image_store;

/* spec: "dir:PATH"     an OCI image layout or an unpacked docker-archive
 *       "tar:PATH"     a tar of either, on a file or a block device
 *       "registry:URL" "registry:https://host[:port]" or
 *                      "registry:http://127.0.0.1:5000" (insecure_http);
 *                      "registry:" alone means each reference's registry
 *                      over https.
 * opts may be NULL. Nothing read from a store is trusted. */
SP_PUBLIC int sp_image_store_open(sp_image_store **out, const char *spec,
				  const struct sp_image_store_opts *opts,
				  sp_err **err);
SP_PUBLIC void sp_image_store_close(sp_image_store *store);
static inline void sp_image_store_closep(sp_image_store **s)
{
	sp_image_store_close(*s);
}
#define _cleanup_image_store_ __attribute__((cleanup(sp_image_store_closep)))

struct sp_image_limits {
	unsigned version;        /* SP_IMAGE_LIMITS_VERSION */
	uint64_t max_bytes;      /* unpacked size of the rootfs; 0 = 1 GiB */
	uint64_t max_entries;    /* files in the rootfs; 0 = 1,000,000 */
	/* A directory (tmpfs) holding unpacked layers keyed by diff_id,
	 * shared by the pod's containers; NULL = no cache, each pull
	 * unpacks every layer into dest_root. With a cache, dest_root is an
	 * overlay mount when overlayfs works, else a copy. */
	const char *layer_cache;
	/* Apply file owners (needs CAP_CHOWN); default: when euid is 0. */
	int chown_mode;          /* 0 = auto, 1 = always, -1 = never */
};
#define SP_IMAGE_LIMITS_VERSION 1

/* Pulls ref from store into dest_root (which must not exist; it appears
 * only when everything verified and unpacked). expected_digest is the
 * policy's pinned "sha256:..." digest of the manifest (or of the index,
 * which is then resolved to linux/amd64); it is required, and if ref
 * carries a digest it must be the same. On success *config_json (if not
 * NULL) receives the verified image config (NUL-terminated). */
SP_PUBLIC int sp_image_pull(sp_image_store *store, const char *ref,
			    const char *expected_digest, const char *dest_root,
			    const struct sp_image_limits *limits,
			    char **config_json, sp_err **err);

/* Removes a rootfs made by sp_image_pull: unmounts an overlay (and
 * removes its dest_root.rw directory) or deletes the copied tree. */
SP_PUBLIC int sp_image_rootfs_remove(const char *dest_root, sp_err **err);

/* Resolves ref (tag or digest) in store and returns the digest a policy
 * should pin (*digest_out, the manifest's or the index's) and the
 * linux/amd64 image config, every blob verified against its parent. For
 * the host-side policy generator. Either out may be NULL. */
SP_PUBLIC int sp_image_fetch_config(sp_image_store *store, const char *ref,
				    char **digest_out, char **config_json,
				    sp_err **err);

/* The parts of an image config that a policy or a container needs. */
typedef struct sp_image_config {
	char **entrypoint; /* NULL-terminated, or NULL */
	char **cmd;
	char **env;
	char *working_dir; /* NULL if unset */
	char *user;
	char *architecture;
	char *os;
} sp_image_config;

SP_PUBLIC int sp_image_config_get(sp_image_config **out, const char *config_json,
				  sp_err **err);
SP_PUBLIC void sp_image_config_free(sp_image_config *c);

/* Host side. Copies every image of an OCI layout or docker-archive
 * (directory or tar) into the OCI layout at store_dir (created if
 * missing), verifying each blob. tag (may be NULL) renames the image
 * when the source holds exactly one. A docker-archive's image gets a
 * manifest synthesised exactly as the guest does when it reads a
 * docker-archive, so both pin the same digest. On success *digests_out
 * (may be NULL) lists "name digest" lines. */
SP_PUBLIC int sp_image_import(const char *source, const char *store_dir,
			      const char *tag, char **digests_out,
			      sp_err **err);
/* Writes a tar of an OCI layout holding the images refs (NULL-terminated)
 * from the layout at store_dir, for the read-only virtio-blk disk. */
SP_PUBLIC int sp_image_pack(const char *store_dir, const char *output,
			    const char *const *refs, sp_err **err);

/* Host side: the read-only image disk of a pod whose images the node
 * already pulled (containerd's content store). A sparse file of `size`
 * bytes holding a tar of an OCI image layout, to which each container's
 * image blobs are appended (sp_image_disk_add_content) before the guest
 * pulls that image from it by digest. Thread-safe. */
typedef struct sp_image_disk sp_image_disk;
SP_PUBLIC int sp_image_disk_create(sp_image_disk **out, const char *path,
				   uint64_t size, sp_err **err);
/* Appends the blobs of the image pinned by digest (an index, its
 * linux/amd64 manifest, config and layers) as containerd's content store
 * at content_root (<containerd root>/io.containerd.content.v1.content)
 * holds them, unverified (the guest verifies). image names the image in
 * messages. SP_ERR_NOT_FOUND when a blob is missing. */
SP_PUBLIC int sp_image_disk_add_content(sp_image_disk *d,
					const char *content_root,
					const char *image, const char *digest,
					sp_err **err);
SP_PUBLIC const char *sp_image_disk_path(const sp_image_disk *d);
/* Closes and removes the file. */
SP_PUBLIC void sp_image_disk_free(sp_image_disk *d);

#endif
