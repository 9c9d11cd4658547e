//! The binary's error contract without a cluster: `Error: <message>` on stderr, exit 1,
//! or 125 for `run`/`create`, and a hint to start cnet when the gateway is unreachable.

use std::process::{Command, Output};

fn cnet(runtime_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnet"))
        .env_remove("CNET_HOST")
        .arg("--runtime-dir")
        .arg(runtime_dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn unreachable_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let hint = format!(
        "Error: cannot connect to the cnet gateway at unix://{}/gateway.sock: is cnet \
         running? (start it with `cnet up -d`)\n",
        dir.path().display()
    );
    for (args, code) in [
        (&["network", "ls"][..], 1),
        (&["ps", "-a"], 1),
        (&["run", "-d", "--name", "x"], 125),
        (&["create"], 125),
    ] {
        let output = cnet(dir.path(), args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), hint, "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn malformed_ip_fails_before_contacting_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let output = cnet(dir.path(), &["run", "-d", "--ip", "300.1.1.1"]);
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "Error: invalid IPv4 address: 300.1.1.1\n");
}
