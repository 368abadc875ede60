# nobtf trace against bpftrace, its peer: on debian-6.1 (BTF, and a kernel
# bpftrace 0.23 supports), in one boot of the bench's Debian 13 root
# filesystem, each program of tests/vm/trace.sh's corpus runs under bpftrace
# and under nobtf over the same deterministic workload, and prints the same
# lines, up to their order. A program bpftrace refuses is listed with its
# reason and not counted.
# shellcheck shell=bash

# The VM-side script: for each program, `== NAME TOOL rc=STATUS`, the tool's
# stdout, then its stderr prefixed with `stderr: `. Every workload is fixed
# (known files unlinked, known bytes read by dd) and every probe is filtered
# by comm, so nothing else in the VM enters the results.
conformance_script() {
    cat <<'EOF'
W=/tmp/w
mkdir -p $W
head -c 250 /dev/zero >/tmp/f250
# The fork case's shell, under a name of its own to filter on.
cp /usr/bin/dash $W/forker
printf '/usr/bin/ls / >/dev/null\n/usr/bin/ls / >/dev/null\n' >$W/forks.sh
echo 'BEGIN { printf("from a file\n"); exit(); }' >/tmp/prog.bt
# c NAME SETUP CMD ARG...: SETUP (a shell line) runs before each tool; the
# tools get the same ARG... and, when CMD is not empty, -c CMD.
c() {
    name=$1 setup=$2 cmd=$3
    shift 3
    for tool in bpftrace nobtf; do
        sh -c "$setup"
        if [ $tool = bpftrace ]; then
            run=bpftrace
        else
            run="nobtf trace"
        fi
        if [ -n "$cmd" ]; then
            $run "$@" -c "$cmd" >/tmp/out 2>/tmp/err
        else
            $run "$@" >/tmp/out 2>/tmp/err
        fi
        echo "== $name $tool rc=$?"
        cat /tmp/out
        sed 's/^/stderr: /' /tmp/err
    done
}
DD='/usr/bin/dd if=/tmp/f250 of=/dev/null bs=100 status=none'
c issue 'touch /tmp/a.txt' '/usr/bin/rm /tmp/a.txt' -e 'kprobe:do_unlinkat /comm == "rm"/ { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }'
c issue_counter 'touch /tmp/a.txt' '/usr/bin/rm /tmp/a.txt' -e 'kprobe:do_unlinkat /comm == "rm"/ { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt.counter); }'
c arg_string 'touch /tmp/t1' '/usr/bin/rm /tmp/t1' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s\n", str(((struct filename *)arg1)->name)); }'
c retval 'touch /tmp/t2' '/usr/bin/rm -f /tmp/t2 /tmp/missing' -e 'kretprobe:do_unlinkat /comm == "rm"/ { printf("ret=%d\n", retval); }'
c retval_int32 'touch /tmp/t2' '/usr/bin/rm /tmp/t2 /tmp/missing' -e 'kretprobe:do_unlinkat /comm == "rm"/ { printf("ret=%d\n", (int32)retval); }'
c builtins 'touch /tmp/t3' '/usr/bin/rm /tmp/t3' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %d %d %s %s\n", pid == tid, uid, gid, func, probe); }'
c arithmetic 'touch /tmp/s1' '/usr/bin/rm /tmp/s1' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %u %x %d %d\n", (int8)255, (uint8)257, 0xff & 0x0f, 7 % 3 + (1 << 3), pid == tid ? 10 : 20); }'
c ternary_string 'touch /tmp/s1' '/usr/bin/rm /tmp/s1' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s\n", comm == "rm" ? "yes" : "no"); }'
c signed_division 'touch /tmp/s1' '/usr/bin/rm /tmp/s1' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d\n", -5 / 1); }'
c arithmetic_s8 'touch /tmp/s1' '/usr/bin/rm /tmp/s1' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%d %u\n", (s8)255, (u8)257); }'
c control 'touch /tmp/v1' '/usr/bin/rm /tmp/v1' -e 'kprobe:do_unlinkat /comm == "rm"/ { $n = 0; unroll(3) { $n++; } if ($n == 3) { printf("unrolled %d\n", $n); } else { printf("wrong\n"); } if ($n > 5) { printf("no\n"); } else if ($n > 2) { let $s = "elif"; printf("%s\n", $s); } else { return; } }'
c while_loop 'touch /tmp/v2' '/usr/bin/rm /tmp/v2' -e 'kprobe:do_unlinkat /comm == "rm"/ { $i = 0; $odd = 0; while ($i < 100) { $i++; if ($i > 9) { break; } if ($i % 2 == 0) { continue; } $odd++; } printf("while %d %d\n", $i, $odd); }'
c while_simple 'touch /tmp/v6' '/usr/bin/rm /tmp/v6' -e 'kprobe:do_unlinkat /comm == "rm"/ { $i = 0; $sum = 0; while ($i < 5) { $i++; $sum += $i; } printf("while %d %d\n", $i, $sum); }'
c functions 'touch /tmp/v3' '/usr/bin/rm /tmp/v3' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s %s %d %d %d %d %d\n", ntop(2, 0x0100007f), ntop(0), bswap((uint16)0x1234), strncmp(comm, "rmx", 2), strcontains(comm, "m"), sizeof(uint32), comm == "rm"); }'
c pointers 'touch /tmp/v4' '/usr/bin/rm /tmp/v4' -e 'kprobe:do_unlinkat /comm == "rm"/ { $p = (uint8 *)((struct filename *)arg1)->name; printf("%c%c\n", *$p, $p[5]); }'
c tuple_keys 'touch /tmp/v5' '/usr/bin/rm /tmp/v5' -e 'kprobe:do_unlinkat /comm == "rm"/ { $k = (1, comm); @a[$k] = 7; @b[2, "x"] = 1; delete(@b, (2, "x")); @c[comm] = 1; delete(@c, comm); }'
c count 'touch /tmp/c1 /tmp/c2' '/usr/bin/rm /tmp/c1 /tmp/c2' -e 'kprobe:do_unlinkat /comm == "rm"/ { @[comm] = count(); @n = count(); }'
c aggregates '' "$DD" -e 'kretprobe:vfs_read /comm == "dd"/ { @mn = min(retval); @mx = max(retval); @s = sum(retval); @a = avg(retval); @c = count(); }'
c stats '' "$DD" -e 'kretprobe:vfs_read /comm == "dd"/ { @st = stats(retval); @by[retval > 100] = stats(retval); }'
c hist '' "$DD" -e 'kretprobe:vfs_read /comm == "dd"/ { @h = hist(retval); }'
c lhist '' "$DD" -e 'kretprobe:vfs_read /comm == "dd"/ { @l = lhist(retval, 0, 1000, 100); }'
c assign 'touch /tmp/o1' '/usr/bin/rm /tmp/o1' -e 'kprobe:do_unlinkat /comm == "rm"/ { @last = str(((struct filename *)arg1)->name); @flag[1, "x"] = 7; }'
c delete 'touch /tmp/o2' '/usr/bin/rm /tmp/o2' -e 'kprobe:do_unlinkat /comm == "rm"/ { @seen[str(((struct filename *)arg1)->name)] = 1; delete(@seen[str(((struct filename *)arg1)->name)]); @kept = 1; }'
c print_clear 'touch /tmp/d1' '/usr/bin/rm /tmp/d1' -e 'kprobe:do_unlinkat /comm == "rm"/ { @c[comm] = count(); print(@c); clear(@c); }'
c probe_list 'touch /tmp/o3' '/usr/bin/rm /tmp/o3' -e 'kprobe:do_unlinkat,kretprobe:do_unlinkat /comm == "rm"/ { @[probe] = count(); }'
# Not str(args->filename) (or args.filename): bpftrace 0.23 prints it empty
# on debian-6.1 where nobtf prints /usr/bin/rm.
c tracepoint '' '/usr/bin/rm -f /tmp/nothing' -e 'tracepoint:sched:sched_process_exec /comm == "rm"/ { printf("exec %d\n", args->pid == pid); }'
c tracepoint_count '' "$W/forker $W/forks.sh" -e 'tracepoint:sched:sched_process_fork /comm == "forker"/ { @forks = count(); }'
c syscall_tracepoint 'touch /tmp/u1' '/usr/bin/rm /tmp/u1' -e 'tracepoint:syscalls:sys_enter_unlinkat /comm == "rm"/ { printf("%s\n", str(args->pathname)); }'
c begin_end 'touch /tmp/e1' '/usr/bin/rm /tmp/e1' -e 'BEGIN { printf("hello\n"); } END { printf("bye\n"); } kprobe:do_unlinkat /comm == "rm"/ { @c = count(); }'
c interval '' '' -e 'interval:ms:300 { printf("tick\n"); exit(); }'
c exit_once 'touch /tmp/x1 /tmp/x2 /tmp/x3' '/usr/bin/rm /tmp/x1 /tmp/x2 /tmp/x3' -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("once\n"); exit(); }'
c file '' '' /tmp/prog.bt
c e_option '' '' -e 'BEGIN { printf("from -e\n"); exit(); }'
c nested '' "$DD" -e 'kprobe:vfs_read /comm == "dd"/ { $f = (struct file *)arg0; printf("%s\n", str(((struct dentry *)$f->f_path.dentry)->d_name.name)); }'
c json 'touch /tmp/j1' '/usr/bin/rm /tmp/j1' -f json -e 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s\n", str(((struct filename *)arg1)->name)); @c = count(); }'
# BEGIN's tables, END reading maps, exit() in BEGIN, time, printf's flags.
c begin_table 'touch /tmp/r1' '/usr/bin/rm /tmp/r1' -e 'BEGIN { @state[1] = "ESTABLISHED"; @state[2] = "SYN_SENT"; } kprobe:do_unlinkat /comm == "rm"/ { printf("%s %s|%s|\n", @state[1], @state[2], @state[3]); } END { clear(@state); }'
c begin_table_printed '' '' -e 'BEGIN { @name[0] = "zero"; @name[7] = "seven"; exit(); }'
# (bpftrace will not printf a count() with %d: plain values here.)
c end_reads 'touch /tmp/r2 /tmp/r3' '/usr/bin/rm /tmp/r2 /tmp/r3' -e 'kprobe:do_unlinkat /comm == "rm"/ { @n = @n + 1; @s[comm] = 5; @l = comm; } END { printf("%d %d %s\n", @n, @s["rm"], @l); clear(@n); clear(@s); clear(@l); }'
c begin_exit '' '' -e 'BEGIN { printf("a\n"); exit(); printf("b\n"); } END { printf("end\n"); }'
c time 'touch /tmp/r4' '/usr/bin/rm /tmp/r4' -e 'kprobe:do_unlinkat /comm == "rm"/ { time("%H:%M:%S "); time(); printf("%s|%d\n", strftime("%Y-%m-%d %H:%M:%S.%f", nsecs), elapsed < 100000000000); }'
c printf_flags '' '' -e 'BEGIN { printf("%-5s|%5d|%05d|%x|%X|%lld|%hhu|%c|%%|%p|%u|%o|%.2s|%-4c|%lx|%hd\n", "ab", 42, -42, 255, 255, -1, 257, 65, 0, -1, 8, "xyz", 66, -1, 65537); exit(); }'
# Wildcards: one attach point per match (each its own probe, func and
# tracepoint format), counted as bpftrace counts them; -l and -lv.
c wild_probe '' "$DD" -e 'kprobe:vfs_rea* /comm == "dd"/ { @[probe] = count(); }'
c wild_func '' "$DD" -e 'kretprobe:vfs_rea* /comm == "dd"/ { @[func] = count(); }'
c wild_tracepoint '' '/usr/bin/true' -e 'tracepoint:syscalls:sys_enter_exec* /str(args->filename) == "/usr/bin/true"/ { @[probe] = count(); }'
c wild_none '' '' -e 'kprobe:no_such_function_* { }'
c list_kprobes '' '' -l 'kprobe:vfs_r*'
# A list's wildcard that matches nothing is left out (dcsnoop's
# lookup_fast.constprop.*); print() of values and tuples, cat(), join().
c wild_list_none '' "$DD" -e 'kprobe:vfs_read, kprobe:no_such_function_* /comm == "dd"/ { @[probe] = count(); }'
c print_values 'touch /tmp/p1' '/usr/bin/rm /tmp/p1' -e 'kprobe:do_unlinkat /comm == "rm"/ { $t = (1, comm); @m[1] = 5; print(1); print(-2); print((1, "b", comm)); print($t); print(@m[1]); print((uint32)-1); print(comm); print((int8)-3); clear(@m); }'
c print_json 'touch /tmp/p2' '/usr/bin/rm /tmp/p2' -f json -e 'kprobe:do_unlinkat /comm == "rm"/ { print(1); print((1, "b\"q", comm)); print(comm); }'
c cat 'touch /tmp/p3; echo hello-cat >/tmp/cat.txt' '/usr/bin/rm /tmp/p3' -e 'kprobe:do_unlinkat /comm == "rm"/ { cat("/tmp/cat.%s", "txt"); cat("/nonexistent"); printf("after\n"); }'
c cat_json 'touch /tmp/p4; echo hello-cat >/tmp/cat.txt' '/usr/bin/rm /tmp/p4' -f json -e 'kprobe:do_unlinkat /comm == "rm"/ { cat("/tmp/cat.txt"); }'
c join '' '/usr/bin/ls -d / /tmp' -e 'tracepoint:syscalls:sys_enter_execve /str(args->filename) == "/usr/bin/ls"/ { join(args->argv); join(args->argv, ","); }'
c join_json '' '/usr/bin/ls -d /' -f json -e 'tracepoint:syscalls:sys_enter_execve /str(args->filename) == "/usr/bin/ls"/ { join(args->argv); }'
c list_verbose '' '' -lv 'tracepoint:syscalls:sys_enter_openat'
# A string that fills max_strlen (NUL included) is marked `..`, before
# its width; a shorter one is not.
# buf() outside printf: a map's value and key, a variable, print().
c buf_values 'touch /tmp/q1' '/usr/bin/rm /tmp/q1' -e 'kprobe:do_unlinkat /comm == "rm"/ { $n = ((struct filename *)arg1)->name; @b = buf($n, 6); @k[buf($n, 4)] = 1; $v = buf($n, 3); printf("[%r]\n", $v); print(buf($n, 5)); }'
# Tuples within tuples, printed and read by index.
c nested_tuples 'touch /tmp/q2' '/usr/bin/rm /tmp/q2' -e 'kprobe:do_unlinkat /comm == "rm"/ { $t = (1, (-2, "ab"), comm); print($t); print((7, (comm, (8, "x")))); $u = $t.1; printf("%d %s\n", $u.0, $u.1); }'
c nested_tuples_json 'touch /tmp/q3' '/usr/bin/rm /tmp/q3' -f json -e 'kprobe:do_unlinkat /comm == "rm"/ { print((1, (-2, "ab"), comm)); }'
c max_strlen 'touch /tmp/abcdefghij /tmp/a' '/usr/bin/rm /tmp/abcdefghij /tmp/a' -e 'config = { max_strlen = 8 } kprobe:do_unlinkat /comm == "rm"/ { printf("%s|%-10s|\n", str(((struct filename *)arg1)->name), str(((struct filename *)arg1)->name)); }'
# system() runs its command behind --unsafe, and is refused without it.
c system 'touch /tmp/p5' '/usr/bin/rm /tmp/p5' --unsafe -e 'kprobe:do_unlinkat /comm == "rm"/ { system("echo sys %s %d", comm, 7); printf("after\n"); }'
c system_json 'touch /tmp/p6' '/usr/bin/rm /tmp/p6' --unsafe -f json -e 'kprobe:do_unlinkat /comm == "rm"/ { system("echo sys"); }'
c system_safe 'touch /tmp/p7' '/usr/bin/rm /tmp/p7' -e 'kprobe:do_unlinkat /comm == "rm"/ { system("echo no"); }'
EOF
}

