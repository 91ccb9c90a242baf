//! Every PTX file kiln ships parses, with the kernels and parameter sizes
//! its CUDA sources declare.

use vgpu::ptx::Module;

const FILES: &[(&str, &str)] = &[
    ("bandwidth", include_str!("../../kernels/ptx/bandwidth.ptx")),
    ("gen", include_str!("../../kernels/ptx/gen.ptx")),
    ("matmul", include_str!("../../kernels/ptx/matmul.ptx")),
    ("memtest", include_str!("../../kernels/ptx/memtest.ptx")),
    ("sha256d", include_str!("../../kernels/ptx/sha256d.ptx")),
    ("verify", include_str!("../../kernels/ptx/verify.ptx")),
];

#[test]
fn every_kiln_ptx_parses() {
    for (name, text) in FILES {
        let m = Module::parse(text).unwrap_or_else(|e| panic!("{name}.ptx: {e}"));
        assert!(!m.kernels().is_empty(), "{name}.ptx has no kernels");
        for k in m.kernels() {
            let sizes: Vec<usize> = k.params.iter().map(|p| p.size).collect();
            println!(
                "{name}: {} (line {}) params {:?} shared {} local {} maxntid {:?}",
                k.name, k.line, sizes, k.static_shared_bytes, k.local_bytes, k.maxntid
            );
        }
    }
}

#[test]
fn signatures_match_the_cuda_sources() {
    let m = Module::parse(FILES[0].1).expect("bandwidth.ptx");
    // kiln_bw_triad(const double* a, const double* c, double* b, u64 len)
    let k = m.kernel("kiln_bw_triad").expect("kiln_bw_triad");
    let sizes: Vec<usize> = k.params.iter().map(|p| p.size).collect();
    assert_eq!(sizes, vec![8, 8, 8, 8]);
    assert_eq!(k.maxntid, Some([1024, 1, 1]));
    // kiln_bw_read(const double* a, u64 len, double* partial), 256 bytes of
    // shared warp partials.
    let k = m.kernel("kiln_bw_read").expect("kiln_bw_read");
    assert_eq!(k.params.len(), 3);
    assert_eq!(k.static_shared_bytes, 256);
    let m = Module::parse(FILES[2].1).expect("matmul.ptx");
    let k = m.kernel("kiln_mma_bf16").expect("kiln_mma_bf16");
    let sizes: Vec<usize> = k.params.iter().map(|p| p.size).collect();
    assert_eq!(sizes, vec![8, 8, 8, 4]);
    assert_eq!(k.static_shared_bytes, 49152);
    // Module-scope .global variables (the nv::target constants).
    let m = Module::parse(FILES[0].1).expect("bandwidth.ptx");
    assert!(m
        .globals()
        .iter()
        .any(|g| g.name.ends_with("sm_80E") && g.init[0] == 80));
}
