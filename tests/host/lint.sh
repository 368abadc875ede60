# The test files themselves: every assertion decides its test
# (tests/lint/assertions.awk), so a discarded assert_* or a `fail && return`
# cannot come back; and the lint catches each of those holes.
# shellcheck shell=bash

hosttest_every_assertion_decides_its_test() {
    local out
    out=$(awk -f "$NOBTF_ROOT/tests/lint/assertions.awk" "$NOBTF_ROOT"/tests/vm/*.sh "$NOBTF_ROOT"/tests/host/*.sh 2>&1) \
        || { fail "$out"; return 1; }
}

hosttest_assertion_lint_finds_each_hole() {
    # Each hole as it was once found in these tests, then the same test fixed.
    cat >"$TEST_TMP/bad.sh" <<'EOF'
vmtest_discarded() {
    out=$(vm -- true) || return 1
    assert_match "$out" 'first'
    assert_eq "$(wc -l <<<"$out")" 1
}

hosttest_fail_then_return() {
    out=$(false) && fail "accepted" && return 1
    assert_contains "$out" "error"
}

vmtest_in_a_loop() {
    for a in pmu tracefs; do
        assert_contains "$out" "$a"
    done
}
EOF
    cat >"$TEST_TMP/good.sh" <<'EOF'
vmtest_consumed() {
    out=$(vm -- true) || return 1
    assert_match "$out" 'first' || return 1
    if [ -z "$out" ]; then
        fail "empty"
        return 1
    fi
    for a in pmu tracefs; do
        assert_contains "$out" "$a" || { echo "$a" >&2; return 1; }
    done
    if [ "$a" = x ]; then
        assert_eq "$a" x
    else
        assert_contains "$out" "$a" \
            && assert_eq 1 1
    fi
}
EOF
    local out rc=0
    out=$(awk -f "$NOBTF_ROOT/tests/lint/assertions.awk" "$TEST_TMP/bad.sh" 2>&1) || rc=$?
    assert_eq "$rc" 1 \
        && assert_contains "$out" "bad.sh:3: an assertion whose result is discarded" \
        && assert_contains "$out" "bad.sh:8: \`fail ... && ...\`: fail returns 1, so what follows && never runs" \
        && assert_contains "$out" "bad.sh:14: an assertion whose result is discarded" \
        && assert_not_contains "$out" "bad.sh:4:" \
        && assert_eq "$(printf '%s\n' "$out" | wc -l)" 4 \
        || return 1
    out=$(awk -f "$NOBTF_ROOT/tests/lint/assertions.awk" "$TEST_TMP/good.sh" 2>&1) || { fail "good.sh flagged: $out"; return 1; }
}
