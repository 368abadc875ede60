# nobtf load: legacy BPF C objects from tests/c (built on the host with
# clang for the kernel's architecture) loaded unchanged, on every kernel of
# the matrix: the 4.19+-shaped objects (struct filename: name +0, refcnt
# after two pointers; do_unlinkat(int, struct filename *)) on 5.4 and later,
# the 4.14-shaped one (do_unlinkat(int, const char __user *)) on 4.14.
# shellcheck shell=bash

# scripts/test installs clang: an object that does not build is a failure.
# The objects are built for the kernel's architecture: the C programs spell
# out its struct pt_regs and pointer size, as such programs did.
legacy_build() {
    bash "$NOBTF_ROOT/tests/c/build.sh" --arch "$(kernel_arch "$KERNEL")" "$TEST_TMP/obj" "$@" \
        || fail "tests/c/build.sh failed"
}

# The unlink objects shaped for the kernel under test.
legacy_unlink_objects() {
    if kernel_passes_user_path; then
        echo unlink_4_14
    else
        echo unlink unlink_kernel
    fi
}

# The host path of object NAME (unlink: the one shaped for this kernel).
legacy_object_for_kernel() {
    local name=$1
    [ "$name" = unlink ] && kernel_passes_user_path && name=unlink_4_14
    printf '%s\n' "$TEST_TMP/obj/$name.o"
}

# The error line for --attach pmu where the kernel has no kprobe PMU.
LEGACY_NO_PMU="error: no way to attach: the kprobe PMU (/sys/bus/event_source/devices/kprobe, 4.17+) is missing; use --attach tracefs"

# A VM-side script: for each object and attach mode, remove /tmp/a.txt from
# a shell that execs rm (so its pid is known), print a header with nobtf's
# status and that pid, then nobtf's stdout and stderr; finally what is left
# in kprobe_events.
legacy_script() {
    echo "objects='$(legacy_unlink_objects)'"
    cat <<'EOF2'
T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
for obj in $objects; do
    for a in pmu tracefs; do
        touch /tmp/a.txt
        rm -f /tmp/rmpid
        nobtf load "/tmp/$obj.o" --attach "$a" \
            -c 'echo "RMPID=$$" >/tmp/rmpid; exec rm /tmp/a.txt' >/tmp/out 2>/tmp/err
        echo "== obj=$obj mode=$a rc=$? $(cat /tmp/rmpid 2>/dev/null || echo RMPID=none)"
        cat /tmp/out
        sed 's/^/stderr: /' /tmp/err
    done
done
echo "== left"
grep nobtf "$T/kprobe_events" || true
EOF2
}

# Without bpf(2) (nobpf-5.10) nobtf load refuses in one line, once the
# object has parsed, before anything is created.
LEGACY_NO_BPF='error: this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off): bpf(BPF_PROG_LOAD): Function not implemented (os error 38)'
legacy_refused_without_bpf() {
    legacy_build || return 1
    local out
    out=$(vm --file "$TEST_TMP/obj/unlink.o:/tmp/x.o" -- sh -c "nobtf load /tmp/x.o 2>&1; echo \"== rc=\$?\"
        T=$VM_TRACEFS; echo \"== left \$(grep -c nobtf \$T/kprobe_events)\"") || return 1
    assert_eq "$out" "$LEGACY_NO_BPF"$'\n'"== rc=1"$'\n'"== left 0"
}

