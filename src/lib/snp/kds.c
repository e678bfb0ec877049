/* SPDX-License-Identifier: Apache-2.0 */
/* AMD's Key Distribution Service: URLs, a local cache, and the HTTPS fetch.
 * A file of its own so that programs that never fetch (the guest agent,
 * whose TEE client reaches certs.c) do not link libcurl: the static
 * library pulls objects in by symbol, and only this one names curl. */
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "sealpod/bytes.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/hash.h"
#include "snp-internal.h"

#define KDS_BASE "https://kdsintf.amd.com"

static const char *kds_product(const char *product)
{
	int cpu = sp_snp_product_cpu(product);
	return cpu == SP_SNP_CPU_UNKNOWN ? NULL : sp_snp_cpu_name(cpu);
}

char *sp_snp_kds_vcek_url(const char *product,
			  const uint8_t chip_id[SP_SNP_CHIP_ID_LEN],
			  const sp_snp_tcb *tcb, int cpu)
{
	const char *prod = kds_product(product);
	if (!prod)
		return NULL;
	if (cpu == SP_SNP_CPU_UNKNOWN)
		cpu = sp_snp_product_cpu(product);
	if (cpu == SP_SNP_CPU_TURIN) {
		char hex[17];
		sp_hex_encode(hex, chip_id, 8);
		return sp_xasprintf("%s/vcek/v1/%s/%s?fmcSPL=%02u&blSPL=%02u"
				    "&teeSPL=%02u&snpSPL=%02u&ucodeSPL=%02u",
				    KDS_BASE, prod, hex, tcb->fmc, tcb->bl,
				    tcb->tee, tcb->snp, tcb->ucode);
	}
	char hex[129];
	sp_hex_encode(hex, chip_id, 64);
	return sp_xasprintf("%s/vcek/v1/%s/%s?blSPL=%02u&teeSPL=%02u"
			    "&snpSPL=%02u&ucodeSPL=%02u",
			    KDS_BASE, prod, hex, tcb->bl, tcb->tee, tcb->snp,
			    tcb->ucode);
}

char *sp_snp_kds_chain_url(const char *product, bool vlek)
{
	const char *prod = kds_product(product);
	if (!prod)
		return NULL;
	return sp_xasprintf("%s/%s/v1/%s/cert_chain", KDS_BASE,
			    vlek ? "vlek" : "vcek", prod);
}

char *sp_snp_kds_cache_path(const char *dir, const char *url)
{
	/* Named by the URL's hash: URLs hold '/', '?' and '&'. */
	uint8_t h[SP_SHA256_LEN];
	char hex[2 * SP_SHA256_LEN + 1];
	sp_sha256(h, url, strlen(url));
	sp_hex_encode(hex, h, sizeof(h));
	return sp_xasprintf("%s/kds-%s", dir, hex);
}

static size_t curl_sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sp_buf *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > 1024 * 1024)
		return 0; /* refuse oversize answers */
	sp_buf_put(b, ptr, n);
	return n;
}

int sp_snp_kds_get(uint8_t **out, size_t *len, const char *url,
		   const char *cache_dir, bool offline, sp_err **err)
{
	_cleanup_free_ char *path = sp_snp_kds_cache_path(cache_dir, url);
	if (access(path, F_OK) == 0)
		return sp_read_file(out, len, path, 1024 * 1024, err);
	if (offline)
		return sp_error(err, SP_ERR_NOT_FOUND,
				"KDS: %s is not in the cache %s and fetching "
				"is off", url, cache_dir);
	CURL *c = curl_easy_init();
	if (!c)
		return sp_error(err, SP_ERR_SYSTEM, "KDS: curl_easy_init failed");
	_cleanup_buf_ sp_buf body = SP_BUF_INIT;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	CURLcode rc = curl_easy_perform(c);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK)
		return sp_error(err, SP_ERR_NOT_FOUND,
				"KDS: fetching %s failed: %s; put the "
				"certificate in %s or pass it with --vcek/--chain",
				url, curl_easy_strerror(rc), path);
	if (sp_mkdir_p(cache_dir, 0755, err) < 0 ||
	    sp_write_file_atomic(path, body.data, body.len, 0644, err) < 0)
		return sp_error_wrap(err, "KDS cache");
	*len = body.len;
	*out = sp_buf_steal(&body, NULL);
	return 0;
}
