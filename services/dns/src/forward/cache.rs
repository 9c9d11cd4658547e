//! A bounded cache of upstream answers, each kept for its TTL: the smallest TTL of its
//! answer records, or for a negative answer the SOA's negative TTL (RFC 2308). Answers
//! without a usable TTL (SERVFAIL, truncated, no SOA) are not kept. A hit has its TTLs
//! lowered by the time it spent in the cache, so clients never keep a record longer than
//! the upstream allowed.
//!
//! The key includes the upstream list, because containers with different `--dns`
//! servers may rightly get different answers for the same name.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, Query, ResponseCode},
    rr::{DNSClass, RData, RecordType},
};

use crate::domain::Upstream;

/// Upper bound on how long an answer is kept, whatever its TTL says.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    upstreams: Vec<Upstream>,
    name: String,
    record_type: RecordType,
    class: DNSClass,
    dnssec_ok: bool,
    checking_disabled: bool,
}

impl CacheKey {
    pub fn new(
        query: &Query,
        upstreams: &[Upstream],
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Self {
        Self {
            upstreams: upstreams.to_vec(),
            name: query.name().to_ascii().to_ascii_lowercase(),
            record_type: query.query_type(),
            class: query.query_class(),
            dnssec_ok,
            checking_disabled,
        }
    }
}

struct Entry {
    message: Message,
    stored: Instant,
    expires: Instant,
}

pub struct Cache {
    capacity: usize,
    entries: HashMap<CacheKey, Entry>,
}

impl Cache {
    /// A cache of at most `capacity` answers; 0 turns caching off.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: HashMap::new() }
    }

    /// The cached answer with its TTLs lowered by its age, if it has not expired.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Message> {
        let entry = self.entries.get(key)?;
        if now >= entry.expires {
            self.entries.remove(key);
            return None;
        }
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let mut message = entry.message.clone();
        for record in message
            .answers
            .iter_mut()
            .chain(&mut message.authorities)
            .chain(&mut message.additionals)
        {
            record.ttl = record.ttl.saturating_sub(age);
        }
        Some(message)
    }

    pub fn insert(&mut self, key: CacheKey, message: &Message, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let Some(ttl) = cache_ttl(message) else { return };
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, entry| entry.expires > now);
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            // Still full of live answers: drop the one closest to expiring. A linear scan
            // is fine at the sizes a container host needs and only happens when full.
            let soonest = self.entries.iter().min_by_key(|(_, entry)| entry.expires);
            if let Some(soonest) = soonest.map(|(key, _)| key.clone()) {
                self.entries.remove(&soonest);
            }
        }
        let entry = Entry { message: message.clone(), stored: now, expires: now + ttl };
        self.entries.insert(key, entry);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// How long `message` may be cached, if at all.
pub fn cache_ttl(message: &Message) -> Option<Duration> {
    if message.metadata.truncation {
        return None;
    }
    let seconds = match message.metadata.response_code {
        ResponseCode::NoError if !message.answers.is_empty() => {
            message.answers.iter().map(|record| record.ttl).min()
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            message.authorities.iter().find_map(|record| match &record.data {
                RData::SOA(soa) => Some(record.ttl.min(soa.minimum)),
                _ => None,
            })
        }
        _ => None,
    }?;
    (seconds > 0).then(|| Duration::from_secs(seconds.into()).min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::{
        op::{MessageType, OpCode},
        rr::{Name, Record, rdata::A, rdata::SOA},
    };

    use super::*;

    fn query(name: &str) -> Query {
        Query::query(Name::from_ascii(name).unwrap(), RecordType::A)
    }

    fn key(name: &str) -> CacheKey {
        let upstream = Upstream::parse("127.0.0.1:5300").unwrap();
        CacheKey::new(&query(name), &[upstream], false, false)
    }

    fn answer(name: &str, ttl: u32) -> Message {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.add_query(query(name));
        let data = RData::A(A(Ipv4Addr::new(192, 0, 2, 1)));
        message.add_answer(Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data));
        message
    }

    fn negative(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Message {
        let mut message = Message::new(1, MessageType::Response, OpCode::Query);
        message.metadata.response_code = rcode;
        let zone = Name::from_ascii("example.").unwrap();
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 60, 60, 60, minimum);
        message.add_authority(Record::from_rdata(zone, soa_ttl, RData::SOA(soa)));
        message
    }

    #[test]
    fn ttls_follow_the_answer() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(cache_ttl(&answer("a.example.", 30)), secs(30));
        assert_eq!(cache_ttl(&answer("a.example.", 0)), None);
        assert_eq!(cache_ttl(&negative(ResponseCode::NXDomain, 900, 60)), secs(60));
        assert_eq!(cache_ttl(&negative(ResponseCode::NoError, 20, 60)), secs(20));
        assert_eq!(cache_ttl(&negative(ResponseCode::ServFail, 900, 60)), None);
        let mut truncated = answer("a.example.", 30);
        truncated.metadata.truncation = true;
        assert_eq!(cache_ttl(&truncated), None);
        let mut bare = Message::new(1, MessageType::Response, OpCode::Query);
        bare.metadata.response_code = ResponseCode::NXDomain;
        assert_eq!(cache_ttl(&bare), None);
    }

    #[test]
    fn hits_age_and_expire() {
        let mut cache = Cache::new(8);
        let start = Instant::now();
        cache.insert(key("a.example."), &answer("a.example.", 30), start);
        let hit = cache.get(&key("A.Example."), start + Duration::from_secs(10)).unwrap();
        assert_eq!(hit.answers[0].ttl, 20);
        assert!(cache.get(&key("a.example."), start + Duration::from_secs(30)).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = Cache::new(2);
        let now = Instant::now();
        cache.insert(key("a."), &answer("a.", 10), now);
        cache.insert(key("b."), &answer("b.", 100), now);
        cache.insert(key("c."), &answer("c.", 100), now);
        assert_eq!(cache.len(), 2);
        // The entry closest to expiring made room.
        assert!(cache.get(&key("a."), now).is_none());
        assert!(cache.get(&key("c."), now).is_some());
        let mut off = Cache::new(0);
        off.insert(key("a."), &answer("a.", 10), now);
        assert_eq!(off.len(), 0);
    }
}
