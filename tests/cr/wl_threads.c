/*
 * threads: counter threads under one mutex, and a producer/consumer pair
 * handing over a numbered sequence through a bounded ring with two condition
 * variables. Checkpoints land while threads hold, wait for or release the
 * locks, so a restore that loses a thread, a register, a futex word or a
 * thread's TLS shows up as a deadlock (the harness times out) or as a broken
 * invariant below.
 *
 * Invariants at verify: the sum of the per-thread counts equals the shared
 * count, each counter thread's TLS copy equals its slot, the consumer saw
 * 1, 2, 3, ... without a gap or a repeat, and produced == consumed + queued.
 *
 * Options: --counters N (default 4). Build variant: -DCR_VARIANT=N changes
 * the code (and so the build-id) for the build-id refusal test.
 */
#include "wl_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#ifndef CR_VARIANT
#define CR_VARIANT 1
#endif

#define MAX_COUNTERS 16
#define RING 16

static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t shared_count;
static uint64_t counts[MAX_COUNTERS];
static atomic_int stop;
static __thread uint64_t tls_count;

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static uint64_t ring[RING];
static unsigned ring_head, ring_len;
static uint64_t produced, consumed, consumed_sum, handoff_errors;

static void *counter_main(void *arg)
{
	size_t slot = (size_t)(uintptr_t)arg;
	while (!atomic_load(&stop)) {
		for (int i = 0; i < 200 * CR_VARIANT; i++) {
			pthread_mutex_lock(&count_lock);
			counts[slot]++;
			shared_count++;
			pthread_mutex_unlock(&count_lock);
			tls_count++;
		}
		wl_sleep_ms(1);
	}
	return (void *)(uintptr_t)tls_count;
}

static void *producer_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&ring_lock);
		while (ring_len == RING && !atomic_load(&stop))
			pthread_cond_wait(&not_full, &ring_lock);
		if (atomic_load(&stop)) {
			pthread_mutex_unlock(&ring_lock);
			return NULL;
		}
		ring[(ring_head + ring_len) % RING] = ++produced;
		ring_len++;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&ring_lock);
		if (produced % 64 == 0)
			wl_sleep_ms(1);
	}
}

static void *consumer_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&ring_lock);
		while (ring_len == 0 && !atomic_load(&stop))
			pthread_cond_wait(&not_empty, &ring_lock);
		if (ring_len == 0) {
			pthread_mutex_unlock(&ring_lock);
			return NULL;
		}
		uint64_t v = ring[ring_head];
		ring_head = (ring_head + 1) % RING;
		ring_len--;
		if (v != consumed + 1)
			handoff_errors++;
		consumed++;
		consumed_sum += v;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&ring_lock);
	}
}

static void stop_all(pthread_t *th, size_t n, pthread_t prod, pthread_t cons, uint64_t *tls)
{
	atomic_store(&stop, 1);
	pthread_mutex_lock(&ring_lock);
	pthread_cond_broadcast(&not_full);
	pthread_cond_broadcast(&not_empty);
	pthread_mutex_unlock(&ring_lock);
	for (size_t i = 0; i < n; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		tls[i] = (uint64_t)(uintptr_t)ret;
	}
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
}

static void verify(pthread_t *th, size_t n, pthread_t prod, pthread_t cons)
{
	uint64_t tls[MAX_COUNTERS], sum = 0;
	stop_all(th, n, prod, cons, tls);
	for (size_t i = 0; i < n; i++) {
		sum += counts[i];
		if (tls[i] != counts[i])
			wl_finish(0, shared_count, "thread %zu TLS count %llu != slot %llu", i,
				  (unsigned long long)tls[i], (unsigned long long)counts[i]);
	}
	if (sum != shared_count)
		wl_finish(0, shared_count, "sum of per-thread counts %llu != shared count %llu",
			  (unsigned long long)sum, (unsigned long long)shared_count);
	if (handoff_errors != 0 || consumed + ring_len != produced ||
	    consumed_sum != consumed * (consumed + 1) / 2)
		wl_finish(0, shared_count,
			  "handoff broken: errors=%llu produced=%llu consumed=%llu queued=%u",
			  (unsigned long long)handoff_errors, (unsigned long long)produced,
			  (unsigned long long)consumed, ring_len);
	wl_finish(1, shared_count, "shared=%llu produced=%llu consumed=%llu threads=%zu",
		  (unsigned long long)shared_count, (unsigned long long)produced,
		  (unsigned long long)consumed, n + 2);
}

int main(int argc, char **argv)
{
	size_t n = (size_t)wl_opt(argc, argv, "--counters", 4);
	pthread_t th[MAX_COUNTERS], prod, cons;
	if (n < 1 || n > MAX_COUNTERS)
		n = 4;
	wl_init("threads");
	for (size_t i = 0; i < n; i++)
		pthread_create(&th[i], NULL, counter_main, (void *)(uintptr_t)i);
	pthread_create(&prod, NULL, producer_main, NULL);
	pthread_create(&cons, NULL, consumer_main, NULL);
	while (!wl_verify_requested()) {
		pthread_mutex_lock(&count_lock);
		uint64_t p = shared_count;
		pthread_mutex_unlock(&count_lock);
		wl_progress(p);
		wl_sleep_ms(10);
	}
	verify(th, n, prod, cons);
}
