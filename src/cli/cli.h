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
int cmd_ps(int argc, char **argv);   /* issue 10 */
int cmd_logs(int argc, char **argv); /* issue 10 */
int cmd_exec(int argc, char **argv); /* issue 10 */
int cmd_stop(int argc, char **argv); /* issue 10 */
int cmd_simpsp(int argc, char **argv);
int cmd_agent(int argc, char **argv); /* issue 8 */
int cmd_kbs(int argc, char **argv);   /* key broker client */
int cmd_release(int argc, char **argv); /* signed release manifests */

/* One entry per line, each ending in a backslash; keep the end marker last. */
#define SP_CLI_COMMANDS \
	{"measure", cmd_measure, "compute an SNP launch digest"}, \
	{"verify", cmd_verify, "verify an SNP report and appraise its claims"}, \
	{"report", cmd_report, "show an SNP report as JSON (report show R)"}, \
	{"sim-psp", cmd_simpsp, "run the sim PSP (SEV-SNP stand-in)"}, \
	{"policy", cmd_policy, "generate, explain and evaluate pod policies"}, \
	{"agent", cmd_agent, "talk to a guest agent (agent call ADDR METHOD JSON)"}, \
	{"image", cmd_image, "build the guest image; import, pack and pull container images"}, \
	{"vm", cmd_vm, "boot the guest image alone (debugging, benchmarks)"}, \
	{"run", cmd_run, "run a Kubernetes pod in a confidential UVM"}, \
	{"ps", cmd_ps, "list the pods `sealpod run` runs"}, \
	{"logs", cmd_logs, "show a pod's output (logs NAME [CONTAINER] [-f])"}, \
	{"exec", cmd_exec, "run a command in a pod's container (exec NAME [-c C] -- CMD...)"}, \
	{"stop", cmd_stop, "stop a pod and remove it (stop NAME [--grace S])"}, \
	{"kbs", cmd_kbs, "fetch a key broker resource as a guest would (kbs get-resource)"}, \
	{"release", cmd_release, "sign and check release manifests (release sign|verify|key-id)"}, \
	/* end of SP_CLI_COMMANDS */

/* image store verbs (issue 9), called by cmd_image's dispatcher */
int cmd_image_import(int argc, char **argv);
int cmd_image_pack(int argc, char **argv);
int cmd_image_pull(int argc, char **argv);
int cmd_image_config(int argc, char **argv);
int cmd_image_build(int argc, char **argv); /* issue 7: `image build` */
int cmd_vm(int argc, char **argv);          /* issue 7 */

#endif
