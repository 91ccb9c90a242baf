//! `nvmlReturn_t` codes, their names and the texts nvmlErrorString gives,
//! from the NVML API reference (`nvml.h`, enum `nvmlReturn_enum`).

#![allow(non_camel_case_types)]

use std::ffi::c_uint;

pub type nvmlReturn_t = c_uint;

pub const NVML_SUCCESS: nvmlReturn_t = 0;
pub const NVML_ERROR_UNINITIALIZED: nvmlReturn_t = 1;
pub const NVML_ERROR_INVALID_ARGUMENT: nvmlReturn_t = 2;
pub const NVML_ERROR_NOT_SUPPORTED: nvmlReturn_t = 3;
pub const NVML_ERROR_NO_PERMISSION: nvmlReturn_t = 4;
pub const NVML_ERROR_ALREADY_INITIALIZED: nvmlReturn_t = 5;
pub const NVML_ERROR_NOT_FOUND: nvmlReturn_t = 6;
pub const NVML_ERROR_INSUFFICIENT_SIZE: nvmlReturn_t = 7;
pub const NVML_ERROR_INSUFFICIENT_POWER: nvmlReturn_t = 8;
pub const NVML_ERROR_DRIVER_NOT_LOADED: nvmlReturn_t = 9;
pub const NVML_ERROR_TIMEOUT: nvmlReturn_t = 10;
pub const NVML_ERROR_IRQ_ISSUE: nvmlReturn_t = 11;
pub const NVML_ERROR_LIBRARY_NOT_FOUND: nvmlReturn_t = 12;
pub const NVML_ERROR_FUNCTION_NOT_FOUND: nvmlReturn_t = 13;
pub const NVML_ERROR_CORRUPTED_INFOROM: nvmlReturn_t = 14;
pub const NVML_ERROR_GPU_IS_LOST: nvmlReturn_t = 15;
pub const NVML_ERROR_RESET_REQUIRED: nvmlReturn_t = 16;
pub const NVML_ERROR_OPERATING_SYSTEM: nvmlReturn_t = 17;
pub const NVML_ERROR_LIB_RM_VERSION_MISMATCH: nvmlReturn_t = 18;
pub const NVML_ERROR_IN_USE: nvmlReturn_t = 19;
pub const NVML_ERROR_MEMORY: nvmlReturn_t = 20;
pub const NVML_ERROR_NO_DATA: nvmlReturn_t = 21;
pub const NVML_ERROR_VGPU_ECC_NOT_SUPPORTED: nvmlReturn_t = 22;
pub const NVML_ERROR_INSUFFICIENT_RESOURCES: nvmlReturn_t = 23;
pub const NVML_ERROR_FREQ_NOT_SUPPORTED: nvmlReturn_t = 24;
pub const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: nvmlReturn_t = 25;
pub const NVML_ERROR_DEPRECATED: nvmlReturn_t = 26;
pub const NVML_ERROR_NOT_READY: nvmlReturn_t = 27;
pub const NVML_ERROR_GPU_NOT_FOUND: nvmlReturn_t = 28;
pub const NVML_ERROR_INVALID_STATE: nvmlReturn_t = 29;
pub const NVML_ERROR_RESET_TYPE_NOT_SUPPORTED: nvmlReturn_t = 30;
pub const NVML_ERROR_UNKNOWN: nvmlReturn_t = 999;

