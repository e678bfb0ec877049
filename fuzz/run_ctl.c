/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod run`'s control socket: the input is a byte stream of frames as a
 * client (or a supervisor) would send them; every whole frame is split
 * off, and request frames are parsed. Invariants: a frame never reaches
 * past the input, a parsed request is within its limits. */
#include <stdlib.h>
#include <string.h>

#include "sealpod/runctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	for (;;) {
		int type;
		const uint8_t *p;
		size_t plen, used;
		sp_err *err = NULL;
		int r = sp_runctl_frame_next(data + off, size - off, &type, &p, &plen, &used, &err);
		if (r < 0) {
			if (!err || !err->msg)
				abort();
			sp_err_free(err);
			break;
		}
		if (r == 0)
			break;
		if (used != SP_RUNCTL_HEADER + plen || used > size - off || p != data + off + 5)
			abort();
		off += used;
		if (type != SP_RUNCTL_REQUEST)
			continue;
		sp_runctl_req *req = NULL;
		if (sp_runctl_req_parse(&req, p, plen, &err) < 0) {
			if (!err || !err->msg || req)
				abort();
			sp_err_free(err);
			continue;
		}
		if (req->op == SP_RUNCTL_OP_EXEC) {
			if (req->n_args < 1 || req->n_args > SP_RUNCTL_MAX_ARGS)
				abort();
			for (size_t i = 0; i < req->n_args; i++)
				if (!req->args[i])
					abort();
		} else if (req->op == SP_RUNCTL_OP_STOP) {
			if (req->grace > SP_RUNCTL_MAX_GRACE || (!req->has_grace && req->grace))
				abort();
		} else {
			abort();
		}
		sp_runctl_req_free(req);
	}
	return 0;
}
