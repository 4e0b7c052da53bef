"""model-export: build, evaluate and time fraudflow's model from raw transactions (features, train, export,
eval, report, graph-bench, transactions, raw-sample)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from model_export.data import DataError, load_transactions, repo_root, resolve_data_path
from model_export.evaluate import SplitDates, known_compromised
from model_export.features import FEATURE_NAMES, features_for_file

__all__ = ["build_parser", "main"]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless there is none worth showing (None, False: flags)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="raw transactions Parquet file (default: $FRAUDFLOW_DATA or "
        "../shared/data/handbook-sim/transactions.parquet next to the repository)",
    )


def _add_dates(parser: argparse.ArgumentParser, title: str = "split (handbook protocol by default)") -> None:
    defaults = SplitDates()
    group = parser.add_argument_group(title)
    group.add_argument("--train-start", default=defaults.train_start, help="first training day (inclusive)")
    group.add_argument("--train-end", default=defaults.train_end, help="last training day (inclusive)")
    group.add_argument(
        "--delay-days", type=int, default=defaults.delay_days, help="days between training and test (label delay)"
    )
    group.add_argument("--test-start", default=defaults.test_start, help="first test day (inclusive)")
    group.add_argument("--test-end", default=defaults.test_end, help="last test day (inclusive)")


#: model_export.serving.PRECISIONS and DEFAULT_PRECISION (not imported: torch is slow to load)
GRAPH_PRECISIONS = ("float32-heads", "float64", "mixed")


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--graph-precision",
        choices=GRAPH_PRECISIONS,
        default=GRAPH_PRECISIONS[0],
        help="float types inside the exported graph (model_export.serving.PRECISIONS)",
    )


def _dates(args: argparse.Namespace) -> SplitDates:
    return SplitDates(args.train_start, args.train_end, args.delay_days, args.test_start, args.test_end)


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str))


def _metrics_line(label: str, metrics: dict[str, Any]) -> str:
    parts = [f"{label:<22}"]
    for key, name in (("roc_auc", "AUC"), ("average_precision", "AP"), ("card_precision_at_100", "CP@100")):
        if key in metrics and metrics[key] is not None:
            parts.append(f"{name} {metrics[key]:.4f}")
    return "  ".join(parts)


def cmd_features(args: argparse.Namespace) -> int:
    features, digest = features_for_file(resolve_data_path(args.data), progress=lambda m: print(m, file=sys.stderr))
    print(f"rows {len(features)}  frauds {int(features['TX_FRAUD'].sum())}  sha256 {digest}")
    print(f"customers {features['CUSTOMER_ID'].nunique()}  terminals {features['TERMINAL_ID'].nunique()}")
    print(f"from {features['TX_DATETIME'].min()} to {features['TX_DATETIME'].max()}")
    print(features[list(FEATURE_NAMES)].describe().T[["mean", "std", "min", "max"]].to_string())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from model_export.pipeline import train_and_export
    from model_export.train import default_config_path, load_config

    config = load_config(args.config or default_config_path())
    if args.steps is not None:
        config.steps = args.steps
    manifest = train_and_export(
        args.data,
        config,
        args.out,
        _dates(args),
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        precision=args.graph_precision,
    )
    metrics = manifest["metrics"]
    print(f"model {manifest['model_version']} -> {args.out} ({manifest['model']['size_bytes']} bytes)")
    print(_metrics_line("test (probability)", metrics["test"]))
    print(_metrics_line("test (-log_likelihood)", metrics["anomaly_score_test"]))
    for name, values in metrics.get("baselines_same_split", {}).items():
        print(_metrics_line(f"baseline {name}", values))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from model_export.pipeline import export_from_weights

    given = {k: getattr(args, k) for k in ("train_start", "train_end", "delay_days", "test_start", "test_end")}
    defaults = asdict(SplitDates())
    # the weights' own dates unless the split is given
    dates = (
        SplitDates(**{k: defaults[k] if v is None else v for k, v in given.items()})
        if any(v is not None for v in given.values())
        else None
    )
    manifest = export_from_weights(
        args.weights,
        args.data,
        args.out,
        dates,
        progress=not args.quiet,
        baselines=not args.no_baselines,
        precision=args.graph_precision,
    )
    metrics = manifest["metrics"]
    print(
        f"model {manifest['model_version']} -> {args.out} ({manifest['model']['size_bytes']} bytes, "
        f"{manifest['graph']['nodes']} nodes)"
    )
    print(_metrics_line("test (probability)", metrics["test"]))
    print(_metrics_line("test (-log_likelihood)", metrics["anomaly_score_test"]))
    return 0


def cmd_graph_bench(args: argparse.Namespace) -> int:
    from model_export.evaluate import make_split
    from model_export.export import records_matrix
    from model_export.features import feature_matrix
    from model_export.serving import format_benchmark, graph_benchmark

    model_dir = Path(args.model)
    if args.data:
        features, _ = features_for_file(resolve_data_path(args.data), progress=lambda m: print(m, file=sys.stderr))
        rows = feature_matrix(make_split(features, _dates(args)).test)[: args.rows]
        source = f"{len(rows)} test-week rows"
    else:
        golden = json.loads((model_dir / "golden.json").read_text(encoding="utf-8"))
        rows = records_matrix([case["transaction"] for case in golden["cases"]])
        source = f"the {len(rows)} golden transactions"
    paths = [model_dir / "model.onnx", *(Path(p) for p in args.against)]
    results = [(str(path), graph_benchmark(path, rows, calls=args.calls, batch=args.batch)) for path in paths]
    if args.json:
        _print_json(dict(results))
        return 0
    print(f"onnxruntime, 1 intra-op thread, ORT_ENABLE_ALL, Python client; rows: {source}")
    print(format_benchmark(results))
    return 0


ROW_LABELS = {
    "flow": "flow probability (onnx)",
    "flow_anomaly": "flow -log_likelihood",
    "logistic_regression": "logistic regression",
    "random_forest": "random forest (100)",
    "xgboost": "XGBoost (100, depth 6)",
}


def _scenario_recalls(row: dict[str, Any]) -> list[float]:
    """Recall of scenarios 1, 2, 3 at 100 cards a day (nan where a row has none)."""
    recall = row.get("scenario_recall", {})
    return [recall.get(str(s), {}).get("recall", float("nan")) for s in (1, 2, 3)]


def format_table(
    rows: dict[str, dict[str, Any]], spread: dict[str, dict[str, Any]] | None = None, flow_label: str | None = None
) -> str:
    """Side-by-side metrics; with ``spread`` (prequential summary) mean +- std instead."""
    labels = {**ROW_LABELS, **({"flow": flow_label} if flow_label else {})}
    head = f"{'model':<26} {'AUC':>15} {'AP':>15} {'CP@100':>15} {'ECE':>8}"
    if spread is None:
        head += f" {'recall s1':>9} {'s2':>6} {'s3':>6}"
    lines = [head, "-" * len(head)]
    for name in rows:
        label = labels.get(name, name)
        if spread is not None:
            cells = []
            for key in ("roc_auc", "average_precision", "card_precision_at_100"):
                v = spread[name].get(key)
                cells.append(f"{v['mean']:.4f}+-{v['std']:.4f}" if v else "-")
            ece = spread[name].get("ece")
            ece_cell = f"{ece['mean']:.4f}" if ece else "-"
            lines.append(f"{label:<26} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} {ece_cell:>8}")
            continue
        m = rows[name]
        ece = m.get("ece")
        rec = _scenario_recalls(m)
        lines.append(
            f"{label:<26} {m['roc_auc']:>15.4f} {m['average_precision']:>15.4f} "
            f"{m['card_precision_at_100']:>15.4f} {f'{ece:.4f}' if ece is not None else '-':>8} "
            f"{rec[0]:>9.3f} {rec[1]:>6.3f} {rec[2]:>6.3f}"
        )
    return "\n".join(lines)


CEILING_NOTE = (
    "ceiling: what the 15 features allow at best. The 'hidden' frauds are scenario-2 payments at terminals with\n"
    "no known fraud yet (all terminal risks 0: compromised inside the label delay); nothing in the features tells\n"
    "them from legitimate payments. An oracle ranks every other fraud first and the hidden ones at random among\n"
    "the legitimate payments: no score beats its AUC and AP in expectation. For CP@100, which ranks cards by their\n"
    "highest score of the day, it takes the better of that and the busiest cards first among the rest: the best\n"
    "order we know, not a bound. Means of 10 random orders (eval --json gives their range)."
)


def format_ceiling(ceiling: dict[str, Any], spread: bool = False) -> str:
    """The ceiling row, under :func:`format_table`'s columns."""
    keys = ("roc_auc", "average_precision", "card_precision_at_100")
    if spread:
        cells = [f"{ceiling[k]['mean']:.4f}+-{ceiling[k]['std']:.4f}" for k in keys]
    else:
        cells = [f"{ceiling[k]:.4f}" for k in keys]
    line = f"{'ceiling (see below)':<26} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}"
    if not spread:
        rec = _scenario_recalls(ceiling)
        line += f" {'-':>8} {rec[0]:>9.3f} {rec[1]:>6.3f} {rec[2]:>6.3f}"
        line += f"   ({ceiling['n_hidden']} of {ceiling['n_fraud']} frauds hidden)"
    return line


