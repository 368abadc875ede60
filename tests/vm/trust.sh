# Trusting a profile on the live kernel (issue 26): a profile of another
# build of the same release (nobtf-5.10's tree with CONFIG_SCHEDSTATS, which
# puts 224 bytes of statistics in task_struct before pid and comm) is caught
# by the live checks of the fields a program reads, naming the field; the
# profile of nobtf-5.10's own config passes them; a profile of another
# release is refused before anything loads; nobtf's own check is not seen
# by the user's probes. Both profiles are generated here from the tree
# (about 13 s each, -j1, pristine build dirs).
# shellcheck shell=bash

trust_profiles() {
    local src fields=(--field task_struct.pid --field task_struct.tgid --field task_struct.comm
        --field task_struct.real_parent --field task_struct.mm --field mm_struct.arg_start
        --field file.f_path.dentry --field dentry.d_name.name --field file.f_inode
        --field inode.i_ino --field inode.i_size --field sock.__sk_common.skc_num
        --field sock.__sk_common.skc_dport --field sock.__sk_common.skc_rcv_saddr
        --field sock.__sk_common.skc_daddr --field task_struct.files)
    (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
    src=$(fetch_linux_source 5.10 bullseye)
    sed 's/^# CONFIG_SCHEDSTATS is not set$/CONFIG_SCHEDSTATS=y/' "$KERNELS_DIR/$KERNEL/config" >"$TEST_TMP/sched.config"
    grep -qx CONFIG_SCHEDSTATS=y "$TEST_TMP/sched.config" || { fail "the config already has SCHEDSTATS"; return 1; }
    "$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src" --config "$KERNELS_DIR/$KERNEL/config" \
        --build-dir "$TEST_TMP/build-right" "${fields[@]}" -o "$TEST_TMP/right.toml" || return 1
    "$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src" --config "$TEST_TMP/sched.config" \
        --build-dir "$TEST_TMP/build-sched" "${fields[@]}" -o "$TEST_TMP/sched.toml" || return 1
}

# The VM-side moved FIELD BYTES PROFILE: PROFILE with FIELD's offset BYTES
# further on, written to /tmp/moved.toml (a profile the live checks catch).
trust_moved_function() {
    cat <<'EOF'
moved() { awk -v k="[fields.\"$1\"]" -v by="$2" '$0 == k { on = 1 } on && /^offset = / { $3 = $3 + by; on = 0 } { print }' "$3" >/tmp/moved.toml; }
EOF
}

# profile_offset PROFILE FIELD: the offset PROFILE gives FIELD.
profile_offset() {
    awk -v k="[fields.\"$2\"]" '$0 == k { on = 1 } on && /^offset = / { print $3; exit }' "$1"
}

vmtest_trust_live_checks_catch_another_config() {
    [ "$KERNEL" = nobtf-5.10 ] || { skip "the tree and its config are nobtf-5.10's"; return; }
    trust_profiles || return 1
    { vm_trace_case_runner; trust_moved_function; cat <<'SCRIPT'; } >"$TEST_TMP/trust.sh"
COMM='kprobe:wake_up_new_task { $t = (struct task_struct *)arg0; printf("%s\n", $t->comm); }'
sed 's/^release = .*/release = "4.14.177"/' /tmp/right.toml >/tmp/other.toml
# The same offsets, as if made from another build of 5.10.223.
sed 's/^arch = .*/&\nversion = "#9 SMP another build"/' /tmp/right.toml >/tmp/build.toml
t right -v --offsets /tmp/right.toml "$COMM" -c 'exec true'
t sched -v --offsets /tmp/sched.toml "$COMM" -c 'exec true'
t sched_pid --offsets /tmp/sched.toml 'kprobe:wake_up_new_task { $t = (struct task_struct *)arg0; printf("%d %d %d\n", $t->pid, $t->tgid, $t->real_parent->tgid); }' -c 'exec true'
t other_release --offsets /tmp/other.toml "$COMM" -c 'exec true'
t other_build --offsets /tmp/build.toml "$COMM" -c 'exec true'
t other_build_files --offsets /tmp/build.toml 'kprobe:wake_up_new_task { $t = (struct task_struct *)arg0; printf("%s %d\n", $t->comm, $t->files != 0); }' -c 'exec true'
# Every kind of check at once: the file, the socket, the task's mm, the
# unlinked name; and each caught when its offset is wrong.
# (nobtf-5.10 has no TCP/IP: the socket checks run on debian-6.1 below.)
ALL='kprobe:vfs_read /comm == "none"/ { $f = (struct file *)arg0; printf("%s %d %d\n", str($f->f_path.dentry->d_name.name), $f->f_inode->i_ino, $f->f_inode->i_size); } kprobe:__set_task_comm /comm == "none"/ { $t = (struct task_struct *)arg0; printf("%d\n", $t->mm->arg_start); } kprobe:do_unlinkat /comm == "none"/ { $n = (struct filename *)arg1; printf("%s %d\n", str($n->name), $n->refcnt); }'
t all -v --offsets /tmp/right.toml "$ALL" --duration 0.2
for f in inode.i_ino mm_struct.arg_start dentry.d_name.name filename.refcnt; do
    moved $f 8 /tmp/right.toml
    t "moved $f" --offsets /tmp/moved.toml "$ALL" --duration 0.2
done
# The live check fires __set_task_comm in nobtf itself: the program's own
# probe there must not see it (the -c shell names nobtf's pid).
t own --offsets /tmp/right.toml 'kprobe:__set_task_comm { $t = (struct task_struct *)arg0; printf("hit %d %s\n", pid, $t->comm); }' -c 'echo "nobtf=$PPID"'
SCRIPT
    local out
    out=$(vm --file "$TEST_TMP/trust.sh:/tmp/trust.sh" --file "$TEST_TMP/right.toml:/tmp/right.toml" \
        --file "$TEST_TMP/sched.toml:/tmp/sched.toml" -- sh /tmp/trust.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/trust.out"
    local b comm_right comm_sched pid_sched bad=0
    comm_right=$(profile_offset "$TEST_TMP/right.toml" task_struct.comm)
    comm_sched=$(profile_offset "$TEST_TMP/sched.toml" task_struct.comm)
    pid_sched=$(profile_offset "$TEST_TMP/sched.toml" task_struct.pid)
    [ "$comm_right" != "$comm_sched" ] || { fail "SCHEDSTATS did not move comm ($comm_right)"; return 1; }
    b=$(output_block "$out" "== right rc=0")
    assert_contains "$b" "stderr: nobtf: live checks passed: task_struct.comm (offset $comm_right) = nobtf" \
        && assert_match "$b" '^Attaching 1 probe\.\.\.$' && assert_match "$b" '^nobtf$' || bad=$((bad + 1))
    b=$(output_block "$out" "== sched rc=1")
    assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/sched.toml\\) does not fit this kernel: task_struct.comm \\(offset $comm_sched\\) read \".*\" as nobtf's task->comm, expected \"nobtf\"" \
        && assert_not_contains "$b" "Attaching" || bad=$((bad + 1))
    b=$(output_block "$out" "== sched_pid rc=1")
    assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/sched.toml\\) does not fit this kernel: task_struct.pid \\(offset $pid_sched\\) read \"-?[0-9]+\" as nobtf's task->pid, expected \"[0-9]+\"" || bad=$((bad + 1))
    b=$(output_block "$out" "== other_release rc=1")
    assert_eq "$b" "stderr: error: offsets profile /tmp/other.toml is for kernel 4.14.177 on x86_64, but this kernel is 5.10.223 on x86_64: generate one for this kernel with \`offsets gen\` (docs/offsets.md)" || bad=$((bad + 1))
    b=$(output_block "$out" "== other_build rc=0")
    assert_contains "$b" "stderr: nobtf: offsets profile /tmp/build.toml is for another build of this release; the live checks of every field the program reads passed" \
        && assert_match "$b" '^nobtf$' || bad=$((bad + 1))
    b=$(output_block "$out" "== other_build_files rc=1")
    assert_contains "$b" "stderr: error: offsets profile /tmp/build.toml was made for another build of this release, and task_struct.files cannot be checked on the live kernel" || bad=$((bad + 1))
    b=$(output_block "$out" "== all rc=0")
    local f
    for f in inode.i_ino inode.i_size file.f_inode mm_struct.arg_start task_struct.mm \
        dentry.d_name.name file.f_path.dentry filename.name filename.refcnt; do
        assert_match "$b" "^stderr: nobtf: live checks passed: .*$f \(offset [0-9]+\) = " || bad=$((bad + 1))
    done
    for f in inode.i_ino mm_struct.arg_start dentry.d_name.name filename.refcnt; do
        b=$(output_block "$out" "== moved $f rc=1")
        assert_match "$b" "^stderr: error: the offsets profile \(/tmp/moved.toml\) does not fit this kernel: .*$f \(offset [0-9]+\).* read " || bad=$((bad + 1))
    done
    local me
    b=$(output_block "$out" "== own rc=0")
    me=$(sed -n 's/^nobtf=//p' <<<"$b")
    assert_match "$me" '^[0-9]+$' && assert_eq "$(grep -c "^hit $me " <<<"$b")" 0 || bad=$((bad + 1))
    assert_eq "$bad" 0
}

