"""Turn the RESULT lines of bench/run-in-vm.sh into results.json and a Markdown table."""

import argparse
import json

TOOLS = ["nobtf", "libbpf", "bpftrace", "ply"]


def parse(path):
    meta, results = {}, {}
    with open(path) as raw:
        for line in raw:
            words = line.split()
            if len(words) == 4 and words[0] == "RESULT":
                results.setdefault(words[1], {})[words[2]] = float(words[3])
            elif len(words) >= 2 and words[0] in ("kernel", "cpu", "cpus"):
                meta[words[0]] = line.split(maxsplit=1)[1].strip()
    return meta, results


def exit_text(code):
    if code is None:
        return "n/a"
    code = int(code)
    if code > 128:
        return {139: "SIGSEGV", 134: "SIGABRT", 137: "SIGKILL", 130: "SIGINT"}.get(code, f"signal {code - 128}")
    return str(code)


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--raw", "--json", "--markdown", "--host-cpu", "--command"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--unlinks", type=int, required=True)
    args = ap.parse_args()
    meta, results = parse(args.raw)
    base = results.get("none", {}).get("ns_per_unlink")
    for tool in TOOLS:
        r = results.get(tool)
        if r and base and "ns_per_unlink" in r:
            r["added_ns_per_unlink"] = r["ns_per_unlink"] - base
        if r:
            r["lost"] = r.get("lost_reported", 0) + r.get("lost_stdout", 0)
            # Every unlink makes an entry and an exit event: what was neither
            # delivered nor reported lost went missing without a word.
            if "entries" in r and "exits" in r:
                r["delivered"] = r["entries"] + r["exits"]
                r["unaccounted"] = 2 * args.unlinks - r["entries"] - r["exits"] - r["lost"]
                # The tracer's own CPU per event it delivered: its reader's cost.
                if r.get("storm_cpu_ms") is not None and r["delivered"] > 0:
                    r["reader_us_per_event"] = r["storm_cpu_ms"] * 1000 / r["delivered"]
    ref = results.get("libbpf", {}).get("added_ns_per_unlink")
    for tool in TOOLS:
        r = results.get(tool)
        if r and ref and "added_ns_per_unlink" in r:
            r["added_cost_vs_libbpf"] = r["added_ns_per_unlink"] / ref
    doc = {
        "command": args.command,
        "unlinks": args.unlinks,
        "kernel": meta.get("kernel"),
        "guest_cpu": meta.get("cpu"),
        "guest_cpus": meta.get("cpus"),
        "host_cpu": args.host_cpu,
        "emulation": "QEMU TCG (software emulation): absolute times are not native; compare ratios",
        "results": results,
    }
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)

    def cell(tool, key, fmt="{:.0f}"):
        v = results.get(tool, {}).get(key)
        return "n/a" if v is None else fmt.format(v)

    lines = [
        f"Kernel {doc['kernel']}, guest CPU {doc['guest_cpu']} x{doc['guest_cpus']}, "
        f"host CPU {doc['host_cpu']}; {doc['emulation']}.",
        f"{args.unlinks} unlinks of a missing file per tool (one entry and one exit event each); "
        f"no-probe baseline {cell('none', 'ns_per_unlink')} ns per unlink "
        f"({cell('none_after', 'ns_per_unlink')} ns after the tools).",
        "",
        "| tool | ns per unlink | added ns | added vs libbpf | start to first event (ms) "
        "| events delivered | events lost (reported) | events unaccounted | tracer CPU per event (µs) "
        "| peak RSS (KiB) | size on target (bytes) | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tool in TOOLS:
        if tool not in results:
            lines.append(f"| {tool} | not run | | | | | | | | | | |")
            continue
        lines.append(
            f"| {tool} | {cell(tool, 'ns_per_unlink')} | {cell(tool, 'added_ns_per_unlink')} "
            f"| {cell(tool, 'added_cost_vs_libbpf', '{:.2f}x')} | {cell(tool, 'attach_ms', '{:.1f}')} "
            f"| {cell(tool, 'delivered')} | {cell(tool, 'lost')} | {cell(tool, 'unaccounted')} "
            f"| {cell(tool, 'reader_us_per_event', '{:.1f}')} | {cell(tool, 'peak_rss_kb')} | {cell(tool, 'size_bytes')} "
            f"| {exit_text(results.get(tool, {}).get('tracer_exit'))} |"
        )
    lines.append("")
    lines.append(
        f"Each unlink makes an entry and an exit event ({2 * args.unlinks} expected per tool); "
        "unaccounted = expected - delivered - reported lost; tracer CPU per event is the user and system "
        "time the tracer process used from the storm's start to its stop, over the events it delivered. ply prints comm and pid only: it has no casts to "
        "follow struct filename's name pointer without kernel headers. "
        "exit is how each tracer ended when stopped with SIGINT after the storm."
    )
    lines.append("")
    lines.append(f"Made by `{args.command}`.")
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
