//! The inputs of a matrix product: element `A[i][k]` and `B[k][j]` of a
//! product seeded with `seed`, before rounding to the input format. Every
//! backend builds its inputs from these, and the host rebuilds any of them
//! for the f64 reference of an output element (src/workload/matmul.rs).

use crate::reference::gen;

/// Input element `A[i][k]` of a product seeded with `seed`, before rounding
/// to the input format.
pub fn a_value(seed: u64, n: usize, i: usize, k: usize) -> f64 {
    gen::matrix_value(seed, 0, (i * n + k) as u64)
}

/// Input element `B[k][j]` of a product seeded with `seed`, before rounding.
pub fn b_value(seed: u64, n: usize, k: usize, j: usize) -> f64 {
    gen::matrix_value(seed, 1, (k * n + j) as u64)
}
