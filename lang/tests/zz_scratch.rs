#[test]
fn corpus() {
    let k = lang::kernel::Kernel::for_release(
        kernel_headers::KernelVersion::new(6, 1, 0),
        kernel_headers::pt_regs::NATIVE,
    );
    for e in std::fs::read_dir("/work/shared/corpus/bpftrace-0.23-tools").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "bt") {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        match lang::fields_used(&src, k) {
            Ok(_) => println!("OK {}", p.display()),
            Err(e) => println!(
                "ERR {}: {}",
                p.file_name().unwrap().to_str().unwrap(),
                e.render(&src).lines().next().unwrap()
            ),
        }
    }
}
