//! `dispatcher serve`'s listener against stalled connections: the real binary over
//! loopback, with small limits from `DISPATCHER_SERVE_*` so that it runs in seconds.
//!
//! Nothing here sleeps to synchronise: every wait is on an event (a banner line, a read
//! returning end of file, a response arriving) with a generous upper bound.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// How long any single awaited event may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

/// A `dispatcher serve --demo` on an ephemeral port, stopped with Ctrl-C when dropped.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    _work: tempfile::TempDir,
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Self {
        let work = tempfile::tempdir().expect("temporary directory");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
        cmd.args(["serve", "--demo", "--addr", "127.0.0.1:0"])
            .current_dir(work.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (var, _) in std::env::vars() {
            if var.starts_with("DISPATCHER_") {
                cmd.env_remove(var);
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("dispatcher serve --demo starts");
        let lines = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let addr = lines
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("serving on http://").map(str::to_owned))
            .expect("serve --demo printed its address");
        Self {
            child: Some(child),
            addr: addr.trim().parse().expect("an address"),
            _work: work,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let (done, waited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait());
        });
        if waited.recv_timeout(BOUND).is_err() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// Raises this process' soft open-file limit toward `wanted` (the server, its child,
/// inherits it and raises its own further): what is available now.
fn raise_open_files(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    let raised = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => raised,
        Err(_) => soft,
    }
}

/// Reads one response: its status and body (by `Content-Length`), or `None` when the
/// connection ends first.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    Some((status, body))
}

fn lookup_request(job: &str, close: bool) -> String {
    let body = format!(r#"{{"job":"{job}"}}"#);
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST / HTTP/1.1\r\nHost: dispatcher\r\nContent-Length: {}\r\n{connection}\r\n{body}",
        body.len()
    )
}

/// One lookup over a fresh connection: its status and how long it took.
async fn lookup(addr: SocketAddr) -> (Option<u16>, Duration) {
    let start = Instant::now();
    let answered = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(lookup_request("pull-ci-acme-widget-main-unit", true).as_bytes())
            .await
            .ok()?;
        read_response(&mut stream).await.map(|(status, _)| status)
    };
    let status = timeout(BOUND, answered).await.ok().flatten();
    (status, start.elapsed())
}

/// Reads until the server closes the connection (end of file or a reset): what it sent
/// and when it closed.
async fn until_closed(mut stream: impl tokio::io::AsyncRead + Unpin) -> (Vec<u8>, Instant) {
    let mut sent = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return (sent, Instant::now()),
            Ok(n) => sent.extend_from_slice(&chunk[..n]),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    /// The request head is never finished.
    Head,
    /// A complete head, then a body that never comes.
    Body,
    /// A complete head, then the body one byte every 200 ms: each byte comes well within
    /// any per-read timeout, the whole never within the request timeout.
    Trickle,
}

struct Stalled {
    kind: Stall,
    opened: Instant,
    closed: Instant,
    sent: Vec<u8>,
}

const PARTIAL_HEAD: &str = "POST / HTTP/1.1\r\nHost: dispatcher\r\nContent-Le";

fn body_head(length: usize) -> String {
    format!("POST / HTTP/1.1\r\nHost: dispatcher\r\nContent-Length: {length}\r\n\r\n{{\"job\":")
}

