"""Turn the RESULT lines of bench/run-in-vm.sh into results.json and a Markdown table.

With several rounds in one boot, each round's figures are derived on their
own, then the table shows every figure's median and, for the ratios to
libbpf, the range over the rounds.
"""

import argparse
import json
import statistics

TOOLS = ["nobtf", "libbpf", "bpftrace", "ply", "limit", "nobtf-trace", "bpftrace-field", "nobtf-perf"]
# Real tools, the same program under nobtf trace and bpftrace, each pair
# under its own storm (opens, reads): (row, what it runs, the storm).
REAL_TOOLS = [
    ("opensnoop", "opensnoop.bt (bpftrace 0.23's tools/)", "open and close of /etc/hostname"),
    ("vfsread-hist", "the vfs_read latency histogram (kprobe, kretprobe, @start[tid], hist, delete)",
     "pread of 64 bytes"),
    ("vfs-count", "`kprobe:vfs_* { @[func] = count(); }`", "pread of 64 bytes"),
]
# The same field-reading one-liner under nobtf trace and bpftrace: a kprobe
# only, so one event per unlink where the other tools make two.
FIELD_PAIR = ("nobtf-trace", "bpftrace-field")
# Empty programs on the same kprobe and kretprobe: it delivers no events, so
# its cost per probe hit (two per unlink) stands for a cost per event.
LIMIT = "limit"


def parse(path):
    """Returns (meta, rounds): rounds is a list of {tool: {metric: value}}."""
    meta, rounds = {}, []
    with open(path) as raw:
        for line in raw:
            words = line.split()
            if len(words) == 2 and words[0] == "round":
                rounds.append({})
            elif len(words) == 4 and words[0] == "RESULT":
                if not rounds:
                    rounds.append({})
                rounds[-1].setdefault(words[1], {})[words[2]] = float(words[3])
            elif len(words) >= 2 and words[0] in ("kernel", "cpu", "cpus", "field_prog"):
                meta[words[0]] = line.split(maxsplit=1)[1].strip()
    return meta, rounds


def derive(results, unlinks):
    """Adds the figures computed from one round's measurements."""
    base = results.get("none", {}).get("ns_per_unlink")
    for tool in TOOLS:
        r = results.get(tool)
        if not r:
            continue
        # The baseline measured right before the tool, else the boot's first.
        tool_base = r.get("base_ns_per_unlink", base)
        if tool_base and "ns_per_unlink" in r:
            r["added_ns_per_unlink"] = r["ns_per_unlink"] - tool_base
        if tool == LIMIT:
            if "added_ns_per_unlink" in r:
                r["added_ns_per_delivered"] = r["added_ns_per_unlink"] / 2
            continue
        r["lost"] = r.get("lost_reported", 0) + r.get("lost_stdout", 0)
        # Every unlink makes an entry and an exit event (the one-liner an
        # entry only): what was neither delivered nor reported lost went
        # missing without a word.
        if "entries" in r and "exits" in r:
            expected = (1 if tool in FIELD_PAIR else 2) * unlinks
            r["delivered"] = r["entries"] + r["exits"]
            r["unaccounted"] = expected - r["entries"] - r["exits"] - r["lost"]
            if r["delivered"] > 0:
                # A tool that drops events does less work for them: its
                # added time over what it delivered is the fairer cost.
                if "added_ns_per_unlink" in r and r["delivered"] >= 0.01 * expected:
                    r["added_ns_per_delivered"] = r["added_ns_per_unlink"] * unlinks / r["delivered"]
                # The tracer's own CPU per event it delivered: its reader's cost.
                if r.get("storm_cpu_ms") is not None:
                    r["reader_us_per_event"] = r["storm_cpu_ms"] * 1000 / r["delivered"]
    for ref_tool in ("libbpf", LIMIT):
        for key, ratio in (("added_ns_per_unlink", f"added_cost_vs_{ref_tool}"),
                           ("added_ns_per_delivered", f"delivered_cost_vs_{ref_tool}")):
            ref = results.get(ref_tool, {}).get(key)
            for tool in TOOLS:
                r = results.get(tool)
                if r and ref and ref > 0 and key in r:
                    r[ratio] = r[key] / ref
    for row, _, _ in REAL_TOOLS:
        ours, theirs = results.get(f"nobtf-{row}", {}), results.get(f"bpftrace-{row}", {})
        for r in (ours, theirs):
            if "ns_per_unlink" in r and "base_ns_per_unlink" in r:
                r["added_ns_per_op"] = r["ns_per_unlink"] - r["base_ns_per_unlink"]
        for key in ("added_ns_per_op", "attach_ms", "storm_cpu_ms", "peak_rss_kb"):
            if ours.get(key) is not None and theirs.get(key):
                ours[key + "_vs_bpftrace"] = ours[key] / theirs[key]
    ours, theirs = (results.get(tool, {}) for tool in FIELD_PAIR)
    for key, ratio in (("added_ns_per_delivered", "field_delivered_cost_vs_bpftrace"),
                       ("attach_ms", "field_start_vs_bpftrace")):
        if ours.get(key) is not None and theirs.get(key):
            ours[ratio] = ours[key] / theirs[key]


