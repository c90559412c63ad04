//! The deployment files in `deploy/` against the binary they start: the systemd units
//! parse (and, where `systemd-analyze` is installed, verify) with the sections and keys
//! they need, and every command line they run — each unit's `ExecStart`, the image's
//! `ENTRYPOINT` + `CMD`, compose's `command` — is accepted by the real `orgsync` (run with
//! `--help`), so renaming a command or flag breaks this test rather than a server. The
//! `ORGSYNC__…` overrides the container files set must name real settings.
//!
//! `compose.yaml` is not parsed as YAML: no YAML crate is a dependency of the workspace,
//! and one is not worth adding for this; its command and overrides are read line by line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ORGSYNC;

const BIN: &str = env!("CARGO_BIN_EXE_orgsync");
/// Where the units expect the binary.
const INSTALLED: &str = "/usr/local/bin/orgsync";
const SERVE: &str = "orgsync-serve.service";
const SYNC: &str = "orgsync-contacts-sync.service";
const TIMER: &str = "orgsync-contacts-sync.timer";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A unit file: its sections, each with its `Key=Value` lines in order.
struct Unit {
    name: &'static str,
    sections: BTreeMap<String, Vec<(String, String)>>,
}

impl Unit {
    /// Parse `deploy/systemd/<name>`: every line is blank, a comment, a section header or
    /// `Key=Value` (no continuation lines).
    fn load(name: &'static str) -> Unit {
        let text = read(&deploy().join("systemd").join(name));
        let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
                continue;
            }
            assert!(!t.ends_with('\\'), "{at}: a continuation line: {line}");
            if let Some(section) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                assert!(
                    !section.is_empty() && section.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{at}: a bad section header: {line}"
                );
                assert!(
                    !sections.contains_key(section),
                    "{at}: [{section}] appears twice"
                );
                sections.insert(section.to_owned(), Vec::new());
                current = Some(section.to_owned());
                continue;
            }
            let Some((key, value)) = t.split_once('=') else {
                panic!("{at}: not a section, comment, blank or Key=Value: {line}");
            };
            assert!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
                "{at}: a bad key {key:?}"
            );
            let Some(section) = &current else {
                panic!("{at}: {key}= before any section");
            };
            sections
                .get_mut(section)
                .unwrap()
                .push((key.to_owned(), value.to_owned()));
        }
        Unit { name, sections }
    }

    /// Every value of `key` in `[section]`.
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        let Some(lines) = self.sections.get(section) else {
            panic!("{}: no [{section}] section", self.name);
        };
        lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `key` in `[section]`.
    fn one(&self, section: &str, key: &str) -> &str {
        match self.all(section, key).as_slice() {
            [v] => v,
            [] => panic!("{}: [{section}] has no {key}=", self.name),
            more => panic!("{}: [{section}] has {} {key}= lines", self.name, more.len()),
        }
    }

    fn has(&self, section: &str, key: &str, value: &str) {
        assert!(
            self.all(section, key).contains(&value),
            "{}: [{section}] lacks {key}={value}",
            self.name
        );
    }

    /// `ExecStart`'s arguments after the binary, which must be the installed `orgsync`.
    fn exec_args(&self) -> Vec<String> {
        let line = self
            .one("Service", "ExecStart")
            .trim_start_matches(['@', '-', ':', '+', '!']);
        assert!(
            !line.contains(['"', '\'', '$', '%']),
            "{}: ExecStart needs quoting or expansion this test does not parse: {line}",
            self.name
        );
        let mut words = line.split_whitespace().map(str::to_owned);
        assert_eq!(
            words.next().as_deref(),
            Some(INSTALLED),
            "{}: ExecStart runs something else",
            self.name
        );
        words.collect()
    }
}

