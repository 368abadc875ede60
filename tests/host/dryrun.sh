# `nobtf trace --dry-run` on the build host against the linux-4.14 profile
# (tests/profiles/linux-4.14.toml) and copies of that box's kallsyms and
# tracefs (tests/profiles/linux-4.14-box/, see SOURCE there): it refuses
# what 4.14 cannot run and accepts what it can, and for every program of
# the trace corpus (tests/vm/trace.sh) gives the verdict nobtf gave on the
# linux-4.14 VM (recorded in linux-4.14-box/verdicts).
# shellcheck shell=bash

dryrun_nobtf() {
    (cd "$NOBTF_ROOT" && cargo build --quiet -p loader --bin nobtf) >&2 || return 1
    printf '%s\n' "$NOBTF_ROOT/target/debug/nobtf"
}

hosttest_dryrun_refuses_what_4_14_cannot_run() {
    local nobtf box=$NOBTF_ROOT/tests/profiles/linux-4.14-box out rc bad=0
    nobtf=$(dryrun_nobtf) || return 1
    dry() { "$nobtf" trace --dry-run --offsets "$NOBTF_ROOT/tests/profiles/linux-4.14.toml" \
        --kallsyms "$box/kallsyms" --tracepoints "$box/tracefs" "$@" 2>&1; }
    local want
    want=$(printf '%s\n' \
        "dry run for kernel 4.14.177 on x86_64 (offsets profile $NOBTF_ROOT/tests/profiles/linux-4.14.toml); no kernel was touched" \
        "back end: bpf (assumed: the box's kernel has bpf(2) and kprobe BPF programs; \`nobtf check\` there says)" \
        "attach: tracefs kprobe_events" \
        "reader: bpf_probe_read" \
        "would attach 1 probe" \
        "program kprobe:do_unlinkat: 70 instructions of 4096; helpers: bpf_get_current_comm, bpf_probe_read_str, bpf_perf_event_output, bpf_map_lookup_elem, bpf_map_update_elem")
    out=$(dry 'kprobe:do_unlinkat /comm == "rm"/ { printf("%s\n", str(arg1)); @[comm] = count(); }') \
        && assert_eq "$out" "$want" || bad=$((bad + 1))
    # A loop: no bounded loops before 5.3.
    rc=0; out=$(dry 'kprobe:do_unlinkat { $i = 0; while ($i < arg0) { $i++; } }') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: 1:[0-9]+: `while` needs a kernel whose verifier takes loops \(5\.3\+\)' || bad=$((bad + 1))
    # bpf_probe_read_kernel came with 5.5.
    rc=0; out=$(dry --read-helper probe_read_kernel 'kprobe:do_unlinkat { printf("%s\n", str(arg1)); }') || rc=$?
    assert_eq "$rc" 1 && assert_eq "$out" "error: --read-helper probe_read_kernel needs helper bpf_probe_read_kernel, which this kernel does not have; mainline has it since 5.5: use --read-helper auto" || bad=$((bad + 1))
    # Over 4,096 instructions (the limit before 5.2); one unroll(100) fits.
    rc=0; out=$(dry 'kprobe:do_unlinkat { unroll(100) { @[str(arg1)] = count(); } unroll(100) { @[str(arg1)] = count(); } }') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: probe `kprobe:do_unlinkat` compiles to [0-9]+ BPF instructions; this kernel accepts at most 4096' || bad=$((bad + 1))
    out=$(dry 'kprobe:do_unlinkat { unroll(100) { @[str(arg1)] = count(); } }') \
        && assert_match "$out" '^program kprobe:do_unlinkat: [0-9]{4} instructions of 4096;' || bad=$((bad + 1))
    # The kprobe PMU came with 4.17; a function the box lacks.
    rc=0; out=$(dry --attach pmu 'kprobe:do_unlinkat { }') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: no way to attach: the kprobe PMU .*4\.17\+' || bad=$((bad + 1))
    rc=0; out=$(dry 'kprobe:no_such_function_here { }') || rc=$?
    assert_eq "$rc" 1 && assert_match "$out" '^error: no_such_function_here cannot be probed' || bad=$((bad + 1))
    # -v adds the bytecode.
    out=$(dry -v 'kprobe:do_unlinkat { printf("%d\n", pid); }') \
        && assert_match "$out" '^0: \(bf\) r6 = r1$' || bad=$((bad + 1))
    # Without the box's lists, what could not be checked is said.
    out=$("$nobtf" trace -d --offsets "$NOBTF_ROOT/tests/profiles/linux-4.14.toml" 'kprobe:do_unlinkat { }' 2>&1) \
        && assert_contains "$out" "not checked: whether the functions exist on the box (give --kallsyms" || bad=$((bad + 1))
    assert_eq "$bad" 0
}

