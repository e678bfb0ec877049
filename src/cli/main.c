/* SPDX-License-Identifier: Apache-2.0 */
/* sealpod: the command line. Each subcommand lives in its own cmd_*.c
 * file; this file only dispatches. */
#include <string.h>

#include "cli.h"
#include "sealpod/log.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct sp_cli_cmd commands[] = {
	{"version", cmd_version, "print the version"},
	{"help", cmd_help, "list the commands"},
	SP_CLI_COMMANDS
};

static int cmd_version(int argc, char **argv)
{
	printf("sealpod %s\n", SEALPOD_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	printf("usage: sealpod COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < SP_ARRAY_LEN(commands); i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].help);
	return 0;
}

int main(int argc, char **argv)
{
	sp_log_init("sealpod", SP_LOG_INFO);
	const char *lvl = getenv("SEALPOD_LOG");
	if (lvl && sp_log_level_parse(lvl) >= 0)
		sp_log_set_level(sp_log_level_parse(lvl));
	if (argc < 2) {
		cmd_help(0, NULL);
		return 2;
	}
	for (size_t i = 0; i < SP_ARRAY_LEN(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	fprintf(stderr, "sealpod: unknown command `%s`; `sealpod help` lists them\n",
		argv[1]);
	return 2;
}
