//! `udpcat send`: MESSAGE and stdin framing, input errors, live sending, options, replies.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::util::*;

/// Run `udpcat send ARGS... <peer>` (the address last, then `tail`) with `stdin`.
fn send_to_peer(peer: &std::net::UdpSocket, args: &[&str], tail: &[&str], stdin: &[u8]) -> Run {
    let to = local(peer);
    let mut full = vec!["send"];
    full.extend_from_slice(args);
    full.push(&to);
    full.extend_from_slice(tail);
    run(&full, stdin)
}

#[test]
fn message_words_are_one_datagram_joined_by_single_spaces() {
    let peer = udp4();
    let r = send_to_peer(&peer, &[], &["hello", "big  world", "!"], b"");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"hello big  world !"]));
}

#[test]
fn stdin_lines_are_datagrams() {
    let peer = udp4();
    let r = send_to_peer(&peer, &[], &[], b"one\r\ntwo\n\n\r\nlast without newline");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(
        drain(&peer),
        payloads([b"one", b"two", b"", b"", b"last without newline"])
    );
}

#[test]
fn stdin_null_terminated_records() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["-0"], &[], b"a\0b\nc\r\n\0\0");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"a", b"b\nc\r\n", b""]));
}

#[test]
fn whole_stdin_is_one_datagram() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--whole"], &[], b"line 1\nline 2\r\n\n");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"line 1\nline 2\r\n\n"]));
}

#[test]
fn chunk_splits_stdin_into_fixed_sizes_last_shorter() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--chunk", "4"], &[], b"abcd\xff\x00gh\nj");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"abcd", b"\xff\x00gh", b"\nj"]));
}

#[test]
fn largest_ipv4_and_ipv6_datagrams_are_sent_whole() {
    let big4 = pattern(65507);
    let peer = udp4();
    let r = send_to_peer(&peer, &["--whole", "--binary"], &[], &big4);
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), vec![big4]);

    let big6 = pattern(65527);
    let peer = udp6();
    let r = send_to_peer(&peer, &["--whole", "--binary"], &[], &big6);
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), vec![big6]);
}

#[test]
fn hex_records_with_spaces_and_colons_are_sent_as_bytes() {
    let peer = udp4();
    let r = send_to_peer(
        &peer,
        &["--hex"],
        &[],
        b"68 65:6c6C 6f\n00ff\n\nDE:AD:BE:EF\n",
    );
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(
        drain(&peer),
        payloads([b"hello", b"\x00\xff", b"", b"\xde\xad\xbe\xef"])
    );
}

#[test]
fn bad_hex_stops_at_the_record_naming_its_line() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["-x"], &[], b"6869\nzz\n6869\n");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", "stdin line 2", "bad hex"])]),
    );
    assert_eq!(drain(&peer), payloads([b"hi"]));
}

/// `listen -f hex` output piped into `send --hex` reproduces the datagrams byte for byte.
#[test]
fn listen_hex_output_round_trips_through_send_hex() {
    let originals = payloads([b"\x00\x01\xfe\xff", b"text\r\n", b"", b"\x1b]52;c;x\x07"]);
    let l = spawn_listen(&["-f", "hex", "-c", "4", "127.0.0.1:0"], 1);
    let s = udp4();
    for m in &originals {
        send_to(&s, m, l.addr());
    }
    let addrs = l.addrs.clone();
    let listened = l.finish();
    listened.check(
        0,
        bytes("0001feff\n746578740d0a\n\n1b5d35323b633b7807\n"),
        ready_then(&addrs, vec![]),
    );
    let peer = udp4();
    let r = send_to_peer(&peer, &["--hex"], &[], &listened.stdout);
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), originals);
}

#[test]
fn non_utf8_stdin_stops_at_that_line_after_sending_the_earlier_ones() {
    let peer = udp4();
    let r = send_to_peer(&peer, &[], &[], b"good\nalso good\nb\xffd\nnever sent\n");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            "stdin line 3",
            "not valid UTF-8",
            "--binary",
        ])]),
    );
    assert_eq!(drain(&peer), payloads([b"good", b"also good"]));
}

