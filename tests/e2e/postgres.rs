//! The private PostgreSQL the harness starts (issue 15: every e2e test will
//! run on SQLite and on PostgreSQL): Debian's server, initdb'd per test in a
//! temporary directory, run by its own user on its own port; and the move
//! of a SQLite deployment into PostgreSQL with one command.

use crate::harness::*;
use anyhow::Result;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_test_gets_a_private_postgresql_of_its_own_that_is_gone_when_the_test_ends() -> Result<()> {
    let (a, b) = (Postgres::start()?, Postgres::start()?);
    assert_ne!(a.port, b.port);
    for pg in [&a, &b] {
        assert_eq!(pg.psql("shomei", "SHOW port")?, pg.port.to_string());
        let major: u32 = pg.psql("shomei", "SHOW server_version_num")?.parse::<u32>()? / 10000;
        assert!(major >= 15, "PostgreSQL {major}");
        assert_eq!(pg.psql("shomei", "SELECT current_user")?, "shomei");
        // the server runs as its own user, never as root (it refuses root)
        let data = pg.psql("shomei", "SHOW data_directory")?;
        let pid = std::fs::read_to_string(format!("{data}/postmaster.pid"))?.lines().next().unwrap_or_default().trim().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let uid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
        assert!(!uid.is_empty() && uid != "0", "the server's uid is {uid:?}");
        assert!(pg.url.ends_with(&format!(":{}/shomei", pg.port)), "{}", pg.url);
    }
    // what one test writes, another does not see
    a.psql("shomei", "CREATE TABLE orders (id bigint PRIMARY KEY)")?;
    a.psql("shomei", "INSERT INTO orders VALUES (1)")?;
    assert_eq!(a.psql("shomei", "SELECT count(*) FROM orders")?, "1");
    assert_eq!(b.psql("shomei", "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'")?, "0");
    // when the test ends, its server is stopped and its port closed
    let port = a.port;
    drop(a);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    Ok(())
}

/// An existing SQLite deployment moves to PostgreSQL with one command: every
/// table arrives with the same rows (counted here on both sides, checksummed
/// by the command), a second copy into the now non-empty target is refused
/// and changes nothing, and a backend started on the copy opens the sealed
/// PDF of the order placed before and takes new orders after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_is_copied_into_postgresql_whole_once_and_serves_from_there() -> Result<()> {
    use shomei_backend::store::Engine;
    let mut b = Backend::start_on(Engine::Sqlite, None, |_| {}).await?;
    let page = b.order_as_graduate(2).await?;
    let number = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    let order: i64 = b.sql(&format!("SELECT id FROM orders WHERE print_number = '{number}'"))?.parse()?;
    let pdf = b.order_pdf(order).await?;
    assert!(pdf.starts_with(b"%PDF"));
    b.stop().await;
    let tables: Vec<String> = b
        .sql("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name")?
        .lines()
        .map(str::to_string)
        .collect();
    assert!(tables.len() > 40, "{tables:?}");
    let counts = |q: &dyn Fn(&str) -> Result<String>| -> Result<Vec<(String, i64)>> {
        tables.iter().map(|t| Ok((t.clone(), q(&format!("SELECT COUNT(*) FROM {t}"))?.parse::<i64>()?))).collect()
    };
    let before = counts(&|sql| b.sql(sql))?;
    assert!(before.iter().any(|(t, n)| t == "orders" && *n == 1) && before.iter().any(|(t, n)| t == "audit_log" && *n > 0), "{before:?}");

    let pg = Postgres::start()?;
    let copy = || {
        std::process::Command::new(bin("shomei-backend"))
            .args(["copy-to-postgres", &pg.url])
            .env("SHOMEI_BACKEND_DATABASE__URL", &b.database_url)
            .output()
    };
    let out = copy()?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let total: i64 = before.iter().map(|(_, n)| n).sum();
    assert!(said.contains(&format!("copied {} tables, {total} rows", tables.len())), "{said}");
    assert!(said.lines().any(|l| l.starts_with("orders ") && l.contains(" 1 rows") && l.contains("source and target agree")), "{said}");
    let after = counts(&|sql| pg.psql("shomei", sql))?;
    assert_eq!(after, before, "every table has the same rows on PostgreSQL");

    // the target is no longer empty: a second copy is refused and adds nothing
    let out = copy()?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && err.contains("not empty"), "{err}");
    assert_eq!(counts(&|sql| pg.psql("shomei", sql))?, before);

    // a backend on the copy (the same data key) serves what was there, and new orders continue the ids
    let key = b.dir.path().join("backend.key");
    let b2 = Backend::start_on(Engine::Sqlite, None, |c| {
        c.database.url = pg.url.clone();
        c.security.data_key_file = Some(key);
    })
    .await?;
    b2.carry_totp_steps_from(&b);
    assert_eq!(b2.order_pdf(order).await?, pdf, "the sealed PDF opens on PostgreSQL as it was");
    let page = b2.order_as_graduate(1).await?;
    let second = element_text(&page, "print-number").unwrap_or_default().replace(' ', "");
    assert_eq!(pg.psql("shomei", &format!("SELECT id FROM orders WHERE print_number = '{second}'"))?, (order + 1).to_string());
    Ok(())
}

