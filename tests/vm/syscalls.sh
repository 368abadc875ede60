# Syscall tracepoints on kernels built without them (CONFIG_FTRACE_SYSCALLS
# off: linux-4.14, linux-5.4, nobtf-5.10, nobpf-5.10), lowered to kprobes on
# the syscalls' entry functions: one set of programs, and bpftrace 0.23's
# own syscall tools (../shared/corpus/bpftrace-0.23-tools/, test data read
# from there), run in one boot of the bench's Debian 13 root filesystem
# (the same workload binaries on every kernel) must print the same on
# debian-6.1 (the real tracepoints) as where they are lowered.
# shellcheck shell=bash

# The VM-side script: `== NAME rc=STATUS`, stdout, then stderr prefixed
# with `stderr: `, for each case. $1 says whether the kernel has bpf(2);
# $2, if given, is the offsets profile execsnoop reads task_struct with.
syscalls_script() {
    vm_trace_case_runner
    cat <<'EOF'
BPF=$1
EXEC_OFFSETS=$2
touch /tmp/s1
# The tracefs back end first: it runs on every kernel with kprobe events.
t tracefs --backend tracefs 'tracepoint:syscalls:sys_enter_openat /comm == "touch"/ { printf("%s %o\n", str(args.filename), args.mode); }' -c '/usr/bin/touch /tmp/new2'
[ "$BPF" = yes ] || exit 0
# openat's four arguments (the fourth, the mode, comes in r10 to the
# wrappers) and its return value.
t openat -v 'tracepoint:syscalls:sys_enter_openat /comm == "touch" && str(args.filename) == "/tmp/new1"/ { printf("%s %d %o\n", str(args.filename), args.dfd, args.mode); @new[tid] = 1; } tracepoint:syscalls:sys_exit_openat /@new[tid]/ { printf("fd %d\n", args->ret); delete(@new[tid]); }' -c '/usr/bin/touch /tmp/new1'
# A wildcard, and argv: a user array of user strings.
t exec 'tracepoint:syscalls:sys_enter_exec* /comm == "env"/ { printf("%s %s %s %s\n", probe, str(args.filename), str(args.argv[0]), str(args->argv[1])); }' -c '/usr/bin/env /usr/bin/true x'
# A negative return value.
t kill 'tracepoint:syscalls:sys_enter_kill /comm == "perl"/ { printf("kill %d %d\n", args.pid, args.sig); } tracepoint:syscalls:sys_exit_kill /comm == "perl"/ { printf("ret %d\n", args.ret); }' -c '/usr/bin/perl -e "kill 0, 1; kill 0, 999999"'
# Every syscall of the table: counted where the real ones would count.
t all 'tracepoint:syscalls:sys_enter_* /comm == "true"/ { @[probe] = count(); }' -c '/usr/bin/true'
# The record's syscall number has no kprobe counterpart.
t syscall_nr 'tracepoint:syscalls:sys_enter_kill { printf("%d\n", args.__syscall_nr); }' -c '/usr/bin/true'
# bpftrace's tools.
t opensnoop /corpus/opensnoop.bt -c '/usr/bin/cat /tmp/s1'
t statsnoop /corpus/statsnoop.bt -c '/usr/bin/stat /tmp/s1 >/dev/null'
t killsnoop /corpus/killsnoop.bt -c '/usr/bin/perl -e "kill 0, 1"'
t execsnoop -v ${EXEC_OFFSETS:+--offsets $EXEC_OFFSETS} /corpus/execsnoop.bt -c '/usr/bin/env /usr/bin/true x'
t syncsnoop /corpus/syncsnoop.bt -c '/usr/bin/sync; /usr/bin/sync -f /tmp/s1; /usr/bin/sync /tmp/s1'
EOF
}

# What a lowered kernel enters: (wrapper prefix or `sys_`, how arguments
# are read), as -v says it.
syscalls_lowered_to() {
    case $KERNEL in
        linux-4.14) echo 'sys_ (arguments from its registers)' ;;
        linux-5.4 | nobtf-5.10 | nobpf-5.10) echo '__x64_sys_ (arguments through its struct pt_regs *)' ;;
        *) echo '' ;;
    esac
}

# What /usr/bin/true of the bench's root filesystem calls, of the syscalls
# of kernel_headers::syscalls, as debian-6.1's real tracepoints count them.
syscalls_true_counts() {
    printf '@[tracepoint:syscalls:sys_enter_%s]: %s\n' access 1 brk 1 exit_group 1 munmap 1 read 1 \
        close 2 newfstat 2 openat 2 pread64 2 mprotect 3 mmap 8
}
syscalls_of_true() { syscalls_true_counts | sed -E 's/.*sys_enter_([a-z0-9_]+).*/\1/' | paste -sd'|'; }

