"""NAB scoring (benchmarks/nab.py) written from the papers: known cases, the published normalisation, and the
benchmark script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import nab
from tests.conftest import REPO, data_dir

NAB_DIR = data_dir("nab-realtweets")
needs_data = pytest.mark.skipif(not NAB_DIR.is_dir(), reason="NAB realTweets data not present")
STANDARD = nab.CostMatrix(tp=1.0, fn=1.0, fp=0.11)
LOW_FN = nab.CostMatrix(tp=1.0, fn=2.0, fp=0.11)


def test_scaled_sigmoid_matches_the_paper_values() -> None:
    values = nab.scaled_sigmoid(np.array([-1.0, -0.5, 0.0, 1.0, 2.999, 3.0, 10.0]))
    assert values[:4] == pytest.approx([0.98661, 0.84828, 0.0, -0.98661], abs=1e-5)
    assert values[4] > -1.0 and values[5] == -1.0 and values[6] == -1.0


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert nab.probationary_length(1000) == 150
    assert nab.probationary_length(15_902) == 750


def one_file(
    anomaly: np.ndarray,
    bounds: list[tuple[int, int]],
    cost: nab.CostMatrix = STANDARD,
    threshold: float | None = 0.5,
) -> nab.ProfileResult:
    return nab.score_profile("test", cost, {"f.csv": (anomaly, bounds)}, threshold)


def test_hand_computed_case() -> None:
    # 100 rows: rows 0-14 probationary; one window, rows 40-59 (width 20).
    a = np.zeros(100)
    a[[20, 45, 50, 90]] = 1.0  # FP before the window, two detections inside, FP after it
    r = one_file(a, [(40, 59)])
    tp = nab.scaled_sigmoid(-(59 - 45 + 1) / 20) / nab.scaled_sigmoid(
        -1.0
    )  # only the earliest detection counts
    fp_before = -1.0 * 0.11
    fp_after = nab.scaled_sigmoid((90 - 59) / 19) * 0.11
    assert r.raw == pytest.approx(float(tp + fp_before + fp_after))
    f = r.files[0]
    assert (f.tp, f.fp, f.fn, f.tn, f.windows_detected) == (2, 2, 18, 63, 1)
    assert r.normalised == pytest.approx(100 * (r.raw + 1) / 2)


def test_detection_on_the_first_row_earns_tp_weight_and_on_the_last_row_almost_nothing() -> None:
    first = np.zeros(100)
    first[40] = 1
    last = np.zeros(100)
    last[59] = 1
    assert one_file(first, [(40, 59)]).raw == pytest.approx(1.0)
    assert one_file(last, [(40, 59)]).raw == pytest.approx(0.12604, abs=1e-4)


def test_false_positive_right_after_a_window_costs_little() -> None:
    near, far = np.zeros(200), np.zeros(200)
    near[61] = 1
    far[150] = 1
    assert one_file(near, [(40, 59)]).raw > one_file(far, [(40, 59)]).raw
    assert one_file(far, [(40, 59)]).raw == pytest.approx(-1.0 - 0.11)


def test_probationary_detections_are_not_scored() -> None:
    a = np.zeros(100)
    a[5] = 1
    assert one_file(a, [(40, 59)]).raw == pytest.approx(-1.0)


def test_threshold_optimisation_picks_the_best_corpus_threshold() -> None:
    a = np.zeros(100)
    a[45] = 0.5  # a true detection with a modest score
    a[80] = 0.9  # a false alarm with a higher score
    r = one_file(a, [(40, 59)], threshold=None)
    assert r.threshold == 0.5  # catching the window is worth one false positive
    b = np.zeros(100)
    b[58] = 0.5  # even a late detection (worth ~0.25) beats missing the window (-1)
    b[80] = 0.9
    assert nab.optimise_threshold([nab.sweep_file("f", b, [(40, 59)], STANDARD)], STANDARD)[0] == 0.5


def test_null_and_perfect_detectors_on_synthetic_files() -> None:
    bounds = {"a.csv": [(300, 349)], "b.csv": [(200, 219), (500, 529)]}
    null = {k: (np.zeros(1000), v) for k, v in bounds.items()}
    perfect = {k: (np.zeros(1000), v) for k, v in bounds.items()}
    for k, v in bounds.items():
        for left, _ in v:
            perfect[k][0][left] = 1.0
    for cost in (STANDARD, LOW_FN, nab.CostMatrix(1.0, 1.0, 0.22)):
        assert nab.score_profile("p", cost, null).normalised == pytest.approx(0.0)
        assert nab.score_profile("p", cost, perfect).normalised == pytest.approx(100.0)


@needs_data
def test_perfect_and_null_detectors_on_real_tweets_all_profiles() -> None:
    profiles = nab.load_profiles(NAB_DIR / "config" / "profiles.json")
    windows = nab.load_windows(NAB_DIR / "labels" / "combined_windows.json")
    perfect, null = {}, {}
    for rel in sorted(w for w in windows if w.startswith("realTweets/")):
        frame = pd.read_csv(NAB_DIR / "data" / rel)
        bounds = nab.window_bounds(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])), windows[rel])
        a = np.zeros(len(frame))
        a[[left for left, _ in bounds]] = 1.0
        perfect[rel], null[rel] = (a, bounds), (np.zeros(len(frame)), bounds)
    assert sum(len(b) for _, b in perfect.values()) == 33
    for name, cost in profiles.items():
        assert nab.score_profile(name, cost, perfect).normalised == pytest.approx(100.0)
        assert nab.score_profile(name, cost, null).normalised == pytest.approx(0.0)


@needs_data
def test_row_counts_match_the_published_score_files() -> None:
    """Probation and window rows as NAB counts them: TP+FN and TN+FP of ARTime's published rows."""
    published = pd.read_csv(NAB_DIR / "results" / "realTweets_per_file_scores.csv")
    rows = published[(published.detector == "ARTime") & (published.profile == "standard")]
    windows = nab.load_windows(NAB_DIR / "labels" / "combined_windows.json")
    for rel, pub in rows.set_index("file").iterrows():
        frame = pd.read_csv(NAB_DIR / "data" / rel)
        bounds = nab.window_bounds(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])), windows[rel])
        swept = nab.sweep_file(rel, np.zeros(len(frame)), bounds, STANDARD)
        inside = int((swept.window != nab.NO_WINDOW).sum())
        assert len(swept.anomaly) == pub.total_count
        assert inside == pub.TP + pub.FN and len(swept.anomaly) - inside == pub.TN + pub.FP


