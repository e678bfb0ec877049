/* SPDX-License-Identifier: Apache-2.0 */
/* A streaming tar reader: ustar, GNU long names and links (L/K), PAX
 * extended headers (path, linkpath, size, uid, gid, mtime and
 * SCHILY.xattr.*). Input is hostile: every field is bounds-checked, every
 * header checksummed, and anything we do not understand is refused. */
#include <string.h>

#include "image-internal.h"
#include "sealpod/file.h"

#define BLOCK 512

struct img_tar {
	img_stream *in;
	uint64_t pos;         /* bytes consumed from in */
	uint64_t remaining;   /* data bytes left in the current entry */
	uint64_t padding;     /* padding after the current entry's data */
	bool ended;
	struct img_tar_entry e;
};

img_tar *img_tar_new(img_stream *in)
{
	img_tar *t = sp_xzalloc(sizeof(*t));
	t->in = in;
	return t;
}

static void entry_clear(struct img_tar_entry *e)
{
	free(e->path);
	free(e->linkname);
	for (size_t i = 0; i < e->nxattrs; i++) {
		free(e->xattrs[i].name);
		free(e->xattrs[i].value);
	}
	free(e->xattrs);
	memset(e, 0, sizeof(*e));
}

void img_tar_free(img_tar *t)
{
	if (!t)
		return;
	entry_clear(&t->e);
	free(t);
}

static int consume(img_tar *t, void *buf, size_t n, const char *what,
		   sp_err **err)
{
	int r = img_read_full(t->in, buf, n, what, err);
	if (r < 0)
		return r;
	t->pos += n;
	return 0;
}

static int skip_bytes(img_tar *t, uint64_t n, sp_err **err)
{
	int r = img_skip(t->in, n, err);
	if (r < 0)
		return r;
	t->pos += n;
	return 0;
}

/* Numeric fields: octal digits with optional leading spaces and a
 * terminating space or NUL, or GNU base-256 (first byte 0x80). */
static int parse_num(const uint8_t *f, size_t n, uint64_t *out,
		     const char *field, sp_err **err)
{
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return sp_error(err, SP_ERR_PARSE,
					"tar header: negative or oversized base-256 %s",
					field);
		uint64_t v = 0;
		for (size_t i = 1; i < n; i++) {
			if (v >> 56)
				return sp_error(err, SP_ERR_PARSE,
						"tar header: %s overflows", field);
			v = v << 8 | f[i];
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v >> 61)
			return sp_error(err, SP_ERR_PARSE,
					"tar header: %s overflows", field);
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != 0)
			return sp_error(err, SP_ERR_PARSE,
					"tar header: %s is not an octal number", field);
	*out = v;
	(void)digits;
	return 0;
}

