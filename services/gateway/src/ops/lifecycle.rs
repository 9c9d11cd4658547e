//! Starting and stopping containers, and noticing when their processes end by themselves.
//!
//! Start: allocate an address per network, create the sandbox (network namespace) and
//! its veths, write the container's files, spawn the process, record it running. A
//! failed step undoes the earlier ones. Stop and exit both tear the network down again
//! and release the addresses, as Docker does (NET-5).

use std::{net::Ipv4Addr, path::PathBuf, sync::Arc, time::Duration};

use cnet_proto::{bridge::v1 as bridge, ipam::v1 as ipam};
use tokio::sync::watch;
use tonic::Code;

use super::Gateway;
use crate::{
    backends::retry,
    domain::{
        Attachment, ContainerRecord, InFlight, Lease, NetworkMode, RunState,
        container::{endpoint_id, mac_for},
    },
    error::{Error, Result},
    now,
    sandbox::{self, ContainerFiles, Files, Launch},
};

/// Time between SIGTERM and SIGKILL when the caller gives none, as in Docker.
pub const DEFAULT_STOP_TIMEOUT: u32 = 10;

impl Gateway {
    #[tracing::instrument(name = "start container", skip_all, fields(container = reference))]
    pub async fn start_container(self: &Arc<Self>, reference: &str) -> Result<ContainerRecord> {
        let _gate = self.network_gate.read().await;
        let found = self.find_container(reference)?;
        let _guard = self.lock_container(&found.id).await;
        let mut record = self.reload(&found.id)?;
        if record.is_running() {
            return Ok(record);
        }
        if record.in_flight.is_none() {
            record.in_flight = Some(InFlight::Start);
            self.records.put_container(&record).await?;
        }
        let mut leased = Vec::new();
        match self.bring_up(&record, &mut leased).await {
            Ok(running) => Ok(running),
            Err(error) => {
                self.tear_down(&record.id, &leased).await;
                // The hosts service may have been told it runs, with addresses now
                // released; its linkers must not keep showing them.
                if !record.shares_files()
                    && let Err(undo) = self.put_files(&record, false).await
                {
                    tracing::warn!(container = %record.name, error = %undo, "hosts files not reset");
                }
                if record.in_flight == Some(InFlight::Start) {
                    record.in_flight = None;
                    if let Err(undo) = self.records.put_container(&record).await {
                        tracing::warn!(container = %record.name, error = %undo, "start not unmarked");
                    }
                }
                Err(error)
            }
        }
    }

