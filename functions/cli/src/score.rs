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
    /// Per-request deadline in milliseconds before the heuristic answers [default: FRAUDFLOW_DEADLINE_MS or 200]
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
    if let Some(ms) = args.deadline_ms {
        config.request_budget = Duration::from_millis(ms);
    }
    let reader = open_input(&args.input)?;
    let mut writer = open_output(&args.output)?;
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
    let mut lines = reader.lines().enumerate();
    loop {
        items.clear();
        unparsable.clear();
        for (number, line) in lines.by_ref() {
            let line =
                line.with_context(|| format!("reading line {} of {}", number + 1, args.input))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(value) => items.push(value),
                Err(err) => {
                    // Keep its place: an unparsable line still gets its own error line.
                    unparsable.push((
                        items.len(),
                        format!("line {} is not JSON: {err}", number + 1),
                    ));
                    items.push(Value::Null);
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
            serde_json::to_writer(&mut writer, outcome).context("writing an answer")?;
            writer.write_all(b"\n").context("writing an answer")?;
        }
        progress.inc(outcomes.len() as u64);
    }
    writer.flush().context("flushing the output")?;
    progress.finish_and_clear();
    eprint!("{}", summary.render());
    Ok(())
}

fn open_input(path: &str) -> anyhow::Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
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
