# The corpus test: every tool of bpftrace 0.23's own collection
# (../shared/corpus/bpftrace-0.23-tools/, test data read from there and
# never copied into the project) runs under bpftrace and under `nobtf
# trace` in one boot of debian-6.1 on the bench's Debian 13 root
# filesystem, each over the same workload, and their outputs are compared
# once what differs from run to run is masked. Every tool gets a result
# line; the tools of CORPUS_MUST_MATCH must start and match, the others are
# reported (scripts/corpus-table prints the README's table from the last run).
# shellcheck shell=bash

# The tools nobtf must run as bpftrace does, each with a regex that one
# line of bpftrace's output must match: what the workload makes the tool
# print beyond its header lines, so that two header-only outputs are never
# a pass. Grown by the integrator as the language features land. `-` in
# place of the regex accepts header lines only, for a tool the VM cannot
# make print, and says why: the comparison then still holds nobtf to
# parsing, attaching, BEGIN's and END's lines and stopping on SIGINT.
CORPUS_MUST_MATCH=(
    # No block device: debian-6.1 has loop, virtio_blk and sd as modules,
    # and the initramfs holds none; its histograms need block I/O.
    'bitesize -'
    'biolatency -'
    'biolatency-kp -'
    'xfsdist -'
    'writeback -'
    # No retransmits on loopback in the VM.
    'tcpretrans -'
    # No OOM in the VM.
    'oomkill -'
    'killsnoop ^[0-9:.]+ +[0-9]+ +[^ ]+ +[0-9]+ +[0-9]+ +-?[0-9]+$'
    'opensnoop ^[0-9]+ +[^ ]+ +-?[0-9]+ +[0-9]+ /'
    'pidpersec PIDs/sec: @: [0-9]+'
    'setuids setuid +uid='
    'statsnoop ^[0-9]+ +[^ ]+ +-?[0-9]+ /'
    'swapin ^[0-9]{2}:[0-9]{2}:[0-9]{2}$'
    'syscount ^@syscall\[[0-9]+\]: [0-9]+'
    'tcpaccept 127\.0\.0\.1'
    'tcpsynbl @backlog\[backlog limit\]'
    # Equal in two runs since BEGIN's output waits for the attach
    # (vfscount), the listener's stdin stays open (tcplife, tcpconnect),
    # bpftrace's helper warnings are masked (runqlat) and buf()/%r (undump).
    'vfscount ^@\[vfs_read\]: [0-9]+$'
    'tcplife ^[0-9]+ +busybox +::ffff:127\.0\.0\.1 +7777 '
    'tcpconnect 127\.0\.0\.1'
    'runqlat ^@usecs:$'
    'undump corpus-unix\\x0a$'
    # Uprobes on libc (getent's lookup); no TLS in the VM for sslsnoop.
    'gethostlatency ^[0-9:]+ +[0-9]+ +getent +[0-9]+ localhost$'
    'sslsnoop -'
    # Equal in every run, not listed before.
    'syncsnoop ^[0-9:.]+ +[0-9]+ +[^ ]+ +tracepoint:syscalls:sys_enter_sync'
    'vfsstat @\[vfs_open\]: [0-9]+'
    # Stacks (kstack); no TCP drop in the VM.
    'tcpdrop -'
    # Equal in two runs each: sampling (cpuwalk, runqlen), interval probes
    # (loads), lowered or real syscall tracepoints with join() (execsnoop),
    # uprobes on libc (threadsnoop), stats() (ssllatency, no TLS in the VM);
    # capable once time() at a line's start is masked; dcsnoop where
    # bpftrace prints right (CORPUS_BPFTRACE_WRONG).
    'cpuwalk ^@cpu:$'
    'runqlen ^@runqlen:$'
    'loads load averages: [0-9.]+ '
    'naptime perl +0\.1[0-9]{2}$'
    'execsnoop /usr/bin/echo exec-test$'
    'threadsnoop sort +0x[0-9a-f]+$'
    'ssllatency -'
    'capable CAP_SETUID'
    'dcsnoop R missing$'
)

# Where bpftrace 0.23 itself prints wrongly: TOOL, then a sed expression
# that makes nobtf's masked lines read as bpftrace's wrong ones, then why.
# The rest of the two outputs must still be equal. dcsnoop: with a probe
# list where one probe matches nothing (`kprobe:lookup_fast.constprop.*`
# on debian-6.1), bpftrace prints the later probes' printf with the
# list's format, so every d_lookup miss (M) comes out as a hit (R); seen
# in a VM with a three-probe program: bpftrace 0 M lines and 71 R, nobtf
# 4 M and 49 R; without the empty wildcard bpftrace prints the 4 M lines.
CORPUS_BPFTRACE_WRONG=(
    'dcsnoop|s/^(# # [^ ]+ )M /\1R /|bpftrace prints d_lookup misses (M) as hits (R): its printf ids shift after a probe that matches nothing'
)

