//! The encoded programs run in the userspace interpreter against fake
//! `pt_regs` and fake kernel memory holding a `struct filename` laid out as
//! on 5.4 (refcnt at +16) and as on 4.x (refcnt at +24): each layout gives
//! the right event with its own profile and a wrong one with the other's.

mod common;

use common::*;
use probes::event::{self, EventKind, UnlinkEvent};
use probes::interp::{Space, Vm, fake_pt_regs_of};
use probes::unlink::{self, Output, Readers};
use profile::Profile;

const FILENAME: u64 = 0xffff_8880_0100_0000; // struct filename
const NAME: u64 = 0xffff_8880_0200_0000; // its kernel copy of the path
const ANAME: u64 = 0xffff_8880_0000_0abc; // struct audit_names *
const USER_PATH: u64 = 0x7ffd_0000_1000; // the path as the user passed it
const PID: u32 = 4242;
const TID: u32 = 4243;
const REFCNT: i32 = 1;
const EVENTS_FD: i32 = 5;
const AT_FDCWD: i64 = -100;

#[derive(Clone, Copy)]
enum Layout {
    /// `{ name; uptr; refcnt; aname; iname[] }`
    V54,
    /// `{ name; uptr; aname; refcnt; iname[] }`
    V4x,
}

fn struct_filename(layout: Layout) -> Vec<u8> {
    let mut bytes = vec![0u8; 40];
    bytes[0..8].copy_from_slice(&NAME.to_ne_bytes());
    bytes[8..16].copy_from_slice(&USER_PATH.to_ne_bytes());
    let (refcnt_at, aname_at) = match layout {
        Layout::V54 => (16, 24),
        Layout::V4x => (24, 16),
    };
    bytes[refcnt_at..refcnt_at + 4].copy_from_slice(&REFCNT.to_ne_bytes());
    bytes[aname_at..aname_at + 8].copy_from_slice(&ANAME.to_ne_bytes());
    bytes
}

fn machine(layout: Layout) -> Vm {
    let mut vm = Vm::new();
    vm.pid_tgid = (u64::from(PID) << 32) | u64::from(TID);
    vm.comm[..2].copy_from_slice(b"rm");
    vm.ktime_ns = 4_188_004_100_000;
    vm.perf_map_fd = EVENTS_FD;
    vm.map(Space::Kernel, FILENAME, struct_filename(layout))
        .unwrap();
    // Each path ends 64 bytes into its mapping: a whole-buffer read faults
    // there, so the fixed-size reader must fall back to a shorter one.
    vm.map(Space::Kernel, NAME, padded(b"a.txt\0", 64)).unwrap();
    vm.map(Space::User, USER_PATH, padded(b"/tmp/a.txt\0", 64))
        .unwrap();
    vm
}

/// `bytes`, then filler that is not NUL, up to `len`: a reader that does
/// not stop at the first NUL shows it.
fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(len, b'#');
    out
}

/// Build, encode and run a program; return what it emitted.
fn run(vm: &mut Vm, program: probes::Program, ctx: &[(&str, u64)]) {
    let raw = program
        .encode(|name| match name {
            unlink::EVENTS_MAP => Some(EVENTS_FD),
            probes::ringbuf::LOSSES_MAP => Some(LOSSES_FD),
            _ => None,
        })
        .unwrap();
    // The profiles here are x86-64's: so are the registers, on any host.
    let regs = fake_pt_regs_of(&kernel_headers::pt_regs::x86_64::ABI, ctx).unwrap();
    let ret = vm.run(&raw, &regs).unwrap();
    assert_eq!(ret, 0);
}

fn entry_event(layout: Layout, profile: &Profile, read: Readers, arg: u64) -> UnlinkEvent {
    let mut vm = machine(layout);
    let program = unlink::entry(profile, &choices(Output::PerfEvents, read)).unwrap();
    run(&mut vm, program, &[("di", AT_FDCWD as u64), ("si", arg)]);
    assert_eq!(vm.perf_output.len(), 1);
    assert_eq!(vm.perf_output[0].len(), event::SIZE);
    event::parse(&vm.perf_output[0]).unwrap()
}

