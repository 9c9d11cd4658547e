//! The real [`Kernel`]: rtnetlink on a long-lived connection in the agent's namespace,
//! plus a connection into the sandbox being worked on (see [`netns`] and [`Inside`]).

use std::{
    fs::File,
    io,
    net::{IpAddr, Ipv4Addr},
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressMessage},
    link::{
        BridgeStpState, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
        LinkMessage,
    },
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol},
};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::{Kernel, KernelError, Result, netns};
use crate::domain::{
    Bridge, Endpoint, EndpointObservation, HostPrefix, IfName, Link, Mac, PeerObservation,
};

pub struct Netlink {
    handle: Handle,
    inside: Mutex<Option<Inside>>,
}

/// The connection into the sandbox entered last, kept for the next call: an attach
/// enters one sandbox two or three times in a row (loopback up, look, configure), and
/// each new connection costs a thread that enters the namespace. It is dropped when that
/// sandbox is deleted (a socket inside keeps the namespace alive), replaced by the next
/// sandbox's, and checked against the namespace's identity, so a namespace made anew at
/// the same path is never confused with the old one.
struct Inside {
    path: PathBuf,
    namespace: (u64, u64),
    handle: Handle,
}

/// (device, inode) of the namespace file at `path`: the namespace's identity.
fn namespace_id(path: &Path) -> io::Result<(u64, u64)> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}

impl Netlink {
    /// Opens a connection in the calling thread's namespace, which becomes the agent's
    /// namespace. Must be called inside a tokio runtime.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|error| KernelError::new("open a netlink socket", error))?;
        tokio::spawn(connection);
        Ok(Self { handle, inside: Mutex::new(None) })
    }

    /// A connection that works inside the namespace at `path`.
    async fn enter(&self, path: &Path) -> io::Result<Handle> {
        let namespace = namespace_id(path)?;
        if let Some(inside) = &*self.inside.lock().expect("not poisoned")
            && inside.path == path
            && inside.namespace == namespace
        {
            return Ok(inside.handle.clone());
        }
        let handle = netns::connect(path).await?;
        let inside = Inside { path: path.to_owned(), namespace, handle: handle.clone() };
        *self.inside.lock().expect("not poisoned") = Some(inside);
        Ok(handle)
    }

    /// Drops the kept connection if it is into `path`.
    fn leave(&self, path: &Path) {
        let mut inside = self.inside.lock().expect("not poisoned");
        if inside.as_ref().is_some_and(|inside| inside.path == path) {
            *inside = None;
        }
    }

    async fn settle_bridge(&self, bridge: &Bridge, index: u32) -> Result<()> {
        let name = bridge.name.as_str();
        let op = |what: &str| format!("bridge {name:?}: {what}");
        let links = self.handle.link();
        let alias = LinkUnspec::new_with_index(index).alias(bridge.alias()).mtu(bridge.mtu.get());
        links.set(alias.build()).execute().await.map_err(nl(op("set alias and mtu")))?;
        let stp_off = LinkMessageBuilder::<LinkBridge>::new_with_info_kind(InfoKind::Bridge)
            .index(index)
            .stp_state(BridgeStpState::Disabled);
        links.change(stp_off.build()).execute().await.map_err(nl(op("turn STP off")))?;
        // The bridge is ours alone, so any other IPv4 address on it is drift to undo.
        let addresses = ipv4_addresses(&self.handle, Some(index)).await?;
        for (address, message) in &addresses {
            if *address != bridge.gateway {
                let request = self.handle.address().del(message.clone());
                request.execute().await.map_err(nl(op(&format!("remove address {address}"))))?;
            }
        }
        if !addresses.iter().any(|(address, _)| *address == bridge.gateway) {
            let gateway = bridge.gateway;
            let request =
                self.handle.address().add(index, IpAddr::V4(gateway.addr()), gateway.prefix_len());
            request.execute().await.map_err(nl(op(&format!("add address {gateway}"))))?;
        }
        let up = LinkUnspec::new_with_index(index).up().build();
        links.set(up).execute().await.map_err(nl(op("set up")))
    }

    /// Everything after the veth pair exists; the caller deletes the pair on failure.
    async fn configure_endpoint(&self, endpoint: &Endpoint, netns_path: &Path) -> Result<()> {
        let id = endpoint.id.as_str();
        let op = |what: &str| format!("endpoint {id:?}: {what}");
        let host_end = LinkUnspec::new_with_name(endpoint.host_ifname.as_str());
        let request = self.handle.link().set(host_end.alias(endpoint.alias()).up().build());
        request.execute().await.map_err(nl(op("mark and set up the host end")))?;

        let inside = self
            .enter(netns_path)
            .await
            .map_err(|error| KernelError::new(op("enter sandbox"), error))?;
        let index = index_of(&inside, endpoint.ifname.as_str()).await?;
        let address = endpoint.address;
        let add = inside.address().add(index, IpAddr::V4(address.addr()), address.prefix_len());
        add.execute().await.map_err(nl(op(&format!("add address {address}"))))?;
        let peer = LinkUnspec::new_with_index(index).alias(endpoint.alias()).up();
        inside.link().set(peer.build()).execute().await.map_err(nl(op("set container end up")))?;
        if let (true, Some(gateway)) = (endpoint.default_route, endpoint.gateway) {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .protocol(RouteProtocol::Boot)
                .build();
            let add = inside.route().add(route);
            add.execute().await.map_err(nl(op(&format!("add default route via {gateway}"))))?;
        }
        Ok(())
    }
}

