/* SPDX-License-Identifier: Apache-2.0 */
/* The guest agent's services (proto/agent.proto: sealpod.agent.v1.AgentService
 * and sealpod.agent.v1.Health), independent of the transport: the program
 * hands sp_agent_methods() to a ttRPC server, tests and the fuzzer call
 * sp_agent_dispatch() directly. Every request from the host is hostile
 * input; every request passes the pod policy before it has any effect. */
#ifndef SEALPOD_AGENT_H
#define SEALPOD_AGENT_H

#include <sys/types.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/ttrpc.h"

#define SP_AGENT_SERVICE "sealpod.agent.v1.AgentService"
#define SP_AGENT_HEALTH_SERVICE "sealpod.agent.v1.Health"
/* Default per-stream output buffer (stdout, stderr of each process). */
#define SP_AGENT_STREAM_MAX (1u << 20)
/* The workload attestation endpoint inside the pod's network. */
#define SP_AGENT_ATTEST_ADDR "127.0.0.1:8006"

/* How the agent reaches its TEE. The program adapts tee.h to this; tests
 * and the fuzzer give a fake, so the agent's logic is tested without a
 * socket. get_report returns SP_SNP_REPORT_LEN bytes over report_data. */
typedef struct sp_agent_tee {
	const char *kind; /* "snp", "sim" or "none" */
	int (*get_report)(void *ctx, const uint8_t report_data[64],
			  uint8_t **report, size_t *report_len, uint8_t **certs,
			  size_t *certs_len, sp_err **err);
	void *ctx;
} sp_agent_tee;

struct sp_agent;

typedef struct sp_agent_opts {
	unsigned version; /* 1 */
	/* Native mode (not PID 1 of a UVM): test-only features are allowed
	 * (Storage driver "dir", rootfs_dir) and guest paths such as
	 * /run/sealpod/sandbox live under state_dir instead. */
	bool native;
	/* Where the agent keeps sandbox state (volumes, rootfs mounts);
	 * NULL = /run/sealpod. Created if missing. */
	const char *state_dir;
	/* Host-provided OCI image store (native mode), NULL = none. */
	const char *image_store;
	/* Native mode only: the rootfs of containers created without an
	 * image or "dir" storage (tests use a busybox tree). */
	const char *rootfs_dir;
	/* The TEE; NULL = none (SetPolicy and GetReport then fail). Copied. */
	const sp_agent_tee *tee;
	/* Per-stream output buffer bound; 0 = SP_AGENT_STREAM_MAX. */
	size_t stream_max;
	/* "IPv4:PORT" of the workload attestation endpoint in the pod's
	 * network namespace (opened at CreateSandbox, closed at
	 * DestroySandbox), NULL = disabled. Checked by sp_agent_new. */
	const char *attest_listen;
	/* When the program has a reaper that owns every waitpid() (PID 1's):
	 * the agent calls watch_child(agent, pid) for each process it starts
	 * (possibly with its own lock held), and the reaper reports the exit
	 * through sp_agent_child_exited(). NULL = the agent collects its own
	 * children through pidfds. */
	void (*watch_child)(struct sp_agent *agent, pid_t pid);
} sp_agent_opts;

typedef struct sp_agent sp_agent;

SP_PUBLIC int sp_agent_new(sp_agent **out, const sp_agent_opts *opts,
			   sp_err **err);
/* Kills every container process, stops the I/O thread and the
 * attestation endpoint, frees everything. */
SP_PUBLIC void sp_agent_free(sp_agent *a);

/* The ttRPC method table (both services); user must be the agent.
 * Control requests (Health.Check, RemoveContainer, DestroySandbox,
 * SignalProcess, ListProcesses, StatsContainer, GetGuestDetails) carry
 * SP_TTRPC_CONTROL: give the server reserved_workers for them. */
SP_PUBLIC void sp_agent_methods(sp_agent *a, const sp_ttrpc_method **table,
				size_t *n);
/* The server's on_cancel hook (user = the agent): wakes the blocked calls
 * so those of a closed connection return CANCELLED. Never blocks. */
SP_PUBLIC void sp_agent_on_cancel(void *user);

/* One request, as a ttRPC server handler would see it. Returns an
 * sp_rpc_code; on SP_RPC_OK *out holds the serialized response
 * (malloc'ed), else *status_msg (malloc'ed) says why. */
SP_PUBLIC int sp_agent_dispatch(sp_agent *a, const char *service,
				const char *method, const uint8_t *payload,
				size_t len, uint64_t deadline_ns, uint8_t **out,
				size_t *out_len, char **status_msg);

/* Tells the agent that a child it started exited (the reaper collected
 * it). Safe from any thread, also while the agent calls watch_child: the
 * status is queued and applied by the agent's I/O thread. */
SP_PUBLIC void sp_agent_child_exited(sp_agent *a, pid_t pid, int wait_status);

/* Wakes every blocked call (ReadStdout, WaitProcess, ...) so a server can
 * shut down. */
SP_PUBLIC void sp_agent_shutdown(sp_agent *a);


/* The AgentService/Health method for a name ("CreateContainer" or
 * "Health/Check"): its request message type ("CreateContainerRequest")
 * and the protobuf-c descriptors of request and response; false if
 * unknown. Used by `sealpod agent call`. */
SP_PUBLIC bool sp_agent_method_info(const char *name, const char **service,
				    const char **method,
				    const char **request_type,
				    const void **request_desc,
				    const void **response_desc);
/* A response payload as JSON: field names as in agent.proto, bytes as
 * base64, except bytes that hold JSON documents (process_list in "json"
 * format stays base64; see docs/agent.md). */
SP_PUBLIC int sp_agent_response_to_json(char **out, const char *method,
					const uint8_t *payload, size_t len,
					sp_err **err);

#endif
