# nobtf load: the seed's programs as users have them on disk
# (bpf-object/testdata, built by tests/c/build.sh as libbpf-bootstrap builds
# them: libbpf-dev's bpf_helpers.h, bpf_printk formats in .rodata,
# bpf_probe_read_kernel), in one VM boot per kernel:
# - seed_kprobe.o (no CO-RE) prints its two lines on 5.4 and later: .rodata
#   as a global data map (5.2+), bpf_probe_read before 5.5. On 4.14 it loads
#   with its formats copied to the stack; its do_unlinkat takes a user path
#   there, so the entry line's refcnt and filename are not a filename's.
# - seed_core.o (CO-RE) resolves its fields from the kernel's BTF where there
#   is one, else from the builtin profile (4.19+: nobtf-5.10, linux-5.4), and
#   on nobtf-5.10 also from a profile `offsets gen --fields-from` made; on
#   4.14 (no BTF, no builtin profile) it is refused in one line.
# - seed_core_btf.o: the same source built against the vmlinux.h bpftool
#   dumps from debian-6.1's BTF (tests/c/vmlinux-h.sh), as users build CO-RE
#   objects; the same cases and lines as seed_core.o (x86-64: that header
#   is an x86-64 kernel's).
# - On ARM the objects are built for the kernel's architecture: both print
#   their lines; seed_core.o's registers are register array elements there
#   (see seed_core_prints_lines_on_arm).
# shellcheck shell=bash

kernel_has_global_data() { [ "$KERNEL" != linux-4.14 ]; }  # 5.2

# The VM-side script: each case removes /tmp/a.txt from a shell that execs
# rm (so its pid is known) and prints a header with nobtf's status and that
# pid, then nobtf's stdout and stderr; finally what is left in kprobe_events.
# Case: name, object, then nobtf's extra arguments.
seed_script() {
    cat <<'EOF2'
T=$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )
case_() {
    name=$1; obj=$2; shift 2
    touch /tmp/a.txt
    rm -f /tmp/rmpid
    env -u NOBTF_OFFSETS nobtf load "/tmp/$obj.o" -v "$@" \
        -c 'echo "RMPID=$$" >/tmp/rmpid; exec rm /tmp/a.txt' >/tmp/out 2>/tmp/err
    echo "== case=$name rc=$? $(cat /tmp/rmpid 2>/dev/null || echo RMPID=none)"
    cat /tmp/out
    sed 's/^/stderr: /' /tmp/err
}
case_ kprobe seed_kprobe
case_ core seed_core
if [ -e /tmp/seed_core_btf.o ]; then
    case_ core_btf seed_core_btf
fi
if [ -e /tmp/p.toml ]; then
    case_ core_profile seed_core --offsets /tmp/p.toml
    case_ core_btf_profile seed_core_btf --offsets /tmp/p.toml
fi
echo "== left"
grep nobtf "$T/kprobe_events" || true
EOF2
}

