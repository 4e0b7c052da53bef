"""The conditional flow: inverse round trip, log-determinant vs autograd, exported model algebra."""

from __future__ import annotations

import pytest
import torch
import zuko

from model_export.features import FEATURE_NAMES
from model_export.flow import (
    ATTRIBUTION_STEPS,
    HEAD_TERMS,
    RATIO_TERMS,
    FlowConfig,
    FlowEnsemble,
    FraudFlow,
    Preprocess,
    mlp_input_gradient,
)


@pytest.mark.parametrize("features", [1, 2, 3])
@pytest.mark.parametrize("context", [0, 5, 14])
@pytest.mark.parametrize("transforms", [1, 4])
def test_inverse_round_trip_and_log_det(features: int, context: int, transforms: int) -> None:
    flow = zuko.flows.NSF(features=features, context=context, transforms=transforms, hidden_features=(16, 16))
    x = torch.randn(8, features, dtype=torch.float64) * 2
    c = torch.randn(8, context, dtype=torch.float64) if context else None
    flow = flow.double()
    dist = flow(c)
    z, ladj = dist.transform.call_and_ladj(x)
    assert torch.allclose(dist.transform.inv(z), x, atol=1e-6)
    for i in range(len(x)):
        transform = flow(c[i] if c is not None else None).transform
        jacobian = torch.autograd.functional.jacobian(transform, x[i])
        assert torch.allclose(torch.linalg.slogdet(jacobian).logabsdet, ladj[i], atol=1e-6)
    log_prob = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) + ladj
    assert torch.allclose(dist.log_prob(x), log_prob, atol=1e-8)


@pytest.mark.parametrize("transforms", [1, 3])
def test_model_log_likelihood_is_the_flow_density(transforms: int) -> None:
    model = FraudFlow(FlowConfig(transforms=transforms, hidden_features=(16,), bins=4)).double()
    features = torch.rand(32, 15, dtype=torch.float64) * 20
    model.preprocess.fit(features)
    x, c, _ = model.preprocess(features)
    _, ll = model.latent(x, c)
    assert torch.allclose(ll, model.flow(c).log_prob(x))
    # the density integrates to one over x for a fixed context (trapezoid on a wide grid)
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64).unsqueeze(-1)
    _, ll_grid = model.latent(grid, c[:1].expand(len(grid), -1))
    assert torch.trapezoid(ll_grid.exp(), grid[:, 0]).item() == pytest.approx(1.0, abs=1e-3)


def test_logit_terms_sum_to_logit() -> None:
    model = FraudFlow(FlowConfig(transforms=2, hidden_features=(8,), bins=4, head_hidden=()))
    features = torch.rand(64, 15) * 30
    model.preprocess.fit(features)
    with torch.no_grad():
        model.term_mean.copy_(torch.randn(len(HEAD_TERMS)))
        model.calibration.copy_(torch.tensor([0.7, -1.5]))
        probability, _, logit, terms = model(features)
    assert terms.shape == (64, len(HEAD_TERMS))
    assert torch.allclose(terms.sum(-1) + model.terms_bias(), logit, atol=1e-5)
    assert torch.allclose(probability, torch.sigmoid(0.7 * logit - 1.5))


def test_default_config_loads_and_rejects_unknown_keys() -> None:
    from model_export.train import default_config_path, load_config

    config = load_config(default_config_path())
    assert config.flow == FlowConfig() and config.steps == 3000
    with pytest.raises(ValueError, match="bogus"):
        load_config(default_config_path(), bogus=1)


def _random_member(seed: int, features: torch.Tensor) -> FraudFlow:
    torch.manual_seed(seed)
    model = FraudFlow(FlowConfig(transforms=2, hidden_features=(8,), bins=4, head_hidden=(8,))).double()
    model.preprocess.fit(features)
    with torch.no_grad():
        for p in model.mlp.parameters():  # the last layer starts at zero: make it non-trivial
            p.normal_(0.0, 0.5)
        model.term_mean.normal_()
    return model


def test_mlp_head_terms_sum_to_logit_with_an_interactions_term() -> None:
    features = torch.rand(64, 15, dtype=torch.float64) * 30
    model = _random_member(0, features)
    assert model.term_names == (*HEAD_TERMS, "interactions")
    with torch.no_grad():
        _, _, logit, terms = model(features)
        h, _, _ = model.encode(features)
        linear, extra = model.head_logit(h)
    assert terms.shape == (64, len(HEAD_TERMS) + 1)
    assert extra is not None and extra.abs().max() > 0
    assert torch.allclose(terms.sum(-1).double() + model.terms_bias(), logit.double(), atol=1e-5)
    assert torch.allclose(logit.double(), linear + extra, atol=1e-5)


def test_ensemble_is_mean_logit_and_mixture_density() -> None:
    features = torch.rand(64, 15, dtype=torch.float64) * 30
    members = [_random_member(seed, features) for seed in (1, 2, 3)]
    ensemble = FlowEnsemble(members).double()
    with torch.no_grad():
        ensemble.calibration.copy_(torch.tensor([0.8, -2.0]))
        probability, ll, logit, terms = ensemble(features)
        outs = [m(features) for m in members]
    mean_logit = torch.stack([o[2] for o in outs]).double().mean(0)
    mixture = torch.logsumexp(torch.stack([o[1] for o in outs]).double(), 0) - torch.log(torch.tensor(3.0))
    assert torch.allclose(logit.double(), mean_logit, atol=1e-5)
    assert torch.allclose(ll.double(), mixture.double(), atol=1e-5)
    assert torch.allclose(terms.sum(-1).double() + ensemble.terms_bias(), logit.double(), atol=1e-5)
    assert torch.allclose(probability.double(), torch.sigmoid(0.8 * logit.double() - 2.0), atol=1e-6)