fn assert_task(event: &UnlinkEvent, kind: EventKind) {
    assert_eq!(event.version, event::VERSION);
    assert_eq!(event.kind(), Some(kind));
    assert_eq!((event.pid, event.tid), (PID, TID));
    assert_eq!(event.comm_str(), "rm");
    assert_eq!(event.ts_ns, 4_188_004_100_000);
}

#[test]
fn each_layout_with_its_own_profile_gives_the_right_event() {
    for read in READS {
        for (layout, profile) in [(Layout::V54, profile_5_4()), (Layout::V4x, profile_4_x())] {
            let event = entry_event(layout, &profile, read, FILENAME);
            assert_task(&event, EventKind::Entry);
            assert_eq!(event.filename_str(), "a.txt");
            assert_eq!(event.refcnt(), Some(REFCNT));
            assert_eq!(event.ret, 0);
        }
    }
}

#[test]
fn each_layout_with_the_other_profile_gives_a_wrong_refcnt() {
    let wrong = ANAME as u32 as i32; // the low half of the aname pointer
    for read in READS {
        for (layout, profile) in [(Layout::V54, profile_4_x()), (Layout::V4x, profile_5_4())] {
            let event = entry_event(layout, &profile, read, FILENAME);
            assert_eq!(event.refcnt(), Some(wrong));
            assert_ne!(wrong, REFCNT);
        }
    }
}

#[test]
fn the_name_offset_drives_the_string_read() {
    // A profile that puts `name` at +8 reads `uptr`, a user pointer.
    let mut profile = profile_5_4();
    profile.fields.insert(
        profile::FILENAME_NAME.into(),
        profile::Field::typed(8, 8, "char *"),
    );
    // probe_read reads user memory as well: the user's path, not the kernel copy.
    let event = entry_event(Layout::V54, &profile, Readers::ProbeReadStr, FILENAME);
    assert_eq!(event.filename_str(), "/tmp/a.txt");
    // probe_read_kernel_str refuses a user address: nothing.
    let event = entry_event(Layout::V54, &profile, Readers::Split, FILENAME);
    assert_eq!(event.filename_str(), "");
}

#[test]
fn a_missing_struct_gives_an_empty_event_not_a_fault() {
    let event = entry_event(Layout::V54, &profile_5_4(), Readers::Split, 0x10);
    assert_task(&event, EventKind::Entry);
    assert_eq!(event.filename_str(), "");
    assert_eq!(event.refcnt(), None);
}

#[test]
fn user_path_variant_reads_user_memory_without_refcnt() {
    for read in READS {
        let event = entry_event(Layout::V54, &profile_user_path(), read, USER_PATH);
        assert_task(&event, EventKind::Entry);
        assert_eq!(event.filename_str(), "/tmp/a.txt");
        assert_eq!(event.refcnt(), None);
    }
    // With probe_read_user_str, a kernel address is refused.
    let event = entry_event(Layout::V54, &profile_user_path(), Readers::Split, NAME);
    assert_eq!(event.filename_str(), "");
}

#[test]
fn exit_event_carries_the_return_value() {
    for read in READS {
        let mut vm = machine(Layout::V54);
        let program = unlink::exit(&profile_5_4(), &choices(Output::PerfEvents, read)).unwrap();
        run(&mut vm, program, &[("ax", -2i64 as u64)]);
        let event = event::parse(&vm.perf_output[0]).unwrap();
        assert_task(&event, EventKind::Exit);
        assert_eq!(event.ret, -2);
        assert_eq!(event.filename_str(), "");
        assert_eq!(event.refcnt(), None);
    }
}

