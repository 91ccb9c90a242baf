//! Hand-written PTX kernels, each checking instruction semantics from the
//! PTX ISA. Every thread writes its results to 8 u64 slots of `out`.

mod ptx_util;
use ptx_util::*;

fn kernel(body: &str) -> String {
    format!(
        r#"
.version 8.2
.target sm_80
.address_size 64
.visible .entry k(.param .u64 out, .param .u64 in)
{{
    .reg .pred %p<16>;
    .reg .b16 %h<16>;
    .reg .b32 %r<64>;
    .reg .b64 %rd<64>;
    .reg .f32 %f<32>;
    .reg .f64 %fd<32>;
    .shared .align 16 .b8 sm[2048];
    ld.param.u64 %rd60, [out];
    ld.param.u64 %rd61, [in];
    mov.u32 %r60, %tid.x;
    mul.wide.u32 %rd62, %r60, 64;
    add.s64 %rd63, %rd60, %rd62;
{body}
    ret;
}}
"#
    )
}

/// Runs `body` with `threads` threads in one block; returns 8 slots per thread.
fn run_body(body: &str, threads: u32, input: &[u64]) -> Vec<[u64; 8]> {
    let m = module(&kernel(body));
    let mut mem = VecMem::new();
    let out = mem.alloc(threads as usize * 64);
    let inp = mem.upload_u64(if input.is_empty() { &[0] } else { input });
    run(
        &m,
        "k",
        cfg(1, threads),
        &[Arg::U64(out), Arg::U64(inp)],
        &mut mem,
    )
    .unwrap_or_else(|f| panic!("{f}"));
    mem.u64s(out, threads as usize * 8)
        .chunks(8)
        .map(|c| c.try_into().expect("8"))
        .collect()
}

fn one(body: &str) -> [u64; 8] {
    run_body(body, 1, &[])[0]
}

