//! A service manager that reads its notification socket slowly (here: never, after READY=1)
//! must not stall bmsd: status updates that find the queue full are dropped, runs go on, the
//! control socket answers, and SIGTERM still stops the daemon promptly.

use bms_tests::runner_util::*;
use std::time::{Duration, Instant};

#[test]
fn an_unread_notify_socket_does_not_stall_the_daemon() {
    let (mut d, _src, _repo) = daemon_with_job("a", &[]);
    // A daemon stalled on its notifications would make every call below hang: past a bound,
    // kill it so that the test fails instead.
    let pid = d.pid();
    let (done, stalled) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if stalled.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    // Each run sends at least two STATUS= updates; the socket's queue holds about ten
    // (net.unix.max_dgram_qlen), and nothing reads it from here on.
    for i in 0..12 {
        let id = d.start_run("a");
        let r = d.wait_run_final(id, Duration::from_secs(30));
        assert_eq!(r["run"]["state"], "succeeded", "run {i}: {r}");
    }
    assert_eq!(d.status_json()["jobs"], 1);
    let _ = done.send(());
    let started = Instant::now();
    assert!(d.stop().success(), "{}", d.log());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stopping took {:?}",
        started.elapsed()
    );
}
