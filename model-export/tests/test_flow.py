"""The conditional flow: inverse round trip, log-determinant vs autograd, exported model algebra."""

from __future__ import annotations

import pytest
import torch
import zuko

from model_export.flow import HEAD_TERMS, FlowConfig, FraudFlow


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
    model = FraudFlow(FlowConfig(transforms=2, hidden_features=(8,), bins=4))
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
