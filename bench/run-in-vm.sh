#!/bin/sh
# Runs inside the benchmark VM (scripts/bench): one round, each tool in the same boot.
# Prints "RESULT tool metric value" lines; everything else is commentary.
set -u
N=${1:-200000}
# The round number rotates the tools' order: whoever goes first in a boot
# pays the kernel's first-use costs (kprobe, JIT, text patching).
ROUND=${2:-1}
# The tools to run, by name (default: all of them, in this order).
ALL_TOOLS="nobtf libbpf bpftrace ply limit nobtf-trace bpftrace-field nobtf-perf nobtf-opensnoop bpftrace-opensnoop nobtf-vfsread-hist bpftrace-vfsread-hist nobtf-vfs-count bpftrace-vfs-count"
TOOLS=${3:-$ALL_TOOLS}
STORM=/tmp/nobtf-bench-storm
# The real tools' workloads: opens of a file, reads of a file.
OPEN_STORM=open:/etc/hostname
READ_FILE=/tmp/nobtf-bench-read
READ_STORM=read:$READ_FILE
head -c 4096 /dev/zero >"$READ_FILE"
export PATH=/usr/local/bin:$PATH

result() { echo "RESULT $1 $2 $3"; }

echo "kernel $(uname -r)"
echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "cpus $(grep -c ^processor /proc/cpuinfo)"

