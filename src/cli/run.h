/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of `sealpod run`, split by concern: the pod and its policy
 * (run_pod.c), the runtime configuration with the guest image and the
 * image disk (run_config.c), attestation (run_attest.c), exec probes
 * (run_probe.c), the per-pod state directory (run_state.c), the control
 * socket (run_ctl.c) and --detach (run_detach.c). docs/run.md. */
#ifndef SEALPOD_CLI_RUN_H
#define SEALPOD_CLI_RUN_H

#include <pthread.h>
#include <signal.h>

#include <jansson.h>

#include "sealpod/runctl.h"
#include "sealpod/common.h"
#include "sealpod/err.h"

struct sp_policy;
struct sp_sandbox;
struct sp_runtime_config;

struct run_opts {
	const char *file;
	const char *image_dir;
	const char *registry;
	const char *registry_ca; /* PEM CA of an https registry (policy.registries) */
	const char *authfile;    /* registry credentials file; NULL = podman's defaults */
	const char *tee;
	const char *accel;
	const char *guest_dir;
	const char *name;
	const char *backend; /* "vm"; "native" runs the agent on the host (tests) */
	const char *network; /* "user" (default) or "none" */
	const char **publish; /* --publish [IP:]HOST:CONTAINER[/proto] */
	size_t n_publish;
	bool attest;
	bool detach;
	unsigned vcpus;
	uint64_t memory_mib;
	int grace_s;
};

struct run_pod {
	char *pod_name;
	char *pod_namespace;
	unsigned grace_s;
	struct sp_policy *policy;
	bool policy_generated;
	json_t *containers; /* the YAML's containers and initContainers (probes) */
};

/* Reads the YAML, finds the pod (or a workload's template), and takes the
 * policy from its annotation or generates it from the images. */
int run_pod_load(struct run_pod *rp, const struct run_opts *o, sp_err **err);
void run_pod_clear(struct run_pod *rp);

/* The runtime configuration for this pod: the guest image (built on first
 * use), the image disk packed from --image-dir into tmp, accelerator, TEE. */
int run_config(struct sp_runtime_config **out, const struct run_opts *o, const char *tmp,
	       const char *const *images, sp_err **err);

/* The UVM's memory when --memory is not given: a base for the kernel, the
 * agent and unpacked images, plus the containers' memory limits (the
 * policy's containers[].resources.limits.memory), as Kata sizes its VMs. */
#define RUN_UVM_BASE_MIB 256
uint64_t run_uvm_memory_mib(const json_t *policy_containers);

/* The default image store: examples' OCI layout, if `make demo` built it. */
char *run_default_image_dir(void);
/* Credentials for ref's registry, or for the mirror `registry` (a URL)
 * when given, from authfile or podman's auth files. *user NULL if none. */
int run_registry_auth(const char *authfile, const char *ref, const char *registry,
		      char **user, char **pass, sp_err **err);

/* Asks the agent for a report over a fresh nonce, verifies it (trusting
 * the sim root only for the sim TEE) and prints the claims. */
int run_attest(struct sp_sandbox *sb, const struct run_opts *o,
	       const struct sp_runtime_config *cfg, const struct sp_policy *policy,
	       sp_err **err);

char *run_sandbox_id(const char *name);
/* "sealpod: ..." on stderr, and to the --detach caller until the pod runs. */
void run_progress(const char *fmt, ...) SP_PRINTF(1, 2);
extern int run_report_fd;

/* ---- the pod's network (run_net.c) ---------------------------------------- */

struct sp_sandbox_port;

struct run_net {
	int mode;                     /* SP_SANDBOX_NET_* */
	struct sp_sandbox_port *ports; /* published first, then probes' forwards */
	size_t n, n_published;
	char **strs;
	size_t n_strs;
};

/* The ports to publish (ports[].hostPort of containers, --publish) and a
 * forward on 127.0.0.1 for every TCP/HTTP probe port no published port
 * reaches. */
int run_net_plan(struct run_net *n, const struct run_opts *o, const json_t *containers,
		 sp_err **err);
/* The host port on 127.0.0.1 that reaches the port of a TCP or HTTP
 * probe of container ctr (0 if none); *guest gets the pod's port. */
unsigned run_net_probe_port(const struct run_net *n, const json_t *ctr, const json_t *probe,
			    unsigned *guest);
/* ["0.0.0.0:8080->80/tcp", ...] for status.json. */
json_t *run_net_ports_json(const struct run_net *n);
void run_net_clear(struct run_net *n);

/* ---- the running pod ------------------------------------------------------ */

struct run_live;

struct run_pump {
	struct run_live *pod;
	struct run_ctr *c;
	int stream;
	pthread_t thread;
	bool started;
};

struct run_ctr {
	char *name;
	char *id;
	bool init;
	bool created;
	bool started;
	bool exited;
	int status;
	bool ready;         /* readiness as the probes see it (true without one) */
	json_t *process;    /* the spec's process as the policy built it: execs copy it */
	json_t *yaml;       /* the container in the YAML (its probes), borrowed */
	int logfd;          /* logs/<name>.log, or -1 */
	struct run_pump pumps[2];
	pthread_t waiter;
	bool waiting;
	pthread_t prober;
	bool probing;
};

