//! Exit statuses not covered elsewhere: usage errors (2) and address failures (1).

use crate::util::*;

/// clap's usage errors: status 2, nothing on stdout, the offending flag named on stderr.
#[test]
fn unknown_flag_is_a_usage_error() {
    for cmd in ["listen", "send"] {
        let r = run(&[cmd, "--no-such-flag", "127.0.0.1:9"], b"");
        r.check(
            2,
            Expect::Empty,
            Expect::Has(line(&["error", "--no-such-flag"])),
        );
    }
}

#[test]
fn bad_timeout_value_is_a_usage_error_before_any_socket() {
    let r = run(&["listen", "--timeout", "banana", "127.0.0.1:0"], b"");
    r.check(
        2,
        Expect::Empty,
        with(|err| {
            let e = String::from_utf8_lossy(err);
            if e.contains("listening on") {
                Err("a socket was bound before the usage error".into())
            } else if e.contains("banana") && e.contains("--timeout") {
                Ok(())
            } else {
                Err("should name the value `banana` and `--timeout`".into())
            }
        }),
    );
    let r = run(&["send", "-r", "-t", "soon", "127.0.0.1:9", "x"], b"");
    r.check(2, Expect::Empty, Expect::Has(line(&["soon"])));
}

#[test]
fn bad_count_value_is_a_usage_error() {
    let r = run(&["listen", "-c", "many", "127.0.0.1:0"], b"");
    r.check(2, Expect::Empty, Expect::Has(line(&["many"])));
}

#[test]
fn missing_command_or_address_is_a_usage_error() {
    run(&[], b"").check(2, Expect::Empty, Expect::Has(line(&["Usage"])));
    run(&["listen"], b"").check(2, Expect::Empty, Expect::Has(line(&["Usage"])));
}

/// Address forms that cannot be resolved: one `udpcat: error:` line naming the address.
#[test]
fn unresolvable_address_forms_fail_with_1() {
    for bad in [
        "127.0.0.1",
        "[::1",
        "::1:0",
        "127.0.0.1:99999",
        "[::1]:port",
    ] {
        let r = run(&["listen", bad], b"");
        r.check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", bad])]),
        );
        let r = run(&["send", bad, "x"], b"");
        r.check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", bad])]),
        );
    }
}

/// `HOST` without a port: the error names the missing `:PORT`.
#[test]
fn address_without_port_names_the_missing_port() {
    let r = run(&["listen", "127.0.0.1"], b"");
    r.check(
        1,
        Expect::Empty,
        lines(vec![line(&["udpcat: error:", "127.0.0.1", ":PORT"])]),
    );
}

#[test]
fn port_in_use_fails_with_1_for_every_family() {
    for taken in [udp4(), udp6()] {
        let addr = local(&taken);
        let r = run(&["listen", "-c", "1", &addr], b"");
        r.check(
            1,
            Expect::Empty,
            lines(vec![line(&["udpcat: error:", &addr])]),
        );
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    run(&["--help"], b"").check(0, Expect::Has(line(&["listen"])), Expect::Empty);
    run(&["listen", "--help"], b"").check(0, Expect::Has(line(&["--count"])), Expect::Empty);
    run(&["--version"], b"").check(0, Expect::Has(line(&["udpcat"])), Expect::Empty);
}

#[test]
fn man_page_and_completions() {
    run(&["man"], b"").check(0, Expect::Has(line(&[".TH"])), Expect::Empty);
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        run(&["completions", shell], b"").check(0, Expect::Has(line(&["udpcat"])), Expect::Empty);
    }
    run(&["completions", "tcsh"], b"").check(2, Expect::Empty, Expect::Has(line(&["tcsh"])));
}

/// DESIGN: `--hex` conflicts with `--binary` and `--chunk`.
#[test]
fn hex_with_binary_or_chunk_is_a_usage_error() {
    for extra in [&["--binary"][..], &["--chunk", "4"]] {
        let mut args = vec!["send", "--hex"];
        args.extend_from_slice(extra);
        args.push("127.0.0.1:9");
        run(&args, b"00\n").check(2, Expect::Empty, Expect::Has(line(&["--hex"])));
    }
}

/// Values that parse as numbers but make no sense as waits or rates are usage errors, never
/// a panic (exit 101) later on: zero and absurdly long waits, rates whose gap overflows.
#[test]
fn absurd_waits_and_rates_are_usage_errors_not_panics() {
    for (args, says) in [
        (
            &["listen", "--timeout", "0", "127.0.0.1:0"][..],
            "'0' is no time at all",
        ),
        (
            &["send", "--reply", "--timeout", "0s", "127.0.0.1:9", "x"],
            "'0s' is no time at all",
        ),
        (
            &["send", "--reply", "--timeout", "1e19", "127.0.0.1:9", "x"],
            "at most 10 years",
        ),
        (
            &["send", "--wait", "1e19", "127.0.0.1:9", "x"],
            "at most 10 years",
        ),
        (
            &["send", "--rate", "1e-20", "127.0.0.1:9", "x"],
            "'1e-20' is not a rate",
        ),
        (
            &["send", "--rate", "1e-300", "127.0.0.1:9", "x"],
            "'1e-300' is not a rate",
        ),
    ] {
        let r = run(args, b"");
        r.check(
            2,
            Expect::Empty,
            Expect::Has(line(&["udpcat: error:", says])),
        );
    }
}
