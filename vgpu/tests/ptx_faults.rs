//! Each fault a launch or a parse can meet, with its kind and message.

mod ptx_util;
use ptx_util::*;
use vgpu::ptx::{launch, FaultKind, LaunchConfig, Module};

const HEAD: &str = ".version 8.2\n.target sm_80\n.address_size 64\n";

fn k(body: &str) -> String {
    format!(
        "{HEAD}.visible .entry k(.param .u64 p, .param .u32 n)\n.maxntid 256, 1, 1\n{{\n\
         .reg .pred %p<8>;\n.reg .b32 %r<16>;\n.reg .b64 %rd<16>;\n\
         .shared .align 8 .b8 sm[256];\n\
         ld.param.u64 %rd1, [p];\nmov.u32 %r1, %tid.x;\n{body}\nret;\n}}\n"
    )
}

fn launch_k(
    body: &str,
    threads: u32,
    mem: &mut VecMem,
    buf: u64,
) -> Result<vgpu::ptx::LaunchStats, vgpu::ptx::Fault> {
    let m = module(&k(body));
    run(&m, "k", cfg(1, threads), &[Arg::U64(buf), Arg::U32(0)], mem)
}

#[test]
fn store_past_the_end_is_an_illegal_address() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(32 * 4);
    // Thread i stores at buf[i + 1]: thread 31 writes one element past.
    let body = "add.s32 %r2, %r1, 1;\nmul.wide.u32 %rd2, %r2, 4;\nadd.s64 %rd3, %rd1, %rd2;\nst.global.u32 [%rd3], %r1;";
    let f = launch_k(body, 32, &mut mem, buf).expect_err("past the end");
    assert_eq!(f.kind, FaultKind::IllegalAddress);
    println!("{f}");
    for want in [
        "k:",
        "line 16",
        "block (0,0,0)",
        "thread (31,0,0)",
        &format!("{:#x}", buf + 128),
        "4 bytes",
        "past the end of allocation",
    ] {
        assert!(f.message.contains(want), "{want:?} not in {}", f.message);
    }
}

#[test]
fn misaligned_load() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(64);
    let f = launch_k("ld.global.u32 %r2, [%rd1+2];", 1, &mut mem, buf).expect_err("misaligned");
    assert_eq!(f.kind, FaultKind::MisalignedAddress);
    assert!(f.message.contains("misaligned"), "{}", f.message);
    // A vector access needs the alignment of its whole size.
    let f = launch_k("ld.global.v2.u32 {%r2, %r3}, [%rd1+4];", 1, &mut mem, buf)
        .expect_err("misaligned v2");
    assert_eq!(f.kind, FaultKind::MisalignedAddress);
    let f = launch_k(
        "mov.u32 %r2, sm;\nld.shared.u64 %rd2, [%r2+4];",
        1,
        &mut mem,
        buf,
    )
    .expect_err("shared");
    assert_eq!(f.kind, FaultKind::MisalignedAddress);
    let f = launch_k(
        "mov.u32 %r2, sm;\nld.shared.u32 %r3, [%r2+256];",
        1,
        &mut mem,
        buf,
    )
    .expect_err("shared oob");
    assert_eq!(f.kind, FaultKind::IllegalAddress);
}

#[test]
fn launch_validation() {
    let m = module(&k(""));
    let mut mem = VecMem::new();
    let p = |a: &[Vec<u8>]| a.to_vec();
    let c = cfg(1, 32);
    let ok = p(&[vec![0; 8], vec![0; 4]]);
    assert!(launch(&m, "k", &c, &ok, &[], &mut mem).is_ok());
    let f = launch(&m, "k", &c, &p(&[vec![0; 8]]), &[], &mut mem).expect_err("count");
    assert_eq!(f.kind, FaultKind::InvalidValue);
    assert!(
        f.message.contains("1 parameters given, the kernel takes 2"),
        "{}",
        f.message
    );
    let f = launch(&m, "k", &c, &p(&[vec![0; 8], vec![0; 8]]), &[], &mut mem).expect_err("size");
    assert_eq!(f.kind, FaultKind::InvalidValue);
    assert!(
        f.message.contains("parameter 1 ('n') is 4 bytes, 8 given"),
        "{}",
        f.message
    );
    for block in [[300, 1, 1], [1025, 1, 1], [0, 1, 1], [16, 16, 2]] {
        let c = LaunchConfig {
            grid: [1, 1, 1],
            block,
            dynamic_shared_bytes: 0,
        };
        let f = launch(&m, "k", &c, &ok, &[], &mut mem).expect_err("block");
        assert_eq!(f.kind, FaultKind::InvalidValue, "{block:?}");
    }
    let f = launch(&m, "nope", &c, &ok, &[], &mut mem).expect_err("name");
    assert_eq!(f.kind, FaultKind::InvalidValue);
    // reqntid
    let t = format!("{HEAD}.visible .entry r()\n.reqntid 64\n{{\nret;\n}}\n");
    let m = module(&t);
    assert!(launch(&m, "r", &cfg(2, 64), &[], &[], &mut mem).is_ok());
    let f = launch(&m, "r", &cfg(2, 32), &[], &[], &mut mem).expect_err("reqntid");
    assert_eq!(f.kind, FaultKind::InvalidValue);
}

