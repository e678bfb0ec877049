/* SPDX-License-Identifier: Apache-2.0 */
/* policy.registries: the https registries the guest may pull from and the
 * CA bundle it trusts for each. The guest image carries no CA store, so a
 * trust anchor can only come from measured configuration: the policy,
 * bound to HOST_DATA (docs/policy.md, "Registries"). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "sealpod/file.h"
#include "sealpod/json.h"

#define MAX_REGISTRIES 16
#define MAX_CA_BYTES (64u << 10)

/* "host[:port]" with host a DNS name, an IPv4 address or "[v6]". */
static bool host_ok(const char *h)
{
	size_t n = strlen(h);
	if (!n || n > 255)
		return false;
	const char *port = NULL;
	if (h[0] == '[') {
		const char *e = strchr(h, ']');
		if (!e || e == h + 1 || strspn(h + 1, "0123456789abcdefABCDEF:.") != (size_t)(e - h - 1))
			return false;
		if (e[1] && e[1] != ':')
			return false;
		port = e[1] ? e + 1 : NULL;
	} else {
		size_t hl = strcspn(h, ":");
		if (!hl || strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != hl)
			return false;
		port = h[hl] ? h + hl : NULL;
	}
	if (port) {
		size_t d = strlen(port + 1);
		if (!d || d > 5 || strspn(port + 1, "0123456789") != d || port[1] == '0' ||
		    atoi(port + 1) > 65535)
			return false;
	}
	return true;
}

/* Certificates in a PEM bundle; -1 when any PEM block in it is not a
 * certificate (a private key pasted along, say) or does not parse. */
static int count_certs(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	if (!b)
		sp_oom();
	int n = 0;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;
	while (PEM_read_bio(b, &name, &header, &data, &len) == 1) {
		const unsigned char *q = data;
		X509 *x = strcmp(name, PEM_STRING_X509) ? NULL : d2i_X509(NULL, &q, len);
		bool ok = x && q == data + len;
		X509_free(x);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		if (!ok) {
			n = -1;
			break;
		}
		n++;
	}
	/* Only "no more PEM data" after at least one certificate is a clean
	 * end. */
	unsigned long e = ERR_peek_last_error();
	bool clean = ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
	ERR_clear_error();
	BIO_free(b);
	return n > 0 && clean ? n : -1;
}

int sp_policy_load_registries(sp_policy *p, const json_t *regs, sp_err **err)
{
	static const char *const rp = "policy.registries";
	if (!regs)
		return 0;
	if (!json_is_array(regs))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an array of {host, ca}", rp);
	size_t n = json_array_size(regs);
	if (n > MAX_REGISTRIES)
		return sp_error(err, SP_ERR_PARSE, "%s: %zu entries, at most %d", rp, n,
				MAX_REGISTRIES);
	p->regs = sp_xcalloc(n ? n : 1, sizeof(*p->regs));
	for (size_t i = 0; i < n; i++) {
		const json_t *r = json_array_get(regs, i);
		_cleanup_free_ char *path = sp_xasprintf("%s[%zu]", rp, i);
		if (!json_is_object(r))
			return sp_error(err, SP_ERR_PARSE, "%s: expected an object {host, ca}", path);
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)r, k, v) if (strcmp(k, "host") && strcmp(k, "ca"))
			return sp_error(err, SP_ERR_PARSE,
					"%s: unknown key `%s` (docs/policy.md lists the keys)", path, k);
		struct policy_registry *g = &p->regs[i];
		if (sp_json_get_string(r, "host", true, &g->host, path, err) < 0 ||
		    sp_json_get_string(r, "ca", true, &g->ca, path, err) < 0)
			return (*err)->code;
		if (!host_ok(g->host))
			return sp_error(err, SP_ERR_PARSE,
					"%s.host: `%.100s` must be HOST[:PORT] as the guest reaches the registry (no scheme or path), e.g. 10.0.2.2:5443",
					path, g->host);
		for (size_t k2 = 0; k2 < i; k2++)
			if (!strcasecmp(p->regs[k2].host, g->host))
				return sp_error(err, SP_ERR_PARSE, "%s.host: `%s` appears twice", path,
						g->host);
		if (strlen(g->ca) > MAX_CA_BYTES)
			return sp_error(err, SP_ERR_PARSE, "%s.ca: more than %u bytes", path,
					MAX_CA_BYTES);
		/* "system": the CA bundle measured into the guest image
		 * (docs/images.md). */
		if (strcmp(g->ca, SP_POLICY_CA_SYSTEM) && count_certs(g->ca) < 0)
			return sp_error(err, SP_ERR_PARSE,
					"%s.ca: expected \"system\" or PEM certificates (-----BEGIN CERTIFICATE-----), one or more, and nothing else",
					path);
		p->n_regs++;
	}
	return 0;
}

