//! Latency of D-Bus `ListJobs` as a desktop client sees it: one connection to the bus named by
//! `DBUS_SYSTEM_BUS_ADDRESS`, N calls (default 50), p50/p99 and the reply size. Run by
//! `bench/daemon-scale.sh` (docs/performance.md, "Daemon at scale").

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")?;
        let conn = zbus::connection::Builder::address(address.as_str())
            .build()
            .await?;
        let proxy = zbus::Proxy::new(
            &conn,
            "org.bms.Manager1",
            "/org/bms/Manager1",
            "org.bms.Manager1",
        )
        .await?;
        let mut times = Vec::with_capacity(calls);
        let mut size = 0;
        for _ in 0..calls.max(1) {
            let t = Instant::now();
            let reply: String = proxy.call("ListJobs", &("{}",)).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = reply.len();
        }
        times.sort_by(f64::total_cmp);
        let q = |p: f64| times[((p * times.len() as f64) as usize).min(times.len() - 1)];
        println!(
            "n={} p50={:.1} ms p99={:.1} ms reply={size} bytes",
            times.len(),
            q(0.5),
            q(0.99)
        );
        Ok(())
    })
}
