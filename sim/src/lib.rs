//! What the HTTP simulators share.

use std::io::Write;

/// Serves `app` on `listen` (port 0: a free one) and prints
/// `READY listening on http://ADDR` once it accepts connections: the line
/// the tests and the demo wait for.
pub async fn serve_ready(listen: &str, app: axum::Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "READY listening on http://{addr}")?;
    out.flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}
