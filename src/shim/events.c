/* SPDX-License-Identifier: Apache-2.0 */
/* Task events to containerd over ttRPC (Events/Forward on TTRPC_ADDRESS).
 * One thread sends them in the order they were queued: containerd expects
 * create, start, exit, delete in that order. */
#include <string.h>
#include <time.h>

#include "containerd_events.pb-c.h"
#include "containerd_types.pb-c.h"
#include "sealpod/log.h"
#include "shim.h"

#define SEC 1000000000ull

typedef struct event {
	char *topic;
	char *type;
	uint8_t *msg;
	size_t len;
	struct timespec at;
	struct event *next;
} event;

struct shim_publisher {
	char *address;
	char *ns;
	sp_ttrpc_client *client;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	event *head, **tail;
	bool closing;
	pthread_t thread;
};

static int forward(shim_publisher *p, const event *e, sp_err **err)
{
	Containerd__V1__Types__Timestamp ts = CONTAINERD__V1__TYPES__TIMESTAMP__INIT;
	ts.seconds = e->at.tv_sec;
	ts.nanos = (int32_t)e->at.tv_nsec;
	Containerd__V1__Types__Any any = CONTAINERD__V1__TYPES__ANY__INIT;
	any.type_url = e->type;
	any.value.data = e->msg;
	any.value.len = e->len;
	Containerd__Events__Envelope env = CONTAINERD__EVENTS__ENVELOPE__INIT;
	env.timestamp = &ts;
	env.namespace_ = p->ns;
	env.topic = e->topic;
	env.event = &any;
	Containerd__Events__ForwardRequest req = CONTAINERD__EVENTS__FORWARD_REQUEST__INIT;
	req.envelope = &env;
	size_t len = containerd__events__forward_request__get_packed_size(&req);
	_cleanup_free_ uint8_t *buf = sp_xmalloc(len);
	containerd__events__forward_request__pack(&req, buf);
	if (!p->client && sp_ttrpc_client_connect(&p->client, p->address, 5 * SEC, err) < 0)
		return SP_ERR_SYSTEM;
	sp_ttrpc_kv md = {"containerd-namespace-ttrpc", p->ns};
	_cleanup_free_ uint8_t *out = NULL;
	size_t out_len = 0;
	return sp_ttrpc_client_call(p->client, "containerd.services.events.ttrpc.v1.Events",
				    "Forward", buf, len, &md, 1, 5 * SEC, &out,
				    &out_len, NULL, err);
}

static void free_event(event *e)
{
	free(e->topic);
	free(e->type);
	free(e->msg);
	free(e);
}

static void *publisher_thread(void *arg)
{
	shim_publisher *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->closing)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->head)
			break;
		event *e = p->head;
		p->head = e->next;
		if (!p->head)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->mu);
		/* containerd's own publisher tries 5 times. */
		for (int attempt = 0; attempt < 5; attempt++) {
			_cleanup_err_ sp_err *err = NULL;
			if (forward(p, e, &err) == 0) {
				sp_log_debug("published %s", e->topic);
				break;
			}
			sp_log_warn("publish %s to %s (attempt %d): %s", e->topic,
				    p->address, attempt + 1, sp_err_msg(err));
			struct timespec ts = {0, 100 * 1000 * 1000 * (attempt + 1)};
			nanosleep(&ts, NULL);
		}
		free_event(e);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

shim_publisher *shim_publisher_new(const char *ttrpc_address, const char *ns)
{
	shim_publisher *p = sp_xzalloc(sizeof(*p));
	p->address = sp_xstrdup(ttrpc_address ? ttrpc_address : "");
	p->ns = sp_xstrdup(ns);
	p->tail = &p->head;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (!*p->address)
		sp_log_warn("TTRPC_ADDRESS is not set: events go nowhere");
	if (pthread_create(&p->thread, NULL, publisher_thread, p) != 0)
		sp_oom();
	return p;
}

void shim_publish(shim_publisher *p, const char *topic, const char *type,
		  uint8_t *msg, size_t len)
{
	if (!*p->address) {
		free(msg);
		return;
	}
	event *e = sp_xzalloc(sizeof(*e));
	e->topic = sp_xstrdup(topic);
	e->type = sp_xstrdup(type);
	e->msg = msg;
	e->len = len;
	clock_gettime(CLOCK_REALTIME, &e->at);
	pthread_mutex_lock(&p->mu);
	*p->tail = e;
	p->tail = &e->next;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void shim_publisher_free(shim_publisher *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->closing = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	sp_ttrpc_client_free(p->client);
	free(p->address);
	free(p->ns);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
