//! Helpers the benches share: percentiles, the machine's cores, CPU time of
//! a process, and a load generator run as a separate process (the bench
//! binary started again with a role in its environment), so that the figure
//! a bench prints is the server's, not the server's and its client's.
//!
//! Included by the benches with `#[path = "common/mod.rs"] mod common;`
//! (a directory, so that cargo does not take it for a bench of its own).

#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use std::time::Duration;

/// The setups the throughput benches compare side by side in one run: the
/// embedded default (one backend on SQLite) and the platform (two backends
/// on one PostgreSQL).
pub const SETUPS: [(shomei_backend::store::Engine, usize); 2] = [(shomei_backend::store::Engine::Sqlite, 1), (shomei_backend::store::Engine::Postgres, 2)];

/// Names one engine of the SETUPS ("sqlite" or "postgres") to run only its
/// figures (unset: both, side by side).
pub const ENGINE_ENV: &str = "SHOMEI_BENCH_ENGINE";

/// Runs `run` for each of the SETUPS (or the one `SHOMEI_BENCH_ENGINE`
/// names), a blank line between their figures.
pub async fn each_setup<F, Fut>(mut run: F) -> Result<()>
where
    F: FnMut(shomei_backend::store::Engine, usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let only = std::env::var(ENGINE_ENV).ok().filter(|e| !e.is_empty());
    for (engine, backends) in SETUPS {
        let name = match engine {
            shomei_backend::store::Engine::Sqlite => "sqlite",
            shomei_backend::store::Engine::Postgres => "postgres",
        };
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        run(engine, backends).await?;
        println!();
    }
    Ok(())
}

/// Set in a bench binary started again as a load generator: which one.
pub const ROLE_ENV: &str = "SHOMEI_BENCH_ROLE";

/// The cores this process may run on (not a constant "2").
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub n: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Stats {
    pub fn of(mut v: Vec<Duration>) -> Stats {
        if v.is_empty() {
            return Stats::default();
        }
        v.sort();
        let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
        let total: Duration = v.iter().sum();
        Stats {
            n: v.len(),
            min: v[0],
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: v[v.len() - 1],
            mean: total / v.len() as u32,
        }
    }

    /// "p50 1.23 ms  p99 4.56 ms  (min .. max, n)"
    pub fn line(&self) -> String {
        format!(
            "p50 {:8.3} ms  p99 {:8.3} ms   (min {:.3}, p90 {:.3}, max {:.3} ms; n={})",
            ms(self.p50),
            ms(self.p99),
            ms(self.min),
            ms(self.p90),
            ms(self.max),
            self.n
        )
    }

    /// As JSON numbers in milliseconds (a load generator's report).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n, "min_ms": ms(self.min), "p50_ms": ms(self.p50), "p90_ms": ms(self.p90),
            "p99_ms": ms(self.p99), "max_ms": ms(self.max), "mean_ms": ms(self.mean),
        })
    }

    pub fn from_json(v: &serde_json::Value) -> Stats {
        let d = |k: &str| Duration::from_secs_f64(v[k].as_f64().unwrap_or(0.0).max(0.0) / 1000.0);
        Stats {
            n: v["n"].as_u64().unwrap_or(0) as usize,
            min: d("min_ms"),
            p50: d("p50_ms"),
            p90: d("p90_ms"),
            p99: d("p99_ms"),
            max: d("max_ms"),
            mean: d("mean_ms"),
        }
    }
}

/// Fields 3 onwards of /proc/<pid>/stat (`pid` is `"self"` or a number):
/// the command name (field 2) may hold spaces, so they are counted from its
/// closing parenthesis; `fields[i - 3]` is field i.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().map(str::to_string).collect())
}

/// Seconds in stat fields `a` and `b` together (clock ticks, USER_HZ: 100 a second on Linux).
fn stat_seconds(pid: &str, a: usize, b: usize) -> f64 {
    let Some(fields) = stat_fields(pid) else { return 0.0 };
    let tick = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(a) + tick(b)) / 100.0
}

/// User + system CPU seconds of a process so far (`"self"` or a pid): utime and stime, fields 14 and 15.
pub fn cpu_seconds(pid: &str) -> f64 {
    stat_seconds(pid, 14, 15)
}

