//! A service that is still loading its state answers already: health says NOT_SERVING
//! and a call to one of its methods waits, then completes once the service opens, over
//! a real Unix socket as a client sees it.

use std::time::Duration;

use cnet_common::{
    client,
    config::ServerConfig,
    server::{Listeners, Starting},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1alpha::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

async fn status(health: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    let request = HealthCheckRequest { service: service.into() };
    health.check(request).await.expect("health answers").into_inner().status
}

#[tokio::test]
async fn health_says_not_serving_and_calls_wait_until_the_service_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        runtime_dir: dir.path().join("run"),
        state_dir: dir.path().join("state"),
        ..ServerConfig::default()
    };
    let listeners = Listeners::bind("starting", &config).await.unwrap();
    let mut starting = Starting::serve(listeners, &config, std::future::pending()).await;

    let channel = client::channel(&config.socket_path("starting").display().to_string()).unwrap();
    let mut health = HealthClient::new(channel.clone());
    assert_eq!(status(&mut health, "").await, ServingStatus::NotServing as i32);

    // A method of the service (v1alpha reflection stands in for it) called while it starts.
    let call = tokio::spawn(async move {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut client = ServerReflectionClient::new(channel);
        let mut answers =
            client.server_reflection_info(tokio_stream::iter([request])).await?.into_inner();
        answers.message().await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the call waits while the service is not open");

    let alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .unwrap();
    starting.add_service(alpha);
    let _serving = starting.open().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), call).await.unwrap().unwrap();
    assert!(answer.expect("the call succeeds").is_some());
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving as i32);
    let name = "grpc.reflection.v1alpha.ServerReflection";
    assert_eq!(status(&mut health, name).await, ServingStatus::Serving as i32);
}