#[test]
fn shared_memory_limit() {
    let t = format!(
        "{HEAD}.extern .shared .align 16 .b8 dyn[];\n.visible .entry s()\n{{\n.shared .align 4 .b8 st[1024];\nret;\n}}\n"
    );
    let m = module(&t);
    let mut mem = VecMem::new();
    let c = |d| LaunchConfig {
        grid: [1, 1, 1],
        block: [32, 1, 1],
        dynamic_shared_bytes: d,
    };
    assert!(launch(&m, "s", &c(49152 - 1024), &[], &[], &mut mem).is_ok());
    let f = launch(&m, "s", &c(49152 - 1023), &[], &[], &mut mem).expect_err("over");
    assert_eq!(f.kind, FaultKind::OutOfResources);
}

#[test]
fn shared_races() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(64);
    // Two threads write the same word with no barrier.
    let f = launch_k(
        "mov.u32 %r2, sm;\nst.shared.u32 [%r2], %r1;",
        2,
        &mut mem,
        buf,
    )
    .expect_err("race");
    assert_eq!(f.kind, FaultKind::SharedRace);
    println!("{f}");
    assert!(
        f.message
            .contains("thread (1,0,0) writes it after thread (0,0,0) wrote it"),
        "{}",
        f.message
    );
    // With a barrier between the writes of different threads: fine.
    let body = "mov.u32 %r2, sm;\nsetp.eq.s32 %p1, %r1, 0;\n@%p1 st.shared.u32 [%r2], %r1;\nbar.sync 0;\n\
                setp.eq.s32 %p2, %r1, 1;\n@%p2 st.shared.u32 [%r2], %r1;\nbar.sync 0;\nld.shared.u32 %r3, [%r2];";
    launch_k(body, 64, &mut mem, buf).expect("barrier orders the writes");
    // A read of another thread's write without a barrier.
    let body = "mov.u32 %r2, sm;\nsetp.eq.s32 %p1, %r1, 0;\n@%p1 st.shared.u32 [%r2], %r1;\nld.shared.u32 %r3, [%r2];";
    let f = launch_k(body, 2, &mut mem, buf).expect_err("read race");
    assert_eq!(f.kind, FaultKind::SharedRace);
    // A write after another thread's read.
    let body = "mov.u32 %r2, sm;\nld.shared.u32 %r3, [%r2];\nsetp.eq.s32 %p1, %r1, 1;\n@%p1 st.shared.u32 [%r2], %r1;";
    let f = launch_k(body, 2, &mut mem, buf).expect_err("write after read");
    assert_eq!(f.kind, FaultKind::SharedRace);
    // The same thread reads and writes freely; neighbouring bytes do not race.
    let body = "mov.u32 %r2, sm;\nadd.s32 %r3, %r2, %r1;\ncvt.u16.u32 %rs1, %r1;\nst.shared.u8 [%r3], %rs1;\nld.shared.u8 %rs2, [%r3];";
    let body = body
        .replace("%rs1", "%r4")
        .replace("%rs2", "%r5")
        .replace("cvt.u16.u32 %r4, %r1;", "mov.u32 %r4, %r1;");
    launch_k(&body, 32, &mut mem, buf).expect("bytes");
}