/// 6.x's `int do_unlinkat` leaves the upper half of rax zero: -2 arrives as
/// 0xffff_fffe and must still come out as -2, in both outputs.
#[test]
fn int_return_is_sign_extended() {
    for output in [Output::PerfEvents, Output::TracePrintk] {
        let mut vm = machine(Layout::V54);
        let c = choices(output, Readers::Split);
        run(
            &mut vm,
            unlink::exit(&profile_5_4(), &c).unwrap(),
            &[("ax", 0xffff_fffe)],
        );
        match output {
            Output::PerfEvents => assert_eq!(event::parse(&vm.perf_output[0]).unwrap().ret, -2),
            Output::RingBuffer => unreachable!(),
            Output::TracePrintk => {
                assert_eq!(vm.trace_pipe, ["KPROBE EXIT: pid = 4242, ret = -2\n"])
            }
        }
    }
}

#[test]
fn printk_variants_print_the_reference_lines() {
    for read in READS {
        let c = choices(Output::TracePrintk, read);
        for (layout, profile) in [(Layout::V54, profile_5_4()), (Layout::V4x, profile_4_x())] {
            let mut vm = machine(layout);
            run(
                &mut vm,
                unlink::entry(&profile, &c).unwrap(),
                &[("si", FILENAME)],
            );
            assert_eq!(
                vm.trace_pipe,
                ["KPROBE ENTRY pid = 4242, filename = a.txt\n"]
            );
            assert!(vm.perf_output.is_empty());
        }

        let mut vm = machine(Layout::V54);
        let program = unlink::entry(&profile_user_path(), &c).unwrap();
        run(&mut vm, program, &[("si", USER_PATH)]);
        assert_eq!(
            vm.trace_pipe,
            ["KPROBE ENTRY pid = 4242, filename = /tmp/a.txt\n"]
        );

        for (ret, line) in [
            (0i64, "KPROBE EXIT: pid = 4242, ret = 0\n"),
            (-2, "KPROBE EXIT: pid = 4242, ret = -2\n"),
        ] {
            let mut exit_vm = machine(Layout::V54);
            run(
                &mut exit_vm,
                unlink::exit(&profile_5_4(), &c).unwrap(),
                &[("ax", ret as u64)],
            );
            assert_eq!(exit_vm.trace_pipe, [line]);
        }
    }
}

/// The fixed-size reader falls back to shorter reads when the whole buffer
/// would cross the end of the mapping, down to the shortest size.
#[test]
fn fixed_reads_fall_back_near_the_end_of_a_mapping() {
    const AT: u64 = 0x7ffd_0000_8000;
    for (mapped, want) in [
        (200, "/tmp/a.txt"), // 128 fits
        (40, "/tmp/a.txt"),  // 32 fits
        (11, "/tmp/a.t"),    // only the last, 8-byte, read fits: a prefix
        (7, ""),             // nothing fits: an empty path, no fault
    ] {
        let mut vm = machine(Layout::V54);
        let mut bytes = padded(b"/tmp/a.txt\0", mapped.max(11));
        bytes.truncate(mapped);
        vm.map(Space::User, AT, bytes).unwrap();
        let program = unlink::entry(
            &profile_user_path(),
            &choices(Output::PerfEvents, Readers::ProbeRead),
        )
        .unwrap();
        run(&mut vm, program, &[("di", AT_FDCWD as u64), ("si", AT)]);
        let event = event::parse(&vm.perf_output[0]).unwrap();
        assert_eq!(event.filename_str(), want, "{mapped} bytes mapped");
    }
}

