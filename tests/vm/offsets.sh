# End to end: a profile generated on the host from the 5.10 source tree
# drives the unlink probes on the nobtf-5.10 kernel (no BTF) in a VM.
# shellcheck shell=bash

vmtest_offsets_profile_drives_run() {
    [ "$KERNEL" = nobtf-5.10 ] || { skip "the profile is generated from the nobtf-5.10 tree"; return; }
    local src out
    (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
    src=$(fetch_linux_source 5.10 bullseye)
    "$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src" \
        --config "$KERNELS_DIR/nobtf-5.10/config" --build-dir "$TEST_TMP/build" \
        -o "$TEST_TMP/profile.toml" || return 1
    out=$(vm --file "$TEST_TMP/profile.toml:/tmp/p.toml" -- \
        sh -c 'touch /tmp/a.txt && nobtf run unlink --offsets /tmp/p.toml --count 2 -c "rm /tmp/a.txt"' 2>&1)
    assert_contains "$out" "filename = /tmp/a.txt"
}
