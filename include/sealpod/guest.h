/* SPDX-License-Identifier: Apache-2.0 */
/* The guest image: a kernel, a reproducible initramfs whose /init is
 * sealpod-agent, the kernel command line, and a manifest (JSON) that lists
 * hashes and where every file came from. docs/guest-image.md describes
 * the layout and the reproducibility rules. */
#ifndef SEALPOD_GUEST_H
#define SEALPOD_GUEST_H

#include "sealpod/common.h"
#include "sealpod/err.h"

/* File names inside an image directory. */
#define SP_GUEST_KERNEL "vmlinuz"
#define SP_GUEST_INITRD "initrd.img"
#define SP_GUEST_CMDLINE "cmdline"
#define SP_GUEST_MANIFEST "manifest.json"
#define SP_GUEST_KERNEL_CONFIG "kernel.config" /* the kernel's full .config, if known */
/* In the initramfs: the modules pid 1 loads, one path a line, in order. */
#define SP_GUEST_MODULES_LIST "/etc/sealpod/modules"

/* --- a newc ("070701") cpio archive, written deterministically --- */
typedef struct sp_cpio sp_cpio;
/* mtime is used for every entry; owners are always 0:0 and inode numbers
 * count up from 1 in the order entries are added. */
SP_PUBLIC sp_cpio *sp_cpio_new(uint32_t mtime);
SP_PUBLIC void sp_cpio_add_dir(sp_cpio *c, const char *path, uint32_t mode);
SP_PUBLIC void sp_cpio_add_file(sp_cpio *c, const char *path, uint32_t mode,
				const void *data, size_t len);
SP_PUBLIC void sp_cpio_add_symlink(sp_cpio *c, const char *path,
				   const char *target);
SP_PUBLIC void sp_cpio_add_chardev(sp_cpio *c, const char *path, uint32_t mode,
				   uint32_t major, uint32_t minor);
/* Appends the trailer and returns the archive (caller frees). */
SP_PUBLIC uint8_t *sp_cpio_finish(sp_cpio *c, size_t *len);
SP_PUBLIC void sp_cpio_free(sp_cpio *c);

enum sp_guest_compress {
	SP_GUEST_COMPRESS_AUTO = 0, /* the kernel's config decides: lz4, zstd, gzip */
	SP_GUEST_COMPRESS_GZIP = 1,
	SP_GUEST_COMPRESS_ZSTD = 2,
	SP_GUEST_COMPRESS_NONE = 3,
	SP_GUEST_COMPRESS_LZ4 = 4,
};

/* Compresses deterministically: gzip with no name and mtime 0 at level 9,
 * zstd level 19 single-threaded with a content size, or LZ4 HC at its
 * highest level in the kernel's legacy framing (8 MiB chunks). */
SP_PUBLIC int sp_guest_compress(uint8_t **out, size_t *out_len, const void *in,
				size_t in_len, int kind, sp_err **err);

/* --- kernel modules --- */
/* Reads the release string ("6.1.0-57-cloud-amd64") from a bzImage's
 * setup header. */
SP_PUBLIC int sp_guest_kernel_release(char **out, const uint8_t *img,
				      size_t len, sp_err **err);
/* Resolves module names (dashes and underscores alike) against a
 * modules.dep text: *paths gets the module files to load, dependencies
 * first, each once (relative to the modules directory, NULL-terminated);
 * names that are built in (in builtin, the modules.builtin text, may be
 * NULL) or absent are reported through *status (one entry per name:
 * "module", "builtin" or "absent"). */
SP_PUBLIC int sp_guest_resolve_modules(char ***paths, char ***status,
				       const char *modules_dep, size_t dep_len,
				       const char *builtin, size_t builtin_len,
				       const char *const *names, size_t n_names,
				       sp_err **err);

#define SP_GUEST_BUILD_VERSION 1

typedef struct sp_guest_build_opts {
	unsigned version;       /* SP_GUEST_BUILD_VERSION */
	const char *output_dir; /* required; created if missing */
	const char *agent;      /* required: the sealpod-agent binary */
	/* NULL or "sealpod" = sealpod's own kernel, built from Debian's
	 * linux-source by scripts/build-kernel (or $SEALPOD_KERNEL_BUILDER)
	 * and cached; "debian" = the newest /boot/vmlinuz-*-cloud-amd64;
	 * anything else is a path to a bzImage. */
	const char *kernel;
	/* NULL = /lib/modules/<release from the kernel image> */
	const char *modules_dir;
	/* Module names; NULL = the default set (virtio pci/mmio, console,
	 * blk, net, rng, overlay, dm-verity, vsock, configfs, sev-guest, tsm). */
	const char *const *modules;
	size_t n_modules;
	bool debug;             /* add busybox as /bin/sh and drop "quiet" */
	const char *busybox;    /* NULL = /bin/busybox */
	const char *cmdline_extra; /* appended to the command line */
	/* The CA bundle for policies with `ca: "system"`, measured with the
	 * image at /etc/ssl/certs/ca-certificates.crt; NULL = the build
	 * host's (Debian's ca-certificates); skipped if absent. */
	const char *ca_bundle;
	int compress;           /* sp_guest_compress */
	uint32_t mtime;         /* every entry's time (SOURCE_DATE_EPOCH) */
	/* For the expected SNP launch measurement (optional). */
	const char *ovmf;
	unsigned vcpus;
} sp_guest_build_opts;

SP_PUBLIC void sp_guest_build_opts_init(sp_guest_build_opts *o);
/* Builds the image into o->output_dir: vmlinuz, initrd.img, cmdline,
 * manifest.json. Two builds from the same inputs give the same bytes. */
SP_PUBLIC int sp_guest_build(const sp_guest_build_opts *o, sp_err **err);

/* The default image directory: $SEALPOD_GUEST_DIR, else "guest" next to
 * the running program (build/guest after `make`). New string. */
SP_PUBLIC char *sp_guest_default_dir(void);
/* The sealpod-agent next to the running program. New string. */
SP_PUBLIC char *sp_guest_default_agent(void);

/* A built image, as the launcher needs it. */
typedef struct sp_guest_image {
	char *dir;
	char *kernel;  /* absolute paths */
	char *initrd;
	char *cmdline;
	char *manifest;
} sp_guest_image;

/* Loads an image directory and checks the kernel's and initrd's SHA-256
 * against its manifest. */
SP_PUBLIC int sp_guest_image_load(sp_guest_image **out, const char *dir,
				  sp_err **err);
SP_PUBLIC void sp_guest_image_free(sp_guest_image *img);

#endif
