# Never a silent wrong answer: the canary refuses wrong profiles, signals and
# SIGKILL leave no kprobe behind, lost events are counted exactly, and bad
# situations (no privilege, unprobeable function, verifier rejection) give
# one clear error line.
# shellcheck shell=bash

# A profile in the docs/offsets.md format with the given name and refcnt
# offsets; RELEASE is replaced by `uname -r` in the VM when asked to.
reliability_profile() {
    local release=$1 name=$2 refcnt=$3
    cat <<EOF
format = 1

[kernel]
release = "$release"
arch = "$(kernel_profile_arch)"

[source]
method = "builtin"
detail = "written by tests/vm/reliability.sh"
generator = "test"

[fields."filename.name"]
offset = $name
size = $(kernel_pointer_size)

[fields."filename.refcnt"]
offset = $refcnt
size = 4

[functions.do_unlinkat]
symbol = true
name_arg = 2
name_arg_type = "struct filename *"
decided_by = "builtin"

[pt_regs]
"do_unlinkat.name" = "$(kernel_name_register)"
"do_unlinkat.ret" = "$(kernel_return_register)"
EOF
}

# VM-side helper: wait (up to 20 s) until file $1 has a line matching $2.
# shellcheck disable=SC2016
RELIABILITY_WAIT_FOR='wait_for() { i=0; while ! grep -q "$2" "$1" 2>/dev/null; do i=$((i + 1)); [ $i -gt 200 ] && return 1; sleep 0.1; done; }'

# The kernel's own profile (tests/profiles/) with another release.
reliability_kernel_profile() {
    sed "s/^release = .*/release = \"$1\"/" "$(kernel_profile)"
}

