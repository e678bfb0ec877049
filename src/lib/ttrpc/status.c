/* SPDX-License-Identifier: Apache-2.0 */
/* google.rpc.Code names and their mapping to and from sp_err codes. */
#include "sealpod/ttrpc.h"

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *sp_rpc_code_name(int rpc_code)
{
	if (rpc_code < 0 || (size_t)rpc_code >= SP_ARRAY_LEN(code_names))
		return "UNKNOWN_CODE";
	return code_names[rpc_code];
}

int sp_rpc_code_from_err(int sp_err_code)
{
	switch (sp_err_code) {
	case SP_OK:
		return SP_RPC_OK;
	case SP_ERR_INVALID:
	case SP_ERR_PARSE:
		return SP_RPC_INVALID_ARGUMENT;
	/* A failed signature, certificate or appraisal is a refusal. */
	case SP_ERR_DENIED:
	case SP_ERR_SIGNATURE:
	case SP_ERR_CERTIFICATE:
	case SP_ERR_APPRAISAL:
		return SP_RPC_PERMISSION_DENIED;
	case SP_ERR_TIMEOUT:
		return SP_RPC_DEADLINE_EXCEEDED;
	case SP_ERR_NOT_FOUND:
		return SP_RPC_NOT_FOUND;
	case SP_ERR_LIMIT:
		return SP_RPC_RESOURCE_EXHAUSTED;
	case SP_ERR_UNSUPPORTED:
		return SP_RPC_UNIMPLEMENTED;
	case SP_ERR_EXISTS:
		return SP_RPC_ALREADY_EXISTS;
	case SP_ERR_STATE:
		return SP_RPC_FAILED_PRECONDITION;
	default: /* SP_ERR_SYSTEM, SP_ERR_PROTOCOL, unknown */
		return SP_RPC_INTERNAL;
	}
}

int sp_err_from_rpc_code(int rpc_code)
{
	switch (rpc_code) {
	case SP_RPC_OK:
		return SP_OK;
	case SP_RPC_PERMISSION_DENIED:
		return SP_ERR_DENIED;
	case SP_RPC_NOT_FOUND:
		return SP_ERR_NOT_FOUND;
	case SP_RPC_DEADLINE_EXCEEDED:
		return SP_ERR_TIMEOUT;
	case SP_RPC_INVALID_ARGUMENT:
		return SP_ERR_INVALID;
	case SP_RPC_ALREADY_EXISTS:
		return SP_ERR_EXISTS;
	case SP_RPC_FAILED_PRECONDITION:
		return SP_ERR_STATE;
	case SP_RPC_UNIMPLEMENTED:
		return SP_ERR_UNSUPPORTED;
	case SP_RPC_RESOURCE_EXHAUSTED:
		return SP_ERR_LIMIT;
	default:
		return SP_ERR_PROTOCOL;
	}
}