#[test]
fn integer_ops() {
    let r = one(r#"
    mov.u32 %r1, 0x12345678;
    mov.u32 %r2, 0x9abcdef0;
    shf.r.wrap.b32 %r3, %r1, %r2, 36;     // wrap: 36 & 31 = 4
    shf.l.clamp.b32 %r4, %r1, %r2, 40;    // clamp: 32 -> a
    bfi.b32 %r5, 0xff, %r2, 8, 4;         // insert 4 bits at 8
    prmt.b32 %r6, %r1, %r2, 0x7531;       // bytes 1,3,5,7
    prmt.b32 %r7, %r1, %r2, 0x8880;       // byte 0, then sign of byte 0 (0x78: +)
    prmt.b32.rc8 %r8, %r1, %r2, 1;
    st.global.u32 [%rd63], %r3;
    st.global.u32 [%rd63+4], %r4;
    st.global.u32 [%rd63+8], %r5;
    st.global.u32 [%rd63+12], %r6;
    st.global.u32 [%rd63+16], %r7;
    st.global.u32 [%rd63+20], %r8;
    popc.b32 %r9, %r2;
    clz.b32 %r10, 0;
    clz.b32 %r11, 0x00010000;
    st.global.u32 [%rd63+24], %r9;
    st.global.u32 [%rd63+28], %r10;
    st.global.u32 [%rd63+32], %r11;
    mul.wide.s32 %rd1, -3, 0x40000000;
    st.global.u64 [%rd63+40], %rd1;
    popc.b64 %r12, -1;
    st.global.u32 [%rd63+48], %r12;
    "#);
    let w = |i: usize| (r[i / 2] >> (32 * (i % 2))) as u32;
    assert_eq!(w(0), 0x0123_4567); // ({b,a} >> 4) low 32
    assert_eq!(w(1), 0x1234_5678);
    assert_eq!(w(2), 0x9abc_dff0);
    assert_eq!(w(3), 0x9ade_1256);
    assert_eq!(w(4), 0x0000_0078);
    assert_eq!(w(5), 0x5656_5656);
    assert_eq!(w(6), 0x9abc_def0u32.count_ones());
    assert_eq!(w(7), 32);
    assert_eq!(w(8), 15);
    assert_eq!(r[5] as i64, -3 * 0x4000_0000);
    assert_eq!(w(12), 64);

    let r = one(r#"
    mov.u32 %r1, 0x80000000;
    div.s32 %r2, %r1, -1;          // overflow wraps: INT_MIN
    rem.s32 %r3, -7, 3;            // -1 (sign of the dividend)
    div.s32 %r4, -7, 2;            // -3 (towards zero)
    div.u32 %r5, 7, 0;             // all ones (this model)
    shr.s32 %r6, %r1, 40;          // sign fill: -1
    shl.b32 %r7, 1, 33;            // 0
    shr.u32 %r8, %r1, 31;          // 1
    min.s32 %r9, -1, 1;
    min.u32 %r10, -1, 1;
    st.global.u32 [%rd63], %r2;
    st.global.u32 [%rd63+4], %r3;
    st.global.u32 [%rd63+8], %r4;
    st.global.u32 [%rd63+12], %r5;
    st.global.u32 [%rd63+16], %r6;
    st.global.u32 [%rd63+20], %r7;
    st.global.u32 [%rd63+24], %r8;
    st.global.u32 [%rd63+28], %r9;
    st.global.u32 [%rd63+32], %r10;
    mul.hi.u64 %rd1, -1, -1;        // (2^64-1)^2 >> 64 = 2^64 - 2
    st.global.u64 [%rd63+40], %rd1;
    bfe.s32 %r11, 0x00000f00, 8, 4; // 0xf sign-extended: -1
    neg.s32 %r12, 5;
    st.global.u32 [%rd63+48], %r11;
    st.global.u32 [%rd63+52], %r12;
    mul.lo.s64 %rd2, -2, 3;
    st.global.u64 [%rd63+56], %rd2;
    "#);
    let w = |i: usize| (r[i / 2] >> (32 * (i % 2))) as u32;
    assert_eq!(w(0), 0x8000_0000);
    assert_eq!(w(1) as i32, -1);
    assert_eq!(w(2) as i32, -3);
    assert_eq!(w(3), u32::MAX);
    assert_eq!(w(4), u32::MAX);
    assert_eq!(w(5), 0);
    assert_eq!(w(6), 1);
    assert_eq!(w(7) as i32, -1);
    assert_eq!(w(8), 1);
    assert_eq!(r[5], u64::MAX - 1);
    assert_eq!(w(12) as i32, -1);
    assert_eq!(w(13) as i32, -5);
    assert_eq!(r[7] as i64, -6);
}

fn f32b(x: f32) -> u64 {
    x.to_bits() as u64
}

#[test]
fn cvt_rounding() {
    // f64 -> f32 ties and directions.
    let tie = 1.0 + 2f64.powi(-24); // halfway between 1 and 1+2^-23
    let tie_odd = 1.0 + 3.0 * 2f64.powi(-24);
    let inp = [
        tie.to_bits(),
        tie_odd.to_bits(),
        (-tie).to_bits(),
        1e300f64.to_bits(),
    ];
    let r = run_body(
        r#"
    ld.global.f64 %fd1, [%rd61];
    ld.global.f64 %fd2, [%rd61+8];
    ld.global.f64 %fd3, [%rd61+16];
    ld.global.f64 %fd4, [%rd61+24];
    cvt.rn.f32.f64 %f1, %fd1;
    cvt.rn.f32.f64 %f2, %fd2;
    cvt.rz.f32.f64 %f3, %fd3;
    cvt.rm.f32.f64 %f4, %fd3;
    cvt.rp.f32.f64 %f5, %fd1;
    cvt.rn.f32.f64 %f6, %fd4;
    cvt.rz.f32.f64 %f7, %fd4;
    st.global.f32 [%rd63], %f1;
    st.global.f32 [%rd63+4], %f2;
    st.global.f32 [%rd63+8], %f3;
    st.global.f32 [%rd63+12], %f4;
    st.global.f32 [%rd63+16], %f5;
    st.global.f32 [%rd63+20], %f6;
    st.global.f32 [%rd63+24], %f7;
    "#,
        1,
        &inp,
    )[0];
    let w = |i: usize| f32::from_bits((r[i / 2] >> (32 * (i % 2))) as u32);
    assert_eq!(w(0), 1.0);
    assert_eq!(w(1) as f64, 1.0 + 4.0 * 2f64.powi(-24));
    assert_eq!(w(2), -1.0);
    assert_eq!(w(3) as f64, -(1.0 + 2f64.powi(-23)));
    assert_eq!(w(4) as f64, 1.0 + 2f64.powi(-23));
    assert_eq!(w(5), f32::INFINITY);
    assert_eq!(w(6), f32::MAX);

    // f32 -> f16 / bf16.
    let vals: [f32; 8] = [
        1.0 + 2f32.powi(-11),       // tie: even -> 1.0
        1.0 + 3.0 * 2f32.powi(-11), // tie: up to 1 + 2^-9
        65520.0,                    // overflow -> inf
        65519.0,                    // 65504
        2f32.powi(-24),             // smallest subnormal 0x0001
        2f32.powi(-25),             // tie with 0: even -> 0
        f32::NAN,
        1.0 + 2f32.powi(-8), // bf16 tie -> 1.0
    ];
    let inp: Vec<u64> = vals.iter().map(|v| f32b(*v)).collect();
    let r = run_body(
        r#"
    ld.global.f32 %f1, [%rd61];
    ld.global.f32 %f2, [%rd61+8];
    ld.global.f32 %f3, [%rd61+16];
    ld.global.f32 %f4, [%rd61+24];
    ld.global.f32 %f5, [%rd61+32];
    ld.global.f32 %f6, [%rd61+40];
    ld.global.f32 %f7, [%rd61+48];
    ld.global.f32 %f8, [%rd61+56];
    cvt.rn.f16.f32 %h1, %f1;
    cvt.rn.f16.f32 %h2, %f2;
    cvt.rn.f16.f32 %h3, %f3;
    cvt.rn.f16.f32 %h4, %f4;
    cvt.rn.f16.f32 %h5, %f5;
    cvt.rn.f16.f32 %h6, %f6;
    cvt.rn.f16.f32 %h7, %f7;
    cvt.rn.bf16.f32 %h8, %f8;
    cvt.rz.f16.f32 %h9, %f3;
    cvt.rn.bf16.f32 %h10, %f7;
    st.global.u16 [%rd63], %h1;
    st.global.u16 [%rd63+2], %h2;
    st.global.u16 [%rd63+4], %h3;
    st.global.u16 [%rd63+6], %h4;
    st.global.u16 [%rd63+8], %h5;
    st.global.u16 [%rd63+10], %h6;
    st.global.u16 [%rd63+12], %h7;
    st.global.u16 [%rd63+14], %h8;
    st.global.u16 [%rd63+16], %h9;
    st.global.u16 [%rd63+18], %h10;
    cvt.f32.f16 %f9, %h2;
    st.global.f32 [%rd63+24], %f9;
    cvt.rn.f16x2.f32 %r1, %f2, %f1;
    st.global.u32 [%rd63+28], %r1;
    "#,
        1,
        &inp,
    )[0];
    let h = |i: usize| (r[i / 4] >> (16 * (i % 4))) as u16;
    assert_eq!(h(0), 0x3c00);
    assert_eq!(h(1), 0x3c02);
    assert_eq!(h(2), 0x7c00);
    assert_eq!(h(3), 0x7bff);
    assert_eq!(h(4), 0x0001);
    assert_eq!(h(5), 0x0000);
    assert_eq!(h(6), 0x7fff);
    assert_eq!(h(7), 0x3f80);
    assert_eq!(h(8), 0x7bff); // rz overflow: largest finite
    assert_eq!(h(9), 0x7fff);
    assert_eq!(f32::from_bits(r[3] as u32) as f64, 1.0 + 2f64.powi(-9));
    assert_eq!((r[3] >> 32) as u32, 0x3c02_3c00);

    // float -> int (saturating, NaN -> 0), int -> float, int -> int .sat.
    let vals: [f32; 6] = [3e9, -3e9, f32::NAN, 2.5, -1.5, -0.5];
    let inp: Vec<u64> = vals.iter().map(|v| f32b(*v)).collect();
    let r = run_body(
        r#"
    ld.global.f32 %f1, [%rd61];
    ld.global.f32 %f2, [%rd61+8];
    ld.global.f32 %f3, [%rd61+16];
    ld.global.f32 %f4, [%rd61+24];
    ld.global.f32 %f5, [%rd61+32];
    ld.global.f32 %f6, [%rd61+40];
    cvt.rzi.s32.f32 %r1, %f1;
    cvt.rzi.s32.f32 %r2, %f2;
    cvt.rzi.s32.f32 %r3, %f3;
    cvt.rni.s32.f32 %r4, %f4;
    cvt.rmi.s32.f32 %r5, %f5;
    cvt.rpi.u32.f32 %r6, %f6;
    cvt.rzi.u32.f32 %r7, %f2;
    cvt.rn.f32.u32 %f10, -1;
    cvt.rz.f32.u32 %f11, -1;
    st.global.u32 [%rd63], %r1;
    st.global.u32 [%rd63+4], %r2;
    st.global.u32 [%rd63+8], %r3;
    st.global.u32 [%rd63+12], %r4;
    st.global.u32 [%rd63+16], %r5;
    st.global.u32 [%rd63+20], %r6;
    st.global.u32 [%rd63+24], %r7;
    st.global.f32 [%rd63+28], %f10;
    st.global.f32 [%rd63+32], %f11;
    cvt.sat.u8.s32 %h1, -5;
    cvt.sat.u8.s32 %h2, 300;
    cvt.s32.s16 %r8, 0xfffe;
    st.global.u16 [%rd63+36], %h1;
    st.global.u16 [%rd63+38], %h2;
    st.global.u32 [%rd63+40], %r8;
    mov.u64 %rd1, 9007199254740993;
    cvt.rn.f64.s64 %fd1, %rd1;
    cvt.rp.f64.s64 %fd2, %rd1;
    st.global.f64 [%rd63+48], %fd1;
    st.global.f64 [%rd63+56], %fd2;
    "#,
        1,
        &inp,
    )[0];
    let w = |i: usize| (r[i / 2] >> (32 * (i % 2))) as u32;
    assert_eq!(w(0), 0x7fff_ffff);
    assert_eq!(w(1), 0x8000_0000);
    assert_eq!(w(2), 0);
    assert_eq!(w(3), 2);
    assert_eq!(w(4) as i32, -2);
    assert_eq!(w(5), 0);
    assert_eq!(w(6), 0);
    assert_eq!(f32::from_bits(w(7)), 4294967296.0);
    assert_eq!(f32::from_bits(w(8)), 4294967040.0);
    assert_eq!(r[4] >> 32 & 0xffff, 0);
    assert_eq!(r[4] >> 48, 255);
    assert_eq!(w(10) as i32, -2);
    assert_eq!(f64::from_bits(r[6]), 9007199254740992.0);
    assert_eq!(f64::from_bits(r[7]), 9007199254740994.0);
}

#[test]
fn setp_forms() {
    let nan = f32::NAN.to_bits() as u64;
    let r = run_body(
        r#"
    ld.global.f32 %f1, [%rd61];
    mov.u32 %r1, -1;
    setp.lt.u32 %p1, %r1, 1;
    setp.lt.s32 %p2, %r1, 1;
    setp.hi.u32 %p3, %r1, 1;
    setp.nan.f32 %p4, %f1, 0f3F800000;
    setp.ltu.f32 %p5, %f1, 0f3F800000;
    setp.lt.f32 %p6, %f1, 0f3F800000;
    setp.ne.f32 %p7, %f1, %f1;
    setp.neu.f32 %p8, %f1, %f1;
    setp.eq.and.s32 %p9|%p10, 1, 1, %p2;
    setp.eq.or.s32 %p11|%p12, 1, 2, !%p2;
    selp.u32 %r2, 1, 0, %p1;
    selp.u32 %r3, 1, 0, %p2;
    selp.u32 %r4, 1, 0, %p3;
    selp.u32 %r5, 1, 0, %p4;
    selp.u32 %r6, 1, 0, %p5;
    selp.u32 %r7, 1, 0, %p6;
    selp.u32 %r8, 1, 0, %p7;
    selp.u32 %r9, 1, 0, %p8;
    selp.u32 %r10, 1, 0, %p9;
    selp.u32 %r11, 1, 0, %p10;
    selp.u32 %r12, 1, 0, %p11;
    selp.u32 %r13, 1, 0, %p12;
    st.global.v4.u32 [%rd63], {%r2, %r3, %r4, %r5};
    st.global.v4.u32 [%rd63+16], {%r6, %r7, %r8, %r9};
    st.global.v4.u32 [%rd63+32], {%r10, %r11, %r12, %r13};
    "#,
        1,
        &[nan],
    )[0];
    let w = |i: usize| (r[i / 2] >> (32 * (i % 2))) as u32;
    let got: Vec<u32> = (0..12).map(w).collect();
    assert_eq!(got, vec![0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1]);
}

#[test]
fn divergence_reconverges() {
    // Odd lanes take one branch, even lanes another; then a loop with a
    // per-lane trip count; then a full-warp shfl, which faults unless the
    // warp has reconverged.
    let r = run_body(
        r#"
    and.b32 %r1, %r60, 1;
    setp.eq.s32 %p1, %r1, 0;
    @%p1 bra EVEN;
    mov.u32 %r2, 100;
    bra.uni JOIN;
EVEN:
    mov.u32 %r2, 200;
JOIN:
    mov.u32 %r3, 0;
    mov.u32 %r4, 0;
LOOP:
    add.s32 %r3, %r3, %r60;
    add.s32 %r4, %r4, 1;
    setp.le.u32 %p2, %r4, %r60;
    @%p2 bra LOOP;
    shfl.sync.idx.b32 %r5, %r60, 0, 31, -1;
    @!%p1 add.s32 %r2, %r2, 1;
    st.global.u32 [%rd63], %r2;
    st.global.u32 [%rd63+4], %r3;
    st.global.u32 [%rd63+8], %r5;
    "#,
        64,
        &[],
    );
    for (t, s) in r.iter().enumerate() {
        let t = t as u32;
        let w0 = s[0] as u32;
        let w1 = (s[0] >> 32) as u32;
        assert_eq!(
            w0,
            if t.is_multiple_of(2) { 200 } else { 101 },
            "thread {t}"
        );
        assert_eq!(w1, t * (t + 1), "thread {t}");
        assert_eq!(s[1] as u32, t & !31, "thread {t}");
    }
}

#[test]
fn shfl_vote_bar_red() {
    let r = run_body(
        r#"
    mul.lo.s32 %r1, %r60, 10;
    shfl.sync.down.b32 %r2|%p1, %r1, 4, 31, -1;
    shfl.sync.up.b32 %r3|%p2, %r1, 1, 0, -1;
    shfl.sync.bfly.b32 %r4, %r1, 1, 31, -1;
    shfl.sync.idx.b32 %r5|%p3, %r1, 3, 0x181f, -1;   // segments of 8 lanes (c = (32-8)<<8 | 31): lane 3 of mine
    selp.u32 %r6, 1, 0, %p1;
    selp.u32 %r7, 1, 0, %p2;
    st.global.v4.u32 [%rd63], {%r2, %r3, %r4, %r5};
    st.global.v2.u32 [%rd63+16], {%r6, %r7};
    and.b32 %r8, %r60, 3;
    setp.eq.s32 %p4, %r8, 0;
    vote.sync.ballot.b32 %r9, %p4, -1;
    vote.sync.any.pred %p5, %p4, -1;
    vote.sync.all.pred %p6, %p4, -1;
    vote.sync.uni.pred %p7, !%p4, -1;
    selp.u32 %r10, 1, 0, %p5;
    selp.u32 %r11, 1, 0, %p6;
    selp.u32 %r12, 1, 0, %p7;
    st.global.v4.u32 [%rd63+32], {%r9, %r10, %r11, %r12};
    setp.eq.s32 %p8, %r60, 37;
    bar.red.or.pred %p9, 0, %p8;
    bar.red.and.pred %p10, 0, %p8;
    bar.red.popc.u32 %r13, 0, !%p8;
    selp.u32 %r14, 1, 0, %p9;
    selp.u32 %r15, 1, 0, %p10;
    st.global.v2.u32 [%rd63+48], {%r14, %r15};
    st.global.u32 [%rd63+56], %r13;
    "#,
        64,
        &[],
    );
    for (t, s) in r.iter().enumerate() {
        let lane = (t % 32) as u32;
        let t32 = t as u32;
        let w = |i: usize| (s[i / 2] >> (32 * (i % 2))) as u32;
        // down by 4, clamp 31: out-of-range lanes keep their own value.
        if lane + 4 <= 31 {
            assert_eq!((w(0), w(4)), ((t32 + 4) * 10, 1), "down {t}");
        } else {
            assert_eq!((w(0), w(4)), (t32 * 10, 0), "down {t}");
        }
        if lane >= 1 {
            assert_eq!((w(1), w(5)), ((t32 - 1) * 10, 1), "up {t}");
        } else {
            assert_eq!((w(1), w(5)), (t32 * 10, 0), "up {t}");
        }
        assert_eq!(w(2), (t32 ^ 1) * 10, "bfly {t}");
        assert_eq!(w(3), ((t32 & !7) + 3) * 10, "idx {t}");
        assert_eq!(w(8), 0x1111_1111, "ballot");
        assert_eq!((w(9), w(10), w(11)), (1, 0, 0));
        assert_eq!((w(12), w(13)), (1, 0));
        assert_eq!(w(14), 63);
    }
}

#[test]
fn ldmatrix_x4_and_trans() {
    // Shared holds 4 matrices of 8x8 b16, element (m, r, c) = m*64 + r*8 + c
    // at byte 2*(m*64 + r*8 + c). Lane l supplies the address of row l%8 of
    // matrix l/8.
    let r = run_body(
        r#"
    // Fill: each thread writes 8 of the 256 halves.
    mov.u32 %r1, 0;
FILL:
    shl.b32 %r2, %r60, 3;
    add.s32 %r2, %r2, %r1;
    cvt.u16.u32 %h1, %r2;
    shl.b32 %r3, %r2, 1;
    mov.u32 %r4, sm;
    add.s32 %r3, %r3, %r4;
    st.shared.u16 [%r3], %h1;
    add.s32 %r1, %r1, 1;
    setp.lt.u32 %p1, %r1, 8;
    @%p1 bra FILL;
    bar.sync 0;
    shl.b32 %r5, %r60, 4;           // row address: 16 bytes per row
    add.s32 %r5, %r5, %r4;
    ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r10, %r11, %r12, %r13}, [%r5];
    ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%r14, %r15}, [%r5];
    st.global.v4.u32 [%rd63], {%r10, %r11, %r12, %r13};
    st.global.v2.u32 [%rd63+16], {%r14, %r15};
    "#,
        32,
        &[],
    );
    for (l, s) in r.iter().enumerate() {
        let w = |i: usize| (s[i / 2] >> (32 * (i % 2))) as u32;
        let (row, col) = (l / 4, 2 * (l % 4));
        for m in 0..4 {
            let e = (m * 64 + row * 8 + col) as u32;
            assert_eq!(w(m), e | (e + 1) << 16, "lane {l} matrix {m}");
        }
        // .trans: the lane gets elements (2*(l%4), l/4) and (2*(l%4)+1, l/4).
        for m in 0..2 {
            let e0 = (m * 64 + (2 * (l % 4)) * 8 + l / 4) as u32;
            let e1 = e0 + 8;
            assert_eq!(w(4 + m), e0 | e1 << 16, "lane {l} trans matrix {m}");
        }
    }
}

