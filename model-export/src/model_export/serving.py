"""The serving graph: the exported computation, written as few, large operations.

:class:`ServingGraph` computes the four outputs of :meth:`FraudFlow.forward` /
:meth:`FlowEnsemble.forward` (``fraud_probability`` [N], ``log_likelihood`` [N], ``fraud_logit``
[N], ``logit_terms`` [N, T]; float32 out, from ``features`` float32 [N, 15]) for onnxruntime,
whose cost at small batches is one dispatch per graph node: the training module exports to
~1,250 nodes, this graph to ~100. Everything per member and per flow transform is batched:

* preprocessing: one Gemm gathers (and shifts) every column the 18 model-space variables need
  into six 18-wide blocks, the customer "other payments" arithmetic runs on whole blocks, then one
  ``log1p`` and one Gemm that standardises and orders the variables as the heads' input;
* the spline hyper-networks of all ``members x transforms``: zuko's NSF with one feature builds
  ``ElementWiseTransform`` s, whose parameters are ``MLP(c)`` (no MADE masking, no dependence on
  ``x``), so they run as batched MatMuls over stacked weights, biases folded in through constant
  units;
* the spline tables (zuko's ``MonotonicRQSTransform``: bounded logits ``p / (1 + |2 p /
  log(slope)|)``, softmax widths / heights, knots ``B (2 cumsum - 1)``, inner derivatives ``exp``,
  1 at both ends) as the ratio of two MatMuls over the exponentials of the logits;
* per transform, vectorised over ``[members, N]``: the bin from the count of knots below ``x``
  (one MatMul gives the gather index), one GatherElements of the bin's knots, and the
  rational-quadratic spline and its log-derivative as sums of products of linear forms (MatMul,
  ReduceProd, MatMul). Outside ``[-B, B]`` zuko's transform is the identity; two sentinel bins
  (``[-3B, -B]``, ``[B, 3B]``, unit slopes, beyond the clamp at 10) give ``y = x`` and a zero
  log-derivative up to rounding;
* the heads of all members as batched MatMuls (the linear head is read back from the terms:
  ``fraud_logit = sum(logit_terms) + bias``), the mixture log-likelihood as one ReduceLogSumExp.

Precision (:data:`PRECISIONS`, :data:`DEFAULT_PRECISION`): float64 inside but for the heads,
which are float32 ("float32-heads"); the reasons and measurements are at :data:`DEFAULT_PRECISION`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from model_export.features import CUSTOMER_WINDOWS, FEATURE_NAMES, TERMINAL_WINDOWS
from model_export.flow import ATTRIBUTION_STEPS, LL_CLAMP, STD_CLAMP, FlowEnsemble, FraudFlow

__all__ = [
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "PRECISION_NOTES",
    "ServingGraph",
    "build_serving_graph",
    "format_benchmark",
    "graph_benchmark",
    "graph_flops",
    "serving_parity",
]

#: Float types inside the graph, (core, hyper-networks, heads): ``core`` is the preprocessing,
#: the spline knots and bin tables, the spline evaluation and the log-likelihood; ``hyper`` the
#: spline hyper-networks up to the exponentials of the spline logits; ``heads`` the MLP and linear
#: heads, the logit terms and the calibration. Inputs and outputs are float32 in every case.
PRECISIONS: dict[str, tuple[torch.dtype, torch.dtype, torch.dtype]] = {
    "float32-heads": (torch.float64, torch.float64, torch.float32),
    "float64": (torch.float64, torch.float64, torch.float64),
    "mixed": (torch.float64, torch.float32, torch.float32),
}
#: The precision exported by default. Largest differences to the PyTorch training module on the
#: model 2026-12-04-8d520c29 (export tolerances: 1e-4 relative on the log-likelihood, 1e-5 absolute on the
#: probability), over the export's parity rows (71,720: test week, validation, extremes) and the
#: raw sample's rows (31,837):
#:
#: * all float32: 1.2e-5 and 1.2e-5 -- fails; float32 rounding of the knot sums and of the
#:   bins' inverse widths / heights is amplified by steep spline segments;
#: * "mixed" (float32 hyper-networks and heads): up to 5.3e-6 and 2.1e-6 -- a margin of 5 on the
#:   probability only: float32 rounding of the spline logits moves the knots by ~1e-7;
#: * "float32-heads" (exported): 2.4e-7 and 2.4e-7 -- margins of 400 and 40, the size of the
#:   float32 rounding of the outputs;
#: * "float64": ~1.2e-7 (the float32 outputs), ~10 % slower at batch 256: onnxruntime's float64
#:   ``tanh`` is scalar. (Float64 ``exp`` in the hyper-networks costs "mixed"'s speed-up: ~25 %.)
DEFAULT_PRECISION = "float32-heads"
PRECISION_NOTES = {
    "float32-heads": "float32 in and out; float64 inside except the heads (MLP and linear head, logit terms, "
    "calibration), which are float32. All-float32 fails the export parity (probability 1.2e-5 > 1e-5); "
    "float32 spline hyper-networks pass with a margin of 5 only; this split stays within 2.4e-7 to 1.2e-6 "
    "of PyTorch on the models bundled so far (the probability's error grows with the head's inputs).",
    "float64": "float32 in and out, float64 inside.",
    "mixed": "float32 in and out; float64 for the preprocessing, the spline tables and evaluation and the "
    "log-likelihood, float32 for the spline hyper-networks and the heads (probability within ~2e-6 of "
    "PyTorch on model 2026-12-04-8d520c29).",
}

_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
# tanh(_UNIT) is exactly 1.0 in float32 and float64: the constant unit that carries the biases.
_UNIT = 40.0
# zuko's MonotonicRQSTransform domain bound (NSF keeps the default).
_BOUND = 5.0


def _members(model: nn.Module) -> list[FraudFlow]:
    if isinstance(model, FlowEnsemble):
        return list(model.members)
    if isinstance(model, FraudFlow):
        return [model]
    raise TypeError(f"expected a FraudFlow or FlowEnsemble, got {type(model).__name__}")


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


@dataclass(frozen=True)
class _Var:
    """One model-space variable before ``log1p`` and standardisation, from the clamped features:
    ``max(n_a avg_a - n_b avg_b - amount, 0) / max(count, 1)`` where ``count > 0.5``, else
    ``direct``. ``n_a`` ... name features (``ONE``: the constant 1); ``count`` maps features to
    coefficients, ``count_bias`` is added; ``direct_bias`` is added to ``direct``."""

    direct: str | None = None
    direct_bias: float = 0.0
    n_a: str | None = None
    avg_a: str | None = None
    n_b: str | None = None
    avg_b: str | None = None
    amount: bool = False
    count: tuple[tuple[str, float], ...] = ()
    count_bias: float = 0.0
    log: bool = True


_ONE = "1"


def _raw_variables() -> tuple[list[_Var], list[tuple[str | None, str | None]]]:
    """The variables of :meth:`model_export.flow.Preprocess.raw` (by name), and how the
    standardised ``[x, c, r]`` are made of them: ``(plus, minus)`` per column, in that order."""
    c_nb = {w: f"customer.nb_tx_{w}d" for w in CUSTOMER_WINDOWS}
    c_avg = {w: f"customer.avg_amount_{w}d" for w in CUSTOMER_WINDOWS}
    t_nb = {w: f"terminal.nb_tx_{w}d" for w in TERMINAL_WINDOWS}
    t_risk = {w: f"terminal.risk_{w}d" for w in TERMINAL_WINDOWS}
    short, mid, long = CUSTOMER_WINDOWS
    t_short, t_mid, t_long = TERMINAL_WINDOWS
    named: dict[str, _Var] = {"x": _Var(direct="amount")}
    named["weekend"] = _Var(direct="weekend", log=False)
    named["night"] = _Var(direct="night", log=False)
    for w in CUSTOMER_WINDOWS:  # log1p(others), others = max(nb - 1, 0) (the clamp at 0 of the block)
        named[f"others_{w}"] = _Var(direct=c_nb[w], direct_bias=-1.0)
    for w in CUSTOMER_WINDOWS:  # log1p(other payments' mean), 0 without others
        named[f"other_mean_{w}"] = _Var(
            n_a=c_nb[w], avg_a=c_avg[w], amount=True, count=((c_nb[w], 1.0),), count_bias=-1.0
        )
    for w in TERMINAL_WINDOWS:
        named[f"t_nb_{w}"] = _Var(direct=t_nb[w])
    for w in TERMINAL_WINDOWS:
        named[f"t_risk_{w}"] = _Var(direct=t_risk[w], log=False)
    for w in CUSTOMER_WINDOWS:  # the same mean with the amount as fallback
        named[f"other_mean_or_amount_{w}"] = _Var(
            direct="amount", n_a=c_nb[w], avg_a=c_avg[w], amount=True, count=((c_nb[w], 1.0),), count_bias=-1.0
        )

    def window_difference(longer: int, shorter: int) -> _Var:
        """Mean amount of the customer's payments in (t - longer, t - shorter], else the amount."""
        return _Var(
            direct="amount",
            n_a=c_nb[longer],
            avg_a=c_avg[longer],
            n_b=c_nb[shorter],
            avg_b=c_avg[shorter],
            count=((c_nb[longer], 1.0), (c_nb[shorter], -1.0)),
        )

    named["older_or_amount"] = window_difference(long, mid)
    named["recent_or_amount"] = window_difference(mid, short)
    for w in TERMINAL_WINDOWS:  # known frauds = nb * risk (a count of 1: always "present")
        named[f"t_frauds_{w}"] = _Var(n_a=t_nb[w], avg_a=t_risk[w], count_bias=1.0)
    named["t_frauds_older"] = _Var(
        n_a=t_nb[t_long], avg_a=t_risk[t_long], n_b=t_nb[t_mid], avg_b=t_risk[t_mid], count_bias=1.0
    )
    for w in (t_mid, t_long):  # known legitimate = nb * 1 - nb * risk
        named[f"t_legit_{w}"] = _Var(n_a=t_nb[w], avg_a=_ONE, n_b=t_nb[w], avg_b=t_risk[w], count_bias=1.0)
    del t_short
    columns: list[tuple[str | None, str | None]] = [("x", None), ("weekend", None), ("night", None)]
    columns += [(f"others_{w}", None) for w in CUSTOMER_WINDOWS]
    columns += [(f"other_mean_{w}", None) for w in CUSTOMER_WINDOWS]
    columns += [(f"t_nb_{w}", None) for w in TERMINAL_WINDOWS]
    columns += [(f"t_risk_{w}", None) for w in TERMINAL_WINDOWS]
    columns += [("x", f"other_mean_or_amount_{w}") for w in CUSTOMER_WINDOWS]
    columns += [("x", "older_or_amount"), ("recent_or_amount", "older_or_amount")]
    columns += [(f"other_mean_or_amount_{short}", "older_or_amount")]
    columns += [(f"t_frauds_{w}", None) for w in TERMINAL_WINDOWS]
    columns += [("t_frauds_older", None), (f"t_legit_{t_mid}", None), (f"t_legit_{t_long}", None)]
    names = list(named)
    return [named[n] for n in names], [
        (names.index(p) if p else None, names.index(m) if m else None)  # type: ignore[misc]
        for p, m in columns
    ]


