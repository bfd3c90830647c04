//! The server: gRPC ext_authz v3 ([`ext_authz`]), `grpc.health.v1`, reflection and the
//! `certgate.v1` read API ([`admin`]) on `listen`, and the admin HTTP endpoints
//! ([`crate::admin_http`]) on `admin_listen`. Graceful shutdown reports not ready,
//! drains in-flight checks, then stops the admin listener and flushes the audit log.

pub mod admin;
pub mod ext_authz;

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::admin_http::{self, AdminState};
use crate::audit::AuditLog;
use crate::metrics::{MetricSources, Metrics, Readiness};
use crate::reload::Reloader;
use crate::revocation::LiveRevocation;
use crate::snapshot::Snapshot;

/// The sockets the server answers on.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC (`listen`).
    pub grpc: TcpListener,
    /// Admin HTTP (`admin_listen`); `None` runs without one (benchmarks).
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the snapshot's `listen` and `admin_listen` addresses.
    pub async fn bind(snapshot: &Snapshot) -> Result<Listeners, Box<dyn Error + Send + Sync>> {
        let global = &snapshot.settings.global;
        Ok(Listeners {
            grpc: bind("listen", &global.listen).await?,
            admin: Some(bind("admin_listen", &global.admin_listen).await?),
        })
    }
}

/// Binds one configured address; the error names the field.
async fn bind(field: &str, addr: &str) -> Result<TcpListener, Box<dyn Error + Send + Sync>> {
    let parsed: SocketAddr = addr.parse().map_err(|e| format!("{field} {addr}: {e}"))?;
    Ok(TcpListener::bind(parsed)
        .await
        .map_err(|e| format!("{field} {addr}: {e}"))?)
}

/// Binds `listen` and `admin_listen` and serves until `shutdown` completes, then
/// reports not ready, stops accepting, waits for in-flight calls to finish and flushes
/// `audit`.
pub async fn serve(
    reloader: Arc<Reloader>,
    audit: Arc<AuditLog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let listeners = Listeners::bind(&reloader.current()).await?;
    serve_on(reloader, listeners, audit, shutdown).await
}

/// Settings read once at start: a reload that changes them is served with the new
/// roles and CRLs, and a warning says the rest waits for a restart.
fn warn_on_restart_only_changes(reloader: &Reloader) {
    let started = reloader.current().settings.global.clone();
    reloader.on_swap(move |snapshot| {
        let now = &snapshot.settings.global;
        for (field, changed) in [
            ("listen", now.listen != started.listen),
            ("admin_listen", now.admin_listen != started.admin_listen),
            ("audit", now.audit != started.audit),
            ("log", now.log != started.log),
        ] {
            if changed {
                tracing::warn!(
                    field,
                    "changed in the configuration; takes effect on restart"
                );
            }
        }
    });
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

/// Like [`serve`] on listeners the caller bound (tests use port 0).
pub async fn serve_on(
    reloader: Arc<Reloader>,
    listeners: Listeners,
    audit: Arc<AuditLog>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn Error + Send + Sync>> {
    let Listeners {
        grpc: listener,
        admin,
    } = listeners;
    let local = listener.local_addr()?;
    let live = LiveRevocation::new(&reloader.current());
    warn_on_restart_only_changes(&reloader);
    let ready = Arc::new(Readiness::default());
    let metrics = Arc::new(Metrics::new(MetricSources {
        reloader: Arc::clone(&reloader),
        live: Arc::clone(&live),
        audit: Arc::clone(audit.counters()),
        ready: Arc::clone(&ready),
    }));
    // The admin listener answers from the start (`/readyz` 503 while starting) and
    // stops only after the gRPC drain.
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin.map(|admin| {
        if let Ok(addr) = admin.local_addr() {
            tracing::info!(admin_addr = %addr, "admin HTTP listening: /metrics /healthz /readyz");
        }
        tokio::spawn(admin_http::serve(
            admin,
            AdminState {
                metrics: Arc::clone(&metrics),
                reloader: Arc::clone(&reloader),
                ready: Arc::clone(&ready),
            },
            async move {
                let _ = admin_stopped.await;
            },
        ))
    });
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
    let ready_on_shutdown = Arc::clone(&ready);
    let shutdown = async move {
        shutdown.await;
        ready_on_shutdown.set(false);
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
    let observers = ext_authz::Observers {
        metrics: Arc::clone(&metrics),
        audit: Arc::clone(&audit),
    };
    // Ready from here: the listener is bound, so connections queue until the server
    // below takes them.
    ready.set(true);
    let served = tonic::transport::Server::builder()
        .add_service(AuthorizationServer::new(ext_authz::ExtAuthz::new(
            Arc::clone(&reloader),
            Arc::clone(&live),
            observers,
        )))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(admin::pb::admin_server::AdminServer::new(
            admin::AdminService::new(Arc::clone(&reloader), Arc::clone(&live)),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    ready.set(false);
    let _ = stop_admin.send(());
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    let audit_close = Arc::clone(&audit);
    let _ = tokio::task::spawn_blocking(move || audit_close.close()).await;
    served?;
    tracing::info!("stopped");
    Ok(())
}
