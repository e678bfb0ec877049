/* SPDX-License-Identifier: Apache-2.0 */
/* Byte streams: memory, a window of a file or block device, a verifying
 * stream that hashes and counts, and gzip/zstd decompression. */
#include <pthread.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "image-internal.h"
#include "sealpod/codec.h"
#include "sealpod/hash.h"

int img_read_full(img_stream *s, void *buf, size_t n, const char *what,
		  sp_err **err)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = s->read(s, (uint8_t *)buf + got, n - got, err);
		if (r < 0)
			return (int)r;
		if (r == 0)
			return sp_error(err, SP_ERR_PARSE,
					"%s: the stream ended %zu bytes early", what,
					n - got);
		got += (size_t)r;
	}
	return 0;
}

int img_skip(img_stream *s, uint64_t n, sp_err **err)
{
	if (n == 0)
		return 0;
	if (s->skip)
		return s->skip(s, n, err);
	static uint8_t sink[65536];
	while (n) {
		size_t k = n > sizeof(sink) ? sizeof(sink) : (size_t)n;
		int r = img_read_full(s, sink, k, "skipping data", err);
		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

void img_stream_close(img_stream *s)
{
	if (s)
		s->close(s);
}

/* ---- memory ---- */
struct mem_stream {
	img_stream s;
	const uint8_t *data;
	size_t len, off;
};

static ssize_t mem_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct mem_stream *m = (struct mem_stream *)s;
	size_t k = m->len - m->off < n ? m->len - m->off : n;
	memcpy(buf, m->data + m->off, k);
	m->off += k;
	return (ssize_t)k;
}

static void free_close(img_stream *s)
{
	free(s);
}

img_stream *img_mem_stream(const void *data, size_t len)
{
	struct mem_stream *m = sp_xzalloc(sizeof(*m));
	m->s.read = mem_read;
	m->s.close = free_close;
	m->data = data;
	m->len = len;
	return &m->s;
}

/* ---- a window of a file ---- */
struct fd_stream {
	img_stream s;
	int fd;
	bool own;
	uint64_t off, left;
};

static ssize_t fd_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct fd_stream *f = (struct fd_stream *)s;
	if (n > f->left)
		n = (size_t)f->left;
	if (n == 0)
		return 0;
	for (;;) {
		ssize_t r = pread(f->fd, buf, n, (off_t)f->off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return sp_error_sys(err, errno, "reading the image store");
		f->off += (uint64_t)r;
		f->left -= (uint64_t)r;
		return r;
	}
}

static int fd_skip(img_stream *s, uint64_t n, sp_err **err)
{
	struct fd_stream *f = (struct fd_stream *)s;
	if (n > f->left)
		return sp_error(err, SP_ERR_PARSE,
				"image store: data ends %llu bytes early",
				(unsigned long long)(n - f->left));
	f->off += n;
	f->left -= n;
	return 0;
}

static void fd_close(img_stream *s)
{
	struct fd_stream *f = (struct fd_stream *)s;
	if (f->own)
		close(f->fd);
	free(f);
}

img_stream *img_fd_stream_take(int fd)
{
	img_stream *s = img_fd_stream(fd, 0, UINT64_MAX);
	((struct fd_stream *)s)->own = true;
	return s;
}

img_stream *img_fd_stream(int fd, uint64_t offset, uint64_t len)
{
	struct fd_stream *f = sp_xzalloc(sizeof(*f));
	f->s.read = fd_read;
	f->s.skip = fd_skip;
	f->s.close = fd_close;
	f->fd = fd;
	f->off = offset;
	f->left = len;
	return &f->s;
}

/* ---- verification ---- */
struct verify_stream {
	img_stream s;
	img_stream *inner;
	sp_hash *h;
	uint8_t want[SP_SHA256_LEN];
	int64_t size;   /* -1: unknown */
	uint64_t count;
	char *what;
	bool done;
};

static ssize_t verify_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct verify_stream *v = (struct verify_stream *)s;
	if (v->done)
		return 0;
	ssize_t r = v->inner->read(v->inner, buf, n, err);
	if (r < 0)
		return r;
	if (r > 0) {
		v->count += (uint64_t)r;
		if (v->size >= 0 && v->count > (uint64_t)v->size)
			return sp_error(err, SP_ERR_APPRAISAL,
					"%s is larger than the %lld bytes its descriptor states; the store is corrupt or was tampered with",
					v->what, (long long)v->size);
		sp_hash_update(v->h, buf, (size_t)r);
		return r;
	}
	v->done = true;
	if (v->size >= 0 && v->count != (uint64_t)v->size)
		return sp_error(err, SP_ERR_APPRAISAL,
				"%s has %llu bytes, its descriptor states %lld; the store is corrupt or was tampered with",
				v->what, (unsigned long long)v->count,
				(long long)v->size);
	uint8_t got[64];
	sp_hash_final(v->h, got);
	if (!sp_memeq_ct(got, v->want, SP_SHA256_LEN)) {
		char hex[2 * SP_SHA256_LEN + 1];
		sp_hex_encode(hex, got, SP_SHA256_LEN);
		return sp_error(err, SP_ERR_APPRAISAL,
				"%s does not match its digest (content has sha256:%s); the image store is corrupt or was tampered with",
				v->what, hex);
	}
	return 0;
}