#: The blocks of the preprocessing Gemm, each ``len(variables)`` wide.
_BLOCKS = ("n_a", "avg_a", "n_b", "avg_b", "amount", "direct", "count", "count_1")


def _preprocess_tables(member: FraudFlow) -> dict[str, np.ndarray]:
    """Input clamps, gather matrix, masks and the standardising Gemm of the preprocessing.

    The clamped features go through one Gemm (a selection matrix and a bias) into the eight
    blocks of :data:`_BLOCKS`, each as wide as the variable list (:func:`_raw_variables`); the
    blocks' lower bounds (0, and 1 for ``count_1 = max(count, 1)``) are the clamps of
    ``Preprocess.raw``. A second Gemm standardises and orders the variables (sums and
    differences of them, for the ratios) as the heads' input ``u = [x, z, c, r, ll, 1]``.
    """
    variables, columns = _raw_variables()
    n_var, n_in = len(variables), len(FEATURE_NAMES)
    bounded = {"weekend", "night", *(f"terminal.risk_{w}d" for w in TERMINAL_WINDOWS)}
    upper_in = np.array([1.0 if name in bounded else np.inf for name in FEATURE_NAMES])
    select = np.zeros((n_in, len(_BLOCKS) * n_var))
    bias = np.zeros(len(_BLOCKS) * n_var)
    lower = np.zeros(len(_BLOCKS) * n_var)
    for j, var in enumerate(variables):

        def put(block: str, feature: str | None, coefficient: float = 1.0, j: int = j) -> None:
            col = _BLOCKS.index(block) * n_var + j
            if feature == _ONE:
                bias[col] += coefficient
            elif feature is not None:
                select[_INDEX[feature], col] += coefficient

        for block in ("n_a", "avg_a", "n_b", "avg_b", "direct"):
            put(block, getattr(var, block))
        if var.amount:
            put("amount", "amount")
        bias[_BLOCKS.index("direct") * n_var + j] += var.direct_bias
        for block in ("count", "count_1"):
            for feature, coefficient in var.count:
                put(block, feature, coefficient)
            bias[_BLOCKS.index(block) * n_var + j] += var.count_bias
        lower[_BLOCKS.index("count_1") * n_var + j] = 1.0
    log_mask = np.array([v.log for v in variables])

    pre = member.preprocess
    mean = np.concatenate([_np(pre.x_mean), _np(pre.c_mean), _np(pre.r_mean)])
    std = np.concatenate([_np(pre.x_std), _np(pre.c_std), _np(pre.r_std)])
    if len(mean) != len(columns):
        raise ValueError(f"serving graph: the preprocessing has {len(mean)} variables, the graph {len(columns)}")
    n_ctx, n_ratio = len(_np(pre.c_mean)), len(_np(pre.r_mean))
    target = [0, *range(2, 2 + n_ctx + n_ratio)]  # u's column of each variable (z is column 1)
    width = 2 + n_ctx + n_ratio + 1 + 1
    matrix = np.zeros((n_var, width))
    std_bias = np.zeros(width)
    for k, ((plus, minus), col) in enumerate(zip(columns, target, strict=True)):
        matrix[plus, col] += 1.0 / std[k]
        if minus is not None:
            matrix[minus, col] -= 1.0 / std[k]
        std_bias[col] = -mean[k] / std[k]
    std_bias[-1] = 1.0
    return {
        "upper_in": upper_in,
        "select": select,
        "select_bias": bias,
        "lower": lower,
        "log_mask": log_mask,
        "std_matrix": matrix,
        "std_bias": std_bias,
    }