#[test]
fn binary_sends_non_utf8_lines_unchanged() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--binary"], &[], b"good\nb\xffd\n\x00\n");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"good", b"b\xffd", b"\x00"]));
}

/// The error line for a record of `len` bytes over `max` (IPv4's or IPv6's), after `sent`.
fn too_large(place: &str, len: usize, max: usize, sent: &str) -> String {
    let fam = if max == 65507 { "IPv4" } else { "IPv6" };
    format!(
        "udpcat: error: {place}: {len} bytes, more than one UDP datagram can carry over {fam} \
         ({max}); {sent} sent before it"
    )
}

/// An oversize line is read to its end and named with its real size; the lines before it
/// were sent, nothing after it.
#[test]
fn oversize_line_3_is_named_with_its_real_size_after_lines_1_and_2_were_sent() {
    let peer = udp4();
    let input = [&b"1\n2\n"[..], &vec![b'a'; 70_000], b"\nnever\n4\n"].concat();
    let r = send_to_peer(&peer, &[], &[], &input);
    let want = too_large("stdin line 3", 70_000, 65507, "2 datagrams");
    r.check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), payloads([b"1", b"2"]));
}

/// Over IPv6 the limit is 65,527 bytes: a line of exactly that is sent, longer ones are
/// named with their size.
#[test]
fn oversize_line_over_ipv6_is_named_with_its_size_and_the_ipv6_limit() {
    let peer = udp6();
    let big = vec![b'a'; 65527];
    let input = [&b"1\n"[..], &big, b"\n", &vec![b'b'; 70_000], b"\nnever\n"].concat();
    let r = send_to_peer(&peer, &[], &[], &input);
    let want = too_large("stdin line 3", 70_000, 65527, "2 datagrams");
    r.check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), vec![b"1".to_vec(), big]);

    let r = send_to_peer(&peer, &[], &[], &vec![b'a'; 65528]);
    let want = too_large("stdin line 1", 65528, 65527, "0 datagrams");
    r.check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

/// 65,507 bytes is one IPv4 datagram, with or without CRLF; 65,508 is one byte too many,
/// named as 65,508 also when its line ends in CRLF (the "\r" is not payload), wherever the
/// reads cut between the "\r" and the "\n".
#[test]
fn a_line_of_the_limit_is_sent_and_one_byte_more_is_named_with_its_size() {
    let peer = udp4();
    let max = vec![b'a'; 65507];
    let input = [&max[..], b"\n", &max, b"\r\nsmall\n"].concat();
    let r = send_to_peer(&peer, &[], &[], &input);
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(
        drain(&peer),
        vec![max.clone(), max.clone(), b"small".to_vec()]
    );

    let one_more = vec![b'a'; 65508];
    let r = send_to_peer(
        &peer,
        &[],
        &[],
        &[&b"small\n"[..], &one_more, b"\nafter\n"].concat(),
    );
    let want = too_large("stdin line 2", 65508, 65507, "1 datagram");
    r.check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), payloads([b"small"]));

    // udpcat has read the line and its "\r" (one byte past the most it keeps of a line)
    // before the "\n" arrives.
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", &to]));
    p.write_stdin(b"small\n");
    assert_eq!(recv(&peer).0, b"small");
    let before = p.bytes_read().unwrap_or_default();
    p.write_stdin(&[&one_more[..], b"\r"].concat());
    p.wait_bytes_read(before + 65509);
    p.write_stdin(b"\nafter\n");
    let want = too_large("stdin line 2", 65508, 65507, "1 datagram");
    p.finish()
        .check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

