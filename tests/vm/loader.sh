# nobtf run/check/dump on real kernels: every attach mode and read helper the
# kernel has, the reference lines, ret values, JSON, the trace pipe, cleanup.
# shellcheck shell=bash

# A VM-side script: for each attach mode and read helper nobtf has, remove
# /tmp/a.txt from a shell that execs rm (so its pid is known) and print the
# mode, that pid, nobtf's stdout and its exit status; then list what is left
# in kprobe_events. Every combination runs on every kernel: one the kernel
# cannot do must be refused clearly (checked on the host, per kernel).
loader_modes_script() {
    cat <<'EOF'
T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
for a in pmu tracefs; do
    for r in probe_read probe_read_kernel probe_read_fixed; do
        touch /tmp/a.txt
        rm -f /tmp/rmpid
        nobtf run unlink --attach "$a" --read-helper "$r" --count 2 \
            -c 'echo "RMPID=$$" >/tmp/rmpid; exec rm /tmp/a.txt' >/tmp/out 2>/tmp/err
        echo "== mode=$a helper=$r rc=$? $(cat /tmp/rmpid 2>/dev/null || echo RMPID=none)"
        cat /tmp/out
        sed 's/^/stderr: /' /tmp/err
    done
done
echo "== left"
grep nobtf "$T/kprobe_events" || true
EOF
}

# How the attach line names the reader of --read-helper R, as a regex.
loader_reader_regex() {
    case $1 in
        probe_read) echo 'bpf_probe_read' ;;
        probe_read_kernel) echo 'bpf_probe_read_kernel' ;;
        probe_read_fixed) echo 'bpf_probe_read \(fixed-size reads\)' ;;
    esac
}

vmtest_loader_unlink_every_mode() {
    loader_modes_script >"$TEST_TMP/modes.sh"
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/modes.sh:/tmp/modes.sh" -- sh /tmp/modes.sh) || {
        printf '%s\n' "$out" >&2
        fail "the VM script failed"
        return 1
    }
    local blocks=0 worked=0 block header pid mode helper attach
    # Each block starts with "== mode=...": check it on its own.
    while IFS= read -r header; do
        blocks=$((blocks + 1))
        block=$(output_block "$out" "$header")
        mode=$(sed -n 's/.*mode=\([a-z]*\) .*/\1/p' <<<"$header")
        helper=$(sed -n 's/.*helper=\([a-z_]*\) .*/\1/p' <<<"$header")
        if ! kernel_has_bpf; then
            # The tracefs back end: a BPF reader is refused in one line.
            assert_match "$header" ' rc=1 ' \
                && assert_eq "$block" "stderr: error: no way to attach: --read-helper chooses a BPF helper; the tracefs back end's reads are the kernel's fetch arguments: drop it, or pass --backend bpf" \
                || return 1
            continue
        fi
        # Refusals come in the plan's order: the reader, then the attach path.
        if [ "$helper" = probe_read_kernel ] && ! kernel_has_probe_read_kernel; then
            assert_match "$header" ' rc=1 ' \
                && assert_eq "$block" "stderr: error: --read-helper probe_read_kernel needs helper bpf_probe_read_kernel, which this kernel does not have; mainline has it since 5.5: use --read-helper auto" \
                || return 1
            continue
        fi
        if [ "$mode" = pmu ] && ! kernel_has_pmu; then
            assert_match "$header" ' rc=1 ' \
                && assert_eq "$block" "stderr: error: no way to attach: the kprobe PMU (/sys/bus/event_source/devices/kprobe, 4.17+) is missing; use --attach tracefs" \
                || return 1
            continue
        fi
        worked=$((worked + 1))
        pid=${header##*RMPID=}
        attach='tracefs /sys/kernel/(debug/)?tracing/kprobe_events'
        [ "$mode" = pmu ] && attach='kprobe PMU \(type [0-9]+\)'
        assert_match "$header" 'rc=0 ' || { printf '%s\n' "$block" >&2; return 1; }
        assert_match "$block" "^ *rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE ENTRY pid = $pid, filename = /tmp/a.txt\$" || return 1
        assert_match "$block" "^ *rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE EXIT: pid = $pid, ret = 0\$" || return 1
        local buffer='perf events'
        kernel_has_ring_buffer && buffer='ring buffer'
        assert_match "$block" "^stderr: nobtf: attached to do_unlinkat entry and return \\($attach, $(loader_reader_regex "$helper"), $buffer\\) in [0-9]+ ms\$" || return 1
        assert_contains "$block" "stderr: nobtf: 2 events delivered, 0 lost" || return 1
    done < <(printf '%s\n' "$out" | grep '^== mode=')
    assert_eq "$blocks" 6 || return 1
    # Which combinations work is a fact of the kernel: tracefs with both
    # probe_read readers everywhere, the PMU from 4.17, _kernel from 5.5.
    local readers=2 modes=1
    kernel_has_pmu && modes=2
    kernel_has_probe_read_kernel && readers=3
    kernel_has_bpf || modes=0
    assert_eq "$worked" $((modes * readers)) || return 1
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
    # On 4.14 do_unlinkat gets the user's path, no struct filename:
    # there is no refcnt to read, and the event says so.
    local refcnt='"refcnt":[0-9]+'
    kernel_passes_user_path && refcnt='"refcnt":null'
    # Whole-line shape: one flat object, the fields the issue asks for.
    assert_match "$entry" '^\{.*\}$' \
        && assert_match "$entry" '"comm":"rm"' \
        && assert_match "$entry" '"filename":"/tmp/a.txt"' \
        && assert_match "$entry" '"pid":[0-9]+' \
        && assert_match "$entry" '"tid":[0-9]+' \
        && assert_match "$entry" "$refcnt" \
        && assert_match "$entry" '"ts":[0-9]+' \
        && assert_match "$exit" '"ret":0' \
        && assert_match "$exit" '"filename":null'
}