def _hyper_layers(members: list[FraudFlow], width_in: int, ctx_cols: list[int]) -> list[np.ndarray]:
    """Stacked weights ``[members * transforms, in, out]`` (transform index fastest) of the spline
    hyper-networks, biases in the row of a constant input (``u``'s last column, then a constant
    unit ``relu(1) = 1`` of each hidden layer). The last layer gives the ``3 bins - 1`` spline
    logits and a constant-0 logit (``exp(0) = 1``)."""
    stacks = []
    for member in members:
        for transform in member.flow.transform.transforms:
            net = transform.hyper
            if not all(isinstance(m, nn.ReLU) for m in net if not hasattr(m, "weight")):
                raise ValueError("serving graph: the spline hyper-networks must use ReLU")
            linears = [m for m in net if hasattr(m, "weight")]
            mats = []
            for i, lin in enumerate(linears):
                w, b = _np(lin.weight), _np(lin.bias)
                out, inp = w.shape
                rows = width_in if i == 0 else inp + 1
                m = np.zeros((rows, out + 1))
                if i == 0:
                    m[ctx_cols, :out] = w.T
                else:
                    m[:inp, :out] = w.T
                m[rows - 1, :out] = b
                if i < len(linears) - 1:
                    m[rows - 1, out] = 1.0  # the constant unit
                mats.append(m)
            stacks.append(mats)
    return [np.stack([s[i] for s in stacks]) for i in range(len(stacks[0]))]