# corpus_as_bpftrace_prints TOOL: stdin's masked lines as bpftrace would
# print them where it prints wrongly (CORPUS_BPFTRACE_WRONG), else as is.
corpus_as_bpftrace_prints() {
    local entry
    for entry in "${CORPUS_BPFTRACE_WRONG[@]}"; do
        [ "${entry%%|*}" = "$1" ] || continue
        entry=${entry#*|}
        sed -E "${entry%%|*}" | LC_ALL=C sort -u
        return
    done
    cat
}

# corpus_bpftrace_wrong TOOL: why bpftrace prints that tool wrongly, if it does.
corpus_bpftrace_wrong() {
    local entry
    for entry in "${CORPUS_BPFTRACE_WRONG[@]}"; do
        [ "${entry%%|*}" = "$1" ] && { echo "${entry##*|}"; return; }
    done
    return 0
}

# Where the corpus is: beside the repository, as shared/kernels is (for a
# git worktree elsewhere, beside the main one); NOBTF_CORPUS overrides.
corpus_dir() {
    local main dir
    [ -n "${NOBTF_CORPUS:-}" ] && { printf '%s\n' "$NOBTF_CORPUS"; return; }
    main=$(cd "$(git -C "$NOBTF_ROOT" rev-parse --git-common-dir 2>/dev/null || echo "$NOBTF_ROOT/.git")/.." && pwd)
    for dir in "$NOBTF_ROOT" "$main"; do
        [ -d "$dir/../shared/corpus/bpftrace-0.23-tools" ] && break
    done
    printf '%s\n' "$dir/../shared/corpus/bpftrace-0.23-tools"
}

# The tools to run: all of the corpus, or those NOBTF_CORPUS_TOOLS names
# (a quicker run while working on some; the listed tools it leaves out are
# not checked).
corpus_tools() {
    if [ -n "${NOBTF_CORPUS_TOOLS:-}" ]; then
        printf '%s\n' $NOBTF_CORPUS_TOOLS
    else
        find "$1" -maxdepth 1 -name '*.bt' -printf '%f\n' | sed 's/\.bt$//' | LC_ALL=C sort
    fi
}

# Where the last run's results stay for scripts/corpus-table (under target/,
# which git ignores).
CORPUS_RESULTS_DIR=${NOBTF_CORPUS_RESULTS:-$NOBTF_ROOT/target/corpus}

# The VM-side script, run by the root filesystem's dash, so that the
# workloads' commands are Debian's (busybox's sh would run its own applets
# first: a `sort` without --parallel, a `stat` calling newfstatat). For each tool and each tracer: the tracer starts in
# the background as a user would start it; once it has attached (its BEGIN
# header is out: bpftrace prints `Attaching N probes...` before attaching
# and BEGIN's output after; nobtf prints both after) the tool's workload
# runs, then the tracer gets SIGINT, as Ctrl-C would send it, and prints
# its maps. Each run is `== TOOL TRACER rc=STATUS state=STATE`, stdout,
# then stderr prefixed with `stderr: `. STATE is `starts` (attached,
# stopped by SIGINT), `refused` (exited before attaching), `noattach` (still
# setting up after the wait), `nostop` (alive after SIGINT: killed).
corpus_script() {
    cat <<'EOF'
C=/corpus
W=/tmp/cw
mkdir -p $W
/nobtf/busybox ip link set lo up
# A loop device over a file, for the block I/O tools, where the kernel has
# loop built in (nothing else here is a block device).
LOOP=
if [ -e /dev/loop-control ] || [ -e /dev/loop0 ]; then
    dd if=/dev/zero of=$W/disk bs=1M count=8 status=none
    LOOP=$(losetup -f --show $W/disk 2>/dev/null || /nobtf/busybox losetup -f -s $W/disk 2>/dev/null) || LOOP=
fi
have() { command -v "$1" >/dev/null 2>&1; }
# The test's own waits sleep under a name of their own, which the host side
# drops with the tracers' lines: how many of them a tool sees after it has
# attached follows timing.
cp /usr/bin/sleep $W/corpus-nap
echo "== setup loop=${LOOP:-none} perl=$(have perl && echo yes || echo no) bash=$(have bash && echo yes || echo no) setpriv=$(have setpriv && echo yes || echo no) second=$(cat /tmp/corpus-second)"

# Workload parts, each a few hundred milliseconds under TCG.
w_files() {
    cat /etc/hostname /etc/passwd >/dev/null
    cat $W/missing 2>/dev/null
    ls -l /etc >/dev/null
    stat /etc/hostname >/dev/null
    stat $W/missing 2>/dev/null
    touch $W/t && rm -f $W/t
}
# Path lookups of names the dentry cache holds, and of one it holds as
# missing, without w_files' ls -l /etc: its burst of lookups makes
# bpftrace lose dcsnoop's events (69 in one run).
w_lookups() {
    cat /etc/hostname /etc/passwd >/dev/null
    cat $W/missing 2>/dev/null
    stat /etc/hostname >/dev/null
}
# The four syscalls statsnoop traces, by number (stat, lstat, statfs,
# statx): libc's stat() and GNU stat call newfstatat or statx only.
w_stat() {
    perl -e 'my ($f, $r, $m, $b) = ("/etc/hostname", "/", "/tmp/cw/missing", "\0" x 512);
        syscall(4, $f, $b); syscall(6, $f, $b); syscall(137, $r, $b); syscall(332, -100, $f, 0, 0x7ff, $b); syscall(4, $m, $b)'
}
w_exec() { /usr/bin/true; /usr/bin/env true; /usr/bin/echo exec-test >/dev/null; }
# Waits name their children: a bare `wait` would wait for the tracer too.
w_fork() {
    forks=
    for i in 1 2 3; do
        (:) &
        forks="$forks $!"
    done
    wait $forks
}
w_kill() {
    sleep 10 &
    k=$!
    kill -0 $k
    kill -TERM $k
    wait $k 2>/dev/null
    kill -0 99999 2>/dev/null
}
w_sync() {
    sync
    dd if=/dev/zero of=$W/s bs=4k count=2 conv=fsync status=none
    dd if=/dev/zero of=$W/s bs=4k count=2 conv=fdatasync status=none
    rm -f $W/s
}
# The listener's stdin stays open (a nap's pipe) until the client is gone:
# on an empty stdin busybox nc may close first, and which end closes first
# decides whose comm tcplife prints for the server's socket (LAST_ACK's
# task, or the one that happened to run its last ACK).
w_tcp() {
    { $W/corpus-nap 10 & echo $! >$W/nap.pid; wait; } | /nobtf/busybox nc -l -p 7777 >/dev/null &
    l=$!
    i=0
    while [ $i -lt 30 ]; do
        bash -c 'exec 3<>/dev/tcp/127.0.0.1/7777 && echo corpus >&3' 2>/dev/null && break
        i=$((i + 1))
        sleep 0.1
    done
    # The listener ends when the client closes; it is killed if it did not
    # (no connection after three seconds of tries).
    i=0
    while kill -0 $l 2>/dev/null && [ $i -lt 30 ]; do
        i=$((i + 1))
        sleep 0.1
    done
    kill $l 2>/dev/null
    wait $l 2>/dev/null
    kill "$(cat $W/nap.pid)" 2>/dev/null
}
w_readline() { printf 'echo readline-one\nexit\n' | bash --norc -i >/dev/null 2>&1; }
# nanosleep(2) itself: sleep(1) and libc's nanosleep() call clock_nanosleep.
w_nap() { perl -e 'my $t = pack("qq", 0, 150000000); syscall(35, $t, 0) == 0 or die "nanosleep: $!"'; }
w_setuid() {
    /nobtf/busybox su -s /usr/bin/true nobody
    perl -e '$> = 65534'
    if have setpriv; then setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/true; fi
}
w_unix() {
    perl -MSocket -e 'socketpair(my $a, my $b, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die; syswrite($a, "corpus-unix\n"); sysread($b, my $x, 64)'
}
w_dns() { getent ahosts localhost >/dev/null; getent hosts localhost >/dev/null; }
# coreutils sort starts a thread per half past 128 Ki lines.
w_threads() { seq 140000 | sort -n --parallel=2 -S 64M >/dev/null; }
w_block() {
    [ -n "$LOOP" ] || return 0
    dd if=$LOOP of=/dev/null bs=4k count=64 iflag=direct status=none
    dd if=/dev/zero of=$LOOP bs=4k count=16 oflag=direct status=none
    dd if=/dev/zero of=$LOOP bs=4k count=16 status=none
    sync
}
# One tick of the tools' interval:s:1 probes.
w_tick() { sleep 1.2; }

# What makes each tool print (the tracers' own events are filtered out on
# the host side).
workload() {
    case $1 in
        bashreadline) w_readline ;;
        biolatency*|biosnoop|biostacks|bitesize) w_block ;;
        capable) w_files; w_setuid ;;
        dcsnoop) w_lookups ;;
        cpuwalk|runqlen|opensnoop|syscount|vfscount|oomkill|xfsdist|ssl*) w_files ;;
        statsnoop) w_files; w_stat ;;
        execsnoop) w_exec ;;
        gethostlatency) w_dns ;;
        killsnoop) w_kill ;;
        loads|swapin) w_tick ;;
        mdflush|syncsnoop) w_sync ;;
        naptime) w_nap ;;
        pidpersec) w_fork; w_tick ;;
        runqlat) w_fork; w_files ;;
        setuids) w_setuid ;;
        tcp*) w_tcp ;;
        threadsnoop) w_threads ;;
        undump) w_unix ;;
        # Twice: in one run at load 13 bpftrace's ticks came late (two in
        # one second) and it printed no vfs_readlink for ls -l's symlinks.
        vfsstat) w_files; w_tick; w_files; w_tick ;;
        writeback) w_block; w_sync ;;
        *) w_files; w_exec; w_fork ;;
    esac
}

