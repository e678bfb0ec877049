/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SEALPOD_CLI_H
#define SEALPOD_CLI_H

#include "sealpod/common.h"

struct sp_cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

/* Subcommands: each cmd_<name>.c defines cmd_<name>(); add a prototype
 * and an entry below. argv[0] is the subcommand's name. Exit codes: 0 ok,
 * 1 failure, 2 usage. */
int cmd_measure(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_image_build(int argc, char **argv); /* issue 7: `image build` */
int cmd_vm(int argc, char **argv);          /* issue 7 */

#define SP_CLI_COMMANDS /* entries are added as the commands land */ \
	{"image", cmd_image, "build (and import) images"}, \
	{"vm", cmd_vm, "boot the guest image alone (debugging, benchmarks)"},

#endif
