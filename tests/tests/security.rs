//! Who may talk to cnet (issue #7), end to end with the real binaries: a cluster whose
//! gateway serves TCP with mutual TLS and reaches ipam over mutual TLS too, driven by the
//! `cnet` CLI with Docker's `--tlscacert/--tlscert/--tlskey`; services that refuse to
//! start (exit 64) on TCP without TLS or an unknown socket group; `--insecure` as the
//! explicit, logged opt-in. Certificates are made with `openssl` as SECURITY.md shows;
//! TCP stays on the loopback of the cluster's own network namespace.

use std::{os::unix::fs::MetadataExt, path::Path, process::Command};

use cnet_tests::{Cluster, bin_dir};

/// The recipe of SECURITY.md: a CA, a server certificate for 127.0.0.1 and a client one.
const MAKE_PKI: &str = r#"set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -keyout ca-key.pem -out ca.pem -subj "/CN=cnet CA"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server-key.pem -out server.csr -subj "/CN=cnet"
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
    -extfile server.ext -out server.pem
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout client-key.pem -out client.csr -subj "/CN=admin"
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
    -extfile client.ext -out client.pem
chmod 600 ca-key.pem server-key.pem client-key.pem
"#;

fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let output = Command::new("sh").args(["-c", MAKE_PKI]).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "openssl: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn gateway_and_ipam_over_mutual_tls_with_the_cli() {
    let bare = Cluster::bare();
    let pki = bare.dir.path().join("pki");
    make_pki(&pki);
    let file = |name: &str| pki.join(name).display().to_string();
    let (ca, server, server_key) = (file("ca.pem"), file("server.pem"), file("server-key.pem"));
    let (client, client_key) = (file("client.pem"), file("client-key.pem"));
    let env = [
        // ipam serves TCP with mutual TLS; the gateway reaches it there.
        ("CNET_IPAM__SERVER__LISTEN_TCP", "127.0.0.1:7401"),
        ("CNET_IPAM__SERVER__TLS__CERT", server.as_str()),
        ("CNET_IPAM__SERVER__TLS__KEY", server_key.as_str()),
        ("CNET_IPAM__SERVER__TLS__CLIENT_CA", ca.as_str()),
        ("CNET_GATEWAY__IPAM", "https://127.0.0.1:7401"),
        ("CNET_GATEWAY__SERVER__CLIENT_TLS__CA", ca.as_str()),
        ("CNET_GATEWAY__SERVER__CLIENT_TLS__CERT", client.as_str()),
        ("CNET_GATEWAY__SERVER__CLIENT_TLS__KEY", client_key.as_str()),
        // The gateway serves the CLI over TCP with mutual TLS, and its socket's group.
        ("CNET_GATEWAY__SERVER__LISTEN_TCP", "127.0.0.1:7411"),
        ("CNET_GATEWAY__SERVER__TLS__CERT", server.as_str()),
        ("CNET_GATEWAY__SERVER__TLS__KEY", server_key.as_str()),
        ("CNET_GATEWAY__SERVER__TLS__CLIENT_CA", ca.as_str()),
        ("CNET_GATEWAY__SERVER__SOCKET_GROUP", "nogroup"),
    ];
    let cluster = bare.with_env(&env);
    cluster.up();

    let tls = ["--tlscacert", &ca, "--tlscert", &client, "--tlskey", &client_key];
    let https = ["-H", "https://127.0.0.1:7411"];
    // A network needs ipam, so this went CLI → gateway → ipam, both hops mutual TLS.
    let create =
        [&https[..], &tls[..], &["network", "create", "--subnet", "10.77.0.0/24", "tlsnet"]];
    cluster.cnet(&create.concat()).ok();
    // Docker's habit: -H tcp:// with the TLS flags is TLS too; the env variables work.
    let list =
        cluster.cnet(&[&["-H", "tcp://127.0.0.1:7411"][..], &tls[..], &["network", "ls"]].concat());
    assert!(list.ok().contains("tlsnet"));

    // No client certificate: the gateway refuses the connection, and the CLI says why
    // (its alert, or the connection it closed under the CLI's first write).
    let anonymous = cluster.cnet(&[&https[..], &["--tlscacert", &ca, "network", "ls"]].concat());
    let error = anonymous.err();
    assert!(
        error.contains("TLS with the cnet gateway at https://127.0.0.1:7411 failed")
            && (error.contains("CertificateRequired") || error.contains("client certificate")),
        "{error}"
    );
    // Plaintext to the TLS port is refused.
    cluster.cnet(&["-H", "tcp://127.0.0.1:7411", "network", "ls"]).err();
    // An https:// host without a CA is refused before dialling.
    let error = cluster.cnet(&[&https[..], &["network", "ls"]].concat()).err();
    assert!(error.contains("needs a CA certificate"), "{error}");

    // The Unix socket is 0660 and belongs to the configured group.
    let socket = std::fs::metadata(cluster.runtime_dir().join("gateway.sock")).unwrap();
    let nogroup = cluster.sh("getent group nogroup | cut -d: -f3").ok();
    assert_eq!(socket.gid().to_string(), nogroup.trim());
    assert_eq!(socket.mode() & 0o777, 0o660);
}