# Sizes on the target: the binary plus every shared library it loads.
size_of() {
    total=$(stat -L -c %s "$1")
    # Static files have no libraries; trixie's loader segfaults on --list of one.
    /lib64/ld-linux-x86-64.so.2 --verify "$1" >/dev/null 2>&1 || { echo "$total"; return; }
    for lib in $(/lib64/ld-linux-x86-64.so.2 --list "$1" 2>/dev/null | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
        [ -f "$lib" ] && total=$((total + $(stat -L -c %s "$lib")))
    done
    echo "$total"
}

BPFTRACE_PROG='kprobe:do_unlinkat { printf("%s-%d KPROBE ENTRY pid = %d, filename = %s\n", comm, pid, pid, str(*(uint64 *)arg1)); }
kretprobe:do_unlinkat { printf("%s-%d KPROBE EXIT: pid = %d, ret = %d\n", comm, pid, pid, retval); }'
# ply has no casts, so without kernel headers it cannot follow struct
# filename's name pointer: it prints comm and pid only (less work per event).
PLY_PROG='kprobe:do_unlinkat { printf("%v-%v KPROBE ENTRY pid = %v\n", comm, pid, pid); }
kretprobe:do_unlinkat { printf("%v-%v KPROBE EXIT: pid = %v, ret = %v\n", comm, pid, pid, retval); }'
# One field-reading one-liner, the same text for nobtf trace and bpftrace:
# struct fields found by name in the kernel's BTF, one entry event per
# unlink. refcnt is an atomic_t there, so both need .counter.
FIELD_PROG='kprobe:do_unlinkat { printf("KPROBE ENTRY %s %d\n", str(((struct filename *)arg1)->name), ((struct filename *)arg1)->refcnt.counter); }'
echo "field_prog $FIELD_PROG"
# The real tools, the same text for both tracers: opensnoop.bt from the
# corpus (scripts/bench delivers it), an aggregating one and a wide one.
# The aggregating programs print nothing until they end: a last probe
# prints the marker's unlink, so "start to first event" is the start to all
# probes attached (both tools attach in the program's order).
MARKER_PROBE='kprobe:do_unlinkat { printf("/tmp/bench-marker\n"); }'
HIST_PROG="kprobe:vfs_read { @start[tid] = nsecs; } kretprobe:vfs_read /@start[tid]/ { @us = hist((nsecs - @start[tid]) / 1000); delete(@start[tid]); } $MARKER_PROBE"
WIDE_PROG="kprobe:vfs_* { @[func] = count(); } $MARKER_PROBE"
OPENSNOOP=/bench/opensnoop.bt

# run_tool NAME NEEDLE CMD...: NEEDLE is what shows the tracer's first event.
run_tool() {
    name=$1 needle=$2; shift 2
    command -v "$1" >/dev/null || { echo "$name: not installed, skipped"; return; }
    result "$name" size_bytes "$(size_of "$(command -v "$1")")"
    # A no-probe baseline right before each tool: the guest drifts over a
    # boot by more than the limit's whole cost.
    work=$WORK
    result "$name" base_ns_per_unlink "$(benchctl loop "$N" "$work" | awk '{ print $2 }')"
    benchctl trace "$N" "$work" "$needle" -- "$@" >/tmp/$name.out 2>/tmp/$name.err
    cat /tmp/$name.out
    sed "s/^/$name stderr: /" /tmp/$name.err | tail -n 5
    for metric in attach_ms ns_per_unlink storm_cpu_ms peak_rss_kb entries exits lost_stdout lines tracer_exit; do
        # The limit has no events: its line is the attach, not a first event.
        [ "$name/$metric" = limit/attach_ms ] && continue
        value=$(awk -v m=$metric '$1 == m { print $2 }' /tmp/$name.out)
        [ -n "$value" ] && result "$name" "$metric" "$value"
    done
    lost=$(grep -Eio '([0-9]+) (events )?lost|lost ([0-9]+)' /tmp/$name.err | grep -Eo '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
    result "$name" lost_reported "$lost"
}

# Warm up, then the baseline with no probe: before and after the tools, to
# see drift. Under -icount the guest is slow for the first seconds after
# boot (the first one or two 100,000-unlink loops took 13.2k to 17.1k ns
# per unlink against 8.7k after; the first tool's baseline then made its
# added cost wrong): loops of 20,000 until three in a row agree within 2%.
warm() {
    a=0 b=0 loops=0
    while [ $loops -lt 40 ]; do
        c=$(benchctl loop 20000 "$STORM" | awk '{ print $2 }')
        loops=$((loops + 1))
        awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
            lo = a; hi = a
            if (b < lo) lo = b; if (c < lo) lo = c
            if (b > hi) hi = b; if (c > hi) hi = c
            exit !(lo > 0 && (hi - lo) / lo < 0.02) }' && break
        a=$b b=$c
    done
    result warmup loops "$loops"
}
warm
result none ns_per_unlink "$(benchctl loop "$N" "$STORM" | awk '{ print $2 }')"
run_named() {
    WORK=$STORM
    case $1 in
        nobtf) run_tool nobtf /tmp/bench-marker nobtf run unlink ;;
        libbpf) run_tool libbpf /tmp/bench-marker libbpf-unlink ;;
        bpftrace) run_tool bpftrace /tmp/bench-marker bpftrace -e "$BPFTRACE_PROG" ;;
        ply) run_tool ply "KPROBE ENTRY" ply "$PLY_PROG" ;;
        # The limit: empty programs on the same probes, attached as libbpf does.
        limit) run_tool limit "libbpf-limit: attached" libbpf-limit ;;
        nobtf-trace) run_tool nobtf-trace /tmp/bench-marker nobtf trace -e "$FIELD_PROG" ;;
        bpftrace-field) run_tool bpftrace-field /tmp/bench-marker bpftrace -e "$FIELD_PROG" ;;
        # nobtf with the perf buffer where the ring buffer is the default.
        nobtf-perf) run_tool nobtf-perf /tmp/bench-marker nobtf run unlink --perf-buffer ;;
        nobtf-opensnoop) WORK=$OPEN_STORM; run_tool "$1" /tmp/bench-marker nobtf trace "$OPENSNOOP" ;;
        bpftrace-opensnoop) WORK=$OPEN_STORM; run_tool "$1" /tmp/bench-marker bpftrace "$OPENSNOOP" ;;
        nobtf-vfsread-hist) WORK=$READ_STORM; run_tool "$1" /tmp/bench-marker nobtf trace -e "$HIST_PROG" ;;
        bpftrace-vfsread-hist) WORK=$READ_STORM; run_tool "$1" /tmp/bench-marker bpftrace -e "$HIST_PROG" ;;
        nobtf-vfs-count) WORK=$READ_STORM; run_tool "$1" /tmp/bench-marker nobtf trace -e "$WIDE_PROG" ;;
        bpftrace-vfs-count) WORK=$READ_STORM; run_tool "$1" /tmp/bench-marker bpftrace -e "$WIDE_PROG" ;;
        *) echo "unknown tool $1" >&2 ;;
    esac
}
# Rotate: round R starts with the R-th tool.
ntools=$(echo $TOOLS | wc -w)
skip=$(((ROUND - 1) % ntools))
first="" rest="" i=0
for tool in $TOOLS; do
    if [ $i -lt $skip ]; then rest="$rest $tool"; else first="$first $tool"; fi
    i=$((i + 1))
done
for tool in $first $rest; do run_named "$tool"; done
result none_after ns_per_unlink "$(benchctl loop "$N" "$STORM" | awk '{ print $2 }')"
