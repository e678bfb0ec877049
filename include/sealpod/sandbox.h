/* SPDX-License-Identifier: Apache-2.0 */
/* A pod sandbox seen from the host: one UVM (or, for tests, one guest
 * agent running as a host process), its policy, and the containers the
 * guest agent runs in it. The containerd shim and `sealpod run` both drive
 * pods through this API; neither talks to QEMU or the agent directly.
 *
 * Everything here is host side and therefore untrusted by the guest: the
 * sandbox only forwards requests, the agent decides (policy). */
#ifndef SEALPOD_SANDBOX_H
#define SEALPOD_SANDBOX_H

#include <sys/types.h>

#include <jansson.h>

#include "sealpod/common.h"
#include "sealpod/err.h"

/* The runtime configuration (docs/shim.md): where the guest image is and
 * how big a UVM is. Loaded from a JSON file. */
typedef struct sp_runtime_config {
	char *backend;        /* "vm" (default) or "native" (agent on the host; tests) */
	char *kernel;         /* UVM kernel */
	char *initrd;         /* UVM initrd (the guest image with sealpod-agent) */
	char *qemu;           /* QEMU binary */
	char *accel;          /* "tcg" or "kvm" */
	char *tee;            /* "sim", "snp" or "none" */
	unsigned vcpus;
	uint64_t memory_mib;
	char *image_store;    /* host OCI image layout (dir or tar) offered to the guest, or NULL */
	char *registry;       /* registry the guest pulls from (as this host reaches it), or NULL;
			       * ignored when image_store is set. See sp_sandbox_guest_registry. */
	char *registry_auth;  /* base64("user:password") for that registry, or NULL;
			       * set by programs (sealpod run --authfile), not in the file */
	/* Host-pulled images (the default without image_store and registry):
	 * containerd's content store, whose blobs for each container's image
	 * are offered to the guest on a read-only disk; NULL = off. */
	char *content_store;
	char *image_disk_dir; /* where that disk lives; NULL = the sandbox's state directory */
	char *state_dir;      /* per-sandbox runtime state; default /run/sealpod */
	char *default_policy; /* policy file used when a pod carries none, or NULL */
	char *agent;          /* native backend: the sealpod-agent binary */
	char *rootfs_dir;     /* native backend: rootfs for containers without an image store */
	char *kernel_cmdline; /* extra kernel command line, or NULL for the launcher's */
	unsigned boot_timeout_s;
	char *log_level;      /* "error" .. "debug" */
	char *source;         /* the file it came from, for messages */
} sp_runtime_config;

#define SP_RUNTIME_CONFIG_DEFAULT "/etc/sealpod/runtime.json"
#define SP_RUNTIME_CONFIG_CONTENT_STORE \
	"/var/lib/containerd/io.containerd.content.v1.content"

/* Loads path; with path NULL: $SEALPOD_CONFIG, else the default file; if
 * neither exists, built-in defaults. Unknown keys are errors. */
SP_PUBLIC int sp_runtime_config_load(sp_runtime_config **out, const char *path,
				     sp_err **err);
/* The same from bytes; source names them in messages. */
SP_PUBLIC int sp_runtime_config_parse(sp_runtime_config **out, const void *data,
				      size_t len, const char *source, sp_err **err);
SP_PUBLIC void sp_runtime_config_free(sp_runtime_config *c);

typedef struct sp_sandbox sp_sandbox;

/* The pod's network (docs/network.md). */
enum {
	SP_SANDBOX_NET_NONE = 0, /* loopback only */
	/* QEMU user networking: the guest's eth0 is 10.0.2.15/24, its
	 * gateway 10.0.2.2 (this host's loopback), DNS 10.0.2.3; egress is
	 * NATed by QEMU; ports are published with hostfwd. No root needed,
	 * nothing left on the host. */
	SP_SANDBOX_NET_USER = 1,
	/* The pod's network namespace as CNI made it (the CRI path): QEMU
	 * runs in it with a tap joined to the CNI interface by tc mirred
	 * redirects both ways (Kata's "tcfilter"); the guest's device takes
	 * the interface's MAC, addresses, MTU and routes. */
	SP_SANDBOX_NET_NETNS = 2,
};

/* A port of the pod published on this host (ports[].hostPort, --publish). */
typedef struct sp_sandbox_port {
	const char *protocol;  /* "tcp" (default) or "udp" */
	const char *host_ip;   /* address to bind on the host; NULL: 0.0.0.0 */
	unsigned host_port;    /* 1..65535 */
	unsigned guest_port;   /* containerPort, 1..65535 */
} sp_sandbox_port;

typedef struct sp_sandbox_net {
	int mode;
	const sp_sandbox_port *ports;
	size_t n_ports;
	/* resolv.conf lines for the pod ("nameserver 10.0.2.3"); NULL: the
	 * mode's default. */
	const char *const *dns;
	size_t n_dns;
	/* NETNS: the namespace's path (/var/run/netns/cni-...). */
	const char *netns;
} sp_sandbox_net;

