# The release binaries as they ship: one static file each, under the
# issue's goal of 2 MB (2,000,000 bytes) for every architecture.
MAX_BINARY_BYTES=2000000
# shellcheck shell=bash

hosttest_release_binaries_are_static_and_small() {
    build_static nobtf offsets || return 1
    local dir bin size
    dir=$(static_binary_dir x86_64)
    for bin in nobtf offsets; do
        # No program interpreter and no dynamic section: nothing to load at exec.
        local headers
        headers=$(readelf -lW "$dir/$bin") || return 1
        if grep -q -e INTERP -e DYNAMIC <<<"$headers"; then
            fail "$bin has a program interpreter or dynamic section: $(grep -e INTERP -e DYNAMIC <<<"$headers")"
            return 1
        fi
    done
    for bin in nobtf offsets; do
        size=$(stat -c %s "$dir/$bin")
        echo "x86_64 $bin: $size bytes" >&2
        [ "$size" -lt "$MAX_BINARY_BYTES" ] || fail "x86_64 $bin is $size bytes, over the goal of $MAX_BINARY_BYTES" || return 1
    done
}

# The same for the ARM builds (scripts/build --arch), each checked to be of
# its architecture: nobtf and offsets both under the 2 MB goal.
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
            [ "$size" -lt "$MAX_BINARY_BYTES" ] || fail "$arch $bin is $size bytes, over the goal of $MAX_BINARY_BYTES" || return 1
        done
    done
}