/// udpcat reads on to the end of the bad line, not to the end of the input: on a live
/// input that stays open, the error comes as soon as the line has ended.
#[test]
fn oversize_line_fails_at_its_end_without_waiting_for_more_input() {
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", &to]));
    p.write_stdin(b"1\n");
    assert_eq!(recv(&peer).0, b"1");
    p.write_stdin(&[&vec![b'a'; 70_000][..], b"\n"].concat());
    let want = too_large("stdin line 2", 70_000, 65507, "1 datagram");
    p.finish_with_stdin_open()
        .check(1, Expect::Empty, lines(vec![line(&[&want])]));
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

/// A 1 GiB line is counted as it passes, not kept: udpcat's peak memory stays that of any
/// run while it reads it, and the error names all 1,073,741,824 bytes.
#[test]
fn a_one_gib_line_is_counted_in_flat_memory() {
    const SIZE: usize = 1 << 30;
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", &to]));
    let block = vec![b'a'; 1 << 20];
    let mut written = 0;
    // A write fails only if udpcat stopped reading (it must not); the check below says how.
    while written < SIZE && p.try_write_stdin(&block).is_ok() {
        written += block.len();
    }
    // All of it but what the pipe holds has been read by now, and udpcat waits for the end.
    let peak = (written == SIZE).then(|| p.peak_memory_kib());
    let _ = p.try_write_stdin(b"\nnever\n");
    let want = too_large("stdin line 1", SIZE, 65507, "0 datagrams");
    p.finish()
        .check(1, Expect::Empty, lines(vec![line(&[&want])]));
    let peak = peak.unwrap_or_default();
    assert!(peak < 32 * 1024, "peak memory {peak} KiB for a 1 GiB line");
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

/// Hex text longer than udpcat keeps for a record (4 characters a byte) is decoded as it
/// comes: sent when its payload fits one datagram.
#[test]
fn hex_text_longer_than_the_buffer_is_sent_when_its_payload_fits() {
    let peer = udp4();
    let input = [&b"00"[..], &vec![b' '; 300_000], b"ff\n01\n"].concat();
    let r = send_to_peer(&peer, &["--hex"], &[], &input);
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"\x00\xff", b"\x01"]));
}

#[test]
fn oversize_message_words_are_an_error() {
    let peer = udp4();
    let big = "m".repeat(65508);
    let r = send_to_peer(&peer, &[], &[&big], b"");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", "message", "65508 bytes"])]),
    );
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

/// A line is sent as soon as it is complete, while stdin stays open.
#[test]
fn each_line_is_sent_before_stdin_closes() {
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", &to]));
    p.write_stdin(b"first\n");
    assert_eq!(recv(&peer).0, b"first");
    p.write_stdin(b"second\nthi");
    assert_eq!(recv(&peer).0, b"second");
    p.write_stdin(b"rd");
    p.close_stdin();
    p.finish().check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"third"]));
}

#[test]
fn bind_chooses_the_source_address_and_port() {
    let peer = udp4();
    let (r, src) = with_free_port4(|port| {
        let src = format!("127.0.0.1:{port}");
        let r = send_to_peer(&peer, &["-b", &src], &["from", "a", "chosen", "port"], b"");
        // Exit 1 naming the address: someone took the port since it was free.
        let clash = r.code() == 1 && String::from_utf8_lossy(&r.stderr).contains(&src);
        ((r, src), clash)
    });
    r.check(0, Expect::Empty, Expect::Empty);
    let (got, from) = recv(&peer);
    assert_eq!(
        (got.as_slice(), from),
        (
            &b"from a chosen port"[..],
            src.parse::<SocketAddr>().unwrap()
        )
    );
    let r = send_to_peer(&peer, &["--bind", "127.0.0.3:0"], &["x"], b"");
    r.check(0, Expect::Empty, Expect::Empty);
    let (_, from) = recv(&peer);
    assert_eq!(from.ip().to_string(), "127.0.0.3");
}

#[test]
fn repeat_sends_each_record_n_times() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["-n", "3"], &["x"], b"");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"x", b"x", b"x"]));
    let r = send_to_peer(&peer, &["--repeat", "2"], &[], b"a\nb\n");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"a", b"a", b"b", b"b"]));
}

#[test]
fn rate_limited_sending_still_delivers_everything_in_order() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--rate", "200"], &[], b"1\n2\n3\n4\n5\n");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"1", b"2", b"3", b"4", b"5"]));
}

/// Receives `n` datagrams on `peer`, each with the moment the kernel took it in
/// (SO_TIMESTAMPNS), so a test thread that wakes late does not change the gaps it sees.
#[track_caller]
fn arrivals(peer: &std::net::UdpSocket, n: usize) -> Vec<(Vec<u8>, Duration)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt};
    use std::os::fd::{AsFd, AsRawFd};
    setsockopt(
        &peer.as_fd(),
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    )
    .unwrap();
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<SockaddrStorage>(
            peer.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => m,
            // The test process may be stopped and continued by whatever shares the machine.
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!(
                "datagram {} of {n} did not reach {:?} within {RECV_SAFETY:?}: {e}",
                out.len() + 1,
                peer.local_addr()
            ),
        };
        let at = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
            _ => None,
        });
        let len = msg.bytes;
        let at = at.expect("SO_TIMESTAMPNS gave no timestamp");
        out.push((buf[..len].to_vec(), at));
    }
    out
}

