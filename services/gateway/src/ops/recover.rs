//! Finishing or undoing what a gateway that died half-way left in flight. Every
//! operation that spans services and creates what the records alone cannot account for
//! (a container record for a `run` nobody was told about, a process started but not
//! recorded) marks the container record before its first step and clears the mark with
//! its last write ([`InFlight`]). The other operations need no mark: their records are
//! written last, so the records still say what was there before, and reconciliation
//! (`reconcile`, `drift`) brings the services back to them, which undoes the operation.

use std::sync::Arc;

use super::Gateway;
use crate::{
    domain::{ContainerRecord, InFlight},
    error::Result,
    sandbox::{self, ContainerFiles},
};

impl Gateway {
    /// Settles every container marked in flight.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<()> {
        for container in self.records.container_list()? {
            let Some(operation) = container.in_flight else { continue };
            tracing::warn!(container = %container.name, ?operation, "operation interrupted by a gateway exit");
            self.settle(container, operation).await?;
        }
        Ok(())
    }

    async fn settle(
        self: &Arc<Self>,
        mut container: ContainerRecord,
        operation: InFlight,
    ) -> Result<()> {
        let started = container.pid().is_some();
        if !started {
            // A process may have started without being recorded.
            let pid_file = ContainerFiles::new(&self.state_dir, &container.id).pid();
            if sandbox::kill_unrecorded(&pid_file) {
                tracing::warn!(container = %container.name, "killed a process started but never recorded");
            }
        }
        match operation {
            InFlight::Run | InFlight::Remove => {
                self.remove_container(&container.id, true).await?;
            }
            InFlight::Start if started => {
                // It ran to the end but for the mark: keep it (a dead process is
                // handled like any other by the restore that follows).
                container.in_flight = None;
                self.records.put_container(&container).await?;
            }
            InFlight::Start => {
                // Back to how it was before the start: nothing held, files not running.
                let networks: Vec<String> =
                    container.attachments.iter().map(|a| a.network_id.clone()).collect();
                if !container.shares_namespace() {
                    for failure in self.tear_down(&container.id, &networks).await {
                        tracing::warn!(container = %container.name, %failure, "undoing a start");
                    }
                }
                if !container.shares_files() {
                    self.put_files(&container, false).await?;
                }
                container.in_flight = None;
                self.records.put_container(&container).await?;
            }
        }
        Ok(())
    }
}