/// (code, name, NUL-terminated text).
pub const TABLE: &[(nvmlReturn_t, &str, &str)] = &[
    (NVML_SUCCESS, "NVML_SUCCESS", "Success\0"),
    (
        NVML_ERROR_UNINITIALIZED,
        "NVML_ERROR_UNINITIALIZED",
        "Uninitialized\0",
    ),
    (
        NVML_ERROR_INVALID_ARGUMENT,
        "NVML_ERROR_INVALID_ARGUMENT",
        "Invalid Argument\0",
    ),
    (
        NVML_ERROR_NOT_SUPPORTED,
        "NVML_ERROR_NOT_SUPPORTED",
        "Not Supported\0",
    ),
    (
        NVML_ERROR_NO_PERMISSION,
        "NVML_ERROR_NO_PERMISSION",
        "Insufficient Permissions\0",
    ),
    (
        NVML_ERROR_ALREADY_INITIALIZED,
        "NVML_ERROR_ALREADY_INITIALIZED",
        "Already Initialized\0",
    ),
    (NVML_ERROR_NOT_FOUND, "NVML_ERROR_NOT_FOUND", "Not Found\0"),
    (
        NVML_ERROR_INSUFFICIENT_SIZE,
        "NVML_ERROR_INSUFFICIENT_SIZE",
        "Insufficient Size\0",
    ),
    (
        NVML_ERROR_INSUFFICIENT_POWER,
        "NVML_ERROR_INSUFFICIENT_POWER",
        "Insufficient External Power\0",
    ),
    (
        NVML_ERROR_DRIVER_NOT_LOADED,
        "NVML_ERROR_DRIVER_NOT_LOADED",
        "Driver Not Loaded\0",
    ),
    (NVML_ERROR_TIMEOUT, "NVML_ERROR_TIMEOUT", "Timeout\0"),
    (
        NVML_ERROR_IRQ_ISSUE,
        "NVML_ERROR_IRQ_ISSUE",
        "Interrupt request issue\0",
    ),
    (
        NVML_ERROR_LIBRARY_NOT_FOUND,
        "NVML_ERROR_LIBRARY_NOT_FOUND",
        "NVML Shared Library Not Found\0",
    ),
    (
        NVML_ERROR_FUNCTION_NOT_FOUND,
        "NVML_ERROR_FUNCTION_NOT_FOUND",
        "Function Not Found\0",
    ),
    (
        NVML_ERROR_CORRUPTED_INFOROM,
        "NVML_ERROR_CORRUPTED_INFOROM",
        "Corrupted infoROM\0",
    ),
    (
        NVML_ERROR_GPU_IS_LOST,
        "NVML_ERROR_GPU_IS_LOST",
        "GPU is lost\0",
    ),
    (
        NVML_ERROR_RESET_REQUIRED,
        "NVML_ERROR_RESET_REQUIRED",
        "GPU requires restart\0",
    ),
    (
        NVML_ERROR_OPERATING_SYSTEM,
        "NVML_ERROR_OPERATING_SYSTEM",
        "The operating system has blocked the request\0",
    ),
    (
        NVML_ERROR_LIB_RM_VERSION_MISMATCH,
        "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
        "RM has detected an NVML/RM version mismatch\0",
    ),
    (
        NVML_ERROR_IN_USE,
        "NVML_ERROR_IN_USE",
        "In use by another client\0",
    ),
    (
        NVML_ERROR_MEMORY,
        "NVML_ERROR_MEMORY",
        "Insufficient Memory\0",
    ),
    (NVML_ERROR_NO_DATA, "NVML_ERROR_NO_DATA", "No data\0"),
    (
        NVML_ERROR_VGPU_ECC_NOT_SUPPORTED,
        "NVML_ERROR_VGPU_ECC_NOT_SUPPORTED",
        "ECC is not supported on vGPU\0",
    ),
    (
        NVML_ERROR_INSUFFICIENT_RESOURCES,
        "NVML_ERROR_INSUFFICIENT_RESOURCES",
        "Insufficient resources\0",
    ),
    (
        NVML_ERROR_FREQ_NOT_SUPPORTED,
        "NVML_ERROR_FREQ_NOT_SUPPORTED",
        "Frequency not supported\0",
    ),
    (
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
        "NVML_ERROR_ARGUMENT_VERSION_MISMATCH",
        "Argument version mismatch\0",
    ),
    (
        NVML_ERROR_DEPRECATED,
        "NVML_ERROR_DEPRECATED",
        "Deprecated\0",
    ),
    (NVML_ERROR_NOT_READY, "NVML_ERROR_NOT_READY", "Not ready\0"),
    (
        NVML_ERROR_GPU_NOT_FOUND,
        "NVML_ERROR_GPU_NOT_FOUND",
        "GPU not found\0",
    ),
    (
        NVML_ERROR_INVALID_STATE,
        "NVML_ERROR_INVALID_STATE",
        "Invalid state\0",
    ),
    (
        NVML_ERROR_RESET_TYPE_NOT_SUPPORTED,
        "NVML_ERROR_RESET_TYPE_NOT_SUPPORTED",
        "Reset type not supported\0",
    ),
    (NVML_ERROR_UNKNOWN, "NVML_ERROR_UNKNOWN", "Unknown Error\0"),
];

/// The name of a code (`NVML_ERROR_...`).
pub fn name(code: nvmlReturn_t) -> &'static str {
    TABLE
        .iter()
        .find(|t| t.0 == code)
        .map_or("NVML_ERROR_UNKNOWN", |t| t.1)
}
