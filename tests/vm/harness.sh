# The QEMU harness itself: boots, exit status, --file, and a kprobe that fires.
# (Removing a kprobe event clears the trace buffer, so the trace is read first.)
# shellcheck shell=bash

vmtest_boots_and_reports_release() {
    local out want
    out=$(vm -- uname -r) || fail "uname -r failed" || return 1
    want=$(kernel_release "$KERNEL")
    assert_eq "$out" "$want"
}

vmtest_exit_status_comes_back() {
    local rc=0
    vm -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 42' >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
    assert_eq "$rc" 42 && assert_eq "$(cat "$TEST_TMP/out")" to-stdout \
        && assert_eq "$(cat "$TEST_TMP/err")" to-stderr
}

vmtest_file_is_delivered() {
    printf 'payload %s\n' "$KERNEL" >"$TEST_TMP/payload"
    local out
    out=$(vm --file "$TEST_TMP/payload:/tmp/in/payload.txt" -- cat /tmp/in/payload.txt) || return 1
    assert_eq "$out" "payload $KERNEL"
}

vmtest_btf_presence_matches_kernel() {
    local rc=0
    vm -- test -e /sys/kernel/btf/vmlinux || rc=$?
    if kernel_has_btf; then assert_eq "$rc" 0; else assert_eq "$rc" 1; fi
}

vmtest_tracefs_kprobe_fires_on_unlink() {
    local out
    out=$(vm -- sh -c "cd $VM_TRACEFS && echo 'p:harness_unlink do_unlinkat' >>kprobe_events \
        && echo 1 >events/kprobes/harness_unlink/enable && touch /tmp/victim && rm /tmp/victim \
        && echo 0 >events/kprobes/harness_unlink/enable && cat trace \
        && echo '-:harness_unlink' >>kprobe_events") || return 1
    # The comm column is looked up when the buffer is read; once rm has gone
    # the kernel may no longer have its name and prints `<...>`.
    assert_match "$out" '(rm|<\.\.\.>)-[0-9]+ .*harness_unlink: \(do_unlinkat'
}
