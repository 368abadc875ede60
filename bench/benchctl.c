// The measuring side of scripts/bench, run inside the VM.
//   benchctl loop N WORK
//       do WORK N times; prints ns_per_unlink (ns per operation). WORK is
//       PATH (unlink PATH, which does not exist), open:PATH (open and close
//       PATH) or read:PATH (pread 64 bytes of PATH, opened once).
//   benchctl trace N PATH NEEDLE -- CMD...
//       start the tracer CMD with its stdout on a pipe; unlink a marker file
//       every 2 ms until a line containing NEEDLE comes back (attach_ms, from
//       start to first event seen); discard its output for 500 ms so the
//       marker's events are gone (the marker is also opened, for tracers of
//       opens); then drain the pipe in a child counting
//       entry and exit lines, all lines and the sum of "Lost N events" lines;
//       do WORK N times (ns_per_unlink), give the tracer 2 s to catch up, stop
//       it with SIGINT and report its peak_rss_kb and the CPU time it used
//       from the loop's start to the stop (storm_cpu_ms). Nothing else unlinks in
//       the VM, so every counted event is one of the N unlinks'.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// ns per operation of WORK (see the usage above).
static double work_loop(long n, const char *work)
{
	long long start;
	char buf[64];

	if (!strncmp(work, "open:", 5)) {
		start = now_ns();
		for (long i = 0; i < n; i++) {
			int fd = open(work + 5, O_RDONLY);

			if (fd >= 0)
				close(fd);
		}
	} else if (!strncmp(work, "read:", 5)) {
		int fd = open(work + 5, O_RDONLY);

		if (fd < 0)
			return perror("benchctl: open"), -1;
		start = now_ns();
		for (long i = 0; i < n; i++)
			if (pread(fd, buf, sizeof(buf), 0) < 0)
				return perror("benchctl: pread"), -1;
		close(fd);
	} else {
		start = now_ns();
		for (long i = 0; i < n; i++)
			unlink(work);
	}
	return (double)(now_ns() - start) / n;
}

// CPU time (user + system, all threads) a process has used, in ms; -1 if unknown.
static double cpu_ms(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long utime, stime;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	// Fields 14 and 15, counted from after the parenthesised comm.
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) * 1000.0 / sysconf(_SC_CLK_TCK);
}

#define MARKER "/tmp/bench-marker"

struct counts {
	long entries, exits, lost, lines;
};

static void count_line(const char *line, size_t len, struct counts *c)
{
	const char *k = line, *end = line + len;
	char num[24];

	c->lines++;
	// memchr, not memmem: glibc's memmem costs a few hundred instructions
	// a call. The first "KPROBE ENTRY" or "KPROBE EXIT" in the line counts.
	while ((k = memchr(k, 'K', end - k))) {
		size_t rest = end - k;

		if (rest >= 12 && !memcmp(k, "KPROBE ENTRY", 12)) {
			c->entries++;
			return;
		}
		if (rest >= 11 && !memcmp(k, "KPROBE EXIT", 11)) {
			c->exits++;
			return;
		}
		k++;
	}
	if (len > 5 && !memcmp(line, "Lost ", 5)) {
		size_t n = len - 5 < sizeof(num) - 1 ? len - 5 : sizeof(num) - 1;

		memcpy(num, line + 5, n);
		num[n] = 0;
		c->lost += atol(num);
	}
}

// Count the event lines of fd until EOF, and what the tracer said it lost.
// Lines are found with memchr and matched where they lie: under
// instruction counting this reader's work counts in the unlink loop's
// time, so it should cost a printing tracer as little as it can.
static void count_lines(int fd, struct counts *c)
{
	static char buf[(1 << 16) + 4096];
	size_t kept = 0;
	ssize_t got;

	while ((got = read(fd, buf + kept, sizeof(buf) - kept)) > 0) {
		char *p = buf, *end = buf + kept + got, *nl;

		while ((nl = memchr(p, '\n', end - p))) {
			count_line(p, nl - p, c);
			p = nl + 1;
		}
		kept = end - p;
		// A line longer than the buffer is cut: it cannot be an event line.
		if (kept == sizeof(buf))
			kept = 0;
		memmove(buf, p, kept);
	}
}

static int trace(long n, const char *path, const char *needle, char **cmd)
{
	int fds[2];
	char buf[8192];
	size_t used = 0;

	if (pipe(fds))
		return perror("benchctl: pipe"), 1;
	long long start = now_ns();
	pid_t tracer = fork();
	if (tracer == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp(cmd[0], cmd);
		perror("benchctl: exec");
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };

		unlink(MARKER);
		close(open(MARKER, O_RDONLY));
		if (poll(&pfd, 1, 2) > 0) {
			ssize_t got = read(fds[0], buf + used, sizeof(buf) - 1 - used);
			if (got <= 0) {
				fprintf(stderr, "benchctl: %s exited before an event was seen\n", cmd[0]);
				return 1;
			}
			used += got;
			buf[used] = 0;
			if (strstr(buf, needle))
				break;
			char *nl = strrchr(buf, '\n');
			if (nl) {
				used = strlen(nl + 1);
				memmove(buf, nl + 1, used + 1);
			} else if (used > sizeof(buf) / 2) {
				used = 0;
			}
		}
		if (now_ns() - start > 300000000000LL) {
			fprintf(stderr, "benchctl: no event from %s within 300 s\n", cmd[0]);
			kill(tracer, SIGKILL);
			return 1;
		}
	}
	printf("attach_ms %.1f\n", (double)(now_ns() - start) / 1e6);
	long long quiet_until = now_ns() + 500000000LL;
	while (now_ns() < quiet_until) {
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };

		if (poll(&pfd, 1, 50) > 0 && read(fds[0], buf, sizeof(buf)) <= 0)
			break;
	}
	pid_t drain = fork();
	if (drain == 0) {
		struct counts c = { 0 };

		count_lines(fds[0], &c);
		printf("entries %ld\nexits %ld\nlost_stdout %ld\nlines %ld\n", c.entries, c.exits, c.lost, c.lines);
		_exit(0);
	}
	close(fds[0]);
	double cpu_before = cpu_ms(tracer);
	printf("ns_per_unlink %.1f\n", work_loop(n, path));
	sleep(2);
	double cpu_after = cpu_ms(tracer);
	if (cpu_before >= 0 && cpu_after >= 0)
		printf("storm_cpu_ms %.0f\n", cpu_after - cpu_before);
	kill(tracer, SIGINT);
	int status;
	struct rusage ru;
	wait4(tracer, &status, 0, &ru);
	waitpid(drain, NULL, 0);
	printf("peak_rss_kb %ld\n", ru.ru_maxrss);
	printf("tracer_exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "loop")) {
		printf("ns_per_unlink %.1f\n", work_loop(atol(argv[2]), argv[3]));
		return 0;
	}
	if (argc > 6 && !strcmp(argv[1], "trace") && !strcmp(argv[5], "--"))
		return trace(atol(argv[2]), argv[3], argv[4], argv + 6);
	fprintf(stderr, "usage: benchctl loop N WORK | benchctl trace N WORK NEEDLE -- CMD...\n");
	return 2;
}