vmtest_reliability_canary_refuses_wrong_profiles() {
    # refcnt where it is, 8 bytes on, and name read from refcnt's place.
    local rc rc_bad
    rc=$(kernel_refcnt_offset) rc_bad=$(($(kernel_refcnt_offset) + 8))
    if kernel_passes_user_path; then
        # 4.14: the path is do_unlinkat's user pointer; the 4.19+ layout
        # (struct filename *) reads nothing there and must be refused.
        reliability_kernel_profile RELEASE >"$TEST_TMP/good.toml"
        reliability_profile RELEASE 0 16 >"$TEST_TMP/refcnt.toml"
        reliability_kernel_profile 4.19.0-other >"$TEST_TMP/other.toml"
    else
        reliability_profile RELEASE 0 "$rc" >"$TEST_TMP/good.toml"
        reliability_profile RELEASE 0 "$rc_bad" >"$TEST_TMP/refcnt.toml"
        reliability_profile 4.19.0-other 0 "$rc" >"$TEST_TMP/other.toml"
    fi
    reliability_profile RELEASE "$rc" "$rc" >"$TEST_TMP/name.toml"
    cat >"$TEST_TMP/canary.sh" <<EOF
T=$VM_TRACEFS
for p in good refcnt name other; do sed "s/RELEASE/\$(uname -r)/" /tmp/\$p.in >/tmp/\$p.toml; done
try() {
    label=\$1; shift
    touch /tmp/a.txt
    nobtf run unlink --count 2 "\$@" -c 'rm /tmp/a.txt' >/tmp/out 2>/tmp/err
    echo "== \$label rc=\$?"
    cat /tmp/out
    sed 's/^/stderr: /' /tmp/err
}
try good --offsets /tmp/good.toml
try refcnt --offsets /tmp/refcnt.toml
try name --offsets /tmp/name.toml
try other --offsets /tmp/other.toml
try name-pipe --offsets /tmp/name.toml --trace-pipe
try refcnt-noverify --offsets /tmp/refcnt.toml --no-verify
echo "== left \$(grep -c nobtf \$T/kprobe_events)"
EOF
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/canary.sh:/tmp/canary.sh" \
        --file "$TEST_TMP/good.toml:/tmp/good.in" --file "$TEST_TMP/refcnt.toml:/tmp/refcnt.in" \
        --file "$TEST_TMP/name.toml:/tmp/name.in" --file "$TEST_TMP/other.toml:/tmp/other.in" \
        -- sh /tmp/canary.sh) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    block() { printf '%s\n' "$out" | awk -v h="== $1 " 'index($0, h) == 1 { on = 1; print; next } /^== / { on = 0 } on'; }
    local b
    local read_back=', refcnt 1 and a return of 0' refused="filename.refcnt \\(offset $rc_bad\\) read -?[0-9]+, expected 1"
    if kernel_passes_user_path; then
        read_back=' and a return of 0'
        refused='filename.name \(offset 0\) read ".*", expected "/tmp/\.nobtf-canary-[0-9]+-[0-9a-f]+"'
    fi
    b=$(block good)
    assert_contains "$b" "rc=0" && assert_match "$b" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
        && assert_match "$b" "^stderr: nobtf: canary passed: read back /tmp/\\.nobtf-canary-[0-9]+-[0-9a-f]+$read_back\$" \
        && assert_not_contains "$b" "warning" || return 1
    # The canary's own events are never shown.
    assert_not_contains "$(printf '%s\n' "$b" | grep KPROBE)" ".nobtf-canary" || return 1
    b=$(block refcnt)
    assert_contains "$b" "rc=1" \
        && assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/refcnt.toml\\) does not fit this kernel: $refused; generate one for this kernel with \`offsets gen\` \\(see docs/offsets.md\\)" \
        && assert_not_contains "$b" "KPROBE" || return 1
    b=$(block name)
    assert_contains "$b" "rc=1" \
        && assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/name.toml\\) does not fit this kernel: filename.name \\(offset $rc\\) read \".*\", expected \"/tmp/\\.nobtf-canary-[0-9]+-[0-9a-f]+\"; " \
        && assert_not_contains "$b" "KPROBE" || return 1
    # A profile of another release is refused before anything loads (the
    # profile's identity, issue 26), in one line naming both releases.
    b=$(block other)
    assert_contains "$b" "rc=1" \
        && assert_match "$b" '^stderr: error: .*offsets profile /tmp/other\.toml is for kernel 4\.19\.0-other on [a-z0-9_]+, but this kernel is ' \
        && assert_not_contains "$b" "KPROBE" || return 1
    b=$(block name-pipe)
    local pipe_refusal="^stderr: error: .*filename.name \\(offset $rc\\) read \".*\", expected \"/tmp/\\.nobtf-canary-"
    kernel_has_bpf || pipe_refusal='^stderr: error: no way to attach: --trace-pipe streams bpf_trace_printk, which needs the BPF back end$'
    assert_contains "$b" "rc=1" \
        && assert_match "$b" "$pipe_refusal" || return 1
    # Unverified, a wrong profile prints what it reads (on 4.14, where
    # this one reads no path at all, an empty one).
    local noverify='filename = /tmp/a.txt$'
    kernel_passes_user_path && noverify='KPROBE ENTRY pid = [0-9]+, filename = $'
    b=$(block refcnt-noverify)
    assert_contains "$b" "rc=0" && assert_match "$b" "$noverify" \
        && assert_not_contains "$b" "canary" || return 1
    assert_contains "$out" "== left 0"
}

vmtest_reliability_signals_detach_everything() {
    # nobtf load's signal handling is checked too: the object must build
    # (scripts/test installs clang).
    legacy_build || return
    local obj
    obj=$(legacy_object_for_kernel unlink)
    cat >"$TEST_TMP/signals.sh" <<EOF
T=$VM_TRACEFS
$RELIABILITY_WAIT_FOR
for sig in INT TERM HUP; do
    rm -f /tmp/err  # not to find the last run's line before this one starts
    nobtf run unlink --attach tracefs >/dev/null 2>/tmp/err & p=\$!
    wait_for /tmp/err 'canary passed' || echo "run never attached: \$(cat /tmp/err)"
    attached=\$(grep -c "nobtf_\${p}_" \$T/kprobe_events)
    kill -\$sig \$p; wait \$p; rc=\$?
    echo "== run sig=\$sig rc=\$rc attached=\$attached left=\$(grep -c nobtf \$T/kprobe_events)"
done
# A signal during set-up waits until the loop and is honoured there.
# Once nobtf holds the signals (SigBlk), set-up is still going on (~0.5 s).
nobtf run unlink --attach tracefs >/dev/null 2>/tmp/err & p=\$!
i=0; while ! grep -q '^SigBlk:.*[1-9a-f]' /proc/\$p/status 2>/dev/null && [ \$i -lt 400 ]; do i=\$((i + 1)); sleep 0.01; done
kill -TERM \$p; wait \$p; rc=\$?
echo "== early rc=\$rc left=\$(grep -c nobtf \$T/kprobe_events)"
for sig in INT TERM HUP; do
    rm -f /tmp/err
    nobtf load /tmp/unlink.o --attach tracefs >/dev/null 2>/tmp/err & p=\$!
    wait_for /tmp/err 'attached' || echo "load never attached: \$(cat /tmp/err)"
    attached=\$(grep -c "nobtf_\${p}_" \$T/kprobe_events)
    kill -\$sig \$p; wait \$p; rc=\$?
    echo "== load sig=\$sig rc=\$rc attached=\$attached left=\$(grep -c nobtf \$T/kprobe_events)"
done
EOF
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/signals.sh:/tmp/signals.sh" --file "$obj:/tmp/unlink.o" -- sh /tmp/signals.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    local sig
    for sig in INT TERM HUP; do
        assert_contains "$out" "== run sig=$sig rc=0 attached=2 left=0" || return 1
    done
    assert_contains "$out" "== early rc=0 left=0" || return 1
    if ! kernel_has_bpf; then
        # nobtf load needs bpf(2): refused at once, nothing attached.
        assert_contains "$out" "load never attached: error: this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off)" || return 1
        for sig in INT TERM HUP; do
            assert_contains "$out" "== load sig=$sig rc=1 attached=0 left=0" || return 1
        done
        return
    fi
    for sig in INT TERM HUP; do
        assert_contains "$out" "== load sig=$sig rc=0 attached=2 left=0" || return 1
    done
}

vmtest_reliability_kill9_then_cleanup() {
    cat >"$TEST_TMP/kill9.sh" <<EOF
T=$VM_TRACEFS
$RELIABILITY_WAIT_FOR
echo 'p:foreign/x do_unlinkat' >>\$T/kprobe_events
before=\$(cat \$T/kprobe_events)
nobtf run unlink --attach tracefs >/dev/null 2>/tmp/a.err & a=\$!
wait_for /tmp/a.err 'canary passed' || echo "A never attached: \$(cat /tmp/a.err)"
nobtf run unlink --attach tracefs >/dev/null 2>/tmp/b.err & b=\$!
wait_for /tmp/b.err 'canary passed' || echo "B never attached: \$(cat /tmp/b.err)"
kill -9 \$a; wait \$a
echo "== killed A=\$a stale=\$(grep -c "nobtf_\${a}_" \$T/kprobe_events) live B=\$b events=\$(grep -c "nobtf_\${b}_" \$T/kprobe_events)"
nobtf cleanup 2>&1; echo "== cleanup rc=\$?"
now=\$(grep -v "nobtf_\${b}_" \$T/kprobe_events)
[ "\$now" = "\$before" ] && echo "== after cleanup: as before plus B" || { echo "== after cleanup: DIFFERENT"; cat \$T/kprobe_events; }
echo "== B still has \$(grep -c "nobtf_\${b}_" \$T/kprobe_events)"
kill -TERM \$b; wait \$b
[ "\$(cat \$T/kprobe_events)" = "\$before" ] && echo "== after B: as before"
nobtf run unlink --attach tracefs >/dev/null 2>/tmp/c.err & c=\$!
wait_for /tmp/c.err 'canary passed' || echo "C never attached: \$(cat /tmp/c.err)"
kill -9 \$c; wait \$c
echo "== killed C=\$c stale=\$(grep -c "nobtf_\${c}_" \$T/kprobe_events)"
touch /tmp/a.txt
nobtf run unlink --count 2 -c 'rm /tmp/a.txt' 2>&1; echo "== next run rc=\$?"
[ "\$(cat \$T/kprobe_events)" = "\$before" ] && echo "== at the end: as before" || { echo "== at the end: DIFFERENT"; cat \$T/kprobe_events; }
nobtf cleanup 2>&1
echo '-:foreign/x' >>\$T/kprobe_events
EOF
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/kill9.sh:/tmp/kill9.sh" -- sh /tmp/kill9.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    local a b c
    a=$(printf '%s\n' "$out" | sed -n 's/^== killed A=\([0-9]*\) .*/\1/p')
    b=$(printf '%s\n' "$out" | sed -n 's/.* live B=\([0-9]*\) .*/\1/p')
    c=$(printf '%s\n' "$out" | sed -n 's/^== killed C=\([0-9]*\) .*/\1/p')
    [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] || { printf '%s\n' "$out" >&2; fail "no pids"; return 1; }
    assert_contains "$out" "== killed A=$a stale=2 live B=$b events=2" \
        && assert_match "$out" "^nobtf: removed stale kprobe event nobtf/nobtf_${a}_p_do_unlinkat_[0-9]+ \\(process $a is gone\\)\$" \
        && assert_match "$out" "^nobtf: removed stale kprobe event nobtf/nobtf_${a}_r_do_unlinkat_[0-9]+ \\(process $a is gone\\)\$" \
        && assert_match "$out" "^nobtf: kept kprobe event nobtf/nobtf_${b}_p_do_unlinkat_[0-9]+ \\(process $b is running\\)\$" \
        && assert_contains "$out" "== cleanup rc=0" \
        && assert_contains "$out" "== after cleanup: as before plus B" \
        && assert_contains "$out" "== B still has 2" \
        && assert_contains "$out" "== after B: as before" \
        && assert_contains "$out" "== killed C=$c stale=2" \
        && assert_match "$out" "^nobtf: removed stale kprobe event nobtf/nobtf_${c}_p_do_unlinkat_[0-9]+ \\(process $c is gone\\)\$" \
        && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = 0$' \
        && assert_contains "$out" "== next run rc=0" \
        && assert_contains "$out" "== at the end: as before" \
        && assert_contains "$out" "nobtf: no stale kprobe events" \
        && assert_not_contains "$out" "foreign/x (process"
}

# rm removes N files in one process (one pid, no fork per unlink, so fast
# enough to overflow a small ring). Entry + exit per file: 2N events, and
# every one is either printed or counted lost. Nothing else in the VM
# unlinks; nobtf's own canary and loss-flush unlinks are never counted.
vmtest_reliability_storm_count_balances() {
    cat >"$TEST_TMP/storm.sh" <<'EOF'
N=3000
# storm PAGES NICE [PREFIX...]: rm runs at niceness NICE (busybox has renice,
# not nice).
storm() {
    pages=$1 nice=$2; shift 2
    mkdir -p /tmp/s; i=0
    while [ $i -lt $N ]; do : >/tmp/s/f$i; i=$((i + 1)); done
    "$@" nobtf run unlink --format json --buffer-pages "$pages" \
        -c "echo \$\$ >/tmp/storm.pid; renice -n $nice -p \$\$ >/dev/null || exit 9; exec rm /tmp/s/*" >/tmp/storm.out 2>/tmp/storm.err
    rc=$?
    pid=$(cat /tmp/storm.pid)
    entries=$(grep -c "\"filename\":\"/tmp/s/f[0-9]*\",\"kind\":\"entry\",\"pid\":$pid," /tmp/storm.out)
    exits=$(grep -c "\"kind\":\"exit\",\"pid\":$pid,\"refcnt\":null,\"ret\":0," /tmp/storm.out)
    echo "== pages=$pages rc=$rc n=$N lines=$(wc -l </tmp/storm.out) rm=$((entries + exits)) $(grep 'events delivered' /tmp/storm.err)"
}
storm 64 0
# nobtf and rm on one CPU, rm at the highest priority: rm fills a one-page
# ring before nobtf runs (without the priority, the ARM VMs' multi-threaded
# emulation once let nobtf keep up).
storm 1 -20 taskset -c 0
storm 2 0
# A ring far larger than one read's batch, filled while nobtf waits for
# the CPU: the last drain must read it all, not a pass's worth of batches.
storm 512 -20 taskset -c 0
EOF
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/storm.sh:/tmp/storm.sh" -- sh /tmp/storm.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >&2
    local line runs=0 any_lost=0 n lines rm delivered lost per_cpu sum
    while IFS= read -r line; do
        runs=$((runs + 1))
        assert_match "$line" ' rc=0 ' || return 1
        n=$(sed -n 's/.* n=\([0-9]*\) .*/\1/p' <<<"$line")
        lines=$(sed -n 's/.* lines=\([0-9]*\) .*/\1/p' <<<"$line")
        rm=$(sed -n 's/.* rm=\([0-9]*\) .*/\1/p' <<<"$line")
        delivered=$(sed -n 's/.*nobtf: \([0-9]*\) events delivered.*/\1/p' <<<"$line")
        lost=$(sed -n 's/.* events delivered, \([0-9]*\) lost.*/\1/p' <<<"$line")
        per_cpu=$(grep -o 'cpu[0-9]*=[0-9]*' <<<"$line" | cut -d= -f2 | paste -sd+ | bc)
        sum=$((delivered + lost))
        assert_eq "$lines" "$delivered" && assert_eq "$rm" "$lines" \
            && assert_eq "$per_cpu" "$lost" && assert_eq "$sum" $((2 * n)) || return 1
        [ "$lost" -gt 0 ] && any_lost=1
    done < <(printf '%s\n' "$out" | grep '^== pages=')
    assert_eq "$runs" 4 || return 1
    [ $any_lost = 1 ] || fail "no run lost events: the loss accounting was not exercised"
}

vmtest_reliability_non_root_is_told_what_to_do() {
    local out
    out=$(vm -- sh -c 'mkdir -p /etc; echo "nobody:x:65534:65534:nobody:/:/bin/sh" >>/etc/passwd
        su -s /bin/sh nobody -c "nobtf run unlink --count 1" 2>&1; echo "== run rc=$?"
        su -s /bin/sh nobody -c "nobtf cleanup" 2>&1; echo "== cleanup rc=$?"') || return 1
    local refusal='^error: not allowed to load BPF programs \(bpf\(BPF_PROG_LOAD\): Operation not permitted.*\): run as root or with CAP_BPF\+CAP_PERFMON \(CAP_SYS_ADMIN before 5\.8\)$'
    kernel_has_bpf || refusal='^error: no way to attach: the tracefs back end writes kprobe_events and makes a tracing instance: run as root$'
    assert_match "$out" "$refusal" \
        && assert_contains "$out" "== run rc=1" \
        && assert_match "$out" '^error: nobtf cleanup must run as root' \
        && assert_contains "$out" "== cleanup rc=1" \
        && assert_eq "$(printf '%s\n' "$out" | grep -vc '^==')" 2
}

vmtest_reliability_unprobeable_function_lists_clones() {
    local out
    # shellcheck disable=SC2016
    out=$(vm -- sh -c 'nobtf check --function nobtf_no_such_function; echo "== missing rc=$?"
        fn=$(awk '\''$2 ~ /^[tT]$/ { have[$3] = 1; if ($3 ~ /\.(isra|constprop)\.[0-9]+$/) { b = $3; sub(/\.(isra|constprop)\.[0-9]+$/, "", b); clone[b] = 1 } } END { for (b in clone) if (!(b in have)) { print b; exit } }'\'' /proc/kallsyms)
        echo "== clone-only fn=$fn"
        nobtf check --function "$fn"; echo "== clone rc=$?"
        nobtf check --function do_unlinkat; echo "== ok rc=$?"' 2>&1) || return 1
    local fn
    fn=$(printf '%s\n' "$out" | sed -n 's/^== clone-only fn=//p')
    [ -n "$fn" ] || { printf '%s\n' "$out" >&2; fail "no function with only .isra/.constprop clones in kallsyms"; return 1; }
    assert_match "$out" '^error: nobtf_no_such_function cannot be probed: it is not in /proc/kallsyms \(misspelt, inlined, or not built\)' \
        && assert_contains "$out" "== missing rc=1" \
        && assert_match "$out" "^error: $fn cannot be probed: it is not in /proc/kallsyms, but the compiler's clones are: $fn\\.(isra|constprop)\\.[0-9]+" \
        && assert_contains "$out" "== clone rc=1" \
        && assert_contains "$out" "do_unlinkat: probeable" \
        && assert_contains "$out" "== ok rc=0"
}

vmtest_reliability_verifier_rejection_shows_log_and_program() {
    command -v clang >/dev/null || { fail "no clang (scripts/test installs it)"; return 1; }
    cat >"$TEST_TMP/bad.bpf.c" <<'EOF'
/* Reads 8 bytes far beyond struct pt_regs: the verifier must refuse it. */
#define SEC(name) __attribute__((section(name), used))
SEC("kprobe/do_unlinkat")
int bad_ctx_read(void *ctx)
{
	return *(volatile long *)((char *)ctx + 4096);
}
char _license[] SEC("license") = "GPL";
EOF
    clang -target bpf -O2 -g0 -c "$TEST_TMP/bad.bpf.c" -o "$TEST_TMP/bad.o" || { fail "clang failed"; return 1; }
    local out
    out=$(vm --file "$TEST_TMP/bad.o:/tmp/bad.o" -- sh -c "nobtf load /tmp/bad.o 2>&1; echo \"== rc=\$?\"
        T=$VM_TRACEFS; echo \"== left \$(grep -c nobtf \$T/kprobe_events)\"") || return 1
    if ! kernel_has_bpf; then
        assert_eq "$(printf '%s\n' "$out" | head -1)" "error: this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off): bpf(BPF_PROG_LOAD): Function not implemented (os error 38)" \
            && assert_contains "$out" "== rc=1" && assert_contains "$out" "== left 0"
        return
    fi
    assert_match "$(printf '%s\n' "$out" | head -1)" "^error: .*the kernel's verifier rejected program \`bad_ctx_read\`" \
        && assert_contains "$out" "--- verifier log ---" \
        && assert_match "$out" 'invalid bpf_context access' \
        && assert_contains "$out" "--- program ---" \
        && assert_contains "$out" "== rc=1" \
        && assert_contains "$out" "== left 0"
}
