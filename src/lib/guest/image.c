/* SPDX-License-Identifier: Apache-2.0 */
/* Finding and loading a built guest image. */
#include <limits.h>
#include <string.h>

#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/guest.h"
#include "sealpod/hash.h"
#include "sealpod/json.h"

static char *self_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n <= 0)
		return sp_xstrdup(".");
	buf[n] = 0;
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	return sp_xstrdup(buf);
}

char *sp_guest_default_dir(void)
{
	const char *env = getenv("SEALPOD_GUEST_DIR");
	if (env && *env)
		return sp_xstrdup(env);
	_cleanup_free_ char *d = self_dir();
	return sp_xasprintf("%s/guest", d);
}

char *sp_guest_default_agent(void)
{
	_cleanup_free_ char *d = self_dir();
	return sp_xasprintf("%s/sealpod-agent", d);
}

void sp_guest_image_free(sp_guest_image *img)
{
	if (!img)
		return;
	free(img->dir);
	free(img->kernel);
	free(img->initrd);
	free(img->cmdline);
	free(img->manifest);
	free(img);
}

static int check_hash(const char *path, const json_t *obj, const char *what,
		      sp_err **err)
{
	const char *want = NULL;
	if (sp_json_get_string(obj, "sha256", true, &want, what, err) < 0)
		return SP_ERR_PARSE;
	uint8_t d[SP_SHA256_LEN];
	if (sp_sha256_file(d, path, err) < 0)
		return SP_ERR_SYSTEM;
	char got[2 * SP_SHA256_LEN + 1];
	sp_hex_encode(got, d, sizeof(d));
	if (strcmp(got, want))
		return sp_error(err, SP_ERR_APPRAISAL,
				"`%s` has SHA-256 %s but the manifest says %s; rebuild "
				"the image with `sealpod image build`", path, got, want);
	return 0;
}

int sp_guest_image_load(sp_guest_image **out, const char *dir, sp_err **err)
{
	char abs[PATH_MAX];
	if (!realpath(dir, abs))
		return sp_error_sys(err, errno,
				    "guest image directory `%s`; build it with `sealpod "
				    "image build --output %s`", dir, dir);
	sp_guest_image *img = sp_xzalloc(sizeof(*img));
	img->dir = sp_xstrdup(abs);
	img->kernel = sp_xasprintf("%s/" SP_GUEST_KERNEL, abs);
	img->initrd = sp_xasprintf("%s/" SP_GUEST_INITRD, abs);
	img->manifest = sp_xasprintf("%s/" SP_GUEST_MANIFEST, abs);
	_cleanup_json_ json_t *m = NULL;
	json_t *k = NULL, *i = NULL;
	const char *cmdline = NULL;
	if (sp_json_load_file(&m, img->manifest, 16u << 20, err) < 0 ||
	    sp_json_get_object(m, "kernel", true, &k, "manifest", err) < 0 ||
	    sp_json_get_object(m, "initrd", true, &i, "manifest", err) < 0 ||
	    sp_json_get_string(m, "cmdline", true, &cmdline, "manifest", err) < 0 ||
	    check_hash(img->kernel, k, "manifest.kernel", err) < 0 ||
	    check_hash(img->initrd, i, "manifest.initrd", err) < 0) {
		sp_guest_image_free(img);
		return sp_error_wrap(err, "guest image `%s`", abs);
	}
	img->cmdline = sp_xstrdup(cmdline);
	*out = img;
	return 0;
}
