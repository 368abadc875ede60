# nobtf trace's uprobes on real kernels, over the bench's Debian 13 root
# filesystem (a glibc, getent, bash): a library by its bare name, a path,
# an address, SYMBOL+OFFSET, a wildcard, uretprobe's retval, str() of a
# user pointer, sarg, -p, -l of a file's functions,
# missing symbols under each missing_probes policy, and the refusals (no
# such library, a file that is not a program, usdt). debian-6.1 and
# linux-5.4 attach by the uprobe PMU (and once by tracefs, forced),
# linux-4.14 by tracefs uprobe_events (the PMU came in 4.17). On debian-6.1 the same programs
# also run under bpftrace 0.23 and must print the same.
# shellcheck shell=bash

# The VM-side script (see vm_trace_case_runner); with the argument
# `bpftrace`, bpftrace runs the cases both tracers run.
uprobe_script() {
    vm_trace_case_runner
    cat <<'EOF'
TRACER=${1:-nobtf}
# `nobtf trace ARGS` as the runner says it, under bpftrace.
[ "$TRACER" = bpftrace ] && nobtf() { shift; bpftrace "$@"; }
LIBC=$(ls /lib/*-linux-gnu/libc.so.6 | head -1)
# A dynamic symbol's address in an ELF64 little-endian file (no binutils here).
symbol_address() {
    perl -e 'open my $f, "<:raw", $ARGV[0] or die; local $/; my $d = <$f>;
        my $shoff = unpack("Q<", substr($d, 0x28, 8)); my ($es, $n) = unpack("v v", substr($d, 0x3A, 4));
        for my $i (0 .. $n - 1) {
            my (undef, $type, undef, undef, $off, $size, $link) = unpack("V V Q< Q< Q< Q< V", substr($d, $shoff + $i * $es, 64));
            next unless $type == 11;
            my $str = (unpack("V V Q< Q< Q<", substr($d, $shoff + $link * $es, 64)))[4];
            for (my $o = $off; $o < $off + $size; $o += 24) {
                my ($name, undef, undef, undef, $value) = unpack("V C C v Q<", substr($d, $o, 24));
                if (unpack("Z*", substr($d, $str + $name, 256)) eq $ARGV[1]) { printf "0x%x\n", $value; exit }
            }
        }' "$1" "$2"
}
# The workloads, as scripts for sh (bpftrace's -c runs an ELF file, no
# shell): getent's own output must not mix with the tracer's.
printf '#!/bin/sh\nexec /usr/bin/getent ahosts localhost >/dev/null\n' >/tmp/ahosts
printf '#!/bin/sh\nexec /usr/bin/getent hosts localhost >/dev/null\n' >/tmp/hosts
chmod +x /tmp/ahosts /tmp/hosts
echo "== setup pmu=$([ -e /sys/bus/event_source/devices/uprobe ] && echo yes || echo no) libc=$LIBC"
t lib_arg -e 'uprobe:libc:getaddrinfo /comm == "getent"/ { printf("%s %s %s\n", str(arg0), func, probe); }' -c '/bin/sh /tmp/ahosts'
t path_retval -e "uretprobe:$LIBC:getaddrinfo /comm == \"getent\"/ { printf(\"ret=%d\\n\", retval); }" -c '/bin/sh /tmp/ahosts'
t wildcard -e 'uprobe:libc:gethostbyname* /comm == "getent"/ { printf("%s\n", probe); }' -c '/bin/sh /tmp/hosts'
t entry_return -e 'uprobe:libc:getaddrinfo /comm == "getent"/ { @name[tid] = arg0; } uretprobe:libc:getaddrinfo /@name[tid]/ { printf("%s %d\n", str(@name[tid]), retval); delete(@name, tid); }' -c '/bin/sh /tmp/ahosts'
t ignore -e 'config = { missing_probes = "ignore" } uprobe:libc:getaddrinfo, uprobe:libc:no_such_function /comm == "getent"/ { printf("hit\n"); }' -c '/bin/sh /tmp/ahosts'
t warn -e 'uprobe:libc:getaddrinfo, uprobe:libc:no_such_function /comm == "getent"/ { printf("hit\n"); }' -c '/bin/sh /tmp/ahosts'
# __libc_start_main's 7th argument, stack_end, is the first on the stack:
# a stack address (the return address one slot lower is in the program).
t sarg -e 'uprobe:libc:__libc_start_main /comm == "getent"/ { printf("%d\n", sarg0 > 0x7ff000000000); }' -c '/bin/sh /tmp/ahosts'
t missing_symbol -e 'uprobe:libc:no_such_function { printf("x\n"); }'
t missing_library -e 'uretprobe:libreadline:readline { printf("x\n"); }'
# -l of a file's functions, by a library's name and by path.
t list_lib -l 'uprobe:libc:getaddrinf*'
t list_path -l "uretprobe:$LIBC:gethostbyname2*"
if [ "$TRACER" = bpftrace ]; then exit 0; fi
ADDR=$(symbol_address "$LIBC" getaddrinfo)
echo "== setup getaddrinfo=$ADDR"
t address -e "uprobe:$LIBC:$ADDR /comm == \"getent\"/ { printf(\"%s\\n\", str(arg0)); }" -c '/bin/sh /tmp/ahosts'
t tracefs_attach --attach tracefs -e 'uprobe:libc:getaddrinfo /comm == "getent"/ { printf("%s\n", str(arg0)); }' -c '/bin/sh /tmp/ahosts'
t not_a_program -e 'uprobe:/etc/hostname:main { printf("x\n"); }'
t usdt -e 'usdt:/usr/bin/bash:main { printf("x\n"); }'
# SYMBOL+OFFSET: getaddrinfo+4 is an instruction's start (after endbr64,
# or after push %r15; push %r14 as in Debian 13's libc); nobtf cannot check
# that on x86 without --unsafe, as a bpftrace built without its
# disassembler (Debian's bpftrace has one and attaches it).
echo "== setup prologue=$(perl -e 'open my $f, "<:raw", $ARGV[0] or die; seek $f, hex($ARGV[1]), 0; read $f, my $b, 4; print unpack("H*", $b)' "$LIBC" "$ADDR")"
t offset --unsafe -e 'uprobe:libc:getaddrinfo+4 /comm == "getent"/ { printf("%s %s\n", probe, str(arg0)); }' -c '/bin/sh /tmp/ahosts'
t offset_safe -e 'uprobe:libc:getaddrinfo+4 { printf("x\n"); }'
t offset_return -e 'uretprobe:libc:getaddrinfo+4 { printf("x\n"); }'
t offset_outside --unsafe -e 'uprobe:libc:getaddrinfo+0x100000 { printf("x\n"); }'
t list_missing -l 'uprobe:/etc/hostname:*'
# -p: only that process's calls, though another process makes the same.
sh -c 'sleep 4; exec /usr/bin/getent ahosts localhost >/dev/null' & P=$!
sh -c 'sleep 4; exec /usr/bin/getent ahosts localhost >/dev/null' &
t "pid P=$P" -p "$P" -e 'uprobe:libc:getaddrinfo { printf("%d %s\n", pid, str(arg0)); }'
wait
EOF
}

# uprobe_case OUT NAME [RC]: that case's output; its header must say
# rc=RC (0).
uprobe_case() {
    local header rc=${3:-0}
    header=$(grep "^== $2 rc=" <<<"$1") || { fail "no case $2"; return 1; }
    [ "$header" = "== $2 rc=$rc" ] || { output_block "$1" "$header" >&2; fail "case $2: $header, expected rc=$rc"; return 1; }
    output_block "$1" "$header"
}

vmtest_uprobe() {
    case $KERNEL in
        debian-6.1|linux-5.4|linux-4.14) ;;
        *) skip "the bench root filesystem (a glibc) is x86-64; uprobes run on debian-6.1, linux-5.4 (PMU) and linux-4.14 (tracefs)"; return ;;
    esac
    (ensure_bench_rootfs) || { fail "the bench root filesystem could not be built"; return 1; }
    uprobe_script >"$TEST_TMP/uprobe.sh"
    local out
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 2048 --timeout 900 --file "$TEST_TMP/uprobe.sh:/tmp/uprobe.sh" \
        -- sh /tmp/uprobe.sh 2>&1) || { printf '%s\n' "$out" >&2; fail "the VM script failed"; return 1; }
    # Kept under target/ (git ignores it) to read after a failure.
    printf '%s\n' "$out" >"$NOBTF_ROOT/target/uprobe-$KERNEL.out"
    local libc=/lib/x86_64-linux-gnu/libc.so.6 b bad=0 pid
    # The uprobe PMU came with the kprobe PMU (4.17).
    if kernel_has_pmu; then
        assert_contains "$out" "== setup pmu=yes libc=$libc" || bad=$((bad + 1))
    else
        assert_contains "$out" "== setup pmu=no libc=$libc" || bad=$((bad + 1))
    fi
    b=$(uprobe_case "$out" lib_arg) || return 1
    assert_contains "$b" $'Attaching 1 probe...\nlocalhost getaddrinfo uprobe:'"$libc"':getaddrinfo' || bad=$((bad + 1))
    b=$(uprobe_case "$out" path_retval) || return 1
    # getaddrinfo's own status (EAI_AGAIN, -3, in the VM: no resolver).
    assert_match "$b" '^ret=-?[0-9]+$' || bad=$((bad + 1))
    # gethostbyname, gethostbyname2, and their _r forms; `getent hosts`
    # asks gethostbyname2 (which calls gethostbyname2_r) for IPv6, then IPv4.
    b=$(uprobe_case "$out" wildcard) || return 1
    local two=$'\n'"uprobe:$libc:gethostbyname2"$'\n'"uprobe:$libc:gethostbyname2_r"
    assert_contains "$b" "Attaching 4 probes...$two$two" || bad=$((bad + 1))
    b=$(uprobe_case "$out" entry_return) || return 1
    assert_match "$b" '^localhost -?[0-9]+$' || bad=$((bad + 1))
    b=$(uprobe_case "$out" ignore) || return 1
    assert_contains "$b" "hit" && assert_not_contains "$b" "WARNING" || bad=$((bad + 1))
    b=$(uprobe_case "$out" warn) || return 1
    assert_contains "$b" "hit" \
        && assert_contains "$b" "stderr: WARNING: Could not resolve symbol: $libc:no_such_function, skipping probe." || bad=$((bad + 1))
    b=$(uprobe_case "$out" sarg) || return 1
    assert_eq "$(head -2 <<<"$b")" $'Attaching 1 probe...\n1' || bad=$((bad + 1))
    b=$(uprobe_case "$out" missing_symbol 1) || return 1
    assert_contains "$b" "stderr: error: Could not resolve symbol: $libc:no_such_function, cannot attach probe." || bad=$((bad + 1))
    b=$(uprobe_case "$out" missing_library 1) || return 1
    assert_contains "$b" "uprobe target file 'libreadline' does not exist or is not executable" || bad=$((bad + 1))
    b=$(uprobe_case "$out" address) || return 1
    assert_match "$out" '^== setup getaddrinfo=0x[0-9a-f]+$' && assert_contains "$b" $'Attaching 1 probe...\nlocalhost' || bad=$((bad + 1))
    b=$(uprobe_case "$out" tracefs_attach) || return 1
    assert_contains "$b" $'Attaching 1 probe...\nlocalhost' || bad=$((bad + 1))
    b=$(uprobe_case "$out" not_a_program 1) || return 1
    assert_contains "$b" "uprobe target file '/etc/hostname' does not exist or is not executable" || bad=$((bad + 1))
    b=$(uprobe_case "$out" usdt 1) || return 1
    assert_contains "$b" '`usdt` probes are not supported by nobtf trace yet' || bad=$((bad + 1))
    # The first bytes at getaddrinfo's address taken as a file offset (its
    # code segment's address equals its offset): endbr64, or push %r15;
    # push %r14 (2 bytes each).
    assert_match "$out" '^== setup prologue=(f30f1efa|41574156)$' || bad=$((bad + 1))
    b=$(uprobe_case "$out" offset) || return 1
    assert_contains "$b" $'Attaching 1 probe...\n'"uprobe:$libc:getaddrinfo+4 localhost" \
        && assert_contains "$b" "stderr: WARNING: Unchecked uprobe : $libc:getaddrinfo+4" || bad=$((bad + 1))
    b=$(uprobe_case "$out" offset_safe 1) || return 1
    assert_contains "$b" "stderr: error: Can't check if uprobe is in proper place (compiled without (k|u)probe offset support): $libc:getaddrinfo+4 Use --unsafe to force attachment." || bad=$((bad + 1))
    b=$(uprobe_case "$out" offset_return 1) || return 1
    assert_contains "$b" "stderr: error: uretprobes cannot be attached at function offset. (address resolved to: getaddrinfo+4)" || bad=$((bad + 1))
    b=$(uprobe_case "$out" offset_outside 1) || return 1
    assert_match "$b" "^stderr: error: Offset outside the function bounds \('getaddrinfo' size is [0-9]+\)$" || bad=$((bad + 1))
    b=$(uprobe_case "$out" list_lib) || return 1
    # glibc 2.34 moved getaddrinfo_a into libc.
    assert_eq "$b" "uprobe:$libc:getaddrinfo"$'\n'"uprobe:$libc:getaddrinfo_a" || bad=$((bad + 1))
    b=$(uprobe_case "$out" list_path) || return 1
    assert_eq "$b" "uretprobe:$libc:gethostbyname2"$'\n'"uretprobe:$libc:gethostbyname2_r" || bad=$((bad + 1))
    b=$(uprobe_case "$out" list_missing 1) || return 1
    assert_contains "$b" "uprobe target file '/etc/hostname' does not exist or is not executable" || bad=$((bad + 1))
    pid=$(sed -n 's/^== pid P=\([0-9]*\) rc=.*/\1/p' <<<"$out")
    b=$(uprobe_case "$out" "pid P=$pid") || return 1
    assert_eq "$b" $'Attaching 1 probe...\n'"$pid localhost" || bad=$((bad + 1))
    [ "$bad" = 0 ] || { printf '%s\n' "$out" >&2; fail "$bad uprobe cases wrong"; return 1; }
}

# The cases both tracers run print the same under bpftrace 0.23 and nobtf
# (a refusal's words aside: both must refuse).
vmtest_uprobe_matches_bpftrace() {
    [ "$KERNEL" = debian-6.1 ] || { skip "bpftrace runs on debian-6.1"; return; }
    (ensure_bench_rootfs) || { fail "the bench root filesystem could not be built"; return 1; }
    uprobe_script >"$TEST_TMP/uprobe.sh"
    local ours theirs name cases=0 bad=0 a b
    theirs=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 900 --file "$TEST_TMP/uprobe.sh:/tmp/uprobe.sh" \
        -- sh -c 'sh /tmp/uprobe.sh bpftrace; echo "== NOBTF"; sh /tmp/uprobe.sh' 2>&1) \
        || { printf '%s\n' "$theirs" >&2; fail "the VM script failed"; return 1; }
    ours=$(sed -n '/^== NOBTF$/,$p' <<<"$theirs")
    theirs=$(sed '/^== NOBTF$/,$d' <<<"$theirs")
    for name in $(sed -n 's/^== \([a-z_]*\) rc=.*/\1/p' <<<"$theirs"); do
        cases=$((cases + 1))
        a=$(grep "^== $name rc=" <<<"$theirs")
        b=$(grep "^== $name rc=" <<<"$ours")
        # Only the missing_* cases refuse: any other refusal is a broken case.
        case $name in missing_*) ;; *) [ "${a##*rc=}" = 0 ] || { output_block "$theirs" "$a" >&2; fail "bpftrace refused $name"; return 1; } ;; esac
        if [ "${a##*rc=}" = 0 ] && [ "${b##*rc=}" = 0 ]; then
            # stderr aside: bpftrace's warnings name the script's lines.
            [ "$(output_block "$theirs" "$a" | grep -v '^stderr: ')" = "$(output_block "$ours" "$b" | grep -v '^stderr: ')" ] && continue
        elif [ "${a##*rc=}" != 0 ] && [ "${b##*rc=}" != 0 ]; then
            continue
        fi
        printf 'DIFFERENT %s:\n--- bpftrace\n%s\n--- nobtf\n%s\n' "$name" \
            "$(output_block "$theirs" "$a")" "$(output_block "$ours" "$b")" >&2
        bad=$((bad + 1))
    done
    echo "uprobe pairs: $cases programs, $bad different" >&2
    assert_eq "$cases" 11 && assert_eq "$bad" 0
}