/// Seconds from the first arrival to the last.
fn span(a: &[(Vec<u8>, Duration)]) -> f64 {
    match (a.first(), a.last()) {
        (Some(f), Some(l)) => (l.1.saturating_sub(f.1)).as_secs_f64(),
        _ => 0.0,
    }
}

/// Gaps between consecutive arrivals, in seconds.
fn gaps(a: &[(Vec<u8>, Duration)]) -> Vec<f64> {
    a.windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1).as_secs_f64())
        .collect()
}

/// --rate keeps an absolute schedule, so 1000 datagrams at 10,000/s take 0.0999 s from first
/// to last: never less (never faster than asked), and not much more. The limits are wide on
/// purpose (a shared machine); a sleep from "now" for whole milliseconds each time took ~1.1 s.
#[test]
fn rate_10000_sends_1000_lines_in_a_tenth_of_a_second() {
    let peer = udp4();
    let to = local(&peer);
    let input: Vec<u8> = (0..1000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let mut p = Proc::spawn(udpcat(&["send", "--rate", "10000", &to]));
    p.write_stdin(&input);
    p.close_stdin();
    let got = arrivals(&peer, 1000);
    p.finish().check(0, Expect::Empty, Expect::Empty);
    let want: Vec<Vec<u8>> = (0..1000).map(|i| format!("{i}").into_bytes()).collect();
    let payloads: Vec<Vec<u8>> = got.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(payloads, want);
    let s = span(&got);
    assert!(
        (0.0999 * 0.98..0.5).contains(&s),
        "1000 datagrams at --rate 10000 took {s:.4} s first to last (0.0999 s asked)"
    );
    assert!(drain(&peer).is_empty());
}

/// Each --repeat copy counts as a datagram for --rate, and copies go out in batches without
/// running ahead of the schedule.
#[test]
fn rate_counts_each_repeated_copy() {
    let peer = udp4();
    let mut p = Proc::spawn(udpcat(&[
        "send",
        "--rate",
        "5000",
        "-n",
        "500",
        &local(&peer),
        "copy",
    ]));
    let got = arrivals(&peer, 500);
    p.close_stdin();
    p.finish().check(0, Expect::Empty, Expect::Empty);
    assert!(got.iter().all(|(p, _)| p == b"copy"));
    let s = span(&got);
    assert!(
        (0.0998 * 0.98..0.5).contains(&s),
        "500 copies at --rate 5000 took {s:.4} s first to last (0.0998 s asked)"
    );
    assert!(drain(&peer).is_empty());
}

/// A rate whose gap is not a whole number of milliseconds (3.33 ms) is kept on average: the
/// wait is not rounded to milliseconds, and lateness is made up (a wait rounded up to 4 ms
/// gave 250/s, a sixth slow).
#[test]
fn rate_300_is_kept_on_average() {
    let peer = udp4();
    let input: Vec<u8> = (0..150)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let mut p = Proc::spawn(udpcat(&["send", "--rate", "300", &local(&peer)]));
    p.write_stdin(&input);
    p.close_stdin();
    let got = arrivals(&peer, 150);
    p.finish().check(0, Expect::Empty, Expect::Empty);
    let s = span(&got);
    let want = 149.0 / 300.0;
    assert!(
        (want * 0.98..want * 1.08).contains(&s),
        "150 datagrams at --rate 300 took {s:.4} s first to last ({want:.4} s asked)"
    );
}

/// Input that comes late (stdin idle past the time the next datagram was due) re-anchors the
/// schedule: the late record goes at once and the ones after it keep the full gap, with no
/// catch-up burst.
#[test]
fn rate_does_not_burst_after_idle_input() {
    let peer = udp4();
    let mut p = Proc::spawn(udpcat(&["send", "--rate", "10", &local(&peer)]));
    p.write_stdin(b"1\n");
    assert_eq!(recv(&peer).0, b"1");
    // Idle input is what this test is about: the next record comes 150 ms after the first
    // datagram, 50 ms after it was due.
    std::thread::sleep(Duration::from_millis(150));
    p.write_stdin(b"2\n3\n4\n");
    p.close_stdin();
    let got = arrivals(&peer, 3);
    p.finish().check(0, Expect::Empty, Expect::Empty);
    let payloads: Vec<&[u8]> = got.iter().map(|(p, _)| p.as_slice()).collect();
    assert_eq!(payloads, [b"2", b"3", b"4"]);
    for g in gaps(&got) {
        assert!(
            g >= 0.08,
            "gaps {:?} s at --rate 10 (0.1 s asked)",
            gaps(&got)
        );
    }
}

/// At a slow rate each datagram waits its turn: 20 per second is a 50 ms gap. Lateness is
/// caught up by at most 5 ms, so even on a busy machine no gap is shorter than 45 ms (less
/// a millisecond here for the timestamps).
#[test]
fn rate_20_spaces_datagrams_evenly() {
    let peer = udp4();
    let mut p = Proc::spawn(udpcat(&["send", "--rate", "20", &local(&peer)]));
    p.write_stdin(b"a\nb\nc\nd\ne\n");
    p.close_stdin();
    let got = arrivals(&peer, 5);
    p.finish().check(0, Expect::Empty, Expect::Empty);
    for g in gaps(&got) {
        assert!(
            g >= 0.044,
            "gaps {:?} s at --rate 20 (0.05 s asked)",
            gaps(&got)
        );
    }
}

/// A slow rate still stops promptly on SIGINT (the wait for the next datagram, 10 s away,
/// is one a signal ends), with the status for SIGINT.
#[test]
fn sigint_stops_a_slow_rate_promptly() {
    let peer = udp4();
    let mut p = Proc::spawn(udpcat(&["send", "--rate", "0.1", &local(&peer)]));
    p.write_stdin(b"now\nin ten seconds\n");
    p.close_stdin();
    assert_eq!(recv(&peer).0, b"now");
    let asked = Instant::now();
    p.signal(nix::sys::signal::Signal::SIGINT);
    p.finish().check(130, Expect::Empty, Expect::Empty);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGINT"
    );
    assert!(drain(&peer).is_empty());
}

