"""The scoring model: preprocessing, a conditional spline flow and a linear fraud head.

Everything from the 15 raw features to the four outputs is one :class:`torch.nn.Module`, so the
exported ONNX graph carries the preprocessing and serving cannot drift from training.

Model space. From the raw vector the preprocessing builds

* ``x`` (1 variable): ``log1p(amount)``, standardised with training statistics;
* ``c`` (14 context variables): weekend, night, and for each customer window the count and the
  mean amount of the customer's *other* payments in the window (``n - 1`` and
  ``(n * avg - amount) / (n - 1)``, 0 when there are none), ``log1p``; the terminal counts
  (``log1p``) and risks; all standardised;
* ``r`` (12 variables, the head's only): ``log1p(amount) - log1p(other-payments mean)`` per
  customer window (0 when the window has no other payment); the amount, the recent (``(t - 7 d,
  t - 1 d]``) and today's other payments against the customer's older payments (``(t - 30 d,
  t - 7 d]``, mostly before a 14-day card compromise), each window's mean falling back to the
  amount when empty; the terminal's known frauds per window (``nb_tx * risk``) and in
  ``(t - 37 d, t - 14 d]``, and its known legitimate payments over 7 and 30 days (``log1p``),
  all standardised. A terminal compromise lasts 28 days: how long a terminal has been defrauded
  tells whether it still is; the windows' differences make that, and a card's recent change of
  spending, one linear step away for the head.

The flow models ``p(x | c)`` for legitimate payments (a conditional neural spline flow, zuko's
``NSF``). ``x`` is one-dimensional on purpose: the customer windows include the current payment, so
with ``nb_tx_1d = 1`` the day's mean *is* the amount; any variable derived from the amount and a
window mean would be a deterministic function of ``x`` and ``c`` and have no density. Using the
other payments' means in ``c`` keeps ``x | c`` a proper continuous variable.

The head is linear on ``h = [x, z, c, r, ll]`` (``z`` the flow latent, ``ll`` the clamped
log-likelihood) and gives the fraud logit; Platt scaling gives the probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import zuko
from torch import Tensor, nn

from model_export.features import CUSTOMER_WINDOWS, FEATURE_NAMES, TERMINAL_WINDOWS

__all__ = [
    "ATTRIBUTION_STEPS",
    "CONTEXT_TERMS",
    "HEAD_TERMS",
    "LL_CLAMP",
    "STD_CLAMP",
    "FlowConfig",
    "FlowEnsemble",
    "FraudFlow",
    "Preprocess",
    "mlp_input_gradient",
]

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

#: Context variables, named after the event feature each comes from.
CONTEXT_TERMS: tuple[str, ...] = (
    "timestamp.weekend",
    "timestamp.night",
    *(f"customer.nb_tx_{w}d" for w in CUSTOMER_WINDOWS),
    *(f"customer.avg_amount_{w}d" for w in CUSTOMER_WINDOWS),
    *(f"terminal.nb_tx_{w}d" for w in TERMINAL_WINDOWS),
    *(f"terminal.risk_{w}d" for w in TERMINAL_WINDOWS),
)
#: Head-only variables (not in the flow's context): the amount against the customer's other
#: payments per window; the customer's history in windows the features give only as differences
#: ("older": (t - 30 d, t - 7 d], mostly before a 14-day card compromise; "recent": (t - 7 d,
#: t - 1 d]); the terminal's known frauds per window, in (t - 37 d, t - 14 d], and its known
#: legitimate payments (a compromise lasts 28 days: how long a terminal has been defrauded tells
#: whether it still is).
RATIO_TERMS: tuple[str, ...] = (
    *(f"amount_vs_customer_{w}d" for w in CUSTOMER_WINDOWS),
    "amount_vs_customer_older",
    "customer.recent_vs_older",
    "customer.today_vs_older",
    *(f"terminal.frauds_{w}d" for w in TERMINAL_WINDOWS),
    "terminal.frauds_older",
    "terminal.legit_7d",
    "terminal.legit_30d",
)
#: Head inputs, in order; ``logit_terms`` has one column per name.
HEAD_TERMS: tuple[str, ...] = ("amount", "amount_latent", *CONTEXT_TERMS, *RATIO_TERMS, "log_likelihood")

#: Standardised variables are clamped to this range (keeps extreme inputs finite).
STD_CLAMP = 10.0
#: Smallest standard deviation used for the terminal risks (bounded in [0, 1], mostly 0): their
#: raw standard deviation (~0.06-0.08 on a training week) would put every risk above ~0.6-0.8 at
#: the clamp, and with it the difference between a terminal still being defrauded (30-day risk
#: ~0.5) and one whose 28-day compromise has ended (~0.9). With this floor, 1 maps to ~5.
RISK_STD_FLOOR = 0.2
#: Points on the path from the baseline to ``h`` at which the MLP head's gradient is averaged
#: (integrated gradients, midpoint rule) to share its output among the inputs.
ATTRIBUTION_STEPS = 4
#: The log-likelihood enters the head clamped to this range.
LL_CLAMP = (-50.0, 10.0)


@dataclass
class FlowConfig:
    """Architecture of the conditional flow."""

    transforms: int = 3
    hidden_features: tuple[int, ...] = field(default_factory=lambda: (32, 32))
    bins: int = 8
    # Hidden sizes of an optional MLP head added to the linear head (empty: linear only).
    head_hidden: tuple[int, ...] = (32, 32)


_RISK_MASK = torch.tensor([name.startswith("terminal.risk_") for name in CONTEXT_TERMS])


def _window_mean(total: Tensor, count: Tensor, fallback: Tensor) -> Tensor:
    """``max(total, 0) / count`` where the window has a payment (``count > 0.5``), else ``fallback``."""
    has = count > 0.5
    return torch.where(has, total.clamp(min=0.0) / count.clamp(min=1.0), fallback)


class Preprocess(nn.Module):
    """Raw 15-feature vector -> standardised ``x`` [N, 1], ``c`` [N, 14], ``r`` [N, 12]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(1))
        self.register_buffer("x_std", torch.ones(1))
        self.register_buffer("c_mean", torch.zeros(len(CONTEXT_TERMS)))
        self.register_buffer("c_std", torch.ones(len(CONTEXT_TERMS)))
        self.register_buffer("r_mean", torch.zeros(len(RATIO_TERMS)))
        self.register_buffer("r_std", torch.ones(len(RATIO_TERMS)))

    @staticmethod
    def raw(features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unstandardised ``x``, ``c``, ``r``; raw inputs are first clamped to their valid ranges."""

        def col(name: str) -> Tensor:
            return features[:, _INDEX[name]]

        amount = col("amount").clamp(min=0.0)
        log_amount = torch.log1p(amount)
        nb = {w: col(f"customer.nb_tx_{w}d").clamp(min=0.0) for w in CUSTOMER_WINDOWS}
        total = {w: nb[w] * col(f"customer.avg_amount_{w}d").clamp(min=0.0) for w in CUSTOMER_WINDOWS}
        counts, means, ratios = [], [], []
        # Per window the customer's *other* payments: the windows include this one.
        has_others = {w: nb[w] - 1.0 > 0.5 for w in CUSTOMER_WINDOWS}
        for w in CUSTOMER_WINDOWS:
            log_mean = torch.log1p(_window_mean(total[w] - amount, nb[w] - 1.0, torch.zeros_like(amount)))
            counts.append(torch.log1p((nb[w] - 1.0).clamp(min=0.0)))
            means.append(log_mean)
            ratios.append(torch.where(has_others[w], log_amount - log_mean, torch.zeros_like(amount)))
        # The customer's older and recent windows, as differences of the features' windows; their
        # means fall back to the amount when empty (so their ratios are 0 then).
        short, mid, long = CUSTOMER_WINDOWS
        log_older = torch.log1p(_window_mean(total[long] - total[mid], nb[long] - nb[mid], amount))
        log_recent = torch.log1p(_window_mean(total[mid] - total[short], nb[mid] - nb[short], amount))
        log_today = torch.where(has_others[short], means[0], log_amount)
        ratios += [log_amount - log_older, log_recent - log_older, log_today - log_older]
        terminal_n = [col(f"terminal.nb_tx_{w}d").clamp(min=0.0) for w in TERMINAL_WINDOWS]
        risks = [col(f"terminal.risk_{w}d").clamp(0.0, 1.0) for w in TERMINAL_WINDOWS]
        ratios += [torch.log1p(n * risk) for n, risk in zip(terminal_n, risks, strict=True)]
        ratios.append(torch.log1p((terminal_n[2] * risks[2] - terminal_n[1] * risks[1]).clamp(min=0.0)))
        ratios += [torch.log1p(n - n * risk) for n, risk in zip(terminal_n[1:], risks[1:], strict=True)]
        terminal_counts = [torch.log1p(n) for n in terminal_n]
        flags = [col("weekend").clamp(0.0, 1.0), col("night").clamp(0.0, 1.0)]
        x = log_amount.unsqueeze(-1)
        c = torch.stack(flags + counts + means + terminal_counts + risks, dim=-1)
        r = torch.stack(ratios, dim=-1)
        return x, c, r

    @torch.no_grad()
    def fit(self, features: Tensor) -> None:
        """Set the standardisation statistics from (training) rows."""
        for name, values in zip(("x", "c", "r"), self.raw(features), strict=True):
            mean = values.double().mean(0)
            std = values.double().std(0)
            std = torch.where(std > 1e-6, std, torch.ones_like(std))
            if name == "c":
                std = torch.where(_RISK_MASK, std.clamp(min=RISK_STD_FLOOR), std)
            getattr(self, f"{name}_mean").copy_(mean.float())
            getattr(self, f"{name}_std").copy_(std.float())

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x, c, r = self.raw(features)
        x = ((x - self.x_mean) / self.x_std).clamp(-STD_CLAMP, STD_CLAMP)
        c = ((c - self.c_mean) / self.c_std).clamp(-STD_CLAMP, STD_CLAMP)
        r = ((r - self.r_mean) / self.r_std).clamp(-STD_CLAMP, STD_CLAMP)
        return x, c, r


def mlp_input_gradient(mlp: nn.Module, h: Tensor) -> Tensor:
    """``d mlp(h) / d h`` [N, width] of a Linear/Tanh stack with one output, in closed form (no
    autograd: it is part of the exported computation)."""
    layers = list(mlp) if isinstance(mlp, nn.Sequential) else [mlp]
    outputs = []
    a = h
    for layer in layers:
        a = layer(a)
        outputs.append(a)
    grad = torch.ones_like(a)
    for layer, out in zip(reversed(layers), reversed(outputs), strict=True):
        if isinstance(layer, nn.Linear):
            grad = grad @ layer.weight
        elif isinstance(layer, nn.Tanh):
            grad = grad * (1.0 - out * out)
        else:
            raise ValueError(f"mlp_input_gradient: unsupported layer {type(layer).__name__}")
    return grad


class FraudFlow(nn.Module):
    """Preprocessing + conditional NSF ``p(x | c, legitimate)`` + linear head + Platt scaling.

    ``forward`` is the exported graph: raw features [N, 15] -> (``fraud_probability`` [N],
    ``log_likelihood`` [N], ``fraud_logit`` [N], ``logit_terms`` [N, T]).
    """

    def __init__(self, config: FlowConfig | None = None) -> None:
        super().__init__()
        self.config = config or FlowConfig()
        self.preprocess = Preprocess()
        self.flow = zuko.flows.NSF(
            features=1,
            context=len(CONTEXT_TERMS),
            transforms=self.config.transforms,
            hidden_features=tuple(self.config.hidden_features),
            bins=self.config.bins,
        )
        self.head = nn.Linear(len(HEAD_TERMS), 1)
        self.mlp: nn.Module | None = None
        if self.config.head_hidden:
            layers: list[nn.Module] = []
            width = len(HEAD_TERMS)
            for hidden in self.config.head_hidden:
                layers += [nn.Linear(width, hidden), nn.Tanh()]
                width = hidden
            last = nn.Linear(width, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.mlp = nn.Sequential(*layers, last)
        self.register_buffer("term_mean", torch.zeros(len(self.term_names)))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    @property
    def term_names(self) -> tuple[str, ...]:
        """Names of the ``logit_terms`` columns: the linear head's inputs, then ``interactions``
        (the MLP head's output) when there is one."""
        return HEAD_TERMS + (("interactions",) if self.mlp is not None else ())

    def head_logit(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        """Linear part [N] and MLP part [N] (None without an MLP head) of the fraud logit."""
        linear = self.head(h).squeeze(-1)
        return linear, (self.mlp(h).squeeze(-1) if self.mlp is not None else None)

    def latent(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Flow latent ``z`` [N, 1] and exact ``log p(x | c)`` [N] in model space."""
        dist = self.flow(c)
        z, ladj = dist.transform.call_and_ladj(x)
        return z, dist.base.log_prob(z) + ladj

    def encode(
        self, features: Tensor, detach_flow: bool = False, context_noise: float = 0.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Head inputs ``h`` [N, T], log-likelihood [N] and logit [N].

        Training only: ``detach_flow`` stops the head's gradient at the flow outputs, so the flow
        is fitted by its likelihood alone; ``context_noise`` jitters the flow's (standardised)
        context with Gaussian noise of that scale, a regulariser against memorising contexts.
        """
        x, c, r = self.preprocess(features)
        flow_context = c + context_noise * torch.randn_like(c) if context_noise > 0 else c
        z, ll = self.latent(x, flow_context)
        ll_in = ll.clamp(*LL_CLAMP).unsqueeze(-1)
        if detach_flow:
            z, ll_in = z.detach(), ll_in.detach()
        h = torch.cat([x, z, c, r, ll_in], dim=-1)
        linear, extra = self.head_logit(h)
        logit = linear if extra is None else linear + extra
        return h, ll, logit

    def term_inputs(self, h: Tensor) -> Tensor:
        """``[h, mlp(h)]`` (or ``h``): the values whose centred, weighted sum is the logit."""
        if self.mlp is None:
            return h
        return torch.cat([h, self.mlp(h)], dim=-1)

    def term_weights(self) -> Tensor:
        weight = self.head.weight[0]
        if self.mlp is None:
            return weight
        return torch.cat([weight, torch.ones_like(weight[:1])])

    def mlp_baseline(self) -> Tensor:
        """The MLP head's output at the baseline ``h = term_mean`` (the fit set's mean input)."""
        assert self.mlp is not None
        width = len(HEAD_TERMS)
        return self.mlp(self.term_mean[:width].unsqueeze(0).to(self.head.weight.dtype))[0, 0]

    def logit_terms(self, h: Tensor) -> Tensor:
        """The additive terms of the logit, one per input of the head, then ``interactions``.

        ``w_i * (h_i - mean_i)`` for the linear head. With an MLP head, its integrated-gradients
        share ``(h_i - mean_i) * mean_k d mlp / d h_i`` (gradients at ATTRIBUTION_STEPS midpoints
        of the straight path from the baseline ``mean`` to ``h``) goes to input ``i`` too, and
        ``interactions`` keeps what no single input explains: ``mlp(h) - mlp(mean)`` minus those
        shares (small: the path integral is exact in the limit). ``mlp(mean)`` is in the bias, so
        the terms still sum to ``logit - bias``, and reasons name features, not the MLP.
        """
        centred = self.term_inputs(h) - self.term_mean
        terms = centred * self.term_weights()
        if self.mlp is None:
            return terms
        width = h.shape[-1]
        delta = centred[:, :width]
        base = self.term_mean[:width].to(h.dtype)
        steps = [(k + 0.5) / ATTRIBUTION_STEPS for k in range(ATTRIBUTION_STEPS)]
        grad = torch.stack([mlp_input_gradient(self.mlp, base + s * delta) for s in steps]).mean(0)
        share = grad * delta
        interactions = self.mlp(h)[:, 0] - self.mlp_baseline() - share.sum(-1)
        return torch.cat([terms[:, :width] + share, interactions.unsqueeze(-1)], dim=-1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # The exported model is float64 inside (float32 in and out): the spline's log-derivative
        # amplifies rounding, and float64 keeps PyTorch, onnxruntime and the Rust side in step.
        h, ll, logit = self.encode(features.to(self.calibration.dtype))
        terms = self.logit_terms(h)
        probability = torch.sigmoid(self.calibration[0] * logit + self.calibration[1])
        return probability.float(), ll.float(), logit.float(), terms.float()

    def terms_bias(self) -> float:
        """The constant with ``logit = sum(logit_terms) + bias``."""
        weight = self.head.weight[0].detach().double()
        width = len(weight)
        bias = self.head.bias.detach().double()[0] + (weight * self.term_mean[:width].detach().double()).sum()
        if self.mlp is not None:
            with torch.no_grad():
                bias = bias + self.mlp_baseline().double()
        return float(bias)

    @torch.no_grad()
    def score(self, features: np.ndarray, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Run the exported computation in PyTorch on a float32 matrix (CPU or model's device)."""
        device = next(self.parameters()).device
        outputs: list[tuple[Tensor, ...]] = []
        for start in range(0, len(features), batch_size):
            chunk = torch.as_tensor(features[start : start + batch_size], dtype=torch.float32, device=device)
            outputs.append(tuple(t.cpu() for t in self(chunk)))
        names = ("fraud_probability", "log_likelihood", "fraud_logit", "logit_terms")
        return {
            name: torch.cat([o[i] for o in outputs]).numpy() if outputs else np.zeros(0, np.float32)
            for i, name in enumerate(names)
        }


class FlowEnsemble(nn.Module):
    """``K`` hybrid models trained from different seeds on the same rows, as one graph.

    ``fraud_logit`` is the members' mean logit (Platt-calibrated once, on the ensemble);
    ``log_likelihood`` is the exact log-density of the equal-weight mixture of the members'
    flows, ``logsumexp_k(ll_k) - log K``; ``logit_terms`` is the members' mean terms (same names),
    so ``fraud_logit = sum(logit_terms) + bias`` still holds with the mean bias.
    """

    def __init__(self, members: list[FraudFlow]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.register_buffer("calibration", torch.tensor([1.0, 0.0], dtype=members[0].calibration.dtype))

    @property
    def term_names(self) -> tuple[str, ...]:
        return self.members[0].term_names

    def term_weights(self) -> Tensor:
        """The members' mean weights (documentation only: the terms are the members' mean terms)."""
        return torch.stack([m.term_weights() for m in self.members]).mean(0)

    def terms_bias(self) -> float:
        return float(np.mean([m.terms_bias() for m in self.members]))

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        features = features.to(self.calibration.dtype)
        logits, lls, terms = [], [], []
        for member in self.members:
            h, ll, logit = member.encode(features)
            logits.append(logit)
            lls.append(ll)
            terms.append(member.logit_terms(h))
        k = len(self.members)
        logit = torch.stack(logits).mean(0)
        ll = torch.logsumexp(torch.stack(lls), dim=0) - float(np.log(k))
        term = torch.stack(terms).mean(0)
        probability = torch.sigmoid(self.calibration[0] * logit + self.calibration[1])
        return probability.float(), ll.float(), logit.float(), term.float()

    score = FraudFlow.score
