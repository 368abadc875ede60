# nobtf trace's program-level syntax on real kernels, one boot per kernel:
# a struct the script defines (used on kernels without BTF, BTF's where
# there is BTF, as the #ifndef BPFTRACE_HAVE_BTF says), positional
# parameters, config settings (max_strlen, a missing listed kprobe, a
# setting without effect, print_maps_on_exit), macros and enum constants,
# interval:100ms and let.
# shellcheck shell=bash

trace_program_script() {
    vm_trace_case_runner
    cat <<'EOF'
touch /tmp/a1 /tmp/a2 /tmp/a3 /tmp/a4
cat >/tmp/struct.bt <<'BT'
#!/usr/bin/env bpftrace
#ifndef BPFTRACE_HAVE_BTF
#include <linux/fs.h>
// include/linux/fs.h, as of 5.10 and 6.1
struct filename {
	const char		*name;	/* pointer to actual string */
	const char	*uptr;	/* original userland pointer */
	int			refcnt;
};
#endif
kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }
BT
t struct_def /tmp/struct.bt -c 'rm /tmp/a1'
t params -e 'kprobe:do_unlinkat /comm == str($1)/ { printf("%s %d %d\n", str($1), $2 + 1, $#); exit(); }' rm 41 -c 'rm /tmp/a2'
cat >/tmp/config.bt <<'BT'
config = { max_strlen = 5; missing_probes = "warn"; stack_mode = perf }
struct filename { const char *name; };
kprobe:do_unlinkat,
kprobe:no_such_function_here
/comm == "rm"/
{
	printf("%s\n", str(((struct filename *)arg1)->name));
}
BT
t config /tmp/config.bt -c 'rm /tmp/a3'
t no_maps -e 'config = { print_maps_on_exit = 0 } kprobe:do_unlinkat { @c = count(); }' -c 'rm /tmp/a4'
cat >/tmp/consts.bt <<'BT'
#define MYVAL (40 + 2)
enum e { ZERO, TWO = 2 };
kprobe:do_unlinkat { printf("%d %d %d %d %d\n", MYVAL, ZERO, TWO, AF_INET6, TCP_CLOSE); exit(); }
BT
t consts /tmp/consts.bt -c 'touch /tmp/a6; rm /tmp/a6'
t btf_enum -e 'kprobe:do_unlinkat { printf("%d\n", SKB_DROP_REASON_NOT_SPECIFIED); exit(); }' -c 'touch /tmp/a5; rm /tmp/a5'
t interval -e 'interval:100ms { let $x; $x = 1; @ticks = count(); } interval:550ms { exit(); }'
EOF
}

vmtest_trace_program_level() {
    kernel_has_bpf || return 0
    trace_program_script >"$TEST_TMP/program.sh"
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/program.sh:/tmp/program.sh" -- sh /tmp/program.sh 2>&1) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/program.out"
    local b bad=0
    block() { vm_trace_case "$out" "$@"; }
    # 4.14's do_unlinkat takes the user's path, not a struct filename: the
    # struct cases run there, but their values mean nothing.
    local filename=1
    [ "$KERNEL" = linux-4.14 ] && filename=0
    b=$(block struct_def) || bad=$((bad + 1))
    if [ $filename = 1 ]; then
        assert_eq "$(printf '%s\n' "$b" | head -2)" $'Attaching 1 probe...\n/tmp/a1 1' || bad=$((bad + 1))
    else
        assert_match "$b" '^Attaching 1 probe\.\.\.$' || bad=$((bad + 1))
    fi
    b=$(block params) || bad=$((bad + 1))
    assert_contains "$b" "rm 42 2" || bad=$((bad + 1))
    b=$(block config) || bad=$((bad + 1))
    # "/tmp/a3" cut to max_strlen 5 (its NUL included), marked `..` as
    # bpftrace 0.23 marks a string that fills max_strlen.
    { [ $filename = 0 ] || assert_match "$b" '^/tmp\.\.$'; } \
        && assert_contains "$b" "stderr: warning: config stack_mode = perf has no effect in nobtf trace" \
        && assert_contains "$b" "stderr: warning: could not attach probe kprobe:no_such_function_here" || bad=$((bad + 1))
    b=$(block no_maps) || bad=$((bad + 1))
    assert_eq "$(printf '%s\n' "$b" | grep -c '@c')" 0 || bad=$((bad + 1))
    b=$(block consts) || bad=$((bad + 1))
    assert_contains "$b" "42 0 2 10 7" || bad=$((bad + 1))
    # skb_drop_reason is 5.17's: an enumerator BTF gives on 6.1 and 6.12
    # only (1 on 6.1, as bpftrace 0.23 prints it; 2 on 6.12, where
    # SKB_CONSUMED comes before it).
    case $KERNEL in
        debian-6.1 | debian-6.1-arm64)
            b=$(block btf_enum) || bad=$((bad + 1))
            assert_match "$b" '^1$' || bad=$((bad + 1)) ;;
        debian-6.12)
            b=$(block btf_enum) || bad=$((bad + 1))
            assert_match "$b" '^2$' || bad=$((bad + 1)) ;;
        *)
            b=$(block btf_enum 1) || bad=$((bad + 1))
            assert_contains "$b" 'unknown identifier `SKB_DROP_REASON_NOT_SPECIFIED`' || bad=$((bad + 1)) ;;
    esac
    b=$(block interval) || bad=$((bad + 1))
    assert_match "$b" '^@ticks: [3-6]$' || bad=$((bad + 1))
    echo "trace program-level cases on $KERNEL: $bad failed" >&2
    assert_eq "$bad" 0
}

