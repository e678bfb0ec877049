/* SPDX-License-Identifier: Apache-2.0 */
/* An image's config for the generator. The image module does the reading
 * and the verifying (OCI layout, docker-archive, tar, registry with bearer
 * or basic auth; every blob against its digest): this file only turns its
 * answer into what the generator needs and pins the reference as the pod
 * wrote it to the digest the store resolved. */
#include <string.h>

#include "internal.h"
#include "sealpod/image.h"

void sp_policy_image_clear(sp_policy_image *img)
{
	free(img->reference);
	sp_strv_freep(&img->entrypoint);
	sp_strv_freep(&img->cmd);
	sp_strv_freep(&img->env);
	free(img->working_dir);
	free(img->user);
	memset(img, 0, sizeof(*img));
}

/* The reference as written, without its tag or digest: "busybox:1.36" ->
 * "busybox", "127.0.0.1:5000/x/y:1" -> "127.0.0.1:5000/x/y". */
static char *written_name(const char *ref)
{
	char *s = sp_xstrndup(ref, strcspn(ref, "@"));
	char *slash = strrchr(s, '/'), *colon = strrchr(s, ':');
	if (colon && (!slash || colon > slash))
		*colon = 0;
	return s;
}

int sp_policy_image_from_store(sp_image_store *store, const char *ref, sp_policy_image *out,
			       sp_err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *digest = NULL, *config = NULL;
	int r = sp_image_fetch_config(store, ref, &digest, &config, err);
	if (r < 0)
		return r;
	sp_image_config *c = NULL;
	if ((r = sp_image_config_get(&c, config, err)) < 0)
		return sp_error_wrap(err, "image %s", ref);
	_cleanup_free_ char *name = written_name(ref);
	out->reference = sp_xasprintf("%s@%s", name, digest);
	out->entrypoint = sp_steal_ptr(&c->entrypoint);
	out->cmd = sp_steal_ptr(&c->cmd);
	out->env = sp_steal_ptr(&c->env);
	out->working_dir = sp_steal_ptr(&c->working_dir);
	out->user = sp_steal_ptr(&c->user);
	sp_image_config_free(c);
	return 0;
}

int sp_policy_image_from_layout(const char *dir, const char *ref, sp_policy_image *out,
				sp_err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *spec = sp_xasprintf("dir:%s", dir);
	_cleanup_image_store_ sp_image_store *s = NULL;
	int r = sp_image_store_open(&s, spec, NULL, err);
	return r < 0 ? r : sp_policy_image_from_store(s, ref, out, err);
}

/* "localhost[:port]" -> "127.0.0.1[:port]"; NULL unless host is local. */
static char *local_host(const char *host)
{
	if (!strncmp(host, "localhost", 9) && (!host[9] || host[9] == ':'))
		return sp_xasprintf("127.0.0.1%s", host + 9);
	if (!strncmp(host, "127.0.0.1", 9) && (!host[9] || host[9] == ':'))
		return sp_xstrdup(host);
	if (!strncmp(host, "[::1]", 5) && (!host[5] || host[5] == ':'))
		return sp_xstrdup(host);
	return NULL;
}

int sp_policy_image_from_registry(const char *registry, const char *ref,
				  const struct sp_image_store_opts *opts, sp_policy_image *out,
				  sp_err **err)
{
	memset(out, 0, sizeof(*out));
	struct sp_image_store_opts o = {.version = SP_IMAGE_STORE_OPTS_VERSION};
	if (opts)
		o = *opts;
	_cleanup_free_ char *spec = NULL;
	if (registry) {
		/* A registry on this machine may speak plain HTTP (the image
		 * module allows that only to loopback addresses). */
		_cleanup_free_ char *url = sp_xstrdup(registry);
		size_t n = strlen(url);
		while (n > 1 && url[n - 1] == '/' && url[n - 2] != '/')
			url[--n] = 0;
		_cleanup_free_ char *host = NULL;
		if (!strncmp(url, "http://", 7) && (host = local_host(url + 7))) {
			o.insecure_http = true;
			spec = sp_xasprintf("registry:http://%s", host);
		} else if (!strncmp(url, "http://", 7)) {
			return sp_error(err, SP_ERR_DENIED,
					"registry URL `%s`: plain http is allowed only to a registry on this machine (http://127.0.0.1:PORT; a UVM reaches it as http://10.0.2.2:PORT); use https",
					registry);
		} else {
			spec = sp_xasprintf("registry:%s", url);
		}
	} else {
		/* The reference's own registry: HTTPS, or plain HTTP when it is
		 * on this machine (a test or development registry). */
		_cleanup_image_ref_ sp_image_ref *ir = NULL;
		int r = sp_image_ref_parse(&ir, ref, err);
		if (r < 0)
			return r;
		_cleanup_free_ char *host = local_host(ir->registry);
		if (host) {
			o.insecure_http = true;
			spec = sp_xasprintf("registry:http://%s", host);
		} else {
			spec = sp_xstrdup("registry:");
		}
	}
	_cleanup_image_store_ sp_image_store *s = NULL;
	int r = sp_image_store_open(&s, spec, &o, err);
	return r < 0 ? r : sp_policy_image_from_store(s, ref, out, err);
}