vmtest_legacy_unlink_object_prints_the_reference_lines() {
    if ! kernel_has_bpf; then legacy_refused_without_bpf; return; fi
    legacy_build || return
    legacy_script >"$TEST_TMP/legacy.sh"
    local files=() obj
    for obj in $(legacy_unlink_objects); do
        files+=(--file "$TEST_TMP/obj/$obj.o:/tmp/$obj.o")
    done
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/legacy.sh:/tmp/legacy.sh" "${files[@]}" -- sh /tmp/legacy.sh) || {
        printf '%s\n' "$out" >&2
        fail "the VM script failed"
        return 1
    }
    local blocks=0 header block pid entry mode
    # The trace shows comm as <...> when its comm cache missed the process.
    while IFS= read -r header; do
        blocks=$((blocks + 1))
        block=$(output_block "$out" "$header")
        obj=$(sed -n 's/.*obj=\([a-z0-9_]*\) .*/\1/p' <<<"$header")
        mode=$(sed -n 's/.*mode=\([a-z]*\) .*/\1/p' <<<"$header")
        if [ "$mode" = pmu ] && ! kernel_has_pmu; then
            assert_match "$header" ' rc=1 ' && assert_eq "$block" "stderr: $LEGACY_NO_PMU" || return 1
            continue
        fi
        pid=${header##*RMPID=}
        entry="refcnt=[1-9][0-9]* filename = /tmp/a.txt"
        [ "$obj" = unlink_4_14 ] && entry="filename = /tmp/a.txt"
        assert_match "$header" ' rc=0 ' || { printf '%s\n' "$block" >&2; return 1; }
        assert_match "$block" "^ *(rm|<\\.\\.\\.>)-$pid +\\[[0-9]+\\] .*: KPROBE ENTRY pid = $pid, $entry\$" \
            || { printf '%s\n' "$block" >&2; return 1; }
        assert_match "$block" "^ *(rm|<\\.\\.\\.>)-$pid +\\[[0-9]+\\] .*: KPROBE EXIT: pid = $pid, ret = 0\$" \
            || { printf '%s\n' "$block" >&2; return 1; }
        assert_match "$block" "^stderr: nobtf: attached unlink_entry \\(kprobe/do_unlinkat\\), unlink_exit \\(kretprobe/do_unlinkat\\) by " \
            || return 1
        # Before 5.5 an object calling bpf_probe_read_kernel is given bpf_probe_read.
        if [ "$obj" = unlink_kernel ] && ! kernel_has_probe_read_kernel; then
            assert_match "$block" "^stderr: nobtf: unlink_entry: [0-9]+ call\\(s\\) to bpf_probe_read_kernel now call bpf_probe_read \\(this kernel lacks the former\\)\$" || return 1
        fi
    done < <(printf '%s\n' "$out" | grep '^== obj=')
    assert_eq "$blocks" $((2 * $(legacy_unlink_objects | wc -w))) || return 1
    # Everything nobtf created is gone.
    assert_eq "$(printf '%s\n' "$out" | sed -n '/^== left/,$p' | tail -n +2)" ""
}

vmtest_legacy_malformed_object_is_one_clear_line() {
    legacy_build || return
    # The first 200 bytes of a good object: cut short.
    head -c 200 "$TEST_TMP/obj/unlink.o" >"$TEST_TMP/cut.o"
    local out rc=0
    out=$(vm --file "$TEST_TMP/cut.o:/tmp/cut.o" -- nobtf load /tmp/cut.o 2>&1) || rc=$?
    assert_eq "$rc" 1 || return 1
    assert_match "$out" '^error: /tmp/cut.o: truncated ELF: the section header table needs bytes up to [0-9]+ but the file has 200: ' \
        || return 1
    assert_eq "$(printf '%s\n' "$out" | wc -l)" 1
}

vmtest_legacy_perf_event_array_samples_are_printed_raw() {
    if ! kernel_has_bpf; then legacy_refused_without_bpf; return; fi
    legacy_build || return
    local out pid le
    out=$(vm --file "$TEST_TMP/obj/perf_output.o:/tmp/p.o" -- sh -c \
        'touch /tmp/a.txt; nobtf load /tmp/p.o -c "echo PID=\$\$; exec rm /tmp/a.txt"') || {
        printf '%s\n' "$out" >&2
        fail "nobtf load failed"
        return 1
    }
    pid=$(printf '%s\n' "$out" | sed -n 's/^PID=//p')
    # The sample: marker "tbon", then the pid as a little-endian u32.
    le=$(printf '%02x %02x %02x %02x' $((pid & 255)) $((pid >> 8 & 255)) $((pid >> 16 & 255)) $((pid >> 24 & 255)))
    assert_match "$out" "^cpu [0-9]+: 74 62 6f 6e $le( 00)*\$"
}