#[test]
fn localhost_sends_to_ipv4_and_dash_6_to_ipv6() {
    let p4 = udp4();
    let to4 = format!("localhost:{}", p4.local_addr().unwrap().port());
    run(&["send", &to4, "v4"], b"").check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&p4), payloads([b"v4"]));

    let p6 = udp6();
    let to6 = format!("localhost:{}", p6.local_addr().unwrap().port());
    run(&["send", "-6", &to6, "v6"], b"").check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&p6), payloads([b"v6"]));
}

#[test]
fn ipv6_destination_in_brackets() {
    let peer = udp6();
    let r = send_to_peer(&peer, &[], &["six"], b"");
    r.check(0, Expect::Empty, Expect::Empty);
    assert_eq!(drain(&peer), payloads([b"six"]));
}

#[test]
fn reply_against_listen_echo_prints_each_reply() {
    let l = spawn_listen(&["--echo", "-c", "3", "127.0.0.1:0"], 1);
    let to = l.addr().to_string();
    let r = run(&["send", "--reply", &to], b"a\nbb\nccc\n");
    let addrs = l.addrs.clone();
    let listened = l.finish();
    r.check(0, bytes("a\nbb\nccc\n"), Expect::Empty);
    listened.check(0, bytes("a\nbb\nccc\n"), ready_then(&addrs, vec![]));
}

#[test]
fn reply_with_source_and_stats_reports_round_trips() {
    let l = spawn_listen(&["--echo", "-c", "2", "127.0.0.1:0"], 1);
    let to = l.addr().to_string();
    let r = run(&["send", "-r", "-s", "--stats", &to], b"x\nyz\n");
    let addrs = l.addrs.clone();
    let listened = l.finish();
    r.check(
        0,
        bytes(format!("{to}\tx\n{to}\tyz\n")),
        lines(vec![line(&[
            "udpcat: sent 2 datagrams, 3 bytes in ",
            "2 replies",
            "; 2 replies, 0% loss; round trip min/avg/max/mdev ",
            " ms, p50/p90/p99 ",
        ])]),
    );
    listened.check(0, bytes("x\nyz\n"), ready_then(&addrs, vec![]));
}

