# Sampling probes, stacks, symbols and the helper builtins of `nobtf
# trace`, all cases in one boot per kernel: profile:/software:/hardware:
# perf events with a BPF program on each CPU (4.9+), kstack/ustack through
# a stack map with symbols from /proc/kallsyms and the process's ELF files,
# ksym(), curtask/rand/numaid/cgroup, uprobes on a static program of the
# kernel's architecture (arm64's only uprobe test), each refused by name where the kernel
# cannot (cgroup before 4.18, hardware events without a PMU as under TCG,
# everything BPF on the kernel without bpf(2)).
# shellcheck shell=bash

# The VM-side script: each case prints `== NAME rc=STATUS`, its stdout,
# then its stderr prefixed with `stderr: `.
sampling_script() {
    vm_trace_case_runner
    cat <<'EOF'
# Something for the profile to sample in kernel code.
(while :; do cat /proc/self/maps >/dev/null; done) & BUSY=$!
t issue 'profile:hz:99 { @[kstack] = count(); }' --duration 2
t profile_cpu 'profile:hz:50 { @[cpu] = count(); }' --duration 1
t profile_ms 'profile:ms:10 { @ticks = count(); @p[probe] = count(); }' --duration 1
t software_faults 'software:faults:1 /comm == "dd"/ { @f = count(); }' -c 'exec dd if=/dev/zero of=/dev/null bs=1M count=4 2>/dev/null'
t software_cs 'software:cs:1 { @[probe] = count(); }' --duration 1
t hardware 'hardware:cycles:1000000 { @c = count(); }' --duration 1
t kstack_perf 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s", kstack(perf)); }' -c 'touch /tmp/k1; exec rm /tmp/k1'
t kstack_raw 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s", kstack(raw, 2)); }' -c 'touch /tmp/k2; exec rm /tmp/k2'
t kstack_depth 'kprobe:do_unlinkat /comm == "rm"/ { @[kstack(3)] = count(); }' -c 'touch /tmp/k3; exec rm /tmp/k3'
t ustack 'kprobe:hrtimer_nanosleep /comm == "sleeper"/ { printf("%s", ustack(perf)); }' -c 'exec /tmp/sleeper'
t ustack_bpftrace 'kprobe:hrtimer_nanosleep /comm == "sleeper"/ { printf("%s", ustack(1)); }' -c 'exec /tmp/sleeper'
t ksym 'tracepoint:timer:timer_start { printf("%s\n", ksym(args->function)); exit(); }'
t builtins 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %d %d\n", curtask != 0, rand == rand, numaid); }' -c 'touch /tmp/b1; exec rm /tmp/b1'
t cgroup 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d\n", cgroup > 0); }' -c 'touch /tmp/b2; exec rm /tmp/b2'
t kaddr 'interval:ms:100 { $avenrun = kaddr("avenrun"); printf("%d\n", *$avenrun >= 0); exit(); }'
t kaddr_missing 'interval:ms:100 { printf("%d\n", kaddr("no_such_symbol_here")); }'
t signal --unsafe 'kprobe:hrtimer_nanosleep /comm == "sleeper"/ { signal("KILL"); }' -c '/tmp/sleeper; echo "status $?"'
kill $BUSY
# Uprobes on the sleeper, a static program of this architecture (the bench
# root filesystem, with bpftrace's uprobe cases, is x86-64 only). Not on
# 32-bit ARM, whose uprobes take ARM code only (gcc emits Thumb there).
[ "$1" = arm ] && exit 0
t uprobe_main 'uprobe:/tmp/sleeper:main { printf("%s %s\n", probe, comm); }' -c /tmp/sleeper
t uretprobe_main 'uretprobe:/tmp/sleeper:main { printf("ret %d\n", retval); }' -c /tmp/sleeper
t uprobe_list -l 'uprobe:/tmp/sleeper:main'
# usym() of an address in the process the probe fired in (no -p).
t usym 'uprobe:/tmp/sleeper:main { printf("%s\n", usym(uaddr("main"))); }' -c /tmp/sleeper
# Into the function: arm64's instructions are all 4 bytes, so nobtf checks
# the boundary there; elsewhere only --unsafe attaches it.
t uprobe_offset 'uprobe:/tmp/sleeper:main+4 { printf("%s\n", probe); }' -c /tmp/sleeper
t uprobe_offset_mid 'uprobe:/tmp/sleeper:main+2 { printf("%s\n", probe); }' -c /tmp/sleeper
EOF
}

