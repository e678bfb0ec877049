/* SPDX-License-Identifier: Apache-2.0 */
/* Registry credentials from the files podman, skopeo and docker read:
 * containers-auth.json and docker's config.json share the shape
 * {"auths": {KEY: {"auth": base64("user:password")}}}, where KEY is a
 * registry ("quay.io", "127.0.0.1:5000"), a registry with a repository
 * path ("quay.io/org", "quay.io/org/app": the longest match wins), or, in
 * docker's older files, a URL ("https://index.docker.io/v1/"). Credential
 * helpers (credHelpers, credsStore) are not run. */
#include <string.h>
#include <sys/stat.h>

#include "image-internal.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define AUTH_FILE_MAX (1u << 20)
#define AUTH_MAX 8192

/* A key as a registry[/path]: URL scheme and trailing "/", "/v1/",
 * "/v2/" dropped; docker's hub names become "docker.io". */
static char *normal_key(const char *k)
{
	if (!strncmp(k, "https://", 8))
		k += 8;
	else if (!strncmp(k, "http://", 7))
		k += 7;
	char *s = sp_xstrdup(k);
	size_t n = strlen(s);
	while (n && s[n - 1] == '/')
		s[--n] = 0;
	if (n >= 3 && (!strcmp(s + n - 3, "/v1") || !strcmp(s + n - 3, "/v2")))
		s[n - 3] = 0;
	const char *hub[] = {"index.docker.io", "registry-1.docker.io"};
	for (size_t i = 0; i < SP_ARRAY_LEN(hub); i++) {
		size_t hl = strlen(hub[i]);
		if (!strncmp(s, hub[i], hl) && (!s[hl] || s[hl] == '/')) {
			char *d = sp_xasprintf("docker.io%s", s + hl);
			free(s);
			return d;
		}
	}
	return s;
}

/* How well key matches registry/repository: 0 = not, else the matched
 * length (longer = more specific). */
static size_t match_len(const char *key, const char *full)
{
	size_t kl = strlen(key);
	if (strncmp(key, full, kl))
		return 0;
	return !full[kl] || full[kl] == '/' ? kl : 0;
}

int sp_image_auth_parse(const uint8_t *data, size_t len, const sp_image_ref *ref,
			char **user, char **pass, sp_err **err)
{
	*user = *pass = NULL;
	_cleanup_json_ json_t *j = NULL;
	int r = sp_json_parse(&j, data, len, "auth file", err);
	if (r < 0)
		return r;
	json_t *auths = json_object_get(j, "auths");
	if (!auths)
		return 0;
	if (!json_is_object(auths))
		return sp_error(err, SP_ERR_PARSE, "auth file: \"auths\" must be an object");
	_cleanup_free_ char *full = sp_image_ref_name(ref);
	const char *best = NULL;
	size_t best_len = 0;
	const char *key;
	json_t *v;
	json_object_foreach(auths, key, v) {
		_cleanup_free_ char *nk = normal_key(key);
		size_t m = match_len(nk, full);
		if (m > best_len) {
			best_len = m;
			best = key;
		}
	}
	if (!best)
		return 0;
	json_t *e = json_object_get(auths, best);
	const char *a = json_string_value(json_object_get(e, "auth"));
	if (!json_is_object(e) || !a)
		return sp_error(err, SP_ERR_PARSE,
				"auth file: the entry for `%.200s` has no \"auth\" string (credential helpers are not supported)",
				best);
	if (sp_image_auth_decode(a, user, pass, err) < 0)
		return sp_error_wrap(err, "auth file: the entry for `%.200s`", best);
	return 0;
}

int sp_image_auth_decode(const char *b64, char **user, char **pass, sp_err **err)
{
	*user = *pass = NULL;
	if (strlen(b64) > AUTH_MAX)
		return sp_error(err, SP_ERR_LIMIT, "credentials longer than %u bytes", AUTH_MAX);
	_cleanup_free_ uint8_t *dec = NULL;
	size_t dl = 0;
	if (sp_base64_decode(&dec, &dl, b64, strlen(b64), SP_B64_STD, NULL) < 0 ||
	    memchr(dec, 0, dl) || !memchr(dec, ':', dl) || dec[0] == ':')
		return sp_error(err, SP_ERR_PARSE, "credentials are not base64 of USER:PASSWORD");
	char *colon = memchr(dec, ':', dl);
	*user = sp_xstrndup((const char *)dec, (size_t)(colon - (char *)dec));
	*pass = sp_xstrndup(colon + 1, dl - (size_t)(colon + 1 - (char *)dec));
	return 0;
}

static char *env_path(const char *var, const char *suffix)
{
	const char *v = getenv(var);
	return v && *v ? sp_xasprintf("%s%s", v, suffix) : NULL;
}

int sp_image_auth_lookup(const char *authfile, const sp_image_ref *ref, char **user,
			 char **pass, char **source, sp_err **err)
{
	*user = *pass = NULL;
	if (source)
		*source = NULL;
	/* podman's and skopeo's order; docker's file last. */
	char *cands[6] = {0};
	size_t n = 0;
	if (authfile) {
		cands[n++] = sp_xstrdup(authfile);
	} else {
		char *p;
		if ((p = env_path("REGISTRY_AUTH_FILE", "")))
			cands[n++] = p;
		if ((p = env_path("XDG_RUNTIME_DIR", "/containers/auth.json")))
			cands[n++] = p;
		else
			cands[n++] = sp_xasprintf("/run/containers/%u/auth.json", (unsigned)getuid());
		if ((p = env_path("XDG_CONFIG_HOME", "/containers/auth.json")))
			cands[n++] = p;
		else if ((p = env_path("HOME", "/.config/containers/auth.json")))
			cands[n++] = p;
		if ((p = env_path("DOCKER_CONFIG", "/config.json")))
			cands[n++] = p;
		else if ((p = env_path("HOME", "/.docker/config.json")))
			cands[n++] = p;
	}
	int r = 0;
	for (size_t i = 0; i < n && !*user; i++) {
		_cleanup_free_ uint8_t *data = NULL;
		size_t len = 0;
		_cleanup_err_ sp_err *e = NULL;
		if (sp_read_file(&data, &len, cands[i], AUTH_FILE_MAX, &e) < 0) {
			if (authfile) { /* named by the user: must be there */
				r = sp_error(err, e->code, "%s", sp_err_msg(e));
				break;
			}
			continue;
		}
		if ((r = sp_image_auth_parse(data, len, ref, user, pass, err)) < 0) {
			sp_error_wrap(err, "%s", cands[i]);
			break;
		}
		if (*user && source)
			*source = sp_xstrdup(cands[i]);
	}
	for (size_t i = 0; i < n; i++)
		free(cands[i]);
	return r;
}
