//! `fraudflow score` as a user runs it: one output line per input line, whatever the line holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ort_dylib() -> String {
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        return path;
    }
    fraudflow::model::find_ort_in_venv(&repo().join(".venv"))
        .map(|p| p.display().to_string())
        .expect("set ORT_DYLIB_PATH or run `make test`")
}

fn score(input: &[u8], extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fraudflow"))
        .args(["score", "--input", "-", "--output", "-"])
        .args(extra)
        .env("ORT_DYLIB_PATH", ort_dylib())
        .env_remove("MODEL_URI")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fraudflow");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    let answers = String::from_utf8(output.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        answers,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn event(name: &str) -> String {
    let value: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("events").join(name)).expect("event"),
    )
    .expect("json");
    value.to_string()
}

#[test]
fn every_input_line_gets_exactly_one_output_line_in_order() {
    let good = event("direct-single.json");
    let mut input = Vec::new();
    input.extend_from_slice(b"\xef\xbb\xbf"); // a byte-order mark before the first line
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(b"\n{not json\n\n\xff\xfe\n");
    input.extend_from_slice(good.replace("\"amount\":94.0", "\"amount\":-1").as_bytes());
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(b"{\"transaction_id\": 1,\n"); // the first line of an indented file
    let (code, answers, stderr) = score(&input, &["--require-model", "--batch-size", "2"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(answers.len(), 6, "{answers:?}");
    assert_eq!(answers[0]["source"], "model");
    assert_eq!(answers[0]["transaction_id"], 1243077);
    assert_eq!(answers[1]["error"]["code"], "invalid_json");
    assert_eq!(
        answers[1]["error"]["message"],
        "line 2 is not JSON: key must be a string at line 1 column 2"
    );
    assert_eq!(
        answers[2]["error"]["message"],
        "line 3 is empty; expected one transaction as JSON"
    );
    assert_eq!(answers[3]["error"]["code"], "invalid_json");
    assert_eq!(
        answers[3]["error"]["message"],
        "line 4 is not UTF-8 text (invalid byte at offset 0); expected one transaction as JSON in UTF-8"
    );
    assert_eq!(answers[4]["error"]["field"], "amount");
    assert_eq!(
        answers[4]["error"]["message"],
        "amount must be a finite number >= 0, got -1"
    );
    assert_eq!(
        answers[5]["error"]["message"],
        "line 6 is not JSON: EOF while parsing a value at line 1 column 21; the input is JSON \
         Lines: one whole transaction per line (an indented JSON file is not)"
    );
    assert!(
        stderr.contains("scored 6 transactions: 1 answer (1 model, 0 heuristic), 5 errors"),
        "{stderr}"
    );
}

#[test]
fn a_model_that_cannot_load_fails_with_require_model_and_leaves_the_output_alone() {
    let dir = std::env::temp_dir().join(format!("fraudflow-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let output = dir.join("answers.jsonl");
    std::fs::write(&output, "previous answers\n").expect("write");
    let status = Command::new(env!("CARGO_BIN_EXE_fraudflow"))
        .args([
            "score",
            "--model",
            dir.to_str().expect("utf8"),
            "--input",
            "-",
            "--output",
            output.to_str().expect("utf8"),
            "--require-model",
        ])
        .env("ORT_DYLIB_PATH", ort_dylib())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(status.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(
        stderr.contains(&format!(
            "could not read {}",
            dir.join("manifest.json").display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&output).expect("read"),
        "previous answers\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_deadline_flag_large_batches_are_scored_by_the_model() {
    let line = event("direct-single.json");
    let input = format!("{}\n", vec![line; 3000].join("\n"));
    let (code, answers, stderr) = score(input.as_bytes(), &["--batch-size", "3000"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(answers.len(), 3000);
    assert!(answers.iter().all(|a| a["source"] == "model"), "{stderr}");
}

#[test]
fn a_truncated_gzip_input_keeps_the_lines_before_it_and_fails_naming_the_cause() {
    let dir = temp_dir("gz");
    let line = event("direct-single.json");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..2000 {
        writeln!(encoder, "{line}").expect("compress");
    }
    let compressed = encoder.finish().expect("compress");
    let input = dir.join("cut.jsonl.gz");
    std::fs::write(&input, &compressed[..compressed.len() / 2]).expect("write");
    let output = dir.join("answers.jsonl");
    let result = run_files(&input, &output);
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    let written = std::fs::read_to_string(&output)
        .expect("answers")
        .lines()
        .count();
    assert!(written > 0 && written < 2000, "{written} lines written");
    // The cause leads; the count of what was kept follows.
    assert!(stderr.contains("Error: reading line "), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "({written} lines were scored and written before it)"
        )),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_directory_as_input_is_refused_before_the_model_loads() {
    let output = Command::new(env!("CARGO_BIN_EXE_fraudflow"))
        .args(["score", "--input", "samples", "--output", "-"])
        .current_dir(repo())
        .env("ORT_DYLIB_PATH", ort_dylib())
        .env_remove("MODEL_URI")
        .output()
        .expect("run fraudflow");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "input samples is a directory: give a JSON Lines file (.gz too) or - for stdin"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("loaded from"),
        "the model was loaded first: {stderr}"
    );
    assert!(output.stdout.is_empty());
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fraudflow-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn run_files(input: &Path, output: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fraudflow"))
        .args(["score", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output)
        .env("ORT_DYLIB_PATH", ort_dylib())
        .env_remove("MODEL_URI")
        .output()
        .expect("run fraudflow")
}

#[test]
fn the_input_file_as_output_is_refused_and_left_as_it_was() {
    let dir = temp_dir("same");
    let file = dir.join("transactions.jsonl");
    let content = format!(
        "{}\n{}\n",
        event("direct-single.json"),
        event("direct-single.json")
    );
    std::fs::write(&file, &content).expect("write");
    // The same file under another name is the same file too.
    let other_name = dir.join(".").join("transactions.jsonl");
    let result = run_files(&file, &other_name);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is the input file: writing the answers would overwrite the transactions before they are read; give another --output"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("loaded from"),
        "the model was loaded first: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), content);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn gzip_is_read_by_its_header_and_written_for_a_gz_name() {
    let dir = temp_dir("gzip");
    let line = event("direct-single.json");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..3 {
        writeln!(encoder, "{line}").expect("compress");
    }
    // gzip bytes under a plain name
    let input = dir.join("transactions.jsonl");
    std::fs::write(&input, encoder.finish().expect("compress")).expect("write");
    let output = dir.join("answers.jsonl.gz");
    let result = run_files(&input, &output);
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&output).expect("open")),
        &mut text,
    )
    .expect("the output is gzip");
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a["source"] == "model"));
    // plain text under a .gz name reads as text
    let plain = dir.join("plain.jsonl.gz");
    std::fs::write(&plain, format!("{line}\n")).expect("write");
    let result = run_files(&plain, &dir.join("plain-answers.jsonl"));
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_closed_output_pipe_fails_and_says_how_much_was_written() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fraudflow"))
        .args([
            "score",
            "--input",
            "samples/test-days.jsonl.gz",
            "--output",
            "-",
        ])
        .current_dir(repo())
        .env("ORT_DYLIB_PATH", ort_dylib())
        .env_remove("MODEL_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fraudflow");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 10];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("read");
    drop(stdout); // `| head -c 10`
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the output was closed (broken pipe) after "),
        "{stderr}"
    );
}

#[test]
fn lines_that_are_not_one_transaction_say_what_they_are() {
    let line = event("direct-single.json");
    let batch = format!("{{\"transactions\": [{line}, {line}]}}");
    let nan = line.replacen("\"amount\":94.0", "\"amount\":NaN", 1);
    assert_ne!(nan, line, "the event's amount moved: update the test");
    let huge = line.replacen("\"amount\":94.0", "\"amount\":1e400", 1);
    let input = format!("{batch}\n{nan}\n{huge}\n\u{feff}{line}\n");
    let (code, answers, stderr) = score(input.as_bytes(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(answers.len(), 4);
    assert_eq!(
        answers[0]["error"]["message"],
        "line 1 is a batch object ({\"transactions\": [...]} with 2 transactions); JSON Lines takes one transaction per line"
    );
    let message = |i: usize| {
        answers[i]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        message(1).ends_with("; NaN and Infinity are not JSON numbers: send a finite number"),
        "{}",
        message(1)
    );
    assert!(
        message(2).ends_with(
            "; a number beyond float64 (about 1.8e308) cannot be a feature: send a finite number"
        ),
        "{}",
        message(2)
    );
    // a byte-order mark on a later line (concatenated files) is skipped like on the first
    assert_eq!(answers[3]["source"], "model", "{}", answers[3]);
}