hosttest_dryrun_gives_the_verdicts_of_the_linux_4_14_vm() {
    local nobtf box=$NOBTF_ROOT/tests/profiles/linux-4.14-box got want
    nobtf=$(dryrun_nobtf) || return 1
    # shellcheck source=tests/vm/trace.sh
    source "$NOBTF_ROOT/tests/vm/trace.sh"
    # The corpus's variables as it sets them on linux-4.14.
    # shellcheck disable=SC2034
    local K=linux-4.14 PATHP='arg1' NAME='str(arg1)' UNLINK_TP=sys_enter_unlink P=$$
    t() {
        local name=${1%% P=*} rc=0
        shift
        # -l lists probes: not a program to compile.
        case $name in list_*) return ;; esac
        "$nobtf" trace --dry-run --offsets "$NOBTF_ROOT/tests/profiles/linux-4.14.toml" \
            --kallsyms "$box/kallsyms" --tracepoints "$box/tracefs" "$@" >"$TEST_TMP/out" 2>&1 || rc=$?
        echo "$name rc=$rc"
    }
    got=$(trace_corpus_script | grep -E '^(t |echo .*prog\.bt)' | sed "s|/tmp/prog.bt|$TEST_TMP/prog.bt|g" >"$TEST_TMP/cases.sh"
        # shellcheck disable=SC1091
        source "$TEST_TMP/cases.sh"
        # The corpus's SIGTERM case, which runs outside t.
        t sigterm 'kprobe:do_unlinkat /comm == "rm"/ { @c = count(); }')
    want=$(grep -v '^list_' "$box/verdicts")
    echo "summary: $(grep -c . <<<"$got") corpus programs, each with the linux-4.14 VM's verdict" >&2
    assert_eq "$got" "$want"
}

# A probe on several functions against a 5.18+ profile: one program for
# all of them, assumed from the release (the box's CONFIG_FPROBE is not
# checked), unless the program needs a name per function, the attach is
# forced, or the release is older.
hosttest_dryrun_assumes_kprobe_multi_from_5_18() {
    local nobtf bad=0 out
    nobtf=$(dryrun_nobtf) || return 1
    profile() {
        printf 'format = 2\n\n[kernel]\nrelease = "%s"\narch = "x86_64"\n\n' "$1"
        printf '[source]\nmethod = "btf"\ndetail = "written by tests/host/dryrun.sh"\ngenerator = "offsets 0.1.0"\n\n'
        printf '[fields."filename.name"]\noffset = 0\nsize = 8\ntype = "char *"\n\n'
        printf '[fields."filename.refcnt"]\noffset = 16\nsize = 4\ntype = "atomic_t"\n'
    }
    profile 6.12.0 >"$TEST_TMP/6.12.toml"
    profile 5.17.0 >"$TEST_TMP/5.17.toml"
    local two='kprobe:vfs_read,kprobe:vfs_write'
    dry() { local p=$1; shift; "$nobtf" trace --dry-run --offsets "$TEST_TMP/$p.toml" "$@" 2>&1; }
    out=$(dry 6.12 "$two { @[func] = count(); }") \
        && assert_contains "$out" "kprobe_multi: 1 program on several functions, one link each (assumed from release 6.12.0: the box's CONFIG_FPROBE is not checked" \
        && assert_match "$out" "^program $two: [0-9]+ instructions of 1000000; helpers: bpf_get_func_ip," \
        || bad=$((bad + 1))
    out=$(dry 6.12 "$two { printf(\"%s\\n\", probe); }") \
        && assert_contains "$out" 'kprobe_multi: not used, one program per function (`probe` names each function' \
        && assert_match "$out" '^program kprobe:vfs_read: ' \
        || bad=$((bad + 1))
    out=$(dry 6.12 --attach pmu "$two { @[func] = count(); }") \
        && assert_not_contains "$out" "kprobe_multi: 1 program" \
        && assert_match "$out" '^program kprobe:vfs_write: ' \
        || bad=$((bad + 1))
    out=$(dry 5.17 "$two { @[func] = count(); }") \
        && assert_not_contains "$out" "kprobe_multi: 1 program" \
        && assert_not_contains "$out" "bpf_get_func_ip" \
        || bad=$((bad + 1))
    assert_eq "$bad" 0
}