#[test]
fn parse_errors_name_the_line() {
    let t = format!(
        "{HEAD}.visible .entry e()\n{{\n.reg .f32 %f<2>;\ntanh.approx.f32 %f1, %f0;\nret;\n}}\n"
    );
    let e = Module::parse(&t).err().expect("tanh");
    assert_eq!(
        e.to_string(),
        "line 7: unknown instruction 'tanh.approx.f32'"
    );
    let t = format!("{HEAD}.visible .entry e()\n{{\n.reg .b32 %r<2>;\natom.global.add.u32 %r1, [%r0], 1;\nret;\n}}\n");
    let e = Module::parse(&t).err().expect("atom");
    assert_eq!(e.line, 7);
    assert!(
        e.message
            .contains("unknown instruction 'atom.global.add.u32'"),
        "{e}"
    );
    let t = format!(
        "{HEAD}.visible .entry e()\n{{\n.reg .b32 %r<2>;\nadd.s32 %r1, %r2, 1;\nret;\n}}\n"
    );
    let e = Module::parse(&t).err().expect("undeclared");
    assert_eq!(
        (e.line, e.message.as_str()),
        (7, "undeclared register '%r2'")
    );
    let t = format!("{HEAD}.visible .entry e()\n{{\nbra $L_nowhere;\n}}\n");
    let e = Module::parse(&t).err().expect("label");
    assert_eq!(e.line, 6);
    assert!(e.message.contains("unknown label"), "{e}");
    let t = format!(
        "{HEAD}.visible .entry e()\n{{\n.reg .b64 %rd<2>;\nadd.s32 %rd1, %rd0, 1;\nret;\n}}\n"
    );
    let e = Module::parse(&t).err().expect("type");
    assert_eq!(e.line, 7);
    let t = format!("{HEAD}.visible .entry e()\n{{\n.frobnicate 3;\n}}\n");
    let e = Module::parse(&t).err().expect("directive");
    assert!(e.message.contains("unknown directive '.frobnicate'"), "{e}");
    let e = Module::parse(".version 9.9\n.target sm_80\n")
        .err()
        .expect("version");
    assert_eq!(e.line, 1);
}

#[test]
fn sync_instructions_need_their_lanes() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(64);
    // Lanes 16-31 skip the shfl: the full membermask names lanes not executing it.
    let body =
        "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra END;\nshfl.sync.down.b32 %r2, %r1, 1, 31, -1;\nEND:";
    let f = launch_k(body, 32, &mut mem, buf).expect_err("membermask");
    assert_eq!(f.kind, FaultKind::IllegalInstruction);
    println!("{f}");
    assert!(
        f.message.contains(
            "membermask 0xffffffff names lanes 16-31, which are not executing shfl.sync at line"
        ),
        "{}",
        f.message
    );
    // With the matching mask it is fine.
    let body = "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra END;\nshfl.sync.down.b32 %r2, %r1, 1, 15, 0xffff;\nEND:";
    launch_k(body, 32, &mut mem, buf).expect("half-warp shfl");
    // bra.uni that diverges.
    let body = "setp.ge.u32 %p1, %r1, 16;\n@%p1 bra.uni END;\nEND:";
    let f = launch_k(body, 32, &mut mem, buf).expect_err("bra.uni");
    assert_eq!(f.kind, FaultKind::IllegalInstruction);
    assert!(f.message.contains("bra.uni diverges"), "{}", f.message);
}

#[test]
fn barriers_and_exited_threads() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(64);
    // Half the block exits before the barrier: the rest pass it (ISA: only
    // non-exited threads are waited for).
    let body = "setp.ge.u32 %p1, %r1, 32;\n@%p1 ret;\nbar.sync 0;";
    launch_k(body, 64, &mut mem, buf).expect("exited threads do not hold a barrier");
    // Warps at different barriers forever: deadlock.
    let body = "setp.ge.u32 %p1, %r1, 32;\n@%p1 bra B;\nbar.sync 0;\nbra E;\nB:\nbar.sync 1;\nE:";
    let f = launch_k(body, 64, &mut mem, buf).expect_err("deadlock");
    assert_eq!(f.kind, FaultKind::IllegalInstruction);
    println!("{f}");
    assert!(
        f.message.contains("barrier cannot complete"),
        "{}",
        f.message
    );
}

#[test]
fn never_written_memory_is_a_warning() {
    let mut mem = VecMem::new();
    let buf = mem.alloc(256);
    let body = "mul.wide.u32 %rd2, %r1, 4;\nadd.s64 %rd3, %rd1, %rd2;\nld.global.u32 %r2, [%rd3];";
    let st = launch_k(body, 32, &mut mem, buf).expect("reads");
    assert_eq!(st.warnings.len(), 1);
    println!("{}", st.warnings[0]);
    assert!(
        st.warnings[0].contains("never-written") && st.warnings[0].contains("and 31 more"),
        "{}",
        st.warnings[0]
    );
}
