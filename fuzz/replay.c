/* SPDX-License-Identifier: Apache-2.0 */
/* Replays every file of a corpus directory through a fuzz target, so the
 * corpus runs as an ordinary test in every build (libgit2 does the same). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sealpod/file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "%s: cannot open corpus `%s`\n", argv[0], argv[1]);
		return 1;
	}
	struct dirent *de;
	size_t count = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *path = sp_xasprintf("%s/%s", argv[1], de->d_name);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			uint8_t *data = NULL;
			size_t len = 0;
			sp_err *err = NULL;
			if (sp_read_file(&data, &len, path, 64u << 20, &err) < 0) {
				fprintf(stderr, "%s\n", sp_err_msg(err));
				return 1;
			}
			LLVMFuzzerTestOneInput(data, len);
			free(data);
			count++;
		}
		free(path);
	}
	closedir(d);
	if (count == 0) {
		fprintf(stderr, "%s: corpus `%s` is empty\n", argv[0], argv[1]);
		return 1;
	}
	printf("replayed %zu inputs\n", count);
	return 0;
}
