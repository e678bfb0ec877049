/* SPDX-License-Identifier: Apache-2.0 */
/* ttRPC (containerd/ttrpc wire protocol v1.1): unary calls over a byte
 * stream. A server dispatches requests by service and method to handlers
 * registered in a table; a client issues calls with deadlines. Payloads
 * are opaque serialized protobuf messages: callers pack and unpack them
 * with their protobuf-c types. */
#ifndef SEALPOD_TTRPC_H
#define SEALPOD_TTRPC_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

/* Largest frame body (a serialized Request or Response), as in Go's
 * ttrpc; a larger one is answered RESOURCE_EXHAUSTED. */
#define SP_TTRPC_MAX_MESSAGE (4u << 20)
/* Most metadata entries one request may carry (RESOURCE_EXHAUSTED above). */
#define SP_TTRPC_MAX_METADATA 1024u

/* google.rpc.Code values carried in Response.status. */
enum sp_rpc_code {
	SP_RPC_OK = 0,
	SP_RPC_CANCELLED = 1,
	SP_RPC_UNKNOWN = 2,
	SP_RPC_INVALID_ARGUMENT = 3,
	SP_RPC_DEADLINE_EXCEEDED = 4,
	SP_RPC_NOT_FOUND = 5,
	SP_RPC_ALREADY_EXISTS = 6,
	SP_RPC_PERMISSION_DENIED = 7,
	SP_RPC_RESOURCE_EXHAUSTED = 8,
	SP_RPC_FAILED_PRECONDITION = 9,
	SP_RPC_ABORTED = 10,
	SP_RPC_OUT_OF_RANGE = 11,
	SP_RPC_UNIMPLEMENTED = 12,
	SP_RPC_INTERNAL = 13,
	SP_RPC_UNAVAILABLE = 14,
	SP_RPC_DATA_LOSS = 15,
	SP_RPC_UNAUTHENTICATED = 16,
};

/* Maps an sp_err code to the status a peer should see (denied →
 * PERMISSION_DENIED, not-found → NOT_FOUND, ...; SP_OK → OK; codes with
 * no closer match → INTERNAL). docs/ttrpc.md has the table. */
SP_PUBLIC int sp_rpc_code_from_err(int sp_err_code);
/* The reverse, used by the client: PERMISSION_DENIED → SP_ERR_DENIED,
 * NOT_FOUND → SP_ERR_NOT_FOUND, DEADLINE_EXCEEDED → SP_ERR_TIMEOUT,
 * INVALID_ARGUMENT → SP_ERR_INVALID, ALREADY_EXISTS → SP_ERR_EXISTS,
 * FAILED_PRECONDITION → SP_ERR_STATE, UNIMPLEMENTED → SP_ERR_UNSUPPORTED,
 * RESOURCE_EXHAUSTED → SP_ERR_LIMIT, OK → SP_OK, others SP_ERR_PROTOCOL. */
SP_PUBLIC int sp_err_from_rpc_code(int rpc_code);
/* "OK", "NOT_FOUND", ...; "UNKNOWN_CODE" for values outside the enum. */
SP_PUBLIC const char *sp_rpc_code_name(int rpc_code);

typedef struct sp_ttrpc_kv {
	const char *key;
	const char *value;
} sp_ttrpc_kv;

/* What a handler sees of one request. Valid only during the call. */
typedef struct sp_ttrpc_call {
	const char *service;
	const char *method;
	const uint8_t *payload;
	size_t payload_len;
	uint64_t deadline_ns;          /* CLOCK_MONOTONIC; 0 = none */
	const sp_ttrpc_kv *metadata;
	size_t n_metadata;
	/* Peer credentials on unix sockets; pid -1 when unknown. */
	pid_t peer_pid;
	uid_t peer_uid;
	gid_t peer_gid;
	void *conn_data;               /* per-connection pointer, see below */
	const void *conn_;             /* the server's; see sp_ttrpc_call_cancelled */
} sp_ttrpc_call;

/* Returns the first value of a metadata key, or NULL. */
SP_PUBLIC const char *sp_ttrpc_call_meta(const sp_ttrpc_call *c, const char *key);
/* True once the call's connection closed: nobody waits for the answer, so
 * a blocked handler should give up (its response is dropped). The server
 * calls opts.on_cancel then, to wake such handlers. */
SP_PUBLIC bool sp_ttrpc_call_cancelled(const sp_ttrpc_call *c);

/* A handler writes a serialized response payload into *out (malloc'ed,
 * freed by the server) and returns SP_RPC_OK, or returns another status
 * code with a message in *status_msg (malloc'ed; may stay NULL). A
 * negative return is taken as an sp_err code and mapped with
 * sp_rpc_code_from_err(). Handlers run on worker threads, several at a
 * time (also for one connection), and should check call->deadline_ns in
 * long work: the server does not interrupt them. A response larger than
 * SP_TTRPC_MAX_MESSAGE is replaced by RESOURCE_EXHAUSTED. */
typedef int (*sp_ttrpc_handler)(void *user, const sp_ttrpc_call *call,
				uint8_t **out, size_t *out_len,
				char **status_msg);

/* sp_ttrpc_method.flags: a short control request (health, stop, remove)
 * that may run on the workers reserved for such requests. */
#define SP_TTRPC_CONTROL 1u

typedef struct sp_ttrpc_method {
	const char *service;   /* full proto name, e.g. "containerd.task.v2.Task" */
	const char *method;    /* e.g. "Create" */
	sp_ttrpc_handler fn;
	unsigned flags;        /* SP_TTRPC_CONTROL or 0 */
} sp_ttrpc_method;

