# End to end: a profile made for the kernel under test drives the unlink
# probes in a VM, and nobtf demonstrably reads it: the same profile with one
# fact broken is refused by the canary, naming that file and that fact.
# Where it comes from: generated on the host from the source tree nobtf-5.10
# and nobpf-5.10 are built from (each with its own .config); generated in the VM from the kernel's own BTF
# (/sys/kernel/btf/vmlinux) on the BTF kernels; written from facts on
# linux-4.14 (tests/profiles/); on linux-5.4, with neither tree nor BTF, the
# facts of the reference (name +0, refcnt +16), written here; on
# debian-6.1-armhf the 32-bit ones (name +0, refcnt +8).
# shellcheck shell=bash

# The profile's text with one fact broken: refcnt moved 4 bytes on, or for
# a user-path profile (4.14) the path taken for a struct filename.
offsets_broken() {
    if grep -q '^name_arg_type = "const char __user \*"' "$1"; then
        sed 's/^name_arg_type = .*/name_arg_type = "struct filename *"/' "$1"
    else
        awk '/^\[fields\."filename\.refcnt"\]/ { on = 1 } on && /^offset = / { $3 = $3 + 4; on = 0 } { print }' "$1"
    fi
}

vmtest_offsets_profile_drives_run() {
    local how profile=$TEST_TMP/profile.toml
    case $KERNEL in
        nobtf-5.10|nobpf-5.10)
            local src
            (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
            src=$(fetch_linux_source 5.10 bullseye)
            "$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src" \
                --config "$KERNELS_DIR/$KERNEL/config" --build-dir "$TEST_TMP/build" \
                -o "$profile" || return 1
            how=host ;;
        linux-4.14)
            cp "$(kernel_profile)" "$profile"
            how=host ;;
        linux-5.4)
            reliability_profile 5.4.286 0 16 >"$profile"
            how=host ;;
        *-armhf)
            # No BTF, no DWARF shipped: the 32-bit layout, written here.
            reliability_profile "$(kernel_release "$KERNEL")" 0 "$(kernel_refcnt_offset)" >"$profile"
            how=host ;;
        *)
            how=btf ;;
    esac
    cat >"$TEST_TMP/offsets.sh" <<'EOF'
if [ "$1" = btf ]; then
    offsets gen --btf /sys/kernel/btf/vmlinux --release "$(uname -r)" -o /tmp/p.toml || exit 1
fi
echo "== profile"; cat /tmp/p.toml
sh /tmp/broken.sh /tmp/p.toml >/tmp/broken.toml
for p in p broken; do
    touch /tmp/a.txt
    env -u NOBTF_OFFSETS nobtf run unlink --offsets /tmp/$p.toml --count 2 -c "rm /tmp/a.txt" 2>&1
    echo "== $p rc=$?"
done
EOF
    # The VM has busybox only: the breaking is done there by the same sed/awk.
    { echo 'f=$1'; declare -f offsets_broken; echo 'offsets_broken "$f"'; } >"$TEST_TMP/broken.sh"
    local files=(--file "$TEST_TMP/offsets.sh:/tmp/offsets.sh" --file "$TEST_TMP/broken.sh:/tmp/broken.sh")
    [ "$how" = host ] && files+=(--file "$profile:/tmp/p.toml")
    local out
    out=$(vm "${files[@]}" -- sh /tmp/offsets.sh "$how" 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    local good broken fact
    # The profile as the VM had it, then the run with it.
    good=$(output_block "$out" "== profile")
    broken=$(output_block "$out" "== p rc=0")
    assert_contains "$good" '[functions.do_unlinkat]' \
        && assert_match "$good" 'KPROBE ENTRY pid = [0-9]+, filename = /tmp/a.txt$' \
        && assert_match "$good" '^nobtf: canary passed: ' \
        && assert_contains "$out" "== p rc=0" || return 1
    if kernel_passes_user_path; then
        fact='filename.name \(offset 0\) read ".*", expected "/tmp/\.nobtf-canary-'
    else
        fact="filename.refcnt \\(offset $(($(kernel_refcnt_offset) + 4))\\) read -?[0-9]+, expected 1;"
    fi
    assert_match "$broken" "^error: the offsets profile \\(/tmp/broken.toml\\) does not fit this kernel: $fact" \
        && assert_contains "$out" "== broken rc=1" \
        && assert_not_contains "$broken" "KPROBE"
}