/* The guest address the user-mode network gives the pod. */
#define SP_SANDBOX_USER_NET_GUEST "10.0.2.15"
#define SP_SANDBOX_USER_NET_MAC "52:54:00:12:34:56"

typedef struct sp_sandbox_opts {
	unsigned version;         /* 1 */
	const char *id;           /* sandbox id (CRI sandbox id or container id) */
	const char *hostname;
	const char *pod_name;
	const char *pod_namespace;
	/* The policy document; its SHA-256 becomes the UVM's HOST_DATA and
	 * the agent receives exactly these bytes. Required. */
	const uint8_t *policy;
	size_t policy_len;
	/* Tests only: launch with these 32 bytes as HOST_DATA instead of the
	 * policy's hash, as a lying host would; the agent must then refuse
	 * the policy. NULL in every real use. */
	const uint8_t *unsafe_host_data;
	/* The pod's network; NULL: none (loopback only), unless a registry
	 * pull needs the uplink. */
	const sp_sandbox_net *net;
} sp_sandbox_opts;

/* Boots the UVM, waits for the agent, sets the policy and creates the
 * guest sandbox. On failure nothing is left behind. */
SP_PUBLIC int sp_sandbox_start(sp_sandbox **out, const sp_runtime_config *cfg,
			       const sp_sandbox_opts *opts, sp_err **err);
/* The VMM's pid (agent pid for the native backend): containerd gets it
 * as every task's pid, as it does from Kata. */
SP_PUBLIC pid_t sp_sandbox_pid(const sp_sandbox *sb);
SP_PUBLIC const char *sp_sandbox_id(const sp_sandbox *sb);
/* Blocks until the UVM is gone (crashed or stopped). */
SP_PUBLIC void sp_sandbox_wait_dead(sp_sandbox *sb);
SP_PUBLIC bool sp_sandbox_alive(sp_sandbox *sb);
/* Destroys the guest sandbox and stops the UVM (hard after a grace
 * period). Idempotent. */
SP_PUBLIC int sp_sandbox_stop(sp_sandbox *sb, sp_err **err);
SP_PUBLIC void sp_sandbox_free(sp_sandbox *sb);

typedef struct sp_container_opts {
	unsigned version;          /* 1 */
	const char *id;
	/* runtime-spec config.json as the host runtime wrote it; host-only
	 * parts are removed (sp_sandbox_guest_spec) before it is sent. */
	const json_t *spec;
	const char *image;         /* image reference the guest pulls and verifies */
	const char *name;          /* container name in the pod */
	bool init;                 /* an init container (the policy tells them apart) */
} sp_container_opts;

SP_PUBLIC int sp_sandbox_create_container(sp_sandbox *sb,
					  const sp_container_opts *o,
					  sp_err **err);
SP_PUBLIC int sp_sandbox_start_container(sp_sandbox *sb, const char *id,
					 sp_err **err);
/* process_json: a runtime-spec "process" object. */
SP_PUBLIC int sp_sandbox_exec(sp_sandbox *sb, const char *id,
			      const char *exec_id, const char *process_json,
			      sp_err **err);
/* exec_id NULL or "" = the container's main process. */
SP_PUBLIC int sp_sandbox_signal(sp_sandbox *sb, const char *id,
				const char *exec_id, int sig, sp_err **err);
/* Blocks until the process exits; *status as a shell reports it. */
SP_PUBLIC int sp_sandbox_wait(sp_sandbox *sb, const char *id,
			      const char *exec_id, int *status, sp_err **err);

enum sp_stream { SP_STREAM_STDOUT = 1, SP_STREAM_STDERR = 2 };
/* Blocks until output is available; *len 0 means end of stream. */
SP_PUBLIC int sp_sandbox_read(sp_sandbox *sb, const char *id,
			      const char *exec_id, int stream, uint8_t **data,
			      size_t *len, sp_err **err);
SP_PUBLIC int sp_sandbox_write_stdin(sp_sandbox *sb, const char *id,
				     const char *exec_id, const uint8_t *data,
				     size_t len, sp_err **err);
SP_PUBLIC int sp_sandbox_close_stdin(sp_sandbox *sb, const char *id,
				     const char *exec_id, sp_err **err);
SP_PUBLIC int sp_sandbox_resize(sp_sandbox *sb, const char *id,
				const char *exec_id, unsigned rows,
				unsigned cols, sp_err **err);
/* Removes a container (SIGKILL after timeout_s seconds). */
SP_PUBLIC int sp_sandbox_remove_container(sp_sandbox *sb, const char *id,
					  unsigned timeout_s, sp_err **err);

typedef struct sp_container_stats {
	uint64_t cpu_usage_ns;
	uint64_t memory_usage_bytes;
	uint64_t memory_limit_bytes;
	uint64_t pids_current;
	uint64_t oom_kill_count;
} sp_container_stats;