#[test]
fn reply_from_a_silent_peer_times_out_with_3() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--reply", "--timeout", "200ms"], &["anyone?"], b"");
    r.check(
        3,
        Expect::Empty,
        lines(vec![
            line(&["udpcat: warning:", "no reply to datagram 1 within 200ms"]),
            line(&[
                "udpcat: error:",
                "1 of 1 datagrams got no reply within 200ms",
            ]),
        ]),
    );
    assert_eq!(drain(&peer), payloads([b"anyone?"]));
}

/// A missing reply is a warning; udpcat goes on with the next record.
#[test]
fn reply_goes_on_after_a_missing_reply() {
    let peer = udp4();
    let to = local(&peer);
    // The timeout must outlast the test's own answer to "second" even on a loaded machine;
    // "first" costs the whole of it, so keep it no longer than that.
    let mut p = Proc::spawn(udpcat(&["send", "-r", "-t", "3s", &to]));
    p.write_stdin(b"first\nsecond\n");
    p.close_stdin();
    let (m, from) = recv(&peer);
    assert_eq!(m, b"first");
    // Leave "first" unanswered; answer "second".
    let (m, _) = recv(&peer);
    assert_eq!(m, b"second");
    peer.send_to(b"pong", from).unwrap();
    p.finish().check(
        3,
        bytes("pong\n"),
        lines(vec![
            line(&["udpcat: warning:", "no reply to datagram 1 within 3s"]),
            line(&["udpcat: error:", "1 of 2 datagrams got no reply"]),
        ]),
    );
}

#[test]
fn wait_prints_what_comes_back() {
    let l = spawn_listen(&["--echo", "-c", "2", "127.0.0.1:0"], 1);
    let to = l.addr().to_string();
    let r = run(&["send", "--wait", "2s", &to], b"one\ntwo\n");
    let addrs = l.addrs.clone();
    let listened = l.finish();
    r.check(0, bytes("one\ntwo\n"), Expect::Empty);
    listened.check(0, bytes("one\ntwo\n"), ready_then(&addrs, vec![]));
}

#[test]
fn wait_with_nothing_coming_back_exits_3() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["-w", "200ms"], &["hello?"], b"");
    r.check(
        3,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            "no datagram came back within 200ms",
        ])]),
    );
    assert_eq!(drain(&peer), payloads([b"hello?"]));
}

#[test]
fn sending_to_a_closed_port_exits_4() {
    let (r, to) = with_free_port4(|port| {
        let to = format!("127.0.0.1:{port}");
        let r = run(&["send", &to, "anybody"], b"");
        // Exit 0: something took the port since it was free, and received the datagrams.
        let clash = r.code() == 0;
        ((r, to), clash)
    });
    r.check(
        4,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            &to,
            "refused: port unreachable (nothing listens there); 1 datagram sent",
        ])]),
    );
}

#[test]
fn sending_lines_to_a_closed_port_exits_4() {
    let (r, to) = with_free_port4(|port| {
        let to = format!("127.0.0.1:{port}");
        let r = run(&["send", &to], b"a\nb\nc\nd\n");
        // Exit 0: something took the port since it was free, and received the datagrams.
        let clash = r.code() == 0;
        ((r, to), clash)
    });
    r.check(
        4,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", &to, "port unreachable"])]),
    );
}

#[test]
fn stats_count_datagrams_and_bytes_sent() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["--stats"], &[], b"ab\ncd\n\n");
    r.check(
        0,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: sent 3 datagrams, 4 bytes in ",
            "0 replies",
        ])]),
    );
    assert_eq!(drain(&peer), payloads([b"ab", b"cd", b""]));
}