#[test]
fn services_refuse_to_start_when_nobody_should_talk_to_them() {
    let cluster = Cluster::bare();
    let ipam = bin_dir().join("cnet-ipam").display().to_string();

    // TCP with neither TLS nor an explicit insecure: exit 64 with the reason.
    let plain = cluster.sh(&format!("{ipam} --listen-tcp 127.0.0.1:7401"));
    assert_eq!(plain.code, 64, "{plain:?}");
    assert!(
        plain.stderr.contains("cnet-ipam: invalid configuration: listen_tcp = 127.0.0.1:7401 needs TLS with client certificates"),
        "{plain:?}"
    );
    // The same from the environment.
    let plain = cluster.sh(&format!("CNET_IPAM__SERVER__LISTEN_TCP=127.0.0.1:7401 {ipam}"));
    assert_eq!(plain.code, 64, "{plain:?}");

    // An unknown socket group: exit 64.
    let group = cluster.sh(&format!("CNET_IPAM__SERVER__SOCKET_GROUP=cnet-no-such-group {ipam}"));
    assert_eq!(group.code, 64, "{group:?}");
    assert!(
        group.stderr.contains("socket_group \"cnet-no-such-group\": no such group"),
        "{group:?}"
    );

    // Unreadable TLS files: exit 64 naming the file.
    let missing = cluster.sh(&format!(
        "CNET_IPAM__SERVER__TLS__CERT=/nonexistent/cert.pem CNET_IPAM__SERVER__TLS__KEY=/k \
         CNET_IPAM__SERVER__TLS__CLIENT_CA=/ca CNET_IPAM__SERVER__LISTEN_TCP=127.0.0.1:7401 {ipam}"
    ));
    assert_eq!(missing.code, 64, "{missing:?}");
    assert!(missing.stderr.contains("read /nonexistent/cert.pem"), "{missing:?}");

    // --insecure (or CNET_IPAM__SERVER__INSECURE=true) starts, with a warning in the log.
    for opt_in in ["--insecure", ""] {
        let env = if opt_in.is_empty() { "CNET_IPAM__SERVER__INSECURE=true" } else { "" };
        let run = cluster.sh(&format!(
            "{env} timeout 3 {ipam} --listen-tcp 127.0.0.1:7401 {opt_in} 2>&1; echo exit=$?"
        ));
        assert!(run.stdout.contains("exit=124"), "still running when timeout stopped it: {run:?}");
        assert!(
            run.stdout.contains("insecure: serving plaintext gRPC on TCP with no authentication"),
            "{run:?}"
        );
    }
}
