/* SPDX-License-Identifier: Apache-2.0 */
/* The pod of `sealpod run` and its policy. */
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>

#include "run.h"
#include "sealpod/codec.h"
#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/policy.h"
#include "sealpod/sandbox.h"

int run_report_fd = -1;

void run_progress(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		sp_oom();
	va_end(ap);
	fprintf(stderr, "sealpod: %s\n", msg);
	fflush(stderr);
	int fd = run_report_fd;
	if (fd >= 0)
		dprintf(fd, "sealpod: %s\n", msg);
}

char *run_sandbox_id(const char *name)
{
	uint8_t r[4] = {0};
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		sp_oom();
	char hex[9];
	sp_hex_encode(hex, r, sizeof(r));
	return sp_xasprintf("%s-%s", name, hex);
}

/* The pod template of an object: the object itself for a Pod, else the
 * workload's template. NULL for kinds that carry no pod. */
static const json_t *pod_of(const json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	if (!kind)
		return NULL;
	if (!strcmp(kind, "Pod"))
		return obj;
	const json_t *spec = json_object_get(obj, "spec");
	if (!strcmp(kind, "CronJob"))
		spec = json_object_get(json_object_get(json_object_get(spec, "jobTemplate"),
							 "spec"), "template");
	else if (!strcmp(kind, "Deployment") || !strcmp(kind, "StatefulSet") ||
		 !strcmp(kind, "DaemonSet") || !strcmp(kind, "ReplicaSet") ||
		 !strcmp(kind, "Job"))
		spec = json_object_get(spec, "template");
	else
		return NULL;
	return json_is_object(spec) ? spec : NULL;
}

struct resolver {
	const char *image_dir;
	const char *registry;
	const char *ca_file;
	const char *authfile;
};

static int resolve(void *ctx, const char *ref, sp_policy_image *out, sp_err **err)
{
	struct resolver *r = ctx;
	struct sp_image_store_opts so = {.version = SP_IMAGE_STORE_OPTS_VERSION,
					 .ca_file = r->ca_file};
	_cleanup_free_ char *user = NULL, *pass = NULL;
	if (r->registry || !r->image_dir) {
		/* Credentials of the registry actually asked (the mirror's
		 * with --registry); the image module sends them to its
		 * host only. */
		if (run_registry_auth(r->authfile, ref, r->registry, &user, &pass, err) < 0)
			return (*err)->code;
		so.username = user;
		so.password = pass;
	}
	if (r->registry || !r->image_dir)
		return sp_policy_image_from_registry(r->registry, ref, &so, out, err);
	return sp_policy_image_from_layout(r->image_dir, ref, out, err);
}

int run_pod_load(struct run_pod *rp, const struct run_opts *o, sp_err **err)
{
	_cleanup_free_ uint8_t *yaml = NULL;
	size_t len;
	if (sp_read_file(&yaml, &len, o->file, 16u << 20, err) < 0)
		return (*err)->code;
	_cleanup_json_ json_t *docs = NULL;
	if (sp_yaml_to_json(yaml, len, &docs, err) < 0)
		return sp_error_wrap(err, "%s", o->file);
	const json_t *obj = NULL, *pod = NULL;
	size_t i;
	json_t *d;
	json_array_foreach(docs, i, d) {
		pod = pod_of(d);
		if (pod) {
			obj = d;
			break;
		}
	}
	if (!pod)
		return sp_error(err, SP_ERR_INVALID,
				"%s: no Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job "
				"or CronJob in the file", o->file);
	json_t *meta = json_object_get(pod, "metadata");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new((json_t *)pod, "metadata", meta);
	}
	const json_t *ometa = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	if (!name)
		name = json_string_value(json_object_get(ometa, "name"));
	const char *ns = json_string_value(json_object_get(ometa, "namespace"));
	rp->pod_name = sp_xstrdup(name ? name : "pod");
	rp->pod_namespace = sp_xstrdup(ns ? ns : "default");
	json_t *g = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
	rp->grace_s = json_is_integer(g) && json_integer_value(g) >= 0
			      ? (unsigned)json_integer_value(g) : 30;
	/* The containers as the YAML has them: their probes run host side. */
	rp->containers = json_array();
	const json_t *pspec = json_object_get(pod, "spec");
	json_array_extend(rp->containers, json_object_get(pspec, "initContainers"));
	json_array_extend(rp->containers, json_object_get(pspec, "containers"));

	const char *annot = json_string_value(
		json_object_get(json_object_get(meta, "annotations"), SP_POLICY_ANNOTATION));
	if (annot) {
		_cleanup_free_ uint8_t *bytes = NULL;
		size_t blen;
		if (sp_base64_decode(&bytes, &blen, annot, strlen(annot), SP_B64_STD, err) < 0)
			return sp_error_wrap(err, "%s: annotation %s", o->file, SP_POLICY_ANNOTATION);
		if (sp_policy_load(&rp->policy, bytes, blen, err) < 0)
			return sp_error_wrap(err, "%s: annotation %s", o->file, SP_POLICY_ANNOTATION);
		return 0;
	}
	/* Without --image-dir or --registry each image comes from the
	 * registry its reference names (docs/images.md). */
	run_progress("generating the policy from %s (reading each image's config)", o->file);
	/* `sealpod run` streams the containers' output, so unless the pod
	 * says otherwise its generated policy lets the host read it. */
	json_t *annots = json_object_get(meta, "annotations");
	if (!json_is_object(annots)) {
		annots = json_object();
		json_object_set_new((json_t *)meta, "annotations", annots);
	}
	if (!json_object_get(annots, "io.sealpod.policy/logs"))
		json_object_set_new(annots, "io.sealpod.policy/logs", json_string("*"));
	/* --attest asks the guest for a report: the policy must allow it. */
	if (o->attest && !json_object_get(annots, "io.sealpod.policy/requests"))
		json_object_set_new(annots, "io.sealpod.policy/requests",
				    json_string("{\"report\":true}"));
	struct resolver r = {.image_dir = o->image_dir, .registry = o->registry,
			     .ca_file = o->registry_ca, .authfile = o->authfile};
	/* An https registry with its own CA: the policy pins that CA for
	 * the registry as the guest reaches it (sp_sandbox_guest_registry). */
	_cleanup_json_ json_t *regs = NULL;
	if (o->registry_ca) {
		_cleanup_free_ char *guest = NULL;
		json_t *entry = NULL;
		if (sp_sandbox_guest_registry(&guest, o->registry, !strcmp(o->backend, "vm"),
					      err) < 0 ||
		    sp_policy_registry_entry(&entry, guest, o->registry_ca, err) < 0)
			return sp_error_wrap(err, "--registry-ca");
		regs = json_array();
		json_array_append_new(regs, entry);
	}
	sp_policy_gen_opts go = {.version = 1, .resolve = resolve, .resolve_ctx = &r,
				 .registries = regs};
	_cleanup_json_ json_t *pj = NULL;
	if (sp_policy_generate(obj, NULL, &go, &pj, err) < 0)
		return sp_error_wrap(err, "%s: generating the policy", o->file);
	if (sp_policy_load_json(&rp->policy, pj, err) < 0)
		return sp_error_wrap(err, "%s: generated policy", o->file);
	rp->policy_generated = true;
	return 0;
}

void run_pod_clear(struct run_pod *rp)
{
	free(rp->pod_name);
	free(rp->pod_namespace);
	sp_policy_free(rp->policy);
	json_decref(rp->containers);
	memset(rp, 0, sizeof(*rp));
}
