"""Aggregates on small hand-computed histories, and against a naive reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_frame
from model_export.features import FEATURE_NAMES, compute_features, feature_matrix

D0 = "2018-01-01 10:00:00"


def _at(offset: str) -> str:
    return str(pd.Timestamp(D0) + pd.Timedelta(offset))


CUSTOMER_CASES = [
    pytest.param(
        # a payment exactly one day earlier is outside the 1-day window, the current one is inside
        [("0h", 10.0), ("12h", 20.0), ("1D", 30.0)],
        [(1, 10.0, 1, 10.0), (2, 15.0, 2, 15.0), (2, 25.0, 3, 20.0)],
        id="1d-boundary",
    ),
    pytest.param(
        [("0h", 10.0), ("1D", 30.0), ("8D", 40.0)],
        [(1, 10.0, 1, 10.0), (1, 30.0, 2, 20.0), (1, 40.0, 1, 40.0)],
        id="7d-boundary",
    ),
    pytest.param(
        [("0h", 0.0), ("1s", 5.0)],
        [(1, 0.0, 1, 0.0), (2, 2.5, 2, 2.5)],
        id="zero-amount",
    ),
]


@pytest.mark.parametrize(("payments", "expected"), CUSTOMER_CASES)
def test_customer_windows_include_current_payment(payments, expected) -> None:
    frame = make_frame([(_at(offset), 1, i, amount, 0) for i, (offset, amount) in enumerate(payments)])
    features = compute_features(frame)
    for row, (n1, avg1, n7, avg7) in zip(features.itertuples(index=False), expected, strict=True):
        values = row._asdict()
        got = features.loc[values["TRANSACTION_ID"]]
        assert got["customer.nb_tx_1d"] == n1
        assert got["customer.avg_amount_1d"] == pytest.approx(avg1)
        assert got["customer.nb_tx_7d"] == n7
        assert got["customer.avg_amount_7d"] == pytest.approx(avg7)
        assert got["customer.nb_tx_30d"] >= n7


TERMINAL_CASES = [
    pytest.param(
        # payments on day 0 (fraud) and day 1, scored on day 8 at the same time of day:
        # the 1-day window (t-8d, t-7d] holds day 1 only; the 7- and 30-day windows hold both
        [("0h", 1), ("1D", 0), ("8D", 0)],
        [(0, 0.0, 0, 0.0, 0, 0.0), (0, 0.0, 0, 0.0, 0, 0.0), (1, 0.0, 2, 0.5, 2, 0.5)],
        id="delay-and-boundary",
    ),
    pytest.param(
        # exactly 7 days later the day-0 fraud has entered the delayed window
        [("0h", 1), ("7D", 0), ("7D 1s", 0)],
        [(0, 0.0, 0, 0.0, 0, 0.0), (1, 1.0, 1, 1.0, 1, 1.0), (1, 1.0, 1, 1.0, 1, 1.0)],
        id="risk-one",
    ),
    pytest.param(
        # the current payment and those of the last 7 days never count for the terminal
        [("0h", 1), ("1h", 1), ("6D 23h", 0)],
        [(0, 0.0, 0, 0.0, 0, 0.0)] * 3,
        id="empty-window-risk-zero",
    ),
    pytest.param(
        [("0h", 0), ("10D", 1), ("20D", 0), ("40D", 0)],
        [(0, 0.0, 0, 0.0, 0, 0.0), (0, 0.0, 1, 0.0, 1, 0.0), (0, 0.0, 1, 1.0, 2, 0.5), (0, 0.0, 0, 0.0, 2, 0.5)],
        id="30d-window",
    ),
]


@pytest.mark.parametrize(("payments", "expected"), TERMINAL_CASES)
def test_terminal_windows_are_delayed(payments, expected) -> None:
    frame = make_frame([(_at(offset), i, 7, 10.0, fraud) for i, (offset, fraud) in enumerate(payments)])
    features = compute_features(frame)
    for i, (n1, r1, n7, r7, n30, r30) in enumerate(expected):
        got = features.loc[i]
        assert (got["terminal.nb_tx_1d"], got["terminal.nb_tx_7d"], got["terminal.nb_tx_30d"]) == (n1, n7, n30)
        assert got["terminal.risk_1d"] == pytest.approx(r1)
        assert got["terminal.risk_7d"] == pytest.approx(r7)
        assert got["terminal.risk_30d"] == pytest.approx(r30)


@pytest.mark.parametrize(
    ("stamp", "weekend", "night"),
    [
        ("2018-08-11 03:15:00", 1, 1),  # Saturday
        ("2018-08-12 06:59:59", 1, 1),  # Sunday, hour 6 is night
        ("2018-08-13 07:00:00", 0, 0),  # Monday, hour 7 is day
        ("2018-08-10 00:00:00", 0, 1),  # Friday midnight
    ],
)
def test_weekend_and_night(stamp: str, weekend: int, night: int) -> None:
    features = compute_features(make_frame([(stamp, 1, 1, 1.0, 0)]))
    assert (features.loc[0, "weekend"], features.loc[0, "night"]) == (weekend, night)


def _naive(frame: pd.DataFrame) -> pd.DataFrame:
    times = frame["TX_DATETIME"].to_numpy()
    rows = []
    for i in range(len(frame)):
        t = times[i]
        out = {}
        same_c = (frame["CUSTOMER_ID"] == frame["CUSTOMER_ID"].iloc[i]).to_numpy() & (np.arange(len(frame)) <= i)
        for w in (1, 7, 30):
            m = same_c & (times > t - np.timedelta64(w, "D")) & (times <= t)
            out[f"customer.nb_tx_{w}d"] = m.sum()
            out[f"customer.avg_amount_{w}d"] = frame["TX_AMOUNT"].to_numpy()[m].mean()
        same_t = (frame["TERMINAL_ID"] == frame["TERMINAL_ID"].iloc[i]).to_numpy()
        end = t - np.timedelta64(7, "D")
        for w in (1, 7, 30):
            m = same_t & (times > end - np.timedelta64(w, "D")) & (times <= end)
            out[f"terminal.nb_tx_{w}d"] = m.sum()
            out[f"terminal.risk_{w}d"] = frame["TX_FRAUD"].to_numpy()[m].mean() if m.any() else 0.0
        rows.append(out)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    # distinct whole-second times over 60 days; few customers and terminals so windows fill up
    seconds = np.sort(rng.choice(60 * 86400, size=n, replace=False))
    stamps = pd.Timestamp("2018-07-01") + pd.to_timedelta(seconds, unit="s")
    rows = [
        (
            str(s),
            int(rng.integers(4)),
            int(rng.integers(3)),
            float(np.round(rng.gamma(2, 30), 2)),
            int(rng.random() < 0.2),
        )
        for s in stamps
    ]
    frame = make_frame(rows)
    got = compute_features(frame)
    want = _naive(frame)
    for column in want.columns:
        np.testing.assert_allclose(
            got[column].to_numpy(np.float64), want[column].to_numpy(np.float64), rtol=1e-9, atol=1e-9
        )


def test_feature_matrix_order_and_dtype() -> None:
    features = compute_features(make_frame([(D0, 1, 1, 12.34, 0), (_at("1h"), 1, 2, 56.78, 1)]))
    X = feature_matrix(features)
    assert X.dtype == np.float32 and X.shape == (2, 15)
    assert X[1, 0] == np.float32(56.78)
    assert X[1, FEATURE_NAMES.index("customer.nb_tx_1d")] == 2
    assert X[1, FEATURE_NAMES.index("customer.avg_amount_1d")] == np.float32((12.34 + 56.78) / 2)