static void verify_close(img_stream *s)
{
	struct verify_stream *v = (struct verify_stream *)s;
	img_stream_close(v->inner);
	sp_hash_free(v->h);
	free(v->what);
	free(v);
}

img_stream *img_verify_stream(img_stream *inner, const char *digest,
			      int64_t size, const char *what)
{
	struct verify_stream *v = sp_xzalloc(sizeof(*v));
	v->s.read = verify_read;
	v->s.close = verify_close;
	v->inner = inner;
	v->h = sp_hash_new(SP_HASH_SHA256);
	v->size = size;
	v->what = sp_xasprintf("%s %s", what, digest);
	/* Callers pass only validated digests. */
	if (sp_hex_decode(v->want, SP_SHA256_LEN, digest + 7, NULL) < 0)
		memset(v->want, 0xff, sizeof(v->want));
	return &v->s;
}

/* ---- decompression ---- */
#define INBUF (256u << 10)

struct z_stream_ {
	img_stream s;
	img_stream *inner;
	bool zstd;
	z_stream z;
	ZSTD_DStream *zs;
	ZSTD_inBuffer zin;
	uint8_t *in;
	size_t in_len, in_off;
	bool in_eof, end, member_done;
};

static int refill(struct z_stream_ *d, sp_err **err)
{
	ssize_t r = d->inner->read(d->inner, d->in, INBUF, err);
	if (r < 0)
		return (int)r;
	d->in_len = (size_t)r;
	d->in_off = 0;
	if (r == 0)
		d->in_eof = true;
	return 0;
}

static ssize_t gz_read(struct z_stream_ *d, void *buf, size_t n, sp_err **err)
{
	for (;;) {
		if (d->in_off == d->in_len && !d->in_eof) {
			int r = refill(d, err);
			if (r < 0)
				return r;
		}
		if (d->member_done) {
			/* Another gzip member may follow (concatenation). */
			if (d->in_off == d->in_len && d->in_eof) {
				d->end = true;
				return 0;
			}
			inflateReset(&d->z);
			d->member_done = false;
		}
		if (d->in_off == d->in_len && d->in_eof)
			return sp_error(err, SP_ERR_PARSE,
					"gzip layer: the stream is truncated");
		d->z.next_in = d->in + d->in_off;
		d->z.avail_in = (uInt)(d->in_len - d->in_off);
		d->z.next_out = buf;
		d->z.avail_out = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
		int zr = inflate(&d->z, Z_NO_FLUSH);
		size_t out = (size_t)(d->z.next_out - (Bytef *)buf);
		d->in_off = (size_t)(d->z.next_in - d->in);
		if (zr == Z_STREAM_END)
			d->member_done = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			return sp_error(err, SP_ERR_PARSE,
					"gzip layer: corrupt data (%s)",
					d->z.msg ? d->z.msg : "inflate failed");
		if (out)
			return (ssize_t)out;
	}
}

static ssize_t zstd_read(struct z_stream_ *d, void *buf, size_t n, sp_err **err)
{
	for (;;) {
		if (d->zin.pos == d->zin.size && !d->in_eof) {
			int r = refill(d, err);
			if (r < 0)
				return r;
			d->zin.src = d->in;
			d->zin.size = d->in_len;
			d->zin.pos = 0;
		}
		if (d->zin.pos == d->zin.size && d->in_eof) {
			if (!d->member_done)
				return sp_error(err, SP_ERR_PARSE,
						"zstd layer: the stream is truncated");
			d->end = true;
			return 0;
		}
		ZSTD_outBuffer o = {buf, n, 0};
		size_t zr = ZSTD_decompressStream(d->zs, &o, &d->zin);
		if (ZSTD_isError(zr))
			return sp_error(err, SP_ERR_PARSE,
					"zstd layer: corrupt data (%s)",
					ZSTD_getErrorName(zr));
		d->member_done = zr == 0;
		if (o.pos)
			return (ssize_t)o.pos;
	}
}

