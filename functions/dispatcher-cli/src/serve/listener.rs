//! `serve`'s own listener: hyper over the same router as the Lambdas, with header, request
//! and idle timeouts and a connection cap (the Lambdas sit behind API Gateway, which has
//! its own).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use dispatcher_config::ServeLimits;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutLayer;

/// Descriptors the server needs besides its connections: the listener, the store's files,
/// logs, the recompute's reads, the AWS and GitHub clients' own connections.
const RESERVED_FILES: u64 = 256;

/// Raises the soft open-file limit (often 1,024) toward the hard one so that `wanted`
/// connections fit beside [`RESERVED_FILES`], and says how many fit: a connection cap above
/// that would end in failed accepts, and lookups failing without a word.
fn room_for_connections(wanted: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let need = u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVED_FILES);
    let limit = getrlimit(Resource::Nofile);
    let mut soft = limit.current;
    if soft.is_some_and(|s| s < need) {
        let raised = limit.maximum.map_or(need, |hard| hard.min(need));
        let asked = Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, asked) {
            Ok(()) => soft = Some(raised),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    fitting(wanted, soft)
}

/// Connections that fit in a soft open-file limit (`None`: unlimited), at least one.
fn fitting(wanted: usize, soft: Option<u64>) -> usize {
    soft.map_or(wanted, |s| {
        usize::try_from(s.saturating_sub(RESERVED_FILES))
            .unwrap_or(usize::MAX)
            .clamp(1, wanted.max(1))
    })
}

/// What a connection is doing, as its watchdog times it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head: since the accept, or since the first byte of a later one.
    Head,
    /// Kept alive between requests, no byte of the next one yet.
    Idle,
    /// This many requests past their head and not yet answered (the request timeout's).
    Busy(usize),
}

/// One connection's phase and since when, shared by its reads, its requests and its
/// watchdog. hyper's own header timer cannot serve here: it also runs while a kept-alive
/// connection waits for its next request, so idle connections would be cut at the header
/// timeout.
struct Watch {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Watch {
    fn new() -> Self {
        Self {
            phase: Mutex::new((Phase::Head, Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, next: impl FnOnce(Phase) -> Option<Phase>) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = next(phase.0) {
            *phase = (p, Instant::now());
            // One waiter (the watchdog); a stored permit covers a change between its look
            // at the phase and its wait.
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts its next request head.
    fn read(&self) {
        self.update(|p| (p == Phase::Idle).then_some(Phase::Head));
    }

    /// A request head is complete and handed to the router.
    fn begin(&self) {
        self.update(|p| {
            Some(match p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Head | Phase::Idle => Phase::Busy(1),
            })
        });
    }

    /// A request is answered (or abandoned).
    fn end(&self) {
        self.update(|p| {
            Some(match p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle,
            })
        });
    }

    /// When the connection is to be closed unless something happens first, and why.
    fn deadline(&self, limits: &ServeLimits) -> Option<(Instant, &'static str)> {
        let (phase, since) = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::Head => Some((since + limits.header_timeout, "request head timed out")),
            Phase::Idle => Some((since + limits.idle_timeout, "idle")),
            Phase::Busy(_) => None,
        }
    }
}

/// Resolves when the connection has stalled past its limit: a head too slow, or idle too
/// long. Requests in progress are bounded by the router's request timeout instead.
async fn watchdog(watch: &Watch, limits: &ServeLimits) -> &'static str {
    loop {
        match watch.deadline(limits) {
            None => watch.changed.notified().await,
            Some((at, why)) => tokio::select! {
                () = tokio::time::sleep_until(at) => return why,
                () = watch.changed.notified() => {}
            },
        }
    }
}

/// Marks a request busy for as long as it lives.
struct Busy(Arc<Watch>);

impl Busy {
    fn begin(watch: Arc<Watch>) -> Self {
        watch.begin();
        Self(watch)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A TCP stream that tells its [`Watch`] when bytes arrive.
struct Watched {
    io: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Errors of one incoming connection, not of the listener: accept the next at once.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Serves `router` until Ctrl-C, then lets the open connections finish their requests.
///
/// Every connection is bounded in time (its request heads, its requests, its idling) and
/// their number is capped: beyond the cap a new connection is accepted and closed at once.
/// Prow's scheduler posts with Go's default client, which has no timeout: a connection left
/// in the listen backlog would hold its only worker until the kernel gave up, while a closed
/// one makes it fall back to the job's static cluster at once.
pub(super) async fn serve_connections(listener: TcpListener, router: Router, limits: ServeLimits) {
    let room = room_for_connections(limits.max_connections);
    if room < limits.max_connections {
        tracing::warn!(
            wanted = limits.max_connections,
            room,
            "the open-file limit leaves room for fewer connections"
        );
    }
    let router = router.layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ));
    let slots = Arc::new(Semaphore::new(room));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true).header_read_timeout(None);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    let mut refusing = false;
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors, most likely: give the open connections time to end
                // rather than spin on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !refusing {
                tracing::warn!(
                    max = room,
                    "connection limit reached: new connections are closed until one ends"
                );
                refusing = true;
            }
            drop(stream);
            continue;
        };
        if refusing {
            tracing::info!("below the connection limit again");
            refusing = false;
        }
        // Small answers on kept-alive connections: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new());
        let requests = watch.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::begin(requests.clone());
            let router = router.clone();
            async move {
                let answered = router.oneshot(request).await;
                drop(busy);
                answered
            }
        });
        let io = TokioIo::new(Watched {
            io: stream,
            watch: watch.clone(),
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                why = watchdog(&watch, &limits) => {
                    tracing::debug!(%peer, why, "connection closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_beside_the_reserved_descriptors() {
        assert_eq!(fitting(4096, None), 4096);
        assert_eq!(fitting(4096, Some(1_048_576)), 4096);
        assert_eq!(fitting(4096, Some(1024)), 1024 - 256);
        assert_eq!(fitting(4096, Some(100)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn heads_idling_and_requests_are_timed_apart() {
        let limits = ServeLimits {
            header_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let watch = Watch::new();
        let start = Instant::now();
        // A fresh connection that sends nothing: the header timeout.
        assert_eq!(watchdog(&watch, &limits).await, "request head timed out");
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // Between requests: the idle timeout, not the header one.
        watch.begin();
        watch.end();
        let idle = Instant::now();
        assert_eq!(watchdog(&watch, &limits).await, "idle");
        assert_eq!(idle.elapsed(), Duration::from_secs(60));

        // A byte of the next request: its head has the header timeout from then.
        watch.read();
        let head = Instant::now();
        assert_eq!(watchdog(&watch, &limits).await, "request head timed out");
        assert_eq!(head.elapsed(), Duration::from_secs(2));

        // A request in progress is not the watchdog's: it waits until the request ends.
        watch.begin();
        let busy = Instant::now();
        let ended = async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            watch.end();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            why = watchdog(&watch, &limits) => assert_eq!(why, "idle"),
            () = ended => unreachable!("ended never returns"),
        }
        assert_eq!(busy.elapsed(), Duration::from_secs(660));
    }
}