/* The entry for an https://host[:port][/] URL, or NULL. */
static const struct policy_registry *find(const sp_policy *p, const char *url)
{
	if (!p || !url || strncmp(url, "https://", 8) != 0)
		return NULL;
	const char *h = url + 8;
	size_t n = strlen(h);
	if (n && h[n - 1] == '/')
		n--;
	for (size_t i = 0; i < p->n_regs; i++)
		if (strlen(p->regs[i].host) == n && !strncasecmp(p->regs[i].host, h, n))
			return &p->regs[i];
	return NULL;
}

bool sp_policy_registry_listed(const sp_policy *p, const char *url)
{
	return find(p, url) != NULL;
}

const char *sp_policy_registry_ca(const sp_policy *p, const char *url)
{
	const struct policy_registry *g = find(p, url);
	return g ? g->ca : NULL;
}

int sp_policy_registry_entry(json_t **out, const char *url, const char *ca_file, sp_err **err)
{
	*out = NULL;
	if (!url || strncmp(url, "https://", 8) != 0)
		return sp_error(err, SP_ERR_INVALID,
				"registry `%s`: a CA for the guest is only for https://HOST[:PORT] registries",
				url ? url : "");
	_cleanup_free_ char *host = sp_xstrdup(url + 8);
	size_t n = strlen(host);
	if (n && host[n - 1] == '/')
		host[n - 1] = 0;
	if (!host_ok(host))
		return sp_error(err, SP_ERR_INVALID,
				"registry `%s`: expected https://HOST[:PORT] with nothing after it", url);
	_cleanup_free_ uint8_t *pem = NULL;
	size_t len;
	if (sp_read_file(&pem, &len, ca_file, MAX_CA_BYTES, err) < 0)
		return sp_error_wrap(err, "registry CA file");
	_cleanup_free_ char *ca = sp_xmalloc(len + 1);
	memcpy(ca, pem, len);
	ca[len] = 0;
	if (strlen(ca) != len || count_certs(ca) < 0)
		return sp_error(err, SP_ERR_PARSE,
				"registry CA file %s: expected PEM certificates (-----BEGIN CERTIFICATE-----) and nothing else",
				ca_file);
	*out = json_pack("{s:s, s:s}", "host", host, "ca", ca);
	if (!*out)
		sp_oom();
	return 0;
}

/* ---- policy.kbs ------------------------------------------------------
 * The key broker the guest asks for confidential resources (the agent's
 * /cdh/resource endpoint). Its URL is trusted configuration, so it comes
 * from the policy (bound to HOST_DATA), never from the host; an https
 * broker needs its CA here, since the guest image has no CA store. */

/* "http://host[:port]" or "https://host[:port]" (an optional trailing
 * "/"); *tls says which. */
static bool kbs_url_ok(const char *url, bool *tls)
{
	const char *h;
	if (!strncmp(url, "http://", 7)) {
		h = url + 7;
		*tls = false;
	} else if (!strncmp(url, "https://", 8)) {
		h = url + 8;
		*tls = true;
	} else {
		return false;
	}
	size_t n = strlen(h);
	if (n && h[n - 1] == '/')
		n--;
	if (n > 255)
		return false;
	char host[256];
	memcpy(host, h, n);
	host[n] = 0;
	return host_ok(host);
}

