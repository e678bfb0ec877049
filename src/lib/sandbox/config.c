/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime configuration file (docs/shim.md). Unknown keys are errors:
 * a misspelt key silently ignored would boot a UVM nobody asked for. */
#include <string.h>

#include "sealpod/file.h"
#include "sealpod/json.h"
#include "sealpod/log.h"
#include "sealpod/sandbox.h"

#define CONFIG_MAX (256u * 1024)

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v ? sp_xstrdup(v) : NULL;
}

static void defaults(sp_runtime_config *c)
{
	set_str(&c->backend, "vm");
	set_str(&c->kernel, "/usr/share/sealpod/vmlinuz");
	set_str(&c->initrd, "/usr/share/sealpod/initrd.img");
	set_str(&c->qemu, "qemu-system-x86_64");
	set_str(&c->accel, "auto");
	set_str(&c->tee, "sim");
	set_str(&c->state_dir, "/run/sealpod");
	set_str(&c->agent, "sealpod-agent");
	set_str(&c->log_level, "info");
	set_str(&c->content_store, SP_RUNTIME_CONFIG_CONTENT_STORE);
	c->vcpus = 1;
	c->memory_mib = 512;
	c->boot_timeout_s = 120;
}

static const char *const str_keys[] = {
	"backend", "kernel", "initrd", "qemu", "accel", "tee", "image_store",
	"registry", "state_dir", "default_policy", "agent", "log_level", "rootfs_dir",
	"kernel_cmdline", "content_store", "image_disk_dir",
};

static char **str_field(sp_runtime_config *c, const char *key)
{
	if (!strcmp(key, "backend")) return &c->backend;
	if (!strcmp(key, "kernel")) return &c->kernel;
	if (!strcmp(key, "initrd")) return &c->initrd;
	if (!strcmp(key, "qemu")) return &c->qemu;
	if (!strcmp(key, "accel")) return &c->accel;
	if (!strcmp(key, "tee")) return &c->tee;
	if (!strcmp(key, "image_store")) return &c->image_store;
	if (!strcmp(key, "registry")) return &c->registry;
	if (!strcmp(key, "state_dir")) return &c->state_dir;
	if (!strcmp(key, "default_policy")) return &c->default_policy;
	if (!strcmp(key, "agent")) return &c->agent;
	if (!strcmp(key, "log_level")) return &c->log_level;
	if (!strcmp(key, "rootfs_dir")) return &c->rootfs_dir;
	if (!strcmp(key, "kernel_cmdline")) return &c->kernel_cmdline;
	if (!strcmp(key, "content_store")) return &c->content_store;
	if (!strcmp(key, "image_disk_dir")) return &c->image_disk_dir;
	return NULL;
}

static int check_choice(const char *path, const char *key, const char *v,
			const char *const *choices, sp_err **err)
{
	for (const char *const *p = choices; *p; p++)
		if (!strcmp(*p, v))
			return 0;
	return sp_error(err, SP_ERR_INVALID,
			"%s: \"%s\" is \"%s\"; use one of the documented values (docs/shim.md)",
			path, key, v);
}

static int parse(sp_runtime_config *c, const json_t *doc, const char *path,
		 sp_err **err)
{
	if (!json_is_object(doc))
		return sp_error(err, SP_ERR_PARSE,
				"%s: the runtime configuration must be a JSON object",
				path);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)doc, key, v) {
		char **s = str_field(c, key);
		if (s) {
			if (json_is_null(v)) {
				set_str(s, NULL);
				continue;
			}
			if (!json_is_string(v))
				return sp_error(err, SP_ERR_PARSE,
						"%s: \"%s\" must be a string", path, key);
			set_str(s, json_string_value(v));
			continue;
		}
		if (!strcmp(key, "vcpus") || !strcmp(key, "memory_mib") ||
		    !strcmp(key, "boot_timeout_s")) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
			    json_integer_value(v) > (1 << 24))
				return sp_error(err, SP_ERR_PARSE,
						"%s: \"%s\" must be a positive integer",
						path, key);
			json_int_t n = json_integer_value(v);
			if (!strcmp(key, "vcpus"))
				c->vcpus = (unsigned)n;
			else if (!strcmp(key, "memory_mib"))
				c->memory_mib = (uint64_t)n;
			else
				c->boot_timeout_s = (unsigned)n;
			continue;
		}
		if (key[0] == '_' || !strcmp(key, "comment"))
			continue; /* room for comments in a JSON file */
		return sp_error(err, SP_ERR_PARSE,
				"%s: unknown key \"%s\" (known: backend, kernel, initrd, qemu, accel, tee, vcpus, memory_mib, image_store, registry, content_store, image_disk_dir, state_dir, default_policy, agent, rootfs_dir, kernel_cmdline, boot_timeout_s, log_level)",
				path, key);
	}
	static const char *const backends[] = {"vm", "native", NULL};
	static const char *const tees[] = {"sim", "snp", "none", NULL};
	static const char *const accels[] = {"auto", "tcg", "kvm", NULL};
	if (!c->backend || !c->tee || !c->accel || !c->state_dir)
		return sp_error(err, SP_ERR_PARSE,
				"%s: backend, tee, accel and state_dir cannot be null", path);
	if (check_choice(path, "backend", c->backend, backends, err) < 0 ||
	    check_choice(path, "tee", c->tee, tees, err) < 0 ||
	    check_choice(path, "accel", c->accel, accels, err) < 0)
		return SP_ERR_INVALID;
	if (c->log_level && sp_log_level_parse(c->log_level) < 0)
		return sp_error(err, SP_ERR_PARSE,
				"%s: log_level \"%s\" is not error, warn, info or debug",
				path, c->log_level);
	return 0;
}

int sp_runtime_config_parse(sp_runtime_config **out, const void *data,
			    size_t len, const char *source, sp_err **err)
{
	sp_runtime_config *c = sp_xzalloc(sizeof(*c));
	defaults(c);
	const char *src = source ? source : "runtime configuration";
	_cleanup_json_ json_t *doc = NULL;
	if (sp_json_parse(&doc, data, len, src, err) < 0 ||
	    parse(c, doc, src, err) < 0) {
		sp_runtime_config_free(c);
		return err && *err ? (*err)->code : SP_ERR_PARSE;
	}
	set_str(&c->source, src);
	*out = c;
	return 0;
}

int sp_runtime_config_load(sp_runtime_config **out, const char *path,
			   sp_err **err)
{
	const char *p = path && *path ? path : getenv("SEALPOD_CONFIG");
	bool explicit_path = p && *p;
	if (!explicit_path)
		p = SP_RUNTIME_CONFIG_DEFAULT;
	if (!explicit_path && access(p, F_OK) < 0) {
		sp_runtime_config *c = sp_xzalloc(sizeof(*c));
		defaults(c);
		set_str(&c->source, "(built-in defaults)");
		*out = c;
		return 0;
	}
	_cleanup_free_ uint8_t *data = NULL;
	size_t len = 0;
	if (sp_read_file(&data, &len, p, CONFIG_MAX, err) < 0)
		return sp_error_wrap(err, "runtime configuration (set SEALPOD_CONFIG or the runtime's ConfigPath option)");
	if (sp_runtime_config_parse(out, data, len, p, err) < 0)
		return sp_error_wrap(err, "runtime configuration %s", p);
	return 0;
}

void sp_runtime_config_free(sp_runtime_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SP_ARRAY_LEN(str_keys); i++)
		free(*str_field(c, str_keys[i]));
	free(c->source);
	free(c->registry_auth);
	free(c);
}