# The same on the tracefs back end (nobpf-5.10, no bpf(2)): the checks run
# as kprobe events with fetch arguments, as the program does.
vmtest_trust_live_checks_on_the_tracefs_back_end() {
    [ "$KERNEL" = nobpf-5.10 ] || { skip "the back end without BPF; its tree and config are nobpf-5.10's"; return; }
    trust_profiles || return 1
    { vm_trace_case_runner; trust_moved_function; cat <<'SCRIPT'; } >"$TEST_TMP/trust.sh"
TASK='kprobe:wake_up_new_task { $t = (struct task_struct *)arg0; printf("%s %d\n", $t->comm, $t->pid); }'
FILE='kprobe:vfs_read /arg2 == 77/ { $f = (struct file *)arg0; printf("%s %d\n", str($f->f_path.dentry->d_name.name), $f->f_inode->i_ino); }'
t right -v --offsets /tmp/right.toml "$TASK" -c 'exec true'
t sched --offsets /tmp/sched.toml "$TASK" -c 'exec true'
t file -v --offsets /tmp/right.toml "$FILE" --duration 0.2
moved inode.i_ino 8 /tmp/right.toml
t moved_ino --offsets /tmp/moved.toml "$FILE" --duration 0.2
SCRIPT
    local out
    out=$(vm --file "$TEST_TMP/trust.sh:/tmp/trust.sh" --file "$TEST_TMP/right.toml:/tmp/right.toml" \
        --file "$TEST_TMP/sched.toml:/tmp/sched.toml" -- sh /tmp/trust.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    local b bad=0
    b=$(output_block "$out" "== right rc=0")
    assert_match "$b" '^stderr: nobtf: live checks passed: task_struct.pid \(offset [0-9]+\) = [0-9]+, task_struct.comm \(offset [0-9]+\) = nobtf$' \
        && assert_match "$b" '^nobtf [0-9]+$' || bad=$((bad + 1))
    b=$(output_block "$out" "== sched rc=1")
    assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/sched.toml\\) does not fit this kernel: task_struct.pid \\(offset [0-9]+\\) read " || bad=$((bad + 1))
    b=$(output_block "$out" "== file rc=0")
    assert_match "$b" '^stderr: nobtf: live checks passed: .*inode.i_ino \(offset [0-9]+\) = [0-9]+, .*dentry.d_name.name \(offset [0-9]+\) = \.nobtf-live-' || bad=$((bad + 1))
    b=$(output_block "$out" "== moved_ino rc=1")
    assert_match "$b" '^stderr: error: the offsets profile \(/tmp/moved.toml\) does not fit this kernel: .*inode.i_ino \(offset [0-9]+\).* read ' || bad=$((bad + 1))
    assert_eq "$bad" 0
}