vmtest_syscall_tracepoints_lowered() {
    case $KERNEL in
        debian-6.1 | linux-4.14 | linux-5.4 | nobtf-5.10 | nobpf-5.10) ;;
        *) skip "the x86-64 kernels with and without syscall tracepoints"; return ;;
    esac
    (ensure_bench_rootfs) || { fail "the bench root filesystem could not be built"; return 1; }
    local bpf=yes
    kernel_has_bpf || bpf=no
    syscalls_script >"$TEST_TMP/syscalls.sh"
    # execsnoop reads task_struct: linux-4.14's profile (tests/profiles)
    # has it; nobtf-5.10 has no BTF and no profile, so one is made from its
    # vmlinux's DWARF, as a user of that kernel would.
    local exec_offsets=() exec_arg=""
    if [ "$KERNEL" = nobtf-5.10 ]; then
        (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
        "$NOBTF_ROOT/target/release/offsets" gen --vmlinux "$KERNELS_DIR/nobtf-5.10/vmlinux" --field task_struct.tgid \
            --fields-from "$(corpus_dir)/execsnoop.bt" -o "$TEST_TMP/execsnoop.toml" || { fail "offsets gen for execsnoop"; return 1; }
        exec_offsets=(--file "$TEST_TMP/execsnoop.toml:/tmp/execsnoop.toml")
        exec_arg=/tmp/execsnoop.toml
    fi
    local out start=$SECONDS
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 900 --file "$TEST_TMP/syscalls.sh:/tmp/syscalls.sh" \
        ${exec_offsets[@]+"${exec_offsets[@]}"} --file "$(corpus_dir):/corpus" -- sh /tmp/syscalls.sh "$bpf" "$exec_arg" 2>&1) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    echo "syscalls on $KERNEL: $((SECONDS - start)) s" >&2
    printf '%s\n' "$out" >"$TEST_TMP/syscalls.out"
    local b bad=0 lowered
    lowered=$(syscalls_lowered_to)
    block() { vm_trace_case "$out" "$@"; }
    # Lines of the program, not nobtf's notes.
    printed() { grep -v '^stderr: nobtf: ' <<<"$1"; }

    if [ -n "$lowered" ]; then
        b=$(block tracefs) || bad=$((bad + 1))
        assert_contains "$b" "/tmp/new2 666" || bad=$((bad + 1))
    else
        # Real tracepoints are BPF programs.
        b=$(block tracefs 1) || bad=$((bad + 1))
        assert_contains "$b" 'the probe `tracepoint:syscalls:sys_enter_openat` (it runs a BPF program)' || bad=$((bad + 1))
    fi
    if kernel_has_bpf; then
        b=$(block openat) || bad=$((bad + 1))
        assert_eq "$(printed "$b" | grep -v '^stderr: ')" $'Attaching 2 probes...\n/tmp/new1 -100 666\nfd 3' || bad=$((bad + 1))
        if [ -n "$lowered" ]; then
            local prefix=${lowered%% *} how=${lowered#* }
            assert_contains "$b" "stderr: nobtf: tracepoint:syscalls:sys_enter_openat lowered to kprobe:${prefix}openat $how: this kernel has no syscall tracepoints" \
                && assert_contains "$b" "stderr: nobtf: tracepoint:syscalls:sys_exit_openat lowered to kretprobe:${prefix}openat $how" || bad=$((bad + 1))
        else
            assert_not_contains "$b" "lowered" || bad=$((bad + 1))
        fi
        b=$(block exec) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 2 probes...\ntracepoint:syscalls:sys_enter_execve /usr/bin/true /usr/bin/true x' || bad=$((bad + 1))
        b=$(block kill) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 2 probes...\nkill 1 0\nret 0\nkill 999999 0\nret -3' || bad=$((bad + 1))
        b=$(block all) || bad=$((bad + 1))
        # The syscalls of the table /usr/bin/true makes (its execve is
        # made while its comm is still the shell's), as the real
        # tracepoints count them.
        assert_eq "$(printf '%s\n' "$b" | grep -E "^@\[tracepoint:syscalls:sys_enter_($(syscalls_of_true))\]")" \
            "$(syscalls_true_counts)" || bad=$((bad + 1))
        if [ -n "$lowered" ]; then
            b=$(block syscall_nr 1) || bad=$((bad + 1))
            assert_contains "$b" '`__syscall_nr` is not read where sys_enter_kill is lowered to a kprobe' || bad=$((bad + 1))
        else
            b=$(block syscall_nr) || bad=$((bad + 1))
        fi
        # The tools, PIDs and times masked.
        b=$(block opensnoop) || bad=$((bad + 1))
        assert_match "$b" '^[0-9]+ +cat +3 +0 /tmp/s1$' || bad=$((bad + 1))
        b=$(block statsnoop) || bad=$((bad + 1))
        assert_match "$b" '^[0-9]+ +stat +0 /tmp/s1$' || bad=$((bad + 1))
        b=$(block killsnoop) || bad=$((bad + 1))
        assert_match "$b" '^[0-9:.]+ +[0-9]+ perl +0 +1 +0$' || bad=$((bad + 1))
        b=$(block syncsnoop) || bad=$((bad + 1))
        assert_eq "$(printf '%s\n' "$b" | sed -nE 's/^[0-9:]+ +[0-9]+ +sync +//p')" \
            $'tracepoint:syscalls:sys_enter_sync\ntracepoint:syscalls:sys_enter_syncfs\ntracepoint:syscalls:sys_enter_fsync' || bad=$((bad + 1))
        # execsnoop: curtask, join() and task_struct's real_parent and pid,
        # proved by the live checks where a profile gives them (linux-5.4:
        # tests/profiles/linux-5.4.toml, which records real_parent).
        b=$(block execsnoop) || bad=$((bad + 1))
        assert_match "$(printed "$b")" '^[0-9:.]+ +[0-9]+ +[0-9]+ +/usr/bin/true x$' || bad=$((bad + 1))
        if [ -n "$lowered" ]; then
            assert_match "$b" '^stderr: nobtf: live checks passed: .*task_struct\.real_parent' || bad=$((bad + 1))
        fi
        echo "summary: execsnoop on $KERNEL: $(grep -E -m1 '/usr/bin/true x$' <<<"$b")$(grep -m1 -o '; live checks passed: .*' <<<"${b//stderr: nobtf: live/; live}")" >&2
    fi
    [ "$bad" = 0 ] || { echo "output kept in $TEST_TMP/syscalls.out" >&2; return 1; }
}
