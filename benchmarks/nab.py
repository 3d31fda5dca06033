"""Numenta Anomaly Benchmark (NAB) scoring, written from the NAB papers (Lavin & Ahmad 2015; Ahmad et al. 2017).

Rules implemented:

- Each labelled window rewards only its **earliest** detection, weighted by the scaled sigmoid of the
  detection's position in the window (``-1`` = left edge, ``0`` = right edge), divided by its value at the
  left edge so a detection on the first row earns exactly ``tpWeight``. A missed window costs ``fnWeight``.
- Every detection outside a window costs ``fpWeight`` times the scaled sigmoid of its distance past the end
  of the previous window (in window widths); before any window, or three widths after one, the full weight.
- The first ``min(floor(0.15 n), 750)`` rows of a file are probationary and not scored.
- One threshold per profile: the detector's anomaly scores are swept over all their distinct values and the
  threshold that maximises the summed raw score over the whole corpus is kept ("optimise" step). A row is
  a detection when its score is ``>= threshold``.
- Normalised score ``100 (raw - null) / (perfect - null)``: the null detector misses every window
  (``-fnWeight`` each), the perfect one catches each window on its first row (``tpWeight`` each).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.alerts.detector import KeyCounts, bucket_of, series_from_counts
from monitor.alerts.episodes import scan_key
from monitor.alerts.params import DEFAULTS, DetectorParams
from monitor.errors import ConfigError

PROBATION_PERCENT = 0.15
Scores = np.ndarray | Sequence[float]  # one anomaly score per row
Corpus = Mapping[str, tuple[Scores, Sequence[tuple[int, int]]]]  # file -> (scores, window row bounds)
NO_WINDOW = -1
PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass(frozen=True, slots=True)
class CostMatrix:
    tp: float
    fn: float
    fp: float


@dataclass(frozen=True, slots=True)
class SweptFile:
    """Per-row inputs to the threshold sweep for one data file (probationary rows removed)."""

    name: str
    anomaly: np.ndarray  # (rows,) detector scores
    weighted: np.ndarray  # (rows,) reward if the row were a detection (TP weight or FP cost)
    window: np.ndarray  # (rows,) window index within the file, NO_WINDOW outside windows
    n_windows: int


@dataclass(frozen=True, slots=True)
class FileScore:
    name: str
    score: float
    tp: int  # rows counted as detections inside windows (NAB counts rows, not windows)
    fp: int
    fn: int
    tn: int
    windows_detected: int
    n_windows: int


@dataclass(frozen=True, slots=True)
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float
    files: tuple[FileScore, ...]


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid: ``2 sigmoid(-5 x) - 1``, and exactly ``-1`` from ``x >= 3``."""
    x = np.asarray(position, dtype=float)
    return np.where(x >= 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0)


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    return int(min(math.floor(percent * n_rows), percent * 5000))


def load_profiles(path: Path) -> dict[str, CostMatrix]:
    raw = json.loads(Path(path).read_text())
    return {
        name: CostMatrix(
            tp=float(p["CostMatrix"]["tpWeight"]),
            fn=float(p["CostMatrix"]["fnWeight"]),
            fp=float(p["CostMatrix"]["fpWeight"]),
        )
        for name, p in raw.items()
    }


def load_windows(path: Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """``combined_windows.json``: relative data path -> [(start, end)]."""
    raw = json.loads(Path(path).read_text())
    return {name: [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in wins] for name, wins in raw.items()}


def window_bounds(
    timestamps: pd.DatetimeIndex, windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]
) -> list[tuple[int, int]]:
    """Row ranges (inclusive) of each window: first row at/after the start, last row at/before the end."""
    ts = timestamps.values
    out = []
    for start, end in windows:
        left = int(np.searchsorted(ts, np.datetime64(start), side="left"))
        right = int(np.searchsorted(ts, np.datetime64(end), side="right")) - 1
        if right >= left:
            out.append((left, right))
    return out


def row_labels(n_rows: int, bounds: Sequence[tuple[int, int]]) -> np.ndarray:
    """1 for rows inside a window, else 0 (the ``label`` column of NAB result files)."""
    label = np.zeros(n_rows, dtype=int)
    for left, right in bounds:
        label[left : right + 1] = 1
    return label