vmtest_sampling() {
    local out
    if ! kernel_has_bpf; then
        # The tracefs back end: a sampling probe runs a BPF program.
        out=$(vm -- sh -c 'nobtf trace "profile:hz:99 { @[kstack] = count(); }" --duration 2 2>&1; echo "rc=$?"') || return 1
        assert_match "$out" '^error: .*the probe `profile:hz:99` \(it runs a BPF program\)' \
            && assert_contains "$out" "rc=1" && assert_eq "$(grep -c . <<<"$out")" 2
        return
    fi
    sampling_script >"$TEST_TMP/sampling.sh"
    # A program whose symbols are in its file (the initramfs's busybox has
    # none): user frames are named from them.
    local cc
    case $(kernel_profile_arch) in
        aarch64) cc=aarch64-linux-gnu-gcc ;;
        arm) cc=arm-linux-gnueabihf-gcc ;;
        *) cc=gcc ;;
    esac
    printf '%s\n' '#include <time.h>' \
        'int main(void) { struct timespec t = { 1, 0 }; return nanosleep(&t, 0); }' >"$TEST_TMP/sleeper.c"
    "$cc" -static -O1 -o "$TEST_TMP/sleeper" "$TEST_TMP/sleeper.c" || { fail "$cc failed (scripts/test installs the cross compilers)"; return 1; }
    out=$(vm --timeout 600 --file "$TEST_TMP/sampling.sh:/tmp/sampling.sh" --file "$TEST_TMP/sleeper:/tmp/sleeper" \
        -- sh /tmp/sampling.sh "$(kernel_profile_arch)" 2>&1) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/sampling.out"
    local b bad=0
    block() { vm_trace_case "$out" "$@"; }
    # The issue's check: kernel stacks with symbols, as bpftrace prints them.
    b=$(block issue) || bad=$((bad + 1))
    assert_match "$b" '^Attaching 1 probe\.\.\.$' \
        && assert_match "$b" '^@\[$' \
        && assert_match "$b" '^        [A-Za-z_][A-Za-z0-9_.]*\+[0-9]+$' \
        && assert_match "$b" '^\]: [0-9]+$' \
        && assert_not_contains "$b" "0xffff" || bad=$((bad + 1))
    b=$(block profile_cpu) || bad=$((bad + 1))
    assert_match "$b" '^@\[0\]: [0-9]+$' || bad=$((bad + 1))
    b=$(block profile_ms) || bad=$((bad + 1))
    assert_match "$b" '^@ticks: [0-9]+$' && assert_match "$b" '^@p\[profile:ms:10\]: [0-9]+$' || bad=$((bad + 1))
    b=$(block software_faults) || bad=$((bad + 1))
    assert_match "$b" '^@f: [1-9][0-9]*$' || bad=$((bad + 1))
    b=$(block software_cs) || bad=$((bad + 1))
    assert_match "$b" '^@\[software:cs:1\]: [1-9][0-9]*$' || bad=$((bad + 1))
    # QEMU's x86 TCG has no PMU: one line naming the probe and the cause;
    # its arm64 one emulates cycles.
    if printf '%s\n' "$out" | grep -q '^== hardware rc=0$'; then
        b=$(block hardware) || bad=$((bad + 1))
        assert_match "$b" '^@c: [1-9][0-9]*$' || bad=$((bad + 1))
    else
        b=$(block hardware 1) || bad=$((bad + 1))
        assert_match "$b" '^stderr: error: .*hardware:cycles:1000000: this machine has no hardware counter for it' || bad=$((bad + 1))
    fi
    b=$(block kstack_perf) || bad=$((bad + 1))
    assert_match "$b" '^	[0-9a-f]+ do_unlinkat\+[0-9]+$' || bad=$((bad + 1))
    b=$(block kstack_raw) || bad=$((bad + 1))
    assert_eq "$(printf '%s\n' "$b" | grep -cE '^[0-9a-f]{8,16}$')" 2 || bad=$((bad + 1))
    b=$(block kstack_depth) || bad=$((bad + 1))
    # At most 3 frames (32-bit ARM's unwinder may find fewer).
    [ "$(printf '%s\n' "$b" | grep -cE '^        [A-Za-z_].*\+[0-9]+$')" -le 3 ] \
        && assert_match "$b" '^        do_unlinkat\+[0-9]+$' || bad=$((bad + 1))
    # The sleeper's frame in its C library code (nanosleep's syscall; on
    # 32-bit ARM its __libc_do_syscall), named from its ELF symbols.
    local syscall_frame='([A-Za-z_]*nanosleep[A-Za-z0-9_]*|__libc_do_syscall)\+[0-9]+'
    b=$(block ustack) || bad=$((bad + 1))
    assert_match "$b" "^	[0-9a-f]+ $syscall_frame \\(/tmp/sleeper\\)\$" || bad=$((bad + 1))
    b=$(block ustack_bpftrace) || bad=$((bad + 1))
    assert_eq "$b" "$(printf 'Attaching 1 probe...\n\n%s' "$(printf '%s\n' "$b" | grep -E "^        $syscall_frame\$")")" || bad=$((bad + 1))
    b=$(block ksym) || bad=$((bad + 1))
    assert_match "$b" '^[A-Za-z_][A-Za-z0-9_.]*$' && assert_not_contains "$b" "0x" || bad=$((bad + 1))
    b=$(block builtins) || bad=$((bad + 1))
    assert_match "$b" '^1 [01] 0$' || bad=$((bad + 1))
    if [ "$KERNEL" = linux-4.14 ]; then
        b=$(block cgroup 1) || bad=$((bad + 1))
        assert_match "$b" '^stderr: error: 1:[0-9]+: `cgroup` needs the helper bpf_get_current_cgroup_id of Linux 4\.18; this kernel is 4\.14' || bad=$((bad + 1))
    elif [ "$KERNEL" = nobtf-5.10 ]; then
        # Built without cgroups: the loader's probe finds no helper.
        b=$(block cgroup 1) || bad=$((bad + 1))
        assert_eq "$b" 'stderr: error: helper bpf_get_current_cgroup_id is not available on this kernel (needed by the probes); mainline has it since 4.18' || bad=$((bad + 1))
    else
        b=$(block cgroup) || bad=$((bad + 1))
        assert_match "$b" '^1$' || bad=$((bad + 1))
    fi
    if grep -q '^CONFIG_KALLSYMS_ALL=y' "$(kernel_config "$KERNEL")"; then
        b=$(block kaddr) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 1 probe...\n1' || bad=$((bad + 1))
    else
        # kallsyms lists no variables: loads.bt cannot run there either.
        b=$(block kaddr 1) || bad=$((bad + 1))
        assert_match "$b" '^stderr: error: 1:[0-9]+: kaddr\("avenrun"\): no such symbol in /proc/kallsyms \(without CONFIG_KALLSYMS_ALL it lists functions only\)$' || bad=$((bad + 1))
    fi
    b=$(block kaddr_missing 1) || bad=$((bad + 1))
    assert_match "$b" '^stderr: error: 1:[0-9]+: kaddr\("no_such_symbol_here"\): no such symbol in /proc/kallsyms' || bad=$((bad + 1))
    case $KERNEL in
        linux-4.14)
            b=$(block signal 1) || bad=$((bad + 1))
            assert_match "$b" '^stderr: error: 1:[0-9]+: `signal` needs the helper bpf_send_signal of Linux 5\.3; this kernel is' || bad=$((bad + 1)) ;;
        *)
            # SIGKILL: the shell reports 128 + 9.
            b=$(block signal) || bad=$((bad + 1))
            assert_contains "$b" "status 137" || bad=$((bad + 1)) ;;
    esac
    if [ "$(kernel_profile_arch)" != arm ]; then
        b=$(block uprobe_main) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 1 probe...\nuprobe:/tmp/sleeper:main sleeper' || bad=$((bad + 1))
        b=$(block uretprobe_main) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 1 probe...\nret 0' || bad=$((bad + 1))
        b=$(block uprobe_list) || bad=$((bad + 1))
        assert_eq "$b" 'uprobe:/tmp/sleeper:main' || bad=$((bad + 1))
        b=$(block usym) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 1 probe...\nmain' || bad=$((bad + 1))
        local hint='Use --unsafe to force attachment. WARNING: This option could lead to data corruption in the target process.'
        if [ "$(kernel_profile_arch)" = aarch64 ]; then
            b=$(block uprobe_offset) || bad=$((bad + 1))
            assert_eq "$b" $'Attaching 1 probe...\nuprobe:/tmp/sleeper:main+4' || bad=$((bad + 1))
            b=$(block uprobe_offset_mid 1) || bad=$((bad + 1))
            assert_eq "$b" "stderr: error: Could not add uprobe into middle of instruction: /tmp/sleeper:main+2 $hint" || bad=$((bad + 1))
        else
            b=$(block uprobe_offset 1) || bad=$((bad + 1))
            assert_eq "$b" "stderr: error: Can't check if uprobe is in proper place (compiled without (k|u)probe offset support): /tmp/sleeper:main+4 $hint" || bad=$((bad + 1))
        fi
    fi
    [ "$bad" = 0 ] || { fail "$bad sampling cases failed (output in $TEST_TMP/sampling.out)"; return 1; }
}
