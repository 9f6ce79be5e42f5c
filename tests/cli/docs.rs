//! Documentation that cannot rot: every `examples/*.sh` runs against the built binary and
//! must print what it promises, and every udpcat command in the README's code blocks uses
//! only subcommands and flags that exist.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::*;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs `bash examples/NAME` with `UDPCAT` set to the binary under test.
fn run_example(name: &str) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_file("examples").join(name))
        .env("UDPCAT", udpcat_path())
        .env_remove("RUST_LOG")
        .current_dir(scratch_dir("example"));
    Proc::spawn(cmd).finish()
}

/// The examples that the tests below run; `every_example_has_a_test` keeps it complete.
const TESTED: &[&str] = &[
    "collect.sh",
    "hex-roundtrip.sh",
    "json.sh",
    "ready-then-send.sh",
    "reply-check.sh",
];

#[test]
fn example_ready_then_send() {
    run_example("ready-then-send.sh").check(0, bytes("received 2 datagrams\n"), Expect::Empty);
}

#[test]
fn example_collect() {
    run_example("collect.sh").check(
        0,
        bytes("reading 1\nreading 2\nreading 3\nreading 4\nreading 5\n"),
        Expect::Empty,
    );
}

#[test]
fn example_hex_roundtrip() {
    run_example("hex-roundtrip.sh").check(
        0,
        bytes("captured: 00ff610a621b\nreplayed byte for byte\n"),
        Expect::Empty,
    );
}

#[test]
fn example_json() {
    run_example("json.sh").check(
        0,
        bytes(
            "16 bytes as text: b'temperature=21.5'\n\
             2 bytes as base64: b'\\xff\\x00'\n\
             0 bytes as text: b''\n",
        ),
        Expect::Empty,
    );
}

/// The two failing checks each leave udpcat's own error line on stderr (status 3, then 4).
#[test]
fn example_reply_check() {
    run_example("reply-check.sh").check(
        0,
        bytes("echo service: up\nsilent service: no answer\nclosed port: nothing listens\n"),
        lines(vec![
            line(&["udpcat: error: ", "no reply"]),
            line(&["udpcat: error: ", "port unreachable"]),
        ]),
    );
}

/// A new example needs a test above; this catches one that has none.
#[test]
fn every_example_has_a_test() {
    let mut found: Vec<String> = std::fs::read_dir(repo_file("examples"))
        .expect("read examples/")
        .map(|e| {
            e.expect("read examples/")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".sh"))
        .collect();
    found.sort();
    assert_eq!(
        found, TESTED,
        "examples/*.sh and the tests in docs.rs differ"
    );
}

/// The fenced code blocks of a Markdown file: (info string, lines).
fn code_blocks(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for l in markdown.lines() {
        match (l.trim_start().strip_prefix("```"), current.take()) {
            (Some(info), None) => current = Some((info.trim().to_string(), Vec::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((info, mut lines))) => {
                lines.push(l.to_string());
                current = Some((info, lines));
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "a code block is not closed");
    blocks
}

/// The udpcat invocations on a shell line, as their words: `a | udpcat send X --hex # c`
/// gives `["send", "X", "--hex"]`. A leading `$ ` prompt, comments and redirections are
/// dropped. Output lines (`udpcat: error: ...`) are not invocations.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let line = line.trim();
    let line = line.strip_prefix("$ ").unwrap_or(line);
    if line.starts_with('#') {
        return Vec::new();
    }
    // A quoted argument (an --exec command) is one word, whatever it contains.
    let mut unquoted = String::with_capacity(line.len());
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => unquoted.push('Q'),
            (None, c) => unquoted.push(c),
        }
    }
    let line = unquoted.as_str();
    let line = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    line.split(['|', ';', '('])
        .flat_map(|seg| seg.split("&&"))
        .filter_map(|seg| {
            let mut words = seg.split_whitespace();
            (words.next() == Some("udpcat")).then(|| {
                words
                    .take_while(|w| !w.starts_with(['>', '<', '&']) && !w.starts_with("2>"))
                    .map(String::from)
                    .collect()
            })
        })
        .collect()
}