#[test]
fn non_utf8_null_record_is_named_by_record_number() {
    let peer = udp4();
    let r = send_to_peer(&peer, &["-0"], &[], b"ok\0b\xffd\0never\0");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            "stdin record 2",
            "not valid UTF-8",
        ])]),
    );
    assert_eq!(drain(&peer), payloads([b"ok"]));
}

#[test]
fn oversize_over_ipv6_is_beyond_65527_bytes() {
    let peer = udp6();
    let big = pattern(65528);
    let r = send_to_peer(&peer, &["--whole", "--binary"], &[], &big);
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            "stdin",
            "65528 bytes",
            "IPv6",
            "65527",
        ])]),
    );
    assert_eq!(drain(&peer), Vec::<Vec<u8>>::new());
}

#[test]
fn replies_print_in_the_chosen_format() {
    let l = spawn_listen(&["--echo", "-c", "2", "127.0.0.1:0"], 1);
    let to = l.addr().to_string();
    let r = run(
        &["send", "-r", "-f", "hex", "--binary", &to],
        b"\x00\xff\nAB\n",
    );
    let addrs = l.addrs.clone();
    let listened = l.finish();
    r.check(0, bytes("00ff\n4142\n"), Expect::Empty);
    listened.check(
        0,
        bytes(b"\x00\xff\nAB\n"),
        ready_then(
            &addrs,
            vec![line(&[
                "udpcat: warning:",
                "not UTF-8",
                "--format hex|json",
            ])],
        ),
    );
}

#[test]
fn verbose_says_which_address_a_name_resolved_to() {
    let peer = udp4();
    let port = peer.local_addr().unwrap().port();
    let r = run(&["send", "-v", &format!("localhost:{port}"), "hi"], b"");
    r.check(
        0,
        Expect::Empty,
        Expect::Has(line(&[&format!("127.0.0.1:{port}")])),
    );
    assert_eq!(drain(&peer), payloads([b"hi"]));
}

/// Replies printed into a pipe whose reader has gone: exit 0 without a word, at the first
/// reply it cannot write.
#[test]
fn reply_output_into_a_closed_pipe_exits_0_quietly() {
    let mut l = spawn_listen(&["--echo", "127.0.0.1:0"], 1);
    let to = l.addr().to_string();
    let mut p = Proc::spawn(udpcat(&["send", "-r", &to]));
    p.drop_stdout();
    p.write_stdin(b"one\ntwo\nthree\n");
    p.close_stdin();
    // The listener's echo proves udpcat got as far as the first reply.
    assert_eq!(l.p.read_stdout_line(), b"one\n");
    p.finish().check(0, Expect::Empty, Expect::Empty);
    // The listener stays up (nothing ends it but a signal); its guard stops it.
}

/// A datagram already queued when the next one goes out answers an earlier one (here a
/// duplicate): it is printed, but not taken as the next datagram's reply, so the real reply
/// to "b" is still read and the round trips count two answers.
#[test]
fn reply_does_not_take_a_queued_duplicate_for_the_next_answer() {
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", "--reply", "--stats", "-t", "5s", &to]));
    p.write_stdin(b"a\nb\n");
    p.close_stdin();
    let (m, from) = recv(&peer);
    assert_eq!(m, b"a");
    // Both replies are queued while udpcat is stopped, so the duplicate is waiting when it
    // gets the first: exactly the case of a reply already there when "b" goes out.
    let pid = p.pid();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('T')))
    };
    let deadline = std::time::Instant::now() + RECV_SAFETY;
    while !stopped() {
        assert!(std::time::Instant::now() < deadline, "udpcat did not stop");
        std::thread::yield_now();
    }
    send_both(&peer, [b"reply-a", b"reply-a-again"], from);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    b_gets_its_own_reply(&peer, from, p);
}

/// The end of a duplicate-reply case: "b" arrives and its own reply goes back; udpcat
/// printed the duplicate of "a"'s reply but did not take it for "b"'s (three replies to two
/// datagrams, and "b"'s real one among them).
fn b_gets_its_own_reply(peer: &std::net::UdpSocket, from: SocketAddr, p: Proc) {
    let (m, _) = recv(peer);
    assert_eq!(m, b"b");
    peer.send_to(b"reply-b", from).unwrap();
    p.finish().check(
        0,
        bytes("reply-a\nreply-a-again\nreply-b\n"),
        lines(vec![line(&[
            "udpcat: sent 2 datagrams",
            "3 replies",
            "round trip",
        ])]),
    );
}