def sweep_file(
    name: str,
    anomaly: Scores,
    bounds: Sequence[tuple[int, int]],
    cost: CostMatrix,
    probation_percent: float = PROBATION_PERCENT,
) -> SweptFile:
    """Per-row detection reward for one file (NAB's sweep step)."""
    scores = np.asarray(anomaly, dtype=float)
    n = len(scores)
    idx = np.arange(n)
    weighted = np.empty(n)
    window = np.full(n, NO_WINDOW)
    max_tp = float(scaled_sigmoid(-1.0))
    # Outside windows: cost decays with the distance past the previous window's right edge.
    position = np.full(n, 3.0)
    for k, (left, right) in enumerate(sorted(bounds)):
        width = right - left + 1
        inside = slice(left, right + 1)
        window[inside] = k
        weighted[inside] = scaled_sigmoid(-(right - idx[inside] + 1) / width) * cost.tp / max_tp
        after = idx > right
        position[after] = np.abs(right - idx[after]) / max(width - 1, 1)
    outside = window == NO_WINDOW
    weighted[outside] = scaled_sigmoid(position[outside]) * cost.fp
    keep = idx >= probationary_length(n, probation_percent)
    kept_windows = np.unique(window[keep & ~outside])
    remap = {int(w): i for i, w in enumerate(kept_windows)}
    win = np.array([remap.get(int(w), NO_WINDOW) for w in window[keep]], dtype=int)
    return SweptFile(name, scores[keep], weighted[keep], win, len(kept_windows))


def _corpus_arrays(files: Sequence[SweptFile]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    offsets = np.cumsum([0] + [f.n_windows for f in files])
    anomaly = np.concatenate([f.anomaly for f in files])
    weighted = np.concatenate([f.weighted for f in files])
    window = np.concatenate(
        [
            np.where(f.window == NO_WINDOW, NO_WINDOW, f.window + off)
            for f, off in zip(files, offsets[:-1], strict=True)
        ]
    )
    return anomaly, weighted, window, int(offsets[-1])


def score_by_threshold(files: Sequence[SweptFile], cost: CostMatrix) -> list[tuple[float, float]]:
    """(threshold, summed raw score) for "no detection" (threshold 1.1, as NAB) and every distinct score."""
    anomaly, weighted, window, n_windows = _corpus_arrays(files)
    order = np.argsort(-anomaly, kind="stable")
    best = np.full(n_windows, -cost.fn)
    fp_sum = 0.0
    win_sum = float(best.sum())
    out: list[tuple[float, float]] = []
    current = 1.1
    for i in order:
        a = float(anomaly[i])
        if a != current:
            out.append((current, fp_sum + win_sum))
            current = a
        w = window[i]
        if w == NO_WINDOW:
            fp_sum += weighted[i]
        elif weighted[i] > best[w]:
            win_sum += weighted[i] - best[w]
            best[w] = weighted[i]
    out.append((current, fp_sum + win_sum))
    return out


def optimise_threshold(files: Sequence[SweptFile], cost: CostMatrix) -> tuple[float, float]:
    """The threshold with the best corpus score (the highest threshold among ties, as NAB's stable sort)."""
    best_t, best_s = 1.1, -math.inf
    for t, s in score_by_threshold(files, cost):
        if s > best_s + 1e-12:
            best_t, best_s = t, s
    return best_t, best_s


def score_file(f: SweptFile, cost: CostMatrix, threshold: float) -> FileScore:
    detected = f.anomaly >= threshold
    inside = f.window != NO_WINDOW
    score = float(f.weighted[detected & ~inside].sum())
    found = 0
    for w in range(f.n_windows):
        rows = detected & (f.window == w)
        if rows.any():
            score += float(f.weighted[rows].max())
            found += 1
        else:
            score -= cost.fn
    return FileScore(
        name=f.name,
        score=score,
        tp=int((detected & inside).sum()),
        fp=int((detected & ~inside).sum()),
        fn=int((~detected & inside).sum()),
        tn=int((~detected & ~inside).sum()),
        windows_detected=found,
        n_windows=f.n_windows,
    )


def score_profile(
    profile: str, cost: CostMatrix, results: Corpus, threshold: float | None = None
) -> ProfileResult:
    """Score a corpus: ``results`` maps file name -> (anomaly scores per row, window row bounds)."""
    files = [sweep_file(name, scores, bounds, cost) for name, (scores, bounds) in sorted(results.items())]
    if threshold is None:
        threshold, _ = optimise_threshold(files, cost)
    per_file = tuple(score_file(f, cost, threshold) for f in files)
    raw = sum(fs.score for fs in per_file)
    n_windows = sum(f.n_windows for f in files)
    null, perfect = -cost.fn * n_windows, cost.tp * n_windows
    return ProfileResult(
        profile, float(threshold), raw, null, perfect, normalise(raw, n_windows, cost), per_file
    )


def normalise(raw: float, n_windows: int, cost: CostMatrix) -> float:
    """``100 (raw - null) / (perfect - null)``: null misses every window, perfect catches each on its first row."""
    null, perfect = -cost.fn * n_windows, cost.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0


# --- running the detector on a NAB-layout folder --------------------------------------------------------


def load_series(path: Path, bucket_seconds: int) -> tuple[pd.DataFrame, KeyCounts, np.ndarray]:
    """A NAB volume file as a count series (volumes count as negatives; no totals) and each row's bucket."""
    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["timestamp"]).dt.tz_localize(UTC)
    values = frame["value"].fillna(0).clip(lower=0).round().to_numpy(dtype=float)
    rows = np.array([bucket_of(t.to_pydatetime(), bucket_seconds) for t in stamps], dtype=np.int64)
    counts = pd.Series(values).groupby(rows).sum()
    start = datetime.fromtimestamp(int(counts.index[0]) * bucket_seconds, tz=UTC)
    dense = np.zeros(int(counts.index[-1] - counts.index[0]) + 1)
    dense[counts.index.to_numpy() - counts.index[0]] = counts.to_numpy()
    return frame, series_from_counts(start, bucket_seconds, dense), rows


