// User side of the limit: attach both empty programs as libbpf-unlink does
// (bpf_program__attach), say so on stdout (benchctl waits for that line, as
// there are no events), then sleep until SIGINT/SIGTERM.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

extern const char limit_bpf_start[], limit_bpf_end[];

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(void)
{
	struct bpf_object *obj = bpf_object__open_mem(limit_bpf_start, limit_bpf_end - limit_bpf_start, NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "libbpf-limit: load failed: %s\n", strerror(errno));
		return 1;
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "libbpf-limit: attach %s failed: %s\n", bpf_program__name(prog), strerror(errno));
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("libbpf-limit: attached\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_object__close(obj);
	return 0;
}
