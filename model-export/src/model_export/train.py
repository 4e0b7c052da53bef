"""Training the hybrid model: loss = BCE(head) + lambda * NLL(flow, legitimate rows) / D.

The training week is split at random (stratified, seeded) into fit and validation rows; the
validation rows choose the best step (early stopping on the same objective), then calibrate the
head and set the risk thresholds (:mod:`model_export.calibrate`).
"""

from __future__ import annotations

import copy
import os
import random
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from model_export.flow import FlowConfig, FraudFlow

__all__ = [
    "TrainConfig",
    "TrainResult",
    "default_config_path",
    "fit_model",
    "load_config",
    "pick_device",
    "refit_head",
    "seed_everything",
    "split_fit_validation",
]


@dataclass
class TrainConfig:
    """Architecture and optimisation settings (``configs/default.toml``)."""

    flow: FlowConfig = field(default_factory=FlowConfig)
    steps: int = 3000
    batch_size: int = 4096
    learning_rate: float = 2e-3
    head_learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    nll_weight: float = 0.1
    # False: the head's loss also trains the flow (hybrid); True: the flow is a pure density model.
    detach_flow: bool = False
    # Standard deviation of Gaussian jitter on the flow's standardised context while training.
    context_noise: float = 0.0
    # Half-width (in currency units) of the uniform noise added to amounts while training:
    # amounts are rounded to cents, so this dequantises them.
    dequantize: float = 0.005
    grad_clip: float = 5.0
    # After the steps, refit the linear head exactly (full-batch L-BFGS, L2 ``head_l2``) on the
    # fit rows with the flow fixed: the head's problem is convex then.
    refit_head: bool = True
    head_l2: float = 1e-4
    eval_every: int = 50
    patience: int = 20
    validation_fraction: float = 0.2
    elevated_alert_rate: float = 0.02
    high_alert_rate: float = 0.005
    # Number of members trained from seeds seed, seed + 1, ... on the same fit rows and averaged
    # in one graph (:class:`model_export.flow.FlowEnsemble`); 1: a single model.
    ensemble: int = 3
    golden_legit: int = 45
    golden_fraud: int = 20


def default_config_path() -> Path:
    """``model-export/configs/default.toml``."""
    return Path(__file__).resolve().parents[2] / "configs" / "default.toml"


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """Read a TOML config (top-level keys of :class:`TrainConfig`, ``[flow]`` table)."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    data.update(overrides)
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    flow = data.pop("flow", {})
    if isinstance(flow, dict):
        for key in ("hidden_features", "head_hidden"):
            if key in flow:
                flow[key] = tuple(flow[key])
        flow = FlowConfig(**flow)
    return TrainConfig(flow=flow, **data)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` gives CUDA when available, else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def split_fit_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified random split of row positions into (fit, validation)."""
    positions = np.arange(len(labels))
    stratify = labels if np.bincount(labels.astype(int)).min() >= 2 else None
    fit, validation = train_test_split(positions, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(validation)


@dataclass
class TrainResult:
    """A trained (uncalibrated) model and what happened."""

    model: FraudFlow
    best_step: int
    steps_run: int
    seconds: float
    history: list[dict[str, float]]
    config: TrainConfig

    def summary(self) -> dict[str, Any]:
        return {
            "best_step": self.best_step,
            "steps_run": self.steps_run,
            "seconds": round(self.seconds, 1),
            "history": self.history,
            "config": asdict(self.config),
        }


def _objective(
    model: FraudFlow,
    features: torch.Tensor,
    labels: torch.Tensor,
    nll_weight: float,
    detach_flow: bool,
    context_noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    _, ll, logit = model.encode(features, detach_flow, context_noise)
    bce = F.binary_cross_entropy_with_logits(logit, labels)
    legit = labels < 0.5
    nll = -ll[legit].mean() if bool(legit.any()) else ll.sum() * 0.0
    # D = 1: the flow models one variable.
    return bce + nll_weight * nll, bce, nll


def fit_model(
    features: np.ndarray,
    labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    config: TrainConfig,
    seed: int = 42,
    device: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """Train on float32 raw feature rows; returns the best model (on CPU) by validation objective."""
    seed_everything(seed)
    torch.distributions.Distribution.set_default_validate_args(False)
    target = pick_device(device)
    model = FraudFlow(config.flow)
    model.preprocess.fit(torch.as_tensor(features))
    prior = float(np.clip(labels.mean(), 1e-6, 1 - 1e-6))
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(float(np.log(prior / (1 - prior))))
    model.to(target)
    X = torch.as_tensor(features, device=target)
    y = torch.as_tensor(labels, dtype=torch.float32, device=target)
    Xv = torch.as_tensor(validation_features, device=target)
    yv = torch.as_tensor(validation_labels, dtype=torch.float32, device=target)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.flow.parameters(), "lr": config.learning_rate},
            {
                "params": list(model.head.parameters()) + (list(model.mlp.parameters()) if model.mlp else []),
                "lr": config.head_learning_rate,
            },
        ],
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.steps, 1))
    generator = torch.Generator(device=target).manual_seed(seed)
    batch = min(config.batch_size, len(X))
    best = (float("inf"), 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    waited = 0
    started = time.perf_counter()
    bar = tqdm(range(1, config.steps + 1), desc="train", disable=not progress, unit="step")
    step = 0
    for step in bar:
        model.train()
        index = torch.randint(len(X), (batch,), device=target, generator=generator)
        xb = X[index]
        if config.dequantize > 0:
            noise = (torch.rand(batch, device=target, generator=generator) * 2 - 1) * config.dequantize
            xb = xb.clone()
            xb[:, 0] = (xb[:, 0] + noise).clamp(min=0.0)
        loss, bce, nll = _objective(model, xb, y[index], config.nll_weight, config.detach_flow, config.context_noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                v_loss, v_bce, v_nll = _objective(model, Xv, yv, config.nll_weight, config.detach_flow)
            record = {
                "step": step,
                "loss": float(loss.detach()),
                "bce": float(bce.detach()),
                "nll": float(nll.detach()),
                "val_loss": float(v_loss),
                "val_bce": float(v_bce),
                "val_nll": float(v_nll),
            }
            history.append(record)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", val=f"{float(v_loss):.4f}", nll=f"{float(v_nll):.3f}")
            if record["val_loss"] < best[0]:
                best = (record["val_loss"], step, copy.deepcopy(model.state_dict()))
                waited = 0
            else:
                waited += 1
                if waited >= config.patience:
                    break
    bar.close()
    model.load_state_dict(best[2])
    model.eval()
    if config.refit_head:
        refit_head(model, X, y, config.head_l2)
    model.cpu()
    return TrainResult(model, best[1], step, time.perf_counter() - started, history, config)


def refit_head(model: FraudFlow, features: torch.Tensor, labels: torch.Tensor, l2: float) -> None:
    """Logistic regression of the labels on the (fixed) head inputs, in place, by L-BFGS."""
    with torch.no_grad():
        h = torch.cat([model.encode(features[i : i + 65536])[0] for i in range(0, len(features), 65536)])
        # With an MLP head, the linear part is refitted with the MLP's output as a fixed offset.
        offset = model.mlp(h).squeeze(-1) if model.mlp is not None else torch.zeros_like(labels)
    weight = model.head.weight.detach().clone().requires_grad_(True)
    bias = model.head.bias.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logit = h @ weight[0] + bias[0] + offset
        loss = F.binary_cross_entropy_with_logits(logit, labels) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