/// On PostgreSQL, a write transaction dropped unfinished (an error path) is
/// rolled back as its connection goes back to the pool: the service-wide
/// write lock it held is free for another backend's writer, which then
/// writes, and the connection serves on, idle. One whose end was lost (its
/// `Transaction` gone) is closed and never lent again, its row never kept.
/// (On PostgreSQL the pool adds no ping of its own to sqlx's: it must still
/// never lend a connection inside a transaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_unfinished_frees_the_write_lock_and_a_lost_one_is_never_lent_again() -> Result<()> {
    use shomei_backend::store;
    use std::time::Duration;
    let pg = Postgres::start()?;
    let (pool, other) = (store::connect(&pg.url).await?, store::connect(&pg.url).await?);
    sqlx::query("CREATE TABLE t (x BIGINT)").execute(&pool).await?;
    let dropped: i32 = {
        let mut tx = store::begin_write(&pool).await?;
        sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await?;
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await?
    };
    // another backend's writer takes the write lock (held, it would wait 10 s for it and fail)
    let mut tx = store::begin_write(&other).await?;
    sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *tx).await?;
    tx.commit().await?;
    let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&other).await?;
    assert_eq!(xs, [2], "the dropped write was rolled back, the other writer's row is in");
    assert_eq!(pg.psql("shomei", &format!("SELECT state FROM pg_stat_activity WHERE pid = {dropped}"))?, "idle", "the connection is kept, outside any transaction");

    let lost: i32 = {
        let mut conn = pool.acquire().await?;
        std::mem::forget(sqlx::Connection::begin(&mut *conn).await?);
        sqlx::query("INSERT INTO t VALUES (3)").execute(&mut *conn).await?;
        sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await?
    };
    wait_until("the connection left inside a transaction is closed", Duration::from_secs(10), || {
        pg.psql("shomei", &format!("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {lost}")).is_ok_and(|n| n == "0")
    })?;
    let mut tx = store::begin_write(&pool).await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await?;
    assert_ne!(pid, lost);
    sqlx::query("INSERT INTO t VALUES (4)").execute(&mut *tx).await?;
    tx.commit().await?;
    let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(&other).await?;
    assert_eq!(xs, [2, 4]);
    Ok(())
}

/// A station's write that waits for its order's lock and is abandoned
/// there (its request dropped: the station hung up) leaves nothing behind:
/// once the lock's holder lets go, another writer takes the order's lock,
/// and the abandoned write's connection ends idle, outside any transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_while_it_waits_for_an_orders_lock_leaves_no_lock_or_transaction_behind() -> Result<()> {
    use shomei_backend::store::{self, WriteKey};
    use sqlx::Connection;
    use std::time::Duration;
    let pg = Postgres::start()?;
    let pool = store::connect(&pg.url).await?;
    // another session holds order 42's lock (class 1, as a station's write on it takes it)
    let mut holder = sqlx::PgConnection::connect(&pg.url).await?;
    sqlx::query("SELECT pg_advisory_lock(1, 42)").execute(&mut holder).await?;
    let mut conn = pool.acquire().await?;
    let waiting: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await?;
    let write = tokio::spawn(async move { store::begin_write_on_held(conn, &[WriteKey::Order(42)]).await.map(drop) });
    let activity = |column: &str| pg.psql("shomei", &format!("SELECT {column} FROM pg_stat_activity WHERE pid = {waiting}"));
    wait_for("the write waits for order 42's lock", Duration::from_secs(10), || Ok(activity("wait_event_type")? == "Lock")).await?;
    write.abort();
    assert!(write.await.is_err_and(|e| e.is_cancelled()), "abandoned while it waited");
    sqlx::query("SELECT pg_advisory_unlock(1, 42)").execute(&mut holder).await?;
    // held by an abandoned transaction, the lock would keep this writer waiting 10 s, then fail it
    let tx = store::begin_write_on(&pool, &[WriteKey::Order(42)]).await?;
    tx.commit().await?;
    wait_for("the abandoned write's connection is idle", Duration::from_secs(10), || Ok(activity("state")? == "idle")).await?;
    Ok(())
}
