# Host integration tests of `offsets gen` on real kernel trees (minutes each:
# they fetch sources and images once, then prepare a fresh O= dir).
# shellcheck shell=bash

offsets_bin() {
    (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) >&2 || return 1
    printf '%s\n' "$NOBTF_ROOT/target/release/offsets"
}

# The tree nobtf-5.10 is built from, with that build's config, against the
# DWARF of the vmlinux it produced.
hosttest_offsets_src_5_10_equals_vmlinux() {
    local off src start
    off=$(offsets_bin) || return 1
    ensure_kernel nobtf-5.10
    src=$(fetch_linux_source 5.10 bullseye)
    start=$SECONDS
    "$off" gen --kernel-src "$src" --config "$KERNELS_DIR/nobtf-5.10/config" \
        --build-dir "$TEST_TMP/build" -o "$TEST_TMP/src.toml" || return 1
    echo "offsets gen --kernel-src on a pristine 5.10 tree: $((SECONDS - start)) s" >&2
    [ -z "$(ls -A "$src/include/generated" 2>/dev/null)" ] || fail "the source tree was written to" || return 1
    "$off" gen --vmlinux "$KERNELS_DIR/nobtf-5.10/vmlinux" -o "$TEST_TMP/vmlinux.toml" || return 1
    local out
    out=$("$off" diff "$TEST_TMP/src.toml" "$TEST_TMP/vmlinux.toml") || { fail "$out"; return 1; }
    assert_contains "$(cat "$TEST_TMP/src.toml")" 'decided_by = "type-check"' || return 1
    assert_contains "$(cat "$TEST_TMP/vmlinux.toml")" 'offset = 16' || return 1
    # A second run reuses the prepared dir.
    start=$SECONDS
    "$off" gen --kernel-src "$src" --build-dir "$TEST_TMP/build" -o "$TEST_TMP/again.toml" 2>"$TEST_TMP/err" || return 1
    assert_contains "$(cat "$TEST_TMP/err")" reusing || return 1
    echo "offsets gen --kernel-src on the prepared dir: $((SECONDS - start)) s" >&2
}

# Debian's linux-source-6.1 with the config of Debian's 6.1 image, against
# the BTF in that image (also some extra fields, to compare more than two).
hosttest_offsets_src_6_1_equals_btf() {
    local off src image_ver tree_ver fields=(--field task_struct.pid --field task_struct.se.vruntime
        --field inode.i_ino --field file.f_inode --field mm_struct.arg_start)
    off=$(offsets_bin) || return 1
    ensure_kernel debian-6.1
    src=$(fetch_linux_source 6.1 bookworm)
    "$src/scripts/extract-vmlinux" "$KERNELS_DIR/debian-6.1/bzImage" >"$TEST_TMP/vmlinux" \
        || fail "extract-vmlinux could not decompress the debian-6.1 bzImage" || return 1
    # The image and the source package are built from the same Debian version?
    image_ver=$(grep -a -o -m1 'Debian 6\.1\.[0-9]*' "$TEST_TMP/vmlinux" | head -n1 | cut -d' ' -f2)
    tree_ver=$(make -s -C "$src" kernelversion 2>/dev/null)
    echo "debian-6.1 image: $image_ver, linux-source-6.1: $tree_ver" >&2
    "$off" gen --btf "$TEST_TMP/vmlinux" "${fields[@]}" -o "$TEST_TMP/btf.toml" || return 1
    "$off" gen --kernel-src "$src" --config "$KERNELS_DIR/debian-6.1/config" \
        --build-dir "$TEST_TMP/build" "${fields[@]}" -o "$TEST_TMP/src.toml" || return 1
    local out
    out=$("$off" diff "$TEST_TMP/src.toml" "$TEST_TMP/btf.toml") || { fail "$out"; return 1; }
    assert_contains "$(cat "$TEST_TMP/btf.toml")" 'name_arg_type = "struct filename *"'
}

# The same for arm64: linux-source-6.1 built for ARCH=arm64 with the cross
# gcc (offsets gen --arch arm64 sets the kernel's CROSS_COMPILE), with the
# config of Debian's arm64 image, against that image's BTF. The image is a
# raw Image, not an ELF: its .BTF is found by the BTF header's first bytes.
hosttest_offsets_src_6_1_arm64_equals_btf() {
    local off src at fields=(--field task_struct.pid --field inode.i_ino --field file.f_inode)
    off=$(offsets_bin) || return 1
    install_packages --no-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross
    ensure_kernel debian-6.1-arm64
    src=$(fetch_linux_source 6.1 bookworm)
    # magic 0xeb9f, version 1, flags 0, header length 24
    at=$(LC_ALL=C grep -obUaP -m1 '\x9f\xeb\x01\x00\x18\x00\x00\x00' "$KERNELS_DIR/debian-6.1-arm64/bzImage" | head -n1 | cut -d: -f1)
    [ -n "$at" ] || fail "no BTF header in the debian-6.1-arm64 Image" || return 1
    tail -c +"$((at + 1))" "$KERNELS_DIR/debian-6.1-arm64/bzImage" >"$TEST_TMP/btf"
    "$off" gen --btf "$TEST_TMP/btf" --arch arm64 --release "$(kernel_release debian-6.1-arm64)" \
        "${fields[@]}" -o "$TEST_TMP/btf.toml" || return 1
    "$off" gen --kernel-src "$src" --arch arm64 --config "$KERNELS_DIR/debian-6.1-arm64/config" \
        --build-dir "$TEST_TMP/build" "${fields[@]}" -o "$TEST_TMP/src.toml" || return 1
    local out
    out=$("$off" diff "$TEST_TMP/src.toml" "$TEST_TMP/btf.toml") || { fail "$out"; return 1; }
    assert_contains "$(cat "$TEST_TMP/src.toml")" 'arch = "aarch64"' \
        && assert_contains "$(cat "$TEST_TMP/btf.toml")" 'name_arg_type = "struct filename *"'
}

