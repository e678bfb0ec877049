/* SPDX-License-Identifier: Apache-2.0 */
/* A policy summarised for people: what each container runs and what the
 * host may ask of it. */
#include <string.h>

#include "internal.h"
#include "sealpod/bytes.h"
#include "sealpod/codec.h"

static void strv_line(sp_buf *b, const json_t *a)
{
	size_t i;
	json_t *v;
	if (!a || !json_array_size(a)) {
		sp_buf_printf(b, "(none)");
		return;
	}
	json_array_foreach(a, i, v) sp_buf_printf(b, "%s%s", i ? " " : "", json_string_value(v));
}

char *sp_policy_explain(const sp_policy *p)
{
	sp_buf b = SP_BUF_INIT;
	char hex[2 * SP_SHA256_LEN + 1];
	sp_hex_encode(hex, p->hash, SP_SHA256_LEN);
	sp_buf_printf(&b, "policy sha256 %s (HOST_DATA)\n", hex);
	sp_buf_printf(&b, "pod %s/%s%s\n", p->pod_namespace ? p->pod_namespace : "*",
		      p->pod_name ? p->pod_name : "*", p->share_pid ? ", shared process namespace" : "");
	sp_buf_printf(&b, "host requests: stats %s, list processes %s, resource updates %s, "
			  "attestation reports %s, network changes %s, second SetPolicy %s\n",
		      p->stats ? "yes" : "no", p->list_processes ? "yes" : "no",
		      p->update_container ? "yes" : "no", p->report ? "yes" : "no",
		      p->network ? "yes" : "no", p->set_policy_again ? "yes" : "no");
	sp_buf_printf(&b, "CopyFile under: ");
	strv_line(&b, p->copy_file);
	sp_buf_printf(&b, "\n");
	if (p->sealed_files) {
		const char *dir;
		json_t *files;
		json_object_foreach((json_t *)p->sealed_files, dir, files) {
			const char *key;
			json_t *res;
			json_object_foreach(files, key, res) {
				_cleanup_free_ char *r = sp_policy_render(res);
				sp_buf_printf(&b, "sealed file %s/%s: unsealed from the key broker, one of %s\n",
					      dir, key, r);
			}
		}
	}
	/* The CA's subject would need parsing here; its size and the host
	 * say which entry it is, and the bytes are in the policy. */
	for (size_t i = 0; i < p->n_regs; i++)
		sp_buf_printf(&b, "https registry %s, trusting the policy's CA (%zu bytes of PEM)\n",
			      p->regs[i].host, strlen(p->regs[i].ca));
	if (p->kbs_url)
		sp_buf_printf(&b, "key broker %s for /cdh/resource%s\n", p->kbs_url,
			      p->kbs_ca ? ", trusting the policy's CA" : "");
	for (size_t i = 0; i < p->n_c; i++) {
		const struct pcontainer *c = &p->c[i];
		sp_buf_printf(&b, "\n%scontainer %s\n", c->init ? "init " : "", c->name);
		sp_buf_printf(&b, "  image    %s\n  command  ", c->image);
		strv_line(&b, c->args);
		sp_buf_printf(&b, "\n  cwd      %s\n  user     uid %lld gid %lld%s%s\n", c->cwd,
			      (long long)c->uid, (long long)c->gid, c->privileged ? ", PRIVILEGED" : "",
			      c->no_new_privs ? ", no new privileges" : "");
		sp_buf_printf(&b, "  caps     ");
		strv_line(&b, c->caps[0]);
		sp_buf_printf(&b, " (bounding)\n  root fs  %s\n", c->read_only_root ? "read-only" : "writable");
		for (size_t k = 0; k < c->n_env; k++) {
			const struct env_rule *r = &c->env[k];
			sp_buf_printf(&b, "  env      %s%s", r->name ? r->name : "/", r->name ? "" : r->name_pattern);
			if (!r->name)
				sp_buf_printf(&b, "/");
			if (r->sealed) {
				/* The sealed string says nothing to a reader; what it
				 * may name does. */
				_cleanup_free_ char *res = sp_policy_render(r->sealed);
				sp_buf_printf(&b, " = sealed secret, unsealed in the guest from %s%s\n", res,
					      r->optional ? " (optional)" : "");
			} else if (r->value)
				sp_buf_printf(&b, " = %s\n", r->secret ? "(secret)" : r->value);
			else
				sp_buf_printf(&b, " ~ /%s/%s%s%s\n", r->pattern, r->from ? " from " : "",
					      r->from ? r->from : "", r->optional ? " (optional)" : "");
		}
		for (size_t k = 0; k < c->n_mounts; k++)
			sp_buf_printf(&b, "  mount    %s <- %s %s (%s)\n", c->mounts[k].destination,
				      c->mounts[k].kind, c->mounts[k].volume,
				      c->mounts[k].read_only ? "ro" : "rw");
		sp_buf_printf(&b, "  limits   memory %lld..%lld bytes, cpu %lld..%lld millicores (-1: none)",
			      (long long)c->mem_request, (long long)c->mem_limit,
			      (long long)c->cpu_request, (long long)c->cpu_limit);
		sp_buf_printf(&b, "; cgroup keys ");
		if (c->cgroup_keys)
			strv_line(&b, c->cgroup_keys);
		else
			sp_buf_printf(&b, "(none)");
		sp_buf_printf(&b, "\n  exec     ");
		if (!c->exec || !json_array_size(c->exec))
			sp_buf_printf(&b, "(none)\n");
		size_t k;
		json_t *cmd;
		if (c->exec)
			json_array_foreach(c->exec, k, cmd) {
				sp_buf_printf(&b, "%s", k ? "           " : "");
				strv_line(&b, cmd);
				sp_buf_printf(&b, "\n");
			}
		sp_buf_printf(&b, "  logs     %s, stdin %s, seccomp %s\n", c->logs ? "readable" : "hidden",
			      c->stdin_ ? "writable" : "closed", c->seccomp ? "profile" : "none");
	}
	sp_buf_terminate(&b);
	return (char *)sp_buf_steal(&b, NULL);
}