vmtest_conformance_with_bpftrace() {
    [ "$KERNEL" = debian-6.1 ] || { skip "conformance runs on debian-6.1, where bpftrace runs"; return; }
    (ensure_bench_rootfs) || { fail "the bench root filesystem (bpftrace's) could not be built"; return 1; }
    conformance_script >"$TEST_TMP/conformance.sh"
    local out start=$SECONDS
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 1500 --file "$TEST_TMP/conformance.sh:/tmp/conformance.sh" \
        -- sh /tmp/conformance.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    echo "conformance on $KERNEL: $((SECONDS - start)) s" >&2
    printf '%s\n' "$out" >"$TEST_TMP/conformance.out"
    local names name header rc ours theirs same=0 total=0 refused=() empty=()
    names=$(printf '%s\n' "$out" | sed -n 's/^== \([a-z_0-9]*\) bpftrace rc=[0-9]*$/\1/p')
    for name in $names; do
        header=$(printf '%s\n' "$out" | grep "^== $name bpftrace rc=")
        rc=${header##*rc=}
        theirs=$(output_block "$out" "$header")
        if [ "$rc" != 0 ]; then
            refused+=("$name: $(conformance_refusal "$theirs")")
            continue
        fi
        total=$((total + 1))
        header=$(printf '%s\n' "$out" | grep "^== $name nobtf rc=") || { fail "no nobtf run of $name"; return 1; }
        ours=$(output_block "$out" "$header")
        # Equal and not vacuous: a workload that never fired leaves both
        # with the attach line alone.
        if [ -z "$(conformance_normal "$theirs" | grep -v '^Attaching [0-9]* probes\{0,1\}\.\.\.$')" ]; then
            printf 'EMPTY %s: bpftrace printed nothing beyond its attach line\n' "$name" >&2
            empty+=("$name")
        elif [ "${header##*rc=}" = 0 ] && [ "$(conformance_normal "$ours")" = "$(conformance_normal "$theirs")" ]; then
            same=$((same + 1))
        else
            printf 'DIFFERENT %s (%s): bpftrace (-) against nobtf (+), normalised:\n' "$name" "$header" >&2
            diff <(conformance_normal "$theirs") <(conformance_normal "$ours") >&2
            printf -- '--- nobtf stderr:\n%s\n' "$(printf '%s\n' "$ours" | grep '^stderr: ')" >&2
        fi
    done
    local r
    for r in ${refused[@]+"${refused[@]}"}; do echo "summary: refused by bpftrace, not counted: $r" >&2; done
    echo "summary: $same of $total programs identical; ${#refused[@]} refused by bpftrace" >&2
    assert_eq "$(printf '%s\n' "$names" | grep -c .)" "$(conformance_script | grep -c '^c ')" || { fail "not every program ran"; return 1; }
    # bpftrace 0.23 refuses these six (an atomic_t printed with %d, a
    # string ternary and a while loop with break and continue its verifier
    # run rejects, the kernel's s8/u8 names, a wildcard matching nothing,
    # which nobtf refuses too, system() without --unsafe): another refusal is a failure, not a smaller
    # count.
    assert_eq "$(printf '%s\n' ${refused[@]+"${refused[@]}"} | sed -n 's/^\([a-z_0-9]*\): .*/\1/p' | paste -sd' ')" \
        "issue ternary_string arithmetic_s8 while_loop wild_none system_safe" || { fail "bpftrace refused other programs than expected"; return 1; }
    # Both refuse system() without --unsafe, in the same words.
    local tool
    for tool in bpftrace nobtf; do
        header=$(printf '%s\n' "$out" | grep "^== system_safe $tool rc=")
        assert_contains "$(output_block "$out" "$header")" 'system() is an unsafe function being used in safe mode' \
            || { fail "$tool did not refuse system() in safe mode"; return 1; }
    done
    assert_eq "${empty[*]+${empty[*]}}" "" || { fail "programs whose workload printed nothing: ${empty[*]}"; return 1; }
    assert_eq "$same" "$total"
}

# What both tools must agree on: stdout lines without blank ones, sorted
# (bpftrace prints maps and concurrent events in no fixed order), times of
# day (HH:MM:SS, and .micros) masked.
conformance_normal() {
    printf '%s\n' "$1" | grep -v '^stderr: ' | grep -v '^$' \
        | sed -E 's/[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]{6})?/HH:MM:SS/g' | LC_ALL=C sort
}

# Why bpftrace refused a program: its first error line, else its first
# line on stderr.
conformance_refusal() {
    { grep -m1 '^stderr: .*ERROR' <<<"$1" || grep -m1 '^stderr: ' <<<"$1" || echo "stderr: (nothing said)"; } | cut -c9-
}