struct run_live {
	struct sp_sandbox *sb;
	const char *name;     /* the pod's name in `sealpod ps` */
	const char *hostname;
	struct run_ctr *ctrs;
	size_t n;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned grace_s;     /* SIGTERM-to-SIGKILL; `sealpod stop --grace` changes it */
	bool closed;          /* no new execs: the pod is stopping */
	unsigned busy;        /* execs in flight (the sandbox must outlive them) */
	const char *phase;    /* "starting", "running", "stopping", "exited" */
	struct run_state *st;
	const struct run_net *net; /* published ports and probe forwards */
	bool quiet;           /* detached: output goes to the logs only */
};

/* Set by SIGINT/SIGTERM and by `sealpod stop`: stop the pod. */
extern volatile sig_atomic_t run_interrupted;

/* Writes one line of a container's output, prefixed with its name, to
 * stdout/stderr (unless quiet) and to its log. */
void run_emit(struct run_live *pod, struct run_ctr *c, int stream, const uint8_t *data,
	      size_t len);

/* Runs argv in container c as its own process runs (user, cwd, env),
 * collecting up to max bytes of stdout+stderr into *out (may be NULL).
 * *status as a shell reports it. Errors (a policy denial among them) say
 * what the agent said. */
int run_exec_collect(struct run_live *pod, struct run_ctr *c, const char *kind,
		     const json_t *args, bool tty, int *status, char **out, size_t max,
		     sp_err **err);
/* The same, streaming output and then the status as frames to fd (a
 * `sealpod exec` client). */
int run_exec_stream(struct run_live *pod, struct run_ctr *c, const json_t *args, bool tty,
		    int fd, sp_err **err);
/* The process JSON of an exec in c: the container's process with args. */
char *run_exec_process(const struct run_ctr *c, const json_t *args, bool tty);
char *run_exec_id(const char *kind);
/* The agent's words without the host-side context in front of them. */
const char *run_agent_msg(const sp_err *e);

/* ---- exec probes (run_probe.c) -------------------------------------------- */

/* Starts c's probe thread if its YAML has probes (exec; TCP and HTTP
 * through pod->net's forwards). */
void run_probe_start(struct run_live *pod, struct run_ctr *c);
void run_probe_join(struct run_ctr *c);

/* ---- state directory (run_state.c) ---------------------------------------- */

/* $SEALPOD_PODS_DIR or /run/sealpod/pods. */
char *run_pods_dir(void);
/* Pod names are DNS labels: they name directories. */
bool run_name_valid(const char *name);

struct run_state {
	char *dir;      /* <pods>/<name> */
	char *name;
	char *file;     /* the YAML */
	int lockfd;     /* <dir>/lock, flock'ed while the supervisor lives */
	int64_t created;
	pid_t pid;
	char *sandbox_dir; /* the sandbox's run directory, once known */
	json_t *ports;  /* published ports, for `sealpod ps` (NULL: none) */
};

/* Claims <pods>/<name>: refuses a name whose supervisor is alive, clears a
 * stale one. */
int run_state_claim(struct run_state *st, const char *name, const char *file, sp_err **err);
/* Writes status.json from pod (under pod->mu or from the only thread). */
void run_state_write(struct run_state *st, const struct run_live *pod);
int run_state_open_log(struct run_state *st, const char *container);
/* Removes the directory and drops the lock. */
void run_state_release(struct run_state *st);
/* Removes a dead supervisor's pod directory and the sandbox run directory
 * its status.json names (QEMU's sockets, the sim PSP's state). */
int run_state_remove_stale(const char *dir, sp_err **err);
/* 1 if <pods>/<name>'s supervisor is alive, 0 if not (or no such pod). */
int run_state_alive(const char *dir);

/* ---- control socket (run_ctl.c) ------------------------------------------- */

#define RUN_CTL_MAX_REQUEST SP_RUNCTL_MAX_REQUEST
#define RUN_CTL_MAX_FRAME SP_RUNCTL_MAX_FRAME
enum {
	RUN_FRAME_REQUEST = SP_RUNCTL_REQUEST,
	RUN_FRAME_STDOUT = SP_RUNCTL_STDOUT,
	RUN_FRAME_STDERR = SP_RUNCTL_STDERR,
	RUN_FRAME_EXIT = SP_RUNCTL_EXIT,
	RUN_FRAME_ERROR = SP_RUNCTL_ERROR,
};

int run_ctl_start(struct run_live *pod, sp_err **err);
void run_ctl_stop(void);
/* Client side: one frame. */
int run_ctl_send(int fd, int type, const void *data, size_t len);
int run_ctl_recv(int fd, int *type, uint8_t **data, size_t *len, sp_err **err);
int run_ctl_connect(const char *dir, sp_err **err);

/* ---- --detach (run_detach.c) ---------------------------------------------- */

/* Forks the supervisor. Returns in the child (0); the parent never returns:
 * it relays progress and exits once the pod runs or fails. */
int run_detach(struct run_state *st, sp_err **err);
/* The supervisor tells the caller the pod is running. */
void run_detach_ready(void);

#endif