/// Opens a stalled connection and returns the task that waits for the server to close it.
async fn stall(addr: SocketAddr, kind: Stall) -> tokio::task::JoinHandle<Stalled> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let first = match kind {
        Stall::Head => PARTIAL_HEAD.to_owned(),
        Stall::Body | Stall::Trickle => body_head(1000),
    };
    stream
        .write_all(first.as_bytes())
        .await
        .expect("send the partial request");
    let opened = Instant::now();
    tokio::spawn(async move {
        let (sent, closed) = if kind == Stall::Trickle {
            let (read, mut write) = stream.into_split();
            let trickle = async move {
                let mut every = tokio::time::interval(Duration::from_millis(200));
                loop {
                    every.tick().await;
                    if write.write_all(b" ").await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                closed = until_closed(read) => closed,
                () = trickle => unreachable!("the trickle never ends by itself"),
            }
        } else {
            until_closed(stream).await
        };
        Stalled {
            kind,
            opened,
            closed,
            sent,
        }
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_answer_while_a_thousand_connections_stall_and_the_stalled_are_closed() {
    // Each stalled connection is a descriptor here and one in the server.
    let available = raise_open_files(1000 + 512);
    let connections = if available >= 1000 + 300 {
        1000
    } else {
        let fewer = usize::try_from(available.saturating_sub(300)).unwrap_or(0);
        eprintln!(
            "the hard open-file limit is {available}: stalling {fewer} connections, not 1,000"
        );
        fewer
    };
    assert!(connections >= 100, "too few descriptors to test anything");
    let header = Duration::from_secs(4);
    let request = Duration::from_secs(4);
    let server = Server::start(&[
        ("DISPATCHER_SERVE_HEADER_TIMEOUT", "4s"),
        ("DISPATCHER_SERVE_REQUEST_TIMEOUT", "4s"),
        ("DISPATCHER_SERVE_IDLE_TIMEOUT", "60s"),
    ]);
    let (warm, _) = lookup(server.addr).await;
    assert_eq!(warm, Some(200), "the server answers before the stall");

    let started = Instant::now();
    let mut stalled = Vec::with_capacity(connections);
    for i in 0..connections {
        let kind = match i % 100 {
            0 => Stall::Trickle,
            n if n % 2 == 0 => Stall::Head,
            _ => Stall::Body,
        };
        stalled.push(stall(server.addr, kind).await);
    }
    let all_open = Instant::now();

    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (status, took) = lookup(server.addr).await;
        assert_eq!(
            status,
            Some(200),
            "a lookup while {connections} connections stall"
        );
        assert!(
            took < Duration::from_secs(1),
            "a lookup took {took:?} while {connections} connections stall"
        );
        latencies.push(took);
    }
    let lookups_done = Instant::now();

    let mut closed = Vec::with_capacity(connections);
    for task in stalled {
        let s = timeout(header + request + BOUND, task)
            .await
            .expect("the server closes every stalled connection")
            .expect("the connection's task");
        closed.push(s);
    }
    let first_close = closed.iter().map(|s| s.closed).min().expect("some");
    assert!(
        first_close > lookups_done,
        "every connection was still stalled while the lookups were answered"
    );
    for kind in [Stall::Head, Stall::Body, Stall::Trickle] {
        let of_kind: Vec<&Stalled> = closed.iter().filter(|s| s.kind == kind).collect();
        let limit = if kind == Stall::Head { header } else { request };
        let held: Vec<Duration> = of_kind.iter().map(|s| s.closed - s.opened).collect();
        let (min, max) = (
            held.iter().min().copied().unwrap_or_default(),
            held.iter().max().copied().unwrap_or_default(),
        );
        eprintln!(
            "{kind:?}: {} connections closed by the server after {}..{} ms (limit {} ms)",
            of_kind.len(),
            ms(min),
            ms(max),
            ms(limit)
        );
        // Not cut early (the accept precedes `opened` by a few milliseconds)...
        assert!(
            min + Duration::from_millis(500) >= limit,
            "{kind:?}: closed after {min:?}"
        );
        // ...nor left hanging.
        assert!(
            max <= limit + Duration::from_secs(10),
            "{kind:?}: held for {max:?}"
        );
        for s in of_kind {
            let sent = String::from_utf8_lossy(&s.sent);
            match kind {
                // No head, no answer: the connection is closed.
                Stall::Head => assert!(sent.is_empty(), "{sent}"),
                // A head and part of a body: 408, then closed.
                Stall::Body | Stall::Trickle => {
                    assert!(sent.starts_with("HTTP/1.1 408"), "{kind:?}: {sent}");
                }
            }
        }
    }
    eprintln!(
        "{connections} connections opened in {} ms; lookups while they stalled: {:?} ms (max {} ms)",
        ms(all_open - started),
        latencies
            .iter()
            .map(|d| d.as_micros() as f64 / 1000.0)
            .collect::<Vec<_>>(),
        latencies.iter().map(|d| ms(*d)).max().unwrap_or_default()
    );
    // And the server is as good as before.
    let (after, _) = lookup(server.addr).await;
    assert_eq!(after, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_cap_new_connections_are_closed_at_once() {
    let server = Server::start(&[
        ("DISPATCHER_SERVE_MAX_CONNECTIONS", "20"),
        ("DISPATCHER_SERVE_HEADER_TIMEOUT", "3s"),
    ]);
    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stall(server.addr, Stall::Head).await);
    }
    // The 21st is accepted after the 20 and closed unanswered, long before any of them
    // times out: Prow's client sees an error at once and uses the static cluster.
    let (status, took) = lookup(server.addr).await;
    let refused = Instant::now();
    assert_eq!(status, None, "no answer beyond the cap");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    let mut first_close = None;
    for task in stalled {
        let s = timeout(BOUND, task)
            .await
            .expect("the stalled connections are closed")
            .expect("the connection's task");
        first_close = Some(first_close.map_or(s.closed, |c: Instant| c.min(s.closed)));
    }
    assert!(first_close.is_some_and(|c| c > refused));
    // Their slots are free again.
    let (status, _) = lookup(server.addr).await;
    assert_eq!(status, Some(200));
    eprintln!("refused beyond the cap in {} ms", ms(took));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_closed_when_idle_not_at_the_header_timeout() {
    let server = Server::start(&[
        ("DISPATCHER_SERVE_HEADER_TIMEOUT", "1s"),
        ("DISPATCHER_SERVE_IDLE_TIMEOUT", "3s"),
    ]);
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    for _ in 0..2 {
        stream
            .write_all(lookup_request("pull-ci-acme-widget-main-unit", false).as_bytes())
            .await
            .expect("send");
        let answered = timeout(BOUND, read_response(&mut stream))
            .await
            .expect("an answer in time");
        assert_eq!(answered.map(|(s, _)| s), Some(200), "kept alive");
    }
    let idle_since = Instant::now();
    let (sent, closed) = timeout(BOUND, until_closed(stream))
        .await
        .expect("the server closes the idle connection");
    let idle = closed - idle_since;
    eprintln!("an idle kept-alive connection closed after {} ms", ms(idle));
    assert!(sent.is_empty());
    assert!(
        idle >= Duration::from_secs(2),
        "closed after {idle:?}: the header timeout (1 s) does not apply between requests"
    );
    assert!(idle <= Duration::from_secs(3) + Duration::from_secs(10));
}
