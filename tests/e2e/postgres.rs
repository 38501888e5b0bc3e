//! The private PostgreSQL the harness starts (issue 15: every e2e test will
//! run on SQLite and on PostgreSQL): Debian's server, initdb'd per test in a
//! temporary directory, run by its own user on its own port. This proves
//! the recipe on every machine CI runs on; the backend's PostgreSQL store
//! is not built yet.

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
