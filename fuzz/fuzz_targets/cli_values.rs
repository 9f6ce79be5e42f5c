//! The value parsers behind `--timeout`/`--wait`, `--recv-buffer`/`--chunk` and `--allow`:
//! any string gives a value or an error message, never a panic; values are what the text
//! says; messages carry nothing that could drive a terminal.
//!
//! Input layout: `[which, text...]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use udpcat::cli::{parse_bytes, parse_duration, parse_net};

fn dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn check_msg(s: &str, msg: &str) {
    assert!(
        !msg.chars().any(dangerous),
        "error for {s:?} carries a raw control/bidi character: {msg:?}"
    );
}

fuzz_target!(|input: &[u8]| {
    let [which, text @ ..] = input else {
        return;
    };
    let Ok(s) = std::str::from_utf8(text) else {
        return;
    };
    match which % 3 {
        0 => match parse_duration(s) {
            Ok(d) => {
                // A plain number of seconds means exactly that.
                if let Ok(secs) = s.parse::<f64>() {
                    assert!((d.as_secs_f64() - secs).abs() <= secs.abs() * 1e-9 + 1e-9);
                }
            }
            Err(msg) => check_msg(s, &msg),
        },
        1 => match parse_bytes(s) {
            Ok(n) => {
                let t = s.trim();
                let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
                let num: usize = digits.parse().expect("accepted without a number");
                assert!(n >= num, "{s:?} -> {n}");
                assert!(num == 0 || n % num == 0, "{s:?} -> {n}");
            }
            Err(msg) => check_msg(s, &msg),
        },
        _ => match parse_net(s) {
            Ok(net) => {
                // Normalised to its network address, and reparses to itself.
                assert_eq!(net, net.trunc());
                assert_eq!(parse_net(&net.to_string()), Ok(net));
            }
            Err(msg) => check_msg(s, &msg),
        },
    }
});
