/* SPDX-License-Identifier: Apache-2.0 */
/* The stub resolver's answer parser on arbitrary bytes (as a nameserver,
 * or anyone who can send the guest a datagram, would write them), for
 * both query types, and the resolv.conf parser on the same bytes. The
 * first two bytes are the id the answer must carry. */
#include <string.h>

#include "sealpod/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint16_t types[] = {SP_DNS_A, SP_DNS_AAAA};
	uint16_t id = size >= 2 ? (uint16_t)((data[0] << 8) | data[1]) : 0;
	for (size_t t = 0; t < 2; t++) {
		sp_dns_addr out[4];
		size_t n = 99;
		sp_err *err = NULL;
		int r = sp_dns_response_parse(data, size, id, "registry.example.com", types[t], out,
					      4, &n, &err);
		if (r == 0 && n > 4)
			abort();
		if (r < 0 && !err)
			abort();
		sp_err_free(err);
	}
	sp_dns_conf c;
	sp_err *err = NULL;
	if (sp_dns_conf_parse(&c, (const char *)data, size, &err) == 0 &&
	    (c.nservers == 0 || c.nservers > SP_DNS_MAX_SERVERS))
		abort();
	sp_err_free(err);
	return 0;
}