    /// The steps of a start; `leased` collects the networks holding an address so the
    /// caller can undo them.
    async fn bring_up(
        self: &Arc<Self>,
        record: &ContainerRecord,
        leased: &mut Vec<String>,
    ) -> Result<ContainerRecord> {
        let mut record = record.clone();
        let container_files = ContainerFiles::new(&self.state_dir, &record.id);
        let log = container_files.log();
        std::fs::create_dir_all(log.parent().expect("log has a directory"))
            .map_err(Error::io("create container directory"))?;
        let joined;
        let netns_path;
        let mounted;
        let (netns, uts, hostname, shared_files) = match &record.mode {
            NetworkMode::Bridge | NetworkMode::None => {
                record.link_env = self.resolve_links(&record)?;
                // No step waits for one it does not need: the namespace is made while the
                // addresses are leased, and the veths while the ports, names and files
                // (which need only the addresses and the namespace) are set up.
                let sandbox_id = record.sandbox_id().to_owned();
                let leases = async {
                    for index in 0..record.attachments.len() {
                        let lease = self.lease(&record, index).await?;
                        leased.push(record.attachments[index].network_id.clone());
                        record.attachments[index].lease = Some(lease);
                    }
                    Ok::<_, Error>(())
                };
                let (leases, sandbox) = tokio::join!(leases, self.ensure_sandbox(&sandbox_id));
                leases?;
                netns_path = sandbox?;
                let (plumbed, published, registered, written) = tokio::join!(
                    self.ensure_endpoints(&record),
                    self.publish(&record),
                    self.register_names(&record, &netns_path),
                    self.put_files(&record, true),
                );
                plumbed?;
                record.port_bindings = published?;
                registered?;
                mounted = written?;
                (Some(netns_path.as_path()), None, Some(record.hostname.as_str()), None)
            }
            NetworkMode::Host => {
                mounted = self.put_files(&record, true).await?;
                (None, None, Some(record.hostname.as_str()), None)
            }
            NetworkMode::Container(target_id) => {
                joined = self.joinable(target_id)?;
                mounted = self.files_of(target_id).await?;
                (Some(joined.0.as_path()), Some(joined.1.as_path()), None, Some(joined.2.as_path()))
            }
        };
        record.hosts_path = mounted.hosts.display().to_string();
        record.resolv_conf_path = mounted.resolv_conf.display().to_string();
        let env: Vec<String> = record.env.iter().chain(&record.link_env).cloned().collect();
        let files = shared_files.map_or(Files::Own(&mounted), Files::Shared);
        let started = sandbox::spawn(&Launch {
            netns,
            uts,
            hostname,
            files,
            pid_file: &container_files.pid(),
            log: &log,
            command: &record.command,
            env: &env,
        })
        .map_err(|error| {
            Error::FailedPrecondition(format!("cannot start container {}: {error}", record.name))
        })?;

        record.state = RunState::Running { pid: started.pid, start_ticks: started.start_ticks };
        record.started_at = now();
        record.finished_at.clear();
        record.exit_code = 0;
        record.in_flight = None;
        let pid = started.pid;
        self.watch_exit(&record.id, pid, Some(started.child));
        let recorded = async {
            if record.shares_files() {
                return self.records.put_container(&record).await.map_err(Error::from);
            }
            // Files rewritten from here on reach the process by swapped mounts.
            let (stored, written) =
                tokio::join!(self.records.put_container(&record), self.put_files(&record, true));
            stored?;
            written.map(drop)
        };
        if let Err(error) = recorded.await {
            sandbox::signal(pid, libc::SIGKILL);
            return Err(error);
        }
        tracing::info!(container = %record.name, pid, "container started");
        Ok(record)
    }

    /// The network, UTS and mount namespaces of a running container another one joins
    /// (CNS-1).
    fn joinable(&self, target_id: &str) -> Result<(PathBuf, PathBuf, PathBuf)> {
        let target = self
            .records
            .container(target_id)?
            .ok_or_else(|| Error::NotFound(format!("No such container: {target_id}")))?;
        let Some(pid) = target.pid() else {
            return Err(Error::FailedPrecondition(format!(
                "cannot join network of a non running container: {target_id}"
            )));
        };
        let proc = PathBuf::from(format!("/proc/{pid}/ns"));
        Ok((proc.join("net"), proc.join("uts"), proc.join("mnt")))
    }

    /// Takes an address for attachment `index` and describes its interface.
    pub(super) async fn lease(&self, record: &ContainerRecord, index: usize) -> Result<Lease> {
        let attachment = &record.attachments[index];
        let network = self.records.networks.get(&attachment.network_id)?.ok_or_else(|| {
            Error::NotFound(format!("network {} not found", attachment.network_id))
        })?;
        let allocation = self.allocate(&record.id, attachment, &network.name).await?;
        let malformed = |what: &str| {
            Error::Backend(tonic::Status::internal(format!("ipam returned a malformed {what}")))
        };
        let address: Ipv4Addr = allocation.address.parse().map_err(|_| malformed("address"))?;
        let gateway: Ipv4Addr = allocation.gateway.parse().map_err(|_| malformed("gateway"))?;
        let mut ifname_owner = record.clone();
        ifname_owner.attachments.truncate(index);
        Ok(Lease {
            address,
            prefix_len: allocation.prefix_len as u8,
            gateway,
            mac: mac_for(address),
            ifname: ifname_owner.next_ifname(),
        })
    }

    #[tracing::instrument(name = "allocate address", skip_all, fields(container = container_id, network = network_name))]
    async fn allocate(
        &self,
        container_id: &str,
        attachment: &Attachment,
        network_name: &str,
    ) -> Result<ipam::Allocation> {
        let address = attachment
            .static_ip
            .or(attachment.lease.as_ref().map(|lease| lease.address))
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let result = retry(
            "allocate address",
            &self.backends.ipam,
            ipam::AllocateRequest {
                pool_id: attachment.network_id.clone(),
                owner: container_id.to_owned(),
                address: address.clone(),
            },
            |mut c, m| async move { c.allocate(m).await },
        )
        .await;
        result.map_err(|status| match status.code() {
            Code::ResourceExhausted => Error::Backend(tonic::Status::resource_exhausted(format!(
                "no available IPv4 addresses on this network's address pools: {network_name} ({})",
                attachment.network_id
            ))),
            Code::NotFound => {
                Error::NotFound(format!("network {} not found", attachment.network_id))
            }
            _ => Error::Backend(status),
        })
    }