# attached PID TOOL: whether the tracer has attached. Shell builtins only
# (read, case): the wait itself should add as few events as it can.
attached() {
    if [ $has_begin = yes ]; then
        while IFS= read -r line; do
            case $line in Attaching*) ;; *) return 0 ;; esac
        done </tmp/out
        return 1
    fi
    # No BEGIN to wait for (swapin): `Attaching` and two seconds.
    while IFS= read -r line; do
        case $line in *Attaching*) $W/corpus-nap 2; return 0 ;; esac
    done </tmp/out
    while IFS= read -r line; do
        case $line in *Attaching*) $W/corpus-nap 2; return 0 ;; esac
    done </tmp/err
    return 1
}

uptime() { read -r up _ </proc/uptime; echo "$up"; }
run() {
    tool=$1 tracer=$2
    began=$(uptime)
    : >/tmp/out
    : >/tmp/err
    if [ $tracer = bpftrace ]; then
        bpftrace $C/$tool.bt >/tmp/out 2>/tmp/err &
    elif [ -n "$SECOND" ]; then
        $SECOND $C/$tool.bt >/tmp/out 2>/tmp/err &
    elif [ -f /profiles/$tool.toml ]; then
        NOBTF_OFFSETS=/profiles/$tool.toml nobtf trace $C/$tool.bt >/tmp/out 2>/tmp/err &
    else
        nobtf trace $C/$tool.bt >/tmp/out 2>/tmp/err &
    fi
    pid=$!
    grep -q '^BEGIN' $C/$tool.bt && has_begin=yes || has_begin=no
    state=noattach
    i=0
    while [ $i -lt 600 ]; do
        if ! kill -0 $pid 2>/dev/null; then state=refused; break; fi
        if attached $pid $tool; then state=starts; break; fi
        i=$((i + 1))
        $W/corpus-nap 0.1
    done
    attached_at=$(uptime)
    [ $state = starts ] && workload $tool
    worked_at=$(uptime)
    kill -INT $pid 2>/dev/null
    i=0
    while kill -0 $pid 2>/dev/null; do
        if [ $i -ge 600 ]; then
            kill -KILL $pid
            state=nostop
            break
        fi
        i=$((i + 1))
        $W/corpus-nap 0.1
    done
    wait $pid
    rc=$?
    echo "== $tool $tracer rc=$rc state=$state"
    echo "took: started $began attached $attached_at worked $worked_at ended $(uptime)"
    cat /tmp/out
    sed 's/^/stderr: /' /tmp/err
}