# The same programs under bpftrace 0.23 and nobtf on debian-6.1 (the bench's
# Debian 13 root filesystem has bpftrace): both run or both refuse, and
# where both run their stdout is the same.
trace_program_pairs_script() {
    cat <<'EOF'
p() {
    name=$1
    shift
    for tool in bpftrace "nobtf trace"; do
        touch /tmp/q1
        $tool "$@" >/tmp/out 2>/tmp/err
        echo "== $name $tool rc=$?"
        grep -v '^$' /tmp/out
    done
}
cat >/tmp/tcp.bt <<'BT'
#ifndef BPFTRACE_HAVE_BTF
#include <net/tcp_states.h>
#else
#define AF_INET6 10 /* IPv6 */
#endif
BEGIN { printf("%d %d %d\n", AF_INET6, TCP_CLOSE, SKB_DROP_REASON_NOT_SPECIFIED); exit(); }
BT
p consts /tmp/tcp.bt
p params -e 'BEGIN { printf("%d %s %d|%s|\n", $1, str($2), $#, str($3)); exit(); }' 7 eth0
p param_not_a_number -e 'BEGIN { printf("%d\n", $1); exit(); }' abc
p ignore -e 'config = { missing_probes = "ignore" } kprobe:do_unlinkat, kprobe:no_such_fn /comm == "rm"/ { printf("hit\n"); exit(); }' -c '/usr/bin/rm /tmp/q1'
p warn -e 'kprobe:do_unlinkat, kprobe:no_such_fn /comm == "rm"/ { printf("hit\n"); exit(); }' -c '/usr/bin/rm /tmp/q1'
p single_missing -e 'config = { missing_probes = "ignore" } kprobe:no_such_fn { exit(); }'
p unknown_key -e 'config = { nope = 1 } BEGIN { exit(); }'
p warned_key -e 'config = { stack_mode = perf } BEGIN { printf("x\n"); exit(); }'
EOF
}

vmtest_trace_program_matches_bpftrace() {
    [ "$KERNEL" = debian-6.1 ] || { skip "bpftrace runs on debian-6.1"; return; }
    (ensure_bench_rootfs) || { fail "the bench root filesystem (bpftrace's) could not be built"; return 1; }
    trace_program_pairs_script >"$TEST_TMP/pairs.sh"
    local out name ours theirs bad=0 cases=0
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 600 --file "$TEST_TMP/pairs.sh:/tmp/pairs.sh" \
        -- sh /tmp/pairs.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/pairs.out"
    for name in $(printf '%s\n' "$out" | sed -n 's/^== \([a-z_]*\) bpftrace rc=.*/\1/p'); do
        cases=$((cases + 1))
        theirs=$(printf '%s\n' "$out" | grep "^== $name bpftrace rc=")
        ours=$(printf '%s\n' "$out" | grep "^== $name nobtf trace rc=")
        # A refusal's words and status differ (bpftrace exits 255 when an
        # attach fails, after saying "Attaching"): both must refuse.
        if [ "$([ "${theirs##*rc=}" = 0 ]; echo $?)" != "$([ "${ours##*rc=}" = 0 ]; echo $?)" ] \
            || { [ "${theirs##*rc=}" = 0 ] && [ "$(output_block "$out" "$theirs")" != "$(output_block "$out" "$ours")" ]; }; then
            printf 'DIFFERENT %s:\n--- bpftrace\n%s\n--- nobtf\n%s\n' "$name" \
                "$(output_block "$out" "$theirs")" "$(output_block "$out" "$ours")" >&2
            bad=$((bad + 1))
        fi
    done
    echo "trace program-level pairs: $cases programs, $bad different" >&2
    assert_eq "$cases" 8 && assert_eq "$bad" 0
}
