//! Repairing drift soon after a call to another service failed. An operation that fails
//! half-way undoes its finished steps, but when the failure is a service that died (or
//! did not answer in time), the undo can fail too and leave what it meant to remove. The
//! gateway's next start would remove it; this removes it as soon as the services answer
//! again, with the same check `cnet system check --repair` runs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tonic::Code;

use super::Gateway;

/// Set when a call failed in a way that can leave something behind.
static NEEDED: AtomicBool = AtomicBool::new(false);

/// How often a needed sweep is tried.
const INTERVAL: Duration = Duration::from_secs(3);

/// Notes a failed call to another service; only failures of the service itself (not a
/// refusal of the request) can leave drift.
pub fn note_failure(code: Code) {
    if matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
    ) {
        NEEDED.store(true, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Runs until the process ends: after a noted failure, repairs drift once every
    /// service answers again.
    pub async fn sweep_drift(self: Arc<Self>) {
        loop {
            tokio::time::sleep(INTERVAL).await;
            if !NEEDED.swap(false, Ordering::Relaxed) {
                continue;
            }
            match self.check(true).await {
                Ok(report) => {
                    for (leftover, repaired) in &report {
                        tracing::warn!(service = leftover.service(), repaired, "{leftover}");
                    }
                    if report.iter().any(|(_, repaired)| !repaired) {
                        NEEDED.store(true, Ordering::Relaxed);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "drift sweep postponed");
                    NEEDED.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}