# 32-bit ARM: linux-source-6.1 built for ARCH=arm with the armmp image's
# config (no BTF, no DWARF shipped to compare with) must give the builtin
# 32-bit layout, which the VM tests run with on that kernel.
hosttest_offsets_src_6_1_armhf_equals_builtin() {
    local off src
    off=$(offsets_bin) || return 1
    install_packages --no-recommends gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    ensure_kernel debian-6.1-armhf
    src=$(fetch_linux_source 6.1 bookworm)
    "$off" gen --kernel-src "$src" --arch armhf --config "$KERNELS_DIR/debian-6.1-armhf/config" \
        --build-dir "$TEST_TMP/build" -o "$TEST_TMP/src.toml" || return 1
    local text
    text=$(cat "$TEST_TMP/src.toml")
    assert_contains "$text" 'arch = "arm"' \
        && assert_contains "$text" $'[fields."filename.name"]\noffset = 0\nsize = 4' \
        && assert_contains "$text" $'[fields."filename.refcnt"]\noffset = 8\nsize = 4' \
        && assert_contains "$text" $'name_arg = 2\nname_arg_type = "struct filename *"'
}

# A copy of Debian's linux-source-VERSION configured in place with
# `make [MAKE_ARGS...] TARGET`, as a user's or a vendor's tree is delivered:
# `offsets gen --kernel-src TREE` (no --config, no --arch: the tree's own)
# must use it as it is, leave its .config alone and nothing of its own
# behind, and give the profile the pristine path gives for that config.
offsets_in_place_equals_pristine() {
    local version=$1 suite=$2 target=$3 off src tree sum out
    shift 3
    off=$(offsets_bin) || return 1
    src=$(fetch_linux_source "$version" "$suite")
    tree=$TEST_TMP/tree
    cp -a "$src" "$tree"
    make -s -C "$tree" "$@" "$target" >/dev/null || fail "make $target failed" || return 1
    sum=$(sha256sum <"$tree/.config")
    "$off" gen --kernel-src "$tree" -o "$TEST_TMP/in-place.toml" 2>"$TEST_TMP/err" \
        || fail "$(cat "$TEST_TMP/err")" || return 1
    assert_contains "$(cat "$TEST_TMP/err")" "using $tree in place" || return 1
    [ "$(sha256sum <"$tree/.config")" = "$sum" ] || fail "the tree's .config was rewritten" || return 1
    [ ! -e "$tree/nobtf-offsets" ] || fail "nobtf-offsets/ left in the tree" || return 1
    "$off" gen --kernel-src "$src" --config "$tree/.config" --build-dir "$TEST_TMP/build" \
        -o "$TEST_TMP/pristine.toml" || return 1
    out=$("$off" diff "$TEST_TMP/in-place.toml" "$TEST_TMP/pristine.toml") || { fail "$out"; return 1; }
    # Its config and build dir are its own: one line says so.
    if out=$("$off" gen --kernel-src "$tree" --config "$tree/.config" 2>&1); then
        fail "--config accepted for a tree configured in place: $out"
        return 1
    fi
    assert_contains "$out" "drop --config" || return 1
    [ "$(grep -c . <<<"$out")" = 1 ] || fail "more than one line: $out"
}

hosttest_offsets_src_in_place_5_10_equals_pristine() {
    offsets_in_place_equals_pristine 5.10 bullseye defconfig
}

hosttest_offsets_src_in_place_6_1_equals_pristine() {
    offsets_in_place_equals_pristine 6.1 bookworm defconfig
}

# 32-bit ARM, configured in place for the cross gcc: the arch and the
# compiler come from the tree (its .config names both).
hosttest_offsets_src_in_place_6_1_armhf_equals_pristine() {
    install_packages --no-recommends gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    offsets_in_place_equals_pristine 6.1 bookworm multi_v7_defconfig \
        ARCH=arm CROSS_COMPILE=arm-linux-gnueabihf- || return 1
    assert_contains "$(cat "$TEST_TMP/err")" "ARCH=arm CROSS_COMPILE=arm-linux-gnueabihf-" \
        && assert_contains "$(cat "$TEST_TMP/in-place.toml")" 'arch = "arm"'
}

# Errors on real trees name the cause.
hosttest_offsets_src_errors() {
    local off src out
    off=$(offsets_bin) || return 1
    src=$(fetch_linux_source 5.10 bullseye)
    # `fail` returns 1: after it, only `|| return 1` or `; return 1` return.
    if out=$("$off" gen --kernel-src "$src" --build-dir "$TEST_TMP/empty" 2>&1); then
        fail "no config accepted: $out"
        return 1
    fi
    assert_contains "$out" "no kernel config" || return 1
    if out=$("$off" gen --kernel-src "$src" --arch sparc --config /dev/null 2>&1); then
        fail "sparc accepted: $out"
        return 1
    fi
    assert_contains "$out" "unsupported arch" || return 1
    ensure_kernel nobtf-5.10
    if out=$("$off" gen --kernel-src "$src" --config "$KERNELS_DIR/nobtf-5.10/config" \
        --build-dir "$TEST_TMP/b" --field filename.no_such_member 2>&1); then
        fail "a missing member accepted: $out"
        return 1
    fi
    assert_contains "$out" "compiler failure" || return 1
    assert_contains "$out" "no_such_member"
}
