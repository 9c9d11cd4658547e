//! The gateway's health follows the services it drives: NOT_SERVING while one of them does
//! not answer, SERVING again once it does, so a health check on the gateway alone tells an
//! operator (or compose) whether `cnet run` can work.

use cnet_tests::{Cluster, eventually};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

fn gateway_status(cluster: &Cluster, api: &cnet_tests::Api) -> i32 {
    let channel = {
        let _entered = api.enter();
        cnet_common::client::channel(&cluster.gateway_target()).unwrap()
    };
    let request = HealthCheckRequest { service: String::new() };
    api.block(HealthClient::new(channel).check(request))
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

#[test]
fn gateway_health_follows_its_dependencies() {
    let cluster = Cluster::start();
    let api = cluster.api();
    assert_eq!(gateway_status(&cluster, &api), ServingStatus::Serving as i32);
    // A dns service that stops answering (SIGSTOP: the supervisor sees nothing wrong).
    let dns = cluster.pids_of("cnet-dns");
    assert_eq!(dns.len(), 1);
    signal(dns[0], libc::SIGSTOP);
    eventually("the gateway to report NOT_SERVING", 15, || {
        (gateway_status(&cluster, &api) == ServingStatus::NotServing as i32).then_some(())
    });
    signal(dns[0], libc::SIGCONT);
    eventually("the gateway to report SERVING again", 15, || {
        (gateway_status(&cluster, &api) == ServingStatus::Serving as i32).then_some(())
    });
}
