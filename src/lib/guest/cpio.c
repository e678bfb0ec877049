/* SPDX-License-Identifier: Apache-2.0 */
/* The newc cpio format the kernel unpacks into its initramfs, written
 * here rather than by cpio(1) so that every field is ours to fix: owners
 * 0:0, one mtime, inode numbers by position, no device numbers. */
#include <string.h>
#include <sys/stat.h>

#include "sealpod/bytes.h"
#include "sealpod/guest.h"

struct sp_cpio {
	sp_buf out;
	uint32_t mtime;
	uint32_t ino;
};

sp_cpio *sp_cpio_new(uint32_t mtime)
{
	sp_cpio *c = sp_xzalloc(sizeof(*c));
	c->mtime = mtime;
	c->ino = 1;
	return c;
}

static void pad4(sp_buf *b)
{
	while (b->len % 4)
		sp_buf_put_u8(b, 0);
}

static void entry(sp_cpio *c, const char *path, uint32_t mode, uint32_t nlink,
		  uint32_t rmaj, uint32_t rmin, const void *data, size_t len)
{
	/* Archive names are relative: "init", "lib/x.so". */
	while (*path == '/')
		path++;
	size_t namesize = strlen(path) + 1;
	uint32_t ino = c->ino++;
	if (!strcmp(path, "TRAILER!!!"))
		ino = 0;
	sp_buf_printf(&c->out,
		      "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		      ino, mode, 0u, 0u, nlink, c->mtime, (uint32_t)len, 0u, 0u, rmaj,
		      rmin, (uint32_t)namesize, 0u);
	sp_buf_put(&c->out, path, namesize);
	pad4(&c->out);
	if (len) {
		sp_buf_put(&c->out, data, len);
		pad4(&c->out);
	}
}

void sp_cpio_add_dir(sp_cpio *c, const char *path, uint32_t mode)
{
	entry(c, path, S_IFDIR | (mode & 07777), 2, 0, 0, NULL, 0);
}

void sp_cpio_add_file(sp_cpio *c, const char *path, uint32_t mode,
		      const void *data, size_t len)
{
	entry(c, path, S_IFREG | (mode & 07777), 1, 0, 0, data, len);
}

void sp_cpio_add_symlink(sp_cpio *c, const char *path, const char *target)
{
	entry(c, path, S_IFLNK | 0777, 1, 0, 0, target, strlen(target));
}

void sp_cpio_add_chardev(sp_cpio *c, const char *path, uint32_t mode,
			 uint32_t major, uint32_t minor)
{
	entry(c, path, S_IFCHR | (mode & 07777), 1, major, minor, NULL, 0);
}

uint8_t *sp_cpio_finish(sp_cpio *c, size_t *len)
{
	entry(c, "TRAILER!!!", 0, 1, 0, 0, NULL, 0);
	/* Padding to 512 bytes, as cpio(1) does; the kernel ignores it. */
	while (c->out.len % 512)
		sp_buf_put_u8(&c->out, 0);
	return sp_buf_steal(&c->out, len);
}

void sp_cpio_free(sp_cpio *c)
{
	if (!c)
		return;
	sp_buf_free(&c->out);
	free(c);
}