def exit_text(code):
    if code is None:
        return "n/a"
    code = int(code)
    if code > 128:
        return {139: "SIGSEGV", 134: "SIGABRT", 137: "SIGKILL", 130: "SIGINT"}.get(code, f"signal {code - 128}")
    return str(code)


def summarize(rounds):
    """Median of every figure over the rounds, plus min and max of each."""
    summary = {}
    real = [f"{who}-{row}" for row, _, _ in REAL_TOOLS for who in ("nobtf", "bpftrace")]
    for tool in ["none", "none_after"] + TOOLS + real:
        keys = {k for r in rounds for k in r.get(tool, {})}
        for key in keys:
            values = [r[tool][key] for r in rounds if key in r.get(tool, {})]
            entry = summary.setdefault(tool, {})
            entry[key] = statistics.median(values)
            entry[key + "_range"] = (min(values), max(values))
    return summary


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--raw", "--json", "--markdown", "--host-cpu", "--command"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--unlinks", type=int, required=True)
    args = ap.parse_args()
    meta, rounds = parse(args.raw)
    for results in rounds:
        derive(results, args.unlinks)
    summary = summarize(rounds)
    doc = {
        "command": args.command,
        "unlinks": args.unlinks,
        "rounds": len(rounds),
        "kernel": meta.get("kernel"),
        "guest_cpu": meta.get("cpu"),
        "guest_cpus": meta.get("cpus"),
        "host_cpu": args.host_cpu,
        "emulation": "QEMU TCG (software emulation): absolute times are not native; compare ratios",
        "median": {tool: {k: v for k, v in r.items() if not k.endswith("_range")} for tool, r in summary.items()},
        "rounds_results": rounds,
    }
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)

    def cell(tool, key, fmt="{:.0f}", spread=False):
        r = summary.get(tool, {})
        v = r.get(key)
        if v is None:
            return "n/a"
        text = fmt.format(v)
        lo, hi = r[key + "_range"]
        if spread and len(rounds) > 1 and lo != hi:
            text += f" ({fmt.format(lo)}–{fmt.format(hi)})"
        return text

    median = "medians of " + str(len(rounds)) + " rounds; ratios with their range" if len(rounds) > 1 else "one round"
    lines = [
        f"Kernel {doc['kernel']}, guest CPU {doc['guest_cpu']} x{doc['guest_cpus']}, "
        f"host CPU {doc['host_cpu']}; {doc['emulation']}.",
        f"{args.unlinks} unlinks of a missing file per tool and round (one entry and one exit event each), "
        f"{median}; no-probe baseline {cell('none', 'ns_per_unlink')} ns per unlink "
        f"({cell('none_after', 'ns_per_unlink')} ns after the tools).",
        "",
        "| tool | ns per unlink | added ns | added vs libbpf | added vs limit | added ns per delivered event | "
        "per delivered event vs libbpf | per delivered event vs limit | start to first event (ms) "
        "| events delivered | events lost (reported) | events unaccounted | tracer CPU per event (µs) "
        "| peak RSS (KiB) | size on target (bytes) | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in TOOLS:
        if tool not in summary:
            lines.append(f"| {tool} | not run |" + " |" * 14)
            continue
        lines.append(
            f"| {tool} | {cell(tool, 'ns_per_unlink')} | {cell(tool, 'added_ns_per_unlink')} "
            f"| {cell(tool, 'added_cost_vs_libbpf', '{:.2f}x', spread=True)} "
            f"| {cell(tool, 'added_cost_vs_limit', '{:.2f}x', spread=True)} "
            f"| {cell(tool, 'added_ns_per_delivered')} "
            f"| {cell(tool, 'delivered_cost_vs_libbpf', '{:.2f}x', spread=True)} "
            f"| {cell(tool, 'delivered_cost_vs_limit', '{:.2f}x', spread=True)} "
            f"| {cell(tool, 'attach_ms', '{:.1f}')} "
            f"| {cell(tool, 'delivered')} | {cell(tool, 'lost')} | {cell(tool, 'unaccounted')} "
            f"| {cell(tool, 'reader_us_per_event', '{:.1f}')} | {cell(tool, 'peak_rss_kb')} "
            f"| {cell(tool, 'size_bytes')} "
            f"| {exit_text(summary.get(tool, {}).get('tracer_exit'))} |"
        )
    ours = summary.get(FIELD_PAIR[0], {})
    if "field_delivered_cost_vs_bpftrace" in ours or "field_start_vs_bpftrace" in ours:
        lines.append("")
        lines.append(
            "nobtf trace vs bpftrace, same one-liner: added per delivered event "
            f"{cell(FIELD_PAIR[0], 'field_delivered_cost_vs_bpftrace', '{:.2f}x', spread=True)}, "
            f"start to first event {cell(FIELD_PAIR[0], 'field_start_vs_bpftrace', '{:.2f}x', spread=True)}."
        )
    lines.append("")
    lines.append(
        f"Each unlink makes an entry and an exit event ({2 * args.unlinks} expected per tool and round); "
        "unaccounted = expected - delivered - reported lost. Added ns per delivered event = added ns per "
        "unlink x unlinks / events delivered: a tool that drops events skips their printing, so its "
        "added time per unlink flatters it. Tracer CPU per event is the user and system time the tracer "
        "process used from the storm's start to its stop, over the events it delivered. ply prints comm "
        "and pid only: it has no casts to follow struct filename's name pointer without kernel headers. "
        "exit is how each tracer ended when stopped with SIGINT after the storm. "
        "Added ns is over a no-probe run of the same loop right before the tool (the boot's first no-probe run when absent). "
        "limit is the floor: a kprobe and a kretprobe on do_unlinkat whose programs return at once, "
        "attached as the libbpf peer attaches (bpf_program__attach), in the same boot; it delivers no "
        "events, so its added ns per delivered event is its added ns per probe hit (half its added ns "
        "per unlink), and the vs-limit columns divide a tool's figure by the limit's. "
        "nobtf-trace and bpftrace-field run the same field-reading one-liner, a kprobe only "
        f"(one event per unlink, {args.unlinks} expected): `{meta.get('field_prog', 'n/a')}`."
    )
    real_rows = [row for row, _, _ in REAL_TOOLS
                 if f"nobtf-{row}" in summary or f"bpftrace-{row}" in summary]
    if real_rows:
        lines += [
            "",
            "Real tools, nobtf trace against bpftrace in the same boot, each under its own storm of "
            f"{args.unlinks} operations:",
            "",
            "| tool | tracer | storm | added ns per operation | vs bpftrace | start to all probes attached (ms) "
            "| vs bpftrace | tracer CPU in the storm (ms) | vs bpftrace | peak RSS (KiB) | vs bpftrace "
            "| lines printed | exit |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row, what, storm in REAL_TOOLS:
            for who in ("nobtf", "bpftrace"):
                tool = f"{who}-{row}"
                if tool not in summary:
                    lines.append(f"| {what} | {who} | {storm} | not run |" + " |" * 9)
                    continue
                vs = (lambda key: cell(tool, key + "_vs_bpftrace", "{:.2f}x", spread=True)) if who == "nobtf" \
                    else (lambda key: "1.00x")
                lines.append(
                    f"| {what} | {who} | {storm} | {cell(tool, 'added_ns_per_op')} | {vs('added_ns_per_op')} "
                    f"| {cell(tool, 'attach_ms', '{:.1f}')} | {vs('attach_ms')} "
                    f"| {cell(tool, 'storm_cpu_ms')} | {vs('storm_cpu_ms')} "
                    f"| {cell(tool, 'peak_rss_kb')} | {vs('peak_rss_kb')} | {cell(tool, 'lines')} "
                    f"| {exit_text(summary.get(tool, {}).get('tracer_exit'))} |"
                )
        lines += [
            "",
            "Added ns per operation is over a no-probe run of the same storm right before the tracer. "
            "Start to all probes attached: from exec to the first line of a probe written last in the "
            "program (`kprobe:do_unlinkat` printing the marker benchctl unlinks every 2 ms; opensnoop "
            "prints the marker's failed open itself). Tracer CPU: user and system time of the tracer "
            "from the storm's start to its stop. Lines printed: every line the tracer wrote to stdout.",
        ]
    lines.append("")
    lines.append(f"Made by `{args.command}`.")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
