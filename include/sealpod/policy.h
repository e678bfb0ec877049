/* SPDX-License-Identifier: Apache-2.0 */
/* Pod policy: what the host may ask the guest agent to do (docs/policy.md).
 *
 * A policy is canonical JSON (keys sorted, compact); its SHA-256 is the
 * value placed in HOST_DATA at launch. The evaluator decides every agent
 * request: allow, or deny with the path of the first mismatch and what was
 * expected against what arrived. Anything the policy does not describe is
 * denied. */
#ifndef SEALPOD_POLICY_H
#define SEALPOD_POLICY_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "sealpod/common.h"
#include "sealpod/err.h"
#include "sealpod/hash.h"
#include "sealpod/image.h"

#define SP_POLICY_VERSION 1
/* Largest policy document accepted (bytes). */
#define SP_POLICY_MAX (1u << 20)
/* The pod annotation that carries base64(policy). */
#define SP_POLICY_ANNOTATION "io.sealpod.policy"

typedef struct sp_policy sp_policy;
typedef struct sp_policy_state sp_policy_state;

/* Loads a policy from its canonical bytes. Non-canonical input (other key
 * order, spaces, escapes) is refused, so that SHA-256(bytes) is the one
 * value HOST_DATA can hold for this policy. */
SP_PUBLIC int sp_policy_load(sp_policy **out, const void *bytes, size_t len,
			     sp_err **err);
/* Loads a policy from any JSON spelling (used by tools; not by the agent). */
SP_PUBLIC int sp_policy_load_json(sp_policy **out, const json_t *doc,
				  sp_err **err);
SP_PUBLIC void sp_policy_free(sp_policy *p);
/* SHA-256 of the canonical bytes: the HOST_DATA value. */
SP_PUBLIC void sp_policy_hash(const sp_policy *p, uint8_t out[SP_SHA256_LEN]);
/* The canonical bytes (owned by p, NUL-terminated). */
SP_PUBLIC const char *sp_policy_bytes(const sp_policy *p, size_t *len);
/* The policy document (owned by p; do not modify). */
SP_PUBLIC const json_t *sp_policy_json(const sp_policy *p);
SP_PUBLIC size_t sp_policy_container_count(const sp_policy *p);
/* The PEM CA bundle the policy gives for an https://host[:port] registry
 * URL (policy.registries), or NULL when the policy does not list it. */
SP_PUBLIC const char *sp_policy_registry_ca(const sp_policy *p, const char *url);
/* A policy.registries entry {host, ca} for an https://HOST[:PORT] URL as
 * the guest reaches it, with the PEM bundle read from ca_file (checked to
 * be certificates). *out is new. */
SP_PUBLIC int sp_policy_registry_entry(json_t **out, const char *url, const char *ca_file,
				       sp_err **err);
/* The key broker's URL from policy.kbs ("http[s]://host[:port]"), or NULL
 * when the policy names none; *ca (may be NULL) gets its PEM CA bundle
 * (https only) or NULL. */
SP_PUBLIC const char *sp_policy_kbs_url(const sp_policy *p, const char **ca);
/* A policy.kbs object {url, ca?} for a broker URL as the guest reaches it;
 * ca_file (PEM certificates) is required for https and refused for http.
 * *out is new. */
SP_PUBLIC int sp_policy_kbs_entry(json_t **out, const char *url, const char *ca_file,
				  sp_err **err);
/* Index of the container named `name` (init containers too), or -1. */
SP_PUBLIC int sp_policy_container_find(const sp_policy *p, const char *name);
/* Sealed secrets (docs/policy.md, "Sealed values"): the broker resources
 * ("repo/type/tag", a JSON array) that env variable `name` of container
 * `index` must name as a sealed value, or NULL when the policy does not
 * mark the variable sealed (then a sealed value is refused). */
SP_PUBLIC const json_t *sp_policy_env_sealed(const sp_policy *p, size_t index,
					     const char *name);
/* requests.sealed_files for one of copy_file's directories (e.g.
 * "/run/sealpod/sandbox/secret/creds"): {key: [repo/type/tag, ...]}, or
 * NULL when none of its files is sealed. */
SP_PUBLIC const json_t *sp_policy_sealed_files(const sp_policy *p, const char *dir);
/* Does that array list repo/type/tag? */
SP_PUBLIC bool sp_policy_sealed_listed(const json_t *resources, const char *repo,
				       const char *type, const char *tag);
/* A human-readable summary (new string). */
SP_PUBLIC char *sp_policy_explain(const sp_policy *p);

