// User side of the libbpf peer: open the embedded object, attach both
// probes, print one line per event (as `nobtf run unlink` does) until
// SIGINT/SIGTERM or, with -c CMD, until CMD exits. -v prints each start-up
// step's time, as `nobtf run unlink -v` does, to compare where each spends it.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/libbpf.h>

#include "unlink.h"

extern const char unlink_bpf_start[], unlink_bpf_end[];

static volatile sig_atomic_t stop;
static unsigned long long delivered, lost;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void on_event(void *ctx, int cpu, void *data, __u32 size)
{
	const struct unlink_event *e = data;

	(void)ctx;
	if (size < sizeof(*e))
		return;
	delivered++;
	// The line nobtf prints by default: the trace pipe's prefix, then the message.
	printf("%16s-%-7u [%03d] %5llu.%06llu: ", e->comm, e->tid, cpu,
	       (unsigned long long)(e->ts_ns / 1000000000), (unsigned long long)(e->ts_ns % 1000000000 / 1000));
	if (e->kind == UNLINK_ENTRY)
		printf("KPROBE ENTRY pid = %u, filename = %s\n", e->pid, e->filename);
	else
		printf("KPROBE EXIT: pid = %u, ret = %lld\n", e->pid, (long long)e->ret);
}

static void on_lost(void *ctx, int cpu, __u64 count) { (void)ctx; (void)cpu; lost += count; }

static int verbose;
static struct timespec last;

// With -v: the time since main began or since the last step.
static void step(const char *what)
{
	struct timespec now;

	if (!verbose)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	fprintf(stderr, "libbpf-unlink: %s: %.1f ms\n", what,
		(now.tv_sec - last.tv_sec) * 1e3 + (now.tv_nsec - last.tv_nsec) / 1e6);
	last = now;
}

int main(int argc, char **argv)
{
	const char *cmd = NULL;
	pid_t child = 0;
	int opt, err;

	clock_gettime(CLOCK_MONOTONIC, &last);
	while ((opt = getopt(argc, argv, "c:v")) != -1) {
		if (opt == 'c')
			cmd = optarg;
		else if (opt == 'v')
			verbose = 1;
		else {
			fprintf(stderr, "usage: %s [-v] [-c CMD]\n", argv[0]);
			return 2;
		}
	}
	step("arguments");
	struct bpf_object *obj = bpf_object__open_mem(unlink_bpf_start, unlink_bpf_end - unlink_bpf_start, NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "libbpf-unlink: load failed: %s\n", strerror(errno));
		return 1;
	}
	step("open and load (feature probes, verifier)");
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "libbpf-unlink: attach %s failed: %s\n", bpf_program__name(prog), strerror(errno));
			return 1;
		}
	}
	step("attaching");
	int map_fd = bpf_object__find_map_fd_by_name(obj, "events");
	struct perf_buffer *pb = perf_buffer__new(map_fd, 64, on_event, on_lost, NULL, NULL);
	if (!pb) {
		fprintf(stderr, "libbpf-unlink: perf buffer: %s\n", strerror(errno));
		return 1;
	}
	step("perf buffer");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "libbpf-unlink: attached\n");
	if (cmd) {
		child = fork();
		if (child == 0) {
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
			_exit(127);
		}
	}
	while (!stop) {
		err = perf_buffer__poll(pb, 100);
		if (err < 0 && err != -EINTR)
			break;
		// As nobtf does: batch lines while events come, flush once drained.
		fflush(stdout);
		if (child > 0 && waitpid(child, NULL, WNOHANG) == child) {
			while (perf_buffer__consume(pb) > 0)
				;
			break;
		}
	}
	fflush(stdout);
	fprintf(stderr, "libbpf-unlink: %llu events delivered, %llu lost\n", delivered, lost);
	perf_buffer__free(pb);
	bpf_object__close(obj);
	return 0;
}
