//! `send --reply --stats` ends like ping: sent, replies, loss %, and round trip
//! min/avg/max/mdev with p50/p90/p99, checked against a peer whose answer takes a known
//! time and against one that leaves every other datagram unanswered.

use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use crate::util::*;

/// How long the slow echo peer takes before it answers: its workload, not a wait of the test.
const DELAY: Duration = Duration::from_millis(20);

/// A peer on loopback that answers the datagrams for which `answer(index)` (1-based) is
/// true, `delay` after each arrives; it stops after `n` datagrams.
fn peer(n: usize, delay: Duration, answer: fn(usize) -> bool) -> (String, thread::JoinHandle<()>) {
    let s: UdpSocket = udp4();
    let addr = local(&s);
    let handle = thread::spawn(move || {
        for i in 1..=n {
            let (payload, from) = recv(&s);
            if answer(i) {
                thread::sleep(delay);
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
fn round_trips_against_a_peer_that_answers_after_20ms() {
    let (to, peer) = peer(10, DELAY, |_| true);
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
            // The peer's 20 ms are a floor no round trip can beat; the ceiling is loose, for
            // a loaded machine.
            let ordered = 20.0 <= min
                && min <= p50
                && p50 <= p90
                && p90 <= p99
                && p99 <= max
                && min <= avg
                && avg <= max;
            if !ordered {
                return Err(
                    "should be 20 <= min <= p50 <= p90 <= p99 <= max and min <= avg <= max".into(),
                );
            }
            if avg >= 60.0 || p50 >= 60.0 {
                return Err("avg and p50 should be near 20 ms (under 60)".into());
            }
            if !(0.0..=max - min).contains(&mdev) {
                return Err("mdev should be between 0 and max - min".into());
            }
            Ok(())
        }),
    );
}

#[test]
fn loss_is_exact_when_every_other_datagram_goes_unanswered() {
    let (to, peer) = peer(4, Duration::ZERO, |i| i % 2 == 1);
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
    let (to, peer) = peer(2, Duration::ZERO, |_| false);
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