/// A path longer than the buffer is cut to its first FILENAME_LEN - 1
/// bytes and NUL-terminated, as probe_read_str does.
#[test]
fn fixed_reads_of_a_long_path_end_in_nul() {
    let long = vec![b'x'; event::FILENAME_LEN + 40];
    for read in READS {
        let mut vm = machine(Layout::V54);
        vm.map(Space::User, 0x7ffd_0001_0000, long.clone()).unwrap();
        let program =
            unlink::entry(&profile_user_path(), &choices(Output::PerfEvents, read)).unwrap();
        run(
            &mut vm,
            program,
            &[("di", AT_FDCWD as u64), ("si", 0x7ffd_0001_0000)],
        );
        let event = event::parse(&vm.perf_output[0]).unwrap();
        assert_eq!(event.filename[event::FILENAME_LEN - 1], 0, "{read:?}");
        assert_eq!(
            event.filename_str().len(),
            event::FILENAME_LEN - 1,
            "{read:?}"
        );
    }
}

const LOSSES_FD: i32 = 6;

/// Runs the exit probe into the ring buffer with `pending` bytes already
/// waiting in a ring of `capacity` bytes.
fn ring_exit(pending: u64, capacity: u64) -> Vm {
    let mut vm = machine(Layout::V54);
    vm.ring_map_fd = EVENTS_FD;
    vm.ring_pending = pending;
    vm.ring_capacity = capacity;
    vm.cpu = 3;
    vm.add_array_map(LOSSES_FD, 8, 1);
    let program =
        unlink::exit(&profile_5_4(), &choices(Output::RingBuffer, Readers::Split)).unwrap();
    let raw = program
        .encode(|name| match name {
            unlink::EVENTS_MAP => Some(EVENTS_FD),
            probes::ringbuf::LOSSES_MAP => Some(LOSSES_FD),
            _ => None,
        })
        .unwrap();
    let regs = fake_pt_regs_of(
        &kernel_headers::pt_regs::x86_64::ABI,
        &[("ax", 0xffff_fffe)],
    )
    .unwrap();
    assert_eq!(vm.run(&raw, &regs).unwrap(), 0);
    vm
}

fn losses(vm: &Vm) -> u64 {
    let entries = vm.map_entries(LOSSES_FD);
    u64::from_ne_bytes(entries[0].1[..8].try_into().unwrap())
}

#[test]
fn ring_buffer_records_carry_their_cpu_and_wake_the_reader_once_per_batch() {
    use kernel_headers::bpf::ringbuf::{FORCE_WAKEUP, NO_WAKEUP};
    use probes::ringbuf::WAKEUP_BYTES;
    let mark = WAKEUP_BYTES as u64;
    let size = event::EXIT_SIZE as u64;
    // Only the record that takes the pending bytes across the mark wakes.
    // What the record takes of the ring: its header and padding too.
    let taken = (size + 8).next_multiple_of(8);
    for (pending, flags) in [
        (0, NO_WAKEUP),
        (mark - taken - 1, NO_WAKEUP),
        (mark - taken, FORCE_WAKEUP),
        (mark - 1, FORCE_WAKEUP),
        (mark, NO_WAKEUP),
        (10 * mark, NO_WAKEUP),
    ] {
        let vm = ring_exit(pending, 1 << 20);
        assert_eq!(vm.ring_output.len(), 1, "pending {pending}");
        let (record, got) = &vm.ring_output[0];
        assert_eq!(*got, flags, "pending {pending}");
        let event = event::parse(record).unwrap();
        assert_task(&event, EventKind::Exit);
        assert_eq!((event.ret, event.cpu), (-2, 3));
        assert_eq!(losses(&vm), 0);
    }
}

#[test]
fn a_record_the_ring_buffer_has_no_room_for_is_counted() {
    let vm = ring_exit(1000, 1000 + event::EXIT_SIZE as u64);
    assert!(vm.ring_output.is_empty());
    assert_eq!(losses(&vm), 1);
}

