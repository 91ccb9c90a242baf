//! Host sensors of the CPU backend, read from Linux's sysfs and procfs:
//! hwmon temperature inputs (`/sys/class/hwmon`), thermal zones
//! (`/sys/class/thermal`), core clocks (cpufreq, else `cpu MHz` in
//! `/proc/cpuinfo`), and package energy from RAPL (`/sys/class/powercap`),
//! turned into watts between two samples. A sensor that does not exist is
//! reported absent, never as zero.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::telemetry::{Sample, Sensor};

/// The host's sensors, found once at start.
#[derive(Debug)]
pub struct HostSensor {
    root: PathBuf,
    temps: Vec<PathBuf>,
    freqs: Vec<PathBuf>,
    cpuinfo: Option<PathBuf>,
    rapl: Option<PathBuf>,
    last_energy: Mutex<Option<(f64, u64)>>,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

impl HostSensor {
    /// The sensors of this machine.
    pub fn new() -> Self {
        Self::with_root(Path::new("/"))
    }

    /// The sensors under another root (for tests with a fake sysfs).
    pub fn with_root(root: &Path) -> Self {
        let mut temps = Vec::new();
        for hw in entries(&root.join("sys/class/hwmon")) {
            for f in entries(&hw) {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("temp") && name.ends_with("_input") {
                    temps.push(f);
                }
            }
        }
        for z in entries(&root.join("sys/class/thermal")) {
            let t = z.join("temp");
            if z.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("thermal_zone"))
                && t.is_file()
            {
                temps.push(t);
            }
        }
        temps.retain(|p| read_u64(p).is_some());
        let freqs: Vec<PathBuf> = entries(&root.join("sys/devices/system/cpu"))
            .into_iter()
            .map(|c| c.join("cpufreq/scaling_cur_freq"))
            .filter(|p| read_u64(p).is_some())
            .collect();
        let cpuinfo = Some(root.join("proc/cpuinfo"))
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("cpu MHz")));
        let rapl = entries(&root.join("sys/class/powercap"))
            .into_iter()
            .map(|d| d.join("energy_uj"))
            .find(|p| read_u64(p).is_some());
        HostSensor {
            root: root.to_path_buf(),
            temps,
            freqs,
            cpuinfo,
            rapl,
            last_energy: Mutex::new(None),
        }
    }

    /// Which sensors exist, in words, for `kiln list` and the run's notes.
    pub fn inventory(&self) -> Vec<String> {
        let say = |what: &str, found: Option<String>, absent: &str| match found {
            Some(f) => format!("{what}: {f}"),
            None => format!("{what}: absent ({absent})"),
        };
        vec![
            say(
                "temperature",
                (!self.temps.is_empty())
                    .then(|| format!("{} hwmon/thermal-zone input(s)", self.temps.len())),
                "no readable hwmon temp*_input or thermal zone",
            ),
            say(
                "clock",
                if !self.freqs.is_empty() {
                    Some(format!("cpufreq on {} core(s)", self.freqs.len()))
                } else {
                    self.cpuinfo
                        .as_ref()
                        .map(|_| "cpu MHz from /proc/cpuinfo".to_string())
                },
                "no cpufreq and no cpu MHz in /proc/cpuinfo",
            ),
            say(
                "power",
                self.rapl.as_ref().map(|p| {
                    let rel = p.strip_prefix(&self.root).unwrap_or(p);
                    format!("RAPL energy counter /{}", rel.display())
                }),
                "no readable RAPL energy counter under /sys/class/powercap",
            ),
            "ECC, XID, PCIe link: absent (GPU-only sensors)".to_string(),
        ]
    }

    fn clock_mhz(&self) -> Option<f64> {
        if !self.freqs.is_empty() {
            let khz: Vec<f64> = self
                .freqs
                .iter()
                .filter_map(|p| read_u64(p))
                .map(|k| k as f64)
                .collect();
            return (!khz.is_empty()).then(|| khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0);
        }
        let text = std::fs::read_to_string(self.cpuinfo.as_ref()?).ok()?;
        let mhz: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split_once(':')?.1.trim().parse().ok())
            .collect();
        (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64)
    }

    fn power_w(&self, t_s: f64) -> Option<f64> {
        let energy = read_u64(self.rapl.as_ref()?)?;
        let mut last = self.last_energy.lock().ok()?;
        let watts = match *last {
            Some((t0, e0)) if t_s > t0 && energy >= e0 => {
                Some((energy - e0) as f64 / 1e6 / (t_s - t0))
            }
            _ => None,
        };
        *last = Some((t_s, energy));
        watts
    }
}

impl Default for HostSensor {
    fn default() -> Self {
        Self::new()
    }
}

impl Sensor for HostSensor {
    fn sample(&self, t_s: f64) -> Sample {
        let temp = self
            .temps
            .iter()
            .filter_map(|p| read_u64(p))
            .map(|milli| milli as f64 / 1000.0)
            .max_by(f64::total_cmp);
        Sample {
            t_s,
            gpu_temp_c: temp,
            sm_clock_mhz: self.clock_mhz(),
            power_w: self.power_w(t_s),
            ..Sample::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    #[test]
    fn a_machine_without_sensors_reports_them_absent_not_zero() {
        let d = tempfile::tempdir().expect("tmp");
        let s = HostSensor::with_root(d.path());
        let sample = s.sample(1.0);
        assert_eq!(sample.gpu_temp_c, None);
        assert_eq!(sample.power_w, None);
        assert_eq!(sample.sm_clock_mhz, None);
        let inv = s.inventory().join("\n");
        assert!(inv.contains("temperature: absent"), "{inv}");
        assert!(inv.contains("power: absent"), "{inv}");
    }

    #[test]
    fn hwmon_thermal_cpufreq_and_rapl_are_read() {
        let d = tempfile::tempdir().expect("tmp");
        let r = d.path();
        write(r, "sys/class/hwmon/hwmon0/temp1_input", "45000\n");
        write(r, "sys/class/hwmon/hwmon0/temp2_input", "51500\n");
        write(r, "sys/class/thermal/thermal_zone0/temp", "48000\n");
        write(
            r,
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
            "3000000\n",
        );
        write(
            r,
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            "2000000\n",
        );
        write(r, "sys/class/powercap/intel-rapl:0/energy_uj", "1000000\n");
        let s = HostSensor::with_root(r);
        let first = s.sample(0.0);
        assert_eq!(first.gpu_temp_c, Some(51.5), "hottest input");
        assert_eq!(first.sm_clock_mhz, Some(2500.0));
        assert_eq!(first.power_w, None, "power needs two energy readings");
        write(r, "sys/class/powercap/intel-rapl:0/energy_uj", "51000000\n");
        assert_eq!(s.sample(2.0).power_w, Some(25.0), "50 J in 2 s");
        let inv = s.inventory().join("\n");
        assert!(inv.contains("3 hwmon/thermal-zone input(s)"), "{inv}");
        assert!(inv.contains("cpufreq on 2 core(s)"), "{inv}");
    }

    #[test]
    fn cpuinfo_mhz_is_the_clock_fallback() {
        let d = tempfile::tempdir().expect("tmp");
        write(
            d.path(),
            "proc/cpuinfo",
            "cpu MHz\t\t: 2400.000\ncpu MHz\t\t: 2600.000\n",
        );
        assert_eq!(
            HostSensor::with_root(d.path()).sample(0.0).sm_clock_mhz,
            Some(2500.0)
        );
    }
}
