/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SP_SANDBOX_INTERNAL_H
#define SP_SANDBOX_INTERNAL_H

#include <pthread.h>

#include <protobuf-c/protobuf-c.h>

#include "sealpod/sandbox.h"
#include "sealpod/ttrpc.h"

/* One way to run a guest agent: a UVM (vm.c) or a host process for tests
 * (native.c). launch() and reap() run on the sandbox's own thread, so a
 * VMM tied to its parent thread (PR_SET_PDEATHSIG) lives as long as the
 * sandbox. */
typedef struct sp_sandbox_backend {
	const char *name;
	/* Starts the guest and sets sb->pid and sb->agent_addr once the
	 * agent answers. */
	int (*launch)(sp_sandbox *sb, sp_err **err);
	/* Non-blocking: true once the guest is gone. */
	bool (*dead)(sp_sandbox *sb);
	/* Stops whatever still runs and removes what launch() made. */
	void (*teardown)(sp_sandbox *sb);
} sp_sandbox_backend;

enum { PHASE_STARTING, PHASE_RUNNING, PHASE_DEAD };

struct sp_sandbox {
	char *id;
	char *hostname;
	char *run_dir;               /* <state_dir>/<id>, removed at the end */
	sp_runtime_config cfg;       /* borrowed strings: see sandbox.c */
	const sp_runtime_config *cfgp;
	uint8_t *policy;
	size_t policy_len;
	uint8_t host_data[32];       /* SHA-256(policy), what the UVM is launched with */
	const sp_sandbox_backend *be;
	/* cfg.registry as the guest reaches it (sp_sandbox_guest_registry),
	 * when the guest pulls from a registry; the vm backend then gives the
	 * UVM QEMU user networking. */
	char *guest_registry;
	/* The pod's network (net.c): mode, QEMU hostfwd rules, DNS lines. */
	int net_mode;
	char **hostfwd;
	size_t n_hostfwd;
	char **dns;
	size_t n_dns;
	/* NETNS (net.c): the namespace, and what its CNI interface carries. */
	int netns_fd;
	struct sp_sandbox_podnet *podnet;
	/* Host-pulled images (cfg.content_store): the pod's image disk. */
	struct sp_image_disk *image_disk;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int phase;
	bool stop_req;
	sp_err *launch_err;

	pid_t pid;
	char *agent_addr;
	sp_ttrpc_client *agent;
	bool destroyed;

	void *be_data;               /* backend state */
};

extern const sp_sandbox_backend sp_sandbox_native_backend;
extern const sp_sandbox_backend sp_sandbox_vm_backend;

/* The sim PSP serving spec ("unix:PATH" to listen, "connect:PATH" for a
 * VMM's chardev) with HOST_DATA = SHA-256(policy). */
typedef struct sp_sandbox_psp sp_sandbox_psp;
int sp_sandbox_psp_start(sp_sandbox_psp **out, sp_sandbox *sb, const char *spec,
			 sp_err **err);
void sp_sandbox_psp_stop(sp_sandbox_psp *p);

/* One call of the agent's AgentService: req packed, the response unpacked
 * as resp_desc into *resp when both are given (free with
 * protobuf_c_message_free_unpacked). */
int sp_sandbox_agent_call(sp_sandbox *sb, const char *method,
			  const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc,
			  ProtobufCMessage **resp, uint64_t timeout_ns,
			  sp_err **err);

/* net.c: checks opts->net into sb (hostfwd rules, DNS lines); after
 * CreateSandbox, hands the guest its interface and routes. */
int sp_sandbox_net_setup(sp_sandbox *sb, const sp_sandbox_net *net, sp_err **err);
void sp_sandbox_net_clear(sp_sandbox *sb);
int sp_sandbox_net_guest(sp_sandbox *sb, sp_err **err);
/* NETNS, on the sandbox thread: enter the pod's namespace before QEMU
 * starts (its tap is made there); the tap's name and the MAC the guest's
 * device takes. */
int sp_sandbox_net_enter(sp_sandbox *sb, const char **tap, const char **mac, sp_err **err);
/* Once QEMU made its tap: tc redirects between it and the CNI interface. */
int sp_sandbox_net_join(sp_sandbox *sb, sp_err **err);
/* Removes what join added that outlives QEMU (the CNI interface's qdisc). */
void sp_sandbox_net_unjoin(sp_sandbox *sb);

/* Waits for the agent's Health service to answer SERVING at addr. */
int sp_sandbox_wait_agent(sp_sandbox *sb, const char *addr,
			  uint64_t timeout_ns, bool (*alive)(sp_sandbox *),
			  sp_err **err);

#endif
