//! P-5: the station's terminal adapter against the terminal emulator on a
//! real pseudo-terminal pair from socat (tokio-serial on one end).

use shomei_station::terminal::{ChargeOutcome, Declined, TerminalClient, TerminalConfig};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Line {
    _socat: Killed,
    _emu: Killed,
    stdin: ChildStdin,
    out: mpsc::Receiver<String>,
    host: PathBuf,
    _dir: tempfile::TempDir,
}

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` first", p.display());
    p
}

impl Line {
    fn start() -> Line {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (dir.path().join("ttyA"), dir.path().join("ttyB"));
        let log = std::fs::File::create(dir.path().join("socat.log")).expect("log");
        let socat = Command::new("socat")
            .arg("-d")
            .arg("-d")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stderr(log)
            .spawn()
            .expect("socat");
        let end = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(dir.path().join("socat.log")).unwrap_or_default().contains("starting data transfer loop") {
            assert!(Instant::now() < end, "socat did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut emu = Command::new(bin("shomei-terminal")).arg("--port").arg(&b).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("emulator");
        let stdin = emu.stdin.take().expect("stdin");
        let stdout = emu.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).expect("READY"), "READY");
        Line { _socat: Killed(socat), _emu: Killed(emu), stdin, out: rx, host: a, _dir: dir }
    }

    fn control(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write");
        self.stdin.flush().expect("flush");
        self.out.recv_timeout(Duration::from_secs(5)).expect("answer")
    }

    fn client(&self) -> TerminalClient<tokio_serial::SerialStream> {
        let cfg = TerminalConfig { ack_timeout_ms: 300, retries: 3, charge_timeout_s: 3, status_attempts: 3 };
        TerminalClient::open(&self.host.display().to_string(), 9600, cfg).expect("open")
    }
}

#[tokio::test]
async fn charges_are_answered_retried_and_never_taken_twice() {
    let mut line = Line::start();
    let mut t = line.client();
    assert!(t.ping().await.expect("ping"));

    // approved, with the balance after
    let o = t.charge("TXN0000000000001", 400).await.expect("charge");
    assert_eq!(o, ChargeOutcome::Approved { balance_after: 2600, brand: "Suica".into() });
    // the same transaction again: the first answer, no second debit
    assert_eq!(t.charge("TXN0000000000001", 400).await.expect("again"), o);
    assert_eq!(line.control("state"), "state balance=2600 charges=1");

    // too little on the card
    line.control("balance 100");
    assert_eq!(t.charge("TXN0000000000002", 400).await.expect("low"), ChargeOutcome::Declined(Declined::Insufficient));
    line.control("balance 3000");
    // no card within the terminal's wait
    line.control("mode no_card");
    assert_eq!(t.charge("TXN0000000000003", 400).await.expect("no card"), ChargeOutcome::Declined(Declined::NoCard));
    line.control("mode ok");

    // the answer is lost: the adapter asks STATUS and learns it was approved, charged once
    line.control("mode lose_next_result");
    let o = t.charge("TXN0000000000004", 500).await.expect("lost");
    assert_eq!(o, ChargeOutcome::Approved { balance_after: 2500, brand: "Suica".into() });
    assert_eq!(line.control("state"), "state balance=2500 charges=2");

    // a NAK'd frame is sent again; garbage on the line is skipped
    line.control("mode nak_next");
    assert!(matches!(t.charge("TXN0000000000005", 100).await.expect("nak"), ChargeOutcome::Approved { balance_after: 2400, .. }));
    line.control("mode garbage_next");
    assert!(matches!(t.charge("TXN0000000000006", 100).await.expect("garbage"), ChargeOutcome::Approved { balance_after: 2300, .. }));

    // a silent terminal: Unknown (never "declined", so the user is not asked to pay again)
    line.control("mode silent");
    let started = Instant::now();
    assert_eq!(t.charge("TXN0000000000007", 100).await.expect("silent"), ChargeOutcome::Unknown);
    assert!(started.elapsed() < Duration::from_secs(15), "bounded: {:?}", started.elapsed());
    line.control("mode ok");
    assert_eq!(line.control("state"), "state balance=2300 charges=4");
    // a transaction the terminal never saw is final and charged nothing
    assert_eq!(t.status("TXN0000000000099").await.expect("status"), Some(ChargeOutcome::Declined(Declined::Cancelled)));
}