/* Builds THE runtime-spec config.json (as a JSON object) that the policy
 * allows for container `index`: process (args, env, cwd, user,
 * capabilities...), root, mounts, linux (namespaces, sysctl, devices,
 * seccomp, masked and read-only paths). Env variables the policy gives as
 * patterns take their values from `values` (an object name -> string; may
 * be NULL); a required one without a value is an error. The result passes
 * the evaluator as a CreateContainerRequest's oci_spec. */
SP_PUBLIC int sp_policy_container_spec(const sp_policy *p, size_t index,
				       const json_t *values, json_t **out,
				       sp_err **err);

/* Evaluation state: which containers exist (created through which policy
 * entry), which exec processes were allowed, whether SetPolicy ran. */
SP_PUBLIC sp_policy_state *sp_policy_state_new(void);
SP_PUBLIC void sp_policy_state_free(sp_policy_state *s);
/* Forgets a container and its exec ids: when its removal has finished, or
 * when creating it failed after its id was committed. */
SP_PUBLIC void sp_policy_state_forget(sp_policy_state *s,
				      const char *container_id);
/* Forgets one exec id of a container (the agent forgot the process: it
 * ended and was collected), so the record stays bounded. */
SP_PUBLIC void sp_policy_state_forget_exec(sp_policy_state *s,
					   const char *container_id,
					   const char *exec_id);
/* Exec ids recorded for a container (0 when unknown). */
SP_PUBLIC size_t sp_policy_state_execs(const sp_policy_state *s,
				       const char *container_id);
/* Policy index a container was created through, or -1. */
SP_PUBLIC int sp_policy_state_container(const sp_policy_state *s,
					const char *container_id);

typedef struct sp_policy_decision {
	bool allow;
	/* When denied (all NULL when allowed): */
	char *path;     /* first mismatch, e.g. "oci_spec.process.args[1]" */
	char *expected; /* what the policy allows there */
	char *got;      /* what arrived (never a Secret's value) */
	char *message;  /* one line: "<Request> denied: <path>: expected .., got .." */
} sp_policy_decision;

SP_PUBLIC void sp_policy_decision_clear(sp_policy_decision *d);

/* Decides one agent request. `name` is the request message's name
 * ("CreateContainerRequest") or the RPC method ("CreateContainer"); the
 * two stream reads are told apart by method name ("ReadStdout",
 * "ReadStderr") or by "ReadStdoutRequest"/"ReadStderrRequest".
 * `msg` is the decoded protobuf-c message of that type (may be NULL only
 * for requests without a message type). `p` may be NULL before SetPolicy:
 * then only SetPolicy, health checks and GetGuestDetails are allowed.
 * Returns 0 when a decision was made (see d->allow), a negative code only
 * for caller errors. On allow the state is updated at once (CreateContainer
 * records the container, ExecProcess records the exec id, SetPolicy
 * counts, RemoveContainer forgets the container) — as if each request
 * succeeded at once; for tools and tests. The agent uses sp_policy_decide. */
SP_PUBLIC int sp_policy_eval(const sp_policy *p, sp_policy_state *state,
			     const char *name, const ProtobufCMessage *msg,
			     sp_policy_decision *d);

/* What an allowed request would record in the state (a new container id
 * and its policy entry, an exec id, a SetPolicy), pending until the
 * request succeeded. */
typedef struct sp_policy_change sp_policy_change;

/* As sp_policy_eval, but the state is only read: on allow, *change (may
 * be NULL when the request records nothing) is applied with
 * sp_policy_state_commit() once the request succeeded, or dropped with
 * sp_policy_change_free(). A RemoveContainer records nothing: the caller
 * forgets the container when its removal has finished. */
SP_PUBLIC int sp_policy_decide(const sp_policy *p, const sp_policy_state *state,
			       const char *name, const ProtobufCMessage *msg,
			       sp_policy_decision *d, sp_policy_change **change);
/* Applies and frees a change (NULL: nothing). -EEXIST when the container
 * id was taken meanwhile, -ENOENT when an exec's container is gone (both
 * leave the state as it was); 0 otherwise. */
SP_PUBLIC int sp_policy_state_commit(sp_policy_state *s, sp_policy_change *change);
SP_PUBLIC void sp_policy_change_free(sp_policy_change *change);

/* The protobuf-c descriptor of a request name or method (NULL if the
 * request has no message, or is unknown). */
SP_PUBLIC const ProtobufCMessageDescriptor *
sp_policy_request_descriptor(const char *name);

/* Request JSON ({"kind": "...", "request": {...}} as in tests/policy) to
 * a protobuf-c message. Field names may be snake_case or lowerCamelCase;
 * bytes fields holding JSON (oci_spec, process, resources) may be given
 * as a JSON object or string, other bytes fields as base64. *kind points
 * into doc. Free with protobuf_c_message_free_unpacked(msg, NULL). */
