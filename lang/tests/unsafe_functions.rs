//! bpftrace's unsafe functions (`system()`, `signal()`): refused without
//! `--unsafe` with bpftrace's words, and `system()`'s record formats the
//! command the loader runs.

use kernel_headers::KernelVersion;
use kernel_headers::pt_regs::NATIVE;
use lang::fields::FieldInfo;
use lang::kernel::Kernel;
use lang::output::{Event, EventFormat, Value};
use lang::report::{self, Format, Step};
use lang::tracepoint::NoTracepoints;
use lang::{Compiled, Options, Target, compile_with};

fn build(src: &str, unsafe_allowed: bool) -> Result<Compiled, String> {
    let fields: Vec<(&'static str, FieldInfo)> = Vec::new();
    let target = Target {
        fields: &fields,
        tracepoints: &NoTracepoints,
        kernel: Kernel::for_release(KernelVersion::new(5, 4, 0), NATIVE),
    };
    let options = Options {
        unsafe_allowed,
        ..Options::default()
    };
    compile_with(src, &target, options).map_err(|e| e.render(src))
}

#[test]
fn unsafe_functions_need_the_flag() {
    for (src, name) in [
        (r#"kprobe:f { system("echo %d", arg0); }"#, "system"),
        (r#"kprobe:f { signal("KILL"); }"#, "signal"),
        // First, whatever else is wrong: a value is not a statement.
        (r#"kprobe:f { $x = system("true"); }"#, "system"),
    ] {
        let err = build(src, false).unwrap_err();
        assert!(
            err.contains(&format!(
                "{name}() is an unsafe function being used in safe mode"
            )),
            "{src}: {err}"
        );
        assert!(err.contains(src) && err.contains('^'), "{err}");
    }
    let err = build(r#"kprobe:f { $x = system("true"); }"#, true).unwrap_err();
    assert!(
        err.contains("system() is a statement, not a value"),
        "{err}"
    );
    assert!(build(r#"kprobe:f { signal("KILL"); }"#, true).is_ok());
}

#[test]
fn system_formats_its_command_when_the_record_arrives() {
    let compiled = build(r#"kprobe:f { system("echo %d %s", arg0, comm); }"#, true).unwrap();
    let format = compiled
        .events
        .iter()
        .find_map(|e| match e {
            EventFormat::System { format, args } => Some((format.clone(), args.len())),
            _ => None,
        })
        .expect("a system() event");
    assert_eq!(format, ("echo %d %s".to_string(), 2));
    let event = Event::System {
        format: format.0,
        args: vec![Value::Int(7), Value::Str(b"sh".to_vec())],
    };
    assert_eq!(
        report::event(Format::Text, &event).unwrap(),
        Step::System(b"echo 7 sh".to_vec())
    );
    // What the command printed, as bpftrace prints it.
    assert_eq!(report::system(Format::Text, b"7 sh\n"), b"7 sh\n");
    assert_eq!(
        String::from_utf8(report::system(Format::Json, b"7 sh\n")).unwrap(),
        "{\"type\": \"syscall\", \"data\": \"7 sh\\n\"}\n"
    );
}
