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

/// No command at all is a usage error like any other (one line naming the commands, exit 2),
/// not the whole help on stderr: a script that lost its arguments gets one clear line.
#[test]
fn missing_command_or_address_is_a_usage_error() {
    for args in [&[][..], &["-v"]] {
        run(args, b"").check(
            2,
            Expect::Empty,
            lines(vec![line(&[
                "udpcat: error: a command is needed: ",
                "listen",
                "send",
                "completions",
                "man",
                "(see 'udpcat --help')",
            ])]),
        );
    }
    run(&["listen"], b"").check(
        2,
        Expect::Empty,
        lines(vec![line(&[
            "udpcat: error: ",
            "not provided: <ADDR>",
            "(see 'udpcat listen --help')",
        ])]),
    );
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

/// A bad command line, what its error line must name, and the help it must point to.
const BAD_COMMAND_LINES: &[(&[&str], &[&str], &str)] = &[
    (
        &["listen", "--no-such-flag", "127.0.0.1:9"],
        &["'--no-such-flag'"],
        "listen",
    ),
    (
        &["send", "--no-such-flag", "127.0.0.1:9"],
        &["'--no-such-flag'"],
        "send",
    ),
    (
        &["listen", "--cont", "1", "127.0.0.1:9"],
        &["'--cont'", "tip: ", "'--count'"],
        "listen",
    ),
    (&["listen"], &["not provided: <ADDR>"], "listen"),
    (&["send"], &["not provided: <ADDR>"], "send"),
    (
        &["listen", "--timeout", "banana", "127.0.0.1:0"],
        &["'banana'", "--timeout"],
        "listen",
    ),
    (
        &["send", "-r", "-t", "soon", "127.0.0.1:9", "x"],
        &["'soon'", "--timeout"],
        "send",
    ),
    (
        &["listen", "-c", "many", "127.0.0.1:0"],
        &["'many'", "--count"],
        "listen",
    ),
    (
        &["listen", "--count", "0", "127.0.0.1:0"],
        &["'0'", "--count"],
        "listen",
    ),
    (
        &["send", "--hex", "--binary", "127.0.0.1:9"],
        &["'--hex'", "'--binary'"],
        "send",
    ),
    (
        &["listen", "-q", "-v", "127.0.0.1:0"],
        &["'--quiet'", "'--verbose"],
        "listen",
    ),
    (
        &["listen", "--echo", "--echo", "127.0.0.1:0"],
        &["'--echo'", "multiple"],
        "listen",
    ),
    (&["frobnicate"], &["'frobnicate'"], ""),
    (&["help", "frobnicate"], &["'frobnicate'"], ""),
    (
        &["listen", "--timeout"],
        &["'--timeout <DUR>'", "value is required"],
        "listen",
    ),
    (
        &["listen", "--format", "xml", "127.0.0.1:0"],
        &["'xml'", "--format", "text, raw"],
        "listen",
    ),
    (&["completions", "tcsh"], &["'tcsh'", "bash"], "completions"),
    (&["completions"], &["not provided: <SHELL>"], "completions"),
    (&[], &["a command is needed", "listen, send"], ""),
];

/// What is wrong with `stderr` as the one line of a usage error that names `names` and
/// points to `udpcat SUB --help`.
fn one_usage_line(stderr: &[u8], names: &[&str], sub: &str) -> Vec<String> {
    let mut p = Vec::new();
    let text = String::from_utf8_lossy(stderr);
    let Some(l) = text.strip_suffix('\n') else {
        return vec!["stderr should be one line ending in a newline".into()];
    };
    if l.contains('\n') {
        p.push(format!("stderr has {} lines, want 1", text.lines().count()));
    }
    if !l.starts_with("udpcat: error: ") {
        p.push("the line should start with `udpcat: error: `".into());
    }
    if l.contains("\\n") {
        p.push("the line holds a literal \\n (a folded newline of clap's)".into());
    }
    for n in names {
        if !l.contains(n) {
            p.push(format!("the line should name {n:?}"));
        }
    }
    let hint = match sub {
        "" => "(see 'udpcat --help')".to_string(),
        sub => format!("(see 'udpcat {sub} --help')"),
    };
    if !l.ends_with(&hint) {
        p.push(format!("the line should end with {hint:?}"));
    }
    p
}

/// SPEC "Everywhere": clap's usage errors too are one `udpcat: error:` line (its lists and
/// tips folded in, ending with a pointer to the right help), exit 2, nothing on stdout.
#[test]
fn usage_errors_are_one_line_naming_the_culprit() {
    let mut report = Vec::new();
    for (args, names, sub) in BAD_COMMAND_LINES {
        let r = run(args, b"");
        let mut p = one_usage_line(&r.stderr, names, sub);
        if r.code() != 2 {
            p.push(format!("exit status {} (want 2)", r.code()));
        }
        if !r.stdout.is_empty() {
            p.push("stdout should be empty".into());
        }
        if !p.is_empty() {
            report.push(format!(
                "udpcat {args:?}\n  {}\n  stderr: {}",
                p.join("\n  "),
                show(&r.stderr)
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} bad command lines got the wrong answer:\n\n{}",
        report.len(),
        BAD_COMMAND_LINES.len(),
        report.join("\n\n")
    );
}

/// A newline typed into a value is shown escaped, inside the one line: it can neither split
/// the line nor forge a second `udpcat: error:` line (nor can it in clap's tip, which quotes
/// the argument again).
#[test]
fn a_newline_in_a_bad_argument_stays_inside_the_line() {
    for (args, shown) in [
        (
            &["listen", "-c", "1\nudpcat: error: forged", "127.0.0.1:0"][..],
            "'1\\nudpcat: error: forged'",
        ),
        (&["listen", "--x\n\ny", "127.0.0.1:0"], "'--x\\n\\ny'"),
    ] {
        let r = run(args, b"");
        r.check(
            2,
            Expect::Empty,
            lines(vec![line(&["udpcat: error: ", shown])]),
        );
        assert!(
            !String::from_utf8_lossy(&r.stderr).contains("\n\n"),
            "{}",
            show(&r.stderr)
        );
    }
}

/// The `write` calls `udpcat ARGS` makes on stderr, as strace shows them, and its exit
/// status. strace is part of what the suite needs (.ci/run installs it); without it this
/// fails rather than passing untested.
fn stderr_writes(args: &[&str]) -> (Vec<String>, Option<i32>) {
    let trace = scratch_dir("strace").join("trace");
    let out = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=write", "-o"])
        .arg(&trace)
        .arg(udpcat_path())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run strace ({e}): this test counts udpcat's write calls with it; \
                 install strace (apt-get install -y strace; .ci/run does)"
            )
        });
    let text = std::fs::read_to_string(&trace).unwrap_or_else(|e| {
        panic!(
            "strace wrote no trace ({e}); its stderr: {}",
            show(&out.stderr)
        )
    });
    let writes = text
        .lines()
        .filter(|l| l.contains("write(2, "))
        .map(String::from)
        .collect();
    (writes, out.status.code())
}

/// SPEC "Everywhere": every line on stderr is written whole, in one write, so a reader of a
/// shared stderr never sees half an error. Usage errors and ordinary errors alike.
#[test]
fn an_error_line_is_one_write() {
    let cases: &[(&[&str], i32)] = &[
        (&["listen", "--cont", "1", "127.0.0.1:9"], 2),
        (&["listen"], 2),
        (&["listen", "--timeout", "banana", "127.0.0.1:0"], 2),
        (&["send", "--hex", "--binary", "127.0.0.1:9"], 2),
        (&[], 2),
        (&["send", "127.0.0.1", "x"], 1),
    ];
    for (args, code) in cases {
        let (writes, status) = stderr_writes(args);
        assert_eq!(
            (writes.len(), status),
            (1, Some(*code)),
            "udpcat {args:?} should exit {code} after exactly one write on stderr; strace saw:\n  {}",
            writes.join("\n  ")
        );
    }
}
