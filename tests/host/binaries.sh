# The release binaries as they ship: one static file each, under 2.5 MB.
# The goal was 2 MB until nobtf carried the trace language (compiler and
# bpftrace's printers, ~0.14 MB), the BPF object rewriter and the BTF reader:
# x86-64 nobtf went from 1.93 to 2.35 MB. What is left is mostly static
# glibc (~0.8 MB), clap (~0.2 MB) and std's backtrace printer (~0.17 MB).
MAX_BINARY_BYTES=2500000
# shellcheck shell=bash

hosttest_release_binaries_are_static_and_small() {
    build_static nobtf offsets || return 1
    local dir=$NOBTF_ROOT/target/x86_64-unknown-linux-gnu/release bin size
    for bin in nobtf offsets; do
        # No program interpreter and no dynamic section: nothing to load at exec.
        local headers
        headers=$(readelf -lW "$dir/$bin") || return 1
        if grep -q -e INTERP -e DYNAMIC <<<"$headers"; then
            fail "$bin has a program interpreter or dynamic section: $(grep -e INTERP -e DYNAMIC <<<"$headers")"
            return 1
        fi
    done
    size=$(stat -c %s "$dir/nobtf")
    echo "nobtf: $size bytes" >&2
    [ "$size" -lt "$MAX_BINARY_BYTES" ] || fail "nobtf is $size bytes, over the 2.5 MB goal"
}

# The same for the ARM builds (scripts/build --arch), each checked to be of
# its architecture: offsets too stays under the goal there.
hosttest_arm_binaries_are_static_small_and_of_their_architecture() {
    local arch dir bin size headers machine
    for arch in aarch64 armv7; do
        build_static_arch "$arch" nobtf offsets || return 1
        dir=$(static_binary_dir "$arch")
        machine=AArch64
        [ "$arch" = armv7 ] && machine=ARM
        for bin in nobtf offsets; do
            headers=$(readelf -hlW "$dir/$bin") || return 1
            if grep -q -e INTERP -e DYNAMIC <<<"$headers"; then
                fail "$arch $bin has a program interpreter or dynamic section"
                return 1
            fi
            assert_match "$headers" "Machine: +$machine\$" || return 1
            size=$(stat -c %s "$dir/$bin")
            echo "$arch $bin: $size bytes" >&2
            [ "$size" -lt "$MAX_BINARY_BYTES" ] || fail "$arch $bin is $size bytes, over 2.5 MB" || return 1
        done
    done
}
