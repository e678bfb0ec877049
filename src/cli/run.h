/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of `sealpod run`, split by concern: the pod and its policy
 * (run_pod.c), the runtime configuration with the guest image and the
 * image disk (run_config.c), attestation (run_attest.c). */
#ifndef SEALPOD_CLI_RUN_H
#define SEALPOD_CLI_RUN_H

#include "sealpod/common.h"
#include "sealpod/err.h"

struct sp_policy;
struct sp_sandbox;
struct sp_runtime_config;

struct run_opts {
	const char *file;
	const char *image_dir;
	const char *registry;
	const char *tee;
	const char *accel;
	const char *guest_dir;
	const char *name;
	const char *backend; /* "vm"; "native" runs the agent on the host (tests) */
	bool attest;
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
};

/* Reads the YAML, finds the pod (or a workload's template), and takes the
 * policy from its annotation or generates it from the images. */
int run_pod_load(struct run_pod *rp, const struct run_opts *o, sp_err **err);
void run_pod_clear(struct run_pod *rp);

/* The runtime configuration for this pod: the guest image (built on first
 * use), the image disk packed from --image-dir into tmp, accelerator, TEE. */
int run_config(struct sp_runtime_config **out, const struct run_opts *o, const char *tmp,
	       const char *const *images, sp_err **err);

/* The default image store: examples' OCI layout, if `make demo` built it. */
char *run_default_image_dir(void);

/* Asks the agent for a report over a fresh nonce, verifies it (trusting
 * the sim root only for the sim TEE) and prints the claims. */
int run_attest(struct sp_sandbox *sb, const struct run_opts *o,
	       const struct sp_runtime_config *cfg, const struct sp_policy *policy,
	       sp_err **err);

char *run_sandbox_id(const char *name);
void run_progress(const char *fmt, ...) SP_PRINTF(1, 2);

#endif
