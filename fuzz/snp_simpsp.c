/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the sim PSP protocol (frames both ways). */
#include <string.h>

#include "sealpod/snp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_err *err = NULL;
	sp_simpsp_frame f;
	if (sp_simpsp_parse_header(&f, data, size, &err) < 0) {
		sp_err_clear(&err);
		return 0;
	}
	if (f.body_len > SP_SIMPSP_MAX_BODY)
		abort();
	if (!f.body)
		return 0;
	if (f.body + f.body_len > data + size)
		abort();
	uint32_t st;
	const uint8_t *r = NULL, *c = NULL;
	size_t rl = 0, cl = 0;
	if (sp_simpsp_parse_response(f.body, f.body_len, &st, &r, &rl, &c, &cl,
				     &err) == 0) {
		if (r + rl > f.body + f.body_len || c + cl > f.body + f.body_len)
			abort();
		/* The certificates a guest receives go to the table parser. */
		sp_snp_cert_entry e[8];
		size_t n;
		if (cl)
			sp_snp_cert_table_parse(e, 8, &n, c, cl, NULL);
		sp_snp_report rep;
		if (rl)
			sp_snp_report_parse(&rep, r, rl, NULL);
	}
	sp_err_clear(&err);
	return 0;
}
