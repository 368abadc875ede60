//! The two back ends against each other: each program is compiled to BPF
//! and run in probes' interpreter, and translated to tracefs events whose
//! fetch arguments are evaluated here over the same fake kernel the way
//! the kernel evaluates them, the trace line decoded as the loader decodes
//! it. Both must give the same records.

use kernel_headers::KernelVersion;
use kernel_headers::kprobe::ProbeKind;
use kernel_headers::pt_regs::NATIVE;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::Event;
use lang::tracefs::{Fetch, FetchArg, FetchType, PipeLine, Syntax};
use lang::tracefs_program::translate;
use lang::tracepoint::NoTracepoints;
use lang::{Target, compile};
use probes::interp::{Space, fake_pt_regs};

mod common;

/// The fake kernel both back ends read: registers, and memory by space.
struct Machine {
    regs: Vec<(&'static str, u64)>,
    memory: Vec<(Space, u64, Vec<u8>)>,
}

/// The task as `common::vm_for` makes it (on CPU 1).
const TID: u32 = 43;
const COMM: &str = "rm";
const FILENAME: u64 = 0xffff_8880_0000_1000;
const NAME: u64 = 0xffff_8880_0000_2000;
const TASK: u64 = 0xffff_8880_0001_0000;
const MM: u64 = 0xffff_8880_0002_0000;
const USER_PATH: u64 = 0x7ffd_0000_1000;

fn field(offset: u32, size: u32, ty: &str) -> FieldInfo {
    FieldInfo {
        offset,
        size,
        c_type: Some(ty.into()),
    }
}

fn fields() -> Vec<(&'static str, FieldInfo)> {
    vec![
        ("filename.name", field(0, 8, "const char *")),
        ("filename.refcnt", field(24, 4, "int")),
        ("task_struct.mm", field(0x40, 8, "struct mm_struct *")),
        ("task_struct.pid", field(0x48, 4, "pid_t")),
        ("task_struct.prio", field(0x4c, 2, "short")),
        ("task_struct.comm", field(0x50, 16, "char[16]")),
        ("mm_struct.owner", field(0x10, 8, "struct task_struct *")),
    ]
}

fn machine(args: &[u64], ret: u64) -> Machine {
    let mut regs: Vec<(&str, u64)> = args
        .iter()
        .zip(NATIVE.args)
        .map(|(&v, &(name, _))| (name, v))
        .collect();
    regs.push((NATIVE.ret.0, ret));
    let mut filename = vec![0u8; 32];
    filename[..8].copy_from_slice(&NAME.to_le_bytes());
    filename[24..28].copy_from_slice(&(-3i32).to_le_bytes());
    let mut task = vec![0u8; 0x60];
    task[0x40..0x48].copy_from_slice(&MM.to_le_bytes());
    task[0x48..0x4c].copy_from_slice(&(-7i32).to_le_bytes());
    task[0x4c..0x4e].copy_from_slice(&(-120i16).to_le_bytes());
    task[0x50..0x55].copy_from_slice(b"bash\0");
    let mut mm = vec![0u8; 0x18];
    mm[0x10..0x18].copy_from_slice(&TASK.to_le_bytes());
    Machine {
        regs,
        memory: vec![
            (Space::Kernel, FILENAME, filename),
            (Space::Kernel, NAME, b"/tmp/a.txt\0".to_vec()),
            (Space::Kernel, TASK, task),
            (Space::Kernel, MM, mm),
            (Space::User, USER_PATH, b"/home/u/f\0".to_vec()),
        ],
    }
}

impl Machine {
    fn read(&self, space: Space, addr: u64, len: usize) -> Option<&[u8]> {
        self.memory.iter().find_map(|(s, base, bytes)| {
            let start = usize::try_from(addr.checked_sub(*base)?).ok()?;
            (*s == space && start + len <= bytes.len()).then(|| &bytes[start..start + len])
        })
    }