# A calibration run puts bpftrace in nobtf's place (NOBTF_CORPUS_SECOND).
SECOND=$(cat /tmp/corpus-second)
# Without bpftrace where the kernel has no BTF (corpus_profiles).
for tool in $(cat /tmp/corpus-tools); do
    [ -e /tmp/corpus-nobtf-only ] || run $tool bpftrace
    run $tool nobtf
done
EOF
}

vmtest_corpus() {
    [ "$KERNEL" = debian-6.1 ] || { skip "the corpus runs on debian-6.1, where bpftrace runs"; return; }
    local corpus
    corpus=$(corpus_dir)
    [ -d "$corpus" ] || { skip "no corpus at $corpus (NOBTF_CORPUS names another)"; return; }
    (ensure_bench_rootfs) || { fail "the bench root filesystem (bpftrace's) could not be built"; return 1; }
    corpus_script >"$TEST_TMP/corpus.sh"
    local tools
    tools=$(corpus_tools "$corpus")
    printf '%s\n' $tools >"$TEST_TMP/tools"
    # NOBTF_CORPUS_SECOND=bpftrace runs bpftrace twice, a calibration: the
    # tools whose masked outputs differ then differ from run to run.
    local second=${NOBTF_CORPUS_SECOND:-}
    case $second in ''|bpftrace) ;; *) fail "NOBTF_CORPUS_SECOND is bpftrace or empty, not $second"; return 1 ;; esac
    printf '%s\n' "$second" >"$TEST_TMP/second"
    local out start=$SECONDS
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 3600 --file "$corpus:/corpus" \
        --file "$TEST_TMP/corpus.sh:/tmp/corpus.sh" --file "$TEST_TMP/tools:/tmp/corpus-tools" \
        --file "$TEST_TMP/second:/tmp/corpus-second" -- /usr/bin/dash /tmp/corpus.sh 2>"$TEST_TMP/vm.err") \
        || { printf '%s\n' "$out" >&2; cat "$TEST_TMP/vm.err" >&2; fail "the VM script failed"; return 1; }
    # The script's own stderr (a workload command's complaint) is kept
    # apart: it must not land in the last tool's output.
    sed 's/^/vm stderr: /' "$TEST_TMP/vm.err" >&2
    echo "corpus on $KERNEL: $((SECONDS - start)) s" >&2
    mkdir -p "$CORPUS_RESULTS_DIR"
    printf '%s\n' "$out" >"$CORPUS_RESULTS_DIR/output.txt"
    grep '^== setup ' <<<"$out" >&2
    local results=$CORPUS_RESULTS_DIR/results.tsv tool missing
    missing=$(corpus_results "$CORPUS_RESULTS_DIR/output.txt")
    for tool in $tools; do
        grep -q "^$tool"$'\t' "$results" || missing+=" $tool"
    done
    local line
    while IFS=$'\t' read -r tool bstate nstate equal _ why; do
        case $tool in '#'*) continue ;; esac
        echo "corpus $tool: bpftrace=$bstate nobtf=$nstate equal=$equal" >&2
        [ "$equal" = yes ] || echo "    why not: $why" >&2
    done <"$results"
    awk -F'\t' -v r="$results" '$1 !~ /^#/ { n++; b += $2 == "starts"; s += $3 == "starts"; e += $4 == "yes" }
        END { printf "summary: %d tools: bpftrace runs %d, nobtf %d, %d print the same (results: %s)\n", n, b, s, e, r }' "$results" >&2
    [ -z "$missing" ] || { fail "no run of bpftrace or nobtf for:$missing"; return 1; }
    [ -z "$second" ] || { echo "summary: a calibration run: the listed tools are not checked" >&2; return 0; }
    corpus_check "$CORPUS_RESULTS_DIR" "$tools"
}