SP_PUBLIC int sp_sandbox_stats(sp_sandbox *sb, const char *id,
			       sp_container_stats *out, sp_err **err);
/* Guest pids of a container's processes (malloc'ed array). */
SP_PUBLIC int sp_sandbox_pids(sp_sandbox *sb, const char *id, uint32_t **pids,
			      size_t *n, sp_err **err);
/* resources_json: runtime-spec linux.resources. */
SP_PUBLIC int sp_sandbox_update(sp_sandbox *sb, const char *id,
				const char *resources_json, sp_err **err);
/* Blocks until the guest reports an OOM kill; *container_id malloc'ed. */
SP_PUBLIC int sp_sandbox_wait_oom(sp_sandbox *sb, char **container_id,
				  sp_err **err);

/* Where pod volumes live in the guest (docs/policy.md): <kind>/<volume>. */
#define SP_SANDBOX_GUEST_VOLUMES "/run/sealpod/sandbox"

/* The guest directory ("/run/sealpod/sandbox/<kind>/<name>") for a kubelet
 * volume directory whose files the host holds: a host path ending in
 * pods/<uid>/volumes/kubernetes.io~{configmap,secret,projected,downward-api}/<name>
 * (kind configmap, secret, projected, downwardapi). NULL for any other
 * path, emptyDir included (the agent makes those itself). New string. */
SP_PUBLIC char *sp_sandbox_volume_guest_dir(const char *host_path);

/* Copies host_dir's tree into the guest at guest_dir with the agent's
 * CopyFile: regular files (in chunks), directories, and symlinks as
 * symlinks (kubelet's `..data` atomic-writer layout stays as it is).
 * Nothing is followed on the host (O_NOFOLLOW throughout); other file
 * types, files over 16 MiB, more than 4096 entries or deeper trees are
 * errors. The policy's requests.copy_file decides in the guest. */
SP_PUBLIC int sp_sandbox_copy_dir(sp_sandbox *sb, const char *host_dir,
				  const char *guest_dir, sp_err **err);

/* What the pod policy allows for one container: the runtime-spec the
 * policy builds (the host's config.json only supplies values for the
 * variables the policy leaves to the runtime, such as HOSTNAME) and the
 * image reference pinned by digest. name selects the policy's container;
 * NULL picks the only one. SP_ERR_UNSUPPORTED when built without the
 * policy module. *spec, *image and *resolved_name are new. */
SP_PUBLIC int sp_sandbox_policy_container(sp_sandbox *sb, const char *name,
					  const json_t *host_spec, json_t **spec,
					  char **image, char **resolved_name,
					  sp_err **err);

/* The spec the guest gets for a container: host paths and host
 * namespaces removed (bind mounts of host files, namespace paths, cgroup
 * paths, hooks), root.path "rootfs". Returns a new reference. */
SP_PUBLIC int sp_sandbox_guest_spec(json_t **out, const json_t *host_spec,
				    sp_err **err);

/* Asks the guest agent for a TEE report over report_data (at most 64
 * bytes, zero-padded). *report and *certs are new; *tee gets "snp", "sim"
 * or "none" (new). The policy decides whether the agent answers. */
SP_PUBLIC int sp_sandbox_get_report(sp_sandbox *sb, const uint8_t *report_data,
				    size_t report_data_len, uint8_t **report,
				    size_t *report_len, uint8_t **certs,
				    size_t *certs_len, char **tee, sp_err **err);

/* The registry URL as the guest reaches it. In a UVM (vm true) the guest
 * pulls through QEMU user networking, where 10.0.2.2 is this host's
 * 127.0.0.1: "http://127.0.0.1:PORT" (or localhost) becomes
 * "http://10.0.2.2:PORT", and https://127.0.0.1:PORT (or localhost)
 * "https://10.0.2.2:PORT" (its certificate needs IP SAN 10.0.2.2); other
 * https URLs stay as they are. Natively the agent is on this host and the
 * loopback URL stays (localhost becomes 127.0.0.1 for http). Any other
 * plain-http host is refused (the guest allows plain http only to the
 * host). *out is new. */
SP_PUBLIC int sp_sandbox_guest_registry(char **out, const char *url, bool vm,
					sp_err **err);

/* The firmware the sim TEE measures for a UVM booted without firmware
 * (TCG direct boot): Debian's OVMF (docs/attestation.md). */
#define SP_SANDBOX_SIM_OVMF "/usr/share/ovmf/OVMF.fd"
struct sp_snp_measure_opts;
/* The launch-measurement inputs of a UVM started with config c: what the
 * sim PSP measures and `sealpod run --attest` predicts. */
SP_PUBLIC void sp_sandbox_launch_measure_opts(struct sp_snp_measure_opts *mo,
					      const sp_runtime_config *c);

#endif
