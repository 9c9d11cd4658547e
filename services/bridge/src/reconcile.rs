//! Bringing the kernel back to the records at start, since the records are the truth:
//! interfaces with a cnet alias that no record wants are removed; recorded bridges, owned
//! namespaces and endpoints that are missing or drifted are recreated. Only the agent's
//! own namespace is scanned for orphans, and nothing without our mark is ever touched.
//! A failure on one object is logged and does not stop the others.

use crate::{
    agent::{Agent, Result},
    domain::{Bridge, Endpoint, EndpointStatus, Link, naming::Owner},
    kernel::Kernel,
};

/// What reconcile did, for the start-up log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub orphans_removed: usize,
    pub recreated: usize,
    pub failed: usize,
}

/// Interfaces carrying a bridge or endpoint alias of ours that no record wants (under
/// that name).
pub fn orphans<'a>(links: &'a [Link], bridges: &[Bridge], endpoints: &[Endpoint]) -> Vec<&'a Link> {
    links
        .iter()
        .filter(|link| match link.alias.as_deref().and_then(Owner::from_alias) {
            None => false,
            Some(Owner::Bridge(id)) => !bridges.iter().any(|bridge| {
                bridge.network_id.as_str() == id && bridge.name.as_str() == link.name
            }),
            Some(Owner::Endpoint(id)) => !endpoints.iter().any(|endpoint| {
                endpoint.id.as_str() == id && endpoint.host_ifname.as_str() == link.name
            }),
        })
        .collect()
}