impl Kernel for Netlink {
    async fn links(&self) -> Result<Vec<Link>> {
        dump_links(&self.handle).await
    }

    async fn link(&self, name: &str) -> Result<Option<Link>> {
        find_link(&self.handle, name).await
    }

    async fn ensure_bridge(&self, bridge: &Bridge) -> Result<u32> {
        let name = bridge.name.as_str();
        let index = match find_link(&self.handle, name).await? {
            Some(link) => link.index,
            None => {
                // The marker MAC goes into the creating request itself; see naming.rs.
                let create = LinkMessageBuilder::<LinkBridge>::new(name)
                    .mtu(bridge.mtu.get())
                    .address(bridge.marker_mac().octets().to_vec())
                    .stp_state(BridgeStpState::Disabled);
                let request = self.handle.link().add(create.build());
                request.execute().await.map_err(nl(format!("create bridge {name:?}")))?;
                index_of(&self.handle, name).await?
            }
        };
        self.settle_bridge(bridge, index).await?;
        Ok(index)
    }

    async fn delete_link(&self, name: &str) -> Result<()> {
        let Some(link) = find_link(&self.handle, name).await? else {
            return Ok(());
        };
        match self.handle.link().del(link.index).execute().await {
            Err(error) if errno(&error) == Some(libc::ENODEV) => Ok(()),
            result => result.map_err(nl(format!("delete interface {name:?}"))),
        }
    }

    async fn netns_alive(&self, path: &Path) -> bool {
        netns::is_netns(path)
    }

    async fn create_netns(&self, path: &Path) -> Result<()> {
        let op = || format!("create namespace {}", path.display());
        netns::create(path).await.map_err(|error| KernelError::new(op(), error))?;
        let loopback_up = async {
            let inside = self.enter(path).await.map_err(|error| KernelError::new(op(), error))?;
            let index = index_of(&inside, "lo").await?;
            let up = LinkUnspec::new_with_index(index).up().build();
            inside.link().set(up).execute().await.map_err(nl(format!("{}: set lo up", op())))
        };
        if let Err(error) = loopback_up.await {
            self.leave(path);
            let _ = netns::remove(path);
            return Err(error);
        }
        Ok(())
    }

    async fn delete_netns(&self, path: &Path) -> Result<()> {
        self.leave(path);
        netns::remove(path).map_err(|error| {
            KernelError::new(format!("delete namespace {}", path.display()), error)
        })
    }

