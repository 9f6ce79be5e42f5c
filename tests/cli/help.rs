//! The first minute with udpcat: `-h` and `--help` list every option of SPEC.md with the
//! examples and the exit-status table, colour only on a terminal and never with NO_COLOR,
//! completion scripts that the shell accepts, and a man page that `man` renders.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use crate::util::*;

/// An option as SPEC.md names it: short form (if any) and long form (if any).
type Opt = (Option<&'static str>, Option<&'static str>);

/// The global options, accepted by every subcommand.
const GLOBAL: &[Opt] = &[
    (Some("-v"), Some("--verbose")),
    (Some("-q"), Some("--quiet")),
    (Some("-4"), None),
    (Some("-6"), None),
];

const LISTEN: &[Opt] = &[
    (Some("-f"), Some("--format")),
    (Some("-0"), Some("--null")),
    (Some("-s"), Some("--source")),
    (Some("-c"), Some("--count")),
    (Some("-t"), Some("--timeout")),
    (None, Some("--echo")),
    (None, Some("--allow")),
    (None, Some("--reuse-port")),
    (None, Some("--recv-buffer")),
    (None, Some("--ready-file")),
    (None, Some("--stats")),
    (None, Some("--progress")),
];

const SEND: &[Opt] = &[
    (Some("-b"), Some("--bind")),
    (Some("-n"), Some("--repeat")),
    (None, Some("--rate")),
    (Some("-r"), Some("--reply")),
    (Some("-w"), Some("--wait")),
    (Some("-t"), Some("--timeout")),
    (Some("-f"), Some("--format")),
    (Some("-s"), Some("--source")),
    (None, Some("--broadcast")),
    (None, Some("--ttl")),
    (Some("-0"), Some("--null")),
    (None, Some("--whole")),
    (None, Some("--chunk")),
    (None, Some("--binary")),
    (Some("-x"), Some("--hex")),
    (None, Some("--stats")),
    (None, Some("--progress")),
];

/// The multicast options of SPEC.md ("real networks"), kept apart so their absence fails
/// one clearly named test.
const LISTEN_MULTICAST: &[Opt] = &[(None, Some("--join")), (None, Some("--interface"))];
const SEND_MULTICAST: &[Opt] = &[
    (None, Some("--interface")),
    (None, Some("--multicast-loop")),
];

const EXIT_CODES: &[&str] = &["0", "1", "2", "3", "4", "130", "143"];

/// `udpcat ARGS` with stdout and stderr captured and stdin empty; fails loudly if it does
/// not exit 0 with empty stderr.
pub(crate) fn output_of(args: &[&str]) -> String {
    let out = udpcat(args)
        .stdin(Stdio::null())
        .output()
        .expect("run udpcat");
    assert_ok(&format!("udpcat {}", args.join(" ")), &out);
    String::from_utf8(out.stdout).expect("help output is UTF-8")
}

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what}: should exit 0 with nothing on stderr\n  status: {:?}\n  stdout: {}\n  stderr: {}",
        out.status,
        show(&out.stdout),
        show(&out.stderr)
    );
}

