/* SPDX-License-Identifier: Apache-2.0 */
/* `sealpod image SUBCOMMAND`: dispatches to one function per verb. */
#include <string.h>

#include "cli.h"

static const struct sp_cli_cmd image_cmds[] = {
	{"build", cmd_image_build, "build the guest image (kernel, initrd, manifest)"},
	{"import", cmd_image_import, "import a docker-archive or OCI layout into a store"},
	{"pack", cmd_image_pack, "write images of a store as one tar (the UVM's image disk)"},
	{"pull", cmd_image_pull, "pull, verify and unpack an image into a directory"},
	{"config", cmd_image_config, "print an image's digest and config"},
};

int cmd_image(int argc, char **argv)
{
	if (argc >= 2)
		for (size_t i = 0; i < SP_ARRAY_LEN(image_cmds); i++)
			if (!strcmp(argv[1], image_cmds[i].name))
				return image_cmds[i].fn(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h"))
		fprintf(stderr, "sealpod image: unknown verb `%s`\n", argv[1]);
	fprintf(stderr, "usage: sealpod image VERB [ARGS...]\n\nverbs:\n");
	for (size_t i = 0; i < SP_ARRAY_LEN(image_cmds); i++)
		fprintf(stderr, "  %-8s %s\n", image_cmds[i].name, image_cmds[i].help);
	return 2;
}
