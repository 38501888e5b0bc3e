//! ST-6 / ST-7: the station runs like firmware under systemd: it says READY
//! once its kiosk listens, pings the watchdog at half the interval while its
//! main loop ticks and its kiosk answers (and stops when either hangs, so
//! systemd restarts it), and the
//! shipped unit files pass `systemd-analyze verify`. PID 1 here is not
//! systemd: the test plays its part on a NOTIFY_SOCKET it listens on.

use crate::harness::*;
use anyhow::{Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Datagrams received on the fake notify socket until `until`, each with
/// its time since `origin`.
fn received(sock: &UnixDatagram, origin: Instant, until: Instant) -> Result<Vec<(Duration, String)>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        sock.set_read_timeout(Some(until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))?;
        match sock.recv(&mut buf) {
            Ok(n) => out.push((origin.elapsed(), String::from_utf8_lossy(&buf[..n]).into_owned())),
            // the time is up (no datagram came)
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Datagrams from now until the one saying READY=1 (a loaded machine may
/// take a while to start the station), then those within `window` after it
/// (the pings are counted from READY, never from the spawn); the times are
/// since the call, and the last item is when the listening ended.
fn received_after_ready(sock: &UnixDatagram, window: Duration) -> Result<(Vec<(Duration, String)>, Duration)> {
    let origin = Instant::now();
    let mut out = Vec::new();
    let deadline = origin + Duration::from_secs(30);
    while !out.iter().any(|(_, m): &(Duration, String)| m.starts_with("READY=1")) {
        anyhow::ensure!(Instant::now() < deadline, "no READY=1 within 30 s: {out:?}");
        out.extend(received(sock, origin, Instant::now() + Duration::from_millis(200))?);
    }
    out.extend(received(sock, origin, Instant::now() + window)?);
    Ok((out, origin.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_station_tells_systemd_it_is_ready_and_a_hung_main_loop_or_kiosk_stops_the_watchdog() -> Result<()> {
    let peers = Peers::start().await?;
    let code = peers.backend.enrolment_code("Watchdog test").await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path)?;
    let notify = path.display().to_string();
    let env = [("NOTIFY_SOCKET", notify.as_str()), ("WATCHDOG_USEC", "2000000")];
    let opts = StationOptions { backend_url: &peers.backend.url, enrolment_code: &code, printer_uri: &peers.printer.uri, pcsc: &peers.pcsc, tuning: Tuning::default() };
    let started = Instant::now();
    let mut station = Station::start_with_env(&opts, &env)?;
    // (the in-process backend keeps both runtime threads while the test listens)
    let (msgs, _) = tokio::task::block_in_place(|| received_after_ready(&sock, Duration::from_millis(3500)))?;
    let ready = msgs.iter().find(|(_, m)| m.starts_with("READY=1")).context("no READY=1")?;
    assert!(ready.1.contains("STATUS=serving the kiosk as Watchdog test"), "{msgs:?}");
    eprintln!("station ready {:?} after spawn (harness included)", started.elapsed());
    let pings: Vec<_> = msgs.iter().filter(|(_, m)| m == "WATCHDOG=1").collect();
    assert!(pings.len() >= 2, "pings every ~1 s for a 2 s watchdog: {msgs:?}");

    // The main loop hangs, then (another start) the kiosk's own page stops
    // answering while the rest of the station runs: in each case the pings
    // stop, which makes systemd restart it, and the station says why.
    for (point, why) in [("hang-main-loop", "the main loop has not ticked"), ("hang-kiosk", "the kiosk did not answer")] {
        station.restart(&[env[0], env[1], ("SHOMEI_FAILPOINT", point)])?;
        let (msgs, end) = tokio::task::block_in_place(|| received_after_ready(&sock, Duration::from_secs(8)))?;
        let last_ping = msgs.iter().rev().find(|(_, m)| m == "WATCHDOG=1").map(|(t, _)| *t).with_context(|| format!("{point}: pinged before the hang: {msgs:?}"))?;
        let silence = end.saturating_sub(last_ping);
        assert!(silence > Duration::from_millis(3000), "{point}: no ping for longer than the watchdog interval after the hang: last at {last_ping:?} of {end:?}: {msgs:?}");
        let log = station.log();
        assert!(log.contains(&format!("failpoint {point}")), "{point}: {log}");
        // the reason, from this start's log lines (the log file holds every start's)
        let said = |log: &str| log.rsplit("station starting").next().is_some_and(|this| this.contains("watchdog not pinged") && this.contains(why));
        wait_until(&format!("{point}: the station says why it stopped pinging"), Duration::from_secs(10), || said(&station.log()))
            .with_context(|| station.log())?;
    }
    Ok(())
}

#[test]
fn the_unit_files_pass_systemd_analyze_verify() -> Result<()> {
    let units = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let dir = tempfile::tempdir()?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&units)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).context("unit name")?.to_string();
        // point ExecStart at the binaries just built (verify checks that they exist)
        let text = std::fs::read_to_string(&p)?
            .replace("/usr/local/bin/shomei-station", &bin("shomei-station").display().to_string())
            .replace("/usr/local/bin/shomei-backend", &bin("shomei-backend").display().to_string());
        std::fs::write(dir.path().join(&name), text)?;
        names.push(name);
    }
    names.sort();
    assert_eq!(names, ["shomei-backend.service", "shomei-kiosk.service", "shomei-station.service"]);
    for name in &names {
        let out = std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(dir.path().join(name)).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        // only complaints about our own file count (the host's other units are not ours)
        let ours: Vec<&str> = err.lines().filter(|l| l.contains(name.as_str())).collect();
        assert!(out.status.success() && ours.is_empty(), "{name}: {err}");
    }
    let station = std::fs::read_to_string(units.join("shomei-station.service"))?;
    for key in ["Type=notify", "WatchdogSec=", "Restart=always", "NoNewPrivileges=yes", "ProtectSystem=strict"] {
        assert!(station.contains(key), "{key} missing from the station unit");
    }
    Ok(())
}

/// Backup and restore of both databases as commands: taken while everything
/// runs, put back after both files are lost; the paid, printed order, the
/// ledger and the station's credential come back, and the station serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_databases_are_backed_up_live_and_restored_after_they_are_lost() -> Result<()> {
    let mut rig = Rig::start().await?;
    let (number, _) = rig.order_and_read_mail(1).await?;
    rig.kiosk_number(&number).await?;
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    rig.card.remove()?;
    let db = rig.backend.dir.path().join("backend.sqlite");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    wait_for("the report", Duration::from_secs(10), || Ok(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))? == "printed")).await?;
    let balance = rig.balance()?;
    let backups = tempfile::tempdir()?;
    let (b_file, s_dir) = (backups.path().join("backend.sqlite"), backups.path().join("station"));
    let run = |bin_name: &str, args: &[&std::ffi::OsStr], env: &[(&str, &str)]| -> Result<String> {
        let out = Command::new(bin(bin_name)).args(args).envs(env.iter().copied()).output()?;
        anyhow::ensure!(out.status.success(), "{bin_name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let station_dir = rig.station.journal_path().parent().map(Path::to_path_buf).unwrap_or_default();
    let sdir = station_dir.display().to_string();

    // live backups (a PostgreSQL deployment is backed up with PostgreSQL's own tools: the command says so)
    let pg = rig.backend.is_postgres();
    let url = if pg { rig.backend.database_url.clone() } else { url };
    if pg {
        let out = Command::new(bin("shomei-backend")).arg("backup").arg(&b_file).env("SHOMEI_BACKEND_DATABASE__URL", &url).output()?;
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains("pg_dump"), "{said}");
    } else {
        let said = run("shomei-backend", &["backup".as_ref(), b_file.as_os_str()], &[("SHOMEI_BACKEND_DATABASE__URL", &url)])?;
        assert!(said.contains("backup written") && said.contains("1 orders"), "{said}");
    }
    let said = run("shomei-station", &["backup".as_ref(), s_dir.as_os_str()], &[("SHOMEI_STATION_STATE_DIR", &sdir)])?;
    assert!(said.contains("backup written") && said.contains("1 jobs"), "{said}");
    // a backup never overwrites
    if !pg {
        assert!(run("shomei-backend", &["backup".as_ref(), b_file.as_os_str()], &[("SHOMEI_BACKEND_DATABASE__URL", &url)]).is_err());
    }

    let enrolments_before = rig.station.log().lines().filter(|l| l.contains(" enrolled ")).count();
    assert_eq!(enrolments_before, 1, "enrolled once, at the first start");
    // both files are lost (on PostgreSQL: the station's)
    rig.backend.stop().await;
    rig.station.kill9();
    for f in ["backend.sqlite", "backend.sqlite-wal", "backend.sqlite-shm"] {
        let _ = std::fs::remove_file(rig.backend.dir.path().join(f));
    }
    for f in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm", "station.key"] {
        let _ = std::fs::remove_file(station_dir.join(f));
    }
    // a file that is not a backup is refused
    let junk = backups.path().join("junk");
    std::fs::write(&junk, b"not a database")?;
    assert!(run("shomei-backend", &["restore".as_ref(), junk.as_os_str()], &[("SHOMEI_BACKEND_DATABASE__URL", &url)]).is_err());
    if !pg {
        let said = run("shomei-backend", &["restore".as_ref(), b_file.as_os_str()], &[("SHOMEI_BACKEND_DATABASE__URL", &url)])?;
        assert!(said.contains("restored"), "{said}");
    }
    run("shomei-station", &["restore".as_ref(), s_dir.as_os_str()], &[("SHOMEI_STATION_STATE_DIR", &sdir)])?;

    // everything is back
    rig.backend.restart().await?;
    rig.station.restart(&[])?;
    assert_eq!(rig.backend.sql(&format!("SELECT status FROM orders WHERE print_number = '{number}'"))?, "printed");
    assert_eq!(rig.balance()?, balance);
    let enrolments = |log: &str| log.lines().filter(|l| l.contains(" enrolled ")).count();
    assert!(rig.station.log().contains("station starting"));
    assert_eq!(enrolments(&rig.station.log()), enrolments_before, "the credential came back: no enrolment needed");
    let (second, _) = {
        let page = rig.backend.order_as_graduate(1).await?;
        (element_text(&page, "print-number").unwrap_or_default().replace(' ', ""), ())
    };
    rig.wait_kiosk("idle", Duration::from_secs(10)).await?;
    let s = rig.kiosk_number(&second).await?;
    assert_eq!(s["screen"], "card", "the restored station serves: {s}");
    rig.card.tap()?;
    rig.wait_kiosk("done", Duration::from_secs(30)).await?;
    assert_eq!(rig.balance()?, balance - 400);
    Ok(())
}