fn f16_of(x: f64) -> u16 {
    // Exact small values only (k/16, |k| < 64).
    if x == 0.0 {
        return 0;
    }
    let sign = if x < 0.0 { 0x8000 } else { 0 };
    let a = x.abs();
    let e = a.log2().floor() as i32;
    let m = (a / 2f64.powi(e) * 1024.0).round() as u32 - 1024;
    sign | (((e + 15) as u16) << 10) | m as u16
}

#[test]
fn mma_m16n8k16_against_reference() {
    for bf16 in [false, true] {
        // Per lane: 4 A regs, 2 B regs, 4 C floats, from `in`.
        let mut inp = Vec::new();
        let mut amat = [[0f64; 16]; 16];
        let mut bmat = [[0f64; 8]; 16];
        let mut cmat = [[0f64; 8]; 16];
        let val = |seed: u64, i: u64| ((random_u64(seed, 5, i) % 97) as f64 - 48.0) / 16.0;
        let enc = |x: f64| -> u64 {
            if bf16 {
                ((x as f32).to_bits() >> 16) as u64
            } else {
                f16_of(x) as u64
            }
        };
        for lane in 0..32usize {
            let g = lane >> 2;
            let t = lane % 4;
            let mut regs = [0u64; 10];
            for e in 0..8 {
                // ISA figure: a0,a1,a4,a5 in row g; a2,a3,a6,a7 in row g+8;
                // col = 2t + (e&1), +8 for a4..a7.
                let row = if matches!(e, 0 | 1 | 4 | 5) { g } else { g + 8 };
                let col = 2 * t + (e & 1) + if e >= 4 { 8 } else { 0 };
                let v = val(1, (lane * 8 + e) as u64);
                amat[row][col] = v;
                regs[e / 2] |= enc(v) << (16 * (e % 2));
            }
            for e in 0..4 {
                let k = 2 * t + (e & 1) + if e >= 2 { 8 } else { 0 };
                let v = val(2, (lane * 4 + e) as u64);
                bmat[k][g] = v;
                regs[4 + e / 2] |= enc(v) << (16 * (e % 2));
            }
            for e in 0..4 {
                let row = if e < 2 { g } else { g + 8 };
                let col = 2 * t + (e & 1);
                let v = val(3, (lane * 4 + e) as u64) * 3.0;
                cmat[row][col] = v;
                regs[6 + e] = (v as f32).to_bits() as u64;
            }
            inp.extend_from_slice(&regs);
        }
        let ty = if bf16 { "bf16" } else { "f16" };
        let body = format!(
            r#"
    mul.wide.u32 %rd1, %r60, 80;
    add.s64 %rd2, %rd61, %rd1;
    ld.global.u32 %r1, [%rd2];
    ld.global.u32 %r2, [%rd2+8];
    ld.global.u32 %r3, [%rd2+16];
    ld.global.u32 %r4, [%rd2+24];
    ld.global.u32 %r5, [%rd2+32];
    ld.global.u32 %r6, [%rd2+40];
    ld.global.f32 %f1, [%rd2+48];
    ld.global.f32 %f2, [%rd2+56];
    ld.global.f32 %f3, [%rd2+64];
    ld.global.f32 %f4, [%rd2+72];
    mma.sync.aligned.m16n8k16.row.col.f32.{ty}.{ty}.f32 {{%f5, %f6, %f7, %f8}}, {{%r1, %r2, %r3, %r4}}, {{%r5, %r6}}, {{%f1, %f2, %f3, %f4}};
    st.global.v4.f32 [%rd63], {{%f5, %f6, %f7, %f8}};
    "#
        );
        let r = run_body(&body, 32, &inp);
        for (lane, s) in r.iter().enumerate() {
            let g = lane >> 2;
            let t = lane % 4;
            for e in 0..4 {
                let row = if e < 2 { g } else { g + 8 };
                let col = 2 * t + (e & 1);
                let mut want = cmat[row][col];
                for k in 0..16 {
                    want += amat[row][k] * bmat[k][col];
                }
                let got = f32::from_bits((s[e / 2] >> (32 * (e % 2))) as u32);
                assert_eq!(got as f64, want, "{ty} lane {lane} d{e}");
            }
        }
    }
}

