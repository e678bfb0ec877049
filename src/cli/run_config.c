/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime configuration of `sealpod run`: guest image, image disk,
 * accelerator and TEE. */
#include <string.h>

#include "run.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"
#include "sealpod/guest.h"
#include "sealpod/image.h"
#include "sealpod/sandbox.h"

static void set(char **field, const char *value)
{
	free(*field);
	*field = value ? sp_xstrdup(value) : NULL;
}

/* True when the image's agent is not the agent built next to us: the
 * image is then stale (a rebuilt agent must not run an old one). */
static bool agent_changed(const char *manifest, const char *agent)
{
	_cleanup_json_ json_t *m = NULL;
	if (sp_json_load_file(&m, manifest, 16u << 20, NULL) < 0)
		return true;
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(m, "files"), i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		/* A stripped agent records the hash of the file it came from. */
		json_t *src = json_object_get(f, "unstripped_sha256");
		const char *want = json_string_value(src ? src : json_object_get(f, "sha256"));
		if (!path || !want || strcmp(path, "/sbin/sealpod-agent"))
			continue;
		uint8_t d[SP_SHA256_LEN];
		char hex[2 * SP_SHA256_LEN + 1];
		if (sp_sha256_file(d, agent, NULL) < 0)
			return false; /* no agent next to us: use the image as it is */
		sp_hex_encode(hex, d, sizeof(d));
		return strcmp(hex, want) != 0;
	}
	return true;
}

/* Loads the guest image, building it first when it is missing or older
 * than the agent it must contain. */
static int guest_image(sp_guest_image **out, const char *dir_opt, sp_err **err)
{
	_cleanup_free_ char *dir = dir_opt ? sp_xstrdup(dir_opt) : sp_guest_default_dir();
	_cleanup_free_ char *agent = sp_guest_default_agent();
	_cleanup_free_ char *manifest = sp_xasprintf("%s/manifest.json", dir);
	sp_err *e = NULL;
	if (sp_guest_image_load(out, dir, &e) == 0) {
		if (dir_opt || !agent_changed(manifest, agent))
			return 0;
		sp_guest_image_free(*out);
		*out = NULL;
	} else if (dir_opt) {
		*err = e;
		return sp_error_wrap(err, "--guest-dir");
	}
	sp_err_free(e);
	run_progress("building the guest image into %s (once; `sealpod image build` does the same)",
		     dir);
	sp_guest_build_opts bo;
	sp_guest_build_opts_init(&bo);
	bo.output_dir = dir;
	bo.agent = agent;
	if (sp_guest_build(&bo, err) < 0)
		return sp_error_wrap(err, "building the guest image");
	return sp_guest_image_load(out, dir, err);
}

int run_registry_auth(const char *authfile, const char *ref, const char *registry,
		      char **user, char **pass, sp_err **err)
{
	_cleanup_image_ref_ sp_image_ref *r = NULL;
	if (sp_image_ref_parse(&r, ref, err) < 0)
		return (*err)->code;
	if (registry) {
		const char *h = strstr(registry, "://");
		h = h ? h + 3 : registry;
		free(r->registry);
		r->registry = sp_xstrndup(h, strcspn(h, "/"));
	}
	if (sp_image_auth_lookup(authfile, r, user, pass, NULL, err) < 0)
		return sp_error_wrap(err, "credentials for %s", r->registry);
	return 0;
}

/* Without --image-dir or --registry the guest pulls each image from the
 * registry its reference names (docs/images.md): one registry per pod,
 * which a UVM can reach. */
static int run_images_registry(char **out, const char *const *images, sp_err **err)
{
	for (size_t i = 0; images && images[i]; i++) {
		_cleanup_image_ref_ sp_image_ref *ref = NULL;
		if (sp_image_ref_parse(&ref, images[i], err) < 0)
			return (*err)->code;
		_cleanup_free_ char *url = sp_image_registry_url(ref);
		if (*out && strcmp(*out, url))
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"the pod's images come from %s and %s; a pod pulls from one registry: give --image-dir DIR or a --registry URL mirror that serves them all",
					*out, url);
		if (!*out)
			*out = sp_steal_ptr(&url);
	}
	if (*out && strncmp(*out, "http://", 7))
		return sp_error(err, SP_ERR_UNSUPPORTED,
				"the pod's images are on %s, which the UVM would reach by name; the guest has no DNS resolver yet (docs/images.md): give --image-dir DIR, or --registry with a mirror on this machine",
				*out);
	return 0;
}