/// CPU seconds of the children process `pid` has waited for (reaped): cutime and cstime, fields 16 and 17.
pub fn reaped_children_cpu_seconds(pid: u32) -> f64 {
    stat_seconds(&pid.to_string(), 16, 17)
}

/// CPU seconds a process and all its children have used so far, those that
/// ended included (once it has reaped them, as a server's postmaster does).
pub fn family_cpu_seconds(parent: u32) -> f64 {
    process_family(parent).iter().map(|p| cpu_seconds(&p.to_string())).sum::<f64>() + reaped_children_cpu_seconds(parent)
}

/// The parent of process `pid`, from /proc (field 4).
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(&pid.to_string())?.get(1)?.parse().ok()
}

/// Process `parent` and its children.
pub fn process_family(parent: u32) -> Vec<u32> {
    let children = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()))
        .filter(|pid| parent_of(*pid) == Some(parent));
    std::iter::once(parent).chain(children).collect()
}

/// Runs this bench binary again as the load generator `role` with `envs`,
/// waits for it, and returns the JSON object it printed as its last line on
/// stdout. Its stderr goes to the bench's.
pub async fn run_load_process(role: &str, envs: &[(&str, String)]) -> Result<(serde_json::Value, std::process::ExitStatus)> {
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.env(ROLE_ENV, role).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    let out = cmd.output().await.context("starting the load generator process")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(last) = text.lines().rev().find(|l| l.trim_start().starts_with('{')) else {
        bail!("the load generator ({role}) printed no JSON result ({}): {text}", out.status);
    };
    Ok((serde_json::from_str(last).with_context(|| format!("load generator output: {last}"))?, out.status))
}

/// The role this process was started in, if it is a load generator.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok().filter(|r| !r.is_empty())
}

/// A required setting of a load generator process.
pub fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// "met" / "NOT met" beside a target.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// A value bound into [`copy_row`].
#[derive(Debug, Clone)]
pub enum SqlValue {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// The column names of `table`, in order.
/// (read from a row of it: the table must have one; either engine).
pub async fn columns(c: &mut shomei_backend::store::Conn, table: &str) -> Result<Vec<String>> {
    use sqlx::{Column, Row};
    let row = sqlx::query(&format!("SELECT * FROM {table} LIMIT 1")).fetch_optional(&mut *c).await?;
    let row = row.ok_or_else(|| anyhow::anyhow!("{table} has no row to read its columns from"))?;
    Ok(row.columns().iter().map(|col| col.name().to_string()).collect())
}

/// Copies the rows of `table` whose `key_col` is `key` as new rows: the
/// columns in `set` get new values, an `id` column is left to the database unless
/// given, every other column is copied as it is (`cols`: the table's
/// columns, from [`columns`], so that a new migration does not break the
/// bench). Returns how many rows it wrote.
pub async fn copy_row(
    c: &mut shomei_backend::store::Conn,
    table: &str,
    cols: &[String],
    key_col: &str,
    key: SqlValue,
    set: &[(&str, SqlValue)],
) -> Result<i64> {
    let mut names = Vec::new();
    let mut values = Vec::new();
    let mut binds = Vec::new();
    for col in cols {
        let given = set.iter().find(|(name, _)| name == col);
        if col == "id" && given.is_none() {
            continue;
        }
        names.push(col.clone());
        match given {
            Some((_, v)) => {
                values.push(format!("${}", binds.len() + 1));
                binds.push(v.clone());
            }
            None => values.push(col.clone()),
        }
    }
    binds.push(key);
    let sql = format!("INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE {key_col} = ${}", names.join(", "), values.join(", "), binds.len());
    let mut q = sqlx::query(&sql);
    for v in binds {
        q = match v {
            SqlValue::Int(i) => q.bind(i),
            SqlValue::Text(t) => q.bind(t),
            SqlValue::Blob(b) => q.bind(b),
            SqlValue::Null => q.bind(Option::<i64>::None),
        };
    }
    let done = q.execute(&mut *c).await?;
    anyhow::ensure!(done.rows_affected() >= 1, "copying rows of {table}: no row has {key_col} = the key");
    Ok(done.rows_affected() as i64)
}