static ssize_t dec_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct z_stream_ *d = (struct z_stream_ *)s;
	if (d->end)
		return 0;
	return d->zstd ? zstd_read(d, buf, n, err) : gz_read(d, buf, n, err);
}

static void dec_close(img_stream *s)
{
	struct z_stream_ *d = (struct z_stream_ *)s;
	if (d->zstd)
		ZSTD_freeDStream(d->zs);
	else
		inflateEnd(&d->z);
	img_stream_close(d->inner);
	free(d->in);
	free(d);
}

img_stream *img_decompress_stream(img_stream *inner, const char *algo)
{
	if (!algo)
		return inner;
	struct z_stream_ *d = sp_xzalloc(sizeof(*d));
	d->s.read = dec_read;
	d->s.close = dec_close;
	d->inner = inner;
	d->in = sp_xmalloc(INBUF);
	if (!strcmp(algo, "zstd")) {
		d->zstd = true;
		d->zs = ZSTD_createDStream();
		if (!d->zs)
			sp_oom();
		/* A window bigger than 128 MiB would let a tiny layer make
		 * the guest allocate that much. */
		ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax, 27);
	} else {
		if (inflateInit2(&d->z, 15 + 16) != Z_OK)
			sp_oom();
	}
	return &d->s;
}

/* ---- read-ahead in a thread: inflate and hashing of the compressed
 * blob run beside the tar parsing and file writes (tar | gzip -d does
 * the same with two processes). ---- */
#define RA_BUFS 4
#define RA_SIZE (1u << 20)

struct ra_stream {
	img_stream s;
	img_stream *inner;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[RA_BUFS];
	size_t len[RA_BUFS];
	size_t head, tail, count; /* ring of filled buffers */
	size_t off;               /* consumer offset in buf[head] */
	bool eof, stop;
	int code;                 /* producer's error */
	sp_err *err;
};

static void *ra_main(void *arg)
{
	struct ra_stream *r = arg;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (r->count == RA_BUFS && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		bool stop = r->stop;
		size_t slot = r->tail;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			return NULL;
		size_t got = 0;
		sp_err *e = NULL;
		ssize_t n = 0;
		while (got < RA_SIZE) {
			n = r->inner->read(r->inner, r->buf[slot] + got, RA_SIZE - got, &e);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		pthread_mutex_lock(&r->mu);
		if (got) {
			r->len[slot] = got;
			r->tail = (r->tail + 1) % RA_BUFS;
			r->count++;
		}
		if (n < 0) {
			r->code = (int)n;
			r->err = e;
		}
		if (n <= 0)
			r->eof = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (n <= 0)
			return NULL;
	}
}

static ssize_t ra_read(img_stream *s, void *buf, size_t n, sp_err **err)
{
	struct ra_stream *r = (struct ra_stream *)s;
	pthread_mutex_lock(&r->mu);
	while (r->count == 0 && !r->eof)
		pthread_cond_wait(&r->cv, &r->mu);
	if (r->count == 0) {
		int code = r->code;
		if (code < 0 && r->err) {
			sp_error(err, r->err->code, "%s", r->err->msg);
			if (err && *err)
				(*err)->sys_errno = r->err->sys_errno;
		}
		pthread_mutex_unlock(&r->mu);
		return code;
	}
	size_t slot = r->head;
	pthread_mutex_unlock(&r->mu);
	/* The slot is ours until we hand it back. */
	size_t k = r->len[slot] - r->off < n ? r->len[slot] - r->off : n;
	memcpy(buf, r->buf[slot] + r->off, k);
	r->off += k;
	if (r->off == r->len[slot]) {
		pthread_mutex_lock(&r->mu);
		r->off = 0;
		r->head = (r->head + 1) % RA_BUFS;
		r->count--;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
	return (ssize_t)k;
}

static void ra_close(img_stream *s)
{
	struct ra_stream *r = (struct ra_stream *)s;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	img_stream_close(r->inner);
	for (int i = 0; i < RA_BUFS; i++)
		free(r->buf[i]);
	sp_err_free(r->err);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}

img_stream *img_readahead_stream(img_stream *inner)
{
	struct ra_stream *r = sp_xzalloc(sizeof(*r));
	r->s.read = ra_read;
	r->s.close = ra_close;
	r->inner = inner;
	for (int i = 0; i < RA_BUFS; i++)
		r->buf[i] = sp_xmalloc(RA_SIZE);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, ra_main, r) != 0) {
		/* No thread: read inline. */
		for (int i = 0; i < RA_BUFS; i++)
			free(r->buf[i]);
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
		free(r);
		return inner;
	}
	return &r->s;
}
