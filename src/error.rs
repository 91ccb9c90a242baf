//! Errors and the process exit codes they map to.
//!
//! Exit codes are part of kiln's interface: scripts act on them, so they are
//! decided in one place ([`ExitCode`]) and documented in README and `--help`.
//!
//! Layer: the bottom, beside `reference` and `stats`: imports nothing of kiln,
//! and every layer may use it (tests/layers.rs checks the layers; README's
//! Layout lists them).

use std::path::PathBuf;

/// The exit codes of the `kiln` binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every tested device was accepted.
    Accepted = 0,
    /// At least one device was rejected.
    Rejected = 1,
    /// Bad usage or bad input (flag, device index, file, output folder).
    Usage = 2,
    /// No usable device, or a driver / library failure.
    NoDevice = 3,
    /// The run was interrupted or is incomplete.
    Incomplete = 4,
    /// At least one device could not be tested because of the node's state
    /// (busy in another process, fabric manager down), and none was
    /// rejected: fix the node, not the GPU.
    Untested = 5,
}

impl ExitCode {
    /// The numeric process status.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Everything that can stop kiln before it reaches a verdict.
#[derive(Debug, thiserror::Error)]
pub enum KilnError {
    /// The user asked for something kiln cannot do (bad flag value, unknown
    /// device index, ...). The message says what was expected.
    #[error("{0}")]
    Usage(String),
    /// A file that kiln was asked to read could not be read or parsed.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    /// A file or folder that kiln must write could not be written.
    #[error("cannot write {path}: {message}")]
    Output { path: PathBuf, message: String },
    /// No device could be used, or a driver or library failed.
    #[error("{0}")]
    NoDevice(String),
}

impl KilnError {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            KilnError::Usage(_) | KilnError::Input { .. } | KilnError::Output { .. } => {
                ExitCode::Usage
            }
            KilnError::NoDevice(_) => ExitCode::NoDevice,
        }
    }

    /// An input error for `path`.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        KilnError::Input {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An output error for `path`.
    pub fn output(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        KilnError::Output {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// Result type used across kiln.
pub type Result<T, E = KilnError> = std::result::Result<T, E>;
