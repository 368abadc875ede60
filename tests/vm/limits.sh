# The instruction limit is the kernel's: a `nobtf trace` program of some
# 5,000 instructions (more than the 4096 kernels before 5.2 take) loads and
# runs on a 5.2+ kernel, and is refused in one line, before loading, on
# linux-4.14.
# shellcheck shell=bash

vmtest_limits_large_program() {
    kernel_has_bpf || { skip "$KERNEL has no bpf(2)"; return; }
    local body="" i
    for ((i = 0; i < 400; i++)); do body+="@m[$i] = $i; "; done
    printf 'kprobe:do_unlinkat /comm == "rm"/ { %s}\n' "$body" >"$TEST_TMP/large.bt"
    local out
    out=$(vm --file "$TEST_TMP/large.bt:/tmp/large.bt" -- \
        sh -c 'touch /tmp/l1; nobtf trace /tmp/large.bt -c "rm /tmp/l1" 2>&1; echo "rc=$?"') \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    if [ "$KERNEL" = linux-4.14 ]; then
        assert_match "$out" '^error: .*probe `kprobe:do_unlinkat` compiles to [0-9]+ BPF instructions; this kernel accepts at most 4096' \
            && assert_eq "$(grep -c . <<<"$out")" 2 \
            && assert_contains "$out" "rc=1"
    else
        assert_contains "$out" "@m[0]: 0" \
            && assert_contains "$out" "@m[399]: 399" \
            && assert_contains "$out" "rc=0"
    fi
}
