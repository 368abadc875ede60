#!/bin/sh
# Runs inside the benchmark VM: what each BPF program costs per run, from
# the kernel's own count (kernel.bpf_stats_enabled: run_time_ns and
# run_cnt in the program fd's fdinfo) while benchctl's loop unlinks N
# missing files. Under `-icount` they follow guest instructions (about 4 ns
# of guest time each, measured: docs/benchmarks.md).
# The stats' own timing is in every figure: the `empty` row shows it.
#
#   scripts/vm --kernel debian-6.12 --timeout 900 --rootfs "$BENCH_ROOTFS" \
#       --file "$bin/benchctl:/usr/local/bin/benchctl" \
#       --file target/x86_64-unknown-linux-musl/release/nobtf:/usr/local/bin/nobtf \
#       --file bench/prog-stats.sh:/bench/prog-stats.sh -- /bench/prog-stats.sh [N]
# (with the `-icount shift=1,sleep=on` QEMU wrapper scripts/bench --icount makes).
set -u
export PATH=/usr/local/bin:$PATH
N=${1:-20000}
WORK=/tmp/nobtf-prog-stats
sysctl -w kernel.bpf_stats_enabled=1 >/dev/null
benchctl loop 2000 "$WORK" >/dev/null

# row NAME CMD...: CMD attached in the background, N unlinks, then the
# ns per run of each of its programs.
row() {
    name=$1
    shift
    "$@" >/dev/null 2>/tmp/prog-stats.err &
    sleep 4
    pid=$(pidof nobtf | cut -d' ' -f1)
    [ -n "$pid" ] || { echo "$name: did not start: $(tail -n 1 /tmp/prog-stats.err)"; return; }
    benchctl loop "$N" "$WORK" >/dev/null
    for fd in /proc/"$pid"/fdinfo/*; do
        grep -q '^run_cnt' "$fd" 2>/dev/null || continue
        awk -v name="$name" '$1 == "run_time_ns:" { t = $2 } $1 == "run_cnt:" { c = $2 }
            END { if (c) printf "PROG %s %d ns per run over %d runs\n", name, t / c, c }' "$fd"
    done
    kill -INT "$pid"
    wait
}

F='((struct filename *)arg1)'
row empty nobtf trace -e 'kprobe:do_unlinkat { $a = 1; }'
row nsecs nobtf trace -e 'kprobe:do_unlinkat { $a = nsecs; }'
row pid nobtf trace -e 'kprobe:do_unlinkat { $a = pid; }'
row comm nobtf trace -e 'kprobe:do_unlinkat { $a = comm; }'
row curtask-comm nobtf trace -e 'kprobe:do_unlinkat { $a = curtask->comm; }'
row read-8-bytes nobtf trace -e "kprobe:do_unlinkat { \$a = $F->name; }"
row read-path nobtf trace -e "kprobe:do_unlinkat { \$a = str($F->name); }"
row printf nobtf trace -e 'kprobe:do_unlinkat { printf("x\n"); }'
# The unlink probes: entry, then exit.
row unlink nobtf run unlink
# A keyless aggregation (a per-CPU array) against the same with a key
# (a per-CPU hash of the same key size).
row count-array nobtf trace -e 'kprobe:do_unlinkat { @c = count(); }'
row count-hash nobtf trace -e 'kprobe:do_unlinkat { @c[0] = count(); }'
row hist-array nobtf trace -e 'kprobe:do_unlinkat { @h = hist(5); }'
row hist-hash nobtf trace -e 'kprobe:do_unlinkat { @h[0] = hist(5); }'