typedef struct sp_ttrpc_server sp_ttrpc_server;

typedef struct sp_ttrpc_server_opts {
	unsigned version;        /* 1 */
	unsigned workers;        /* at most this many handler threads (started
				  * as jobs wait); 0 = 4 */
	/* Called when a connection opens/closes; the return value of
	 * on_connect becomes call->conn_data. Both optional. */
	void *(*on_connect)(void *user, int fd);
	void (*on_disconnect)(void *user, void *conn_data);
	/* Requests of one connection being handled or queued at once; more
	 * are left unread until one finishes. 0 = 128. Keep it below
	 * `workers` so one connection cannot occupy every worker. */
	unsigned max_inflight;
	/* Workers only SP_TTRPC_CONTROL methods may use: other requests run
	 * on at most workers - reserved_workers threads at once, so blocked
	 * calls never starve health checks and removals. 0 = none; at most
	 * workers - 1. */
	unsigned reserved_workers;
	/* Non-control requests of one connection running at once; more wait
	 * in the queue (and others' requests run). 0 (or above workers -
	 * reserved_workers) = workers - reserved_workers. */
	unsigned max_running_per_conn;
	/* Called (from the server's I/O thread, which it must not block)
	 * when a connection with requests in flight closed: their calls are
	 * now cancelled (sp_ttrpc_call_cancelled). Optional. */
	void (*on_cancel)(void *user);
} sp_ttrpc_server_opts;

SP_PUBLIC sp_ttrpc_server *sp_ttrpc_server_new(const sp_ttrpc_method *methods,
					       size_t n_methods, void *user,
					       const sp_ttrpc_server_opts *opts);
/* Listening sockets: the server accepts connections on them. The server
 * takes ownership of the fd (also on failure) and closes it when freed. */
SP_PUBLIC int sp_ttrpc_server_add_listener(sp_ttrpc_server *s, int listen_fd,
					   sp_err **err);
/* A single already-connected byte stream (a socket or a virtio-serial
 * character device). With reopen_path set, when the stream ends (the host
 * side closed the port) the server reopens the path and keeps serving;
 * reopen_path is dialled like "serial:PATH" (a character device, or a
 * unix socket to connect to). The server takes ownership of fd. */
SP_PUBLIC int sp_ttrpc_server_add_stream(sp_ttrpc_server *s, int fd,
					 const char *reopen_path, sp_err **err);
/* Serves until sp_ttrpc_server_shutdown() is called (from any thread, a
 * signal-safe context excepted, or a handler). After a shutdown it stops
 * reading, lets running handlers finish and sends their responses (for at
 * most 2 s), then returns 0. Runs at most once per server. */
SP_PUBLIC int sp_ttrpc_server_run(sp_ttrpc_server *s, sp_err **err);
SP_PUBLIC void sp_ttrpc_server_shutdown(sp_ttrpc_server *s);
SP_PUBLIC void sp_ttrpc_server_free(sp_ttrpc_server *s);

/* Addresses: "unix:PATH" (or "unix://PATH", or a bare absolute path),
 * "vsock:CID:PORT" (CID a number, or "any" when listening), "serial:PATH"
 * (a character device or a unix socket of a QEMU chardev; one byte
 * stream). Listening is for unix and vsock; a stale unix socket file (no
 * one accepting) is replaced, a live one is SP_ERR_EXISTS. Returned fds
 * are close-on-exec; dialled ones are blocking. */
SP_PUBLIC int sp_ttrpc_listen(int *out_fd, const char *address, sp_err **err);
SP_PUBLIC int sp_ttrpc_dial(int *out_fd, const char *address,
			    uint64_t timeout_ns, sp_err **err);

typedef struct sp_ttrpc_client sp_ttrpc_client;

/* Takes ownership of a connected fd. Safe for concurrent calls from
 * several threads; responses are matched by stream id. */
SP_PUBLIC sp_ttrpc_client *sp_ttrpc_client_new(int fd);
/* Dials address, and on a broken connection redials it on the next call. */
SP_PUBLIC int sp_ttrpc_client_connect(sp_ttrpc_client **out, const char *address,
				      uint64_t timeout_ns, sp_err **err);
/* One unary call. timeout_ns 0 = none (sent as timeout_nano). Returns 0
 * with *resp (malloc'ed, may be NULL when empty) on an OK status. On a
 * non-OK status returns sp_err_from_rpc_code(status): *rpc_code
 * (optional) gets the status code and err the status message, prefixed
 * with "service/method: ". A request larger than SP_TTRPC_MAX_MESSAGE is
 * refused before sending (SP_ERR_LIMIT, RESOURCE_EXHAUSTED); a timeout is
 * SP_ERR_TIMEOUT with DEADLINE_EXCEEDED; transport failures give rpc_code
 * UNAVAILABLE (SP_ERR_SYSTEM or SP_ERR_PROTOCOL) and, for a client made
 * by sp_ttrpc_client_connect(), the next call redials. */
SP_PUBLIC int sp_ttrpc_client_call(sp_ttrpc_client *c, const char *service,
				   const char *method, const uint8_t *req,
				   size_t req_len, const sp_ttrpc_kv *metadata,
				   size_t n_metadata, uint64_t timeout_ns,
				   uint8_t **resp, size_t *resp_len,
				   int *rpc_code, sp_err **err);
SP_PUBLIC void sp_ttrpc_client_free(sp_ttrpc_client *c);

#endif