SP_PUBLIC int sp_policy_request_from_json(const json_t *doc, const char **kind,
					  ProtobufCMessage **msg, sp_err **err);

/* Test and tool convenience: in doc's request, an oci_spec (or process)
 * written as {"$from_policy": "<container>", "$values": {env values},
 * "$set": {"a/b/0": v}, "$append": {"a/b": v}, "$delete": ["a/b"]} is
 * replaced by that container's spec (or its process) with the edits. */
SP_PUBLIC int sp_policy_request_expand(const sp_policy *p, json_t *doc,
				       sp_err **err);

/* ---- Generation from Kubernetes YAML ---- */

/* What the generator needs of an image's config. The image module reads
 * and verifies it (sp_image_fetch_config, sp_image_config_get); this is
 * the policy's own view, named apart from the image module's
 * sp_image_config so both headers can be used together. */
typedef struct sp_policy_image {
	char *reference; /* the reference as the pod wrote it, without tag,
			    "@" the digest the store resolved: "name@sha256:<hex>" */
	char **entrypoint; /* NULL-terminated, or NULL */
	char **cmd;
	char **env; /* "K=V" */
	char *working_dir;
	char *user;
} sp_policy_image;
SP_PUBLIC void sp_policy_image_clear(sp_policy_image *img);

/* Finds an image's config: `ref` is the reference as the pod wrote it. */
typedef int (*sp_policy_image_resolver)(void *ctx, const char *ref,
					sp_policy_image *out, sp_err **err);

/* From an open image store (sp_image_store_open: "dir:", "tar:",
 * "registry:"): a tag resolves to the digest of the manifest or index it
 * names, an index to its linux/amd64 manifest; every blob is verified. */
SP_PUBLIC int sp_policy_image_from_store(sp_image_store *store, const char *ref,
					 sp_policy_image *out, sp_err **err);
/* The same from the OCI image layout (or unpacked docker-archive) at dir. */
SP_PUBLIC int sp_policy_image_from_layout(const char *dir, const char *ref,
					  sp_policy_image *out, sp_err **err);
/* The same from a registry: `registry` is a URL ("https://host[:port]",
 * or plain "http://" for 127.0.0.1, localhost or [::1]), or NULL for the
 * reference's own registry (over HTTPS, plain HTTP when it is local).
 * opts (may be NULL) carries credentials and a CA file. */
SP_PUBLIC int sp_policy_image_from_registry(const char *registry, const char *ref,
					    const struct sp_image_store_opts *opts,
					    sp_policy_image *out, sp_err **err);

typedef struct sp_policy_gen_opts {
	int version; /* 1 */
	sp_policy_image_resolver resolve;
	void *resolve_ctx;
	/* hostPath paths the pod may mount (NULL-terminated; may be NULL). */
	char **allow_host_paths;
	/* policy.registries to write ([{host, ca}], may be NULL): https
	 * registries the guest may pull from and the CA it trusts for each. */
	const json_t *registries;
	/* policy.kbs to write ({url, ca?}, may be NULL): the key broker the
	 * guest's /cdh/resource endpoint asks (sp_policy_kbs_entry). */
	const json_t *kbs;
} sp_policy_gen_opts;

/* Generates the policy for one Kubernetes object (a JSON tree of a Pod,
 * Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob).
 * `config_maps` (may be NULL) maps "name" -> data object from ConfigMaps
 * in the same file, so their values become exact. *out is NULL (and 0 is
 * returned) for kinds that carry no pod. */
SP_PUBLIC int sp_policy_generate(const json_t *object, const json_t *config_maps,
				 const sp_policy_gen_opts *opts, json_t **out,
				 sp_err **err);

/* Reads a (multi-document) Kubernetes YAML file, generates a policy for
 * every pod-carrying object and writes the YAML back with the annotation
 * io.sealpod.policy set in each pod template. *yaml_out is the new YAML;
 * hashes (may be NULL) receives one "<kind>/<name> <sha256 hex>" line per
 * policy. */
SP_PUBLIC int sp_policy_generate_yaml(const void *yaml, size_t len,
				      const sp_policy_gen_opts *opts,
				      char **yaml_out, char **hashes,
				      sp_err **err);
/* Just the parse: YAML documents into a JSON array (for tests, fuzzing). */
SP_PUBLIC int sp_yaml_to_json(const void *yaml, size_t len, json_t **out,
			      sp_err **err);

/* policy.registries[].ca: the guest's system CA bundle (Debian's
 * ca-certificates, measured in the guest image at SP_GUEST_CA_BUNDLE)
 * instead of a pinned PEM. */
#define SP_POLICY_CA_SYSTEM "system"
#define SP_GUEST_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

#endif