def test_mlp_share_goes_to_its_inputs_by_integrated_gradients() -> None:
    features = torch.rand(64, 15, dtype=torch.float64) * 30
    model = _random_member(4, features)
    with torch.no_grad():
        h, _, logit = model.encode(features)
        terms = model.logit_terms(h)
    # the closed-form gradient is autograd's
    h_grad = h.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(model.mlp(h_grad).sum(), h_grad)
    assert torch.allclose(mlp_input_gradient(model.mlp, h), autograd, atol=1e-12)
    # each input's term = (linear weight) * delta_i + mean of the MLP's gradients on the path from
    # the baseline (term_mean) to h, times delta_i; interactions = mlp(h) - mlp(baseline) - shares
    base = model.term_mean[:-1]
    delta = h - base
    steps = [(k + 0.5) / ATTRIBUTION_STEPS for k in range(ATTRIBUTION_STEPS)]
    points = [(base + s * delta).requires_grad_(True) for s in steps]
    grads = [torch.autograd.grad(model.mlp(p).sum(), p)[0] for p in points]
    share = torch.stack(grads).mean(0) * delta
    assert torch.allclose(terms[:, :-1], model.head.weight[0] * delta + share, atol=1e-10)
    with torch.no_grad():
        moved = model.mlp(h)[:, 0] - model.mlp(base[None])[0, 0]
    assert torch.allclose(terms[:, -1], moved - share.sum(-1), atol=1e-10)
    # the shares explain most of the MLP's output, and the terms still sum to the logit
    assert terms[:, -1].abs().mean() < 0.2 * moved.abs().mean()
    assert torch.allclose(terms.sum(-1) + model.terms_bias(), logit, atol=1e-10)


def test_terminal_risks_stay_distinct_up_to_one_after_standardisation() -> None:
    """A training week has terminal risks mostly 0 (std ~0.07): without the floor on their
    standard deviation every risk above ~0.7 would hit the clamp, and a terminal still being
    defrauded (30-day risk ~0.5) would look like one whose compromise has ended (~0.9)."""
    rows = torch.zeros(1000, 15)
    rows[:, FEATURE_NAMES.index("amount")] = 50.0
    risk_columns = [FEATURE_NAMES.index(f"terminal.risk_{w}d") for w in (1, 7, 30)]
    rows[:5, risk_columns] = 1.0  # 0.5 % risky rows: std ~0.07
    preprocess = Preprocess()
    preprocess.fit(rows)
    probe = torch.zeros(3, 15)
    probe[:, risk_columns] = torch.tensor([[0.5], [0.9], [1.0]])
    _, c, _ = preprocess(probe)
    risks = c[:, -3:]
    assert (risks.abs() < 10.0).all(), risks  # none at the clamp
    assert (risks[1] > risks[0]).all() and (risks[2] > risks[1]).all()


def test_history_and_terminal_variables_by_hand() -> None:
    """The head-only variables of one hand-made payment, computed by hand."""
    row = torch.zeros(2, 15, dtype=torch.float64)

    def put(name: str, value: float) -> None:
        row[0, FEATURE_NAMES.index(name)] = value

    amount = 100.0
    put("amount", amount)
    # customer: today 2 payments (mean 60: the other one is 20), 7 days 5 (mean 40: recent
    # (t - 7 d, t - 1 d] = 3 payments of total 200 - 120 = 80), 30 days 15 (mean 30: older
    # (t - 30 d, t - 7 d] = 10 payments of total 450 - 200 = 250)
    for w, n, avg in ((1, 2, 60.0), (7, 5, 40.0), (30, 15, 30.0)):
        put(f"customer.nb_tx_{w}d", n)
        put(f"customer.avg_amount_{w}d", avg)
    # terminal: 1 day 2 payments, risk 0.5; 7 days 10, risk 0.3; 30 days 40, risk 0.25
    for w, n, risk in ((1, 2, 0.5), (7, 10, 0.3), (30, 40, 0.25)):
        put(f"terminal.nb_tx_{w}d", n)
        put(f"terminal.risk_{w}d", risk)
    _, _, r = Preprocess.raw(row)
    names = list(RATIO_TERMS)

    def log(value: float | torch.Tensor) -> torch.Tensor:
        return torch.log1p(torch.as_tensor(value, dtype=torch.float64))

    a = amount
    older, recent, today = 25.0, 80.0 / 3.0, 20.0
    expected = {
        "amount_vs_customer_older": log(a) - log(older),
        "customer.recent_vs_older": log(recent) - log(older),
        "customer.today_vs_older": log(today) - log(older),
        "terminal.frauds_1d": log(1.0),
        "terminal.frauds_7d": log(3.0),
        "terminal.frauds_30d": log(10.0),
        "terminal.frauds_older": log(7.0),
        "terminal.legit_7d": log(7.0),
        "terminal.legit_30d": log(30.0),
    }
    for name, value in expected.items():
        assert float(r[0, names.index(name)]) == pytest.approx(float(value), abs=1e-12), name
    # A first payment (all windows hold only it) and an empty terminal: every such variable is 0.
    row[1, FEATURE_NAMES.index("amount")] = 42.0
    for w in (1, 7, 30):
        row[1, FEATURE_NAMES.index(f"customer.nb_tx_{w}d")] = 1.0
        row[1, FEATURE_NAMES.index(f"customer.avg_amount_{w}d")] = 42.0
    _, _, r = Preprocess.raw(row)
    assert torch.equal(r[1], torch.zeros_like(r[1]))
