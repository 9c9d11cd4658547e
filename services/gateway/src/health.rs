//! The gateway's overall health ("" in grpc.health.v1) follows its dependencies: it is
//! SERVING only while every service it drives answers SERVING, so a compose or systemd
//! health check on the gateway says whether `cnet run` can work right now.

use std::time::Duration;

use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};

/// Services whose health the gateway's reflects.
pub const DEPENDENCIES: [&str; 5] = ["ipam", "bridge", "nat", "dns", "hosts"];
const INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes every dependency each `INTERVAL` and sets the gateway's "" status from them.
pub async fn follow_dependencies(health: HealthReporter, address: impl Fn(&str) -> String) {
    let mut clients = Vec::new();
    for service in DEPENDENCIES {
        match cnet_common::client::channel(&address(service)) {
            Ok(channel) => clients.push((service, HealthClient::new(channel))),
            Err(error) => tracing::warn!(service, %error, "cannot watch a dependency's health"),
        }
    }
    let mut last_down: Vec<&str> = Vec::new();
    loop {
        let mut down = Vec::new();
        for (service, client) in &mut clients {
            if !serving(client).await {
                down.push(*service);
            }
        }
        if down != last_down {
            let status =
                if down.is_empty() { ServingStatus::Serving } else { ServingStatus::NotServing };
            tracing::info!(?down, "dependency health changed");
            health.set_service_status("", status).await;
            last_down = down;
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn serving(client: &mut HealthClient<tonic::transport::Channel>) -> bool {
    let request = HealthCheckRequest { service: String::new() };
    match tokio::time::timeout(PROBE_TIMEOUT, client.check(request)).await {
        Ok(Ok(response)) => {
            response.into_inner().status == health_check_response::ServingStatus::Serving as i32
        }
        _ => false,
    }
}
