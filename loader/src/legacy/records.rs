//! Trace pipe lines cut into records. Before 5.10 the kernel adds no newline
//! after `bpf_trace_printk`'s text, and libbpf's `bpf_printk` formats end
//! without one, so one pipe line holds several records: each record starts
//! with the kernel's header (`<comm>-<pid> [<cpu>] <flags> <secs>.<usecs>: `),
//! and a header after the line's first starts the next record.

/// The line's records, in order, each with the padding its header had;
/// text that is no record's (no header at all) comes back whole.
pub fn split(line: &str) -> Vec<&str> {
    let mut cuts: Vec<usize> = (0..line.len())
        .filter(|&i| line.as_bytes()[i] == b'[')
        .filter_map(|i| header_start(line.as_bytes(), i))
        .filter(|&start| !line[..start].trim().is_empty())
        .collect();
    cuts.dedup();
    let mut records = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for cut in cuts {
        records.push(line[from..cut].trim_end());
        from = cut;
    }
    records.push(&line[from..]);
    records
}

/// Where the header around the `[` at `open` starts (the padding before its
/// comm), if it is one: `<ws><comm>-<pid><ws>[<digits>] <flags><ws><n>.<n>: `.
fn header_start(b: &[u8], open: usize) -> Option<usize> {
    // After: the cpu, the flags, the timestamp.
    let mut i = open + 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let spaces = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i] == b' ' {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) || b.get(i) != Some(&b']') || b.get(i + 1) != Some(&b' ') {
        return None;
    }
    i += 2;
    let flags = i;
    while i < b.len() && !b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i == flags || !spaces(&mut i) || !digits(&mut i) || b.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    if !digits(&mut i) || b.get(i) != Some(&b':') {
        return None;
    }
    // Before: spaces, the pid, a dash, the comm, then the padding.
    let mut j = open;
    while j > 0 && b[j - 1] == b' ' {
        j -= 1;
    }
    let pid_end = j;
    while j > 0 && b[j - 1].is_ascii_digit() {
        j -= 1;
    }
    if j == pid_end || j == 0 || b[j - 1] != b'-' {
        return None;
    }
    j -= 1;
    let comm_end = j;
    while j > 0 && !b[j - 1].is_ascii_whitespace() {
        j -= 1;
    }
    if j == comm_end {
        return None;
    }
    while j > 0 && b[j - 1] == b' ' {
        j -= 1;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn records_without_newlines_are_cut_at_the_next_header() {
        // linux-5.4, the seed's bpf_printk lines as the pipe gave them.
        let line = "              rm-71      [001] ....     1.559173: 0: KPROBE ENTRY pid = 71, \
                    refcnt=1 filename = /tmp/a.txt              rm-71      [001] d...     \
                    1.561925: 0: KPROBE EXIT: pid = 71, ret = 0";
        assert_eq!(
            split(line),
            [
                "              rm-71      [001] ....     1.559173: 0: KPROBE ENTRY pid = 71, \
                 refcnt=1 filename = /tmp/a.txt",
                "              rm-71      [001] d...     1.561925: 0: KPROBE EXIT: pid = 71, ret = 0",
            ]
        );
    }

    #[test]
    fn three_records_and_comms_with_dashes() {
        let line = "  a-b-1 [000] d... 1.0: x   <...>-22 [001] dN.. 2.5: y kworker/u4:1-9 [1] ...21 3.25: z";
        assert_eq!(
            split(line),
            [
                "  a-b-1 [000] d... 1.0: x",
                "   <...>-22 [001] dN.. 2.5: y",
                " kworker/u4:1-9 [1] ...21 3.25: z"
            ]
        );
    }

    #[test]
    fn lines_with_one_record_or_none_are_left_whole() {
        for line in [
            "           <...>-101     [001] ...21     5.114228: bpf_trace_printk: KPROBE EXIT: pid = 101, ret = 0",
            "text [12] that only looks like -5 [0] a header",
            "",
            "[",
            "x-1 [0] d 1.",
        ] {
            assert_eq!(split(line), [line]);
        }
    }
}
