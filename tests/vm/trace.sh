# nobtf trace on real kernels: a corpus of one-liners (kprobe arguments,
# retval, casts and nested members, kernel and user strings, predicates,
# every map function, tracepoints, BEGIN/END, interval, exit(), -c, -p,
# signals, JSON, errors), all run in one boot per kernel, each output
# asserted. Struct fields come from the kernel's BTF where it has one, from
# a profile generated from the source tree on nobtf-5.10 (the issue's check),
# from tests/profiles/linux-4.14.toml on linux-4.14 and from
# tests/profiles/linux-5.4.toml on linux-5.4.
# shellcheck shell=bash

# The VM-side script: each case prints `== NAME rc=STATUS`, its stdout,
# then its stderr prefixed with `stderr: `. $1 is the kernel's name.
trace_corpus_script() {
    vm_trace_case_runner
    cat <<'EOF'
K=$1
# The unlinked path: a user pointer argument on 4.14, a struct filename after.
if [ "$K" = linux-4.14 ]; then PATHP='arg1'; else PATHP='((struct filename *)arg1)->name'; fi
NAME="str($PATHP)"
head -c 250 /dev/zero >/tmp/f250
# arm64 has no unlink(2), only unlinkat(2).
UNLINK_TP=sys_enter_unlink
[ "$(uname -m)" = aarch64 ] && UNLINK_TP=sys_enter_unlinkat
touch /tmp/a.txt /tmp/t1 /tmp/t2 /tmp/t3 /tmp/j1 /tmp/e1 /tmp/e2 /tmp/c1 /tmp/c2 /tmp/d1 /tmp/o1 /tmp/o2 /tmp/o3 /tmp/s1 /tmp/v1 /tmp/v2 /tmp/v3
t issue 'kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }' -c 'rm /tmp/a.txt'
t arg_string "kprobe:do_unlinkat /comm == \"rm\"/ { printf(\"%s\\n\", $NAME); }" -c 'exec rm /tmp/t1'
t retval 'kretprobe:do_unlinkat /comm == "rm"/ { printf("ret=%d\n", retval); }' -c 'exec rm /tmp/t2 /tmp/missing'
t builtins 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %d %d %s %s\n", pid == tid, uid, gid, func, probe); }' -c 'exec rm /tmp/t3'
t arithmetic 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %u %x %d %d %s\n", (s8)255, (u8)257, 0xff & 0x0f, 7 % 3 + (1 << 3), -5 / 1, comm == "rm" ? "yes" : "no"); }' -c 'exec rm /tmp/s1'
t count "kprobe:do_unlinkat /comm == \"rm\"/ { @[comm] = count(); @n = count(); }" -c 'exec rm /tmp/c1 /tmp/c2'
t aggregates 'kretprobe:vfs_read /comm == "dd"/ { @mn = min(retval); @mx = max(retval); @s = sum(retval); @a = avg(retval); @c = count(); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t hist 'kretprobe:vfs_read /comm == "dd"/ { @h = hist(retval); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t lhist 'kretprobe:vfs_read /comm == "dd"/ { @l = lhist(retval, 0, 200, 50); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t assign "kprobe:do_unlinkat /comm == \"rm\"/ { @last = $NAME; @flag[1, \"x\"] = 7; }" -c 'exec rm /tmp/o1'
t delete "kprobe:do_unlinkat /comm == \"rm\"/ { @seen[$NAME] = 1; delete(@seen[$NAME]); @kept = 1; }" -c 'exec rm /tmp/o2'
t print_clear 'kprobe:do_unlinkat /comm == "rm"/ { @c[comm] = count(); print(@c); clear(@c); }' -c 'exec rm /tmp/d1'
t probe_list 'kprobe:do_unlinkat,kretprobe:do_unlinkat /comm == "rm"/ { @[probe] = count(); }' -c 'exec rm /tmp/o3'
t tracepoint 'tracepoint:sched:sched_process_exec { printf("exec %s %d\n", str(args->filename), args->pid == pid); }' -c 'exec /bin/rm -f /tmp/nothing'
t tracepoint_count 'tracepoint:sched:sched_process_fork { @forks = count(); }' -c 'ls / >/dev/null; ls / >/dev/null'
t syscall_tracepoint "tracepoint:syscalls:$UNLINK_TP /comm == \"rm\"/ { printf(\"%s\\n\", str(args->pathname)); }" -c 'touch /tmp/u1; exec rm /tmp/u1'
t control 'kprobe:do_unlinkat /comm == "rm"/ { $n = 0; unroll(3) { $n++; } if ($n == 3) { printf("unrolled %d\n", $n); } else { printf("wrong\n"); } if $n > 5 { printf("no\n"); } else if ($n > 2) { let $s = "elif"; printf("%s\n", $s); } else { return; } }' -c 'exec rm /tmp/v1'
t while_loop 'kprobe:do_unlinkat /comm == "rm"/ { $i = 0; $odd = 0; while ($i < 100) { $i++; if ($i > 9) { break; } if ($i % 2 == 0) { continue; } $odd++; } printf("while %d %d\n", $i, $odd); }' -c 'exec rm /tmp/v2'
t values "kprobe:do_unlinkat /comm == \"rm\"/ { \$p = (uint8 *)$PATHP; @g[1] = 1; delete(@g, 1); printf(\"%c%c %s %s %d %d %d %d %d\\n\", *\$p, \$p[5], ntop(2, 0x0100007f), ntop(0), bswap((uint16)0x1234), strncmp(comm, \"rmx\", 2), strcontains(comm, \"m\"), sizeof(uint32), comm == \"rm\"); }" -c 'exec rm /tmp/v3'
t begin_end 'BEGIN { printf("hello\n"); } END { printf("bye\n"); } kprobe:do_unlinkat { @c = count(); }' --duration 0.5
t interval 'interval:ms:100 { @ticks = count(); } interval:ms:550 { exit(); }'
t exit_once 'kprobe:do_unlinkat /comm == "rm"/ { printf("once\n"); exit(); }' -c 'touch /tmp/x1 /tmp/x2 /tmp/x3; exec rm /tmp/x1 /tmp/x2 /tmp/x3'
t json "kprobe:do_unlinkat /comm == \"rm\"/ { printf(\"%s\\n\", $NAME); @c = count(); }" --format json -c 'exec rm /tmp/j1'
# Unfiltered: nobtf's own unlinks (the loss flush at stop) must not count.
touch /tmp/w1
t own_work 'kprobe:do_unlinkat { @u[comm] = count(); printf("u\n"); }' -c 'exec rm /tmp/w1'
echo 'BEGIN { printf("from a file\n"); exit(); }' >/tmp/prog.bt
t file /tmp/prog.bt
t e_option -e 'BEGIN { printf("from -e\n"); exit(); }'
t nested 'kprobe:vfs_read /comm == "dd"/ { $f = (struct file *)arg0; printf("%s\n", str(((struct dentry *)$f->f_path.dentry)->d_name.name)); }' -c 'exec dd if=/tmp/f250 of=/dev/null 2>/dev/null'
t caret 'kprobe:do_unlinkat { printf("%d\n", $nope); }'
t unknown_field 'kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%d\n", $f->no_such_member); }'
t unknown_function 'kprobe:no_such_function_here { printf("x\n"); }'
# Wildcards: one attach point per match, each with its own probe and func.
t wild_probe 'kprobe:vfs_rea* /comm == "dd"/ { @[probe] = count(); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t wild_func 'kretprobe:vfs_rea* /comm == "dd"/ { @[func] = count(); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t wild_tracepoint 'tracepoint:syscalls:sys_enter_exec* { @[probe] = count(); }' -c 'ls / >/dev/null'
t wild_none 'kprobe:no_such_function_* { }'
t wild_tracefs --backend tracefs 'kprobe:vfs_rea* /comm == "dd"/ { printf("%s\n", probe); }' -c 'exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
t list_kprobes -l 'kprobe:vfs_rea*'
t list_verbose -lv 'tracepoint:sched:sched_process_exec'
# -p: only the given process's unlinks, though another process unlinks too.
touch /tmp/p1 /tmp/p2
sh -c 'sleep 2; exec rm /tmp/p1' & P=$!
sh -c 'sleep 2; exec rm /tmp/p2' &
t "pid P=$P" -p "$P" 'kprobe:do_unlinkat { printf("%d\n", pid); }' --duration 10
wait
# SIGTERM ends the trace and prints the maps.
touch /tmp/g1
nobtf trace 'kprobe:do_unlinkat /comm == "rm"/ { @c = count(); }' >/tmp/out 2>/tmp/err & N=$!
sleep 2; rm /tmp/g1; sleep 0.3; kill -TERM $N; wait $N
echo "== sigterm rc=$?"
cat /tmp/out
sed 's/^/stderr: /' /tmp/err
echo "== left"
grep nobtf "$( [ -e /sys/kernel/tracing/kprobe_events ] && echo /sys/kernel/tracing || echo /sys/kernel/debug/tracing )/kprobe_events" || true
EOF
}

vmtest_trace_corpus() {
    if ! kernel_has_bpf; then
        # The tracefs back end runs what needs no BPF (tracefs.sh tests
        # that); the corpus's maps are refused in one line.
        local refused
        refused=$(vm -- sh -c 'nobtf trace "kprobe:do_unlinkat { @c = count(); }" 2>&1; echo "rc=$?"') || return 1
        assert_match "$refused" '^error: tracefs back end: the map `@c` at 1:22 needs BPF \(this kernel has no bpf\(2\)' \
            && assert_contains "$refused" "rc=1" && assert_eq "$(grep -c . <<<"$refused")" 2
        return
    fi
    local profile=$TEST_TMP/profile.toml files=()
    trace_corpus_script >"$TEST_TMP/corpus.sh"
    files+=(--file "$TEST_TMP/corpus.sh:/tmp/corpus.sh")
    local run=(sh /tmp/corpus.sh "$KERNEL")
    if [ "$KERNEL" = nobtf-5.10 ]; then
        # The issue's check: a profile from the source tree, with the fields
        # the corpus reads.
        local src
        (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
        src=$(fetch_linux_source 5.10 bullseye)
        "$NOBTF_ROOT/target/release/offsets" gen --kernel-src "$src" \
            --config "$KERNELS_DIR/nobtf-5.10/config" --build-dir "$TEST_TMP/build" \
            --field file.f_path.dentry --field dentry.d_name.name -o "$profile" || return 1
        files+=(--file "$profile:/etc/nobtf/src.toml")
        run=(env NOBTF_OFFSETS=/etc/nobtf/src.toml "${run[@]}")
    fi
    local out start=$SECONDS
    out=$(vm --timeout 600 "${files[@]}" -- "${run[@]}" 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    echo "trace corpus on $KERNEL: $((SECONDS - start)) s" >&2
    printf '%s\n' "$out" >"$TEST_TMP/corpus.out"
    local b cases=0 bad=0
    # block NAME [RC]: the case's output; its header must say rc=RC (0).
    block() { vm_trace_case "$out" "$@"; }
    if [ "$KERNEL" = linux-4.14 ]; then
        # No struct filename argument on 4.14 (the path is a user pointer):
        # the line runs, but means nothing there.
        b=$(block issue) || bad=$((bad + 1))
        assert_match "$b" '^Attaching 1 probe\.\.\.$' || bad=$((bad + 1))
    else
        b=$(block issue) || bad=$((bad + 1))
        assert_eq "$(printf '%s\n' "$b" | head -2)" $'Attaching 1 probe...\n/tmp/a.txt 1' || bad=$((bad + 1))
    fi
    cases=$((cases + 1))
    b=$(block arg_string) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\n/tmp/t1' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block retval) || bad=$((bad + 1))
    assert_contains "$b" "ret=0" && assert_not_contains "$b" "ret=-2" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block builtins) || bad=$((bad + 1))
    assert_contains "$b" "1 0 0 do_unlinkat kprobe:do_unlinkat" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block arithmetic) || bad=$((bad + 1))
    assert_contains "$b" "-1 1 f 9 -5 yes" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block count) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\n\n\n@[rm]: 2\n@n: 2' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block aggregates) || bad=$((bad + 1))
    assert_contains "$b" $'@a: 62\n\n@c: 4\n@mn: 0\n@mx: 100\n@s: 250' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block hist) || bad=$((bad + 1))
    assert_match "$b" '^@h:$' \
        && assert_match "$b" '^\[0\] +1 \|@+ +\|$' \
        && assert_match "$b" '^\[32, 64\) +1 \|@+ +\|$' \
        && assert_match "$b" '^\[64, 128\) +2 \|@{52}\|$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block lhist) || bad=$((bad + 1))
    assert_match "$b" '^\[0, 50\) +1 \|@+ +\|$' \
        && assert_match "$b" '^\[50, 100\) +1 \|@+ +\|$' \
        && assert_match "$b" '^\[100, 150\) +2 \|@{52}\|$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block assign) || bad=$((bad + 1))
    assert_contains "$b" $'@flag[1, x]: 7\n@last: /tmp/o1' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block delete) || bad=$((bad + 1))
    assert_contains "$b" "@kept: 1" && assert_not_contains "$b" "@seen" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block print_clear) || bad=$((bad + 1))
    assert_eq "$(printf '%s\n' "$b" | head -2)" $'Attaching 1 probe...\n@c[rm]: 1' \
        && assert_eq "$(printf '%s\n' "$b" | grep -c '@c')" 1 || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block probe_list) || bad=$((bad + 1))
    assert_match "$b" '^Attaching 2 probes\.\.\.$' \
        && assert_contains "$b" $'@[kprobe:do_unlinkat]: 1\n@[kretprobe:do_unlinkat]: 1' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block tracepoint) || bad=$((bad + 1))
    assert_match "$b" '^exec /bin/rm 1$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block tracepoint_count) || bad=$((bad + 1))
    assert_match "$b" '^@forks: [1-9][0-9]*$' || bad=$((bad + 1))
    cases=$((cases + 1))
    # Real syscall tracepoints, or (linux-4.14, linux-5.4, nobtf-5.10)
    # lowered to kprobes on the syscalls' functions: the same output.
    b=$(block syscall_tracepoint) || bad=$((bad + 1))
    assert_contains "$b" "/tmp/u1" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block control) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\nunrolled 3\nelif' || bad=$((bad + 1))
    cases=$((cases + 1))
    if [ "$KERNEL" = linux-4.14 ]; then
        # No bounded loops before 5.3: refused with the place, nothing loaded.
        b=$(block while_loop 1) || bad=$((bad + 1))
        assert_match "$b" '^stderr: error: 1:[0-9]+: `while` needs a kernel whose verifier takes loops \(5\.3\+\)' || bad=$((bad + 1))
    else
        b=$(block while_loop) || bad=$((bad + 1))
        assert_eq "$b" $'Attaching 1 probe...\nwhile 10 5' || bad=$((bad + 1))
    fi
    cases=$((cases + 1))
    b=$(block values) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\n/v 127.0.0.1 0.0.0.0 13330 0 1 4 1' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block begin_end) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 3 probes...\nhello\nbye\n\n\n@c: 0' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block interval) || bad=$((bad + 1))
    assert_match "$b" '^Attaching 2 probes\.\.\.$' && assert_match "$b" '^@ticks: [3-6]$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block exit_once) || bad=$((bad + 1))
    assert_eq "$(printf '%s\n' "$b" | grep -c once)" 1 || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block json) || bad=$((bad + 1))
    assert_eq "$(printf '%s\n' "$b" | grep .)" '{"type": "attached_probes", "data": {"probes": 1}}'$'\n''{"type": "printf", "data": "/tmp/j1\n"}'$'\n''{"type": "map", "data": {"@c": 1}}' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block own_work) || bad=$((bad + 1))
    assert_contains "$b" "@u[rm]: 1" && assert_not_contains "$b" "@u[nobtf]" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block file) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\nfrom a file' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block e_option) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\nfrom -e' || bad=$((bad + 1))
    cases=$((cases + 1))
    case $KERNEL in
        linux-4.14 | linux-5.4 | *-armhf)
            b=$(block nested 1) || bad=$((bad + 1))
            assert_match "$b" '^stderr: error: 1:[0-9]+: unknown field `file\.f_path`: .*`offsets gen \.\.\. --field file\.f_path`' || bad=$((bad + 1)) ;;
        *)
            b=$(block nested) || bad=$((bad + 1))
            assert_match "$b" '^f250$' || bad=$((bad + 1)) ;;
    esac
    cases=$((cases + 1))
    b=$(block caret 1) || bad=$((bad + 1))
    assert_match "$b" '^stderr: error: 1:[0-9]+: .*\$nope' \
        && assert_contains "$b" 'stderr: kprobe:do_unlinkat { printf("%d\n", $nope); }' \
        && assert_match "$b" '^stderr: {37}\^{5}$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block unknown_field 1) || bad=$((bad + 1))
    assert_match "$b" '^stderr: error: 1:[0-9]+: unknown field `filename\.no_such_member`.*--field filename\.no_such_member' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block unknown_function 1) || bad=$((bad + 1))
    assert_match "$b" '^stderr: error: no_such_function_here cannot be probed' || bad=$((bad + 1))
    cases=$((cases + 1))
    # As many probes as -l lists, each counted under its own name.
    local listed
    b=$(block list_kprobes) || bad=$((bad + 1))
    listed=$(printf '%s\n' "$b" | grep -c .)
    assert_contains "$b" "kprobe:vfs_read" && assert_eq "$(printf '%s\n' "$b" | grep -vc '^kprobe:vfs_rea')" 0 || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block wild_probe) || bad=$((bad + 1))
    assert_match "$b" "^Attaching $listed probes\.\.\.\$" && assert_contains "$b" "@[kprobe:vfs_read]: 4" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block wild_func) || bad=$((bad + 1))
    assert_match "$b" "^Attaching $listed probes\.\.\.\$" && assert_contains "$b" "@[vfs_read]: 4" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block wild_tracepoint) || bad=$((bad + 1))
    assert_match "$b" '^Attaching 2 probes\.\.\.$' \
        && assert_match "$b" '^@\[tracepoint:syscalls:sys_enter_execve\]: [1-9][0-9]*$' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block wild_none 1) || bad=$((bad + 1))
    assert_match "$b" '^stderr: error: 1:[0-9]+: `kprobe:no_such_function_\*`: the wildcard matches no probe of this kernel' || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block wild_tracefs) || bad=$((bad + 1))
    assert_match "$b" "^Attaching $listed probes\.\.\.\$" \
        && assert_eq "$(printf '%s\n' "$b" | grep -c '^kprobe:vfs_read$')" 4 || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block list_verbose) || bad=$((bad + 1))
    assert_contains "$b" $'tracepoint:sched:sched_process_exec\n    __data_loc char[] filename\n    pid_t pid\n    pid_t old_pid' || bad=$((bad + 1))
    cases=$((cases + 1))
    local header pid
    header=$(printf '%s\n' "$out" | grep '^== pid P=') || { fail "no -p case"; return 1; }
    pid=$(sed -n 's/^== pid P=\([0-9]*\) .*/\1/p' <<<"$header")
    b=$(output_block "$out" "$header")
    assert_match "$header" ' rc=0$' && assert_eq "$(printf '%s\n' "$b" | grep -E '^[0-9]+$')" "$pid" || bad=$((bad + 1))
    cases=$((cases + 1))
    b=$(block sigterm) || bad=$((bad + 1))
    assert_contains "$b" "@c: 1" || bad=$((bad + 1))
    cases=$((cases + 1))
    assert_eq "$(printf '%s\n' "$out" | sed -n '/^== left/,$p' | tail -n +2)" "" || bad=$((bad + 1))
    echo "trace corpus on $KERNEL: $cases cases, $bad failed" >&2
    assert_eq "$bad" 0 && assert_eq "$cases" 39
}