/// The options a help text declares: for each option line (`  -f, --format <FORMAT>`,
/// `      --echo`), the set of its spellings. Description lines are indented further and are
/// never taken for declarations.
pub(crate) fn declared_options(help: &str) -> Vec<BTreeSet<String>> {
    help.lines()
        .filter(|l| l.starts_with("  -") || l.starts_with("      --"))
        .map(|l| {
            l.split([',', ' ', '='])
                .map(|t| t.trim_end_matches("..."))
                .filter(|t| t.starts_with('-') && t.len() > 1)
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The options of `opts` that `help` does not declare, each spelt as SPEC.md spells it.
fn missing(help: &str, opts: &[Opt]) -> Vec<String> {
    let declared = declared_options(help);
    opts.iter()
        .filter(|(short, long)| {
            !declared
                .iter()
                .any(|d| short.is_none_or(|s| d.contains(s)) && long.is_none_or(|l| d.contains(l)))
        })
        .map(|(short, long)| match (short, long) {
            (Some(s), Some(l)) => format!("{s}, {l}"),
            (Some(s), None) => s.to_string(),
            (None, Some(l)) => l.to_string(),
            (None, None) => unreachable!(),
        })
        .collect()
}

#[track_caller]
fn assert_lists(cmd: &[&str], opts: &[&[Opt]]) {
    let mut args = cmd.to_vec();
    args.push("--help");
    let help = output_of(&args);
    let missing: Vec<String> = opts.iter().flat_map(|o| missing(&help, o)).collect();
    assert!(
        missing.is_empty(),
        "`udpcat {}` does not list {missing:?} (SPEC.md names them){}",
        args.join(" "),
        show(help.as_bytes())
    );
}

#[test]
fn listen_help_lists_every_option_of_the_spec() {
    assert_lists(&["listen"], &[LISTEN, GLOBAL]);
}

#[test]
fn send_help_lists_every_option_of_the_spec() {
    assert_lists(&["send"], &[SEND, GLOBAL]);
}

#[test]
fn top_level_help_lists_the_global_options() {
    assert_lists(&[], &[GLOBAL]);
}

#[test]
fn help_lists_the_multicast_options() {
    assert_lists(&["listen"], &[LISTEN_MULTICAST]);
    assert_lists(&["send"], &[SEND_MULTICAST]);
}

#[test]
fn top_level_help_names_every_command() {
    let help = output_of(&["--help"]);
    for cmd in ["listen", "send", "completions", "man"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "`udpcat --help` does not list the command {cmd}{}",
            show(help.as_bytes())
        );
    }
}

/// The lines of the block that starts with the line `heading`, up to the next blank line
/// or heading (a line that does not start with a space).
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = help.lines().skip_while(|l| l.trim_end() != heading);
    assert!(
        lines.next().is_some(),
        "no {heading:?} section in:{}",
        show(help.as_bytes())
    );
    lines
        .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
        .collect()
}

#[test]
fn long_help_has_examples_and_every_exit_status() {
    for cmd in [&[][..], &["listen"], &["send"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = output_of(&args);
        let examples = section(&help, "Examples:");
        assert!(
            examples
                .iter()
                .any(|l| l.trim_start().starts_with("udpcat ")),
            "`udpcat {}`: the Examples block has no udpcat command{}",
            args.join(" "),
            show(help.as_bytes())
        );
        let table = section(&help, "Exit status:");
        for code in EXIT_CODES {
            assert!(
                table
                    .iter()
                    .any(|l| l.split_whitespace().next() == Some(code)),
                "`udpcat {}`: exit status {code} is missing from the Exit status table{}",
                args.join(" "),
                show(help.as_bytes())
            );
        }
    }
}

/// `udpcat ARGS` with COLUMNS as given (`None`: unset), stdout a pipe: clap then wraps
/// help at COLUMNS, or at 100 columns without it.
fn help_at(args: &[&str], columns: Option<&str>) -> String {
    let mut cmd = udpcat(args);
    cmd.stdin(Stdio::null());
    match columns {
        Some(c) => cmd.env("COLUMNS", c),
        None => cmd.env_remove("COLUMNS"),
    };
    let out = cmd.output().expect("run udpcat");
    assert_ok(
        &format!("COLUMNS={columns:?} udpcat {}", args.join(" ")),
        &out,
    );
    String::from_utf8(out.stdout).expect("help output is UTF-8")
}

/// The Exit status table of a help text: the lines after its heading up to a blank line or
/// the end, whatever their indentation (a fragment wrapped to column 0 included).
fn exit_table(help: &str) -> Vec<&str> {
    help.lines()
        .skip_while(|l| *l != "Exit status:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// The column where an entry's meaning starts (`  0    done: ...` -> 7).
const EXIT_TEXT_COLUMN: usize = 7;

/// In every `--help`, at the width clap picks into a pipe (100 without COLUMNS) and at 80
/// columns, each line of the Exit status table is an entry (two spaces, a status, the
/// meaning at the text column) or a continuation indented to the text column: clap's
/// wrapping never leaves a bare fragment at column 0.
#[test]
fn exit_status_table_wraps_with_hanging_indentation() {
    let mut problems = Vec::new();
    for cmd in [&[][..], &["listen"], &["send"]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        for columns in [None, Some("80"), Some("100"), Some("200")] {
            let help = help_at(&args, columns);
            let table = exit_table(&help);
            let mut codes = Vec::new();
            for l in &table {
                let indent = l.len() - l.trim_start().len();
                let first = l.split_whitespace().next().unwrap_or_default();
                let text_at = l[indent + first.len()..]
                    .find(|c: char| c != ' ')
                    .map(|i| indent + first.len() + i);
                let entry =
                    indent == 2 && EXIT_CODES.contains(&first) && text_at == Some(EXIT_TEXT_COLUMN);
                let continuation = indent == EXIT_TEXT_COLUMN;
                if entry {
                    codes.push(first);
                } else if !continuation {
                    problems.push(format!(
                        "COLUMNS={columns:?} udpcat {}: {l:?} is neither an entry nor a \
                         continuation at column {EXIT_TEXT_COLUMN}",
                        args.join(" ")
                    ));
                }
            }
            if codes != EXIT_CODES {
                problems.push(format!(
                    "COLUMNS={columns:?} udpcat {}: entries {codes:?}, want {EXIT_CODES:?}{}",
                    args.join(" "),
                    show(help.as_bytes())
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The exit statuses of `udpcat --help` as (status, meaning), continuations joined.
fn exit_entries(help: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for l in exit_table(help) {
        match entries.last_mut() {
            Some((_, meaning)) if l.starts_with("   ") => {
                meaning.push(' ');
                meaning.push_str(l.trim());
            }
            _ => {
                let (code, meaning) = l.trim().split_once(' ').unwrap_or((l.trim(), ""));
                entries.push((code.to_string(), meaning.trim().to_string()));
            }
        }
    }
    entries
}

/// README's Exit status table says what `--help` says, in the same words (README may put
/// flags in backticks).
#[test]
fn readme_exit_status_table_matches_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let rows: Vec<(String, String)> = readme
        .lines()
        .skip_while(|l| l.trim() != "## Exit status")
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").collect();
            let cell = |i: usize| cells.get(i).unwrap_or(&"").trim().replace('`', "");
            (cell(0), cell(1))
        })
        .collect();
    let help = help_at(&["--help"], Some("200"));
    assert_eq!(
        rows,
        exit_entries(&help),
        "README.md's Exit status table and `udpcat --help` differ"
    );
}

/// Every flag an example in `--help` uses is one that its subcommand declares.
#[test]
fn help_examples_use_only_real_flags() {
    let help = output_of(&["--help"]);
    let commands: Vec<String> = section(&help, "Examples:")
        .iter()
        .map(|l| l.trim().to_string())
        .collect();
    let problems = crate::docs::unknown_flags(&commands);
    assert!(
        problems.is_empty(),
        "examples in `udpcat --help` use flags that do not exist:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn short_help_is_shorter_than_long_help() {
    for cmd in [&[][..], &["listen"], &["send"]] {
        let mut short = cmd.to_vec();
        short.push("-h");
        let mut long = cmd.to_vec();
        long.push("--help");
        let (s, l) = (output_of(&short), output_of(&long));
        assert!(
            s.lines().count() < l.lines().count(),
            "`udpcat {}` ({} lines) should be shorter than `udpcat {}` ({} lines)",
            short.join(" "),
            s.lines().count(),
            long.join(" "),
            l.lines().count()
        );
        assert!(
            !s.contains("Exit status:"),
            "`udpcat {}` should leave the exit-status table to --help{}",
            short.join(" "),
            show(s.as_bytes())
        );
    }
}

/// What `udpcat ARGS` writes to a terminal, with `env` added to a colour-neutral
/// environment.
fn on_terminal(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PTY_SCRIPT, "both", udpcat_path()])
        .args(args)
        .stdin(Stdio::null());
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("TERM", "xterm-256color");
    cmd.envs(env.iter().copied());
    let out = cmd
        .output()
        .expect("run python3 (the pseudo-terminal helper)");
    assert_ok(&format!("udpcat {} on a terminal", args.join(" ")), &out);
    let hex = String::from_utf8(out.stdout).expect("hex from the pty helper");
    (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from the pty helper"))
        .collect()
}

fn escapes(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == 0x1b).count()
}

#[test]
fn help_is_coloured_only_on_a_terminal_without_no_color() {
    for args in [&["--help"][..], &["listen", "--help"], &["send", "-h"]] {
        let piped = udpcat(args)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .expect("run udpcat");
        assert_ok(&format!("udpcat {}", args.join(" ")), &piped);
        assert_eq!(
            escapes(&piped.stdout),
            0,
            "`udpcat {}` into a pipe must not write escape sequences{}",
            args.join(" "),
            show(&piped.stdout)
        );

        let plain = on_terminal(args, &[("NO_COLOR", "1")]);
        assert_eq!(
            escapes(&plain),
            0,
            "`NO_COLOR=1 udpcat {}` on a terminal must not write escape sequences{}",
            args.join(" "),
            show(&plain)
        );

        // The control: without NO_COLOR the same terminal does get colour, so the two
        // checks above test something.
        let coloured = on_terminal(args, &[]);
        assert!(
            escapes(&coloured) > 0,
            "`udpcat {}` on a terminal should be coloured as clap does it{}",
            args.join(" "),
            show(&coloured)
        );
    }
}

#[test]
fn errors_are_not_coloured_into_a_pipe() {
    let out = udpcat(&["listen", "--no-such-flag", "127.0.0.1:0"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .expect("run udpcat");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out.stderr));
    assert_eq!(escapes(&out.stderr), 0, "{}", show(&out.stderr));
}

#[test]
fn bash_completion_script_is_valid_bash() {
    let script = output_of(&["completions", "bash"]);
    let dir = scratch_dir("completions");
    let path = dir.join("udpcat.bash");
    std::fs::write(&path, &script).expect("write the completion script");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("run bash");
    assert_ok("bash -n on `udpcat completions bash`", &out);
    for word in ["listen", "send", "--ready-file", "--reply"] {
        assert!(
            script.contains(word),
            "the bash completion script does not offer {word}"
        );
    }
}

#[test]
fn completion_scripts_for_the_other_shells() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = output_of(&["completions", shell]);
        for word in ["udpcat", "listen", "send", "ready-file"] {
            assert!(
                script.contains(word),
                "`udpcat completions {shell}` does not mention {word}{}",
                show(script.as_bytes())
            );
        }
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = udpcat(&["completions", "tcsh"])
        .stdin(Stdio::null())
        .output()
        .expect("run udpcat");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", show(&out.stdout));
}

/// `udpcat man` rendered as plain text by `man -l -` at 80 columns; it needs man-db
/// (`apt-get install man-db`).
fn rendered_man() -> String {
    let roff = udpcat(&["man"])
        .stdin(Stdio::null())
        .output()
        .expect("run udpcat man");
    assert_ok("udpcat man", &roff);
    assert!(
        roff.stdout.starts_with(b".") && roff.stdout.windows(4).any(|w| w == b".TH "),
        "`udpcat man` is not roff{}",
        show(&roff.stdout)
    );

    let mut man = match Command::new("man")
        .args(["--warnings", "-l", "-"])
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(m) => m,
        Err(e) => panic!(
            "cannot run `man` ({e}): this test renders the man page with `man -l -`; \
             install man-db (apt-get install -y man-db)"
        ),
    };
    {
        use std::io::Write;
        let mut stdin = man.stdin.take().expect("man's stdin");
        stdin.write_all(&roff.stdout).expect("write to man");
    }
    let out = man.wait_with_output().expect("wait for man");
    assert_ok("udpcat man | man --warnings -l -", &out);
    // Without a terminal man prints plain text; strip overstrikes in case it does not.
    strip_overstrike(&String::from_utf8_lossy(&out.stdout))
}

/// The section headings of a rendered man page (lines that start with a capital letter).
fn man_headings(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        .map(str::trim_end)
        .collect()
}

/// The lines of a rendered man page's section `heading`, up to the next heading.
fn man_section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| l.trim_end() != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

#[test]
fn man_page_renders_with_exit_status_and_examples() {
    let text = rendered_man();
    let headings = man_headings(&text);
    for heading in ["NAME", "SYNOPSIS", "EXAMPLES", "EXIT STATUS"] {
        assert!(
            headings.contains(&heading),
            "the rendered man page has no {heading} section (sections: {headings:?})"
        );
    }
    let exit = man_section(&text, "EXIT STATUS").join("\n");
    for code in EXIT_CODES {
        assert!(
            exit.split_whitespace().any(|w| w == *code),
            "exit status {code} is missing from the man page's EXIT STATUS section:\n{exit}"
        );
    }
    for word in ["--ready-file", "--reply", "--format"] {
        assert!(
            text.contains(word),
            "the rendered man page does not mention {word}"
        );
    }
}

/// The man page describes its commands itself: no pointers to udpcat-listen(1) and the like
/// (no such pages exist), no `help` entry, and listen's and send's options found under
/// their headings on the same page.
#[test]
fn man_page_describes_each_command_in_place() {
    let text = rendered_man();
    assert!(
        !text.contains("udpcat-"),
        "the man page refers to pages that do not exist (udpcat-...(1)):\n{text}"
    );
    let headings = man_headings(&text);
    for heading in ["COMMANDS", "LISTEN OPTIONS", "SEND OPTIONS"] {
        assert!(
            headings.contains(&heading),
            "the rendered man page has no {heading} section (sections: {headings:?})"
        );
    }
    let commands = man_section(&text, "COMMANDS");
    // Entries sit at the section's indentation, their text deeper.
    let entries: Vec<&str> = commands
        .iter()
        .filter(|l| l.starts_with("       ") && !l.starts_with("        "))
        .map(|l| l.trim())
        .collect();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["listen", "send", "completions", "man"],
        "COMMANDS entries: {entries:#?}"
    );
    let body = commands.join(" ");
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    for pointer in ["LISTEN OPTIONS", "SEND OPTIONS"] {
        assert!(
            body.contains(pointer),
            "the COMMANDS section does not point to {pointer}:\n{}",
            commands.join("\n")
        );
    }
}

/// Each exit status in the man page is one entry: its continuation lines (in exit::TABLE,
/// lines indented to the text column) join it instead of showing up as entries of their own.
#[test]
fn man_page_exit_status_entries_are_whole() {
    let text = rendered_man();
    let section = man_section(&text, "EXIT STATUS");
    let mut codes = Vec::new();
    for l in section.iter().filter(|l| !l.trim().is_empty()) {
        if l.starts_with("              ") {
            continue; // the entry's text, wrapped by man
        }
        let tag = l.split_whitespace().next().unwrap_or_default();
        assert!(
            l.starts_with("       ") && EXIT_CODES.contains(&tag),
            "{l:?} is shown as an entry of EXIT STATUS but is no exit status:\n{}",
            section.join("\n")
        );
        codes.push(tag);
    }
    assert_eq!(codes, EXIT_CODES, "{}", section.join("\n"));
}

/// `N\bN` (bold) and `_\bx` (underline) as plain characters.
fn strip_overstrike(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

/// `udpcat man | head -1` and the like: stdout closed by its reader is exit 0, quietly
/// (SPEC.md, "Everywhere"), for the generated documents as for data. The read end is closed
/// before udpcat starts, so the first write fails every time.
#[test]
fn documents_into_a_closed_pipe_exit_0_quietly() {
    let cases: &[&[&str]] = &[
        &["--help"],
        &["listen", "--help"],
        &["man"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["completions", "elvish"],
        &["completions", "powershell"],
    ];
    let mut problems = Vec::new();
    for args in cases {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        drop(read);
        let out = udpcat(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .expect("run udpcat");
        if out.status.code() != Some(0) || !out.stderr.is_empty() {
            problems.push(format!(
                "udpcat {}: status {:?}, stderr {}",
                args.join(" "),
                out.status,
                show(&out.stderr)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "into a closed pipe, these should exit 0 with nothing on stderr:\n  {}",
        problems.join("\n  ")
    );
}

/// `udpcat man >/dev/full`: a write to stdout that fails for any reason but a closed pipe is
/// exit 1 with one error line naming stdout and why.
#[test]
fn documents_into_a_full_disk_fail_naming_stdout() {
    let cases: &[&[&str]] = &[
        &["man"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["--help"],
        &["listen", "--help"],
        &["--version"],
    ];
    let mut problems = Vec::new();
    for args in cases {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full");
        let out = udpcat(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(full))
            .stderr(Stdio::piped())
            .output()
            .expect("run udpcat");
        let err = String::from_utf8_lossy(&out.stderr);
        let one_line = err.lines().count() == 1 && err.ends_with('\n');
        if out.status.code() != Some(1)
            || !one_line
            || !err.starts_with("udpcat: error: writing to stdout: ")
            || !err.contains("No space left on device")
        {
            problems.push(format!(
                "udpcat {}: status {:?}, stderr {}",
                args.join(" "),
                out.status,
                show(&out.stderr)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "with stdout on /dev/full, these should exit 1 with one line \
         `udpcat: error: writing to stdout: No space left on device ...`:\n  {}",
        problems.join("\n  ")
    );
}
