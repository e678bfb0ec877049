/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the launcher's files; not part of the public API. */
#ifndef SEALPOD_VM_INTERNAL_H
#define SEALPOD_VM_INTERNAL_H

#include "sealpod/vm.h"

/* Doubles commas so that s can sit inside a QEMU option value. */
char *sp_vm_qemu_escape(const char *s);

/* The KVM probe without the caches (tests and `sealpod vm probe`). */
bool sp_vm_kvm_probe(uint64_t timeout_ns, char **why);

#endif