/// `orgsync <args> --help` with the real binary: whether clap accepts the command line.
async fn accepts(args: &[String]) -> (bool, String) {
    let out = ORGSYNC
        .command()
        .args(args)
        .arg("--help")
        .output()
        .await
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn assert_accepted(what: &str, args: &[String]) {
    let (ok, stderr) = accepts(args).await;
    assert!(
        ok,
        "{what}: `orgsync {}` is refused:\n{stderr}",
        args.join(" ")
    );
}

#[test]
fn the_units_have_the_sections_and_settings_they_need() {
    let serve = Unit::load(SERVE);
    let sync = Unit::load(SYNC);
    let timer = Unit::load(TIMER);
    for unit in [&serve, &sync] {
        unit.one("Unit", "Description");
        unit.has("Unit", "After", "network-online.target");
        unit.has("Unit", "Wants", "network-online.target");
        unit.one("Service", "ExecStart");
        for (key, value) in [
            ("User", "orgsync"),
            ("StateDirectory", "orgsync"),
            ("ConfigurationDirectory", "orgsync"),
            ("EnvironmentFile", "-/etc/orgsync/env"),
            ("UMask", "0077"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("ReadWritePaths", "/var/lib/orgsync"),
        ] {
            unit.has("Service", key, value);
        }
        let args = unit.exec_args();
        assert_eq!(
            args[..2],
            ["-c", "/etc/orgsync/orgsync.toml"],
            "{}: the configuration is not /etc/orgsync's",
            unit.name
        );
    }
    serve.has("Service", "Restart", "on-failure");
    serve.one("Install", "WantedBy");
    assert_eq!(serve.exec_args()[2..], ["serve"]);
    // A oneshot started by the timer: no [Install] (enabling it would run it at boot).
    sync.has("Service", "Type", "oneshot");
    assert!(!sync.sections.contains_key("Install"));
    assert_eq!(sync.exec_args()[2..], ["contacts", "sync"]);

    timer.one("Timer", "OnCalendar");
    timer.has("Timer", "Persistent", "true");
    timer.one("Timer", "RandomizedDelaySec");
    assert_eq!(timer.one("Timer", "Unit"), SYNC);
    timer.has("Install", "WantedBy", "timers.target");
}

#[tokio::test]
async fn every_command_line_in_deploy_is_accepted_by_the_binary() {
    for name in [SERVE, SYNC] {
        assert_accepted(name, &Unit::load(name).exec_args()).await;
    }
    // The check can fail: a flag the binary does not have is refused even with --help.
    let mut renamed = Unit::load(SERVE).exec_args();
    renamed.push("--no-such-flag".into());
    assert!(!accepts(&renamed).await.0, "an unknown flag was accepted");

    // The image: ENTRYPOINT + CMD, as exec-form JSON arrays.
    let containerfile = read(&deploy().join("Containerfile"));
    let array = |instruction: &str| -> Vec<String> {
        let line = containerfile
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
            .unwrap_or_else(|| panic!("Containerfile has no {instruction}"));
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("Containerfile {instruction} is not exec form ({e})"))
    };
    let entrypoint = array("ENTRYPOINT");
    assert_eq!(entrypoint, ["orgsync"]);
    assert_accepted("Containerfile CMD", &array("CMD")).await;
    assert!(containerfile.contains("\nEXPOSE 8080\n"));
    assert!(containerfile.contains("\nUSER "), "the image runs as root");

    // compose's command (a flow sequence, which is JSON).
    let compose = read(&deploy().join("compose.yaml"));
    let command: Vec<String> = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("command:"))
        .map(|v| serde_json::from_str(v.trim()).expect("compose command is a [\"…\"] list"))
        .expect("compose.yaml has a command");
    assert_accepted("compose.yaml command", &command).await;
    assert!(compose.contains("image: docker.io/library/postgres:16"));
    assert!(compose.contains("/healthz"));
}

/// `ORGSYNC__NAME` overrides in `text` with their values (unquoted, to the end of the
/// line or the next space).
fn overrides(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(i) = rest.find("ORGSYNC__") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..end].to_owned();
            let value = tail[end..]
                .trim_start_matches([':', '='])
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['"', '\''])
                .to_owned();
            if !name.ends_with('_') {
                out.push((name, value));
            }
            rest = &tail[end..];
        }
    }
    out
}

#[tokio::test]
async fn the_overrides_the_container_files_set_are_real_settings() {
    let mut set: Vec<(String, String)> = Vec::new();
    for file in ["compose.yaml", "Containerfile"] {
        set.extend(overrides(&read(&deploy().join(file))));
    }
    let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"ORGSYNC__STATE__URL"), "{names:?}");
    assert!(names.contains(&"ORGSYNC__SERVE__LISTEN"), "{names:?}");
    // Loaded by a command that reads the configuration and an empty SQLite state; the
    // PostgreSQL URL is swapped for that file (this test has no database).
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orgsync.toml");
    std::fs::write(&config, "").unwrap();
    let state = format!("sqlite://{}", dir.path().join("state.db").display());
    let vars: Vec<(&str, &str)> = set
        .iter()
        .map(|(n, v)| {
            let v = if n == "ORGSYNC__STATE__URL" {
                &state
            } else {
                v
            };
            (n.as_str(), v.as_str())
        })
        .collect();
    let out = ORGSYNC.run_env(&config, &["users", "list"], &vars).await;
    assert_eq!(out.code, 0, "{vars:?} refused:\n{}", out.stderr);
    // And a misspelt one is refused, naming itself.
    let out = ORGSYNC
        .run_env(
            &config,
            &["users", "list"],
            &[("ORGSYNC__STATE__URLS", &state)],
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("ORGSYNC__STATE__URLS"),
        "{}",
        out.stderr
    );
}

#[test]
fn systemd_analyze_verifies_the_units() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(analyze) = analyze else {
        // The parse above still ran; verify is the stronger check where systemd is.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "WARNING: systemd-analyze is not installed: the units were parsed, not verified"
        );
        return;
    };
    // verify needs each ExecStart binary to exist: point a copy at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in [SERVE, SYNC, TIMER] {
        let text = read(&deploy().join("systemd").join(name)).replace(INSTALLED, BIN);
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg("--man=no")
        .args(&paths)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown keys and bad values are warnings (exit 0) naming the file: none allowed.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| [SERVE, SYNC, TIMER].iter().any(|n| l.contains(n)))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze warns:\n{}",
        ours.join("\n")
    );

    let calendar = Unit::load(TIMER).one("Timer", "OnCalendar").to_owned();
    let out = std::process::Command::new(analyze)
        .args(["calendar", &calendar])
        .output()
        .expect("systemd-analyze runs");
    assert!(
        out.status.success(),
        "OnCalendar={calendar}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