def _spline_tables(bins: int, slope: float, bound: float) -> dict[str, np.ndarray]:
    """Matrices that turn ``E = exp(bounded spline logits)`` into the knot and bin table, the
    GatherElements index of a bin, and the factor / term matrices of the spline.

    Table columns (per row, member and transform): knots ``h`` (horizontal), ``v`` (vertical)
    and ``D`` (derivative) of the left sentinel, the ``bins + 1`` knots and the right sentinel;
    per bin (left sentinel bin, the spline's bins, right sentinel bin) ``1 / width``,
    ``1 / height``, ``y0 / height``; a constant 1. Each is a ratio of two linear forms of ``E``.
    """
    k = bins
    n_phi = 3 * k  # widths k, heights k, inner derivatives k - 1, one constant column (logit 0)
    const = n_phi - 1
    knots = k + 3  # left sentinel, k + 1 knots, right sentinel
    n_bins = k + 2
    h0, v0, d0 = 0, knots, 2 * knots
    iw0, ih0, yh0 = 3 * knots, 3 * knots + n_bins, 3 * knots + 2 * n_bins
    one = 3 * knots + 3 * n_bins
    cols = one + 1
    num = np.zeros((n_phi, cols))
    den = np.zeros((n_phi, cols))

    def ratio(col: int, n: dict[int, float], d: dict[int, float]) -> None:
        for i, v in n.items():
            num[i, col] = v
        for i, v in d.items():
            den[i, col] = v

    for j in range(knots):
        r = j - 1  # index of the spline knot, -1 and k + 1 for the sentinels
        for first, offset in ((h0, 0), (v0, k)):  # horizontal (widths), vertical (heights)
            if r < 0 or r > k:
                ratio(first + j, {const: -3 * bound if r < 0 else 3 * bound}, {const: 1.0})
            elif r == 0 or r == k:
                ratio(first + j, {const: -bound if r == 0 else bound}, {const: 1.0})
            else:  # B (2 cumsum - 1) = B (sum_{i < r} p_i - sum_{i >= r} p_i)
                ratio(
                    first + j,
                    {offset + i: bound if i < r else -bound for i in range(k)},
                    dict.fromkeys(range(offset, offset + k), 1.0),
                )
        if 1 <= r <= k - 1:  # derivative: exp(d) inside, 1 at both ends and at the sentinels
            ratio(d0 + j, {2 * k + r - 1: 1.0}, {const: 1.0})
        else:
            ratio(d0 + j, {const: 1.0}, {const: 1.0})
    for b in range(n_bins):
        if b == 0 or b == n_bins - 1:  # sentinel bins: width and height 2B, y0 = -3B or B
            ratio(iw0 + b, {const: 1.0}, {const: 2 * bound})
            ratio(ih0 + b, {const: 1.0}, {const: 2 * bound})
            ratio(yh0 + b, {const: -1.5 if b == 0 else 0.5}, {const: 1.0})
        else:
            i = b - 1
            ratio(iw0 + b, dict.fromkeys(range(k), 1.0), {i: 2 * bound})
            ratio(ih0 + b, dict.fromkeys(range(k, 2 * k), 1.0), {k + i: 2 * bound})
            ratio(yh0 + b, {k + m: 0.5 if m < i else -0.5 for m in range(k)}, {k + i: 1.0})
    ratio(one, {const: 1.0}, {const: 1.0})

    scale = np.empty(n_phi)
    scale[: 2 * k] = math.log(slope) / 2  # p / (1 + |2 p / log(slope)|) for widths and heights
    scale[2 * k :] = math.log(slope)

    # GatherElements index of the bin's [x0, x1, y0, y1, d0, d1, 1/w, 1/h, y0/h, 1] from the knots
    # h below x: the left sentinel always counts (its row is the offsets), the others add a bin.
    index = np.zeros((cols, 10))
    index[h0] = [h0, h0 + 1, v0, v0 + 1, d0, d0 + 1, iw0, ih0, yh0, one]
    index[h0 + 1 : h0 + k + 2] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]

    # Terms as products of 4 linear forms of [x, x0, x1, y0, y1, d0, d1, 1/w, 1/h, y0/h, 1].
    e = np.eye(11)
    forms = {
        "v0": e[0] - e[1],  # x - x0
        "v1": e[2] - e[0],  # x1 - x
        "hg": e[4] - e[3],  # y1 - y0
        "y0": e[3],
        "y1": e[4],
        "d0": e[5],
        "d1": e[6],
        "sd": e[5] + e[6],  # d0 + d1
        "iw": e[7],
        "ih": e[8],
        "yh": e[9],
        "1": e[10],
    }
    # zuko: z = (x - x0) / w, s = h / w, y = y0 + h (s z^2 + d0 z (1 - z)) / (s + (d0 + d1 - 2 s)
    # z (1 - z)), dy/dx = s^2 (d1 z^2 + 2 s z (1 - z) + d0 (1 - z)^2) / denominator^2. With
    # v0 = x - x0, v1 = x1 - x (z = v0 / w, 1 - z = v1 / w) and everything divided by h / w^2:
    #   den = v0^2 / w + (d0 + d1) / h v0 v1 + v1^2 / w
    #   y   = [y1 / w v0^2 + ((d0 + d1) y0 / h + d0) v0 v1 + y0 / w v1^2] / den
    #   dy/dx = [d1 v0^2 + 2 (h / w) v0 v1 + d0 v1^2] / den^2
    terms = [
        ("den", 1.0, ["iw", "1", "v0", "v0"]),
        ("den", 1.0, ["ih", "sd", "v0", "v1"]),
        ("den", 1.0, ["iw", "1", "v1", "v1"]),
        ("num", 1.0, ["iw", "y1", "v0", "v0"]),
        ("num", 1.0, ["yh", "sd", "v0", "v1"]),
        ("num", 1.0, ["d0", "1", "v0", "v1"]),
        ("num", 1.0, ["iw", "y0", "v1", "v1"]),
        ("jac", 1.0, ["d1", "1", "v0", "v0"]),
        ("jac", 2.0, ["hg", "iw", "v0", "v1"]),
        ("jac", 1.0, ["d0", "1", "v1", "v1"]),
    ]
    n_terms = len(terms)
    factors = np.zeros((11, 4 * n_terms))
    sums = np.zeros((n_terms, 4))  # -> [numerator, den, jacobian numerator, den]
    for t, (kind, weight, fs) in enumerate(terms):
        for f, name in enumerate(fs):
            factors[:, f * n_terms + t] = forms[name]
        for c in {"num": (0,), "den": (1, 3), "jac": (2,)}[kind]:
            sums[t, c] = weight
    return {"num": num, "den": den, "scale": scale, "index": index, "factors": factors, "sums": sums}


