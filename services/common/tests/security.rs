//! Who may talk to a service (issue #7), checked as an operator would: a TCP listener with
//! mutual TLS answers a client whose certificate the CA signed and refuses one without a
//! certificate or with a stranger's; TCP with neither TLS nor `insecure` does not start;
//! the Unix socket gets the configured group; an unknown group is a config error.
//!
//! Certificates are made here with rcgen; all traffic stays on 127.0.0.1.

use std::{
    net::SocketAddr,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;
use cnet_common::{
    client,
    config::{self, ClientTlsFiles, CommonArgs, ServerConfig, ServerTlsFiles, SocketGroup},
    server::{self, Listeners, Standard},
    tls,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// A CA and the PEM files it issued, in a temp dir.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues `<name>.pem` and `<name>-key.pem` (key mode 0600); returns their paths.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) =
            (self.dir.join(format!("{name}.pem")), self.dir.join(format!("{name}-key.pem")));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert_path, key_path)
    }
}

fn server_config(dir: &Path) -> ServerConfig {
    ServerConfig {
        runtime_dir: dir.join("run"),
        state_dir: dir.join("state"),
        ..ServerConfig::default()
    }
}

/// Serves health (SERVING) on `config`'s listeners; returns the TCP address.
async fn serve(service: &str, config: ServerConfig) -> SocketAddr {
    let listeners = Listeners::bind(service, &config).await.expect("bind");
    let address = listeners.tcp_addr().expect("a TCP listener");
    let (health, routes) = Standard::new().routes();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    tokio::spawn(async move {
        server::serve(listeners, routes, &config, std::future::pending()).await.expect("serve");
    });
    address
}

/// The health answer through `channel`, or the error's text.
async fn health(channel: tonic::transport::Channel) -> Result<i32, String> {
    let request = HealthCheckRequest { service: String::new() };
    let mut client = HealthClient::new(channel);
    let call = client.check(request);
    match tokio::time::timeout(Duration::from_secs(10), call).await {
        Ok(Ok(response)) => Ok(response.into_inner().status),
        Ok(Err(status)) => Err(format!("{status:?}")),
        Err(_) => Err("timed out".into()),
    }
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_the_ca_signed_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let (server_cert, server_key) =
        pki.issue("server", &["127.0.0.1", "localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = pki.issue("admin", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = Pki::new(dir.path(), "stranger");
    let (stranger_cert, stranger_key) =
        stranger.issue("mallory", &[], ExtendedKeyUsagePurpose::ClientAuth);

    let mut config = server_config(dir.path());
    config.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    config.tls = Some(ServerTlsFiles { cert: server_cert, key: server_key, client_ca: pki.ca() });
    config.validate().expect("TLS config is valid");
    let address = serve("mtls", config).await;
    let target = format!("https://{address}");
    let client = |ca: PathBuf, identity: Option<(&PathBuf, &PathBuf)>| {
        let files = ClientTlsFiles {
            ca,
            cert: identity.map(|(cert, _)| cert.clone()),
            key: identity.map(|(_, key)| key.clone()),
            server_name: None,
        };
        let tls = tls::client_config(&files).expect("client TLS files");
        client::channel_with(&target, Some(&tls)).expect("channel")
    };

    // The CA signed this client's certificate: served.
    let signed = client(pki.ca(), Some((&client_cert, &client_key)));
    assert_eq!(health(signed).await, Ok(ServingStatus::Serving as i32));
    // `tls://` is the same as `https://`.
    let files = ClientTlsFiles {
        ca: pki.ca(),
        cert: Some(client_cert.clone()),
        key: Some(client_key.clone()),
        server_name: None,
    };
    let tls = tls::client_config(&files).unwrap();
    let via_tls_scheme = client::channel_with(&format!("tls://{address}"), Some(&tls)).unwrap();
    assert_eq!(health(via_tls_scheme).await, Ok(ServingStatus::Serving as i32));

    // No client certificate: refused.
    let anonymous = health(client(pki.ca(), None)).await;
    assert!(
        anonymous.as_ref().is_err_and(|e| e.contains("CertificateRequired")),
        "a client without a certificate was served: {anonymous:?}"
    );
    // A certificate from another CA: refused.
    let foreign = health(client(pki.ca(), Some((&stranger_cert, &stranger_key)))).await;
    assert!(
        foreign.as_ref().is_err_and(|e| e.contains("UnknownCA")),
        "a stranger's certificate was accepted: {foreign:?}"
    );
    // Plaintext to the TLS port: refused.
    let plain = client::channel(&format!("tcp://{address}")).unwrap();
    let plain = health(plain).await;
    assert!(plain.is_err(), "plaintext was served on the TLS port: {plain:?}");
    // The client does not trust a server its CA did not sign.
    let distrustful = health(client(stranger.ca(), Some((&client_cert, &client_key)))).await;
    assert!(
        distrustful.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "the client trusted an unknown server: {distrustful:?}"
    );
}

#[tokio::test]
async fn tcp_without_tls_or_insecure_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    let error = config.validate().unwrap_err();
    assert!(
        error.contains("listen_tcp = 127.0.0.1:0 needs TLS with client certificates")
            && error.contains("insecure"),
        "{error}"
    );
    // Listeners::bind refuses it too, before binding anything.
    let error = Listeners::bind("plain", &config).await.err().expect("refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("needs TLS"), "{error}");
    assert!(!config.socket_path("plain").exists(), "nothing is bound");
}

#[tokio::test]
async fn insecure_is_an_explicit_opt_in_for_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    config.insecure = true;
    config.validate().expect("insecure is allowed when asked for");
    let address = serve("insecure", config).await;
    let channel = client::channel(&format!("tcp://{address}")).unwrap();
    assert_eq!(health(channel).await, Ok(ServingStatus::Serving as i32));
}

#[test]
fn tls_and_insecure_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let (cert, key) = pki.issue("server", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let mut config = server_config(dir.path());
    config.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    config.insecure = true;
    config.tls = Some(ServerTlsFiles { cert, key, client_ca: pki.ca() });
    let error = config.validate().unwrap_err();
    assert!(error.contains("choose one"), "{error}");
}

#[test]
fn missing_or_bad_tls_files_are_config_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster");
    let (cert, key) = pki.issue("server", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let mut config = server_config(dir.path());
    config.listen_tcp = Some("127.0.0.1:0".parse().unwrap());
    let missing = dir.path().join("nope.pem");
    config.tls =
        Some(ServerTlsFiles { cert: cert.clone(), key: missing.clone(), client_ca: pki.ca() });
    let error = config.validate().unwrap_err();
    assert!(error.contains(&format!("read {}", missing.display())), "{error}");
    // A certificate where the key should be.
    config.tls =
        Some(ServerTlsFiles { cert: cert.clone(), key: cert.clone(), client_ca: pki.ca() });
    let error = config.validate().unwrap_err();
    assert!(error.contains("no PEM private key"), "{error}");
    // A key where the CA should be.
    config.tls = Some(ServerTlsFiles { cert, key: key.clone(), client_ca: key });
    let error = config.validate().unwrap_err();
    assert!(error.contains("client_ca") && error.contains("no PEM certificate"), "{error}");
}

/// A group that exists on Debian and that this process may give its files: `nogroup`
/// as root, else the process's own group.
fn a_group() -> (String, u32) {
    if nix::unistd::geteuid().is_root() {
        let group = nix::unistd::Group::from_name("nogroup").unwrap().expect("nogroup exists");
        ("nogroup".into(), group.gid.as_raw())
    } else {
        let gid = nix::unistd::getegid();
        let group = nix::unistd::Group::from_gid(gid).unwrap().expect("own group has a name");
        (group.name, gid.as_raw())
    }
}

#[tokio::test]
async fn the_socket_gets_the_configured_group_and_mode_0660() {
    let (name, gid) = a_group();
    for group in
        [SocketGroup::Name(name.clone()), SocketGroup::Gid(gid), SocketGroup::Name(gid.to_string())]
    {
        let dir = tempfile::tempdir().unwrap();
        let mut config = server_config(dir.path());
        config.socket_group = Some(group.clone());
        let _listeners = Listeners::bind("grouped", &config).await.expect("bind");
        let meta = std::fs::metadata(config.socket_path("grouped")).unwrap();
        assert_eq!(meta.gid(), gid, "{group:?}");
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw(), "owned by the service's user");
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    }
}

