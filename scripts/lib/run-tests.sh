# The VM and host test runner: sources tests/<kind>/*.sh and runs each
# `<kind>test_*` function, once per kernel for VM tests.
# shellcheck shell=bash

TESTS_PASSED=0 TESTS_FAILED=0 TESTS_SKIPPED=0 FAILED_NAMES=()

run_one() {
    local label=$1 fn=$2 log rc start
    log=$(mktemp)
    TEST_TMP=$(mktemp -d)
    export TEST_TMP
    start=$SECONDS
    set +e
    ( set +e; "$fn" ) >"$log" 2>&1
    rc=$?
    set -e
    case $rc in
        0) TESTS_PASSED=$((TESTS_PASSED + 1)); printf 'PASS  %-50s %3ss\n' "$label" $((SECONDS - start)) ;;
        77) TESTS_SKIPPED=$((TESTS_SKIPPED + 1)); printf 'SKIP  %-50s %s\n' "$label" "$(grep -m1 '^skipped:' "$log" | cut -c10-)" ;;
        *) TESTS_FAILED=$((TESTS_FAILED + 1)); FAILED_NAMES+=("$label")
           printf 'FAIL  %-50s %3ss (exit %s)\n' "$label" $((SECONDS - start)) "$rc"
           tail -n 40 "$log" | sed 's/^/      /' ;;
    esac
    rm -rf "$log" "$TEST_TMP"
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
    for name in ${FAILED_NAMES[@]+"${FAILED_NAMES[@]}"}; do printf 'failed: %s\n' "$name"; done
    printf '%d passed, %d failed, %d skipped\n' "$TESTS_PASSED" "$TESTS_FAILED" "$TESTS_SKIPPED"
}