def _head_tables(members: list[FraudFlow], width: int) -> list[np.ndarray]:
    """Stacked MLP-head weights ``[members, in, out]``. The input is ``h`` with a last constant
    column 1 (the first bias); hidden layers carry a constant unit (``tanh(40) = 1``) for the next
    bias. The last layer gives ``-term_mean`` in every column but the last, and ``mlp(h) -
    term_mean - 1`` there: ``h`` plus it are the centred term inputs (``h``'s last column is 1)."""
    stacks = []
    for member in members:
        assert member.mlp is not None
        linears = [m for m in member.mlp if isinstance(m, nn.Linear)]
        if not all(isinstance(m, nn.Tanh) for m in member.mlp if not isinstance(m, nn.Linear)):
            raise ValueError("serving graph: the MLP head must use tanh")
        mean = _np(member.term_mean)
        mats = []
        for i, lin in enumerate(linears):
            w, b = _np(lin.weight), _np(lin.bias)
            out, inp = w.shape
            rows = width if i == 0 else inp + 1  # the input's last row is the constant 1
            if i == len(linears) - 1:
                m = np.zeros((rows, width))
                m[:inp, width - 1] = w[0]
                m[rows - 1, : width - 1] = -mean[: width - 1]
                m[rows - 1, width - 1] = b[0] - mean[width - 1] - 1.0
            else:
                m = np.zeros((rows, out + 1))
                m[: rows - 1, :out] = w.T
                m[rows - 1, :out] = b
                m[rows - 1, out] = _UNIT
            mats.append(m)
        stacks.append(mats)
    return [np.stack([s[i] for s in stacks]) for i in range(len(stacks[0]))]


