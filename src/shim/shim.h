/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-sealpod-v2 internals (docs/shim.md). */
#ifndef SP_SHIM_H
#define SP_SHIM_H

#include <pthread.h>
#include <time.h>

#include <jansson.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/sandbox.h"
#include "sealpod/ttrpc.h"

#define SHIM_NAME "containerd-shim-sealpod-v2"
#define ANN_CONTAINER_TYPE "io.kubernetes.cri.container-type"
#define ANN_SANDBOX_ID "io.kubernetes.cri.sandbox-id"
#define ANN_SANDBOX_NAME "io.kubernetes.cri.sandbox-name"
#define ANN_SANDBOX_NAMESPACE "io.kubernetes.cri.sandbox-namespace"
#define ANN_CONTAINER_NAME "io.kubernetes.cri.container-name"
#define ANN_IMAGE_NAME "io.kubernetes.cri.image-name"
#define ANN_POLICY "io.sealpod.policy"
#define ANN_IMAGE "io.sealpod.image"
#define ANN_NAME "io.sealpod.container-name"
/* Environment the `start` parent hands to the daemon it re-executes. */
#define ENV_CONFIG_PATH "SEALPOD_SHIM_RUNTIME_CONFIG"

/* Command-line flags, as containerd passes them (Go flag syntax). */
typedef struct shim_flags {
	const char *ns;
	const char *address;        /* containerd's gRPC socket */
	const char *publish_binary;
	const char *id;
	const char *bundle;
	bool debug;
	const char *action;         /* "start", "delete", NULL = serve */
} shim_flags;

/* ---- start.c: the binary contract ---- */
int shim_start(const shim_flags *f, const char *self);
int shim_delete(const shim_flags *f);
/* "<dir of address>/s/<sha256(address/ns/group)>" */
char *shim_socket_path(const char *address, const char *ns, const char *group);
/* Annotations of a bundle's config.json (new reference, maybe empty). */
int shim_read_spec(json_t **out, const char *bundle, sp_err **err);
/* Records in the bundle where the sandbox's state lives, for `delete`. */
int shim_record_state_dir(const char *bundle, const char *state_dir, sp_err **err);
const char *shim_annotation(const json_t *spec, const char *key);

/* net.c: the pod's network from the sandbox spec (its network namespace
 * path, resolv.conf lines). */
struct shim_net {
	sp_sandbox_net net;
	char *netns;
	char *dns[32];
	size_t n_dns;
};
void shim_net_from_spec(struct shim_net *n, const json_t *spec);
void shim_net_clear(struct shim_net *n);

/* ---- events.c: publishing to containerd ---- */
typedef struct shim_publisher shim_publisher;
shim_publisher *shim_publisher_new(const char *ttrpc_address, const char *ns);
/* Queues an event; topic "/tasks/exit" etc., type "containerd.events.TaskExit",
 * msg a packed protobuf. Order is kept. */
void shim_publish(shim_publisher *p, const char *topic, const char *type,
		  uint8_t *msg, size_t len);
/* Delivers what is queued (bounded wait) and frees. */
void shim_publisher_free(shim_publisher *p);

/* ---- io.c: stdio between containerd's fifos and the agent ---- */
typedef struct shim_io shim_io;
typedef struct shim_io_opts {
	sp_sandbox *sb;
	const char *container_id;
	const char *exec_id;        /* "" for the main process */
	const char *stdin_path;     /* "" or NULL = none */
	const char *stdout_path;
	const char *stderr_path;
	bool terminal;
} shim_io_opts;
shim_io *shim_io_start(const shim_io_opts *o);
/* Waits (at most timeout_ns) until stdout and stderr reached the end. */
void shim_io_wait_output(shim_io *io, uint64_t timeout_ns);
/* Containerd closed stdin (CloseIO). */
void shim_io_close_stdin(shim_io *io);
/* Stops every thread (the process is gone) and frees. */
void shim_io_free(shim_io *io);

/* ---- service.c: the Task service ---- */
int shim_serve(const shim_flags *f, int listen_fd);

#endif
