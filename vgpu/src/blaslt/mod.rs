//! cuBLASLt on the virtual node: installed as `libcublasLt.so.12` (the same
//! library file), matrix multiplies computed on the CPU with each type's
//! rounding, on the caller's stream in modelled time. (Being written.)