# A probe on several functions: one program through one kprobe_multi
# link where the kernel has them (-v says so), else one per function (-v
# says why); either way the same output as one kprobe per function
# (`--attach pmu`), `func` named. A program reading `probe` stays one per
# function.
vmtest_trace_kprobe_multi() {
    kernel_has_bpf && kernel_has_pmu || return 0
    local script=$TEST_TMP/multi.sh
    {
        vm_trace_case_runner
        cat <<'EOF'
head -c 250 /dev/zero >/tmp/f250
DD='exec dd if=/tmp/f250 of=/dev/null bs=100 2>/dev/null'
ENTRY='kprobe:vfs_rea* /comm == "dd"/ { @[func] = count(); }'
RETURN='kretprobe:vfs_rea* /comm == "dd"/ { @[func] = count(); printf("%s %d\n", func, retval); }'
t multi_entry -v "$ENTRY" -c "$DD"
t single_entry -v --attach pmu "$ENTRY" -c "$DD"
t multi_return -v "$RETURN" -c "$DD"
t single_return -v --attach pmu "$RETURN" -c "$DD"
t multi_probe -v 'kprobe:vfs_rea* /comm == "dd"/ { @[probe] = count(); }' -c "$DD"
TWICE='kprobe:vfs_read,kprobe:vfs_rea* /comm == "dd"/ { @[func] = count(); } kprobe:vfs_read* /comm == "dd"/ { @b[func] = count(); }'
t multi_twice -v "$TWICE" -c "$DD"
t single_twice -v --attach pmu "$TWICE" -c "$DD"
EOF
    } >"$script"
    local out
    out=$(vm --timeout 600 --file "$script:/tmp/multi.sh" -- sh /tmp/multi.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/multi.out"
    local bad=0 b single
    stdout() { vm_trace_case "$out" "$1" | grep -v '^stderr: '; }
    b=$(vm_trace_case "$out" multi_entry) || bad=$((bad + 1))
    if kernel_has_kprobe_multi; then
        assert_contains "$b" "stderr: nobtf: kprobe:vfs_rea*: one program on " \
            && assert_contains "$b" "functions through one kprobe_multi link" || bad=$((bad + 1))
    else
        assert_contains "$b" "kprobes, one program per function: this kernel has no kprobe_multi links" || bad=$((bad + 1))
    fi
    assert_contains "$b" "@[vfs_read]: 4" || bad=$((bad + 1))
    single=$(vm_trace_case "$out" single_entry) || bad=$((bad + 1))
    assert_contains "$single" "one program per function: --attach names one way per function" \
        && assert_not_contains "$single" "kprobe_multi link" || bad=$((bad + 1))
    assert_eq "$(stdout multi_entry)" "$(stdout single_entry)" || bad=$((bad + 1))
    b=$(stdout multi_return) || bad=$((bad + 1))
    assert_eq "$(grep -c '^vfs_read [0-9]*$' <<<"$b")" 4 && assert_contains "$b" "@[vfs_read]: 4" || bad=$((bad + 1))
    assert_eq "$b" "$(stdout single_return)" || bad=$((bad + 1))
    # vfs_read named twice in one probe runs its body twice per read, as
    # one kprobe per function does (the second through a link of its own:
    # the kernel refuses a link naming a function twice); a second probe
    # on the same functions has its own link.
    b=$(vm_trace_case "$out" multi_twice) || bad=$((bad + 1))
    if kernel_has_kprobe_multi; then
        assert_not_contains "$b" "refused the kprobe_multi link" \
            && assert_eq "$(grep -c 'through one kprobe_multi link$' <<<"$b")" 3 || bad=$((bad + 1))
    fi
    assert_contains "$b" "@[vfs_read]: 8" && assert_contains "$b" "@b[vfs_read]: 4" || bad=$((bad + 1))
    assert_eq "$(stdout multi_twice)" "$(stdout single_twice)" || bad=$((bad + 1))
    b=$(vm_trace_case "$out" multi_probe) || bad=$((bad + 1))
    assert_contains "$b" "@[kprobe:vfs_read]: 4" || bad=$((bad + 1))
    if kernel_has_kprobe_multi; then
        assert_contains "$b" "one program per function: the program needs it" || bad=$((bad + 1))
    fi
    assert_eq "$bad" 0
}

# A storm through a one-page buffer, rm at the highest priority on nobtf's
# CPU: every one of rm's unlinks is printed or counted lost, the last
# losses included (the kernel reports a full perf ring's count only ahead
# of its next record: lang::flush). On kernels without bpf(2) the same
# program runs on the tracefs back end, whose losses are the buffer's.
vmtest_trace_storm_count_balances() {
    cat >"$TEST_TMP/storm.sh" <<'SCRIPT'
N=3000
mkdir -p /tmp/s; i=0
while [ $i -lt $N ]; do : >/tmp/s/f$i; i=$((i + 1)); done
taskset -c 0 nobtf trace 'kretprobe:do_unlinkat /comm == "rm"/ { printf("ret=%d\n", retval); }' --buffer-pages 1 \
    -c 'renice -n -20 -p $$ >/dev/null || exit 9; exec rm /tmp/s/*' >/tmp/storm.out 2>/tmp/storm.err
echo "== rc=$? n=$N printed=$(grep -c '^ret=0$' /tmp/storm.out) lines=$(grep -c . /tmp/storm.out) $(grep -h '^Lost' /tmp/storm.err)"
grep -v '^Lost' /tmp/storm.err | sed 's/^/stderr: /'
SCRIPT
    local out line printed lines lost
    out=$(vm --timeout 300 --file "$TEST_TMP/storm.sh:/tmp/storm.sh" -- sh /tmp/storm.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >&2
    line=$(grep '^== rc=' <<<"$out") || { fail "no result line"; return 1; }
    assert_match "$line" '^== rc=0 ' || return 1
    printed=$(sed -n 's/.* printed=\([0-9]*\) .*/\1/p' <<<"$line")
    lines=$(sed -n 's/.* lines=\([0-9]*\).*/\1/p' <<<"$line")
    lost=$(sed -n 's/.* Lost \([0-9]*\) events.*/\1/p' <<<"$line")
    # Attaching N probes... is the one other line.
    assert_eq "$lines" $((printed + 1)) || return 1
    [ -n "$lost" ] || { fail "nothing was lost: the accounting was not exercised"; return 1; }
    assert_eq $((printed + lost)) 3000
}

# What runs outside the probes, on real kernels: BEGIN's tables written to
# the maps before the probes are attached, END reading the maps the probes
# left, exit() ending BEGIN, time(), strftime() and elapsed, printf's
# widths and flags; one boot per kernel. (tests/vm/conformance.sh compares
# the same programs with bpftrace's output on debian-6.1.)
trace_runtime_script() {
    vm_trace_case_runner
    cat <<'EOF2'
touch /tmp/r1 /tmp/r2 /tmp/r3 /tmp/r4 /tmp/r5
t begin_table 'BEGIN { @state[1] = "ESTABLISHED"; @state[2] = "SYN_SENT"; } kprobe:do_unlinkat /comm == "rm"/ { printf("%s %s|%s|\n", @state[1], @state[2], @state[3]); } END { clear(@state); }' -c 'exec rm /tmp/r1'
t begin_table_printed 'BEGIN { @name[0] = "zero"; @name[7] = "seven"; exit(); }'
t end_reads 'kprobe:do_unlinkat /comm == "rm"/ { @n = count(); @s[comm] = sum(5); @l = comm; } END { printf("%d %d %s %d\n", @n, @s["rm"], @l, @s["x"]); clear(@n); clear(@s); clear(@l); }' -c 'exec rm /tmp/r2 /tmp/r3'
t begin_exit 'BEGIN { printf("a\n"); exit(); printf("b\n"); } END { printf("end\n"); } kprobe:do_unlinkat { @c = count(); }'
t time 'kprobe:do_unlinkat /comm == "rm"/ { time("%H:%M:%S "); printf("%s %d\n", strftime("%Y-%m-%d", nsecs), elapsed > 0); }' -c 'exec rm /tmp/r4'
echo "== date $(date +%Y-%m-%d)"
export TZ=XYZ-5
t time_zone 'BEGIN { time("%Z %z\n"); exit(); }'
unset TZ
t elapsed 'interval:ms:300 { printf("%d\n", elapsed / 100000000); exit(); }'
t tuple_values 'kprobe:do_unlinkat /comm == "rm"/ { @m[comm, 1] = (-1, comm, (2, "x")); @m[comm, 2] = (3, "ab", (4, "y")); $x = @m[comm, 1]; printf("%d %s %s\n", $x.0, $x.1, @m[comm, 2].2.1); print(@m[comm, 2]); }' -c 'exec rm /tmp/r5'
t printf_flags 'BEGIN { printf("%-5s|%5d|%05d|%x|%X|%lld|%hhu|%c|%%|%p|%u|%o|%.2s|%-4c|%lx|%hd\n", "ab", 42, -42, 255, 255, -1, 257, 65, 0, -1, 8, "xyz", 66, -1, 65537); exit(); }'
EOF2
}

vmtest_trace_runtime() {
    kernel_has_bpf || { skip "BEGIN tables and END's map reads need BPF maps"; return; }
    trace_runtime_script >"$TEST_TMP/runtime.sh"
    local out
    out=$(vm --timeout 300 --file "$TEST_TMP/runtime.sh:/tmp/runtime.sh" -- sh /tmp/runtime.sh 2>&1) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >"$TEST_TMP/runtime.out"
    local b bad=0
    block() { vm_trace_case "$out" "$@"; }
    b=$(block begin_table) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 3 probes...\nESTABLISHED SYN_SENT||' || bad=$((bad + 1))
    b=$(block begin_table_printed) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\n\n\n@name[0]: zero\n@name[7]: seven' || bad=$((bad + 1))
    b=$(block end_reads) || bad=$((bad + 1))
    # A keyless count() prints even when cleared, as bpftrace's array.
    assert_eq "$b" $'Attaching 2 probes...\n2 10 rm 0\n\n\n\n@n: 0' || bad=$((bad + 1))
    b=$(block begin_exit) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 3 probes...\na\nend\n\n\n@c: 0' || bad=$((bad + 1))
    local day
    day=$(printf '%s\n' "$out" | sed -n 's/^== date //p')
    b=$(block time) || bad=$((bad + 1))
    assert_match "$b" "^[0-2][0-9]:[0-5][0-9]:[0-6][0-9] $day 1\$" || bad=$((bad + 1))
    b=$(block time_zone) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\nXYZ +0500' || bad=$((bad + 1))
    b=$(block elapsed) || bad=$((bad + 1))
    assert_match "$b" '^([3-9]|[1-9][0-9]+)$' || bad=$((bad + 1))
    b=$(block printf_flags) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\nab   |   42|-0042|ff|FF|-1|1|A|%|(nil)|4294967295|10|xy|B   |ffffffffffffffff|1' || bad=$((bad + 1))
    # Tuples as map values, copied through map lookups as strings are.
    b=$(block tuple_values) || bad=$((bad + 1))
    assert_eq "$b" $'Attaching 1 probe...\n-1 rm y\n(3, ab, (4, y))\n\n\n@m[rm, 1]: (-1, rm, (2, x))\n@m[rm, 2]: (3, ab, (4, y))' || bad=$((bad + 1))
    echo "trace runtime on $KERNEL: 9 cases, $bad failed" >&2
    assert_eq "$bad" 0
}

# Stopped by SIGINT under a storm, every event is printed whole: each run
# of the program writes two records (printf, then a slow loop, then the
# line's end, as execsnoop's printf then join), and a stop between them
# once left half a line. Several stops per boot: most land inside a run.
# Records are counted, not lines: the perf rings are per CPU, and when dd
# moves CPU the reader may print one event's first record before the
# last one's second (seen on linux-5.4: `a 69 a 69 b 2000`, `b 2000`).
vmtest_trace_stop_prints_events_whole() {
    kernel_has_bpf || { skip "the tracefs back end prints each event from one trace line"; return; }
    [ "$KERNEL" != linux-4.14 ] || { skip "no bounded loops before 5.3 to make a run last"; return; }
    cat >"$TEST_TMP/stop.sh" <<'SCRIPT'
P='kprobe:vfs_read /comm == "dd"/ { printf("a %d ", pid); $i = 0; while ($i < 2000) { $i++; } printf("b %d\n", $i); }'
for run in 1 2 3 4 5 6; do
    rm -f /tmp/w.out /tmp/w.err
    dd if=/dev/zero of=/dev/null bs=1 count=1000000000 2>/dev/null &
    storm=$!
    nobtf trace "$P" >/tmp/w.out 2>/tmp/w.err &
    tracer=$!
    # Attached and printing (its signals are blocked by then).
    i=0
    while [ $i -lt 300 ] && ! grep -q '^a ' /tmp/w.out 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    sleep 0.$run
    kill -INT $tracer
    wait $tracer
    rc=$?
    kill $storm
    wait $storm 2>/dev/null
    firsts=$(grep -o 'a [0-9]* ' /tmp/w.out | wc -l)
    seconds=$(grep -o 'b 2000' /tmp/w.out | wc -l)
    grep -v '^Attaching 1 probe\.\.\.$' /tmp/w.out | sed -e 's/a [0-9]* //g' -e 's/b 2000//g' | grep . >/tmp/w.other
    echo "== run $run rc=$rc firsts=$firsts seconds=$seconds other=$(grep -c . /tmp/w.other)"
    head -n 3 /tmp/w.other | sed 's/^/other: /'
    grep -v -E '^(a [0-9]+ b 2000|Attaching 1 probe\.\.\.|)$' /tmp/w.out | head -n 3 | sed 's/^/mixed: /'
    sed 's/^/stderr: /' /tmp/w.err
done
SCRIPT
    local out bad=0 runs
    out=$(vm --timeout 600 --file "$TEST_TMP/stop.sh:/tmp/stop.sh" -- sh /tmp/stop.sh) \
        || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    printf '%s\n' "$out" >&2
    runs=$(grep -c '^== run ' <<<"$out")
    assert_eq "$runs" 6 || return 1
    # Each run printed events, as many second records as first ones, and
    # nothing else; a run that lost records (a full ring can drop one of
    # an event's two) is not judged, but most must be.
    local run judged=0 block line firsts seconds
    for run in 1 2 3 4 5 6; do
        block=$(sed -n "/^== run $run /,/^== run /p" <<<"$out")
        grep -q '^stderr: Lost [0-9]* events' <<<"$block" && continue
        judged=$((judged + 1))
        line=$(head -n1 <<<"$block")
        assert_match "$line" "^== run $run rc=0 firsts=[1-9][0-9]* seconds=[0-9]+ other=0\$" \
            || { fail "run $run printed no event, something else, or failed" || bad=$((bad + 1)); continue; }
        firsts=${line#*firsts=} seconds=${line#*seconds=}
        assert_eq "${seconds%% *}" "${firsts%% *}" \
            || { fail "run $run printed an event's first record without its second" || bad=$((bad + 1)); }
    done
    [ "$judged" -ge 4 ] || { fail "only $judged runs lost nothing" || bad=$((bad + 1)); }
    assert_eq "$bad" 0
}