/// The entry probe into the ring buffer, whose records are written in
/// place over stale bytes ([`probes::interp::RING_STALE`]), gives the
/// event the perf variant's zeroed stack gives: every field the reader
/// uses is written, whatever the reads find.
#[test]
fn ring_records_written_in_place_equal_the_stack_records() {
    let cases = [
        (profile_5_4(), FILENAME),
        (profile_5_4(), 0x10),
        (profile_user_path(), USER_PATH),
        (profile_user_path(), 0x10),
    ];
    for read in READS {
        for (profile, arg) in &cases {
            let ctx = [("di", AT_FDCWD as u64), ("si", *arg)];
            let mut perf = machine(Layout::V54);
            run(
                &mut perf,
                unlink::entry(profile, &choices(Output::PerfEvents, read)).unwrap(),
                &ctx,
            );
            let want = event::parse(&perf.perf_output[0]).unwrap();
            let mut ring = machine(Layout::V54);
            ring.ring_map_fd = EVENTS_FD;
            ring.ring_capacity = 1 << 20;
            ring.cpu = 3;
            run(
                &mut ring,
                unlink::entry(profile, &choices(Output::RingBuffer, read)).unwrap(),
                &ctx,
            );
            let (record, _) = &ring.ring_output[0];
            assert_eq!(record.len(), event::SIZE);
            let got = event::parse(record).unwrap();
            let what = format!("{read:?} {arg:#x}");
            assert_task(&got, EventKind::Entry);
            assert_eq!((got.cpu, got.reserved), (3, 0), "{what}");
            assert_eq!(
                (got.refcnt, got.flags, got.ret),
                (want.refcnt, want.flags, want.ret),
                "{what}"
            );
            assert_eq!(got.filename_str(), want.filename_str(), "{what}");
            assert_eq!(got.comm, want.comm, "{what}");
        }
    }
    // The stale bytes are there to be noticed: past the path's NUL and
    // the 64 bytes read at a fixed size.
    let mut ring = machine(Layout::V54);
    ring.ring_map_fd = EVENTS_FD;
    ring.ring_capacity = 1 << 20;
    let program =
        unlink::entry(&profile_5_4(), &choices(Output::RingBuffer, Readers::Split)).unwrap();
    run(&mut ring, program, &[("si", FILENAME)]);
    let record = &ring.ring_output[0].0;
    assert_eq!(record[event::EXIT_SIZE + 70], probes::interp::RING_STALE);
}

/// The ring entry probe reads a kernel path 64 bytes at a fixed size
/// first, and with the string helper where those hold no NUL or cannot be
/// read: every length, and every mapping's end, gives the path the string
/// helper alone gives (cut to FILENAME_LEN - 1 bytes).
#[test]
fn ring_paths_of_every_length_and_mapping_end_read_whole() {
    const AT: u64 = 0xffff_8880_0300_0000;
    for len in 0..event::FILENAME_LEN + 20 {
        let path: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let want = String::from_utf8(path[..len.min(event::FILENAME_LEN - 1)].to_vec()).unwrap();
        // The NUL last in the mapping, or the usual filler after it.
        for tail in [0, 100] {
            let mut bytes = path.clone();
            bytes.push(0);
            bytes.resize(bytes.len() + tail, b'#');
            let mut vm = machine(Layout::V54);
            vm.ring_map_fd = EVENTS_FD;
            vm.ring_capacity = 1 << 20;
            let mut filename = struct_filename(Layout::V54);
            filename[0..8].copy_from_slice(&AT.to_ne_bytes());
            vm.map(Space::Kernel, FILENAME + 0x1000, filename).unwrap();
            vm.map(Space::Kernel, AT, bytes).unwrap();
            let program =
                unlink::entry(&profile_5_4(), &choices(Output::RingBuffer, Readers::Split))
                    .unwrap();
            run(&mut vm, program, &[("si", FILENAME + 0x1000)]);
            let got = event::parse(&vm.ring_output[0].0).unwrap();
            assert_eq!(got.filename_str(), want, "length {len}, {tail} bytes after");
            assert_eq!(got.refcnt, REFCNT, "length {len}");
        }
    }
}
