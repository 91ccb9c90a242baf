//! XID events since boot, from the kernel log: the NVIDIA driver logs every
//! XID as `NVRM: Xid (PCI:0000:3b:00): 79, pid=..., name=..., <text>`, and
//! the log keeps them from boot (while its ring buffer holds them), where
//! NVML's event set only delivers the XIDs that happen after it was
//! registered. `kiln check` reads them to see what a node went through
//! before the check.
//!
//! Sources, in order: `/dev/kmsg` read without blocking (root, or
//! `kernel.dmesg_restrict = 0`), then `journalctl -k -b`; or a file given
//! by the user (saved `dmesg` or `journalctl -k` output). A log that cannot
//! be read is said in one line, never a failure of the check.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use super::nvml::normalize_bus_id;

/// One XID line of the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelXid {
    /// The GPU's PCI bus id, NVML form (`00000000:3b:00.0`).
    pub bus: String,
    /// The XID number.
    pub xid: u32,
    /// The rest of the line (pid, process name, the driver's words).
    pub text: String,
}

/// Parses one line of `dmesg`, `journalctl -k` or `/dev/kmsg` output;
/// None when it is not an XID line.
pub fn parse_line(line: &str) -> Option<KernelXid> {
    let at = line.find("NVRM: Xid (")?;
    let rest = &line[at + "NVRM: Xid (".len()..];
    let (addr, rest) = rest.split_once(')')?;
    let addr = addr.trim();
    let addr = addr.strip_prefix("PCI:").unwrap_or(addr);
    // domain:bus:device, with or without the function.
    let parts: Vec<&str> = addr.split(':').collect();
    let [domain, bus, dev] = parts[..] else {
        return None;
    };
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let (dev_only, function) = dev.split_once('.').unwrap_or((dev, "0"));
    if !(hex(domain) && hex(bus) && hex(dev_only) && hex(function)) {
        return None;
    }
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let xid: u32 = digits.parse().ok()?;
    let text = rest[digits.len()..]
        .trim_start_matches([',', ' '])
        .trim_end()
        .to_string();
    Some(KernelXid {
        bus: normalize_bus_id(&format!("{domain}:{bus}:{dev_only}.{function}")),
        xid,
        text,
    })
}

/// Every XID line of a log's text.
pub fn parse(text: &str) -> Vec<KernelXid> {
    text.lines().filter_map(parse_line).collect()
}

/// The XIDs of the log file `path` (saved `dmesg` or `journalctl -k`
/// output); an unreadable file is an error naming it.
pub fn read_file(path: &Path) -> Result<Vec<KernelXid>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("--kernel-log {}: cannot read it: {e}", path.display()))?;
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// The XIDs of this node's kernel log since boot, and where they were read;
/// or why the log could not be read (every source tried, in one line).
pub fn read_system() -> Result<(Vec<KernelXid>, &'static str), String> {
    let kmsg = match read_kmsg() {
        Ok(text) => return Ok((parse(&text), "/dev/kmsg")),
        Err(e) => e,
    };
    match journalctl(Duration::from_secs(3)) {
        Ok(text) => Ok((parse(&text), "journalctl -k -b")),
        Err(j) => Err(format!(
            "the kernel log is unreadable (/dev/kmsg: {kmsg}; journalctl -k: {j}), so XIDs logged before the check are not seen (run as root, or give --kernel-log FILE)"
        )),
    }
}

/// `O_NONBLOCK` on the Linux architectures kiln is built for.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
const O_NONBLOCK: i32 = 0o4000;

/// Every record `/dev/kmsg` still holds, read without blocking: each
/// read returns one record (`PRIORITY,SEQ,USEC,FLAGS;TEXT`), EAGAIN says
/// there are no more, EPIPE that a record was overwritten while reading.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn read_kmsg() -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    // The ring buffer holds at most a few hundred thousand records; a log
    // written faster than it is read stops here.
    for _ in 0..1_000_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m);
                out.push_str(msg.lines().next().unwrap_or_default());
                out.push('\n');
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(32) => continue, // EPIPE
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
fn read_kmsg() -> Result<String, String> {
    Err("not read on this platform".into())
}

/// `journalctl -k -b -o cat`: this boot's kernel messages, given `limit`
/// to answer (a large journal is slow; a prolog must not wait on it).
fn journalctl(limit: Duration) -> Result<String, String> {
    let mut child = std::process::Command::new("journalctl")
        .args(["-k", "-b", "-o", "cat", "--no-pager", "-q"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err("no output pipe".into());
    };
    // Read in threads so that a full pipe never blocks the child.
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer in {} s", limit.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let text = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let errors = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    // journalctl exits 0 with only "No entries" or a permission hint on
    // stderr when it may not read the kernel's messages.
    if !status.success() {
        return Err(first_line(&errors, "failed"));
    }
    if text.trim().is_empty() {
        return Err(first_line(&errors, "no kernel messages readable"));
    }
    Ok(text)
}

fn first_line(text: &str, default: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(default)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_lines_of_every_source_are_parsed() {
        let x = parse_line(
            "[ 1234.567890] NVRM: Xid (PCI:0000:3b:00): 79, pid=2211, name=python3, GPU has fallen off the bus.",
        )
        .expect("an XID line");
        assert_eq!(x.bus, "00000000:3b:00.0");
        assert_eq!(x.xid, 79);
        assert!(x.text.starts_with("pid=2211, name=python3"), "{}", x.text);
        // /dev/kmsg's record prefix is cut by the reader; journalctl -o cat
        // has none; older drivers leave out "PCI:".
        let y = parse_line("NVRM: Xid (0000:DB:00): 13, Graphics SM Warp Exception").expect("xid");
        assert_eq!((y.bus.as_str(), y.xid), ("00000000:db:00.0", 13));
        assert_eq!(
            parse_line("NVRM: Xid (PCI:0001:18:00.1): 48, DBE").map(|x| x.bus),
            Some("00000001:18:00.1".to_string())
        );
        for not in [
            "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  570.124.06",
            "NVRM: Xid (PCI:zz:3b:00): 79, x",
            "NVRM: Xid (PCI:0000:3b:00): , nothing",
            "",
        ] {
            assert_eq!(parse_line(not), None, "{not}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read_file(Path::new("/nonexistent/kern.log")).unwrap_err();
        assert!(e.contains("--kernel-log /nonexistent/kern.log"), "{e}");
    }
}