# corpus_check DIR TOOLS: the listed tools (CORPUS_MUST_MATCH) among
# TOOLS, held to DIR's results.tsv and output.txt.
corpus_check() {
    local dir=$1 tools=$2 out tool line nstate equal why
    out=$(cat "$dir/output.txt")
    local entry regex theirs
    for entry in "${CORPUS_MUST_MATCH[@]}"; do
        tool=${entry%% *} regex=${entry#* }
        case " $(printf '%s ' $tools)" in *" $tool "*) ;; *) echo "summary: $tool is listed but not run (NOBTF_CORPUS_TOOLS)" >&2; continue ;; esac
        line=$(grep "^$tool"$'\t' "$dir/results.tsv") || { fail "$tool is listed but has no result"; return 1; }
        IFS=$'\t' read -r _ _ nstate equal _ why <<<"$line"
        assert_eq "$nstate" starts || { fail "$tool must start under nobtf"; return 1; }
        theirs=$(corpus_stdout "$out" "$tool" bpftrace)
        [ "$regex" = - ] || assert_match "$theirs" "$regex" \
            || { fail "$tool: bpftrace printed nothing beyond its headers, so an equal output proves nothing (the workload must make it print)"; return 1; }
        assert_eq "$equal" yes || { fail "$tool: nobtf's output differs from bpftrace's: $why"; return 1; }
    done
}

# corpus_results OUTPUT_FILE: writes results.tsv beside the VM's
# saved output, a line per tool run (a first `#` line says when, where and
# how); prints the tools without both runs. scripts/corpus-table --rescan
# calls it again on the saved output after a change of the masks.
corpus_results() {
    local file=$1 note="" out tool results missing=""
    results=$(dirname "$file")/results.tsv
    out=$(cat "$file")
    grep -q '^== setup .*second=bpftrace' "$file" && note=" (calibration: bpftrace in the nobtf columns)"
    printf '# %s, kernel %s, scripts/test --vm-only --kernels debian-6.1 --filter ^vmtest_corpus%s\n' \
        "$(date -u -r "$file" '+%Y-%m-%d %H:%M UTC')" "$(kernel_release debian-6.1)" "$note" >"$results.new"
    for tool in $(sed -n 's/^== \([^ ]*\) bpftrace rc=.*/\1/p' "$file"); do
        corpus_compare "$out" "$tool" >>"$results.new" || missing+=" $tool"
    done
    mv "$results.new" "$results"
    printf '%s\n' "$missing"
}

# corpus_stdout OUTPUT TOOL TRACER: that run's stdout.
corpus_stdout() {
    local header
    # A here-string: under pipefail, grep -m1 stopping early could fail a pipe.
    header=$(grep -m1 "^== $2 $3 rc=" <<<"$1") || return 1
    output_block "$1" "$header" | grep -v -e '^stderr: ' -e '^took: '
}

