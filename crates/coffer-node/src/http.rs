//! The node's HTTP/1.1 endpoint: `GET /metrics` (Prometheus text format 0.0.4) and
//! `GET /health` (`200 {"status":"ok"}`, or `503 {"status":"unhealthy","reason":…}`), for
//! Prometheus, load balancers and orchestrators' probes. It serves no key material and takes
//! no input beyond the path.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes, for embedding in another server or for tests.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(metrics_page)).route("/health", get(health)).with_state(metrics)
}

/// Serves the endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(metrics)).with_graceful_shutdown(shutdown).await
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], metrics.render()).into_response()
}

async fn health(State(metrics): State<Arc<Metrics>>) -> Response {
    let (status, body) = match metrics.health() {
        Ok(()) => (StatusCode::OK, serde_json::json!({ "status": "ok" })),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "status": "unhealthy", "reason": reason }))
        }
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// Sends one request and returns (status code, content type, body).
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
            .unwrap_or_default();
        (status, content_type, body.to_owned())
    }

    #[tokio::test]
    async fn serves_metrics_and_health_on_loopback() {
        let metrics = Metrics::new();
        metrics.observe("GenerateKey", "ok", Duration::from_millis(1));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, metrics.clone(), async {
            let _ = stopped.await;
        }));
        let run = async {
            let (status, ctype, body) = request(addr, "GET", "/metrics").await;
            assert_eq!((status, ctype.as_str()), (200, METRICS_CONTENT_TYPE));
            assert!(body.contains("coffer_operations_total{operation=\"GenerateKey\",result=\"ok\"} 1"));
            assert!(body.contains("coffer_hsm_unhealthy 0"));

            assert_eq!(
                request(addr, "GET", "/health").await,
                (200, "application/json".into(), r#"{"status":"ok"}"#.into())
            );
            metrics.set_unhealthy("audit log not writable");
            let (status, _, body) = request(addr, "GET", "/health").await;
            assert_eq!(status, 503);
            assert_eq!(body, r#"{"reason":"audit log not writable","status":"unhealthy"}"#);
            assert!(request(addr, "GET", "/metrics").await.2.contains("coffer_hsm_unhealthy 1"));

            assert_eq!(request(addr, "GET", "/keys").await.0, 404);
            assert_eq!(request(addr, "POST", "/metrics").await.0, 405);
        };
        tokio::time::timeout(Duration::from_secs(10), run).await.unwrap();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
    }
}