    /// Creates (or confirms) the sandbox and one endpoint per leased attachment.
    pub(super) async fn plumb(&self, record: &ContainerRecord) -> Result<PathBuf> {
        let netns_path = self.ensure_sandbox(record.sandbox_id()).await?;
        self.ensure_endpoints(record).await?;
        Ok(netns_path)
    }

    /// Creates (or confirms) the network namespace `sandbox_id` and returns its path.
    #[tracing::instrument(name = "create sandbox", skip_all, fields(sandbox = sandbox_id))]
    pub(super) async fn ensure_sandbox(&self, sandbox_id: &str) -> Result<PathBuf> {
        let sandbox = retry(
            "create network namespace",
            &self.backends.bridge,
            bridge::EnsureSandboxRequest { id: sandbox_id.to_owned(), netns_path: String::new() },
            |mut c, m| async move { c.ensure_sandbox(m).await },
        )
        .await?;
        Ok(PathBuf::from(sandbox.netns_path))
    }

    /// Creates (or confirms) the veth pair of every attachment holding an address; the
    /// sandbox must exist.
    pub(super) async fn ensure_endpoints(&self, record: &ContainerRecord) -> Result<()> {
        for index in 0..record.attachments.len() {
            self.ensure_endpoint(record, index).await?;
        }
        Ok(())
    }

    /// Creates (or confirms) the veth pair of attachment `index`, if it holds an address.
    #[tracing::instrument(name = "create veth pair", skip_all, fields(container = %record.name, network = %record.attachments[index].network_id))]
    pub(super) async fn ensure_endpoint(
        &self,
        record: &ContainerRecord,
        index: usize,
    ) -> Result<()> {
        let attachment = &record.attachments[index];
        let Some(lease) = &attachment.lease else { return Ok(()) };
        retry(
            "create veth pair",
            &self.backends.bridge,
            bridge::EnsureEndpointRequest {
                id: endpoint_id(&record.id, &attachment.network_id),
                network_id: attachment.network_id.clone(),
                sandbox_id: record.sandbox_id().to_owned(),
                ifname: lease.ifname.clone(),
                address_cidr: format!("{}/{}", lease.address, lease.prefix_len),
                gateway: lease.gateway.to_string(),
                mac: lease.mac.clone(),
                mtu: 0,
                default_route: index == 0,
            },
            |mut c, m| async move { c.ensure_endpoint(m).await },
        )
        .await?;
        Ok(())
    }

    /// Deletes the sandbox (its veths go with it) and releases the addresses held on
    /// `networks`. Keeps going past failures, which reconciliation picks up later.
    #[tracing::instrument(name = "tear down", skip_all, fields(container = container_id))]
    pub(super) async fn tear_down(
        &self,
        container_id: &str,
        networks: &[String],
    ) -> Vec<tonic::Status> {
        let mut failures = Vec::new();
        for step in [self.unpublish(container_id).await, self.deregister_names(container_id).await]
        {
            if let Err(error) = step {
                failures.push(tonic::Status::from(error));
            }
        }
        let deleted = retry(
            "delete network namespace",
            &self.backends.bridge,
            bridge::DeleteSandboxRequest { id: container_id.to_owned() },
            |mut c, m| async move { c.delete_sandbox(m).await },
        )
        .await;
        failures.extend(deleted.err());
        for network_id in networks {
            let released = retry(
                "release address",
                &self.backends.ipam,
                ipam::ReleaseRequest {
                    pool_id: network_id.clone(),
                    owner: container_id.to_owned(),
                },
                |mut c, m| async move { c.release(m).await },
            )
            .await;
            match released {
                Err(status) if status.code() != Code::NotFound => failures.push(status),
                _ => {}
            }
        }
        for status in &failures {
            tracing::warn!(container = container_id, %status, "teardown step failed");
        }
        failures
    }