/// A duplicate of a reply that arrives after the reply was taken, while --rate waits to
/// send the next datagram, is printed but not taken as the next one's reply: after any
/// wait, send looks before it sends.
#[test]
fn a_duplicate_arriving_during_a_rate_wait_is_not_the_next_reply() {
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&[
        "send", "--reply", "--stats", "--rate", "4", "-t", "5s", &to,
    ]));
    p.write_stdin(b"a\nb\n");
    p.close_stdin();
    let (m, from) = recv(&peer);
    assert_eq!(m, b"a");
    peer.send_to(b"reply-a", from).unwrap();
    // udpcat has taken the reply (it printed it) and waits 250 ms to send "b".
    assert_eq!(p.read_stdout_line(), b"reply-a\n");
    peer.send_to(b"reply-a-again", from).unwrap();
    b_gets_its_own_reply(&peer, from, p);
}

/// --bind picks the destination's family; when the destination has none of it, the error
/// names --bind rather than blaming a -4/-6 the user never gave.
#[test]
fn bind_of_another_family_than_the_destination_names_bind() {
    let r = run(&["send", "-b", "127.0.0.1:0", "[::1]:9", "hi"], b"");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error:",
            "[::1]:9 has no IPv4 address",
            "--bind 127.0.0.1:0",
        ])]),
    );
}

/// Two datagrams to `to` in one sendmmsg call.
fn send_both(s: &std::net::UdpSocket, payloads: [&[u8]; 2], to: std::net::SocketAddr) {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    let slices = [[IoSlice::new(payloads[0])], [IoSlice::new(payloads[1])]];
    let addrs = [
        Some(SockaddrStorage::from(to)),
        Some(SockaddrStorage::from(to)),
    ];
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(2, None);
    let sent = sendmmsg(
        s.as_raw_fd(),
        &mut headers,
        &slices,
        addrs,
        [],
        MsgFlags::empty(),
    )
    .expect("sendmmsg")
    .count();
    assert_eq!(sent, 2, "both replies sent");
}

/// RUST_LOG sets the level in place of -v/-q; one that names only other crates leaves
/// udpcat's own warnings on; -q leaves only the error line.
#[test]
fn rust_log_and_quiet_decide_what_reaches_stderr() {
    let peer = udp4();
    let to = local(&peer);
    let silent = ["send", "--reply", "-t", "100ms", to.as_str(), "x"];
    let mut cmd = udpcat(&silent);
    cmd.env("RUST_LOG", "debug");
    Proc::spawn(cmd).finish().check(
        3,
        Expect::Empty,
        with(|err| {
            let e = String::from_utf8_lossy(err);
            if e.lines().any(|l| l.starts_with("udpcat: debug: ")) {
                Ok(())
            } else {
                Err("RUST_LOG=debug should show debug lines".into())
            }
        }),
    );
    let warning = line(&["udpcat: warning:", "no reply to datagram 1 within 100ms"]);
    let error = line(&["udpcat: error:", "1 of 1 datagrams got no reply"]);
    let mut cmd = udpcat(&silent);
    cmd.env("RUST_LOG", "some_other_crate=debug");
    Proc::spawn(cmd)
        .finish()
        .check(3, Expect::Empty, lines(vec![warning, error.clone()]));
    let mut quiet = vec!["-q"];
    quiet.extend(silent);
    run(&quiet, b"").check(3, Expect::Empty, lines(vec![error]));
}

/// `send --wait` prints for whoever reads its stdout; once that reader is gone it ends at
/// once, quietly, instead of waiting out DUR.
#[test]
fn wait_ends_when_its_reader_goes_away() {
    let peer = udp4();
    let to = local(&peer);
    let mut p = Proc::spawn(udpcat(&["send", "--wait", "1m", &to, "hello"]));
    p.drop_stdout();
    assert_eq!(recv(&peer).0, b"hello");
    let run = p.finish();
    assert!(
        !run.watchdog_fired,
        "send --wait waited on with nobody reading"
    );
    run.check(0, Expect::Empty, Expect::Empty);
}
