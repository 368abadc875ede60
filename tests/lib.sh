# Assertions and the `vm` helper for tests/vm/*.sh and tests/host/*.sh.
# A test function returns 0 (pass), 1 (fail: say why on stderr) or 77 (skip: say why).
# shellcheck shell=bash

SKIP=77

fail() { printf '%s\n' "$*" >&2; return 1; }
skip() { printf 'skipped: %s\n' "$*" >&2; return $SKIP; }

assert_contains() {
    case $1 in *"$2"*) return 0 ;; esac
    printf 'expected to find: %s\n--- in:\n%s\n---\n' "$2" "$1" >&2
    return 1
}

assert_not_contains() {
    case $1 in *"$2"*) printf 'expected NOT to find: %s\n--- in:\n%s\n---\n' "$2" "$1" >&2; return 1 ;; esac
    return 0
}

assert_match() {
    # A here-string, not a pipe: under pipefail grep -q's early exit can
    # SIGPIPE printf and fail a matching assertion (it did, once, in CI).
    grep -Eq -- "$2" <<<"$1" && return 0
    printf 'expected a line matching: %s\n--- in:\n%s\n---\n' "$2" "$1" >&2
    return 1
}

assert_eq() {
    [ "$1" = "$2" ] && return 0
    printf 'expected: %s\n     got: %s\n' "$2" "$1" >&2
    return 1
}

# The lines of a VM script's OUTPUT that follow the line HEADER, up to the
# next "== " header: one case of a script that runs several.
output_block() {
    printf '%s\n' "$1" | awk -v h="$2" '$0 == h { on = 1; next } /^== / { on = 0 } on'
}

# The offsets profile the kernel under test needs (no builtin one fits
# before 4.19; linux-5.4's, generated from its tree, holds the fields the
# corpus tools read beyond the builtin profile's), or nothing.
kernel_profile() {
    case $KERNEL in
        linux-4.14) printf '%s\n' "$NOBTF_ROOT/tests/profiles/linux-4.14.toml" ;;
        linux-5.4) printf '%s\n' "$NOBTF_ROOT/tests/profiles/linux-5.4.toml" ;;
    esac
}

# Run a command in a VM of the kernel under test (scripts/vm options first,
# then -- CMD). Where the kernel needs a profile, the VM has it at
# /etc/nobtf/profile.toml and CMD runs with NOBTF_OFFSETS pointing there, as
# a user of that kernel would set it up; a test that asks for no profile
# runs `env -u NOBTF_OFFSETS nobtf ...`.
vm() {
    local opts=() profile
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        opts+=("$1")
        shift
    done
    shift
    profile=$(kernel_profile)
    if [ -n "$profile" ]; then
        "$NOBTF_ROOT/scripts/vm" --kernel "$KERNEL" ${opts[@]+"${opts[@]}"} \
            --file "$profile:/etc/nobtf/profile.toml" -- env NOBTF_OFFSETS=/etc/nobtf/profile.toml "$@"
    else
        "$NOBTF_ROOT/scripts/vm" --kernel "$KERNEL" ${opts[@]+"${opts[@]}"} -- "$@"
    fi
}

# vm_trace_case OUT NAME [RC]: the output of case NAME that
# vm_trace_case_runner's `t` printed into OUT; its header must say rc=RC (0).
vm_trace_case() {
    local header rc=${3:-0}
    header=$(printf '%s\n' "$1" | grep "^== $2 rc=") || { fail "no case $2"; return 1; }
    [ "$header" = "== $2 rc=$rc" ] || { output_block "$1" "$header" >&2; fail "case $2: $header, expected rc=$rc"; return 1; }
    output_block "$1" "$header"
}

# The VM side's case runner, printed at the top of a VM script: `t NAME
# ARGS...` runs `nobtf trace ARGS` and prints `== NAME rc=STATUS`, its
# stdout, then its stderr with each line prefixed `stderr: `.
vm_trace_case_runner() {
    cat <<'EOF'
t() {
    name=$1
    shift
    nobtf trace "$@" >/tmp/out 2>/tmp/err
    echo "== $name rc=$?"
    cat /tmp/out
    sed 's/^/stderr: /' /tmp/err
}
EOF
}

# Kernel facts the VM tests branch on, from what the kernel is.
kernel_has_pmu() { [ "$KERNEL" != linux-4.14 ]; }            # the kprobe PMU: 4.17
# do_unlinkat(int, const char __user *): 4.14 and older.
kernel_passes_user_path() { [ "$KERNEL" = linux-4.14 ]; }
# bpf(2): all but nobpf-5.10, built without it for the tracefs back end.
kernel_has_bpf() { [ "$KERNEL" != nobpf-5.10 ]; }
# kprobe_multi links (5.18+ with CONFIG_FPROBE, 64-bit): debian-6.12 (the
# debian-6.1 kernel here refuses the link: EOPNOTSUPP, no CONFIG_FPROBE).
kernel_has_kprobe_multi() { [ "$KERNEL" = debian-6.12 ]; }
kernel_has_probe_read_kernel() { case $KERNEL in linux-*) return 1 ;; esac; }  # 5.5
# The BPF ring buffer: 5.8; nobtf keeps the perf rings on 32-bit ARM.
kernel_has_ring_buffer() { case $KERNEL in linux-* | debian-6.1-armhf) return 1 ;; esac; }

# Architecture facts where expectations differ (scripts/lib/cross.sh maps
# kernel names to architectures): the profile's `arch`, the pointer size,
# where struct filename's refcnt is (name, uptr, refcnt: pointers first),
# and the pt_regs names of do_unlinkat's path argument and return value.
kernel_profile_arch() {
    case $(kernel_arch "$KERNEL") in
        aarch64) echo aarch64 ;;
        armv7) echo arm ;;
        *) echo x86_64 ;;
    esac
}
kernel_pointer_size() { [ "$(kernel_profile_arch)" = arm ] && echo 4 || echo 8; }
kernel_refcnt_offset() { echo $((2 * $(kernel_pointer_size))); }
kernel_name_register() { [ "$(kernel_profile_arch)" = x86_64 ] && echo si || echo r1; }
kernel_return_register() { [ "$(kernel_profile_arch)" = x86_64 ] && echo ax || echo r0; }
# The BTF-less kernels.
kernel_has_btf() { case $KERNEL in nobtf-*|nobpf-*|linux-*|*-armhf) return 1 ;; esac; }
# bpf_get_current_task_btf (5.11) on a kernel with BTF: the unlink probes
# read the comm through it.
kernel_has_task_btf() { kernel_has_btf && [ "$KERNEL" != debian-5.10 ]; }

# The tracefs directory inside the VM, for shell snippets run there.
# shellcheck disable=SC2016
VM_TRACEFS='$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )'
