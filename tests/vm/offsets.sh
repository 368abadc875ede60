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

# A profile that carries member types (format 2) follows a chain of members
# without casts, as the kernel's BTF does: made in the VM from the kernel's
# BTF (debian-6.1 and the other BTF kernels), or on the host from the
# source tree nobtf-5.10 is built from; with --field, and with
# --fields-from the program itself. The same profile without its types (a
# format-1 file) is refused, naming the cast the program would need.
vmtest_offsets_typed_profile_follows_chains() {
    local prog='kprobe:vfs_read /comm == "dd"/ { $f = (struct file *)arg0; printf("R %s\n", str($f->f_path.dentry->d_name.name)); }'
    local fields=(--field file.f_path.dentry --field dentry.d_name.name) how files=()
    printf '%s\n' "$prog" >"$TEST_TMP/chain.bt"
    if kernel_has_btf; then
        how=btf
    elif [ "$KERNEL" = nobtf-5.10 ]; then
        local src gen
        (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
        src=$(fetch_linux_source 5.10 bullseye)
        gen=("$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src"
            --config "$KERNELS_DIR/$KERNEL/config" --build-dir "$TEST_TMP/build")
        "${gen[@]}" "${fields[@]}" -o "$TEST_TMP/fields.toml" || return 1
        "${gen[@]}" --fields-from "$TEST_TMP/chain.bt" -o "$TEST_TMP/program.toml" || return 1
        files+=(--file "$TEST_TMP/fields.toml:/tmp/fields.toml" --file "$TEST_TMP/program.toml:/tmp/program.toml")
        how=host
    else
        skip "no BTF and no source tree for $KERNEL"
        return
    fi
    cat >"$TEST_TMP/typed.sh" <<SCRIPT
if [ "\$1" = btf ]; then
    offsets gen --btf /sys/kernel/btf/vmlinux ${fields[*]} -o /tmp/fields.toml || exit 1
    offsets gen --btf /sys/kernel/btf/vmlinux --fields-from /tmp/chain.bt -o /tmp/program.toml || exit 1
fi
# Format 1: the same offsets, no types.
sed -e 's/^format = 2/format = 1/' -e '/^type = /d' /tmp/fields.toml >/tmp/untyped.toml
echo x >/tmp/x
for p in fields program untyped; do
    echo "== \$p"
    grep -A3 '^\[fields."file.f_path' /tmp/\$p.toml
    env -u NOBTF_OFFSETS nobtf trace --offsets /tmp/\$p.toml "\$(cat /tmp/chain.bt)" -c 'dd if=/tmp/x of=/dev/null bs=1 count=1' 2>&1
    echo "rc=\$?"
done
SCRIPT
    files+=(--file "$TEST_TMP/typed.sh:/tmp/typed.sh" --file "$TEST_TMP/chain.bt:/tmp/chain.bt")
    local out block
    out=$(vm "${files[@]}" -- sh /tmp/typed.sh "$how" 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    for p in fields program; do
        block=$(output_block "$out" "== $p")
        assert_contains "$block" 'type = "struct path"' \
            && assert_contains "$block" 'type = "struct dentry *"' \
            && assert_match "$block" '^R x$' \
            && assert_contains "$block" "rc=0" || return 1
    done
    block=$(output_block "$out" "== untyped")
    assert_contains "$block" 'has no members; cast it first' \
        && assert_not_contains "$block" "R x" \
        && assert_contains "$block" "rc=1"
}

# Where there is no BTF, a profile from `offsets gen --vmlinux
# --fields-from PROGRAM` carries what the program's own C and constants
# need: the size of the kernel struct its struct embeds ([structs]:
# dcsnoop's `nameidata` after `struct path`) and the enumerators it names
# ([enums]: `PIDTYPE_SID`, `MM_SWAPENTS`, in no uapi table). The same
# profile without either table is refused, naming what it lacks. (A
# qstr's name points into the whole path: `nobtfdir/f`, as dcsnoop shows.)
vmtest_offsets_profile_structs_and_enums() {
    [ "$KERNEL" = nobtf-5.10 ] || { skip "needs a kernel without BTF whose vmlinux has DWARF (nobtf-5.10)"; return; }
    (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
    cat >"$TEST_TMP/nd.bt" <<'PROG'
struct nd { struct path path; struct qstr last; };
BEGIN { printf("B %d %d\n", PIDTYPE_SID, MM_SWAPENTS); }
kprobe:lookup_fast /comm == "cat"/ {
    $nd = (struct nd *)arg0;
    if (str($nd->last.name) == "nobtfdir/f") { printf("L %s %d\n", str($nd->last.name), PIDTYPE_PGID); }
}
PROG
    "$NOBTF_ROOT/target/release/offsets" gen --vmlinux "$KERNELS_DIR/$KERNEL/vmlinux" \
        --fields-from "$TEST_TMP/nd.bt" -o "$TEST_TMP/nd.toml" || return 1
    assert_contains "$(cat "$TEST_TMP/nd.toml")" $'[structs.path]\nsize = 16\nalign = 8' \
        && assert_contains "$(cat "$TEST_TMP/nd.toml")" $'[enums]\nMM_SWAPENTS = 2\nPIDTYPE_PGID = 2\nPIDTYPE_SID = 3' || return 1
    awk '/^\[/ { skip = ($0 ~ /^\[structs\./) } !skip' "$TEST_TMP/nd.toml" >"$TEST_TMP/nostructs.toml"
    awk '/^\[/ { skip = ($0 == "[enums]") } !skip' "$TEST_TMP/nd.toml" >"$TEST_TMP/noenums.toml"
    cat >"$TEST_TMP/nd.sh" <<'SCRIPT'
mkdir -p /tmp/nobtfdir && echo x >/tmp/nobtfdir/f
for p in nd nostructs noenums; do
    echo "== $p"
    env -u NOBTF_OFFSETS nobtf trace --offsets /tmp/$p.toml /tmp/nd.bt -c 'cat /tmp/nobtfdir/f' 2>&1
    echo "rc=$?"
done
SCRIPT
    local out block
    out=$(vm --file "$TEST_TMP/nd.sh:/tmp/nd.sh" --file "$TEST_TMP/nd.bt:/tmp/nd.bt" \
        --file "$TEST_TMP/nd.toml:/tmp/nd.toml" --file "$TEST_TMP/nostructs.toml:/tmp/nostructs.toml" \
        --file "$TEST_TMP/noenums.toml:/tmp/noenums.toml" \
        -- sh /tmp/nd.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    block=$(output_block "$out" "== nd")
    assert_match "$block" '^B 3 2$' \
        && assert_match "$block" '^L nobtfdir/f 2$' \
        && assert_contains "$block" "rc=0" || return 1
    block=$(output_block "$out" "== nostructs")
    assert_contains "$block" 'the size of `struct path` is unknown' \
        && assert_not_contains "$block" "L nobtfdir" \
        && assert_contains "$block" "rc=1" || return 1
    block=$(output_block "$out" "== noenums")
    assert_contains "$block" 'unknown identifier `PIDTYPE_SID`' \
        && assert_not_contains "$block" "B 3" \
        && assert_contains "$block" "rc=1"
}
