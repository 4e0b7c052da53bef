//! `fraudflow score`: stream JSON Lines through the library's scorer in batches.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use fraudflow::config::Config;
use fraudflow::contract::{ErrorCode, ItemError, Outcome};
use fraudflow::replay::Summary;
use fraudflow::scoring::request_deadline;
use fraudflow::service::Service;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Per-request deadline of batch scoring unless one is set.
const BATCH_DEADLINE: Duration = Duration::from_secs(60);
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

#[derive(Args)]
pub struct ScoreArgs {
    /// Model artifact: s3://bucket/prefix/ or a local folder [default: the bundled model]
    #[arg(long, env = "MODEL_URI")]
    model: Option<String>,
    /// JSON Lines input, one transaction per line; `-` for stdin; `.gz` is decompressed
    #[arg(long, default_value = "-")]
    input: String,
    /// Where to write one answer or error per input line; `-` for stdout
    #[arg(long, default_value = "-")]
    output: String,
    /// Transactions per scoring request (1 measures real-time latency; larger is faster backfill)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Per-request deadline in milliseconds before the heuristic answers [default: FRAUDFLOW_DEADLINE_MS, else 60000 for batch scoring]
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Fail instead of answering with the heuristic when the model cannot be loaded
    #[arg(long)]
    require_model: bool,
}

pub async fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let mut config = Config::from_env().context("reading configuration")?;
    if let Some(model) = args.model {
        config.model_uri = model;
    }
    match args.deadline_ms {
        Some(ms) => config.request_budget = Duration::from_millis(ms),
        // Backfill has nobody waiting on the line: a real-time budget would only push large
        // batches to the heuristic.
        None if std::env::var_os("FRAUDFLOW_DEADLINE_MS").is_none() => {
            config.request_budget = BATCH_DEADLINE
        }
        None => {}
    }
    let reader = open_input(&args.input)?;
    let (service, load) = Service::start(config).await;
    match (&load.error, &load.model_version) {
        (Some(error), _) if args.require_model => bail!(
            "the model could not be loaded from {}: {error}",
            load.location
        ),
        (Some(error), _) => eprintln!(
            "warning: model not loaded from {} ({error}); the heuristic answers",
            load.location
        ),
        (None, Some(version)) => eprintln!(
            "model {version} loaded from {} in {} ms",
            load.location, load.elapsed_ms
        ),
        (None, None) => {}
    }
    // Opened only now: a failed start must not truncate an existing output file.
    let mut writer = open_output(&args.output)?;

    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} {human_pos} transactions scored ({per_sec}, {elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut summary = Summary::default();
    let batch_size = args.batch_size as usize;
    let mut items: Vec<Value> = Vec::with_capacity(batch_size);
    let mut unparsable: Vec<(usize, String)> = Vec::new();
    let mut lines = reader.split(b'\n').enumerate();
    let mut read_error = None;
    loop {
        items.clear();
        unparsable.clear();
        for (number, line) in lines.by_ref() {
            let mut line = match line {
                Ok(line) => line,
                Err(err) => {
                    // Score what was read before the failure, then report it.
                    read_error = Some(anyhow::Error::new(err).context(format!(
                        "reading line {} of {}",
                        number + 1,
                        args.input
                    )));
                    break;
                }
            };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let text = if number == 0 {
                line.strip_prefix(UTF8_BOM).unwrap_or(&line)
            } else {
                &line[..]
            };
            // Every line gets one output line, so output line N answers input line N.
            if text.iter().all(u8::is_ascii_whitespace) {
                unparsable.push((
                    items.len(),
                    format!(
                        "line {} is empty; expected one transaction as JSON",
                        number + 1
                    ),
                ));
                items.push(Value::Null);
            } else {
                match serde_json::from_slice::<Value>(text) {
                    Ok(value) => items.push(value),
                    Err(err) => {
                        unparsable.push((items.len(), unparsable_line(number + 1, text, &err)));
                        items.push(Value::Null);
                    }
                }
            }
            if items.len() == batch_size {
                break;
            }
        }
        if items.is_empty() {
            break;
        }
        let started = Instant::now();
        let deadline =
            request_deadline(started, service.config.request_budget, None, Duration::ZERO);
        let mut outcomes = service.scorer.score_values(&items, deadline).await;
        let elapsed = started.elapsed();
        for (index, message) in unparsable.drain(..) {
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Outcome::Error {
                    transaction_id: Value::Null,
                    error: ItemError {
                        code: ErrorCode::InvalidJson,
                        field: None,
                        message,
                    },
                };
            }
        }
        summary.record(&items, &outcomes, elapsed);
        for outcome in &outcomes {
            let written = serde_json::to_writer(&mut writer, outcome)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"));
            if let Err(err) = written {
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    // The reader went away (`| head`): stop quietly, as command-line tools do.
                    progress.finish_and_clear();
                    return Ok(());
                }
                return Err(anyhow::Error::new(err).context("writing an answer"));
            }
        }
        progress.inc(outcomes.len() as u64);
        if read_error.is_some() {
            break;
        }
    }
    match writer.flush() {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("flushing the output")?,
    }
    progress.finish_and_clear();
    eprint!("{}", summary.render());
    match read_error {
        // The cause first: "Error: reading line 29 ...: incomplete deflate stream (28 lines ...)".
        Some(err) => Err(anyhow::anyhow!(
            "{err:#} ({} lines were scored and written before it)",
            summary.counts.items
        )),
        None => Ok(()),
    }
}

fn open_input(path: &str) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        // A directory opens on Linux and only fails at the first read, after the model load.
        if std::path::Path::new(path).is_dir() {
            anyhow::bail!(
                "input {path} is a directory: give a JSON Lines file (.gz too) or - for stdin"
            );
        }
        Box::new(File::open(path).with_context(|| format!("opening input {path}"))?)
    };
    let decoded: Box<dyn Read> = if path.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        raw
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, decoded)))
}

fn open_output(path: &str) -> anyhow::Result<Box<dyn Write>> {
    if path == "-" {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        File::create(&path).with_context(|| format!("creating output {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// Why an input line is not a transaction, with the likely fix: the parser's own message says
/// neither that the bytes are not UTF-8 nor that a line must hold a whole JSON document.
fn unparsable_line(number: usize, text: &[u8], err: &serde_json::Error) -> String {
    if let Err(utf8) = std::str::from_utf8(text) {
        return format!(
            "line {number} is not UTF-8 text (invalid byte at offset {}); expected one \
             transaction as JSON in UTF-8",
            utf8.valid_up_to()
        );
    }
    let hint = if err.is_eof() || err.to_string().starts_with("trailing characters") {
        "; the input is JSON Lines: one whole transaction per line (an indented JSON file is not)"
    } else {
        ""
    };
    format!("line {number} is not JSON: {err}{hint}")
}