pub async fn reconcile<K: Kernel>(agent: &Agent<K>) -> Result<Summary> {
    let _guard = agent.lock().await;
    let bridges = agent.records.bridges()?;
    let sandboxes = agent.records.sandboxes()?;
    let endpoints = agent.records.endpoints();
    let links = agent.kernel.links().await?;
    let mut summary = Summary::default();
    let mut outcome = |result: Result<bool>, what: &str, id: &str| match result {
        Ok(true) => summary.recreated += 1,
        Ok(false) => {}
        Err(error) => {
            summary.failed += 1;
            tracing::error!(%error, id, "could not restore {what}");
        }
    };

    let mut removed = 0;
    for link in orphans(&links, &bridges, &endpoints) {
        match agent.kernel.delete_link(&link.name).await {
            Ok(()) => {
                removed += 1;
                tracing::info!(
                    iface = link.name,
                    alias = link.alias,
                    "removed an orphan interface"
                );
            }
            Err(error) => tracing::error!(%error, iface = link.name, "could not remove an orphan"),
        }
    }

    for bridge in &bridges {
        let existing = links.iter().find(|link| link.name == bridge.name.as_str());
        let result = async {
            if existing.is_some_and(|link| !link.is_bridge_of(bridge)) {
                return Err(crate::error::Error::AlreadyExists(format!(
                    "interface {:?} is held by something that is not ours",
                    bridge.name.as_str()
                )));
            }
            agent.kernel.ensure_bridge(bridge).await?;
            if existing.is_none() {
                tracing::info!(network = %bridge.network_id, iface = %bridge.name, "recreated bridge");
            }
            Ok(existing.is_none())
        };
        outcome(result.await, "bridge", bridge.network_id.as_str());
    }

    for sandbox in &sandboxes {
        let result = async {
            if agent.kernel.netns_alive(&sandbox.netns_path).await {
                return Ok(false);
            }
            if !sandbox.owned {
                return Err(crate::error::Error::FailedPrecondition(format!(
                    "namespace {} is gone and is not ours to recreate",
                    sandbox.netns_path.display()
                )));
            }
            agent.kernel.create_netns(&sandbox.netns_path).await?;
            tracing::info!(sandbox = %sandbox.id, path = %sandbox.netns_path.display(), "recreated namespace");
            Ok(true)
        };
        outcome(result.await, "sandbox", sandbox.id.as_str());
    }

    for endpoint in &endpoints {
        let result = async {
            let bridge = bridges.iter().find(|bridge| bridge.network_id == endpoint.network_id);
            let sandbox = sandboxes.iter().find(|sandbox| sandbox.id == endpoint.sandbox_id);
            let (Some(bridge), Some(sandbox)) = (bridge, sandbox) else {
                return Err(crate::error::Error::FailedPrecondition(
                    "its network or sandbox has no record".into(),
                ));
            };
            let status = agent.endpoint_status(endpoint, bridge, sandbox).await?;
            if status == EndpointStatus::Complete {
                return Ok(false);
            }
            tracing::info!(endpoint = %endpoint.id, ?status, "recreating endpoint");
            agent.apply_endpoint(endpoint, bridge, sandbox, status).await?;
            Ok(true)
        };
        outcome(result.await, "endpoint", endpoint.id.as_str());
    }
    summary.orphans_removed = removed;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tests::{Setup, bridge, endpoint, network_and_sandbox};

    #[tokio::test]
    async fn missing_objects_are_recreated() {
        let setup = Setup::new();
        network_and_sandbox(&setup).await;
        let made = setup.agent.ensure_endpoint(endpoint("c1", "172.16.1.0/16")).await.unwrap();
        let netns = setup.dir.path().join("netns/c1");
        // As after a reboot: the records are there, the kernel objects are not.
        let Setup { dir, agent } = setup;
        drop(agent);
        let restarted = Setup { agent: Setup::open(dir.path()), dir };
        let summary = reconcile(&restarted.agent).await.unwrap();
        assert_eq!(summary, Summary { orphans_removed: 0, recreated: 3, failed: 0 });
        assert_eq!(
            restarted.fake().take_calls(),
            [
                "ensure_bridge br-n1".to_owned(),
                format!("create_netns {}", netns.display()),
                format!("create_endpoint {}", made.host_ifname),
            ]
        );
        let again = reconcile(&restarted.agent).await.unwrap();
        assert_eq!(again, Summary::default());
        assert_eq!(restarted.fake().take_calls(), ["ensure_bridge br-n1"]);
    }

    #[tokio::test]
    async fn orphans_go_and_foreign_interfaces_stay() {
        let setup = Setup::new();
        let fake = setup.fake();
        fake.add_link("veth1234567", Some("veth"), Some("cnet:endpoint:gone"));
        fake.add_link("br-old", Some("bridge"), Some("cnet:bridge:gone"));
        fake.add_link("docker0", Some("bridge"), None);
        fake.add_link("veth7654321", Some("veth"), None);
        fake.add_link("nat0", Some("bridge"), Some("cnet:nat:other-service"));
        let summary = reconcile(&setup.agent).await.unwrap();
        assert_eq!(summary.orphans_removed, 2);
        assert_eq!(fake.take_calls(), ["delete_link veth1234567", "delete_link br-old"]);
        assert_eq!(fake.link_names(), ["lo", "docker0", "veth7654321", "nat0"]);
    }

    #[tokio::test]
    async fn a_recorded_name_held_by_a_foreign_interface_is_left_alone() {
        let setup = Setup::new();
        setup.agent.ensure_bridge(bridge("n1", "br-n1")).await.unwrap();
        setup.fake().remove_link("br-n1");
        setup.fake().add_link("br-n1", Some("bridge"), None);
        let path = setup.dir.path().join("external");
        setup.fake().add_namespace(&path);
        setup.agent.ensure_sandbox("c2".parse().unwrap(), Some(path.clone())).await.unwrap();
        setup.fake().take_calls();
        // The external namespace's owner went away; it is not ours to recreate.
        setup.agent.kernel().delete_netns(&path).await.unwrap();
        setup.fake().take_calls();
        let summary = reconcile(&setup.agent).await.unwrap();
        assert_eq!(summary, Summary { orphans_removed: 0, recreated: 0, failed: 2 });
        assert_eq!(setup.fake().take_calls(), Vec::<String>::new());
        assert_eq!(setup.fake().link("br-n1").unwrap().alias, None);
    }

    #[test]
    fn orphans_are_judged_by_alias_and_name() {
        let link = |name: &str, alias: Option<&str>| Link {
            index: 1,
            name: name.into(),
            kind: Some("veth".into()),
            alias: alias.map(str::to_owned),
            mac: None,
            master: None,
            mtu: 1500,
            up: true,
        };
        let bridges = [bridge("n1", "br-n1")];
        let links = [
            link("br-n1", Some("cnet:bridge:n1")),
            link("br-renamed", Some("cnet:bridge:n1")),
            link("br-n2", Some("cnet:bridge:n2")),
            link("eth0", None),
            link("x", Some("cnet:something-else")),
        ];
        let names: Vec<&str> =
            orphans(&links, &bridges, &[]).iter().map(|link| link.name.as_str()).collect();
        assert_eq!(names, ["br-renamed", "br-n2"]);
    }
}