# The block of case NAME passes: status 0, the entry line (ENTRY: what
# follows `refcnt=`) and the exit line from rm's pid, both programs attached.
seed_prints_lines() {
    local out=$1 name=$2 entry=$3 header block pid
    header=$(printf '%s\n' "$out" | grep "^== case=$name ") || { fail "no case $name"; return 1; }
    block=$(output_block "$out" "$header")
    assert_match "$header" ' rc=0 ' || { printf '%s\n' "$block" >&2; return 1; }
    pid=${header##*RMPID=}
    # The trace shows comm as <...> when its comm cache missed the process.
    assert_match "$block" "^ *(rm|<\\.\\.\\.>)-$pid +\\[[0-9]+\\] .*: KPROBE ENTRY pid = $pid, refcnt=$entry\$" \
        && assert_match "$block" "^ *(rm|<\\.\\.\\.>)-$pid +\\[[0-9]+\\] .*: KPROBE EXIT: pid = $pid, ret = 0\$" \
        && assert_match "$block" "^stderr: nobtf: attached do_unlinkat \\(kprobe/do_unlinkat\\), do_unlinkat_exit \\(kretprobe/do_unlinkat\\) by " \
        || { printf '%s\n' "$block" >&2; return 1; }
    # -v: where .rodata went, and the helper fallback before 5.5.
    if kernel_has_global_data; then
        assert_contains "$block" "stderr: nobtf: do_unlinkat: 1 reference(s) to .rodata use its global data map" \
            && assert_contains "$block" "stderr: nobtf: do_unlinkat_exit: 1 reference(s) to .rodata use its global data map" \
            || return 1
    else
        assert_match "$block" "^stderr: nobtf: do_unlinkat: 47 bytes of \\.rodata\\+0 copied to the stack at r10-[0-9]+ by [0-9]+ store\\(s\\) \\(no global data maps before 5\\.2\\)\$" \
            || return 1
    fi
    if ! kernel_has_probe_read_kernel; then
        assert_contains "$block" "stderr: nobtf: do_unlinkat: 2 call(s) to bpf_probe_read_kernel now call bpf_probe_read (this kernel lacks the former)" \
            || return 1
    else
        assert_not_contains "$block" "now call bpf_probe_read" || return 1
    fi
    printf '%s\n' "$block"
}

# Case NAME of a CO-RE object on 4.14: refused in one line.
seed_core_refused() {
    local out=$1 name=$2 header obj block
    header=$(printf '%s\n' "$out" | grep "^== case=$name ") || { fail "no case $name"; return 1; }
    obj=/tmp/seed_core${name#core}.o
    block=$(output_block "$out" "$header")
    assert_match "$header" ' rc=1 ' \
        && assert_eq "$block" "stderr: error: $obj has CO-RE relocations (fields filename.name, filename.refcnt) and this kernel has neither BTF (/sys/kernel/btf/vmlinux) nor a builtin offsets profile: generate one with \`offsets gen --fields-from $obj ...\` and pass it with --offsets FILE"
}

# The CO-RE object on ARM: BPF_KPROBE reads the arguments as elements of
# the register array (user_pt_regs.regs on arm64, pt_regs.uregs on arm),
# answered by the architecture; struct filename from arm64's BTF, or on
# armhf (no BTF) from the builtin 32-bit profile, whose refcnt is not where
# the object (built with BPF's 8-byte pointers) had it.
seed_core_prints_lines_on_arm() {
    local out=$1 block regs=user_pt_regs.regs
    [ "$(kernel_arch "$KERNEL")" = armv7 ] && regs=pt_regs.uregs
    block=$(seed_prints_lines "$out" core '1 filename = /tmp/a.txt') || return 1
    assert_match "$block" "^stderr: nobtf: do_unlinkat: instruction 0: byte offset of ${regs//./\\.}\\[1\\] is [0-9]+ \\(the object had [0-9]+\\)\$" \
        && assert_match "$block" "^stderr: nobtf: do_unlinkat_exit: instruction 0: byte offset of ${regs//./\\.}\\[0\\] is 0 \\(the object had 0\\)\$" \
        && assert_match "$block" "^stderr: nobtf: do_unlinkat: instruction [0-9]+: byte offset of filename\\.name is 0 \\(the object had 0\\)\$" \
        || return 1
    if kernel_has_btf; then
        assert_contains "$block" "stderr: nobtf: CO-RE fields from the kernel's BTF (/sys/kernel/btf/vmlinux)"
    else
        local refcnt
        refcnt=$(printf '%s\n' "$block" | sed -n 's/^stderr: nobtf: do_unlinkat: instruction [0-9]*: byte offset of filename\.refcnt is \([0-9]*\) (the object had \([0-9]*\))$/\1 \2/p')
        assert_match "$refcnt" '^[0-9]+ [0-9]+$' \
            && [ "${refcnt% *}" != "${refcnt#* }" ] \
            || { fail "filename.refcnt kept the object's offset: $refcnt"; return 1; }
        assert_contains "$block" "stderr: nobtf: CO-RE fields from offsets profile builtin"
    fi
}

# Case NAME (and NAME_profile on nobtf-5.10) of a CO-RE object: its lines,
# and every CO-RE relocation named with its answer (pt_regs from the
# architecture) and where the fields came from.
seed_core_prints_lines() {
    local out=$1 name=$2 block
    block=$(seed_prints_lines "$out" "$name" '1 filename = /tmp/a.txt') || return 1
    assert_contains "$block" "stderr: nobtf: do_unlinkat: instruction 0: byte offset of pt_regs.si is 104 (the object had 104)" \
        && assert_contains "$block" "stderr: nobtf: do_unlinkat_exit: instruction 0: byte offset of pt_regs.ax is 80 (the object had 80)" \
        && assert_match "$block" "^stderr: nobtf: do_unlinkat: instruction [0-9]+: byte offset of filename\\.name is 0 \\(the object had 0\\)\$" \
        && assert_match "$block" "^stderr: nobtf: do_unlinkat: instruction [0-9]+: byte offset of filename\\.refcnt is 16 \\(the object had 16\\)\$" \
        || return 1
    if kernel_has_btf; then
        assert_contains "$block" "stderr: nobtf: CO-RE fields from the kernel's BTF (/sys/kernel/btf/vmlinux)" || return 1
    else
        assert_contains "$block" "stderr: nobtf: CO-RE fields from offsets profile builtin" || return 1
    fi
    if [ "$KERNEL" = nobtf-5.10 ]; then
        block=$(seed_prints_lines "$out" "${name}_profile" '1 filename = /tmp/a.txt') || return 1
        assert_contains "$block" "stderr: nobtf: CO-RE fields from offsets profile /tmp/p.toml" || return 1
    fi
}

vmtest_seed_programs_load_as_written() {
    # Without bpf(2): nobtf load's one-line refusal (tests/vm/legacy.sh).
    if ! kernel_has_bpf; then legacy_refused_without_bpf; return; fi
    local header name cores=(core)
    local files=(--file "$TEST_TMP/seed.sh:/tmp/seed.sh"
        --file "$TEST_TMP/obj/seed_kprobe.o:/tmp/seed_kprobe.o"
        --file "$TEST_TMP/obj/seed_core.o:/tmp/seed_core.o")
    if [ "$(kernel_arch "$KERNEL")" = x86_64 ]; then
        # The header users dump with bpftool from a kernel with BTF (debian-6.1's).
        ensure_kernel debian-6.1
        header=$(bash "$NOBTF_ROOT/tests/c/vmlinux-h.sh" "$(kernel_bzimage debian-6.1)") \
            || { fail "tests/c/vmlinux-h.sh could not make debian-6.1's vmlinux.h"; return 1; }
        legacy_build "$header" || return
        files+=(--file "$TEST_TMP/obj/seed_core_btf.o:/tmp/seed_core_btf.o")
        cores+=(core_btf)
    else
        # That header is an x86-64 kernel's: the ARM objects are built
        # against the hand-made one only.
        legacy_build || return
    fi
    seed_script >"$TEST_TMP/seed.sh"
    if [ "$KERNEL" = nobtf-5.10 ]; then
        # The profile a user makes for the object: from the kernel's DWARF,
        # with exactly the fields the object's relocations read.
        (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
        "$NOBTF_ROOT/target/release/offsets" gen --vmlinux "$KERNELS_DIR/nobtf-5.10/vmlinux" \
            --fields-from "$TEST_TMP/obj/seed_core.o" -o "$TEST_TMP/p.toml" || { fail "offsets gen failed"; return 1; }
        files+=(--file "$TEST_TMP/p.toml:/tmp/p.toml")
    fi
    local out block
    out=$(vm --timeout 300 "${files[@]}" -- sh /tmp/seed.sh) || {
        printf '%s\n' "$out" >&2
        fail "the VM script failed"
        return 1
    }
    if [ "$(kernel_arch "$KERNEL")" != x86_64 ]; then
        seed_prints_lines "$out" kprobe '1 filename = /tmp/a.txt' >/dev/null || return 1
        seed_core_prints_lines_on_arm "$out" || return 1
    elif kernel_passes_user_path; then
        # 4.14: the path is a user pointer; the line comes, its values are not a filename's.
        block=$(seed_prints_lines "$out" kprobe '-?[0-9]+ filename =.*') || return 1
        for name in "${cores[@]}"; do
            seed_core_refused "$out" "$name" || return 1
        done
    else
        seed_prints_lines "$out" kprobe '1 filename = /tmp/a.txt' >/dev/null || return 1
        for name in "${cores[@]}"; do
            seed_core_prints_lines "$out" "$name" || return 1
        done
    fi
    # Everything nobtf created is gone.
    assert_eq "$(printf '%s\n' "$out" | sed -n '/^== left/,$p' | tail -n +2)" ""
}
