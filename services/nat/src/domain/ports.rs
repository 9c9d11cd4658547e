//! Host-port allocation for `-p 80` (random) and `-p 8090-8092:80` (one of a range),
//! as Docker's port allocator does it (PUB-6): ports come from the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), going up one at a time from the last
//! port handed out and wrapping at the end, so a port just released is not reused at
//! once. The caller says which ports are taken.

use std::ops::RangeInclusive;

use super::Error;

/// The ephemeral range the kernel uses when nothing else is configured.
pub const DEFAULT_RANGE: RangeInclusive<u16> = 32768..=60999;

/// Parses `ip_local_port_range` ("32768\t60999").
pub fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut fields = text.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(start)), Some(Ok(end)), None) = (fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    (start >= 1 && start <= end).then_some(start..=end)
}

#[derive(Debug, Default, Clone)]
pub struct PortAllocator {
    last: Option<u16>,
}

impl PortAllocator {
    /// The next port of `range` after the last one handed out (or its first port) for
    /// which `is_free` holds, trying each port of the range at most once.
    pub fn pick(
        &mut self,
        range: RangeInclusive<u16>,
        mut is_free: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let (start, end) = (*range.start(), *range.end());
        if start > end {
            return None;
        }
        let first = match self.last {
            Some(last) if last >= start && last < end => last + 1,
            _ => start,
        };
        let len = u32::from(end - start) + 1;
        let offset = u32::from(first - start);
        let port = (0..len)
            .map(|step| start + ((offset + step) % len) as u16)
            .find(|port| is_free(*port))?;
        self.last = Some(port);
        Some(port)
    }

    /// Like [`PortAllocator::pick`], for a caller that reports the exhausted case.
    pub fn pick_or_exhausted(
        &mut self,
        range: RangeInclusive<u16>,
        is_free: impl FnMut(u16) -> bool,
    ) -> Result<u16, Error> {
        self.pick(range, is_free).ok_or(Error::PortsExhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_file() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_range("1024 1024"), Some(1024..=1024));
        for bad in ["", "32768", "60999 32768", "0 10", "a b", "1 2 3", "1 70000"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn goes_up_from_the_last_port() {
        let mut allocator = PortAllocator::default();
        let picks: Vec<_> =
            (0..3).map(|_| allocator.pick(DEFAULT_RANGE, |_| true).unwrap()).collect();
        assert_eq!(picks, [32768, 32769, 32770]);
    }

    #[test]
    fn skips_used_ports() {
        let mut allocator = PortAllocator::default();
        let used = [100, 101, 103];
        assert_eq!(allocator.pick(100..=110, |port| !used.contains(&port)), Some(102));
        assert_eq!(allocator.pick(100..=110, |port| !used.contains(&port)), Some(104));
    }

    #[test]
    fn wraps_at_the_end() {
        let mut allocator = PortAllocator::default();
        assert_eq!(allocator.pick(100..=102, |port| port == 102), Some(102));
        assert_eq!(allocator.pick(100..=102, |_| true), Some(100));
        assert_eq!(allocator.pick(100..=102, |port| port != 101), Some(102));
        assert_eq!(allocator.pick(100..=102, |port| port == 101), Some(101));
    }

    #[test]
    fn a_range_starts_at_its_start_when_the_last_port_is_elsewhere() {
        let mut allocator = PortAllocator::default();
        assert_eq!(allocator.pick(DEFAULT_RANGE, |_| true), Some(32768));
        assert_eq!(allocator.pick(8090..=8092, |_| true), Some(8090));
        assert_eq!(allocator.pick(8090..=8092, |_| true), Some(8091));
        assert_eq!(allocator.pick(65535..=65535, |_| true), Some(65535));
        assert_eq!(allocator.pick(65535..=65535, |_| true), Some(65535));
    }

    #[test]
    fn exhausted() {
        let mut allocator = PortAllocator::default();
        let mut tried = Vec::new();
        let result = allocator.pick_or_exhausted(10..=13, |port| {
            tried.push(port);
            false
        });
        assert_eq!(result, Err(Error::PortsExhausted));
        assert_eq!(tried, [10, 11, 12, 13]);
    }
}
