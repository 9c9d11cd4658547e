//! Tests of service discovery, pid-file handling and log tails for `up`/`down`; the
//! whole `up -d`/`down` cycle is driven through the real binary in `tests/up.rs`.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn global(dir: &Path) -> GlobalArgs {
    GlobalArgs {
        host: None,
        runtime_dir: dir.join("run"),
        state_dir: dir.join("state"),
        tls: Default::default(),
    }
}

fn fake_binary(dir: &Path, name: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\nexec sleep 100\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn services_are_found_in_start_order_and_told_where_the_cluster_lives() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in ["cnet-gateway", "cnet-dns", "cnet-bridge", "cnet-ipam", "cnet-other"] {
        fake_binary(&bin, name, 0o755);
    }
    fake_binary(&bin, "cnet-nat", 0o644);

    let services = services(&bin, &global(dir.path())).unwrap();
    let names: Vec<_> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ipam", "bridge", "dns", "gateway"], "no nat: not executable");
    let gateway = &services[3];
    assert_eq!(gateway.program, bin.join("cnet-gateway"));
    assert_eq!(gateway.log_file, dir.path().join("state/logs/gateway.log"));
    assert!(
        gateway
            .env
            .contains(&("CNET_RUNTIME_DIR".into(), dir.path().join("run").display().to_string()))
    );
    assert!(
        gateway
            .env
            .contains(&("CNET_STATE_DIR".into(), dir.path().join("state").display().to_string()))
    );
}

#[test]
fn missing_required_services_are_named() {
    let dir = tempfile::tempdir().unwrap();
    fake_binary(dir.path(), "cnet-ipam", 0o755);
    let error = services(dir.path(), &global(dir.path())).unwrap_err().to_string();
    assert!(error.starts_with("cannot find cnet-bridge, cnet-gateway in "), "{error}");
}

#[test]
fn up_refuses_when_already_running() {
    let dir = tempfile::tempdir().unwrap();
    let global = global(dir.path());
    std::fs::create_dir_all(&global.runtime_dir).unwrap();
    // This test process stands in for a live supervisor.
    std::fs::write(pid_path(&global), format!("{}\n", std::process::id())).unwrap();
    let args = UpArgs { detach: true, bin_dir: Some(dir.path().into()) };
    let error = up(&global, &args).unwrap_err().to_string();
    assert_eq!(error, format!("cnet is already running (pid {})", std::process::id()));
}

#[test]
fn down_without_a_supervisor_is_fine_and_clears_a_stale_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let global = global(dir.path());
    assert_eq!(down(&global).unwrap(), 0, "no pid file at all");

    std::fs::create_dir_all(&global.runtime_dir).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(pid_path(&global), format!("{dead}\n")).unwrap();
    assert_eq!(down(&global).unwrap(), 0);
    assert!(!pid_path(&global).exists());
}

#[test]
fn log_tails_show_the_last_lines_of_each_log() {
    assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
    assert_eq!(last_lines("a\nb\n", 5), "a\nb");
    assert_eq!(last_lines("", 5), "");

    let dir = tempfile::tempdir().unwrap();
    let global = global(dir.path());
    std::fs::create_dir_all(logs_dir(&global)).unwrap();
    let many: String = (1..=40).map(|n| format!("line {n}\n")).collect();
    std::fs::write(logs_dir(&global).join("gateway.log"), many).unwrap();
    std::fs::write(logs_dir(&global).join("ipam.log"), "").unwrap();
    let tails = log_tails(&global);
    assert!(tails.contains("gateway.log (last lines) ---\nline 26\n"), "{tails}");
    assert!(tails.ends_with("line 40"), "{tails}");
    assert!(!tails.contains("ipam.log"), "empty logs are skipped: {tails}");
}
