//! The gRPC server: ext_authz v3 ([`ext_authz`]), `grpc.health.v1`, reflection, and the
//! `certgate.v1` read API ([`admin`]). Graceful shutdown drains in-flight checks.

pub mod admin;
pub mod ext_authz;

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::reload::Reloader;
use crate::revocation::LiveRevocation;

/// Binds the snapshot's `listen` address and serves until `shutdown` completes, then
/// stops accepting, reports NOT_SERVING and waits for in-flight calls to finish.
pub async fn serve(
    reloader: Arc<Reloader>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let addr: SocketAddr = reloader.current().settings.global.listen.parse()?;
    let listener = TcpListener::bind(addr).await?;
    serve_on(reloader, listener, shutdown).await
}

/// SIGHUP: re-read the configuration now and refresh every fetched CRL (an operator's
/// way to pick up a CRL published before the held one's nextUpdate).
fn spawn_hangup_handler(reloader: Arc<Reloader>, live: std::sync::Weak<LiveRevocation>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloads happen on file changes only");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(live) = live.upgrade() else { return };
                let reloader = Arc::clone(&reloader);
                let outcome = tokio::task::spawn_blocking(move || reloader.reload_now()).await;
                tracing::info!(?outcome, "SIGHUP: configuration re-read, CRLs refreshing");
                live.refresh_all();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (reloader, live);
}

/// Like [`serve`] on a listener the caller bound (tests use port 0).
pub async fn serve_on(
    reloader: Arc<Reloader>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let local = listener.local_addr()?;
    let live = LiveRevocation::new(&reloader.current());
    let weak = Arc::downgrade(&live);
    reloader.on_swap(move |snapshot| {
        if let Some(live) = weak.upgrade() {
            live.apply(snapshot);
        }
    });
    spawn_hangup_handler(Arc::clone(&reloader), Arc::downgrade(&live));
    // Fail closed from the first request: serve once every `crl_urls` list has been
    // tried (bounded by the fetch timeout), not with none while they download.
    let first_fetch = reloader.current().settings.global.crl_fetch.timeout.0;
    live.wait_first_fetches(first_fetch).await;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AuthorizationServer<ext_authz::ExtAuthz>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(admin::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let health_on_shutdown = health.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight checks");
        health_on_shutdown
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health_on_shutdown
            .set_not_serving::<AuthorizationServer<ext_authz::ExtAuthz>>()
            .await;
    };
    tracing::info!(grpc_addr = %local, "listening");
    // TCP_NODELAY on every accepted connection: without it a response that spans two
    // segments waits for the peer's delayed ACK (~40 ms per check, measured). The
    // builder's own nodelay setting does not reach a caller-supplied listener.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(ext_authz::ExtAuthz::new(
            Arc::clone(&reloader),
            Arc::clone(&live),
        )))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(admin::pb::admin_server::AdminServer::new(
            admin::AdminService::new(Arc::clone(&reloader), Arc::clone(&live)),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    tracing::info!("stopped");
    Ok(())
}
