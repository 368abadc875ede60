# The release binaries as they ship: one static file each, nobtf under 2 MB.
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
    [ "$size" -lt 2000000 ] || fail "nobtf is $size bytes, over the 2 MB goal"
}

# The same for the ARM builds (scripts/build --arch), each checked to be of
# its architecture: offsets too stays under 2 MB there.
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
            [ "$size" -lt 2000000 ] || fail "$arch $bin is $size bytes, over 2 MB" || return 1
        done
    done
}