vmtest_loader_trace_pipe_reference_lines() {
    local out
    out=$(vm -- sh -c 'touch /tmp/a.txt; nobtf run unlink --trace-pipe --count 2 -c "exec rm /tmp/a.txt" 2>&1; echo rc=$?
        T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
        echo "left: $(grep -c nobtf $T/kprobe_events)"') || return 1
    if ! kernel_has_bpf; then
        assert_match "$out" '^error: no way to attach: --trace-pipe streams bpf_trace_printk, which needs the BPF back end$' \
            && assert_contains "$out" "rc=1" && assert_contains "$out" "left: 0"
        return
    fi
    # What comes before the text: trace_printk's address field until the
    # dedicated bpf_trace_printk event (5.10).
    local prefix
    case $KERNEL in
        linux-4.14) prefix='0x00000001' ;;
        linux-5.4) prefix='0' ;;
        *) prefix='bpf_trace_printk' ;;
    esac
    assert_match "$out" "-[0-9]+ +\\[[0-9]{3}\\] .* [0-9]+\\.[0-9]{6}: $prefix: KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt\$" \
        && assert_match "$out" "$prefix: KPROBE EXIT: pid = [0-9]+, ret = 0\$" \
        && assert_contains "$out" "rc=0" \
        && assert_contains "$out" "left: 0"
}

# What check reports and the path run takes follow from the kernel: the
# attach mechanism, the reader, object names, kern_version; and where no
# builtin profile fits (before 4.19), run without one is refused.
vmtest_loader_check_and_dump() {
    local out
    out=$(vm -- sh -c 'nobtf check; echo "== dump"; nobtf dump unlink
        echo "== dump fixed"; nobtf dump unlink --read-helper probe_read_fixed
        echo "== no profile"; touch /tmp/a.txt; env -u NOBTF_OFFSETS nobtf run unlink --count 2 -c "rm /tmp/a.txt" 2>&1; echo "rc=$?"') || return 1
    local check attach reader names code='0x[0-9a-f]+'
    check=$(printf '%s\n' "$out" | sed '/^== dump$/,$d')
    # LINUX_VERSION_CODE, what kprobe programs must carry before 5.0: the
    # sublevel is capped at 255 (5.4.286 is 0x504ff).
    case $KERNEL in
        linux-4.14) code=0x40eb1 ;;
        linux-5.4) code=0x504ff ;;
    esac
    if ! kernel_has_bpf; then
        assert_contains "$check" "nobtf run unlink can work here" \
            && assert_match "$check" '^  bpf\(2\) +NO: bpf\(BPF_PROG_LOAD\): Function not implemented' \
            && assert_match "$check" '^  back end +tracefs \(kprobe events with fetch arguments, no BPF\): this kernel has no bpf\(2\) system call' \
            && assert_match "$check" '^  attach +tracefs /sys/kernel/tracing/kprobe_events, the kernel fetching the arguments$' \
            && assert_not_contains "$check" "read helper" \
            && assert_match "$(output_block "$out" "== dump")" '^; unlink_entry' \
            && assert_match "$(output_block "$out" "== no profile")" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
            && assert_contains "$(output_block "$out" "== no profile")" "rc=0"
        return
    fi
    attach='kprobe PMU \(type [0-9]+\)' reader='bpf_probe_read_kernel' names=accepted
    kernel_has_pmu || attach='tracefs /sys/kernel/tracing/kprobe_events'
    kernel_has_probe_read_kernel || reader='bpf_probe_read'
    [ "$KERNEL" = linux-4.14 ] && names='rejected: pre-4.15'
    assert_contains "$check" "nobtf run unlink can work here" \
        && assert_match "$check" "^  attach +$attach\$" \
        && assert_match "$check" "^  read helper +$reader\$" \
        && assert_match "$check" "^  bpf\\(2\\) +yes \\(kprobe programs load; object names $names\\)\$" \
        && assert_match "$check" "^  release +$(kernel_release "$KERNEL" | sed 's/[.+]/\\&/g') \\(built as .*, kern_version $code\\)\$" \
        || return 1
    # Records go through the BPF ring buffer from 5.8, the perf buffer before.
    local dump fixed output='perf event array \(bpf_perf_event_output\)' call='bpf_perf_event_output#25'
    if kernel_has_ring_buffer; then
        output='BPF ring buffer \(bpf_ringbuf_reserve/submit\)' call='bpf_ringbuf_submit#132'
    fi
    assert_match "$check" "^  output +$output\$" || return 1
    # The comm: two loads through the task's BTF pointer where the kernel
    # takes them (5.11+ with BTF), else the helper.
    local comm='bpf_get_current_comm' comm_call='bpf_get_current_comm#16'
    if kernel_has_task_btf; then
        comm="bpf_get_current_task_btf, task_struct.comm at byte [0-9]+ \\(the kernel's BTF\\)"
        comm_call='bpf_get_current_task_btf#158'
    fi
    assert_match "$check" "^  comm +$comm\$" || return 1
    dump=$(output_block "$out" "== dump")
    fixed=$(output_block "$out" "== dump fixed")
    assert_match "$dump" '^; unlink_entry' \
        && assert_match "$dump" "call $call" \
        && assert_match "$dump" "call $comm_call" \
        && assert_match "$dump" "call $reader(_str|_user_str)?#" \
        && assert_match "$dump" 'exit$' \
        && assert_match "$fixed" 'call bpf_probe_read#4' \
        && assert_not_contains "$fixed" "_str#" \
        || return 1
    local run
    run=$(output_block "$out" "== no profile")
    if kernel_passes_user_path; then
        assert_eq "$run" "error: no offsets profile for kernel $(kernel_release "$KERNEL"): the builtin one is only known to fit 4.19 and later; generate one with \`offsets gen\` and pass it with --offsets FILE"$'\n'"rc=1"
    else
        assert_match "$run" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
            && assert_contains "$run" "rc=0"
    fi
}

