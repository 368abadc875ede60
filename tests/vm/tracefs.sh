# The tracefs back end (kprobe events with fetch arguments, no BPF): chosen
# by itself on nobpf-5.10 (no bpf(2)), forced with --backend tracefs on the
# other kernels (linux-4.14: the oldest fetch-argument syntax, a user path).
# shellcheck shell=bash

# The flag that selects the tracefs back end on the kernel under test: none
# where bpf(2) is missing (auto must take it by itself).
tracefs_flag() { if kernel_has_bpf; then echo "--backend tracefs"; fi; }

vmtest_tracefs_backend_lines_json_pid_canary_check() {
    local flag
    flag=$(tracefs_flag)
    if kernel_passes_user_path; then
        reliability_profile RELEASE 0 16 >"$TEST_TMP/wrong.toml"   # the 4.19+ layout
    else
        reliability_profile RELEASE 0 24 >"$TEST_TMP/wrong.toml"   # 4.14's refcnt
    fi
    cat >"$TEST_TMP/tracefs.sh" <<EOF
T=$VM_TRACEFS
sed "s/RELEASE/\$(uname -r)/" /tmp/wrong.in >/tmp/wrong.toml
touch /tmp/a.txt
nobtf run unlink $flag --count 2 -c 'echo "RMPID=\$\$" >/tmp/rmpid; exec rm /tmp/a.txt' >/tmp/out 2>/tmp/err
echo "== text rc=\$? \$(cat /tmp/rmpid)"
cat /tmp/out; sed 's/^/stderr: /' /tmp/err
touch /tmp/b.txt
nobtf run unlink $flag --format json --count 2 -c 'rm /tmp/b.txt' 2>/tmp/err
echo "== json rc=\$?"
touch /tmp/x.txt /tmp/y.txt
(sleep 6; rm /tmp/x.txt) &
(sleep 8; exec rm /tmp/y.txt) & p=\$!
nobtf run unlink $flag --pid \$p --count 2 --duration 30 >/tmp/out 2>/tmp/err
echo "== pid rc=\$? PID=\$p"
cat /tmp/out; sed 's/^/stderr: /' /tmp/err
touch /tmp/a.txt
nobtf run unlink $flag --offsets /tmp/wrong.toml --count 2 -c 'rm /tmp/a.txt' >/tmp/out 2>/tmp/err
echo "== wrong rc=\$?"
cat /tmp/out; sed 's/^/stderr: /' /tmp/err
echo "== check"
nobtf check $flag \${NOBTF_OFFSETS:+--offsets \$NOBTF_OFFSETS}
echo "== left \$(grep -c nobtf \$T/kprobe_events) \$(ls \$T/instances | grep -c nobtf)"
EOF
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/tracefs.sh:/tmp/tracefs.sh" \
        --file "$TEST_TMP/wrong.toml:/tmp/wrong.in" -- sh /tmp/tracefs.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    local header pid b read_back=', refcnt 1 and a return of 0'
    kernel_passes_user_path && read_back=' and a return of 0'
    header=$(printf '%s\n' "$out" | grep '^== text ')
    pid=$(sed -n 's/.*RMPID=\([0-9]*\).*/\1/p' <<<"$header")
    b=$(output_block "$out" "$header")
    assert_match "$header" ' rc=0 ' \
        && assert_match "$b" "^ +rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE ENTRY pid = $pid, filename = /tmp/a.txt\$" \
        && assert_match "$b" "^ +rm-$pid +\\[[0-9]{3}\\] +[0-9]+\\.[0-9]{6}: KPROBE EXIT: pid = $pid, ret = 0\$" \
        && assert_eq "$(grep -c KPROBE <<<"$b")" 2 \
        && assert_match "$b" '^stderr: nobtf: attached to do_unlinkat entry and return \(tracefs kprobe events with fetch arguments, in /sys/kernel(/debug)?/tracing/instances/nobtf_[0-9]+\) in [0-9]+ ms$' \
        && assert_match "$b" "^stderr: nobtf: canary passed: read back /tmp/\\.nobtf-canary-[0-9]+-[0-9a-f]+$read_back\$" \
        && assert_match "$b" '^stderr: nobtf: 2 events delivered, 0 lost \(cpu0=0( cpu1=0)?\)$' || return 1
    local refcnt='"refcnt":1' && kernel_passes_user_path && refcnt='"refcnt":null'
    b=$(printf '%s\n' "$out" | grep '^{"comm":"rm"')
    assert_match "$b" "^\\{\"comm\":\"rm\",\"cpu\":[0-9]+,\"filename\":\"/tmp/b.txt\",\"kind\":\"entry\",\"pid\":[0-9]+,$refcnt,\"ret\":null,\"tid\":[0-9]+,\"ts\":[0-9]+\\}\$" \
        && assert_match "$b" '^\{"comm":"rm","cpu":[0-9]+,"filename":null,"kind":"exit","pid":[0-9]+,"refcnt":null,"ret":0,"tid":[0-9]+,"ts":[0-9]+\}$' \
        && assert_contains "$out" "== json rc=0" || return 1
    header=$(printf '%s\n' "$out" | grep '^== pid ')
    pid=$(sed -n 's/.*PID=\([0-9]*\).*/\1/p' <<<"$header")
    b=$(output_block "$out" "$header")
    # Only the process asked for: the earlier rm of x.txt is filtered out.
    assert_match "$header" ' rc=0 ' \
        && assert_match "$b" "KPROBE ENTRY pid = $pid, filename = /tmp/y.txt\$" \
        && assert_not_contains "$b" "x.txt" \
        && assert_eq "$(grep -c KPROBE <<<"$b")" 2 || return 1
    b=$(output_block "$out" "== wrong rc=1")
    local refused='filename.refcnt \(offset 24\) read -?[0-9]+, expected 1'
    kernel_passes_user_path && refused='filename.name \(offset 0\) read ".*", expected "/tmp/\.nobtf-canary-[0-9]+-[0-9a-f]+"'
    assert_contains "$out" "== wrong rc=1" \
        && assert_match "$b" "^stderr: error: the offsets profile \\(/tmp/wrong.toml\\) does not fit this kernel: $refused; generate one" \
        && assert_not_contains "$b" "KPROBE" || return 1
    b=$(printf '%s\n' "$out" | sed -n '/^== check$/,/^== left /p')
    local why='asked for \(--backend tracefs\)'
    kernel_has_bpf || why='this kernel has no bpf\(2\) system call \(CONFIG_BPF_SYSCALL is off\)'
    assert_match "$b" "^  back end +tracefs \\(kprobe events with fetch arguments, no BPF\\): $why" \
        && assert_contains "$b" "nobtf run unlink can work here" \
        && assert_contains "$out" "== left 0 0"
}

