/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI runtime spec parser: the host sends config.json to the agent. */
#include "sealpod/oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sp_err *e = NULL;
	sp_oci_spec_check(data, size, &e);
	sp_err_clear(&e);
	return 0;
}