uint64_t run_uvm_memory_mib(const json_t *pcs)
{
	uint64_t mib = RUN_UVM_BASE_MIB;
	for (size_t i = 0; i < json_array_size(pcs); i++) {
		json_t *lim = json_object_get(json_array_get(pcs, i), "resources");
		json_int_t bytes = json_integer_value(
			json_object_get(json_object_get(lim, "limits"), "memory"));
		if (bytes <= 0)
			continue; /* no limit */
		uint64_t m = ((uint64_t)bytes + (1u << 20) - 1) >> 20;
		mib += m < (1u << 20) ? m : (1u << 20); /* QEMU refuses beyond anyway */
	}
	return mib;
}

char *run_default_image_dir(void)
{
	const char *env = getenv("SEALPOD_IMAGE_DIR");
	return env && *env ? sp_xstrdup(env) : NULL;
}

int run_config(sp_runtime_config **out, const struct run_opts *o, const char *tmp,
	       const char *const *images, sp_err **err)
{
	sp_runtime_config *c = NULL;
	if (sp_runtime_config_load(&c, NULL, err) < 0)
		return (*err)->code;
	set(&c->backend, o->backend);
	if (!strcmp(o->backend, "native")) {
		_cleanup_free_ char *agent = sp_guest_default_agent();
		set(&c->agent, agent);
	}
	set(&c->tee, o->tee);
	set(&c->accel, o->accel);
	c->vcpus = o->vcpus;
	c->memory_mib = o->memory_mib;
	if (!strcmp(o->backend, "vm")) {
		sp_guest_image *g = NULL;
		if (guest_image(&g, o->guest_dir, err) < 0) {
			sp_runtime_config_free(c);
			return (*err)->code;
		}
		set(&c->kernel, g->kernel);
		set(&c->initrd, g->initrd);
		set(&c->kernel_cmdline, g->cmdline);
		sp_guest_image_free(g);
	}
	/* containerd's content store is the shim's (host-pulled images). */
	set(&c->content_store, NULL);
	_cleanup_free_ char *own = NULL;
	if (!o->registry && !o->image_dir &&
	    run_images_registry(&own, images, err) < 0) {
		sp_runtime_config_free(c);
		return (*err)->code;
	}
	if (o->registry || own) {
		const char *reg = o->registry ? o->registry : own;
		/* The guest pulls from the registry itself; nothing to pack.
		 * A UVM reaches http://127.0.0.1:PORT as http://10.0.2.2:PORT
		 * (sp_sandbox_guest_registry): say so now if it cannot. */
		set(&c->image_store, NULL);
		_cleanup_free_ char *guest = NULL;
		if (sp_sandbox_guest_registry(&guest, reg, !strcmp(o->backend, "vm"),
					      err) < 0) {
			sp_runtime_config_free(c);
			return o->registry ? sp_error_wrap(err, "--registry")
					   : sp_error_wrap(err, "the images' registry");
		}
		set(&c->registry, reg);
		/* The guest needs the same credentials: they travel with the
		 * registry storage (sent to that registry's host only). */
		_cleanup_free_ char *user = NULL, *pass = NULL;
		if (images && images[0] &&
		    run_registry_auth(o->authfile, images[0], reg, &user, &pass, err) < 0) {
			sp_runtime_config_free(c);
			return (*err)->code;
		}
		if (user) {
			_cleanup_free_ char *up = sp_xasprintf("%s:%s", user, pass);
			free(c->registry_auth);
			c->registry_auth = sp_base64_encode(up, strlen(up), SP_B64_STD);
		}
	} else if (o->image_dir) {
		if (!strcmp(o->backend, "vm")) {
			/* The UVM sees the images as one read-only disk holding
			 * a tar of an OCI layout with just the pod's images. */
			_cleanup_free_ char *disk = sp_xasprintf("%s/images.tar", tmp);
			run_progress("packing the pod's images from %s for the UVM", o->image_dir);
			if (sp_image_pack(o->image_dir, disk, images, err) < 0) {
				sp_runtime_config_free(c);
				return sp_error_wrap(err, "--image-dir %s", o->image_dir);
			}
			set(&c->image_store, disk);
		} else {
			set(&c->image_store, o->image_dir);
		}
	}
	*out = c;
	return 0;
}