class ServingGraph(nn.Module):
    """The exported computation (see the module docstring); build with :func:`build_serving_graph`.

    ``dtype``: the float type of the preprocessing, the spline tables and evaluation and the
    log-likelihood; ``fast_dtype`` (default ``dtype``): that of the spline hyper-networks up to
    the exponentials of the spline logits; ``head_dtype`` (default ``fast_dtype``): that of the
    heads. All weights are buffers.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.float64,
        fast_dtype: torch.dtype | None = None,
        head_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        members = _members(model)
        first = members[0]
        self.members = len(members)
        self.transforms = first.config.transforms
        self.dtype = dtype
        self.fast_dtype = fast_dtype or dtype
        self.head_dtype = head_dtype or self.fast_dtype
        self._check(members)

        def buf(name: str, value: np.ndarray, kind: torch.dtype | None = None) -> None:
            tensor = torch.as_tensor(np.asarray(value))
            self.register_buffer(name, tensor if tensor.dtype == torch.bool else tensor.to(kind or dtype))

        pre = _preprocess_tables(first)
        for name in ("upper_in", "select", "select_bias", "lower", "log_mask", "std_matrix", "std_bias"):
            buf(name, pre[name])
        width = pre["std_matrix"].shape[1]  # u = [x, z, c, r, ll, 1]
        self.ll_column = width - 2
        n_ctx = len(first.preprocess.c_mean)

        hyper = _hyper_layers(members, width, list(range(2, 2 + n_ctx)))
        self.hyper_layers = len(hyper)
        for i, matrix in enumerate(hyper):
            buf(f"hyper_{i}", matrix, self.fast_dtype)
        univariate = first.flow.transform.transforms[0].univariate
        spline = _spline_tables(first.config.bins, getattr(univariate, "keywords", {}).get("slope", 1e-3), _BOUND)
        buf("spline_scale", spline["scale"], self.fast_dtype)
        buf("spline_num", spline["num"])
        buf("spline_den", spline["den"])
        self.n_phi, self.n_table = spline["num"].shape
        self.n_knots = first.config.bins + 2  # the left sentinel and the spline's knots
        for t in range(self.transforms):  # transform t's tables sit at column t * n_table
            index = spline["index"][: self.n_knots].copy()
            index[0] += t * self.n_table
            buf(f"spline_index_{t}", index)
        buf("spline_factors", spline["factors"])
        buf("spline_sums", spline["sums"])
        self.n_spline_terms = spline["sums"].shape[0]
        first_sums = spline["sums"].copy()
        first_sums[:, 2] /= math.sqrt(2.0 * math.pi)  # log N(z; 0, 1) = -z^2 / 2 - log(2 pi) / 2
        buf("spline_sums_first", first_sums)
        buf("member_zeros", np.zeros((len(members), 1, 1)))
        zl = np.zeros((4, width))  # [z, z^2, log prod jac, log prod den] -> z, ll in h's columns
        zl[0, 1] = 1.0
        zl[1:, self.ll_column] = [-0.5, 1.0, -2.0]
        buf("zl_matrix", zl)

        self.has_mlp = first.mlp is not None
        heads = _head_tables(members, width) if self.has_mlp else []
        self.head_layers = len(heads)
        for i, matrix in enumerate(heads):
            buf(f"head_{i}", matrix, self.head_dtype)
            if i < len(heads) - 1:  # transposed, for the MLP head's input gradient
                transposed = np.ascontiguousarray(np.swapaxes(matrix, 1, 2))
                if i == 0:
                    transposed[:, :, width - 1] = 0.0  # no gradient for h's constant column
                buf(f"head_t_{i}", transposed, self.head_dtype)
        if heads:
            out_weight = heads[-1][:, :, width - 1].copy()  # the MLP output's weights
            out_weight[:, -1] = 0.0  # the constant unit carries the bias, not a gradient
            buf("head_out_weight", out_weight[:, None, :], self.head_dtype)
            # Integrated gradients (flow.FraudFlow.logit_terms): the baseline h (term_mean, and
            # the constant column's 1), the path's midpoints, and the move of the shares: each
            # input keeps its share, the last column (interactions) loses their sum and the
            # difference between the fit-set mean of mlp(h) and mlp(baseline), one MatMul.
            base = np.stack([np.append(_np(m.term_mean)[: width - 1], 1.0) for m in members])
            buf("head_baseline", base[:, None, :], self.head_dtype)
            steps = (np.arange(ATTRIBUTION_STEPS) + 0.5) / ATTRIBUTION_STEPS
            buf("attribution_steps", steps[:, None, None, None], self.head_dtype)
            move = np.eye(width)
            move[:, width - 1] = -1.0
            buf("share_move", move, self.head_dtype)
            offset = np.zeros((len(members), 1, width))
            with torch.no_grad():
                for k, member in enumerate(members):
                    offset[k, 0, width - 1] = float(member.term_mean[-1]) - float(member.mlp_baseline())
            buf("interaction_offset", offset, self.head_dtype)
        weights = [_np(member.term_weights()) for member in members]
        if not self.has_mlp:  # without an MLP the centring is a subtraction (the 1 column: 0)
            weights = [np.append(w, 0.0) for w in weights]
            buf("term_mean", np.stack([np.append(_np(m.term_mean), 1.0) for m in members])[:, None], self.head_dtype)
        buf("term_weight", np.stack(weights)[:, None, :], self.head_dtype)
        self.n_terms = len(first.term_names)
        a, b = (float(v) for v in _np(model.calibration))
        bias = float(model.terms_bias())
        out = np.zeros((width, 2))  # [logit, a * logit + b] = terms @ out + out_bias
        out[: self.n_terms, 0] = 1.0
        out[: self.n_terms, 1] = a
        buf("out_matrix", out, self.head_dtype)
        buf("out_bias", np.array([bias, a * bias + b]), self.head_dtype)
        self.log_members = math.log(len(members))

    @staticmethod
    def _check(members: list[FraudFlow]) -> None:
        first = members[0]
        for member in members[1:]:
            theirs = dict(member.preprocess.named_buffers())
            if any(not torch.equal(v, theirs[k]) for k, v in first.preprocess.named_buffers()):
                raise ValueError("serving graph: ensemble members must share the standardisation")
            if member.config != first.config:
                raise ValueError("serving graph: ensemble members must share the architecture")
        for member in members:
            base = member.flow.base
            if not (torch.all(base.loc == 0) and torch.all(base.scale == 1)):
                raise ValueError("serving graph: the flow's base must be the standard normal")
        if 3 * _BOUND <= STD_CLAMP:
            raise ValueError("serving graph: the identity sentinels must lie beyond the clamp")

    def outputs(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The four outputs in the graph's own float types (``forward`` casts them to float32)."""
        m, t_count, fast, head = self.members, self.transforms, self.fast_dtype, self.head_dtype
        # -- preprocessing: [N, 15] -> u = [x, 0, c, r, 0, 1], standardised and clamped
        clamped = features.to(self.dtype).clamp(min=0.0)
        clamped = torch.minimum(clamped, self.upper_in)
        g = torch.maximum(torch.addmm(self.select_bias, clamped, self.select), self.lower)
        n_a, avg_a, n_b, avg_b, amt, direct, count, count_1 = g.chunk(len(_BLOCKS), dim=1)
        window_mean = (n_a * avg_a - n_b * avg_b - amt).clamp(min=0.0) / count_1
        raw = torch.where(count > 0.5, window_mean, direct)
        raw = torch.where(self.log_mask, torch.log1p(raw), raw)
        u = torch.addmm(self.std_bias, raw, self.std_matrix).clamp(-STD_CLAMP, STD_CLAMP)

        # -- spline tables of every transform of every member (they depend on the context only)
        h = u.to(fast)
        for i in range(self.hyper_layers):
            h = torch.matmul(h, getattr(self, f"hyper_{i}"))
            if i < self.hyper_layers - 1:
                h = torch.relu(h)
        e = torch.exp(h / (1.0 + (h / self.spline_scale).abs()))
        e = e.reshape(m, t_count, -1, self.n_phi).transpose(1, 2).to(self.dtype)  # [M, N, T, .]
        table = torch.matmul(e, self.spline_num) / torch.matmul(e, self.spline_den)
        knots = table[..., : self.n_knots].reshape(m, -1, t_count * self.n_knots).split(self.n_knots, dim=2)
        table = table.reshape(m, -1, t_count * self.n_table)

        # -- the flow x -> z and log|dz/dx|, vectorised over [members, N]
        x = u[:, :1] + self.member_zeros
        acc = x
        for t in range(t_count):
            below = (knots[t] < x).to(self.dtype)
            index = torch.matmul(below, getattr(self, f"spline_index_{t}")).to(torch.int64)
            factors = torch.matmul(torch.cat([x, torch.gather(table, 2, index)], dim=2), self.spline_factors)
            terms = factors.reshape(m, -1, 4, self.n_spline_terms).prod(2)
            sums = self.spline_sums_first if t == 0 else self.spline_sums
            num, den, jac = torch.matmul(terms, sums).split([1, 1, 2], dim=2)
            x = num / den
            acc = jac if t == 0 else acc * jac
        zl = torch.matmul(torch.cat([x, x * x, torch.log(acc)], dim=2), self.zl_matrix).to(head)

        # -- heads of all members on h = [x, z, c, r, clamp(ll), 1]; z lies in [-10, 10] (up to
        # rounding in the sentinel bins), so one clamp to the log-likelihood's range serves both
        h = u.to(head) + zl.clamp(*LL_CLAMP)
        if self.has_mlp:
            a = h
            for i in range(self.head_layers):
                a = torch.matmul(a, getattr(self, f"head_{i}"))
                if i < self.head_layers - 1:
                    a = torch.tanh(a)
            centred = h + a
            # d mlp / d h at the path's midpoints [steps, M, N, width], back through the tanh
            # layers (the constant units' 1 - 1^2 = 0), averaged: the integrated-gradients share
            # of each input moves from `interactions` to its term (flow.FraudFlow.logit_terms).
            delta = h - self.head_baseline  # the constant column: 0
            a = self.head_baseline + self.attribution_steps * delta
            hidden = []
            for i in range(self.head_layers - 1):
                a = torch.tanh(torch.matmul(a, getattr(self, f"head_{i}")))
                hidden.append(a)
            grad = self.head_out_weight
            for i in reversed(range(self.head_layers - 1)):
                grad = grad * (1.0 - hidden[i] * hidden[i])
                grad = torch.matmul(grad, getattr(self, f"head_t_{i}"))
            share = grad.mean(0) * delta
            shift = torch.matmul(share, self.share_move) + self.interaction_offset
            terms = (centred * self.term_weight + shift).mean(0)
        else:
            centred = h - self.term_mean
            terms = (centred * self.term_weight).mean(0)
        logit_and_scaled = torch.addmm(self.out_bias, terms, self.out_matrix)
        probability = torch.sigmoid(logit_and_scaled[:, 1])
        ll = zl[:, :, self.ll_column]
        ll = torch.logsumexp(ll, dim=0) - self.log_members if m > 1 else ll[0]
        if self.n_terms < terms.shape[1]:
            terms = terms[:, : self.n_terms]
        return probability, ll, logit_and_scaled[:, 0], terms

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        probability, ll, logit, terms = self.outputs(features)
        return probability.float(), ll.float(), logit.float(), terms.float()

    @torch.no_grad()
    def score(self, features: np.ndarray, batch_size: int = 65536) -> dict[str, np.ndarray]:
        """Run the graph in PyTorch on a float32 matrix (same keys as ``FraudFlow.score``)."""
        outputs = [
            self(torch.as_tensor(features[i : i + batch_size], dtype=torch.float32))
            for i in range(0, max(len(features), 1), batch_size)
        ]
        names = ("fraud_probability", "log_likelihood", "fraud_logit", "logit_terms")
        return {name: torch.cat([o[k] for o in outputs]).numpy() for k, name in enumerate(names)}


