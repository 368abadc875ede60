# The VM and host test runner: sources tests/<kind>/*.sh and runs each
# `<kind>test_*` function, once per kernel for VM tests.
# shellcheck shell=bash

TESTS_PASSED=0 TESTS_FAILED=0 TESTS_SKIPPED=0 FAILED_NAMES=() RETRIED_NAMES=()

run_once() {
    local fn=$1 log=$2
    TEST_TMP=$(mktemp -d)
    export TEST_TMP
    set +e
    ( set +e; "$fn" ) >"$log" 2>&1
    local rc=$?
    set -e
    rm -rf "$TEST_TMP"
    return $rc
}

run_one() {
    local label=$1 fn=$2 log rc=0 start
    log=$(mktemp)
    start=$SECONDS
    # A long test (a kernel tree prepared, a profile generated) says it is
    # still running, as the kernel preparation does.
    with_progress "running $label" run_once "$fn" "$log" || rc=$?
    # A VM that failed under emulation gets one more try; the first failure
    # is shown in full and the test is named in the summary, so a crash that
    # nobtf causes is still seen, and one that repeats still fails the run.
    if [ "$rc" != 0 ] && [ "$rc" != 77 ] && grep -qF "$VM_FAILURE_PREFIX" "$log"; then
        printf 'RETRY %-50s %3ss: the VM failed; its output:\n' "$label" $((SECONDS - start))
        tail -n 60 "$log" | sed 's/^/      /'
        RETRIED_NAMES+=("$label")
        start=$SECONDS rc=0
        with_progress "running $label" run_once "$fn" "$log" || rc=$?
    fi
    case $rc in
        # A passing test's `summary: ` lines (a count it measured) are shown too.
        0) TESTS_PASSED=$((TESTS_PASSED + 1)); printf 'PASS  %-50s %3ss\n' "$label" $((SECONDS - start))
           sed -n 's/^summary: /      /p' "$log" ;;
        77) TESTS_SKIPPED=$((TESTS_SKIPPED + 1)); printf 'SKIP  %-50s %s\n' "$label" "$(grep -m1 '^skipped:' "$log" | cut -c10-)" ;;
        *) TESTS_FAILED=$((TESTS_FAILED + 1)); FAILED_NAMES+=("$label")
           printf 'FAIL  %-50s %3ss (exit %s)\n' "$label" $((SECONDS - start)) "$rc"
           tail -n 40 "$log" | sed 's/^/      /' ;;
    esac
    rm -f "$log"
}

# run_tests KIND FILTER [KERNEL...]
run_tests() {
    local kind=$1 filter=$2; shift 2
    local file fn kernel
    for file in "$NOBTF_ROOT"/tests/"$kind"/*.sh; do
        [ -e "$file" ] || continue
        # shellcheck disable=SC1090
        source "$file"
    done
    local fns
    fns=$(declare -F | awk -v p="${kind}test_" 'index($3, p) == 1 { print $3 }' | grep -E -- "$filter" || true)
    if [ "$kind" = host ]; then
        for fn in $fns; do run_one "host ${fn#hosttest_}" "$fn"; done
        return 0
    fi
    for kernel in "$@"; do
        export KERNEL=$kernel
        for fn in $fns; do run_one "$kernel ${fn#vmtest_}" "$fn"; done
    done
}

print_summary() {
    local name
    for name in ${RETRIED_NAMES[@]+"${RETRIED_NAMES[@]}"}; do printf 'retried after a VM failure: %s\n' "$name"; done
    for name in ${FAILED_NAMES[@]+"${FAILED_NAMES[@]}"}; do printf 'failed: %s\n' "$name"; done
    printf '%d passed, %d failed, %d skipped, %d retried\n' "$TESTS_PASSED" "$TESTS_FAILED" "$TESTS_SKIPPED" "${#RETRIED_NAMES[@]}"
}
