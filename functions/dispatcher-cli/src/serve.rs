//! `dispatcher serve`: the lookup, webhook and manual trigger on localhost, over the store
//! the environment names (the embedded local store by default), with the Lambdas' code.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::http::StatusCode;
use dispatcher_app::Handoff as _;
use dispatcher_app::StoreConfig;
use dispatcher_app::recompute::RecomputeRequest;
use dispatcher_runtime::config::ServeLimits;
use dispatcher_runtime::{LocalInputs, LocalServer, RuntimeConfig, now};
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

use crate::ServeArgs;

/// The bundled sample release, so that `serve --demo` works from anywhere.
const SAMPLE: &[(&str, &str)] = &[
    (
        "release/core-services/sanitize-prow-jobs/_config.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_config.yaml"
        ),
    ),
    (
        "release/core-services/sanitize-prow-jobs/_clusters.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/core-services/sanitize-prow-jobs/_clusters.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/widget/acme-widget-main-postsubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/gadget/acme-gadget-main-periodics.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/acme/lab/acme-lab-main-presubmits.yaml"
        ),
    ),
    (
        "release/ci-operator/jobs/infra-periodics.yaml",
        include_str!(
            "../../../tests/fixtures/sample/release/ci-operator/jobs/infra-periodics.yaml"
        ),
    ),
    (
        "volumes.json",
        include_str!("../../../tests/fixtures/sample/volumes.json"),
    ),
];

fn write_sample(dir: &Path) -> Result<()> {
    for (rel, text) in SAMPLE {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("Failed to write {}", path.display()))?;
    }
    Ok(())
}

/// A random token for the manual trigger when none is configured.
fn token() -> Result<String> {
    if let Some(t) = std::env::var("DISPATCHER_TRIGGER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        return Ok(t);
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("Failed to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let mut config = RuntimeConfig::from_env()?;
    // The flag over the environment over the default, as for the functions.
    if let Some(c) = &args.vsphere_cluster {
        config.engine.vsphere_cluster = c.clone();
    }
    let (inputs, scratch) = if args.demo {
        let dir =
            std::env::temp_dir().join(format!("dispatcher-demo-{}-{}", std::process::id(), now()));
        write_sample(&dir)?;
        // A fresh store beside the sample: the demo never touches a configured store.
        config.store = StoreConfig::Local {
            dir: dir.join("store"),
        };
        let inputs = LocalInputs {
            release: dir.join("release"),
            clusters: None,
            volumes: Some(dir.join("volumes.json")),
            durations: None,
            cpu: None,
            memory: None,
        };
        (inputs, Some(dir))
    } else {
        let release: PathBuf = args.release.clone().context("--release is required")?;
        let inputs = LocalInputs {
            release,
            clusters: args.clusters.clone(),
            volumes: args.volumes.clone(),
            durations: args.durations.clone(),
            cpu: args.cpu_seconds.clone(),
            memory: args.memory_byte_seconds.clone(),
        };
        (inputs, None)
    };
    let server = LocalServer::build(&config, &inputs, token()?).await?;

    start_recompute(&server, &inputs.release).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("Failed to listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    // One write, and a closed stdout is not fatal: the banner is for a person, and a reader
    // that stops after the address (a test, `| head -1`) must not take the server down.
    let mut banner = vec![
        format!("serving on http://{addr}"),
        format!(
            "  lookup:    curl -s -d '{{\"job\":\"pull-ci-acme-widget-main-unit\"}}' http://{addr}/"
        ),
        format!("  explain:   curl -s http://{addr}/explain/pull-ci-acme-widget-main-unit"),
        format!(
            "  recompute: curl -s -X POST -H 'Authorization: Bearer {}' http://{addr}/recompute",
            server.token
        ),
    ];
    if server.webhook {
        banner.push(format!(
            "  webhook:   POST http://{addr}/github (signed with DISPATCHER_WEBHOOK_SECRET)"
        ));
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", banner.join("\n")).and_then(|()| out.flush());
    }
    serve_connections(listener, server.router, config.serve).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ExitCode::SUCCESS)
}

/// The start-up recompute. With nothing published yet it runs before serving, so that the
/// first lookup has an answer. With a whole generation in the store, that generation is
/// served at once and the recompute runs behind it: a failed or refused recompute must not
/// keep the last good generation from serving. A publish that another process left half
/// done (killed) holds the next generation until its lease ends; the recompute is handed in
/// again then, when it may take that publish over.
async fn start_recompute(server: &LocalServer, release: &Path) -> Result<()> {
    let pointer = server.stores.table.pointer().await?;
    let serving = pointer.as_ref().map_or(0, |p| p.generation);
    let at = now();
    if let Some(held) = pointer
        .as_ref()
        .and_then(|p| p.pending.as_ref())
        .filter(|h| h.lease_until >= at)
    {
        println!(
            "a publish of generation {} started at {} holds the store until {} (UTC), its publisher probably dead: serving generation {serving} meanwhile; recomputing {} when the publish may be taken over (`dispatcher publish --take-over` takes it over now)",
            held.generation,
            crate::store::when(held.started_at),
            crate::store::when(held.lease_until),
            release.display()
        );
        let handoff = server.handoff.clone();
        let wait = u64::try_from(held.lease_until - at + 1).unwrap_or(0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(wait)).await;
            if let Err(e) = handoff.submit(&RecomputeRequest::weekly()).await {
                tracing::error!(error = %e, "the recompute after the held publish could not be handed in");
            }
        });
        return Ok(());
    }
    if serving > 0 {
        println!(
            "serving generation {serving}; recomputing {} behind it",
            release.display()
        );
        server.handoff.submit(&RecomputeRequest::weekly()).await?;
        return Ok(());
    }
    let outcome = server
        .recomputer
        .run(
            &RecomputeRequest::weekly(),
            &dispatcher_app::publish::fresh_owner(at),
            at,
        )
        .await
        .map_err(|e| anyhow::anyhow!("the first recompute failed: {e}"))?;
    println!(
        "generation {} published ({} assignments changed) from {}",
        outcome.published.generation,
        outcome.published.changed,
        release.display()
    );
    Ok(())
}

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
async fn serve_connections(listener: TcpListener, router: Router, limits: ServeLimits) {
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