def anomaly_scores(kc: KeyCounts, rows: np.ndarray, params: DetectorParams) -> np.ndarray:
    """Streaming anomaly score per row: ``(1 + E) / (2 + E)`` on the row whose bucket fired an alert
    (``E`` = the alert's evidence, so every alert scores at least 0.5), 0 elsewhere."""
    first = int(rows.min())
    spikes, _ = scan_key(kc, params, first, first, int(rows.max()) + 1)
    score = {s.bucket: (1 + s.evidence) / (2 + s.evidence) for s in spikes}
    out = np.zeros(len(rows))
    seen: set[int] = set()
    for i, b in enumerate(rows.tolist()):
        if b in score and b not in seen:
            out[i] = score[b]
            seen.add(b)
    return out


def run_benchmark(
    data_dir: Path,
    out_dir: Path,
    params: DetectorParams = DEFAULTS,
    profiles_path: Path | None = None,
    windows_path: Path | None = None,
) -> dict[str, ProfileResult]:
    """Run the detector in streaming mode on every data file that has labels, write one NAB result CSV per
    series (``<out>/<data file name>``: ``timestamp,value,anomaly_score,label``) and score all profiles."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    for needed in (
        profiles_path or data_dir / "config" / "profiles.json",
        windows_path or data_dir / "labels" / "combined_windows.json",
    ):
        if not Path(needed).is_file():
            raise ConfigError(f"{needed} not found: --data must be laid out as NAB (data/, labels/, config/)")
    profiles = load_profiles(profiles_path or data_dir / "config" / "profiles.json")
    windows = load_windows(windows_path or data_dir / "labels" / "combined_windows.json")
    results: dict[str, tuple[Scores, Sequence[tuple[int, int]]]] = {}
    present = [rel for rel in sorted(windows) if (data_dir / "data" / rel).is_file()]
    names = [
        Path(rel).name for rel in present
    ]  # results go straight into out_dir unless two files share a name
    for rel in present:
        path = data_dir / "data" / rel
        frame, series, rows = load_series(path, params.bucket_seconds)
        bounds = window_bounds(pd.DatetimeIndex(pd.to_datetime(frame["timestamp"])), windows[rel])
        scores = anomaly_scores(series, rows, params)
        target = out_dir / (Path(rel).name if names.count(Path(rel).name) == 1 else rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "timestamp": frame["timestamp"],
                "value": frame["value"],
                "anomaly_score": scores,
                "label": row_labels(len(frame), bounds),
            }
        ).to_csv(target, index=False)
        results[rel] = (scores, bounds)
    if not results:
        raise ConfigError(
            f"no labelled data files under {data_dir / 'data'} (NAB layout: data/, labels/, config/)"
        )
    return {name: score_profile(name, profiles[name], results) for name in PROFILE_NAMES if name in profiles}