# corpus_state OUTPUT TOOL TRACER: starts, or refused(why) with its first
# error line (else its first line on stderr).
corpus_state() {
    local header block state why
    # A here-string: under pipefail, grep -m1 stopping early could fail a pipe.
    header=$(grep -m1 "^== $2 $3 rc=" <<<"$1") || return 1
    state=${header##*state=}
    block=$(output_block "$1" "$header")
    if [ "$state" = starts ] && [ "${header#*rc=}" = "0 state=starts" ]; then
        echo starts
        return
    fi
    why=$({ grep -m1 -E '^stderr: .*(ERROR|error)' <<<"$block" || grep -m1 '^stderr: ' <<<"$block" || echo "stderr: (nothing said)"; } | cut -c9- | tr '\t' ' ')
    case $state in
        starts) echo "refused(exit ${header#*rc=} after SIGINT: $why)" ;;
        noattach) echo "refused(not attached after 60 s: $why)" ;;
        nostop) echo "refused(still running 60 s after SIGINT: $why)" ;;
        *) echo "refused($why)" ;;
    esac
}

# What the two tracers' outputs are compared on: stdout, without the lines
# of the tracer's own process (each sees itself, by its own name) and of
# the test's waits (corpus-nap), without bpftrace's `Lost N events` (nobtf
# says it on stderr; how many follows timing), with
# times, addresses and every number masked (pids, tids, latencies, counts,
# ports, histogram buckets: what differs from run to run), histogram bars
# and column padding (it follows the numbers' widths) dropped, and each
# distinct line once, sorted: events come from several CPUs, in no fixed
# order, and how many times a line repeats follows timing. The times a
# line starts with are dropped: a tool that prints time() and then printf
# makes two records, and a reader of per-CPU buffers (bpftrace's) can
# print two times before their lines when a task moves CPU between them
# (capable: `<time> <time> ... ls` followed by a line without one).
corpus_mask() {
    corpus_unwarned | grep -v -w -e bpftrace -e nobtf -e corpus-nap | grep -v -E '^Lost [0-9]+ events' \
        | sed -E -e 's/[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?/<time>/g' -e 's/^(<time> +)+//' -e 's/0x[0-9a-fA-F]+/<addr>/g' \
            -e 's/[0-9]+/#/g' -e 's/\|@* *\|/|bar|/' -e 's/[[:space:]]+/ /g' -e 's/ $//' \
        | grep -v '^$' | LC_ALL=C sort -u
}

# Without bpftrace's runtime helper warnings, which it writes to stdout
# and nobtf does not write (runqlat's `delete()` of a key never stored):
# the WARNING line with its place, `Additional Info - helper: ...`, the
# source line and its `~~~` underline.
corpus_unwarned() {
    awk '/^[^ ]+:[0-9]+:[0-9]+(-[0-9]+)?: WARNING: / { skip = 1; next }
        skip == 1 && /^Additional Info - helper: / { skip = 2; next }
        skip == 2 { skip = 3; next }
        skip == 3 && /^ *~+$/ { skip = 0; next }
        { skip = 0; print }'
}

# Whether masked output $1 holds more than header lines: a line that was
# masked (an event's fields), a map or a histogram bucket.
corpus_has_content() {
    grep -v '^Attaching # probe' <<<"$1" | grep -q -e '#' -e '<time>' -e '<addr>' -e '^@' -e '^[[(]'
}

# corpus_lines_only TRACER LINES: how many masked lines only TRACER
# printed, and the first.
corpus_lines_only() {
    local n
    n=$(grep -c . <<<"$2")
    if [ "$n" = 0 ]; then
        echo "none only $1 prints"
    else
        echo "$n masked lines only $1 prints, first '$(head -n1 <<<"$2")'"
    fi
}