    async fn observe_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> Result<EndpointObservation> {
        let host = find_link(&self.handle, endpoint.host_ifname.as_str()).await?;
        let bridge_index = find_link(&self.handle, bridge.as_str()).await?.map(|link| link.index);
        let mut peer = None;
        if netns::is_netns(netns) {
            let inside = self.enter(netns).await.map_err(|error| {
                KernelError::new(format!("enter namespace {}", netns.display()), error)
            })?;
            if let Some(link) = find_link(&inside, endpoint.ifname.as_str()).await? {
                let addresses = ipv4_addresses(&inside, Some(link.index)).await?;
                peer = Some(PeerObservation {
                    addresses: addresses.into_iter().map(|(address, _)| address).collect(),
                    default_gateways: default_gateways(&inside, link.index).await?,
                    link,
                });
            }
        }
        Ok(EndpointObservation { host, bridge_index, peer })
    }

    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        bridge: &IfName,
        netns: &Path,
    ) -> Result<()> {
        let id = endpoint.id.as_str();
        let host = endpoint.host_ifname.as_str();
        let bridge_index = find_link(&self.handle, bridge.as_str()).await?.map(|link| link.index);
        let Some(bridge_index) = bridge_index else {
            let missing = io::Error::new(io::ErrorKind::NotFound, "no such interface");
            return Err(KernelError::new(format!("endpoint {id:?}: bridge {bridge}"), missing));
        };
        let netns_file = File::open(netns).map_err(|error| {
            KernelError::new(format!("endpoint {id:?}: open {}", netns.display()), error)
        })?;
        // One request makes both ends: the container end is born inside the sandbox with
        // its final name, MAC and MTU (moving it there afterwards costs the kernel some
        // 15 ms per pair, see BENCHMARKS.md), the host end on the bridge with the marker
        // MAC that says it is ours (naming.rs).
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(endpoint.ifname.to_string())
            .setns_by_fd(netns_file.as_raw_fd())
            .address(endpoint.mac.octets().to_vec())
            .mtu(endpoint.mtu.get())
            .build();
        let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_owned())
            .mtu(endpoint.mtu.get())
            .address(endpoint.host_marker_mac().octets().to_vec())
            .controller(bridge_index)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        let request = self.handle.link().add(veth.build());
        request.execute().await.map_err(nl(format!("endpoint {id:?}: create veth {host:?}")))?;
        let configured = self.configure_endpoint(endpoint, netns).await;
        if configured.is_err() {
            // The connection may be what failed: the next call makes a new one.
            self.leave(netns);
            // Deleting one end deletes both, wherever the other end has got to.
            if let Err(error) = self.delete_link(host).await {
                tracing::warn!(%error, iface = host, "could not undo a half-made endpoint");
            }
        }
        configured
    }

    async fn host_prefixes(&self) -> Result<Vec<HostPrefix>> {
        let mut prefixes: Vec<HostPrefix> = ipv4_addresses(&self.handle, None)
            .await?
            .into_iter()
            .map(|(address, message)| HostPrefix {
                prefix: address.trunc(),
                ifindex: Some(message.header.index),
            })
            .collect();
        for route in ipv4_routes(&self.handle).await? {
            let length = route.header.destination_prefix_length;
            if table(&route) != u32::from(RouteHeader::RT_TABLE_MAIN) || length == 0 {
                continue;
            }
            let destination = route.attributes.iter().find_map(|attribute| match attribute {
                RouteAttribute::Destination(RouteAddress::Inet(address)) => Some(*address),
                _ => None,
            });
            if let Some(prefix) = destination.and_then(|d| Ipv4Net::new(d, length).ok()) {
                prefixes
                    .push(HostPrefix { prefix: prefix.trunc(), ifindex: output_interface(&route) });
            }
        }
        Ok(prefixes)
    }
}