def cmd_eval(args: argparse.Namespace) -> int:
    from model_export.pipeline import evaluate_artifact, prequential, prequential_folds
    from model_export.train import default_config_path, load_config

    if args.prequential:
        config = load_config(args.config or default_config_path())
        folds = prequential_folds(args.first_test_start, args.folds)
        result = prequential(args.data, config, folds, seed=args.seed, device=args.device, progress=not args.quiet)
        if args.json:
            _print_json(result)
            return 0
        for fold in result["folds"]:
            d = fold["dates"]
            print(
                f"fold train {d['train_start']}..{d['train_end']}  test {d['test_start']}..{d['test_end']}"
                f" ({fold['test_days']} days with data)"
            )
            print(format_table(fold["rows"], flow_label="flow probability (torch)"))
            print(format_ceiling(fold["ceiling"]))
            print()
        print(f"prequential, {len(result['folds'])} folds: mean +- std")
        print(format_table(result["folds"][0]["rows"], result["summary"], flow_label="flow probability (torch)"))
        print(format_ceiling(result["summary"]["ceiling"], spread=True))
        print(CEILING_NOTE)
        return 0
    report = evaluate_artifact(args.data, args.model, progress=not args.quiet, baselines=not args.no_baselines)
    if args.json:
        _print_json(report)
        return 0
    test = report["test"]
    print(
        f"model {report['model_version']}  test {report['dates']['test_start']}..{report['dates']['test_end']}"
        f"  n {test['n']}  frauds {test['n_fraud']}  (onnxruntime {report['onnxruntime_seconds']} s)"
    )
    print("recall sN: share of scenario-N fraudulent payments whose card is in its day's top 100 cards")
    print(format_table(report["rows"]))
    print(format_ceiling(report["ceiling"]))
    print(CEILING_NOTE)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from model_export.report import write_report

    path = write_report(args.data, args.model, args.out, progress=not args.quiet)
    total = sum(p.stat().st_size for p in path.parent.glob("*.png"))
    print(f"wrote {path} and {len(list(path.parent.glob('*.png')))} PNGs ({total} bytes)")
    return 0