# corpus_compare OUTPUT TOOL: the tool's line of results.tsv: TOOL,
# bpftrace's state, nobtf's, equal (yes|no), what bpftrace printed
# (content, or headers: nothing the workload made it print), why not.
corpus_compare() {
    local out=$1 tool=$2 bstate nstate ours theirs equal=no why="" printed=headers wrong
    bstate=$(corpus_state "$out" "$tool" bpftrace) || return 1
    nstate=$(corpus_state "$out" "$tool" nobtf) || return 1
    theirs=$(corpus_stdout "$out" "$tool" bpftrace | corpus_mask)
    ours=$(corpus_stdout "$out" "$tool" nobtf | corpus_mask | corpus_as_bpftrace_prints "$tool")
    [ "$bstate" = starts ] && corpus_has_content "$theirs" && printed=content
    if [ "$bstate" != starts ]; then
        why=${bstate#refused(}
        why="bpftrace does not run it: ${why%)}"
    elif [ "$nstate" != starts ]; then
        why=${nstate#refused(}
        why="nobtf refuses it: ${why%)}"
    elif [ "$ours" = "$theirs" ]; then
        equal=yes
        [ $printed = content ] || why="headers only: nothing in the VM makes either print more"
        wrong=$(corpus_bpftrace_wrong "$tool")
        [ -z "$wrong" ] || why="equal where bpftrace prints right; $wrong"
    else
        local only_theirs only_ours
        only_theirs=$(LC_ALL=C comm -23 <(printf '%s\n' "$theirs") <(printf '%s\n' "$ours"))
        only_ours=$(LC_ALL=C comm -13 <(printf '%s\n' "$theirs") <(printf '%s\n' "$ours"))
        why="$(corpus_lines_only bpftrace "$only_theirs"); $(corpus_lines_only nobtf "$only_ours")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$bstate" "$nstate" "$equal" "$printed" "$why"
}

# The tools nobtf runs on debian-6.1, on nobtf-5.10 (no BTF) with a profile
# per tool from `offsets gen --vmlinux VMLINUX --fields-from TOOL` (the
# kernel's DWARF, exactly the fields the tool reads), as a user of that
# kernel makes one: each must start, unless the kernel lacks one of its
# functions or tracepoints (the refusal says which). No bpftrace here: it
# needs BTF. Results in target/corpus-nobtf-5.10/results.tsv.
# Not tcpaccept, tcpconnect, tcplife, tcpretrans: they read skc_v6_*
# fields, and nobtf-5.10 is built without IPv6 (its DWARF has no such
# member, so no profile can hold them), nor tcpdrop for the same reason;
# not runqlen: `task_struct.se.cfs_rq` needs CONFIG_FAIR_GROUP_SCHED,
# which nobtf-5.10 lacks. dcsnoop's own `struct nameidata` embeds
# `struct path`: the profile's [structs] gives its size. naptime's and
# execsnoop's `args.ARG` are typed from nobtf's syscall table by offsets
# gen (no tracefs on the host).
CORPUS_PROFILE_TOOLS=(
    biolatency biolatency-kp biosnoop bitesize capable dcsnoop killsnoop oomkill
    opensnoop pidpersec runqlat setuids statsnoop swapin syncsnoop syscount
    tcpsynbl undump vfscount vfsstat writeback xfsdist
    cpuwalk execsnoop gethostlatency loads naptime ssllatency sslsnoop threadsnoop
)
# The tools that started on nobtf-5.10 (2026-12-07: 18 of 22; the other
# four probe block tracepoints and unix_stream_read_actor, which it lacks;
# then the eight that came with uprobes, sampling, kaddr() and the
# syscall lowering, all eight started):
# one that stops starting there is a failure, not a smaller count.
CORPUS_PROFILE_START_NOBTF_5_10=(
    biolatency-kp capable dcsnoop killsnoop oomkill opensnoop pidpersec
    runqlat setuids statsnoop swapin syncsnoop syscount tcpsynbl vfscount
    vfsstat writeback xfsdist
    cpuwalk execsnoop gethostlatency loads naptime ssllatency sslsnoop threadsnoop
)

# corpus_tool_profiles CORPUS DIR TOOL...: DIR/TOOL.toml from nobtf-5.10's
# vmlinux for each tool that reads struct fields.
corpus_tool_profiles() {
    local corpus=$1 profiles=$2 tool
    shift 2
    (cd "$NOBTF_ROOT" && cargo build --quiet --release -p offsets --bin offsets) || return 1
    # A tool that reads no struct field needs no profile (the builtin one
    # serves), and offsets gen cannot type its tracepoint arguments without
    # the kernel's tracefs (writeback's `args.name` is a string there):
    # such a tool runs without one when offsets gen fails.
    local noprofile=""
    for tool in "$@"; do
        "$NOBTF_ROOT/target/release/offsets" gen --vmlinux "$KERNELS_DIR/nobtf-5.10/vmlinux" \
            --fields-from "$corpus/$tool.bt" -o "$profiles/$tool.toml" 2>"$TEST_TMP/gen.err" && continue
        grep -q 'struct ' "$corpus/$tool.bt" \
            && { cat "$TEST_TMP/gen.err" >&2; fail "offsets gen --fields-from $tool.bt failed"; return 1; }
        noprofile+=" $tool"
        rm -f "$profiles/$tool.toml"
    done
    [ -z "$noprofile" ] || echo "corpus-profiles: no profile (no struct fields; offsets gen cannot type them on the host):$noprofile" >&2
}

# Refusals known on linux-5.4, each `TOOL TEXT` (TEXT in the refusal):
# none since its profile records [structs] (dcsnoop's nameidata embeds
# `struct path` and `struct qstr`).
CORPUS_PROFILE_KNOWN_LINUX_5_4=()
# The tools that must start on linux-5.4 with tests/profiles/linux-5.4.toml
# (05:34 UTC: 28 of 30; biosnoop and loads need what the kernel lacks):
# those whose fields or struct sizes the profile was regenerated for.
CORPUS_PROFILE_START_LINUX_5_4=(dcsnoop execsnoop naptime)

# corpus_known_refusal TOOL STATE: whether the kernel's list names it.
corpus_known_refusal() {
    local entry
    [ "$KERNEL" = linux-5.4 ] || return 1
    for entry in ${CORPUS_PROFILE_KNOWN_LINUX_5_4[@]+"${CORPUS_PROFILE_KNOWN_LINUX_5_4[@]}"}; do
        [ "${entry%% *}" = "$1" ] && [[ "$2" == *"${entry#* }"* ]] && return 0
    done
    return 1
}

vmtest_corpus_profiles() {
    local corpus tool tools profiles=$TEST_TMP/profiles how
    case $KERNEL in
        nobtf-5.10) how="offsets gen --vmlinux --fields-from TOOL profiles" ;;
        # No vmlinux, no tree here: the profile made from its tree once
        # (tests/profiles/linux-5.4.toml; the vm wrapper passes it).
        linux-5.4) how="tests/profiles/linux-5.4.toml" ;;
        *) skip "the profile corpus runs on nobtf-5.10 (a vmlinux with DWARF) and linux-5.4 (a committed profile), neither with BTF"; return ;;
    esac
    corpus=$(corpus_dir)
    [ -d "$corpus" ] || { skip "no corpus at $corpus (NOBTF_CORPUS names another)"; return; }
    (ensure_bench_rootfs) || { fail "the bench root filesystem could not be built"; return 1; }
    mkdir -p "$profiles"
    tools=${NOBTF_CORPUS_TOOLS:-${CORPUS_PROFILE_TOOLS[*]}}
    [ "$KERNEL" = nobtf-5.10 ] && { corpus_tool_profiles "$corpus" "$profiles" $tools || return 1; }
    corpus_script >"$TEST_TMP/corpus.sh"
    printf '%s\n' $tools >"$TEST_TMP/tools"
    : >"$TEST_TMP/second"
    local out start=$SECONDS dir=${NOBTF_CORPUS_RESULTS:-$NOBTF_ROOT/target}/corpus-$KERNEL
    out=$(vm --rootfs "$BENCH_ROOTFS" --mem 4096 --timeout 3600 --file "$corpus:/corpus" \
        --file "$profiles:/profiles" --file "$TEST_TMP/corpus.sh:/tmp/corpus.sh" \
        --file "$TEST_TMP/tools:/tmp/corpus-tools" --file "$TEST_TMP/second:/tmp/corpus-second" \
        --file "$TEST_TMP/second:/tmp/corpus-nobtf-only" -- /usr/bin/dash /tmp/corpus.sh 2>"$TEST_TMP/vm.err") \
        || { printf '%s\n' "$out" >&2; cat "$TEST_TMP/vm.err" >&2; fail "the VM script failed"; return 1; }
    echo "corpus with profiles on $KERNEL: $((SECONDS - start)) s" >&2
    mkdir -p "$dir"
    printf '%s\n' "$out" >"$dir/output.txt"
    local state failed="" known="" started=0 absent=0
    printf '# %s, kernel %s, nobtf with %s\n' \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(kernel_release "$KERNEL")" "$how" >"$dir/results.tsv"
    for tool in $tools; do
        state=$(corpus_state "$out" "$tool" nobtf) || { fail "no nobtf run of $tool"; return 1; }
        printf '%s\t%s\n' "$tool" "$state" >>"$dir/results.tsv"
        echo "corpus-profiles $tool: $state" >&2
        case $state in
            starts) started=$((started + 1)) ;;
            # The kernel lacks what the tool probes.
            *"is not in /proc/kallsyms"*|*"unknown tracepoint"*|*"no such symbol in /proc/kallsyms"*) absent=$((absent + 1)) ;;
            *) corpus_known_refusal "$tool" "$state" && known+=" $tool" || failed+=" $tool" ;;
        esac
    done
    echo "summary: $started tools start on $KERNEL with their profiles, $absent probe what the kernel lacks${known:+, known refusals:$known}" >&2
    [ -z "$failed" ] || { fail "refused on $KERNEL though its kernel has their probes:$failed"; return 1; }
    local must_start=()
    case $KERNEL in
        nobtf-5.10) must_start=("${CORPUS_PROFILE_START_NOBTF_5_10[@]}") ;;
        linux-5.4) must_start=("${CORPUS_PROFILE_START_LINUX_5_4[@]}") ;;
    esac
    for tool in ${must_start[@]+"${must_start[@]}"}; do
        case " $tools " in *" $tool "*) ;; *) continue ;; esac
        assert_eq "$(sed -n "s/^$tool\t//p" "$dir/results.tsv")" starts \
            || { fail "$tool no longer starts on $KERNEL"; return 1; }
    done
}