fn errno(error: &rtnetlink::Error) -> Option<i32> {
    match error {
        rtnetlink::Error::NetlinkError(message) => Some(message.raw_code().abs()),
        _ => None,
    }
}

/// Wraps an rtnetlink error with what was being done.
fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> KernelError {
    let op = op.into();
    move |error| {
        let source = match error {
            rtnetlink::Error::NetlinkError(message) => message.to_io(),
            other => io::Error::other(other.to_string()),
        };
        KernelError::new(op, source)
    }
}

fn to_link(message: LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: None,
        alias: None,
        mac: None,
        master: None,
        mtu: 0,
        up: message.header.flags.contains(LinkFlags::Up),
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => link.alias = Some(alias),
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac::from_bytes);
            }
            LinkAttribute::Controller(index) => link.master = Some(index),
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

async fn dump_links(handle: &Handle) -> Result<Vec<Link>> {
    let messages: Vec<LinkMessage> =
        handle.link().get().execute().try_collect().await.map_err(nl("list interfaces"))?;
    Ok(messages.into_iter().map(to_link).collect())
}

async fn find_link(handle: &Handle, name: &str) -> Result<Option<Link>> {
    let mut replies = handle.link().get().match_name(name).execute();
    match replies.try_next().await {
        Ok(message) => Ok(message.map(to_link)),
        Err(error) if errno(&error) == Some(libc::ENODEV) => Ok(None),
        Err(error) => Err(nl(format!("look up interface {name:?}"))(error)),
    }
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32> {
    match find_link(handle, name).await? {
        Some(link) => Ok(link.index),
        None => Err(KernelError::new(
            format!("look up interface {name:?}"),
            io::Error::new(io::ErrorKind::NotFound, "no such interface"),
        )),
    }
}

async fn ipv4_addresses(
    handle: &Handle,
    index: Option<u32>,
) -> Result<Vec<(Ipv4Net, AddressMessage)>> {
    let mut request = handle.address().get();
    if let Some(index) = index {
        request = request.set_link_index_filter(index);
    }
    let messages: Vec<AddressMessage> =
        request.execute().try_collect().await.map_err(nl("list addresses"))?;
    Ok(messages
        .into_iter()
        .filter(|message| message.header.family == AddressFamily::Inet)
        .filter_map(|message| {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on
            // point-to-point links.
            let local = message.attributes.iter().find_map(|attribute| match attribute {
                AddressAttribute::Local(IpAddr::V4(address)) => Some(*address),
                _ => None,
            });
            let address = local.or_else(|| {
                message.attributes.iter().find_map(|attribute| match attribute {
                    AddressAttribute::Address(IpAddr::V4(address)) => Some(*address),
                    _ => None,
                })
            })?;
            let net = Ipv4Net::new(address, message.header.prefix_len).ok()?;
            Some((net, message))
        })
        .collect())
}

async fn ipv4_routes(handle: &Handle) -> Result<Vec<RouteMessage>> {
    let dump = handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build());
    dump.execute().try_collect().await.map_err(nl("list routes"))
}

fn table(route: &RouteMessage) -> u32 {
    let table = route.attributes.iter().find_map(|attribute| match attribute {
        RouteAttribute::Table(table) => Some(*table),
        _ => None,
    });
    table.unwrap_or(u32::from(route.header.table))
}

fn output_interface(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|attribute| match attribute {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    })
}

async fn default_gateways(handle: &Handle, index: u32) -> Result<Vec<Ipv4Addr>> {
    Ok(ipv4_routes(handle)
        .await?
        .iter()
        .filter(|route| route.header.destination_prefix_length == 0)
        .filter(|route| table(route) == u32::from(RouteHeader::RT_TABLE_MAIN))
        .filter(|route| output_interface(route) == Some(index))
        .filter_map(|route| {
            route.attributes.iter().find_map(|attribute| match attribute {
                RouteAttribute::Gateway(RouteAddress::Inet(gateway)) => Some(*gateway),
                _ => None,
            })
        })
        .collect())
}