def cmd_transactions(args: argparse.Namespace) -> int:
    from model_export.samples import transaction_records, write_jsonl

    features, _ = features_for_file(resolve_data_path(args.data), progress=lambda m: print(m, file=sys.stderr))
    days = features["TX_DATETIME"].dt.normalize()
    rows = features[(days >= pd.Timestamp(args.start)) & (days <= pd.Timestamp(args.end))]
    known = known_compromised(rows, _dates(args), labels=features)
    records = tqdm(transaction_records(rows, known), total=len(rows), desc="transactions", disable=args.quiet)
    count = write_jsonl(records, args.out)
    size = Path(args.out).stat().st_size
    print(
        f"wrote {count} transactions ({int(rows['TX_FRAUD'].sum())} frauds, {int(known.sum())} known "
        f"compromised) to {args.out} ({size} bytes)"
    )
    return 0


def cmd_raw_sample(args: argparse.Namespace) -> int:
    from model_export.samples import raw_sample

    frame = load_transactions(resolve_data_path(args.data))
    sample = raw_sample(frame, args.customers, args.start, args.end, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sample.to_parquet(out, compression="zstd", index=False)
    print(
        f"wrote {len(sample)} rows of {sample['CUSTOMER_ID'].nunique()} customers "
        f"({int(sample['TX_FRAUD'].sum())} frauds) to {out} ({out.stat().st_size} bytes)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-export", description=__doc__, formatter_class=_HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # Every subcommand shows its defaults too.
    add_parser = commands.add_parser

    def add_command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add_parser(name, formatter_class=_HelpFormatter, **kwargs)

    commands.add_parser = add_command  # type: ignore[method-assign]

    features = commands.add_parser("features", help="compute (and cache) the 15 features; print counts")
    _add_data(features)
    features.set_defaults(run=cmd_features)

    train = commands.add_parser("train", help="train, calibrate and export model.onnx, manifest, golden")
    _add_data(train)
    train.add_argument("--config", default=None, help="TOML config (default: model-export/configs/default.toml)")
    train.add_argument("--out", default=str(repo_root() / "models" / "default"), help="artifact folder to write")
    _add_dates(train)
    train.add_argument(
        "--seed", type=int, default=42, help="members train from seed, seed + 1, ...; it also draws the validation rows"
    )
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    train.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the config's, 3000 in configs/default.toml)"
    )
    _add_precision(train)
    train.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    train.set_defaults(run=cmd_train)

    export = commands.add_parser("export", help="rebuild model.onnx, manifest, golden from saved weights (no training)")
    _add_data(export)
    export.add_argument(
        "--weights", default=str(repo_root() / "models" / "default" / "weights.pt"), help="saved weights (weights.pt)"
    )
    export.add_argument("--out", default=str(repo_root() / "models" / "default"), help="artifact folder to write")
    _add_dates(export)
    export.set_defaults(train_start=None, train_end=None, delay_days=None, test_start=None, test_end=None)
    export.add_argument("--no-baselines", action="store_true", help="skip LR / RF / XGBoost in the manifest")
    _add_precision(export)
    export.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    export.set_defaults(run=cmd_export)

    evaluate = commands.add_parser("eval", help="score the test period with onnxruntime; print metrics")
    _add_data(evaluate)
    evaluate.add_argument("--model", default=str(repo_root() / "models" / "default"), help="artifact folder")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--no-baselines", action="store_true", help="skip LR / RF / XGBoost")
    evaluate.add_argument(
        "--prequential", action="store_true", help="train and score flow + baselines on 4 weekly folds instead"
    )
    evaluate.add_argument("--first-test-start", default="2018-08-08", help="prequential: first test week")
    evaluate.add_argument("--folds", type=int, default=4, help="prequential: number of weekly folds")
    evaluate.add_argument("--config", default=None, help="prequential: TOML config (default configs/default.toml)")
    evaluate.add_argument("--seed", type=int, default=42, help="prequential: training seed")
    evaluate.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="prequential: auto is CUDA when present"
    )
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    evaluate.set_defaults(run=cmd_eval)

    report = commands.add_parser("report", help="write a Markdown report with PNG plots (same run as eval)")
    _add_data(report)
    report.add_argument("--model", default=str(repo_root() / "models" / "default"), help="artifact folder")
    report.add_argument(
        "--out", default=str(repo_root() / "docs" / "model-report"), help="folder for README.md and the PNG plots"
    )
    report.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    report.set_defaults(run=cmd_report)

    bench = commands.add_parser("graph-bench", help="time model.onnx (and others) in onnxruntime, batch 1 and 256")
    bench.add_argument("--model", default=str(repo_root() / "models" / "default"), help="artifact folder")
    bench.add_argument("--against", nargs="*", default=[], help="other ONNX files to time in the same run")
    bench.add_argument("--data", default=None, help="time on test-week rows of this Parquet file (default: golden)")
    _add_dates(bench)
    bench.add_argument("--rows", type=int, default=10000, help="with --data: number of test rows")
    bench.add_argument("--calls", type=int, default=2000, help="single-row calls")
    bench.add_argument("--batch", type=int, default=256, help="rows per call of the batch figure")
    bench.add_argument("--json", action="store_true", help="print the timings as JSON")
    bench.set_defaults(run=cmd_graph_bench)

    transactions = commands.add_parser("transactions", help="write contract transactions as JSON Lines")
    _add_data(transactions)
    transactions.add_argument("--start", required=True, help="first day (inclusive)")
    transactions.add_argument("--end", required=True, help="last day (inclusive)")
    transactions.add_argument("--out", required=True, help="output file; gzip when it ends in .gz")
    _add_dates(
        transactions,
        "split whose known-compromised rule sets each line's label.known_compromised (handbook by default)",
    )
    transactions.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    transactions.set_defaults(run=cmd_transactions)

    sample = commands.add_parser("raw-sample", help="write a small real raw sample (Parquet, zstd)")
    _add_data(sample)
    sample.add_argument(
        "--out", default=str(repo_root() / "samples" / "raw-sample.parquet"), help="Parquet file to write"
    )
    sample.add_argument("--customers", type=int, default=300, help="customers drawn at random; all their rows are kept")
    sample.add_argument("--start", default="2018-06-20", help="first day kept (inclusive)")
    sample.add_argument("--end", default="2018-08-14", help="last day kept (inclusive)")
    sample.add_argument("--seed", type=int, default=42, help="seed of the customers' draw")
    sample.set_defaults(run=cmd_raw_sample)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``model-export`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DataError as error:
        print(f"model-export: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        from model_export.export import ParityError
        from model_export.pipeline import ArtifactError

        if isinstance(error, ParityError | ArtifactError):
            print(f"model-export: error: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
