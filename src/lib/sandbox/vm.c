/* SPDX-License-Identifier: Apache-2.0 */
/* The "vm" backend: a UVM through the launcher (vm.h). */
#include "sandbox-internal.h"

static int vm_launch(sp_sandbox *sb, sp_err **err)
{
	return sp_error(err, SP_ERR_UNSUPPORTED, "the UVM launcher is not built in yet");
}

static bool vm_dead(sp_sandbox *sb)
{
	return true;
}

static void vm_teardown(sp_sandbox *sb)
{
}

const sp_sandbox_backend sp_sandbox_vm_backend = {
	.name = "vm",
	.launch = vm_launch,
	.dead = vm_dead,
	.teardown = vm_teardown,
};