int sp_policy_load_kbs(sp_policy *p, const json_t *kbs, sp_err **err)
{
	static const char *const kp = "policy.kbs";
	if (!kbs)
		return 0;
	if (!json_is_object(kbs))
		return sp_error(err, SP_ERR_PARSE, "%s: expected an object {url, ca}", kp);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)kbs, k, v) if (strcmp(k, "url") && strcmp(k, "ca"))
		return sp_error(err, SP_ERR_PARSE,
				"%s: unknown key `%s` (docs/policy.md lists the keys)", kp, k);
	const char *url = NULL, *ca = NULL;
	if (sp_json_get_string(kbs, "url", true, &url, kp, err) < 0 ||
	    sp_json_get_string(kbs, "ca", false, &ca, kp, err) < 0)
		return (*err)->code;
	bool tls = false;
	if (!kbs_url_ok(url, &tls))
		return sp_error(err, SP_ERR_PARSE,
				"%s.url: `%.100s` must be http://HOST[:PORT] or https://HOST[:PORT] as the guest reaches the broker (no path), e.g. http://10.0.2.2:8080",
				kp, url);
	if (tls && !ca)
		return sp_error(err, SP_ERR_PARSE,
				"%s.ca: an https broker needs its CA bundle here (the guest image has no CA store)",
				kp);
	if (!tls && ca)
		return sp_error(err, SP_ERR_PARSE,
				"%s.ca: a CA is only for an https broker; `%.100s` is plain http", kp, url);
	if (ca && strlen(ca) > MAX_CA_BYTES)
		return sp_error(err, SP_ERR_PARSE, "%s.ca: more than %u bytes", kp, MAX_CA_BYTES);
	if (ca && count_certs(ca) < 0)
		return sp_error(err, SP_ERR_PARSE,
				"%s.ca: expected PEM certificates (-----BEGIN CERTIFICATE-----), one or more, and nothing else",
				kp);
	p->kbs_url = url;
	p->kbs_ca = ca;
	return 0;
}

const char *sp_policy_kbs_url(const sp_policy *p, const char **ca)
{
	if (ca)
		*ca = p ? p->kbs_ca : NULL;
	return p ? p->kbs_url : NULL;
}

int sp_policy_kbs_entry(json_t **out, const char *url, const char *ca_file, sp_err **err)
{
	*out = NULL;
	bool tls = false;
	if (!url || !kbs_url_ok(url, &tls))
		return sp_error(err, SP_ERR_INVALID,
				"key broker `%s`: expected http://HOST[:PORT] or https://HOST[:PORT] with nothing after it",
				url ? url : "");
	if (tls && !ca_file)
		return sp_error(err, SP_ERR_INVALID,
				"key broker `%s`: an https broker needs its CA file (--kbs-ca); the guest has no CA store",
				url);
	if (!tls && ca_file)
		return sp_error(err, SP_ERR_INVALID,
				"key broker `%s`: a CA file is only for an https broker", url);
	_cleanup_free_ char *u = sp_xstrdup(url);
	size_t n = strlen(u);
	if (n && u[n - 1] == '/')
		u[n - 1] = 0;
	*out = json_pack("{s:s}", "url", u);
	if (!*out)
		sp_oom();
	if (!ca_file)
		return 0;
	_cleanup_free_ uint8_t *pem = NULL;
	size_t len;
	if (sp_read_file(&pem, &len, ca_file, MAX_CA_BYTES, err) < 0) {
		json_decref(*out);
		*out = NULL;
		return sp_error_wrap(err, "key broker CA file");
	}
	_cleanup_free_ char *ca = sp_xmalloc(len + 1);
	memcpy(ca, pem, len);
	ca[len] = 0;
	if (strlen(ca) != len || count_certs(ca) < 0) {
		json_decref(*out);
		*out = NULL;
		return sp_error(err, SP_ERR_PARSE,
				"key broker CA file %s: expected PEM certificates (-----BEGIN CERTIFICATE-----) and nothing else",
				ca_file);
	}
	json_object_set_new(*out, "ca", json_string(ca));
	return 0;
}