# The socket checks (a loopback TCP connection nobtf makes) where the kernel
# has TCP/IP: debian-6.1, with a profile made there from its BTF (with
# --offsets the fields come from the profile, and are checked).
vmtest_trust_live_checks_of_sockets() {
    [ "$KERNEL" = debian-6.1 ] || { skip "one BTF kernel with TCP/IP is enough"; return; }
    { vm_trace_case_runner; trust_moved_function; cat <<'SCRIPT'; } >"$TEST_TMP/trust.sh"
# The VM's loopback is down: up, for nobtf's connection.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
offsets gen --btf /sys/kernel/btf/vmlinux --field sock.__sk_common.skc_num --field sock.__sk_common.skc_dport \
    --field sock.__sk_common.skc_rcv_saddr --field sock.__sk_common.skc_daddr -o /tmp/sock.toml || exit 1
SOCK='kprobe:tcp_sendmsg /comm == "none"/ { $s = (struct sock *)arg0; printf("%d %d %d %d\n", $s->__sk_common.skc_num, $s->__sk_common.skc_dport, $s->__sk_common.skc_rcv_saddr, $s->__sk_common.skc_daddr); }'
t sock -v --offsets /tmp/sock.toml "$SOCK" --duration 0.2
moved sock.__sk_common.skc_num 2 /tmp/sock.toml
t moved --offsets /tmp/moved.toml "$SOCK" --duration 0.2
SCRIPT
    local out b bad=0
    out=$(vm --file "$TEST_TMP/trust.sh:/tmp/trust.sh" -- sh /tmp/trust.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    b=$(output_block "$out" "== sock rc=0")
    assert_match "$b" '^stderr: nobtf: live checks passed: sock.__sk_common.skc_num \(offset [0-9]+\) = [0-9]+, sock.__sk_common.skc_dport \(offset [0-9]+\) = [0-9]+, sock.__sk_common.skc_rcv_saddr \(offset [0-9]+\) = 16777343, sock.__sk_common.skc_daddr \(offset [0-9]+\) = 16777343$' || bad=$((bad + 1))
    b=$(output_block "$out" "== moved rc=1")
    assert_match "$b" '^stderr: error: the offsets profile \(/tmp/moved.toml\) does not fit this kernel: sock.__sk_common.skc_num \(offset [0-9]+\).* read ' || bad=$((bad + 1))
    assert_eq "$bad" 0
}
