/* SPDX-License-Identifier: Apache-2.0 */
/* The control protocol of a `sealpod run` pod (its supervisor's ctl.sock,
 * docs/run.md): frames and requests. The socket is root's, but the bytes
 * still come from another process, so they are parsed here, bounded, where
 * a fuzz target reaches them (fuzz/run_ctl.c).
 *
 * A frame is a type byte, a big-endian u32 length and the payload.
 *   client: 'q' {"op":"exec","container":C,"args":[...],"tty":B}
 *           'q' {"op":"stop","grace":S}
 *   server: 'o' / 'e' output, 'x' the exit status (decimal), or 'E' an
 *           error for the user. */
#ifndef SEALPOD_RUNCTL_H
#define SEALPOD_RUNCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

#define SP_RUNCTL_HEADER 5
#define SP_RUNCTL_MAX_FRAME (1024u * 1024)
#define SP_RUNCTL_MAX_REQUEST (64u * 1024)
#define SP_RUNCTL_MAX_ARGS 256
#define SP_RUNCTL_MAX_GRACE 3600

enum {
	SP_RUNCTL_REQUEST = 'q', /* client: the request, JSON */
	SP_RUNCTL_STDOUT = 'o',
	SP_RUNCTL_STDERR = 'e',
	SP_RUNCTL_EXIT = 'x',    /* payload: the status, decimal */
	SP_RUNCTL_ERROR = 'E',   /* payload: a message for the user */
};

/* Encodes a frame header for a payload of len bytes (at most
 * SP_RUNCTL_MAX_FRAME). */
SP_PUBLIC void sp_runctl_header(uint8_t out[SP_RUNCTL_HEADER], int type, size_t len);

/* Decodes a frame header: the type and the payload length, refused with
 * SP_ERR_LIMIT above SP_RUNCTL_MAX_FRAME. */
SP_PUBLIC int sp_runctl_header_parse(const uint8_t h[SP_RUNCTL_HEADER], int *type,
				  size_t *len, sp_err **err);

/* Splits the first whole frame off buf: 1 with *type, *payload (into buf),
 * *plen and *used set; 0 when buf holds no whole frame yet; < 0 on a bad
 * header. */
SP_PUBLIC int sp_runctl_frame_next(const uint8_t *buf, size_t len, int *type,
				const uint8_t **payload, size_t *plen, size_t *used,
				sp_err **err);

typedef enum sp_runctl_op { SP_RUNCTL_OP_EXEC = 1, SP_RUNCTL_OP_STOP } sp_runctl_op;

typedef struct sp_runctl_req {
	sp_runctl_op op;
	char *container; /* exec: NULL = the pod's first app container */
	char **args;     /* exec: 1..SP_RUNCTL_MAX_ARGS strings */
	size_t n_args;
	bool tty;
	bool has_grace;  /* stop */
	unsigned grace;  /* 0..SP_RUNCTL_MAX_GRACE seconds */
} sp_runctl_req;

/* Parses a request frame's payload (JSON, at most SP_RUNCTL_MAX_REQUEST
 * bytes). On error the message is meant for the user at the other end. */
SP_PUBLIC int sp_runctl_req_parse(sp_runctl_req **out, const uint8_t *data, size_t len,
			       sp_err **err);
SP_PUBLIC void sp_runctl_req_free(sp_runctl_req *r);

#endif
