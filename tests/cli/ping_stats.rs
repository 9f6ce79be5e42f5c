//! `send --reply --stats` ends like ping: sent, replies, loss %, and round trip
//! min/avg/max/mdev with p50/p90/p99, checked against a peer whose answers take known,
//! different times and against one that leaves every other datagram unanswered.

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use crate::util::*;

/// How long the slow echo peer takes before it answers datagram `i` (1-based): 10 ms times
/// `i`, its workload, not a wait of the test.
fn ten_ms_times(i: usize) -> Duration {
    Duration::from_millis(10 * i as u64)
}

/// A peer on loopback that answers the datagrams for which `answer(index)` (1-based) is
/// true, `delay(index)` after each arrives; it stops after `n` datagrams.
fn peer(
    n: usize,
    delay: fn(usize) -> Duration,
    answer: fn(usize) -> bool,
) -> (String, thread::JoinHandle<()>) {
    let s: UdpSocket = udp4();
    let addr = local(&s);
    let handle = thread::spawn(move || {
        for i in 1..=n {
            let (payload, from) = recv(&s);
            if answer(i) {
                thread::sleep(delay(i));
                s.send_to(&payload, from).expect("echo");
            }
        }
    });
    (addr, handle)
}

/// The N numbers after `label` up to ` ms`: `label 1.000/2.000/3.000 ms` -> [1.0, 2.0, 3.0].
fn figures<const N: usize>(line: &str, label: &str) -> Option<[f64; N]> {
    let rest = &line[line.find(label)? + label.len()..];
    let numbers = &rest[..rest.find(" ms")?];
    let v: Vec<f64> = numbers
        .split('/')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

#[test]
fn round_trips_against_a_peer_that_answers_after_10_to_100ms() {
    let (to, peer) = peer(10, ten_ms_times, |_| true);
    let r = run(
        &["send", "--reply", "--stats", "-n", "10", &to, "ping"],
        b"",
    );
    peer.join().unwrap();
    r.check(
        0,
        bytes("ping\n".repeat(10)),
        with(|err| {
            let text = String::from_utf8_lossy(err);
            let [line] = text.lines().collect::<Vec<_>>()[..] else {
                return Err("should be one line".into());
            };
            if !line.starts_with("udpcat: sent 10 datagrams, 40 bytes in ")
                || !line.contains("s; 10 replies, 0% loss; round trip min/avg/max/mdev ")
            {
                return Err("should count 10 sent, 10 replies and 0% loss".into());
            }
            let Some([min, avg, max, mdev]) = figures(line, "min/avg/max/mdev ") else {
                return Err("should have min/avg/max/mdev in ms".into());
            };
            let Some([p50, p90, p99]) = figures(line, "p50/p90/p99 ") else {
                return Err("should have p50/p90/p99 in ms".into());
            };
            // Round trip i takes at least 10·i ms: the k-th smallest is at least 10·k, so p50
            // (the 5th of 10) >= 50, p90 (9th) >= 90 and p99 (10th) >= 100, less the 0.4 %
            // of a histogram bucket. The ceilings are loose, for a loaded machine, yet apart
            // enough that percentiles reporting min, max or one another fail.
            let ordered = 10.0 <= min
                && min <= p50
                && p50 <= p90
                && p90 <= p99
                && p99 <= max
                && min <= avg
                && avg <= max;
            if !ordered {
                return Err(
                    "should be 10 <= min <= p50 <= p90 <= p99 <= max and min <= avg <= max".into(),
                );
            }
            if !(49.5..85.0).contains(&p50) || !(89.0..).contains(&p90) || p99 < 99.0 {
                return Err("p50 should be about 50 ms, p90 about 90, p99 about 100".into());
            }
            if max < 100.0 || !(55.0..95.0).contains(&avg) {
                return Err("max should be at least 100 ms and avg about 55".into());
            }
            if !(10.0..=max - min).contains(&mdev) {
                return Err("mdev should be about 29 ms (10 to 100 ms, evenly spread)".into());
            }
            Ok(())
        }),
    );
}

#[test]
fn loss_is_exact_when_every_other_datagram_goes_unanswered() {
    let (to, peer) = peer(4, |_| Duration::ZERO, |i| i % 2 == 1);
    let r = run(
        &["send", "--reply", "--stats", "-t", "1s", &to],
        b"1\n2\n3\n4\n",
    );
    peer.join().unwrap();
    r.check(
        3,
        bytes("1\n3\n"),
        lines(vec![
            line(&["udpcat: warning: no reply to datagram 2 within 1s"]),
            line(&["udpcat: warning: no reply to datagram 4 within 1s"]),
            line(&[
                "udpcat: sent 4 datagrams, 4 bytes in ",
                "s; 2 replies, 50% loss; round trip min/avg/max/mdev ",
                " ms, p50/p90/p99 ",
            ]),
            line(&["udpcat: error: 2 of 4 datagrams got no reply within 1s"]),
        ]),
    );
}

/// Every reply lost: the loss is 100 % and there is no round trip to show.
#[test]
fn no_reply_at_all_is_100_percent_loss_without_round_trips() {
    let (to, peer) = peer(2, |_| Duration::ZERO, |_| false);
    let r = run(
        &[
            "send", "--reply", "--stats", "-t", "200ms", "-n", "2", &to, "x",
        ],
        b"",
    );
    peer.join().unwrap();
    r.check(
        3,
        Expect::Empty,
        with(|err| {
            let text = String::from_utf8_lossy(err);
            let stats = text
                .lines()
                .find(|l| l.starts_with("udpcat: sent "))
                .ok_or("no --stats line")?;
            if !stats.ends_with("s; 0 replies, 100% loss") {
                return Err(format!(
                    "--stats should end `0 replies, 100% loss`: {stats:?}"
                ));
            }
            Ok(())
        }),
    );
}
