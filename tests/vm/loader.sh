# nobtf run/check/dump on real kernels: every attach mode and read helper the
# kernel has, the reference lines, ret values, JSON, the trace pipe, cleanup.
# shellcheck shell=bash

# A VM-side script: for each attach mode and read helper this kernel has,
# remove /tmp/a.txt from a shell that execs rm (so its pid is known) and
# print the mode, that pid, nobtf's stdout and its exit status; then list
# what is left in kprobe_events.
loader_modes_script() {
    cat <<'EOF'
T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
modes=tracefs
[ -e /sys/bus/event_source/devices/kprobe/type ] && modes="pmu tracefs"
helpers=probe_read
nobtf check | grep -q 'bpf_probe_read_kernel  *yes' && helpers="probe_read probe_read_kernel"
for a in $modes; do
    for r in $helpers; do
        touch /tmp/a.txt
        nobtf run unlink --attach "$a" --read-helper "$r" --count 2 \
            -c 'echo "RMPID=$$" >/tmp/rmpid; exec rm /tmp/a.txt' >/tmp/out 2>/tmp/err
        echo "== mode=$a helper=$r rc=$? $(cat /tmp/rmpid)"
        cat /tmp/out
        sed 's/^/stderr: /' /tmp/err
    done
done
echo "== left"
grep nobtf "$T/kprobe_events" || true
EOF
}

vmtest_loader_unlink_every_mode() {
    loader_modes_script >"$TEST_TMP/modes.sh"
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/modes.sh:/tmp/modes.sh" -- sh /tmp/modes.sh) || {
        printf '%s\n' "$out" >&2
        fail "the VM script failed"
        return 1
    }
    local blocks=0 block header pid
    # Each block starts with "== mode=...": check it on its own.
    while IFS= read -r header; do
        blocks=$((blocks + 1))
        block=$(output_block "$out" "$header")
        pid=${header##*RMPID=}
        assert_match "$header" 'rc=0 ' || { printf '%s\n' "$block" >&2; return 1; }
        assert_match "$block" "^ *rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE ENTRY pid = $pid, filename = /tmp/a.txt\$" || return 1
        assert_match "$block" "^ *rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE EXIT: pid = $pid, ret = 0\$" || return 1
        assert_contains "$block" "stderr: nobtf: 2 events delivered, 0 lost" || return 1
    done < <(printf '%s\n' "$out" | grep '^== mode=')
    [ "$blocks" -ge 2 ] || fail "expected at least 2 modes, ran $blocks" || return 1
    case $KERNEL in
        debian-*|nobtf-5.10) assert_contains "$out" "mode=pmu helper=probe_read_kernel" || return 1 ;;
    esac
    assert_eq "$(printf '%s\n' "$out" | sed -n '/^== left/,$p' | tail -n +2)" ""
}

vmtest_loader_missing_file_returns_enoent() {
    local out
    # busybox rm stats first and never calls unlink(2) on a missing file; unlink does.
    out=$(vm -- sh -c 'nobtf run unlink --count 2 -c "unlink /tmp/missing.txt 2>/dev/null"') || return 1
    assert_match "$out" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/missing.txt$' \
        && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = -2$'
}

vmtest_loader_json_lines() {
    local out
    out=$(vm -- sh -c 'touch /tmp/a.txt; nobtf run unlink --format json --count 2 -c "rm /tmp/a.txt"') || return 1
    local entry exit
    entry=$(printf '%s\n' "$out" | grep '"kind":"entry"') || fail "no entry object in: $out" || return 1
    exit=$(printf '%s\n' "$out" | grep '"kind":"exit"') || fail "no exit object in: $out" || return 1
    # Whole-line shape: one flat object, the fields the issue asks for.
    assert_match "$entry" '^\{.*\}$' \
        && assert_match "$entry" '"comm":"rm"' \
        && assert_match "$entry" '"filename":"/tmp/a.txt"' \
        && assert_match "$entry" '"pid":[0-9]+' \
        && assert_match "$entry" '"tid":[0-9]+' \
        && assert_match "$entry" '"refcnt":[0-9]+' \
        && assert_match "$entry" '"ts":[0-9]+' \
        && assert_match "$exit" '"ret":0' \
        && assert_match "$exit" '"filename":null'
}

vmtest_loader_trace_pipe_reference_lines() {
    local out
    out=$(vm -- sh -c 'touch /tmp/a.txt; nobtf run unlink --trace-pipe --count 2 -c "exec rm /tmp/a.txt"; echo rc=$?
        T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
        echo "left: $(grep -c nobtf $T/kprobe_events)"') || return 1
    assert_match "$out" '-[0-9]+ +\[[0-9]{3}\] .* [0-9]+\.[0-9]{6}: .*KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
        && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = 0$' \
        && assert_contains "$out" "rc=0" \
        && assert_contains "$out" "left: 0"
}

vmtest_loader_check_and_dump() {
    local out
    out=$(vm -- sh -c 'nobtf check; echo ===; nobtf dump unlink') || return 1
    assert_contains "$out" "nobtf run unlink can work here" \
        && assert_match "$out" '^; unlink_entry' \
        && assert_match "$out" 'call bpf_perf_event_output#25' \
        && assert_match "$out" 'exit$'
}

vmtest_loader_errors_are_one_line() {
    local out rc=0
    out=$(vm -- sh -c 'echo "format = 99" >/tmp/bad.toml; nobtf run unlink --offsets /tmp/bad.toml --count 1 2>&1') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: .*bad.toml' \
        && assert_eq "$(printf '%s\n' "$out" | wc -l)" 1
}
