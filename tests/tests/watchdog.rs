//! Under systemd's watchdog (WATCHDOG_USEC set), bmsd sends WATCHDOG=1 at about half the interval.

use bms_tests::{Daemon, DaemonOpts};
use std::time::{Duration, Instant};

#[test]
fn pets_the_watchdog_at_half_the_interval() {
    let mut d = Daemon::start_with(DaemonOpts {
        env: vec![("WATCHDOG_USEC".into(), "400000".into())],
        ..Default::default()
    });
    let start = Instant::now();
    for _ in 0..4 {
        d.wait_for_notify("WATCHDOG=1", Duration::from_secs(5));
    }
    let took = start.elapsed();
    // Four pings at 200 ms intervals: well under the 400 ms interval each, and not a busy loop.
    assert!(
        took < Duration::from_secs(3),
        "watchdog pings too slow: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "watchdog pings too fast: {took:?}"
    );
    assert!(d.stop().success());
}

#[test]
fn no_watchdog_pings_for_another_pid() {
    // WATCHDOG_PID naming another process means the watchdog is not ours.
    let mut d = Daemon::start_with(DaemonOpts {
        env: vec![
            ("WATCHDOG_USEC".into(), "200000".into()),
            ("WATCHDOG_PID".into(), "1".into()),
        ],
        ..Default::default()
    });
    // Positive control: a reload makes the daemon send a STATUS= update on the same socket
    // within the window, so silence about WATCHDOG=1 is not a dead channel.
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_millis(800);
    let mut buf = [0u8; 4096];
    let mut heard_reload = false;
    while Instant::now() < deadline {
        if let Ok(n) = d.notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]);
            assert!(
                !msg.contains("WATCHDOG=1"),
                "pinged a watchdog that belongs to pid 1: {msg}"
            );
            heard_reload |= msg.contains("configuration reloaded");
        }
    }
    assert!(
        heard_reload,
        "the reload's STATUS= never arrived: the notify socket was not heard at all"
    );
    assert!(d.stop().success());
}
