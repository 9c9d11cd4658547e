//! Container processes: the search path they start with, and telling a process from a
//! later one that got the same pid (a pid plus the start time the kernel recorded for it
//! names one process for good).

/// `PATH` of a container's process and of commands `cnet exec` runs beside it (Docker's
/// default when an image sets none).
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Start time of a live process (field 22 of /proc/<pid>/stat, in clock ticks since
/// boot); `None` when there is no such process or it is a zombie.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the
    // last ')'. What follows starts at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(22 - 3)?.parse().ok()
}

/// Whether `pid` is still the process that was started at `ticks`.
pub fn is_alive(pid: u32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let pid = std::process::id();
        let ticks = start_ticks(pid).expect("own stat");
        assert!(is_alive(pid, ticks));
        assert!(!is_alive(pid, ticks + 1));
        assert_eq!(start_ticks(u32::MAX), None);
    }
}
