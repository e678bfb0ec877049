/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's private structures: sandbox state, container and process
 * table, bounded output streams. One mutex guards all of it; one condition
 * variable (on CLOCK_MONOTONIC) wakes every blocked call when anything
 * changes. The agent is small and calls are few: simplicity over
 * fine-grained locking. The lock is never held across network or slow
 * disk I/O (image pulls, process starts, deleting a container's files): a
 * request that drops it holds a reference on its container, whose phase
 * tells the others what is going on (docs/agent.md, "Container lifecycle"). */
#ifndef SEALPOD_AGENT_INTERNAL_H
#define SEALPOD_AGENT_INTERNAL_H

#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/types.h>

#include "agent.pb-c.h"
#include "agent/agent_config.h"
#include "sealpod/agent.h"
#include "sealpod/bytes.h"
#include "sealpod/hash.h"
#include "sealpod/tee.h"

/* Shorter names for the generated types. */
typedef Sealpod__Agent__V1__Storage AStorage;
typedef Sealpod__Agent__V1__CreateSandboxRequest ACreateSandbox;
typedef Sealpod__Agent__V1__CreateContainerRequest ACreateContainer;
typedef Sealpod__Agent__V1__StartContainerRequest AStartContainer;
typedef Sealpod__Agent__V1__RemoveContainerRequest ARemoveContainer;
typedef Sealpod__Agent__V1__ExecProcessRequest AExecProcess;
typedef Sealpod__Agent__V1__SignalProcessRequest ASignalProcess;
typedef Sealpod__Agent__V1__WaitProcessRequest AWaitProcess;
typedef Sealpod__Agent__V1__ReadStreamRequest AReadStream;
typedef Sealpod__Agent__V1__WriteStreamRequest AWriteStream;
typedef Sealpod__Agent__V1__CloseStdinRequest ACloseStdin;
typedef Sealpod__Agent__V1__TtyWinResizeRequest ATtyWinResize;
typedef Sealpod__Agent__V1__StatsContainerRequest AStatsContainer;
typedef Sealpod__Agent__V1__ListProcessesRequest AListProcesses;
typedef Sealpod__Agent__V1__UpdateContainerRequest AUpdateContainer;
typedef Sealpod__Agent__V1__SetPolicyRequest ASetPolicy;
typedef Sealpod__Agent__V1__CopyFileRequest ACopyFile;
typedef Sealpod__Agent__V1__GetReportRequest AGetReport;
typedef Sealpod__Agent__V1__UpdateInterfaceRequest AUpdateInterface;
typedef Sealpod__Agent__V1__UpdateRoutesRequest AUpdateRoutes;

/* Limits on what a (hostile) host can make the agent hold. */
#define AGENT_MAX_CONTAINERS 128
#define AGENT_MAX_EXECS 256      /* live exec processes per container */
#define AGENT_MAX_ID 128         /* container and exec ids */
#define AGENT_MAX_READ (1u << 20) /* one ReadStdout answer */
#define AGENT_DEFAULT_READ (64u << 10)

/* Bounded ring buffer fed from a pipe or pty by the I/O thread. When it is
 * full the thread stops reading the fd (so the writer blocks in the
 * kernel): output is never dropped. */
typedef struct stream {
	uint8_t *buf;
	size_t cap, head, len;
	int fd;     /* read end, -1 once closed */
	bool armed; /* fd is in the epoll set with EPOLLIN */
	bool eof;   /* no more data will come (fd closed) */
	struct proc *proc;
	int which;  /* 1 stdout, 2 stderr */
} stream;

/* PROC_STARTING: an exec whose process the engine is making without the
 * agent lock (proc_start); its id is taken, it has no pid nor streams yet.
 * Blocking calls (WaitProcess, ReadStdout, WriteStdin) wait for it;
 * SignalProcess, CloseStdin and TtyWinResize are refused. */
enum proc_state { PROC_STARTING, PROC_CREATED, PROC_RUNNING, PROC_EXITED };

typedef struct proc {
	struct proc *next;
	struct container *c;
	char *exec_id;   /* "" for the container's main process */
	pid_t pid;
	int pidfd;       /* -1 when the PID-1 reaper reports exits */
	int stdin_fd;    /* write end, -1 when closed */
	int pty;         /* pty master when terminal, else -1 */
	bool terminal;
	stream out, err;
	enum proc_state state;
	int status;      /* shell-style exit status */
	bool waited;     /* WaitProcess returned the status */
	bool dead;       /* unlinked, waiting for the I/O thread to free it */
} proc;

enum container_state { C_CREATED, C_RUNNING, C_STOPPED };

/* The id is taken from CP_CREATING until CP_GONE: the container stays in
 * the table (and in the policy state) until its removal has finished. */
enum container_phase {
	CP_CREATING, /* CreateContainer in progress (maybe pulling, unlocked) */
	CP_LIVE,     /* created; `state` says created/running/stopped */
	CP_REMOVING, /* a removal was asked for and runs (or waits for the
		      * creating request to give up) */
	CP_GONE,     /* unlinked: only holders of a reference still see it */
};

typedef struct container {
	struct container *next;
	char *id;
	char *name;
	unsigned refs;    /* the table's, plus each request holding it */
	enum container_phase phase;
	bool finishing;   /* container_finish runs (or ran) */
	unsigned starting;/* proc_start calls in the engine, unlocked: the
			   * engine container (ct), bundle and rootfs stay
			   * until they have returned (container_finish) */
	enum container_state state;
	proc *procs;      /* main process first */
	size_t n_execs;
	char *rootfs;     /* the root filesystem the processes see */
	char *bundle;     /* the agent's directory for it, removed at the end */
	bool rootfs_owned;/* rootfs is inside bundle (pulled image) */
	struct sp_container *ct; /* the engine's container, once created */
	uint64_t oom_seen;/* OOM kills already reported (GetOOMEvent) */
	json_t *secrets;  /* unsealed env values for execs (unseal.c), or NULL */
} container;

struct exit_note {
	struct exit_note *next;
	pid_t pid;
	int status;
};

struct sp_agent {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast on any state change */
	bool stopping;

	bool native;
	char *state_dir;
	char *image_store;
	char *rootfs_dir;
	size_t stream_max;
	sp_agent_tee tee;   /* fixed at sp_agent_new: read without the lock */
	bool have_tee;
	/* Serializes the engine's process starts (proc_start), which run
	 * without `lock`: a fork inherits every fd open at that moment, and
	 * a child holding another start's pipe or sync socket would delay
	 * that start's EOF until it execs. Taken only without `lock` held. */
	pthread_mutex_t engine_lock;
	/* Serializes TEE calls (agent_tee_report): the sim PSP's port in the
	 * guest opens once at a time. Never held while taking `lock`. */
	pthread_mutex_t tee_lock;

	/* Policy: set once, before any container. */
	bool policy_set;
	bool set_policy_busy;
	uint8_t policy_hash[SP_SHA256_LEN];
	void *policy;       /* sp_policy * when the evaluator is built in */
	void *policy_state; /* sp_policy_state * */

	bool sandbox_created;
	char *sandbox_id;
	char *hostname;
	/* The pod's image store from CreateSandbox ("tar:/dev/vdX" or
	 * "registry:URL"), NULL. */
	char *pod_store;
	bool uplink_up;     /* eth0 configured for registry pulls (uplink.c) */
	/* The pod's interfaces (UpdateInterface, network.c), NULL = none. */
	struct agent_podnet *podnet;
	/* Whether the pod holds the guest's network device: set with podnet
	 * (release stores, agent lock held), read by the attestation
	 * endpoint's thread, which never takes the agent lock (attest.c). */
	bool podnet_up;
	/* What CreateSandbox set up (sandbox.c), undone by DestroySandbox. */
	bool ns_made[3];    /* network, ipc, uts bind-mounted under ns/ */
	bool shm_mounted, emptydir_mounted;
	bool ever_container; /* SetPolicy is refused once one was created */

	container *containers;
	size_t n_containers;
	proc *graveyard;    /* unlinked procs, freed by the I/O thread */

	int epfd;
	int wakefd;         /* eventfd: wakes the I/O thread */
	pthread_t io_thread;
	bool io_started;
	bool io_quit;
	void (*watch_child)(struct sp_agent *, pid_t);
	/* Exits reported by an external reaper, applied by the I/O thread
	 * (the reporter may run while the agent lock is held). */
	pthread_mutex_t exit_lock;
	struct exit_note *exits;

	/* The workload attestation endpoint: its address in the pod's
	 * network namespace (NULL = none), the server while a sandbox
	 * exists. */
	char *attest_listen;
	struct attest_server *attest;
	/* The key broker from the policy (policy.kbs), NULL = none. Set once
	 * by SetPolicy (a release store) and read by the endpoint's thread
	 * without the agent lock (an acquire load); freed by gate_free. */
	struct attest_kbs *kbs;

	sp_ttrpc_method *methods;
	size_t n_methods;
};

/* A handler's outcome: an sp_rpc_code plus message, or a response. */
typedef struct reply {
	uint8_t *out;
	size_t out_len;
	char *msg;
} reply;

int reply_err(reply *r, int rpc_code, const char *fmt, ...) SP_PRINTF(3, 4);
int reply_sp_err(reply *r, sp_err *e, const char *what);
int reply_msg(reply *r, const ProtobufCMessage *m);
int reply_empty(reply *r);

/* Deadline waits on a->cond; false when the deadline passed. */
/* Also false when the calling request's connection closed (CANCELLED);
 * waits at most a second at a time so a cancellation is never missed. */
bool agent_wait(sp_agent *a, uint64_t deadline_ns);
void agent_broadcast(sp_agent *a);
/* The request this thread handles was cancelled (its connection closed). */
bool agent_cancelled(void);
/* After agent_wait returned false: UNAVAILABLE (shutting down) or
 * CANCELLED (connection closed) with r filled, or 0 for a deadline (the
 * caller then says what was not reached). */
int reply_wait_end(sp_agent *a, reply *r, const char *method);

bool valid_id(const char *s);
container *container_find(sp_agent *a, const char *id);
proc *proc_find(container *c, const char *exec_id);

/* stream.c */
void stream_init(stream *s, proc *p, int which, size_t cap, int fd);
/* Moves up to max bytes out; returns the count. */
size_t stream_take(stream *s, uint8_t *dst, size_t max);
/* I/O thread: fill from fd. Returns false when the stream ended. */
void stream_fill(sp_agent *a, stream *s);
void stream_arm(sp_agent *a, stream *s);
/* After a take: room again, so read the fd again (ends backpressure). */
void stream_resume(sp_agent *a, stream *s);
void stream_close(sp_agent *a, stream *s);

/* proc.c */
int io_start(sp_agent *a, sp_err **err);
void io_stop(sp_agent *a);
/* Starts p through the container engine with pipes (or a pty) the agent
 * owns, and registers them for I/O: the container's init (created, held
 * until StartContainer) when p->c has no engine container yet, else an
 * exec of the OCI `process` object in json. On failure p->pid stays -1.
 * Called with the lock held and a reference on p->c; the lock is dropped
 * around the engine call and the terminal hand-over (p->c->starting
 * counts it; p is not touched meanwhile) and taken again before the
 * result is committed into p (and p->c->ct for an init). The caller then
 * looks at p->c->phase: it may have changed meanwhile. */
int proc_start(sp_agent *a, proc *p, const char *json, size_t len,
	       bool terminal, sp_err **err);
/* The engine's state root: <state_dir>/oci. */
char *oci_root(sp_agent *a);
void proc_exited(sp_agent *a, proc *p, int wait_status);
/* Unlinks p from the epoll set and hands it to the I/O thread to free. */
void proc_bury(sp_agent *a, proc *p);
/* containers.c: an exec waited for and read to the end is forgotten. */
void maybe_forget_exec(sp_agent *a, proc *p);
proc *proc_new(container *c, const char *exec_id);

/* containers.c: the container and process handlers. */
/* `change`: the policy's pending record, committed when the id is claimed
 * (an exec: once started); a failure afterwards forgets it again. */
int h_create_container(sp_agent *a, const ACreateContainer *q, void **change,
		       reply *r);
int h_start_container(sp_agent *a, const AStartContainer *q, reply *r);
int h_remove_container(sp_agent *a, const ARemoveContainer *q,
		       uint64_t deadline, reply *r);
int h_exec_process(sp_agent *a, const AExecProcess *q, void **change,
		   reply *r);
int h_signal_process(sp_agent *a, const ASignalProcess *q, reply *r);
int h_wait_process(sp_agent *a, const AWaitProcess *q, uint64_t deadline,
		   reply *r);
int h_read_stream(sp_agent *a, const AReadStream *q, int which,
		  uint64_t deadline, reply *r);
int h_write_stdin(sp_agent *a, const AWriteStream *q, uint64_t deadline,
		  reply *r);
int h_close_stdin(sp_agent *a, const ACloseStdin *q, reply *r);
int h_tty_win_resize(sp_agent *a, const ATtyWinResize *q, reply *r);
int h_stats_container(sp_agent *a, const AStatsContainer *q, reply *r);
int h_list_processes(sp_agent *a, const AListProcesses *q, reply *r);
int h_update_container(sp_agent *a, const AUpdateContainer *q, reply *r);
int h_get_oom_event(sp_agent *a, uint64_t deadline, reply *r);
void containers_destroy_all(sp_agent *a);
/* Stops and removes every container (DestroySandbox): 0, or
 * SP_ERR_SYSTEM (a process survived SIGKILL) / SP_ERR_TIMEOUT (still
 * being created at the deadline) / SP_ERR_STATE (an exec's start did not
 * return) with *stuck naming it. */
int containers_remove_all(sp_agent *a, uint64_t deadline, char **stuck);

/* sandbox.c: the pod's shared resources (namespaces, /etc files, /dev/shm,
 * emptyDir volumes). */
int h_create_sandbox(sp_agent *a, const ACreateSandbox *q, reply *r);
int h_destroy_sandbox(sp_agent *a, uint64_t deadline, reply *r);
/* Undoes what CreateSandbox made (containers must be gone). */
void sandbox_teardown(sp_agent *a);
/* Makes an allowed spec runnable here: guest paths under
 * /run/sealpod/sandbox map to sandbox_dir(), emptyDir volumes are created
 * on demand, the cgroup path is the agent's. Fails naming a missing pod
 * resource. */
int sandbox_prepare_spec(sp_agent *a, json_t *spec, const char *cid,
			 sp_err **err);

/* network.c: the pod's network (UpdateInterface, UpdateRoutes). */
int h_update_interface(sp_agent *a, const AUpdateInterface *q, reply *r);
int h_update_routes(sp_agent *a, const AUpdateRoutes *q, reply *r);
/* Forgets the pod's interfaces (their namespace goes with the sandbox). */
void agent_net_forget(sp_agent *a);
/* Before a registry pull: the pod's namespace for this thread when the
 * pod has the guest's network device (*saved then holds the agent's own,
 * for agent_pull_net_leave), else the uplink (agent_uplink_up). */
int agent_pull_net_enter(sp_agent *a, int *saved, sp_err **err);
void agent_pull_net_leave(int *saved);

/* uplink.c: eth0 with QEMU user networking's fixed addresses, once, for
 * registry pulls (a no-op natively). */
int agent_uplink_up(sp_agent *a, sp_err **err);
/* A registry storage's source: "https://host[:port]" or
 * "http://host[:port]" (the image module allows plain http only to
 * 10.0.2.2 and loopback), host of [A-Za-z0-9.-] or a bracketed IPv6. */
bool registry_source_ok(const char *s);
/* The CA file for an https registry URL: the policy's PEM (registries[].ca)
 * written under the state dir, *path new; *path NULL when the policy gives
 * none. Called with the agent lock held. */
int agent_registry_ca(sp_agent *a, const char *url, char **path, sp_err **err);

/* copyfile.c */
int h_copy_file(sp_agent *a, const ACopyFile *q, reply *r);
/* The guest path /run/sealpod/sandbox maps to this directory. */
char *sandbox_dir(sp_agent *a);

/* A report over report_data from the agent's TEE (have_tee must be
 * true), one call at a time. Call without the agent lock held. */
int agent_tee_report(sp_agent *a, const uint8_t report_data[64],
		     uint8_t **report, size_t *report_len, uint8_t **certs,
		     size_t *certs_len, sp_err **err);

/* attest.c: the workload attestation endpoint. */
/* "IPv4:PORT" → address; SP_ERR_INVALID naming the text otherwise. */
int attest_parse(const char *listen, struct sockaddr_in *out, sp_err **err);
/* Opens a->attest_listen inside the network namespace at the path netns
 * and serves it on a thread (a no-op without an address or when already
 * serving). May run with the agent lock held: the server never takes it. */
int attest_start(sp_agent *a, const char *netns, sp_err **err);
/* Closes the endpoint (waits for a request in progress); idempotent. */
void attest_stop(sp_agent *a);
/* REPORT_DATA for /aa/evidence: SHA-512 of the runtime data. */
void attest_bind_runtime_data(uint8_t out[64], const void *data, size_t len);
/* Publishes the policy's key broker for /cdh/resource: url and, for https,
 * the PEM CA (written under state_dir). Called once, under the agent lock,
 * before the policy is in force. */
int attest_set_kbs(sp_agent *a, const char *url, const char *ca_pem, sp_err **err);
void attest_kbs_free(sp_agent *a);
/* The policy's broker (fixed once set) for other callers than the
 * endpoint's thread; -1 when there is no broker or no TEE. */
struct attest_kbs_ref {
	const char *url, *ca_file;
};
int attest_kbs_ref(sp_agent *a, struct attest_kbs_ref *out);
/* The KBS client's evidence producer over the agent's TEE (TEE lock). */
int agent_kbs_evidence(void *ctx, const uint8_t report_data[SP_TEE_REPORT_DATA_LEN],
		       json_t **evidence, sp_err **err);

/* Sealed secrets (unseal.c). CreateContainer: with the agent lock held
 * (dropped during broker I/O), unseals the env variables that policy
 * container `index` marks sealed, in process.env, and returns the
 * record {NAME: [sealed, "NAME=secret"]} for execs. */
int agent_unseal_env(sp_agent *a, int index, json_t *process, json_t **secrets, sp_err **err);
/* CreateContainer, before sandbox_prepare_spec: each mount of a volume
 * directory whose files the policy marks sealed (requests.sealed_files)
 * gets a private copy of the volume under <bundle>/sealed-volumes/<n>
 * with those files unsealed, and its source is that copy. Lock held
 * (dropped during the copy and broker I/O). */
int agent_unseal_volumes(sp_agent *a, const char *bundle, json_t *spec, sp_err **err);
/* ExecProcess: sealed values in process.env replaced by the container's
 * record (no I/O); a sealed value not in the record is refused. */
int agent_unseal_exec_env(const json_t *secrets, json_t *process, bool *changed, sp_err **err);
/* Handles one HTTP request (already read, bounded); writes the response
 * into *resp. Exposed for the unit tests and the fuzzer. */
void attest_handle(sp_agent *a, const uint8_t *req, size_t len, sp_buf *resp);

/* policy gate (gate.c) */
/* Decides whether a request may run; on deny fills r with
 * PERMISSION_DENIED and the evaluator's explanation and returns false.
 * On allow *change is what the request would record in the policy state
 * (NULL: nothing): the handler commits it when it succeeded
 * (gate_commit); the dispatcher drops what is left (gate_drop). */
bool gate_check(sp_agent *a, const char *method, const ProtobufCMessage *msg,
		reply *r, void **change);
int gate_commit(sp_agent *a, void **change);
void gate_drop(void **change);
/* The container's removal finished (or its creation failed after the id
 * was committed): the policy forgets it, with its exec ids. */
void gate_forget(sp_agent *a, const char *container_id);
/* The agent forgot an exec process: so does the policy. */
void gate_forget_exec(sp_agent *a, const char *container_id, const char *exec_id);
int gate_set_policy(sp_agent *a, const char *policy, size_t len, void **change,
		    reply *r);
void gate_free(sp_agent *a);

#endif
