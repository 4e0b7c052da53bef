"""Metric and split functions on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_frame
from model_export.calibrate import fit_platt, risk_level, risk_thresholds
from model_export.evaluate import (
    SplitDates,
    card_precision_at_k,
    ceiling_report,
    classification_metrics,
    hidden_frauds,
    known_compromised,
    make_split,
)

# (day, card, label, score)
CP_ROWS = [
    (1, "A", 1, 0.9),
    (1, "B", 0, 0.8),
    (1, "C", 1, 0.1),
    (2, "A", 1, 0.95),  # detected on day 1: removed on day 2 when removing detected cards
    (2, "C", 1, 0.6),
    (2, "D", 0, 0.5),
    (2, "B", 0, 0.1),
]


@pytest.mark.parametrize(("remove_detected", "expected"), [(True, (0.5 + 0.5) / 2), (False, (0.5 + 1.0) / 2)])
def test_card_precision_at_k(remove_detected: bool, expected: float) -> None:
    day, card, label, score = zip(*CP_ROWS, strict=True)
    assert card_precision_at_k(day, card, label, score, k=2, remove_detected=remove_detected) == pytest.approx(expected)


def test_card_score_is_max_and_card_label_is_any_fraud() -> None:
    # card X: a fraud with a low score and a legit payment with the top score -> compromised, ranked first
    days = [1, 1, 1, 1]
    cards = ["X", "X", "Y", "Z"]
    labels = [1, 0, 0, 1]
    scores = [0.1, 0.99, 0.5, 0.3]
    assert card_precision_at_k(days, cards, labels, scores, k=1) == 1.0
    # k larger than the number of cards still divides by k (handbook)
    assert card_precision_at_k(days, cards, labels, scores, k=4) == pytest.approx(2 / 4)


def test_classification_metrics_perfect_and_inverted() -> None:
    frame = make_frame([(f"2018-08-0{1 + i % 3} 12:00:00", i, 0, 1.0, int(i < 3)) for i in range(9)])
    perfect = classification_metrics(frame, frame["TX_FRAUD"].to_numpy() * 1.0, k=1)
    assert perfect["roc_auc"] == 1.0 and perfect["average_precision"] == 1.0 and perfect["n_fraud"] == 3
    inverted = classification_metrics(frame, 1.0 - frame["TX_FRAUD"].to_numpy(), k=1)
    assert inverted["roc_auc"] == 0.0


def test_known_compromised_follows_the_handbook() -> None:
    dates = SplitDates("2018-07-25", "2018-07-31", 7, "2018-08-08", "2018-08-14")
    frame = make_frame(
        [
            ("2018-07-20 10:00:00", 1, 0, 1.0, 1),  # before training: not known
            ("2018-07-26 10:00:00", 2, 0, 1.0, 1),  # in training: known on every test day
            ("2018-08-01 10:00:00", 3, 0, 1.0, 1),  # first delay day: known from 08-09 on
            ("2018-08-08 10:00:00", 1, 0, 1.0, 0),
            ("2018-08-08 11:00:00", 2, 0, 1.0, 0),
            ("2018-08-08 12:00:00", 3, 0, 1.0, 1),
            ("2018-08-09 12:00:00", 3, 0, 1.0, 0),
        ]
    )
    known = known_compromised(frame, dates)
    assert known.tolist() == [False, False, False, False, True, False, True]
    split = make_split(frame, dates)
    assert split.test["TRANSACTION_ID"].tolist() == [3, 5]
    assert split.train["TRANSACTION_ID"].tolist() == [1]
    notes = make_split(frame, dates, known_lag_days=7)  # MODEL-NOTES: one more day known
    assert notes.test["TRANSACTION_ID"].tolist() == [3]


def test_platt_recovers_known_parameters(rng: np.random.Generator) -> None:
    s = rng.normal(size=200_000) * 3
    y = (rng.random(len(s)) < 1 / (1 + np.exp(-(0.5 * s - 2.0)))).astype(int)
    a, b = fit_platt(s, y)
    assert a == pytest.approx(0.5, abs=0.02) and b == pytest.approx(-2.0, abs=0.05)


def test_risk_thresholds_alert_rates(rng: np.random.Generator) -> None:
    p = rng.random(10_000)
    y = (p > 0.99).astype(int)
    t = risk_thresholds(p, y, elevated_rate=0.02, high_rate=0.005)
    assert t["validation_alert_rate_elevated"] == pytest.approx(0.02, abs=1e-3)
    assert t["validation_alert_rate_high"] == pytest.approx(0.005, abs=1e-3)
    assert t["validation_precision_high"] == 1.0
    assert risk_level(t["high"], t["elevated"], t["high"]) == "high"
    assert risk_level(t["elevated"], t["elevated"], t["high"]) == "elevated"
    assert risk_level(0.0, t["elevated"], t["high"]) == "low"


def test_split_dates_default_is_the_handbook_split() -> None:
    assert SplitDates() == SplitDates("2018-07-25", "2018-07-31", 7, "2018-08-08", "2018-08-14")
    assert pd.Timestamp(SplitDates().test_start) - pd.Timestamp(SplitDates().train_end) == pd.Timedelta(days=8)


def test_expected_calibration_error_hand_made() -> None:
    from model_export.evaluate import expected_calibration_error, reliability_table

    # bin [0, 1/15): p 0.0 and 0.05, labels 0, 1 -> |0.5 - 0.025| * 2/4
    # last bin: p 1.0 (included) and 0.99, labels 1, 1 -> |1 - 0.995| * 2/4
    labels = [0, 1, 1, 1]
    probs = [0.0, 0.05, 1.0, 0.99]
    expected = 0.5 * abs(0.5 - 0.025) + 0.5 * abs(1.0 - 0.995)
    assert expected_calibration_error(labels, probs, bins=15) == pytest.approx(expected)
    table = reliability_table(labels, probs, bins=15)
    assert [row["count"] for row in table] == [2, 2]
    assert table[-1]["high"] == pytest.approx(1.0)
    # perfectly calibrated bins give zero
    assert expected_calibration_error([0, 0, 0, 1], [0.25] * 4, bins=15) == pytest.approx(0.0)


def test_scenario_recall_at_budget_hand_made() -> None:
    from model_export.evaluate import scenario_recall_at_budget

    # day 1: cards A (max 0.9), B (0.8), C (0.1); budget 2 -> A, B alerted
    # day 2: cards C (0.7), D (0.6), A (0.2); budget 2 -> C, D alerted
    days = [1, 1, 1, 1, 2, 2, 2]
    cards = ["A", "A", "B", "C", "C", "D", "A"]
    scenarios = [1, 0, 2, 3, 3, 0, 2]
    scores = [0.1, 0.9, 0.8, 0.1, 0.7, 0.6, 0.2]
    out = scenario_recall_at_budget(days, cards, scenarios, scores, cards_per_day=2)
    # scenario 1: A day 1 (card max 0.9, alerted) -> 1/1, even though that payment scored 0.1
    assert out[1] == {"frauds": 1, "caught": 1, "recall": 1.0}
    # scenario 2: B day 1 alerted, A day 2 not -> 1/2
    assert out[2]["recall"] == pytest.approx(0.5)
    # scenario 3: C day 1 not alerted, C day 2 alerted -> 1/2
    assert out[3]["caught"] == 1 and out[3]["frauds"] == 2
    assert 0 not in out


def _ceiling_frame() -> pd.DataFrame:
    """One day, 1,000 cards with one payment each: 900 legitimate, 60 visible frauds (scenario 1,
    or scenario 2 at a terminal with a known fraud) and 40 hidden ones (scenario 2, all risks 0)."""
    n_legit, n_visible, n_hidden = 900, 60, 40
    scenario = [0] * n_legit + [1] * 30 + [2] * 30 + [2] * n_hidden
    risk = [0.0] * n_legit + [0.0] * 30 + [0.5] * 30 + [0.0] * n_hidden
    n = n_legit + n_visible + n_hidden
    return pd.DataFrame(
        {
            "TX_DATETIME": pd.Timestamp("2018-08-08 12:00") + pd.to_timedelta(np.arange(n), unit="s"),
            "CUSTOMER_ID": np.arange(n),
            "TX_FRAUD": (np.array(scenario) > 0).astype(int),
            "TX_FRAUD_SCENARIO": scenario,
            "terminal.risk_1d": [0.0] * n,
            "terminal.risk_7d": [0.0] * n,
            "terminal.risk_30d": risk,
            "customer.nb_tx_1d": [1.0] * n,
        }
    )


def test_hidden_frauds_are_scenario_2_with_no_known_terminal_fraud() -> None:
    frame = _ceiling_frame()
    hidden = hidden_frauds(frame)
    assert hidden.sum() == 40
    assert (frame["TX_FRAUD_SCENARIO"].to_numpy()[hidden] == 2).all()
    # a scenario-2 fraud with any non-zero terminal risk is visible
    frame.loc[frame.index[-1], "terminal.risk_1d"] = 0.2
    assert hidden_frauds(frame).sum() == 39


def test_ceiling_favours_busy_cards_among_the_rest() -> None:
    frame = _ceiling_frame()
    hidden = hidden_frauds(frame)
    frame.loc[hidden, "customer.nb_tx_1d"] = 3.0  # the hidden frauds' cards paid three times today
    ceiling = ceiling_report(frame, repeats=3)
    # all 100 compromised cards fill the day's top 100: the busy ones come right after the visible
    assert ceiling["card_precision_at_100"] == 1.0
    assert ceiling["scenario_recall"]["2"]["recall"] == 1.0


def test_ceiling_ranks_visible_frauds_first_and_hidden_ones_at_random() -> None:
    frame = _ceiling_frame()
    ceiling = ceiling_report(frame, repeats=30)
    assert (ceiling["n_fraud"], ceiling["n_hidden"]) == (100, 40)
    # AUC: 60 frauds above all legitimate payments, 40 at a uniform rank among them -> 0.6 + 0.4 / 2
    assert ceiling["roc_auc"] == pytest.approx(0.8, abs=0.02)
    # top 100 cards: the 60 visible frauds, then 40 of the 940 others at random (40 / 940 hidden)
    assert ceiling["card_precision_at_100"] == pytest.approx((60 + 40 * 40 / 940) / 100, abs=0.01)
    # scenario 1 always alerts; scenario 2 only its 30 visible payments and a few hidden by chance
    assert ceiling["scenario_recall"]["1"]["recall"] == 1.0
    assert ceiling["scenario_recall"]["2"]["recall"] == pytest.approx((30 + 40 * 40 / 940) / 70, abs=0.02)
    low, high = ceiling["range"]["roc_auc"]
    assert low <= ceiling["roc_auc"] <= high
    # a real score cannot beat a perfect one, and the ceiling stays under it when frauds hide
    assert (
        ceiling["average_precision"] < classification_metrics(frame, frame["TX_FRAUD"].to_numpy())["average_precision"]
    )
