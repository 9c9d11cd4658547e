//! The deployment files stay valid: Debian's docker-compose accepts docker-compose.yml
//! and `systemd-analyze verify` accepts every unit (with stand-in binaries, since the
//! units point at /usr/local/bin where nothing is installed here).

use std::{path::Path, process::Command};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root")
}

#[test]
fn compose_file_is_valid() {
    let output = Command::new("docker-compose")
        .current_dir(repository())
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .output()
        .expect("run docker-compose (Debian package docker-compose)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(repository().join("deploy/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.ends_with(".service") || name.ends_with(".target")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let copy = dir.path().join(&name);
        std::fs::write(&copy, text.replace("/usr/local/bin/", &format!("{}/", bin.display())))
            .unwrap();
        units.push(copy);
        if let Some(service) = name.strip_suffix(".service") {
            let program = bin.join(service);
            std::fs::write(&program, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
    }
    assert!(units.len() >= 7, "six services and the target: {units:?}");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("run systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.trim().is_empty(), "{stderr}");
}