@needs_data
def test_normalisation_reproduces_the_published_realtweets_scores() -> None:
    per_file = pd.read_csv(NAB_DIR / "results" / "realTweets_per_file_scores.csv")
    published = pd.read_csv(NAB_DIR / "results" / "realTweets_normalized_scores.csv").set_index("detector")
    profiles = nab.load_profiles(NAB_DIR / "config" / "profiles.json")
    for (detector, profile), group in per_file.groupby(["detector", "profile"]):
        if detector not in published.index:
            continue
        ours = nab.normalise(group.score.sum(), 33, profiles[profile])
        assert ours == pytest.approx(published.loc[detector, profile], abs=0.051), (detector, profile)


@needs_data
def test_bench_nab_script_writes_nab_result_files_and_prints_the_scores(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "bench_nab.py"
    done = subprocess.run(
        [sys.executable, str(script), "--data", str(NAB_DIR), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| **FinPulse NegativeSpikeDetector** |" in done.stdout
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(scores) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    files = sorted(tmp_path.glob("*.csv"))
    assert [f.name for f in files] == sorted(p.name for p in (NAB_DIR / "data" / "realTweets").glob("*.csv"))
    out = pd.read_csv(files[0])
    src = pd.read_csv(NAB_DIR / "data" / "realTweets" / files[0].name)
    assert list(out.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert len(out) == len(src) and out["anomaly_score"].between(0, 1).all() and set(out["label"]) == {0, 1}
    # Rescoring the written files gives the printed figure (the CSVs are the result, not a by-product).
    windows = nab.load_windows(NAB_DIR / "labels" / "combined_windows.json")
    results = {}
    for f in files:
        frame = pd.read_csv(f)
        rel = f"realTweets/{f.name}"
        results[rel] = (
            frame["anomaly_score"].to_numpy(),
            nab.window_bounds(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])), windows[rel]),
        )
    rescored = nab.score_profile("standard", STANDARD, results).normalised
    assert rescored == pytest.approx(scores["standard"], abs=0.01)
    # Regression guard at the detector's defaults (48.0 measured; the >= 75 target is open: docs/alerts.md).
    assert scores["standard"] >= 45.0