static char *field_str(const uint8_t *f, size_t n)
{
	size_t l = strnlen((const char *)f, n);
	return sp_xstrndup((const char *)f, l);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int check_sum(const uint8_t *h, sp_err **err)
{
	uint64_t want;
	int r = parse_num(h + 148, 8, &want, "checksum", err);
	if (r < 0)
		return r;
	uint64_t u = 0;
	int64_t s = 0;
	for (int i = 0; i < BLOCK; i++) {
		uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
		u += c;
		s += (int8_t)c;
	}
	if (u != want && (uint64_t)s != want)
		return sp_error(err, SP_ERR_PARSE,
				"tar header at a bad checksum: the archive is corrupt or not a tar");
	return 0;
}

/* Reads an extension payload (PAX, GNU long name) of size bytes. */
static int read_payload(img_tar *t, uint64_t size, size_t max, uint8_t **out,
			const char *what, sp_err **err)
{
	if (size > max)
		return sp_error(err, SP_ERR_LIMIT,
				"tar: %s of %llu bytes exceeds the limit of %zu",
				what, (unsigned long long)size, max);
	uint8_t *buf = sp_xmalloc((size_t)size + 1);
	int r = consume(t, buf, (size_t)size, what, err);
	if (r >= 0)
		r = skip_bytes(t, (BLOCK - size % BLOCK) % BLOCK, err);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[size] = 0;
	*out = buf;
	return 0;
}

struct pax {
	char *path, *linkpath;
	bool has_size, has_uid, has_gid, has_mtime;
	uint64_t size, uid, gid;
	int64_t mtime;
	size_t nxattrs;
	struct img_xattr *xattrs;
};

static void pax_clear(struct pax *p)
{
	free(p->path);
	free(p->linkpath);
	for (size_t i = 0; i < p->nxattrs; i++) {
		free(p->xattrs[i].name);
		free(p->xattrs[i].value);
	}
	free(p->xattrs);
	memset(p, 0, sizeof(*p));
}

static int pax_decimal(const char *v, size_t n, bool allow_frac,
		       uint64_t *out, const char *key, sp_err **err)
{
	uint64_t x = 0;
	size_t i = 0;
	if (n == 0)
		goto bad;
	for (; i < n && v[i] != '.'; i++) {
		if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
			goto bad;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (i == 0)
		goto bad;
	if (i < n) {
		if (!allow_frac)
			goto bad;
		for (i++; i < n; i++)
			if (v[i] < '0' || v[i] > '9')
				goto bad;
	}
	*out = x;
	return 0;
bad:
	return sp_error(err, SP_ERR_PARSE,
			"tar PAX header: `%s` is not a decimal number", key);
}

/* Records are "LEN KEY=VALUE\n" where LEN counts the whole record. */
static int pax_parse(struct pax *p, const uint8_t *d, size_t n, sp_err **err)
{
	size_t off = 0;
	while (off < n) {
		size_t len = 0, i = off;
		while (i < n && d[i] >= '0' && d[i] <= '9' && i - off < 8)
			len = len * 10 + (size_t)(d[i++] - '0');
		if (i == off || i >= n || d[i] != ' ' || len <= i - off + 1 ||
		    len > n - off || d[off + len - 1] != '\n')
			return sp_error(err, SP_ERR_PARSE,
					"tar PAX header: malformed record at byte %zu",
					off);
		const char *kv = (const char *)d + i + 1;
		size_t kvlen = off + len - 1 - (i + 1);
		const char *eq = memchr(kv, '=', kvlen);
		if (!eq || eq == kv)
			return sp_error(err, SP_ERR_PARSE,
					"tar PAX header: record without a key at byte %zu",
					off);
		size_t klen = (size_t)(eq - kv);
		const char *v = eq + 1;
		size_t vlen = kvlen - klen - 1;
		_cleanup_free_ char *key = sp_xstrndup(kv, klen);
		if (strlen(key) != klen)
			return sp_error(err, SP_ERR_PARSE,
					"tar PAX header: NUL in a key");
		int r = 0;
		if (!strcmp(key, "path") || !strcmp(key, "linkpath")) {
			if (memchr(v, 0, vlen) || vlen > IMG_MAX_PATH)
				return sp_error(err, SP_ERR_PARSE,
						"tar PAX header: bad %s", key);
			char **dst = key[0] == 'p' ? &p->path : &p->linkpath;
			free(*dst);
			*dst = sp_xstrndup(v, vlen);
		} else if (!strcmp(key, "size")) {
			r = pax_decimal(v, vlen, false, &p->size, key, err);
			p->has_size = true;
		} else if (!strcmp(key, "uid")) {
			r = pax_decimal(v, vlen, false, &p->uid, key, err);
			p->has_uid = true;
		} else if (!strcmp(key, "gid")) {
			r = pax_decimal(v, vlen, false, &p->gid, key, err);
			p->has_gid = true;
		} else if (!strcmp(key, "mtime")) {
			uint64_t m = 0;
			if (vlen && v[0] == '-') {
				r = pax_decimal(v + 1, vlen - 1, true, &m, key, err);
				p->mtime = -(int64_t)(m & INT64_MAX);
			} else {
				r = pax_decimal(v, vlen, true, &m, key, err);
				p->mtime = (int64_t)(m & INT64_MAX);
			}
			p->has_mtime = true;
		} else if (!strncmp(key, "SCHILY.xattr.", 13) && klen > 13) {
			if (vlen > IMG_MAX_XATTR || p->nxattrs >= 128)
				return sp_error(err, SP_ERR_LIMIT,
						"tar PAX header: too many or too large xattrs");
			p->xattrs = sp_xrealloc(p->xattrs, (p->nxattrs + 1) *
							 sizeof(*p->xattrs));
			struct img_xattr *x = &p->xattrs[p->nxattrs++];
			x->name = sp_xstrdup(key + 13);
			x->value = sp_xmemdup(vlen ? v : "", vlen ? vlen : 1);
			x->len = vlen;
		}
		/* Other keys (atime, ctime, uname, gname, comment, charset,
		 * LIBARCHIVE.*) do not change what we unpack. */
		if (r < 0)
			return r;
		off += len;
	}
	return 0;
}

int img_tar_next(img_tar *t, const struct img_tar_entry **out, sp_err **err)
{
	int r;
	if (t->ended)
		return 0;
	if (t->remaining + t->padding) {
		r = skip_bytes(t, t->remaining + t->padding, err);
		if (r < 0)
			return r;
		t->remaining = t->padding = 0;
	}
	entry_clear(&t->e);
	struct pax pax = {0};
	_cleanup_free_ char *longname = NULL;
	_cleanup_free_ char *longlink = NULL;
	uint8_t h[BLOCK];
	for (int ext = 0;; ext++) {
		if (ext > 16) {
			pax_clear(&pax);
			return sp_error(err, SP_ERR_PARSE,
					"tar: too many extension headers in a row");
		}
		size_t got_hdr = 0;
		ssize_t n;
		/* EOF exactly at a block boundary without the zero blocks is
		 * accepted as the end (some writers omit them). */
		while (got_hdr < BLOCK) {
			n = t->in->read(t->in, h + got_hdr, BLOCK - got_hdr, err);
			if (n < 0) {
				pax_clear(&pax);
				return (int)n;
			}
			if (n == 0)
				break;
			got_hdr += (size_t)n;
		}
		t->pos += got_hdr;
		if (got_hdr == 0 && ext == 0) {
			t->ended = true;
			return 0;
		}
		if (got_hdr < BLOCK) {
			pax_clear(&pax);
			return sp_error(err, SP_ERR_PARSE,
					"tar: truncated header at offset %llu",
					(unsigned long long)t->pos);
		}
		if (all_zero(h, BLOCK)) {
			if (ext) {
				pax_clear(&pax);
				return sp_error(err, SP_ERR_PARSE,
						"tar: extension header without an entry");
			}
			t->ended = true;
			return 0;
		}
		if ((r = check_sum(h, err)) < 0) {
			pax_clear(&pax);
			return r;
		}
		uint64_t size;
		if ((r = parse_num(h + 124, 12, &size, "size", err)) < 0) {
			pax_clear(&pax);
			return r;
		}
		char type = (char)h[156];
		if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
			_cleanup_free_ uint8_t *payload = NULL;
			size_t max = (type == 'L' || type == 'K') ? IMG_MAX_PATH
								  : IMG_MAX_PAX;
			r = read_payload(t, size, max, &payload,
					 "tar extension header", err);
			if (r >= 0 && type == 'x')
				r = pax_parse(&pax, payload, (size_t)size, err);
			/* Global headers ('g') set defaults we do not use. */
			if (r >= 0 && (type == 'L' || type == 'K')) {
				char **dst = type == 'L' ? &longname : &longlink;
				free(*dst);
				*dst = sp_xstrndup((char *)payload,
						   strnlen((char *)payload, (size_t)size));
			}
			if (r < 0) {
				pax_clear(&pax);
				return r;
			}
			continue;
		}
		struct img_tar_entry *e = &t->e;
		bool ustar = !memcmp(h + 257, "ustar\0", 6);
		bool gnu = !memcmp(h + 257, "ustar  \0", 8);
		switch (type) {
		case '\0':
		case '7':
			type = '0';
			break;
		case '0': case '1': case '2': case '3': case '4': case '5':
		case '6':
			break;
		default:
			pax_clear(&pax);
			return sp_error(err, SP_ERR_UNSUPPORTED,
					"tar: entry type `%c` (0x%02x) is not supported",
					type >= 0x20 && type < 0x7f ? type : '?',
					(unsigned)(uint8_t)type);
		}
		e->type = type;
		if (pax.path) {
			e->path = sp_steal_ptr(&pax.path);
		} else if (longname) {
			e->path = sp_steal_ptr(&longname);
		} else if (ustar && h[345]) {
			_cleanup_free_ char *pre = field_str(h + 345, 155);
			_cleanup_free_ char *nm = field_str(h, 100);
			e->path = sp_xasprintf("%s/%s", pre, nm);
		} else {
			e->path = field_str(h, 100);
		}
		if (pax.linkpath)
			e->linkname = sp_steal_ptr(&pax.linkpath);
		else if (longlink)
			e->linkname = sp_steal_ptr(&longlink);
		else if (h[157])
			e->linkname = field_str(h + 157, 100);
		uint64_t mode = 0, uid = 0, gid = 0, mtime = 0, dmaj = 0, dmin = 0;
		if ((r = parse_num(h + 100, 8, &mode, "mode", err)) < 0 ||
		    (r = parse_num(h + 108, 8, &uid, "uid", err)) < 0 ||
		    (r = parse_num(h + 116, 8, &gid, "gid", err)) < 0 ||
		    (r = parse_num(h + 136, 12, &mtime, "mtime", err)) < 0) {
			pax_clear(&pax);
			return r;
		}
		if ((ustar || gnu) && (type == '3' || type == '4') &&
		    ((r = parse_num(h + 329, 8, &dmaj, "devmajor", err)) < 0 ||
		     (r = parse_num(h + 337, 8, &dmin, "devminor", err)) < 0)) {
			pax_clear(&pax);
			return r;
		}
		e->mode = (uint32_t)(mode & 07777);
		e->uid = pax.has_uid ? pax.uid : uid;
		e->gid = pax.has_gid ? pax.gid : gid;
		e->mtime = pax.has_mtime ? pax.mtime : (int64_t)(mtime & INT64_MAX);
		e->devmajor = (uint32_t)dmaj;
		e->devminor = (uint32_t)dmin;
		if (pax.has_size)
			size = pax.size;
		e->xattrs = sp_steal_ptr(&pax.xattrs);
		e->nxattrs = pax.nxattrs;
		pax.nxattrs = 0;
		pax_clear(&pax);
		if (e->uid > UINT32_MAX || e->gid > UINT32_MAX)
			return sp_error(err, SP_ERR_PARSE,
					"tar entry `%s`: uid or gid out of range",
					e->path);
		if (!e->path[0])
			return sp_error(err, SP_ERR_PARSE, "tar: entry with an empty name");
		if ((type == '1' || type == '2') && (!e->linkname || !e->linkname[0]))
			return sp_error(err, SP_ERR_PARSE,
					"tar entry `%s`: link without a target", e->path);
		/* Only regular files carry data; in ustar, hard links,
		 * directories, devices may state a size that is not stored. */
		e->size = type == '0' ? size : 0;
		if (type != '0' && size && type != '1' && type != '5' &&
		    type != '2')
			return sp_error(err, SP_ERR_PARSE,
					"tar entry `%s`: unexpected data", e->path);
		if (size > (UINT64_MAX >> 2))
			return sp_error(err, SP_ERR_PARSE,
					"tar entry `%s`: size out of range", e->path);
		if (type == '0') {
			t->remaining = size;
			t->padding = (BLOCK - size % BLOCK) % BLOCK;
		} else {
			t->remaining = 0;
			t->padding = 0;
		}
		e->data_offset = t->pos;
		*out = e;
		return 1;
	}
}

ssize_t img_tar_read(img_tar *t, void *buf, size_t n, sp_err **err)
{
	if (t->remaining == 0)
		return 0;
	if (n > t->remaining)
		n = (size_t)t->remaining;
	ssize_t got = t->in->read(t->in, buf, n, err);
	if (got < 0)
		return got;
	if (got == 0)
		return sp_error(err, SP_ERR_PARSE,
				"tar entry `%s`: the archive ends inside its data",
				t->e.path);
	t->remaining -= (uint64_t)got;
	t->pos += (uint64_t)got;
	return got;
}

/* ---- writer: plain ustar, names under 100 bytes (blob paths) ---- */

static void put_octal(uint8_t *f, size_t n, uint64_t v)
{
	/* n-1 digits and a NUL; larger values in base-256. */
	if (n < 2 || ((n - 1) * 3 < 64 && v >> ((n - 1) * 3))) {
		memset(f, 0, n);
		f[0] = 0x80;
		for (size_t i = n - 1; i > 0; i--, v >>= 8)
			f[i] = (uint8_t)v;
		return;
	}
	f[n - 1] = 0;
	for (size_t i = n - 1; i > 0; i--, v >>= 3)
		f[i - 1] = (uint8_t)('0' + (v & 7));
}

int img_tar_write_header(int fd, const char *name, char type, uint64_t size,
			 uint32_t mode, sp_err **err)
{
	uint8_t h[BLOCK] = {0};
	size_t nl = strlen(name);
	if (nl >= 100)
		return sp_error(err, SP_ERR_INVALID,
				"tar writer: name `%s` is too long", name);
	memcpy(h, name, nl);
	put_octal(h + 100, 8, mode);
	put_octal(h + 108, 8, 0);
	put_octal(h + 116, 8, 0);
	put_octal(h + 124, 12, size);
	put_octal(h + 136, 12, 0);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += h[i];
	put_octal(h + 148, 7, sum);
	h[155] = ' ';
	if (sp_write_all(fd, h, BLOCK) < 0)
		return sp_error_sys(err, errno, "tar writer: write");
	return 0;
}

int img_tar_write_pad(int fd, uint64_t size, sp_err **err)
{
	static const uint8_t zero[BLOCK];
	size_t pad = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	if (pad && sp_write_all(fd, zero, pad) < 0)
		return sp_error_sys(err, errno, "tar writer: write");
	return 0;
}

int img_tar_write_end(int fd, sp_err **err)
{
	static const uint8_t zero[2 * BLOCK];
	if (sp_write_all(fd, zero, sizeof(zero)) < 0)
		return sp_error_sys(err, errno, "tar writer: write");
	return 0;
}
