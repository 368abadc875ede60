# Every assertion in a test file must decide the test: each statement that
# calls assert_* or fail must have its status consumed (`|| ...`,
# `; return`, inside if/while) or be the function's last statement (its
# status is the function's). Prints FILE:LINE: why, for each one that is not.
# Also flags `fail ... && ...`: fail returns 1, so what follows never runs.
# Heredoc bodies (VM-side scripts, C sources) are not shell of this file.
# Run: awk -f tests/lint/assertions.awk tests/vm/*.sh tests/host/*.sh

function flush_statement(    rest, pos, len, after, lead) {
    if (stmt == "") return
    rest = stmt
    last = ""
    # The last call in command position.
    while (match(rest, /(^|&&|\|\||;|\{|[ \t]then|[ \t]do|[ \t]else|\))[ \t]*(assert_[a-z_]+|fail)([ \t]|$)/)) {
        last = substr(rest, RSTART + RLENGTH)
        called = substr(rest, RSTART, RLENGTH)
        rest = last
        found = 1
    }
    if (last != "" || found) {
        lead = stmt
        sub(/^[ \t]+/, "", lead)
        if (called ~ /fail[ \t]*$/ || called ~ /fail[ \t]/) {
            if (last ~ /^[^|]*&&/) {
                problem(stmt_line, "`fail ... && ...`: fail returns 1, so what follows && never runs")
            }
        }
        if (last ~ /\|\|/ || last ~ /;[ \t]*return/ || lead ~ /^(if|elif|while|until)[ \t]/) {
            # consumed
        } else {
            pending[++npending] = stmt_line
        }
    }
    found = 0
    stmt = ""
}

function problem(line, why) {
    printf "%s:%d: %s\n", FILENAME, line, why
    problems++
}

# A pending statement is fine if `return` follows it, or if nothing but the
# end of an if/case (or other branches) comes before its function's closing
# brace. (Statements are joined across lines ending in \ && || |, not
# across quoted newlines: write those as $'\n'.)
function settle(line_text) {
    if (npending == 0) return
    if (line_text ~ /^}/ || line_text ~ /^[ \t]*return([ \t]|$)/) { npending = 0; return }
    if (skip_to != "") {
        # Another branch of the if: its statements are checked on their own.
        if (line_text == skip_to) skip_to = ""
        return
    }
    if (line_text ~ /^[ \t]*(else|elif[ \t].*)$/) {
        match(line_text, /^[ \t]*/)
        skip_to = substr(line_text, 1, RLENGTH) "fi"
        return
    }
    if (line_text ~ /^[ \t]*(fi|esac|;;)[ \t]*$/ || line_text ~ /;;[ \t]*$/ || line_text ~ /^[ \t]*$/ || line_text ~ /^[ \t]*#/) return
    for (i = 1; i <= npending; i++) problem(pending[i], "an assertion whose result is discarded: add `|| return 1`")
    npending = 0
}

FNR == 1 { heredoc = ""; stmt = ""; npending = 0; found = 0; skip_to = "" }

{
    text = $0
    if (heredoc != "") {
        t = text
        sub(/^[ \t]+/, "", t)
        if (t == heredoc) heredoc = ""
        next
    }
    if (stmt == "") settle(text)
    if (stmt == "") stmt_line = FNR
    stmt = stmt " " text
    # A heredoc starts on this line: its body follows the statement's line.
    if (match(text, /<<-?[ \t]*['"]?[A-Za-z_][A-Za-z_0-9]*['"]?/) && substr(text, RSTART, 3) != "<<<") {
        word = substr(text, RSTART, RLENGTH)
        sub(/^<<-?[ \t]*/, "", word)
        gsub(/['"]/, "", word)
        heredoc = word
    }
    if (text ~ /(\\|&&|\|\||\|)[ \t]*$/) next
    flush_statement()
}

END {
    settle("")
    exit problems > 0
}