    /// Publishes the exit code of the process and handles an exit nobody asked for.
    pub(super) fn watch_exit(
        self: &Arc<Self>,
        id: &str,
        pid: u32,
        child: Option<tokio::process::Child>,
    ) {
        let (sender, receiver) = watch::channel(None);
        self.exits.lock().expect("exit map poisoned").insert(id.to_owned(), receiver);
        let gateway = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move {
            let code = match child {
                Some(mut child) => child.wait().await.map(exit_code).unwrap_or(-1),
                None => {
                    if let Err(error) = sandbox::wait_foreign(pid).await {
                        tracing::warn!(%error, pid, "cannot watch container process");
                    }
                    -1
                }
            };
            let _ = sender.send(Some(code));
            gateway.on_exit(&id, pid, code).await;
        });
    }

    async fn on_exit(&self, id: &str, pid: u32, code: i32) {
        let _guard = self.lock_container(id).await;
        let Ok(Some(record)) = self.records.container(id) else { return };
        if record.pid() != Some(pid) {
            return; // already stopped (or restarted) by an API call
        }
        tracing::info!(container = %record.name, pid, code, "container process exited");
        if let Err(error) = self.mark_exited(record, code).await {
            tracing::warn!(container = id, %error, "recording an exit failed");
        }
        self.exits.lock().expect("exit map poisoned").remove(id);
    }

    #[tracing::instrument(name = "stop container", skip_all, fields(container = reference))]
    pub async fn stop_container(&self, reference: &str, timeout: u32) -> Result<ContainerRecord> {
        let found = self.find_container(reference)?;
        let _guard = self.lock_container(&found.id).await;
        let record = self.reload(&found.id)?;
        self.stop_locked(record, timeout).await
    }

    /// SIGTERM, SIGKILL after `timeout` seconds, then the network teardown.
    pub(super) async fn stop_locked(
        &self,
        record: ContainerRecord,
        timeout: u32,
    ) -> Result<ContainerRecord> {
        let RunState::Running { pid, start_ticks } = record.state else { return Ok(record) };
        let exit = self.exits.lock().expect("exit map poisoned").get(&record.id).cloned();
        let mut code = None;
        if sandbox::is_alive(pid, start_ticks) {
            let wait = |seconds: u64| {
                let exit = exit.clone();
                async move {
                    let mut exit = exit?;
                    let waited = tokio::time::timeout(
                        Duration::from_secs(seconds),
                        exit.wait_for(Option::is_some),
                    );
                    waited.await.ok()?.ok().and_then(|code| *code)
                }
            };
            if timeout > 0 {
                sandbox::signal(pid, libc::SIGTERM);
                code = wait(u64::from(timeout)).await;
            }
            if code.is_none() {
                sandbox::signal(pid, libc::SIGKILL);
                code = wait(10).await;
            }
        }
        self.exits.lock().expect("exit map poisoned").remove(&record.id);
        let record = self.mark_exited(record, code.unwrap_or(-1)).await?;
        tracing::info!(container = %record.name, "container stopped");
        Ok(record)
    }

    /// Tears the network down and records the container as exited.
    pub(super) async fn mark_exited(
        &self,
        mut record: ContainerRecord,
        code: i32,
    ) -> Result<ContainerRecord> {
        let networks: Vec<String> =
            record.attachments.iter().map(|a| a.network_id.clone()).collect();
        let failures = if record.shares_namespace() {
            Vec::new()
        } else {
            self.tear_down(&record.id, &networks).await
        };
        for attachment in &mut record.attachments {
            attachment.lease = None;
        }
        record.port_bindings.clear();
        record.state = RunState::Exited;
        record.exit_code = code;
        record.finished_at = now();
        self.records.put_container(&record).await?;
        let mut failures = failures;
        if !matches!(record.mode, NetworkMode::Container(_))
            && let Err(error) = self.put_files(&record, false).await
        {
            failures.push(error.into());
        }
        match failures.into_iter().next() {
            Some(status) => Err(Error::Backend(status)),
            None => Ok(record),
        }
    }
}

/// Exit code as a shell reports it: 128 + signal for a killed process.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|signal| 128 + signal)).unwrap_or(-1)
}