    fn reg(&self, name: &str) -> u64 {
        self.regs
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// What a fetch yields as an integer (an address for a deref above it).
    fn value(&self, fetch: &Fetch, bytes: usize) -> Option<u64> {
        let (space, offset, of) = match fetch {
            Fetch::Arg(n) => return Some(self.reg(NATIVE.args[usize::from(*n) - 1].0)),
            Fetch::Retval => return Some(self.reg(NATIVE.ret.0)),
            Fetch::Comm => return None,
            Fetch::Deref { offset, of } => (Space::Kernel, offset, of),
            Fetch::UserDeref { offset, of } => (Space::User, offset, of),
        };
        let addr = self.value(of, 8)?.wrapping_add_signed(*offset);
        let mut raw = [0u8; 8];
        raw[..bytes].copy_from_slice(self.read(space, addr, bytes)?);
        Some(u64::from_le_bytes(raw))
    }

    /// The string a string fetch names: at the address its deref reads.
    fn string(&self, fetch: &Fetch, space: Space) -> Option<String> {
        let addr = match fetch {
            Fetch::Comm => return Some(COMM.into()),
            Fetch::Deref { offset, of } | Fetch::UserDeref { offset, of } => {
                self.value(of, 8)?.wrapping_add_signed(*offset)
            }
            other => self.value(other, 8)?,
        };
        let (_, base, bytes) = self.memory.iter().find(|(s, base, bytes)| {
            *s == space && (*base..*base + bytes.len() as u64).contains(&addr)
        })?;
        let tail = &bytes[(addr - base) as usize..];
        let end = tail.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    }

    /// One fetch argument as the kernel prints it in a trace line.
    fn print(&self, arg: &FetchArg) -> String {
        let text = match arg.ty {
            FetchType::String | FetchType::UserString => {
                let space = if arg.ty == FetchType::UserString
                    || matches!(arg.fetch, Fetch::UserDeref { .. })
                {
                    Space::User
                } else {
                    Space::Kernel
                };
                self.string(&arg.fetch, space)
                    .map_or("(fault)".into(), |s| format!("\"{s}\""))
            }
            FetchType::Unsigned(n) => self
                .value(&arg.fetch, usize::from(n))
                .map_or("(fault)".into(), |v| v.to_string()),
            FetchType::Signed(n) => {
                self.value(&arg.fetch, usize::from(n))
                    .map_or("(fault)".into(), |v| {
                        let shift = 64 - 8 * u32::from(n);
                        (((v << shift) as i64) >> shift).to_string()
                    })
            }
        };
        format!("{}={text}", arg.name)
    }
}

fn target<'a>(fields: &'a Vec<(&'static str, FieldInfo)>) -> Target<'a> {
    Target {
        fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 10, 0), NATIVE),
    }
}

/// The records of the BPF program, run once in the interpreter.
fn through_bpf(src: &str, m: &Machine) -> Vec<Event> {
    let fields = fields();
    let compiled = compile(src, &target(&fields)).unwrap_or_else(|e| panic!("{}", e.render(src)));
    let (mut vm, fd) = common::vm_for(&compiled);
    // One thread: BPF's pid is the trace line's pid column too.
    vm.pid_tgid = (u64::from(TID) << 32) | u64::from(TID);
    for (space, addr, bytes) in &m.memory {
        vm.map(*space, *addr, bytes.clone()).unwrap();
    }
    let raw = compiled.probes[0].encode(fd).unwrap();
    let regs = fake_pt_regs(&m.regs).unwrap();
    vm.run(&raw, &regs).unwrap();
    common::printed(&compiled, &vm)
}

/// The records the tracefs event's one trace line stands for.
fn through_tracefs(src: &str, m: &Machine) -> Vec<Event> {
    let fields = fields();
    let syntax = Syntax {
        ustring: true,
        comm: true,
    };
    let program = translate(
        src,
        &target(&fields),
        &[],
        syntax,
        "nobtf",
        &mut |_: ProbeKind, f: &str| format!("ev_{f}"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let probe = &program.probes[0];
    let args: Vec<String> = probe.event.args.iter().map(|a| m.print(a)).collect();
    let args = args.join(" ");
    let line = PipeLine {
        comm: COMM,
        tid: TID,
        cpu: 1,
        ts_ns: 0,
        event: &probe.event.name,
        args: &args,
    };
    program.events(probe, &line, COMM).unwrap()
}

#[test]
fn both_back_ends_give_the_same_records() {
    let cases: &[(&str, &[u64], u64)] = &[
        (
            r#"kprobe:do_unlinkat { $f = (struct filename *)arg1; printf("%s %d\n", str($f->name), $f->refcnt); }"#,
            &[100, FILENAME],
            0,
        ),
        (
            r#"kprobe:wake_up_new_task { $t = (struct task_struct *)arg0; printf("%d %s %d %s\n", $t->mm->owner->pid, $t->comm, $t->prio, comm); }"#,
            &[TASK],
            0,
        ),
        (
            r#"kprobe:do_sys_open { printf("%s %d %u %x\n", str(arg1), arg0, (uint8)arg2, arg3); }"#,
            &[(-100i64) as u64, USER_PATH, 0x1ff, 0xdead],
            0,
        ),
        (
            r#"kretprobe:do_unlinkat { printf("%d %d %d\n", retval, (int8)retval, tid); }"#,
            &[],
            (-2i64) as u64,
        ),
        (
            r#"kprobe:vfs_read { $n = (uint16)arg2; printf("%d %s %d\n", $n, comm, cpu); exit(); }"#,
            &[0, 0, 20],
            0,
        ),
    ];
    for (src, args, ret) in cases {
        let m = machine(args, *ret);
        let bpf = through_bpf(src, &m);
        assert!(!bpf.is_empty(), "{src}: no record");
        assert_eq!(bpf, through_tracefs(src, &m), "{src}");
    }
}