#[test]
fn cp_async_lands_at_wait() {
    let r = run_body(
        r#"
    mov.u32 %r1, sm;
    shl.b32 %r2, %r60, 4;
    add.s32 %r3, %r1, %r2;           // my 16 bytes of shared
    ld.shared.u32 %r4, [%r3];        // 0 (zeroed)
    cp.async.ca.shared.global [%r3], [%rd61], 16;
    cp.async.commit_group;
    cp.async.ca.shared.global [%r3+512], [%rd61+16], 8, 4;   // src-size 4: rest zeros
    cp.async.commit_group;
    ld.shared.u32 %r5, [%r3];        // still 0: the copy has not landed
    cp.async.wait_group 1;           // the first group lands
    ld.shared.u32 %r6, [%r3];
    ld.shared.u32 %r7, [%r3+512];    // second group still pending: 0
    cp.async.wait_all;
    ld.shared.u64 %rd5, [%r3+512];
    st.global.v4.u32 [%rd63], {%r4, %r5, %r6, %r7};
    st.global.u64 [%rd63+16], %rd5;
    "#,
        32,
        &[
            0x1111_2222_3333_4444,
            0x5555_6666_7777_8888,
            0xaaaa_bbbb_cccc_dddd,
        ],
    );
    for s in &r {
        assert_eq!(s[0], 0);
        assert_eq!(s[1], 0x3333_4444);
        assert_eq!(s[2], 0xcccc_dddd);
    }
}

#[test]
fn module_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<vgpu::ptx::Module>();
}