/// Every flag in the udpcat commands of `lines` that its subcommand does not declare, as
/// one message per flag. The subcommand's `--help` is the reference.
pub(crate) fn unknown_flags(lines: &[String]) -> Vec<String> {
    let mut helps: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
    let mut problems = Vec::new();
    for l in lines {
        for words in invocations(l) {
            let sub = words
                .iter()
                .find(|w| !w.starts_with('-'))
                .cloned()
                .unwrap_or_default();
            let declared = helps.entry(sub.clone()).or_insert_with(|| {
                let mut args: Vec<&str> = Vec::new();
                if !sub.is_empty() {
                    args.push(&sub);
                }
                args.push("--help");
                let out = udpcat(&args)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run udpcat");
                out.status.success().then(|| {
                    crate::help::declared_options(&String::from_utf8_lossy(&out.stdout))
                        .into_iter()
                        .flatten()
                        .collect()
                })
            });
            let Some(declared) = declared else {
                problems.push(format!("{l:?}: `udpcat {sub}` is not a command"));
                continue;
            };
            for w in &words {
                let flags: Vec<String> = if let Some(long) = w.strip_prefix("--") {
                    vec![format!("--{}", long.split('=').next().unwrap_or(long))]
                } else if let Some(short) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
                    short.chars().map(|c| format!("-{c}")).collect()
                } else {
                    continue;
                };
                for f in flags {
                    if !declared.contains(&f) {
                        problems.push(format!("{l:?}: `udpcat {sub}` has no {f}"));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn invocations_are_found_in_shell_lines() {
    assert_eq!(
        invocations("$ udpcat listen -s 127.0.0.1:12345"),
        vec![vec!["listen", "-s", "127.0.0.1:12345"]]
    );
    assert_eq!(
        invocations(
            "udpcat listen -f hex 127.0.0.1:9000 | udpcat send --hex 127.0.0.1:9001   # relay"
        ),
        vec![
            vec!["listen", "-f", "hex", "127.0.0.1:9000"],
            vec!["send", "--hex", "127.0.0.1:9001"]
        ]
    );
    assert_eq!(
        invocations("udpcat send --chunk 1024 127.0.0.1:9000 < firmware.bin"),
        vec![vec!["send", "--chunk", "1024", "127.0.0.1:9000"]]
    );
    assert!(invocations("udpcat: error: stdin line 3: 70000 bytes").is_empty());
    assert!(invocations("tail -f app.log").is_empty());
    assert!(invocations("# a comment naming udpcat send").is_empty());
}

#[test]
fn unknown_flags_are_reported() {
    let problems = unknown_flags(&[
        "udpcat send --no-such-flag 127.0.0.1:9".into(),
        "udpcat listen -Z 127.0.0.1:9".into(),
        "udpcat frobnicate".into(),
        "udpcat listen -s -vv --count 1 127.0.0.1:9".into(),
    ]);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn readme_commands_use_only_real_flags() {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("read README.md");
    let lines: Vec<String> = code_blocks(&readme)
        .into_iter()
        .flat_map(|(_, lines)| lines)
        .collect();
    assert!(
        lines.iter().filter(|l| !invocations(l).is_empty()).count() >= 10,
        "README.md should show udpcat commands in its code blocks"
    );
    let problems = unknown_flags(&lines);
    assert!(
        problems.is_empty(),
        "README.md shows udpcat commands with flags that do not exist:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn readme_shell_scripts_are_valid_bash() {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("read README.md");
    for (info, lines) in code_blocks(&readme) {
        if !matches!(info.as_str(), "sh" | "bash" | "shell") {
            continue;
        }
        let script = lines.join("\n");
        let out = Command::new("bash")
            .args(["-n", "-c", &script])
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "a ```{info} block in README.md is not valid bash: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