def build_serving_graph(model: nn.Module, precision: str = DEFAULT_PRECISION) -> ServingGraph:
    """The serving graph of a trained :class:`FraudFlow` or :class:`FlowEnsemble` in one of
    :data:`PRECISIONS` (the model is not modified)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    model = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        return ServingGraph(model, *PRECISIONS[precision]).eval()


def serving_parity(model: nn.Module, graph: nn.Module, features: np.ndarray) -> dict[str, float]:
    """Largest differences between the training module and the serving graph (PyTorch both,
    float32 outputs), in the terms of :func:`model_export.export.check_parity`."""
    ref = model.score(features)
    got = graph.score(features)
    ll_ref = ref["log_likelihood"].astype(np.float64)
    ll_err = np.abs(got["log_likelihood"] - ll_ref) / np.maximum(1.0, np.abs(ll_ref))
    return {
        "log_likelihood_max_rel_error": float(ll_err.max(initial=0.0)),
        "fraud_probability_max_abs_error": float(
            np.abs(got["fraud_probability"] - ref["fraud_probability"]).max(initial=0.0)
        ),
        "fraud_logit_max_abs_error": float(np.abs(got["fraud_logit"] - ref["fraud_logit"]).max(initial=0.0)),
        "logit_terms_max_abs_error": float(np.abs(got["logit_terms"] - ref["logit_terms"]).max(initial=0.0)),
    }


def graph_flops(path: str | Path) -> dict[str, int]:
    """Floating-point operations per row of the graph's MatMul and Gemm nodes (2 per multiply-add),
    by element type (``{"float64": ..., "float32": ...}``): the arithmetic floor of one transaction.
    Shapes come from ONNX shape inference with the batch dimension set to 1; element-wise nodes
    are left out (a few thousand values a row, small beside the products)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    model = shape_inference.infer_shapes(model, data_prop=True)
    known: dict[str, tuple[list[int], int]] = {}
    for value in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        tensor = value.type.tensor_type
        known[value.name] = ([d.dim_value for d in tensor.shape.dim], tensor.elem_type)
    for init in model.graph.initializer:
        known[init.name] = (list(init.dims), init.data_type)
    flops: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        if node.input[0] not in known or node.output[0] not in known:
            raise ValueError(f"graph_flops: no inferred shape for {node.op_type} node {node.name!r}")
        (a_shape, elem_type), (out_shape, _) = known[node.input[0]], known[node.output[0]]
        if not a_shape or not out_shape or 0 in a_shape or 0 in out_shape:
            raise ValueError(f"graph_flops: unknown dimension in {node.op_type} node {node.name!r}")
        trans_a = any(a.name == "transA" and a.i for a in node.attribute)
        inner = a_shape[-2] if node.op_type == "Gemm" and trans_a else a_shape[-1]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
        flops[dtype] = flops.get(dtype, 0) + 2 * int(np.prod(out_shape)) * inner
    return flops


