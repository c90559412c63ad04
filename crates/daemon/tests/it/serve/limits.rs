//! The HTTP server's limits over real loopback sockets: slow and idle clients are cut off
//! (short timeouts set through `[serve]`), a crowd of them over `max_connections` cannot
//! starve `/healthz`, and an oversized body gets a 413 that the client can read.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use orgsync_daemon::DaemonHandle;
use orgsync_daemon::server::CLOSED_TOTAL;
use orgsync_jobs::config::ServeConfig;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::{Env, env};

/// Far above every timeout these tests set: a bound for a loaded machine, not a measurement.
const BOUND: Duration = Duration::from_secs(20);

async fn daemon(e: &Env, set: impl FnOnce(&mut ServeConfig)) -> DaemonHandle {
    let mut config = e.config();
    set(&mut config.serve);
    let store = e.sqlite("a.db").await;
    e.start(config, store).await
}

/// What the server sent until it closed the connection (EOF or reset); `None` if it was
/// still open after `bound`.
async fn read_until_closed(s: &mut (impl AsyncRead + Unpin), bound: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + bound;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Write `head` at once, then one byte of `trickle` every 200 ms until the server closes.
fn trickle(s: TcpStream, head: &'static [u8]) -> tokio::net::tcp::OwnedReadHalf {
    let (r, mut w) = s.into_split();
    tokio::spawn(async move {
        if w.write_all(head).await.is_err() {
            return;
        }
        let deadline = Instant::now() + BOUND;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if w.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_client_is_disconnected() {
    let e = env(1).await;
    let d = daemon(&e, |s| s.header_timeout_secs = 1).await;
    let started = Instant::now();
    let mut r = trickle(
        TcpStream::connect(d.addr).await.unwrap(),
        b"POST /hooks/directory HTTP/1.1\r\nHost: orgsync\r\nX-Slow: ",
    );
    read_until_closed(&mut r, BOUND).await.expect(
        "a client trickling its headers was still connected long after header_timeout_secs",
    );
    // Hyper's timer cannot fire early: the close is the timeout's, not something else.
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(d.metrics().get(CLOSED_TOTAL, "header_timeout") >= 1);
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let e = env(1).await;
    let d = daemon(&e, |s| s.header_timeout_secs = 1).await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: orgsync\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, BOUND)
        .await
        .expect("an idle keep-alive connection was kept long after header_timeout_secs");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_client_gets_408_and_is_closed() {
    let e = env(1).await;
    let d = daemon(&e, |s| {
        s.header_timeout_secs = 60;
        s.body_timeout_secs = 1;
    })
    .await;
    let mut r = trickle(
        TcpStream::connect(d.addr).await.unwrap(),
        b"POST /hooks/directory HTTP/1.1\r\nHost: orgsync\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    );
    let got = read_until_closed(&mut r, BOUND)
        .await
        .expect("a client trickling its body was still connected long after body_timeout_secs");
    // The 408 is written before the close; a reset racing it may swallow it, never more.
    let text = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(
        d.metrics()
            .get("orgsync_notifications_rejected_total", "body_timeout"),
        1
    );
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_do_not_starve_healthz() {
    const CAP: usize = 4;
    const SLOW: usize = 12;
    let e = env(1).await;
    // Timeouts far beyond the test: only the cap can make room.
    let d = daemon(&e, |s| {
        s.max_connections = CAP;
        s.header_timeout_secs = 300;
        s.body_timeout_secs = 300;
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: orgsync\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(BOUND)
        .build()
        .unwrap();
    for _ in 0..3 {
        let health = http
            .get(format!("http://{}/healthz", d.addr))
            .send()
            .await
            .expect("/healthz did not answer with the server at max_connections");
        assert_eq!(health.status(), 200);
    }
    // The server holds at most CAP connections: the rest of the slow ones were closed.
    let reads = slow
        .iter_mut()
        .map(|s| read_until_closed(s, Duration::from_secs(3)));
    let closed = futures::future::join_all(reads)
        .await
        .iter()
        .filter(|r| r.is_some())
        .count();
    assert!(
        closed >= SLOW - CAP,
        "only {closed} of {SLOW} slow connections were closed"
    );
    assert!(d.shared.connections.open() <= CAP);
    assert!(d.metrics().get(CLOSED_TOTAL, "evicted") >= (SLOW - CAP) as u64);
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_gets_a_readable_413() {
    let e = env(1).await;
    let d = daemon(&e, |_| {}).await;
    let url = format!("http://{}/hooks/directory", d.addr);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(BOUND)
        .build()
        .unwrap();
    // Deterministic: half the body, a pause (a busy client), the other half. A server that
    // answered and closed in a pause resets the connection, and the rest cannot be sent.
    for round in 0..2 {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let mut first = b"POST /hooks/directory HTTP/1.1\r\nHost: orgsync\r\n\
                          Content-Length: 200000\r\n\r\n"
            .to_vec();
        first.extend_from_slice(&[b'x'; 100_000]);
        s.write_all(&first).await.unwrap();
        // The first write to a closed peer still succeeds (its reset comes back later),
        // so the rest goes in two writes with a pause between.
        let mut sent = Ok(());
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sent = sent.and(s.write_all(&[b'x'; 50_000]).await);
        }
        let got = read_until_closed(&mut s, BOUND).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&got);
        assert!(
            sent.is_ok() && text.starts_with("HTTP/1.1 413"),
            "round {round}: the server closed while the client was still sending its body \
             (second half: {sent:?}; read {text:?})"
        );
    }
    // 200 kB is the spoofing test's case; 1 MB does not fit in the socket buffers. Many
    // at once: a server that answers and closes while the client still sends loses the
    // race to some of them (a reset, or `IncompleteMessage` in reqwest) on any machine.
    for size in [200_000, 1_000_000] {
        let body = "x".repeat(size);
        let sends = (0..24).map(|i| {
            let (http, url, body) = (&http, &url, body.clone());
            async move {
                let resp = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|err| {
                        panic!("{size} bytes, request {i}: no response: {err:?}")
                    });
                assert_eq!(resp.status(), 413, "{size} bytes, request {i}");
            }
        });
        futures::future::join_all(sends).await;
    }
    // The busy machine's race, made certain: the client is still sending when the server
    // has decided. With a declared length (rejected up front) and chunked (over the limit
    // while streaming).
    for declared in [true, false] {
        let chunks = futures::stream::iter(0..10).then(|_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, std::io::Error>(vec![b'x'; 20_000])
        });
        let mut req = http.post(&url).header("content-type", "application/json");
        if declared {
            req = req.header("content-length", "200000");
        }
        let resp = req
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap_or_else(|err| {
                panic!("slow body, declared length {declared}: no response: {err:?}")
            });
        assert_eq!(resp.status(), 413, "slow body, declared length {declared}");
    }
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}