vmtest_tracefs_kill9_then_cleanup() {
    local flag
    flag=$(tracefs_flag)
    cat >"$TEST_TMP/kill9.sh" <<EOF
T=$VM_TRACEFS
$RELIABILITY_WAIT_FOR
nobtf run unlink $flag >/dev/null 2>/tmp/a.err & a=\$!
wait_for /tmp/a.err 'canary passed' || echo "A never attached: \$(cat /tmp/a.err)"
kill -9 \$a; wait \$a
echo "== killed A=\$a events=\$(grep -c "nobtf_\${a}_" \$T/kprobe_events) instance=\$(ls \$T/instances | grep -c "nobtf_\${a}\$")"
nobtf cleanup 2>&1; echo "== cleanup rc=\$?"
echo "== left \$(grep -c nobtf \$T/kprobe_events) \$(ls \$T/instances | grep -c nobtf)"
EOF
    local out a
    out=$(vm --timeout 300 --file "$TEST_TMP/kill9.sh:/tmp/kill9.sh" -- sh /tmp/kill9.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    a=$(printf '%s\n' "$out" | sed -n 's/^== killed A=\([0-9]*\) .*/\1/p')
    [ -n "$a" ] || { printf '%s\n' "$out" >&2; fail "no pid"; return 1; }
    assert_contains "$out" "== killed A=$a events=2 instance=1" \
        && assert_contains "$out" "nobtf: removed stale tracing instance instances/nobtf_$a (process $a is gone)" \
        && assert_match "$out" "^nobtf: removed stale kprobe event nobtf/nobtf_${a}_p_do_unlinkat_[0-9]+ \\(process $a is gone\\)\$" \
        && assert_match "$out" "^nobtf: removed stale kprobe event nobtf/nobtf_${a}_r_do_unlinkat_[0-9]+ \\(process $a is gone\\)\$" \
        && assert_contains "$out" "== cleanup rc=0" \
        && assert_contains "$out" "== left 0 0"
}

# Where bpf(2) is missing, what needs BPF says so in one line; where it is
# there, --backend bpf is what runs.
vmtest_tracefs_bpf_only_paths_without_bpf() {
    local out
    if kernel_has_bpf; then
        out=$(vm -- sh -c 'touch /tmp/a.txt; nobtf run unlink --backend bpf --count 2 -c "rm /tmp/a.txt" 2>&1; echo "== rc=$?"') \
            || { printf '%s\n' "$out" >&2; fail "the VM failed"; return 1; }
        assert_contains "$out" "== rc=0" \
            && assert_match "$out" '^nobtf: attached to do_unlinkat entry and return \((kprobe PMU|tracefs /sys)' \
            && assert_match "$out" 'KPROBE EXIT: pid = [0-9]+, ret = 0$'
        return
    fi
    printf 'x' >"$TEST_TMP/x.o"
    out=$(vm --file "$TEST_TMP/x.o:/tmp/x.o" -- sh -c '
        nobtf run unlink --backend bpf 2>&1; echo "== bpf rc=$?"
        nobtf run unlink --trace-pipe 2>&1; echo "== pipe rc=$?"
        nobtf dump unlink >/dev/null; echo "== dump rc=$?"') \
        || { printf '%s\n' "$out" >&2; fail "the VM failed"; return 1; }
    assert_eq "$(printf '%s\n' "$out" | sed -n 1p)" \
        "error: this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL is off): bpf(BPF_PROG_LOAD): Function not implemented (os error 38)" \
        && assert_contains "$out" "== bpf rc=1" \
        && assert_contains "$out" "error: no way to attach: --trace-pipe streams bpf_trace_printk, which needs the BPF back end" \
        && assert_contains "$out" "== pipe rc=1" \
        && assert_contains "$out" "== dump rc=0"
}

# nobtf trace programs that need no BPF, on the tracefs back end, in one
# boot: arguments, a cast, struct members (nested `->` where the kernel has
# BTF), str(), retval and comm in an event filter, BEGIN/END and exit(),
# JSON, tid, -p; a map and `pid` refused in one line each. Where bpf(2)
# works, each program's output is also the BPF back end's, line for line.
vmtest_tracefs_trace_programs() {
    local flag nested=0
    flag=$(tracefs_flag)
    kernel_has_btf && nested=1
    cat >"$TEST_TMP/trace.sh" <<'EOF'
FLAG=$1 BPF=$2 NESTED=$3 T=$4
if [ "$(uname -r)" = 4.14.177 ]; then NAME='str(arg1)'; else NAME='str(((struct filename *)arg1)->name)'; fi
# t NAME BACKEND-FLAG PROGRAM-AND-OPTIONS...: `== NAME rc=N`, stdout, stderr.
t() {
    name=$1 backend=$2
    shift 2
    nobtf trace $backend "$@" >/tmp/out 2>/tmp/err
    echo "== $name rc=$?"
    cat /tmp/out
    sed 's/^/stderr: /' /tmp/err
}
cases() {
    b=$1 f=$2
    touch /tmp/a.txt /tmp/c.txt /tmp/d1 /tmp/d2 /tmp/e; mkdir -p /tmp/dir
    t "members $b" "$f" "kprobe:do_unlinkat { printf(\"%s|%u|%d\\n\", $NAME, (uint8)arg0, (int32)arg0); }" -c 'rm /tmp/a.txt'
    t "retval $b" "$f" 'kretprobe:do_unlinkat /retval != 0 && comm == "unlink"/ { printf("ret=%d %s %u\n", retval, comm, (uint8)retval); }' -c 'unlink /tmp/dir; touch /tmp/u; unlink /tmp/u'
    t "exit $b" "$f" 'BEGIN { printf("hello\n"); } kprobe:do_unlinkat /comm == "rm"/ { printf("once %s\n", comm); exit(); } END { printf("bye\n"); }' -c 'exec rm /tmp/d1 /tmp/d2'
    t "json $b" "$f" -f json "kprobe:do_unlinkat /comm == \"rm\"/ { printf(\"%s %s\\n\", $NAME, comm); }" -c 'rm /tmp/c.txt'
    if [ "$NESTED" = 1 ]; then
        t "nested $b" "$f" 'kprobe:vfs_read /comm == "dd"/ { $f = (struct file *)arg0; printf("%s %s\n", str(((struct dentry *)$f->f_path.dentry)->d_name.name), str($f->f_path.dentry->d_parent->d_name.name)); exit(); }' -c 'head -c 10 /dev/zero >/tmp/f10; exec dd if=/tmp/f10 of=/dev/null 2>/dev/null'
    fi
    t "tid $b" "$f" 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %d\n", tid, cpu); }' -c 'echo "RMPID=$$"; exec rm /tmp/e'
}
cases tracefs "$FLAG"
[ "$BPF" = 1 ] && cases bpf "--backend bpf"
touch /tmp/p1 /tmp/p2
sh -c 'sleep 3; exec rm /tmp/p1' & P=$!
sh -c 'sleep 3; exec rm /tmp/p2' &
t "pid P=$P" "$FLAG" -p "$P" "kprobe:do_unlinkat { printf(\"%d %s\\n\", tid, $NAME); }" --duration 8
wait
t map "$FLAG" 'kprobe:do_unlinkat { @c[comm] = count(); }'
t pid "$FLAG" 'kprobe:do_unlinkat /arg0 > 0/ { printf("%d\n", pid); }'
# SIGTERM ends it; SIGKILL leaves its event and instance to `nobtf cleanup`.
nobtf trace $FLAG 'kprobe:do_unlinkat { printf("x\n"); }' >/dev/null 2>/tmp/err & N=$!
sleep 2; kill -TERM $N; wait $N
echo "== sigterm rc=$? events=$(grep -c "nobtf_${N}_" $T/kprobe_events)"
nobtf trace $FLAG 'kprobe:do_unlinkat { printf("x\n"); }' >/dev/null 2>/tmp/err & N=$!
sleep 2; kill -9 $N; wait $N
echo "== killed events=$(grep -c "nobtf_${N}_" $T/kprobe_events) instance=$(ls $T/instances | grep -c "nobtf_${N}\$")"
nobtf cleanup >/dev/null 2>&1
echo "== left $(grep -c nobtf $T/kprobe_events) $(ls $T/instances | grep -c nobtf)"
EOF
    local bpf=0 out
    kernel_has_bpf && bpf=1
    out=$(vm --timeout 600 --file "$TEST_TMP/trace.sh:/tmp/trace.sh" -- \
        sh -c "sh /tmp/trace.sh '$flag' $bpf $nested $VM_TRACEFS") \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/trace.out"
    # block HEADER: the case's stdout (its stderr lines dropped).
    block() { output_block "$out" "$1" | grep -v '^stderr: '; }
    local why='--backend tracefs' b pid
    kernel_has_bpf || why='this kernel has no bpf\(2\) system call \(CONFIG_BPF_SYSCALL is off\)'
    b=$(output_block "$out" "== members tracefs rc=0")
    assert_eq "$(grep -v '^stderr: ' <<<"$b")" $'Attaching 1 probe...\n/tmp/a.txt|156|-100' \
        && assert_match "$b" "^stderr: nobtf: tracing with tracefs kprobe events, no BPF \\($why\\), in /sys/kernel(/debug)?/tracing/instances/nobtf_[0-9]+\$" \
        && assert_eq "$(block "== retval tracefs rc=0")" $'Attaching 1 probe...\nret=-21 unlink 235' \
        && assert_eq "$(block "== exit tracefs rc=0")" $'Attaching 3 probes...\nhello\nonce rm\nbye' \
        && assert_eq "$(block "== json tracefs rc=0" | grep .)" '{"type": "attached_probes", "data": {"probes": 1}}'$'\n''{"type": "printf", "data": "/tmp/c.txt rm\n"}' \
        || return 1
    if [ $nested = 1 ]; then
        assert_eq "$(block "== nested tracefs rc=0" | grep .)" $'Attaching 1 probe...\nf10 tmp' || return 1
    fi
    b=$(output_block "$out" "$(grep '^== tid tracefs ' <<<"$out")")
    pid=$(sed -n 's/^RMPID=//p' <<<"$b")
    assert_contains "$out" "== tid tracefs rc=0" && assert_match "$b" "^$pid [0-9]+\$" || return 1
    # -p: the threads of the process given, not the other rm.
    b=$(output_block "$out" "$(grep '^== pid P=' <<<"$out")")
    pid=$(grep '^== pid P=' <<<"$out" | sed 's/^== pid P=\([0-9]*\) .*/\1/')
    assert_match "$(grep '^== pid P=' <<<"$out")" ' rc=0$' \
        && assert_eq "$(grep -v '^stderr: ' <<<"$b" | grep .)" $'Attaching 1 probe...\n'"$pid /tmp/p1" || return 1
    # What needs BPF: one line naming it and its place.
    assert_eq "$(output_block "$out" "== map rc=1")" \
        "stderr: error: tracefs back end: the map \`@c\` at 1:22 needs BPF (${why//\\/}); without BPF, nobtf trace runs printf of arguments, struct members, str(), retval, comm, tid and cpu, with predicates comparing them to constants" \
        && assert_match "$(output_block "$out" "== pid rc=1")" '^stderr: error: tracefs back end: `pid` \(the thread group id: a trace line has only the thread id; `tid` works\) at 1:48 needs BPF' \
        && assert_eq "$(output_block "$out" "== pid rc=1" | grep -c .)" 1 \
        && assert_contains "$out" "== sigterm rc=0 events=0" \
        && assert_contains "$out" "== killed events=1 instance=1" \
        && assert_contains "$out" "== left 0 0" || return 1
    [ $bpf = 1 ] || return 0
    # The BPF back end prints the same, line for line.
    local name
    for name in members retval exit json $([ $nested = 1 ] && echo nested); do
        assert_eq "$(block "== $name tracefs rc=0")" "$(block "== $name bpf rc=0")" || return 1
    done
}
