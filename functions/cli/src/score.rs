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
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Args)]
pub struct ScoreArgs {
    /// Model artifact: s3://bucket/prefix/ or a local folder [default: the bundled model]
    #[arg(long, env = "MODEL_URI")]
    model: Option<String>,
    /// JSON Lines input, one transaction per line; `-` for stdin; gzip is detected by its header
    #[arg(long, default_value = "-")]
    input: String,
    /// Where to write one answer or error per input line; `-` for stdout; a name ending in `.gz` is written gzipped; missing folders are created
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
    refuse_output_over_input(&args.input, &args.output)?;
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
            "{spinner} {human_pos} transactions scored ({rate}, {elapsed})",
        )
        .map(|style| {
            // indicatif's {per_sec} prints four decimals ("40,248.3488/s").
            style.with_key(
                "rate",
                |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                    let _ = write!(out, "{:.0}/s", state.per_sec());
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut summary = Summary::default();
    let batch_size = args.batch_size as usize;
    let mut items: Vec<Value> = Vec::with_capacity(batch_size);
    let mut unparsable: Vec<(usize, String)> = Vec::new();
    let mut lines = reader.split(b'\n').enumerate();
    let mut read_error = None;
    let mut written = 0usize;
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
            // A byte-order mark starts the first line of files saved by some editors, and any
            // line of files concatenated from them: it is not part of the JSON.
            let text = line.strip_prefix(UTF8_BOM).unwrap_or(&line);
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
                    Ok(value) => {
                        if let Some(message) = batch_object_line(number + 1, &value) {
                            unparsable.push((items.len(), message));
                            items.push(Value::Null);
                        } else {
                            items.push(value);
                        }
                    }
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
            let result = serde_json::to_writer(&mut writer, outcome)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"));
            if let Err(err) = result {
                if err.kind() == std::io::ErrorKind::BrokenPipe {
                    // The reader went away (`| head`): what was not written is lost, so say it
                    // and fail, rather than look like a complete run.
                    progress.finish_and_clear();
                    bail!(
                        "the output was closed (broken pipe) after {written} answers: the rest \
                         of the input was not written"
                    );
                }
                return Err(anyhow::Error::new(err).context("writing an answer"));
            }
        }
        written += outcomes.len();
        progress.inc(outcomes.len() as u64);
        if read_error.is_some() {
            break;
        }
    }
    match writer.finish() {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {
            bail!("the output was closed (broken pipe) before all {written} answers were flushed")
        }
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
    // Gzip by its header, not its name: a gzipped file called .jsonl and a plain one called .gz
    // both read right.
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let is_gzip = buffered
        .fill_buf()
        .with_context(|| format!("reading input {path}"))?
        .starts_with(&GZIP_MAGIC);
    if is_gzip {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(buffered),
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Writing the answers over the transactions would truncate the input before it is read.
fn refuse_output_over_input(input: &str, output: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if input == "-" || output == "-" {
        return Ok(());
    }
    let (Ok(read), Ok(write)) = (std::fs::metadata(input), std::fs::metadata(output)) else {
        return Ok(()); // an output that does not exist yet is not the input
    };
    if read.dev() == write.dev() && read.ino() == write.ino() {
        bail!(
            "--output {output} is the input file: writing the answers would overwrite the \
             transactions before they are read; give another --output"
        );
    }
    Ok(())
}

/// Where the answers go: plain, or gzip for a name ending in `.gz`.
enum Output {
    Plain(BufWriter<Box<dyn Write>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl Write for Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Plain(out) => out.write(bytes),
            Output::Gzip(out) => out.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Plain(out) => out.flush(),
            Output::Gzip(out) => out.flush(),
        }
    }
}

impl Output {
    /// Flush everything; for gzip, also write the stream's trailer.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Output::Plain(mut out) => out.flush(),
            Output::Gzip(out) => out.finish()?.flush(),
        }
    }
}

fn open_output(path: &str) -> anyhow::Result<Output> {
    if path == "-" {
        return Ok(Output::Plain(BufWriter::new(Box::new(std::io::stdout()))));
    }
    let path = PathBuf::from(path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let file =
        File::create(&path).with_context(|| format!("creating output {}", path.display()))?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        Ok(Output::Gzip(flate2::write::GzEncoder::new(
            BufWriter::new(file),
            flate2::Compression::default(),
        )))
    } else {
        Ok(Output::Plain(BufWriter::new(Box::new(file))))
    }
}

/// A `{"transactions": [...]}` batch on one line: valid JSON, but not one transaction.
fn batch_object_line(number: usize, value: &Value) -> Option<String> {
    let object = value.as_object()?;
    let batch = object.get("transactions")?.as_array()?;
    if object.contains_key("transaction_id") {
        return None;
    }
    Some(format!(
        "line {number} is a batch object ({{\"transactions\": [...]}} with {} transactions); \
         JSON Lines takes one transaction per line",
        batch.len()
    ))
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
    let message = err.to_string();
    // serde_json's columns count from 1, in bytes of this line.
    let rest = text
        .get(err.column().saturating_sub(1)..)
        .unwrap_or_default();
    let hint = if err.is_eof() || message.starts_with("trailing characters") {
        "; the input is JSON Lines: one whole transaction per line (an indented JSON file is not)"
    } else if message.starts_with("number out of range") {
        "; a number beyond float64 (about 1.8e308) cannot be a feature: send a finite number"
    } else if [&b"NaN"[..], b"Infinity", b"-Infinity"]
        .iter()
        .any(|word| rest.starts_with(word))
    {
        "; NaN and Infinity are not JSON numbers: send a finite number"
    } else {
        ""
    };
    format!("line {number} is not JSON: {err}{hint}")
}