#[tokio::test]
async fn an_unknown_socket_group_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.socket_group = Some(SocketGroup::Name("cnet-no-such-group".into()));
    let error = config.validate().unwrap_err();
    assert!(error.contains("socket_group \"cnet-no-such-group\": no such group"), "{error}");
    assert!(Listeners::bind("grouped", &config).await.is_err());
    assert!(!config.socket_path("grouped").exists(), "nothing is bound");
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TestConfig {
    server: ServerConfig,
}

impl config::ServiceConfig for TestConfig {
    fn server(&self) -> &ServerConfig {
        &self.server
    }
}

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

#[test]
fn flags_file_and_env_set_who_may_talk() {
    let dir = tempfile::tempdir().unwrap();
    // --listen-tcp alone is refused; with --insecure it is allowed.
    let args = Args::try_parse_from(["svc", "--listen-tcp", "127.0.0.1:7400"]).unwrap();
    let loaded: TestConfig = config::load("whotest", &args.common).unwrap();
    assert_eq!(loaded.server.listen_tcp, Some("127.0.0.1:7400".parse().unwrap()));
    assert!(loaded.server.validate().is_err());
    let args =
        Args::try_parse_from(["svc", "--listen-tcp", "127.0.0.1:7400", "--insecure"]).unwrap();
    let loaded: TestConfig = config::load("whotest", &args.common).unwrap();
    assert!(loaded.server.insecure);
    loaded.server.validate().unwrap();
    // No TCP flag at all leaves the config alone.
    let args = Args::try_parse_from(["svc"]).unwrap();
    assert!(args.common.listen_tcp.is_none());

    // The same keys from a file, with a numeric group and a [server.tls] table.
    let file = dir.path().join("svc.toml");
    std::fs::write(
        &file,
        "[server]\nsocket_group = 0\nlisten_tcp = \"127.0.0.1:7400\"\n\
         [server.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nclient_ca = \"/ca.pem\"\n\
         [server.client_tls]\nca = \"/ca.pem\"\n",
    )
    .unwrap();
    let args = Args::try_parse_from(["svc", "--config", file.to_str().unwrap()]).unwrap();
    let loaded: TestConfig = config::load("whotest", &args.common).unwrap();
    assert_eq!(loaded.server.socket_group, Some(SocketGroup::Gid(0)));
    assert_eq!(loaded.server.tls.as_ref().unwrap().client_ca, PathBuf::from("/ca.pem"));
    assert_eq!(loaded.server.client_tls.as_ref().unwrap().ca, PathBuf::from("/ca.pem"));
    // An incomplete [server.tls] is refused by the loader (exit 64 in a service).
    std::fs::write(&file, "[server.tls]\ncert = \"/c.pem\"\n").unwrap();
    let error = config::load::<TestConfig>("whotest", &args.common).unwrap_err();
    assert!(error.to_string().contains("key"), "{error}");
}
