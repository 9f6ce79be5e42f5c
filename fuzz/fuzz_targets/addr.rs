//! Address arguments: any string parses without a panic; what parses prints back (as udpcat
//! shows it) to something that parses to the same endpoint; what does not parse gets a
//! one-line error that quotes the argument without anything that could drive a terminal.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// What must never reach a terminal raw: C0 and C1 controls, DEL, bidi overrides/isolates.
fn dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fuzz_target!(|input: &[u8]| {
    let Ok(arg) = std::str::from_utf8(input) else {
        return;
    };
    match udpcat::addr::parse(arg) {
        Ok(ep) => {
            let shown = ep.to_string();
            let again = udpcat::addr::parse(&shown).unwrap_or_else(|e| {
                panic!("{arg:?} parsed, but its display {shown:?} does not: {e:#}")
            });
            assert_eq!(again, ep, "{arg:?} -> {shown:?} -> a different endpoint");
        }
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(
                !msg.chars().any(dangerous),
                "error message for {arg:?} carries a raw control/bidi character: {msg:?}"
            );
        }
    }
});