def graph_benchmark(
    path: str | Path, features: np.ndarray, calls: int = 2000, batch: int = 256, repeats: int = 20
) -> dict[str, float]:
    """onnxruntime timings of an ONNX file with 1 intra-op thread and ORT_ENABLE_ALL: median and
    p99 of ``calls`` single-row calls (rows cycled), and microseconds per transaction at
    ``batch`` rows a call (median over ``repeats`` passes through the rows, tiled to 8 batches at
    least). Includes the Python call overhead of onnxruntime (~5 us a call)."""
    import onnx
    import onnxruntime as ort

    from model_export.export import INPUT_NAME

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rows = np.ascontiguousarray(features, dtype=np.float32)
    if len(rows) == 0:
        raise ValueError("graph_benchmark needs at least one row")
    singles = [rows[i : i + 1] for i in range(min(len(rows), calls))]
    for single in singles[:200]:
        session.run(None, {INPUT_NAME: single})
    times = np.empty(calls)
    for i in range(calls):
        single = singles[i % len(singles)]
        start = time.perf_counter()
        session.run(None, {INPUT_NAME: single})
        times[i] = time.perf_counter() - start
    tiled = np.concatenate([rows] * max(1, -(-8 * batch // len(rows))))
    batches = [tiled[i : i + batch] for i in range(0, len(tiled) - batch + 1, batch)]
    for b in batches[:3]:
        session.run(None, {INPUT_NAME: b})
    per_tx = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            session.run(None, {INPUT_NAME: b})
        per_tx.append((time.perf_counter() - start) / (len(batches) * batch))
    return {
        "nodes": len(onnx.load(str(path)).graph.node),
        "flops_per_tx": sum(graph_flops(path).values()),
        "batch1_median_us": float(np.median(times) * 1e6),
        "batch1_p99_us": float(np.quantile(times, 0.99) * 1e6),
        "batch_us_per_tx": float(np.median(per_tx) * 1e6),
        "batch": batch,
    }


def format_benchmark(results: Sequence[tuple[str, dict[str, float]]]) -> str:
    """A small table of :func:`graph_benchmark` results."""
    batch = int(results[0][1]["batch"]) if results else 256
    head = (
        f"{'graph':<34} {'nodes':>6} {'kFLOPs/tx':>10} {'batch 1 median us':>18} {'batch 1 p99 us':>15} "
        f"{f'batch {batch} us/tx':>17}"
    )
    lines = [head, "-" * len(head)]
    for label, r in results:
        lines.append(
            f"{label:<34} {int(r['nodes']):>6} {r['flops_per_tx'] / 1000:>10.1f} {r['batch1_median_us']:>18.1f} "
            f"{r['batch1_p99_us']:>15.1f} {r['batch_us_per_tx']:>17.2f}"
        )
    return "\n".join(lines)