# kallsyms is read only when an attach fails: a missing function still gets
# the clear reason, and nothing is left behind.
vmtest_legacy_missing_function_is_explained_after_the_attach_fails() {
    if ! kernel_has_bpf; then legacy_refused_without_bpf; return; fi
    command -v clang >/dev/null || { fail "no clang (scripts/test installs it)"; return 1; }
    cat >"$TEST_TMP/missing.bpf.c" <<'EOC'
#define SEC(name) __attribute__((section(name), used))
SEC("kprobe/nobtf_no_such_function")
int missing(void *ctx)
{
	return 0;
}
char _license[] SEC("license") = "GPL";
EOC
    clang -target bpf -O2 -g0 -c "$TEST_TMP/missing.bpf.c" -o "$TEST_TMP/missing.o" || { fail "clang failed"; return 1; }
    local out
    out=$(vm --file "$TEST_TMP/missing.o:/tmp/m.o" -- sh -c "
        for a in pmu tracefs; do nobtf load /tmp/m.o --attach \$a -c true 2>&1; echo \"== \$a rc=\$?\"; done
        T=$VM_TRACEFS; echo \"== left \$(grep -c nobtf \$T/kprobe_events)\"") || return 1
    local a
    for a in pmu tracefs; do
        assert_contains "$out" "== $a rc=1" || return 1
    done
    # Without a kprobe PMU (4.14), --attach pmu is refused before any attach.
    local explained=2
    if ! kernel_has_pmu; then
        explained=1
        assert_contains "$out" "$LEGACY_NO_PMU"$'\n'"== pmu rc=1" || return 1
    fi
    [ "$(printf '%s\n' "$out" | grep -c "^error: program \`missing\` attaches to nobtf_no_such_function, which cannot be probed: it is not in /proc/kallsyms (misspelt, inlined, or not built)")" = "$explained" ] \
        || { printf '%s\n' "$out" >&2; fail "expected the kallsyms explanation for each attach mode the kernel has"; return 1; }
    assert_contains "$out" "== left 0"
}

# map_flags reach the kernel (a hash map with BPF_F_NO_PREALLOC), and a
# non-GPL license goes to the kernel as written: the verifier refuses its
# GPL-only helper, and the error says why.
vmtest_legacy_map_flags_and_license_go_to_the_kernel() {
    if ! kernel_has_bpf; then legacy_refused_without_bpf; return; fi
    legacy_build || return
    cat >"$TEST_TMP/not_gpl.bpf.c" <<'EOC'
#define SEC(name) __attribute__((section(name), used))
static long (*bpf_probe_read)(void *dst, int size, const void *src) = (void *)4;
SEC("kprobe/do_unlinkat")
int not_gpl(void *ctx)
{
	long x = 0;
	bpf_probe_read(&x, sizeof(x), ctx);
	return x;
}
char _license[] SEC("license") = "Proprietary";
EOC
    clang -target bpf -O2 -g0 -c "$TEST_TMP/not_gpl.bpf.c" -o "$TEST_TMP/not_gpl.o" || { fail "clang failed"; return 1; }
    local out
    out=$(vm --file "$TEST_TMP/obj/two_in_one.o:/tmp/two.o" --file "$TEST_TMP/not_gpl.o:/tmp/not_gpl.o" -- sh -c "
        nobtf load /tmp/two.o -c true 2>&1; echo \"== two rc=\$?\"
        nobtf load /tmp/not_gpl.o -c true 2>&1; echo \"== not_gpl rc=\$?\"") || return 1
    assert_contains "$out" "== two rc=0" \
        && assert_match "$out" '^nobtf: attached first \(kprobe/vfs_read\), second \(kprobe/vfs_read\) by ' \
        && assert_contains "$out" "== not_gpl rc=1" \
        && assert_match "$out" "^error: the kernel's verifier rejected program \`not_gpl\` \\(.*\\): the license is \"Proprietary\": GPL-only helpers need a GPL-compatible license\$"
}
