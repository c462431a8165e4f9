//! The `ner` command line: tagging and scoring CoNLL files with the shipped model.

use std::io::Write;
use std::process::{Command, Stdio};

const SAMPLE: &str = "-DOCSTART- -X- -X- O\n\n\
    US NNP B-NP B-LOC\nSecretary NNP I-NP O\nof IN B-PP O\nState NNP B-NP O\n\
    John NNP I-NP B-PER\nKerry NNP I-NP I-PER\nmet VBD B-VP O\nSergei NNP B-NP B-PER\n\
    Lavrov NNP I-NP I-PER\nin IN B-PP O\nGeneva NNP B-NP B-LOC\n. . O O\n";

fn newsstore(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_newsstore"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn ner_tag_adds_a_column_and_passes_other_lines_through() {
    let (ok, out, err) = newsstore(&["ner", "tag"], Some(SAMPLE));
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), SAMPLE.lines().count());
    assert_eq!(lines[0], "-DOCSTART- -X- -X- O");
    assert_eq!(lines[1], "");
    // Every token line keeps its columns and gains the predicted tag, which here is the gold.
    for (line, input) in lines.iter().zip(SAMPLE.lines()).skip(2) {
        let gold = input.split(' ').next_back().unwrap();
        assert_eq!(*line, format!("{input} {gold}"));
    }
}

/// Prose on stdin is recognised as plain text, tokenised into sentences and tagged token by
/// token, not tagged line by line as if each line were one token.
#[test]
fn ner_tag_tokenises_plain_text() {
    let text = "US Secretary of State John Kerry met Sergei Lavrov in Geneva. \
                They talked for three hours.\n";
    let (ok, out, err) = newsstore(&["ner", "tag"], Some(text));
    assert!(ok, "{err}");
    assert!(err.contains("plain text"), "{err}");
    let sentences: Vec<&str> = out.split("\n\n").filter(|s| !s.trim().is_empty()).collect();
    assert_eq!(sentences.len(), 2, "{out}");
    let tagged: Vec<(&str, &str)> = sentences[0]
        .lines()
        .map(|line| line.split_once(' ').unwrap())
        .collect();
    assert_eq!(tagged.len(), 12, "one line per token: {out}");
    assert_eq!(tagged[4], ("John", "B-PER"));
    assert_eq!(tagged[5], ("Kerry", "I-PER"));
    assert_eq!(tagged[10], ("Geneva", "B-LOC"));
    assert_eq!(tagged[11], (".", "O"));
}

#[test]
fn ner_eval_scores_entities_per_type() {
    let dir = super::support::temp_dir();
    let file = dir.path().join("sample.conll");
    std::fs::write(&file, SAMPLE).unwrap();
    let (ok, out, err) = newsstore(&["ner", "eval", file.to_str().unwrap()], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("12 tokens, 4 entities, 4 found, 4 correct"),
        "{out}"
    );
    let overall = out.lines().find(|l| l.starts_with("overall")).unwrap();
    assert!(overall.contains("1.0000"), "{out}");
    assert!(out.contains("tokens per second"), "{out}");
    // A missing file is a clear error, not a panic.
    let (ok, _, err) = newsstore(&["ner", "eval", "/nonexistent/file.conll"], None);
    assert!(!ok);
    assert!(err.contains("cannot read /nonexistent/file.conll"), "{err}");
}
