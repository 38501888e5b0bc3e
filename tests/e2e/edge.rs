//! The deployment edge (issue 12): TLS terminated by the backend itself,
//! its certificate reloaded on SIGHUP without dropping a connection; slow
//! clients cut off (headers, whole requests) and connections capped.

use crate::harness::*;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An open TLS connection (openssl s_client) that requests can be written to.
struct TlsConnection {
    child: std::process::Child,
    received: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl TlsConnection {
    fn open(port: u16, ca: &std::path::Path) -> Result<TlsConnection> {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-no_ign_eof", "-servername", "localhost", "-verify_return_error", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut out = child.stdout.take().context("stdout")?;
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        Ok(TlsConnection { child, received })
    }

    /// Sends `GET /healthz` and waits for the n-th answer on this same connection.
    fn healthz(&mut self, nth: usize) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        stdin.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        stdin.flush()?;
        wait_until(&format!("answer {nth} on the open connection"), Duration::from_secs(10), || {
            let got = self.received.lock().map(|v| String::from_utf8_lossy(&v).matches("HTTP/1.1 200").count()).unwrap_or(0);
            got >= nth
        })
    }
}

impl Drop for TlsConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_serves_https_itself_and_a_sighup_reloads_its_certificate_without_dropping_a_connection() -> Result<()> {
    let ca = TestCa::new()?;
    let (cert, key) = ca.issue("localhost", 0x1001)?;
    let dir = tempfile::tempdir()?;
    let (live_cert, live_key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(&cert, &live_cert)?;
    std::fs::copy(&key, &live_key)?;
    let port = free_port();
    let log = dir.path().join("backend.log");
    let mut cmd = Command::new(bin("shomei-backend"));
    cmd.arg("serve")
        .env("SHOMEI_BACKEND_HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("SHOMEI_BACKEND_HTTP__PUBLIC_URL", format!("https://localhost:{port}"))
        .env("SHOMEI_BACKEND_HTTP__TLS_CERT_FILE", &live_cert)
        .env("SHOMEI_BACKEND_HTTP__TLS_KEY_FILE", &live_key)
        .env("SHOMEI_BACKEND_DATABASE__URL", format!("sqlite://{}?mode=rwc", dir.path().join("b.sqlite").display()))
        .env("SHOMEI_BACKEND_ACCOUNTS__UPLOAD_DIR", dir.path().join("uploads"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let mut backend = Proc::spawn("backend", &mut cmd)?;
    wait_until("https backend", Duration::from_secs(20), || tcp_ready(port)).with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;

    // a client that trusts the university's CA gets the page over TLS
    let client = ca.client()?;
    let r = client.get(format!("https://localhost:{port}/healthz")).send().await?;
    assert_eq!((r.status().as_u16(), r.text().await?), (200, "ok".to_string()));
    let r = client.get(format!("https://localhost:{port}/login")).send().await?;
    let hsts = r.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(hsts.contains("max-age=31536000"), "HSTS on the https origin: {hsts}");
    let cookie = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect::<Vec<_>>().join(" | ");
    assert!(cookie.contains("__Host-") && cookie.contains("Secure"), "{cookie}");
    // plain http on the TLS port is no way around it
    assert!(reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).send().await.map(|r| !r.status().is_success()).unwrap_or(true));
    assert_eq!(served_serial(port)?, "1001", "the first certificate");

    // a connection opened now stays open across the reload
    let mut open = TlsConnection::open(port, &ca.cert)?;
    open.healthz(1)?;
    let (cert2, key2) = ca.issue("localhost", 0x2002)?;
    std::fs::copy(&cert2, &live_cert)?;
    std::fs::copy(&key2, &live_key)?;
    anyhow::ensure!(backend.signal("-HUP"), "the backend is running to reload");
    wait_until("the reload", Duration::from_secs(10), || std::fs::read_to_string(&log).unwrap_or_default().contains("TLS certificate reloaded"))?;
    assert_eq!(served_serial(port)?, "2002", "new connections get the new certificate");
    open.healthz(2)?;
    let r = client.get(format!("https://localhost:{port}/healthz")).send().await?;
    assert_eq!(r.status(), 200);

    // a broken file on the next reload keeps the working certificate
    std::fs::write(&live_cert, "not a certificate")?;
    anyhow::ensure!(backend.signal("-HUP"), "the backend is running to reload");
    wait_until("the refused reload", Duration::from_secs(10), || std::fs::read_to_string(&log).unwrap_or_default().contains("TLS certificate not reloaded"))?;
    assert_eq!(served_serial(port)?, "2002");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_connections_are_capped() -> Result<()> {
    let b = Backend::start_with(None, |c| {
        c.http.header_read_timeout_s = 2;
        c.http.request_timeout_s = 3;
        c.http.max_connections = 2;
    })
    .await?;
    let addr = b.url.trim_start_matches("http://").to_string();
    // two clients that never finish (or never start) their headers hold both slots...
    let opened = Instant::now();
    let mut slow = Vec::new();
    for i in 0..2 {
        let mut s = std::net::TcpStream::connect(&addr)?;
        // one sends half its headers, the other nothing at all
        if i == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")?;
        }
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        slow.push(s);
    }
    // each slow socket is watched: what the server says when it closes it
    let closed: Vec<_> = slow
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf);
                n.map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
            })
        })
        .collect();
    // ...so a third is answered only once the header deadline has closed one of them
    let r = reqwest::Client::new().get(format!("{}/healthz", b.url)).timeout(Duration::from_secs(15)).send().await?;
    assert_eq!(r.status(), 200);
    let answered = Instant::now();
    for watcher in closed {
        let said = watcher.join().map_err(|_| anyhow::anyhow!("watcher panicked"))?;
        // closed by the server (408 or EOF), not left hanging
        let text = said.context("the slow connection was closed")?;
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // a slot frees only at the header deadline (2 s after the server took the slow sockets,
    // which is after they were opened): the third cannot have been served before it
    assert!(answered.duration_since(opened) >= Duration::from_secs(2), "the third connection waited for a slot to be freed by the deadline");

    // a request whose body trickles in past the request deadline: 408
    let mut s = std::net::TcpStream::connect(&addr)?;
    s.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\nemail=")?;
    let mut answer = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let _ = s.write_all(b"a");
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => continue,
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "a trickled body is cut off with 408: {text:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_whether_each_program_can_serve_and_what_is_missing() -> Result<()> {
    let mut rig = Rig::start().await?;
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/readyz", rig.backend.url)).send().await?;
    assert_eq!((r.status().as_u16(), r.text().await?), (200, "ready\n".to_string()));
    let ready = format!("{}/readyz", rig.station.kiosk_url);
    let mut last: (u16, String) = (0, String::new());
    wait_until("the station ready", Duration::from_secs(20), || {
        last = std::process::Command::new("curl").args(["-s", "-w", "\n%{http_code}", &ready]).output().map(|o| {
            let t = String::from_utf8_lossy(&o.stdout).to_string();
            let (body, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
            (code.parse().unwrap_or(0), body.to_string())
        }).unwrap_or_default();
        last.0 == 200
    })?;
    // the printer out of paper: 503, and it says so (the process itself is healthy)
    rig.printer.set_paper(0)?;
    let mut body = String::new();
    wait_until("the station not ready for paper", Duration::from_secs(20), || {
        let r = std::process::Command::new("curl").args(["-s", &ready]).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
        body = r;
        body.contains("printer:") && body.contains("media")
    })
    .with_context(|| body.clone())?;
    let code = std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &ready]).output()?;
    assert_eq!(String::from_utf8_lossy(&code.stdout), "503");
    assert_eq!(c.get(format!("{}/healthz", rig.station.kiosk_url)).send().await?.status(), 200);
    // the reader unplugged too: both named
    rig.pcsc.stop();
    wait_until("the reader named", Duration::from_secs(20), || {
        body = std::process::Command::new("curl").args(["-s", &ready]).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default();
        body.contains("reader: not connected") && body.contains("printer:")
    })
    .with_context(|| body.clone())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_pdf_renders_without_the_write_lock_and_each_user_may_order_a_few_times_a_minute() -> Result<()> {
    let gates = tempfile::tempdir()?;
    let gate = gates.path().join("render.go");
    let held = gate.clone();
    let b = Backend::start_with(None, |c| {
        c.documents.failpoint_hold_render = Some(held);
        c.orders.per_user_per_minute = 3;
    })
    .await?;
    let (first, during) = tokio::join!(b.order_as_graduate(1), async {
        // the order is being rendered (the failpoint holds it there)...
        // (an async wait: the order is polled in this same task)
        wait_for("rendering to start", Duration::from_secs(20), || Ok(gate.with_extension("reached").exists())).await?;
        // ...and meanwhile the database takes a writer at once (no lock held) and nothing is half-written
        let lock = b.write_lock_free()?;
        let orders = b.sql("SELECT COUNT(*) FROM orders")?;
        let health = reqwest::Client::new().get(format!("{}/healthz", b.url)).send().await?.status();
        std::fs::write(&gate, b"")?;
        anyhow::Ok((lock, orders, health))
    });
    let (lock, orders, health) = during?;
    assert!(lock, "the write lock was free while rendering");
    assert_eq!(orders, "0", "no order row before its document exists");
    assert_eq!(health, 200);
    let page = first?;
    assert!(element_text(&page, "print-number").is_some(), "the order completed once rendered");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders WHERE pages > 0")?, "1");
    // three orders a minute per user, then 429 in both languages
    b.order_as_graduate(1).await?;
    b.order_as_graduate(1).await?;
    let refused = b.order_as_graduate(1).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("429") && refused.contains("待って") && refused.contains("wait"), "{refused}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM orders")?, "3");
    Ok(())
}