vmtest_loader_errors_are_one_line() {
    local out rc=0
    out=$(vm -- sh -c 'echo "format = 99" >/tmp/bad.toml; nobtf run unlink --offsets /tmp/bad.toml --count 1 2>&1') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: .*bad.toml' \
        && assert_eq "$(printf '%s\n' "$out" | wc -l)" 1
}

# Nothing of the run leans on BTF: with /sys/kernel/btf hidden (BTF kernels)
# the reference lines still come; and a profile made for another
# architecture is refused in one line naming both.
vmtest_loader_runs_without_btf_and_refuses_other_arch_profiles() {
    local other=x86_64 size=8
    [ "$(kernel_profile_arch)" = x86_64 ] && other=aarch64
    reliability_profile "$(kernel_release "$KERNEL")" 0 16 \
        | sed -e "s/^arch = .*/arch = \"$other\"/" -e '/^\[pt_regs\]/,$d' \
              -e "0,/^size = /s/^size = .*/size = $size/" >"$TEST_TMP/other.toml"
    local out
    out=$(vm --file "$TEST_TMP/other.toml:/tmp/other.toml" -- sh -c '
        if [ -e /sys/kernel/btf/vmlinux ]; then mount -t tmpfs none /sys/kernel/btf && echo "== btf hidden"; fi
        [ -e /sys/kernel/btf/vmlinux ] && echo "== btf visible"
        touch /tmp/a.txt; nobtf run unlink --count 2 -c "rm /tmp/a.txt" 2>&1; echo "== run rc=$?"
        env -u NOBTF_OFFSETS nobtf run unlink --offsets /tmp/other.toml --count 1 2>&1; echo "== other rc=$?"') || return 1
    if kernel_has_btf; then assert_contains "$out" "== btf hidden" || return 1; fi
    assert_not_contains "$out" "== btf visible" \
        && assert_match "$out" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
        && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = 0$' \
        && assert_contains "$out" "== run rc=0" || return 1
    local refused
    refused=$(output_block "$out" "== run rc=0")
    assert_eq "$refused" "error: offsets profile /tmp/other.toml is for $other, but this nobtf runs on $(kernel_profile_arch): use a profile made for this machine's kernel (\`offsets gen --arch ...\`)" \
        && assert_contains "$out" "== other rc=1"
}

# Where the kernel has the BPF ring buffer, --perf-buffer still sends the
# records of both front ends through the perf buffer.
vmtest_loader_perf_buffer_beside_the_ring_buffer() {
    kernel_has_bpf && kernel_has_ring_buffer || { skip "no BPF ring buffer before 5.8"; return; }
    local out
    out=$(vm -- sh -c 'touch /tmp/a.txt /tmp/b.txt
        nobtf run unlink --perf-buffer --count 2 -c "rm /tmp/a.txt" 2>&1
        echo "== trace"
        nobtf trace --perf-buffer -e "kretprobe:do_unlinkat /comm == \"rm\"/ { printf(\"ret=%d\\n\", retval); }" -c "rm /tmp/b.txt" 2>&1') || return 1
    assert_match "$out" '^nobtf: attached to do_unlinkat entry and return \(.*, perf events\) in [0-9]+ ms$' \
        && assert_match "$out" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
        && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = 0$' \
        && assert_contains "$(output_block "$out" "== trace")" "ret=0"
}
