//! What docs/operations.md states that the code also knows is checked against the code: every
//! flag and environment variable of `serve` and of the client commands, the scope table,
//! and the metric names. A flag added without its documentation fails here.

use super::support::run_cli;

fn operations() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs/operations.md exists")
}

/// The `--flags` and `NEWSSTORE_*` variables a command's `--help` lists.
fn help_of(command: &str) -> (Vec<String>, Vec<String>) {
    let (ok, help, stderr) = run_cli(&[command, "--help"]);
    assert!(ok, "{stderr}");
    let mut flags = Vec::new();
    let mut envs = Vec::new();
    for word in help.split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | ',' | '=')) {
        if let Some(flag) = word.strip_prefix("--")
            && !flag.is_empty()
            && flag.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            && flag != "help"
        {
            flags.push(format!("--{flag}"));
        }
        if word.starts_with("NEWSSTORE_") {
            envs.push(word.trim_end_matches(['.', ')']).to_string());
        }
    }
    flags.sort();
    flags.dedup();
    envs.sort();
    envs.dedup();
    (flags, envs)
}

#[test]
fn every_serve_flag_and_variable_is_documented() {
    let doc = operations();
    let (flags, envs) = help_of("serve");
    assert!(flags.len() > 30, "{flags:?}");
    for flag in &flags {
        assert!(
            doc.contains(&format!("| `{flag}` |")),
            "`newsstore serve {flag}` is missing from the flag table of docs/operations.md"
        );
    }
    for env in &envs {
        assert!(
            doc.contains(&format!("`{env}`")),
            "{env} is missing from docs/operations.md"
        );
    }
}

#[test]
fn every_client_flag_is_documented() {
    let doc = operations();
    for command in ["backup", "export", "reextract"] {
        let (flags, envs) = help_of(command);
        for flag in flags.iter().filter(|f| {
            [
                "--server",
                "--token",
                "--ca-cert",
                "--client-cert",
                "--client-key",
                "--tls-server-name",
            ]
            .contains(&f.as_str())
        }) {
            assert!(
                doc.contains(&format!("| `{flag}` |")),
                "`newsstore {command} {flag}` is missing from docs/operations.md"
            );
        }
        for env in &envs {
            assert!(
                doc.contains(&format!("`{env}`")),
                "{env} ({command}) is missing from docs/operations.md"
            );
        }
    }
}

#[test]
fn the_scope_table_is_the_servers() {
    let doc = operations();
    let mut documented: Vec<(String, String)> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [method, scope] = cells.as_slice() else {
                return None;
            };
            let method = method.strip_prefix('`')?.strip_suffix('`')?;
            method
                .starts_with("newsstore.v1.")
                .then(|| (method.to_string(), scope.to_string()))
        })
        .collect();
    let mut served: Vec<(String, String)> = newsstore::api::layers::auth::SCOPES
        .iter()
        .map(|(method, scope)| (method.to_string(), scope.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}

#[test]
fn every_metric_is_documented() {
    let doc = operations();
    for (name, _, _) in newsstore::metrics::METRICS {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "metric {name} is missing from docs/operations.md"
        );
    }
}

#[test]
fn the_readme_links_the_operations_guide() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("(docs/operations.md)"));
}

/// docs/api.md's errors table lists exactly the codes and reasons the server answers with
/// (`api::status::every_code_and_reason`), so the table cannot drift from the code.
#[test]
fn the_errors_table_is_the_servers() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md exists");
    let mut documented: Vec<(String, String)> = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [code, reasons, _] = cells.as_slice() else {
            continue;
        };
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            continue;
        }
        for reason in reasons.split(',') {
            let reason = reason.trim().trim_matches('`');
            documented.push((code.to_string(), reason.to_string()));
        }
    }
    let upper_snake = |code: tonic::Code| {
        let mut out = String::new();
        for (i, c) in format!("{code:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    };
    let mut served: Vec<(String, String)> = newsstore::api::status::every_code_and_reason()
        .into_iter()
        .map(|(code, reason)| (upper_snake(code), reason.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(
        documented, served,
        "docs/api.md's errors table differs from what the server answers"
    );
}
