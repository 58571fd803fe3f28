//! A minimal HTTP/1.1 listener for /metrics, /health and /ready: GET only, one request per
//! connection (answered with `Connection: close`), request head at most
//! [`REQUEST_HEAD_BYTES_MAX`], at most [`CONNECTIONS_MAX`] connections at once. Scrapers and
//! probes need nothing more, and a bounded hand-written parser keeps a second HTTP stack out
//! of the binary.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::Metrics;
use crate::broker::Broker;

pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
pub const CONNECTIONS_MAX: usize = 16;
/// A client that has not sent its request head by then is dropped.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// /ready: the published image may trail the quorum's applied log by this many entries.
const READY_METADATA_LAG_MAX: u64 = 10;

/// What the HTTP handlers read. `broker` is set once the broker has registered and been
/// unfenced; until then /metrics has only request-path series and /ready says 503.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub broker: Arc<OnceLock<Arc<Broker>>>,
}

pub async fn serve(listener: TcpListener, state: HttpState) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(error) => {
                tracing::warn!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_one(socket, &state).await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn serve_one(mut socket: TcpStream, state: &HttpState) -> std::io::Result<()> {
    let head = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_head(&mut socket)).await;
    let response = match head {
        Ok(Ok(Some(head))) => respond(&head, state).await,
        Ok(Ok(None)) => Response::text(431, "Request Header Fields Too Large", "head too large\n"),
        Ok(Err(error)) => return Err(error),
        Err(_) => Response::text(408, "Request Timeout", "timed out\n"),
    };
    socket.write_all(&response.to_bytes()).await?;
    socket.shutdown().await
}

/// Reads until the blank line ending the head; `None` when it exceeds the limit.
async fn read_head(socket: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Ok(Some(head));
        }
        head.extend_from_slice(&chunk[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(head));
        }
        if head.len() > REQUEST_HEAD_BYTES_MAX {
            return Ok(None);
        }
    }
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: u16, reason: &'static str, body: &str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

async fn respond(head: &[u8], state: &HttpState) -> Response {
    let line_end = head.iter().position(|b| *b == b'\r').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !parts
        .next()
        .is_some_and(|version| version.starts_with("HTTP/1."))
    {
        return Response::text(400, "Bad Request", "bad request line\n");
    }
    if method != "GET" {
        return Response::text(405, "Method Not Allowed", "GET only\n");
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/health" => Response::text(200, "OK", "ok\n"),
        "/ready" => match not_ready_reason(state) {
            None => Response::text(200, "OK", "ready\n"),
            Some(reason) => Response::text(503, "Service Unavailable", &format!("{reason}\n")),
        },
        "/metrics" => {
            let state = state.clone();
            // Scraping locks groups and reads log sizes: keep it off the async workers.
            let body = tokio::task::spawn_blocking(move || {
                state.metrics.encode(state.broker.get().map(Arc::as_ref))
            })
            .await
            .unwrap_or_default();
            Response {
                status: 200,
                reason: "OK",
                content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            }
        }
        _ => Response::text(404, "Not Found", "try /metrics, /health or /ready\n"),
    }
}

/// Ready: registered and unfenced (active in the image this node serves), not shutting down,
/// and that image no more than [`READY_METADATA_LAG_MAX`] entries behind the quorum's
/// applied log.
fn not_ready_reason(state: &HttpState) -> Option<&'static str> {
    let Some(broker) = state.broker.get() else {
        return Some("starting: not registered and unfenced yet");
    };
    if broker.is_closing() {
        return Some("shutting down");
    }
    let topics = broker.topics();
    if !topics.metadata.cluster.is_active(broker.node_id()) {
        return Some("fenced or not registered in the metadata image");
    }
    let applied = broker
        .quorum
        .metrics()
        .borrow()
        .last_applied
        .map_or(0, |log_id| log_id.index);
    if broker.published_index() + READY_METADATA_LAG_MAX < applied {
        return Some("metadata image not caught up");
    }
    None
}
