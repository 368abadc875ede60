#!/bin/sh
# Runs inside the benchmark VM (scripts/bench): one round, each tool in the same boot.
# Prints "RESULT tool metric value" lines; everything else is commentary.
set -u
N=${1:-200000}
# The round number rotates the tools' order: whoever goes first in a boot
# pays the kernel's first-use costs (kprobe, JIT, text patching).
ROUND=${2:-1}
STORM=/tmp/nobtf-bench-storm
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

# run_tool NAME NEEDLE CMD...: NEEDLE is what shows the tracer's first event.
run_tool() {
    name=$1 needle=$2; shift 2
    command -v "$1" >/dev/null || { echo "$name: not installed, skipped"; return; }
    result "$name" size_bytes "$(size_of "$(command -v "$1")")"
    # A no-probe baseline right before each tool: the guest drifts over a
    # boot by more than the limit's whole cost.
    result "$name" base_ns_per_unlink "$(benchctl loop "$N" "$STORM" | awk '{ print $2 }')"
    benchctl trace "$N" "$STORM" "$needle" -- "$@" >/tmp/$name.out 2>/tmp/$name.err
    cat /tmp/$name.out
    sed "s/^/$name stderr: /" /tmp/$name.err | tail -n 5
    for metric in attach_ms ns_per_unlink storm_cpu_ms peak_rss_kb entries exits lost_stdout tracer_exit; do
        # The limit has no events: its line is the attach, not a first event.
        [ "$name/$metric" = limit/attach_ms ] && continue
        value=$(awk -v m=$metric '$1 == m { print $2 }' /tmp/$name.out)
        [ -n "$value" ] && result "$name" "$metric" "$value"
    done
    lost=$(grep -Eio '([0-9]+) (events )?lost|lost ([0-9]+)' /tmp/$name.err | grep -Eo '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
    result "$name" lost_reported "$lost"
}

# Warm up, then the baseline with no probe: before and after the tools, to see drift.
benchctl loop 2000 "$STORM" >/dev/null
result none ns_per_unlink "$(benchctl loop "$N" "$STORM" | awk '{ print $2 }')"
run_nth() {
    case $1 in
        0) run_tool nobtf /tmp/bench-marker nobtf run unlink ;;
        1) run_tool libbpf /tmp/bench-marker libbpf-unlink ;;
        2) run_tool bpftrace /tmp/bench-marker bpftrace -e "$BPFTRACE_PROG" ;;
        3) run_tool ply "KPROBE ENTRY" ply "$PLY_PROG" ;;
        # The limit: empty programs on the same probes, attached as libbpf does.
        4) run_tool limit "libbpf-limit: attached" libbpf-limit ;;
        5) run_tool nobtf-trace /tmp/bench-marker nobtf trace -e "$FIELD_PROG" ;;
        6) run_tool bpftrace-field /tmp/bench-marker bpftrace -e "$FIELD_PROG" ;;
    esac
}
for i in 0 1 2 3 4 5 6; do run_nth $(((i + ROUND - 1) % 7)); done
result none_after ns_per_unlink "$(benchctl loop "$N" "$STORM" | awk '{ print $2 }')"
