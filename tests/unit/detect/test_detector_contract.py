"""One contract suite for every detector, River-style (river/checks/): discovered, not listed.

The suite finds every concrete `DetectorBase` subclass in the ``stream_guard.detect`` package
(every type of the rule registry among them, which `test_every_detector_is_covered` checks) and
runs the same checks on each: clone and pickle
round-trips (a worker restarted from a pickled snapshot continues with identical scores), score
before learn (scoring has no side effect), ``learn_one`` returns None, no input mutation,
determinism with a seed, better than random on a labelled stream, bounded memory per instance.

Detectors whose constructor needs arguments (a wrapped detector, a threshold) get them from
`EXAMPLE_PARAMS`; a new detector that needs arguments and has no entry there fails
`test_every_detector_is_covered`, so nothing escapes the suite by being new.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import math
import pickle
import pkgutil
import random
from collections.abc import Callable
from typing import Any

import pytest

import stream_guard.detect
from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.guard import Guarded
from stream_guard.detect.registry import DETECTORS, build_detector
from stream_guard.detect.robust_zscore import RobustZScore
from stream_guard.detect.seasonal_residual import SeasonalResidual

# Constructor arguments for detectors that have required ones, built fresh for every instance.
EXAMPLE_PARAMS: dict[str, Callable[[], dict[str, Any]]] = {
    "StaticThreshold": lambda: {"upper": 0.08},
    "Refractory": lambda: {"detector": SeasonalResidual(), "level": 4.0, "hold": 20},
    "CalibratedEnsemble": lambda: {"members": [SeasonalResidual(), RobustZScore()]},
    "Guarded": lambda: {"detector": SeasonalResidual()},
}
# The seed given to detectors that take one (their randomness must come from it alone).
SEED = 42
# Per-instance memory bound: one detector runs per (metric, slice), thousands per worker. The
# largest (a two-member CalibratedEnsemble) holds ~30k floats: 3 seasons of 1024 points per
# member, 1000-point residual windows, 2000-point calibration histories per feature.
MAX_PICKLED_BYTES = 320 * 1024
ANOMALIES = frozenset({1500, 1501, 1800, 2100})
N_POINTS = 2400
# Long enough to fill every buffer (3 cycles of the longest season searched, 3 x 1024 points).
MEMORY_HALF = 3200


def _discover() -> dict[str, type[DetectorBase]]:
    """Every concrete detector class defined in the stream_guard.detect package."""
    for info in pkgutil.iter_modules(stream_guard.detect.__path__, "stream_guard.detect."):
        importlib.import_module(info.name)
    found: dict[str, type[DetectorBase]] = {}
    stack = list(DetectorBase.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("stream_guard.detect.") and not inspect.isabstract(cls):
            found[cls.__name__] = cls
    return found


CLASSES = _discover()


def _params(cls: type[DetectorBase]) -> dict[str, Any]:
    params = EXAMPLE_PARAMS.get(cls.__name__, dict)()
    if "seed" in inspect.signature(cls.__init__).parameters:
        params["seed"] = SEED
    return params


def _make(name: str) -> DetectorBase:
    """A fresh detector of the class called ``name``."""
    cls = CLASSES[name]
    return cls(**_params(cls))


NAMES = sorted(CLASSES)


def _stream(n: int = N_POINTS, seed: int = 11) -> list[Features]:
    """Hourly rate metric (numerator / denominator) with a daily cycle and labelled anomalies.

    Every detector family can read it: values for the statistical ones, counts for the rate
    test, timestamps for the seasonal ones. Anomalies triple the numerator.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        phase = math.sin(2 * math.pi * i / 24)
        denominator = float(round(1000 * (1 + 0.5 * phase) + rng.gauss(0, 20)))
        numerator = float(round(denominator * 0.04 + rng.gauss(0, 3)))
        numerator *= 3.0 if i in ANOMALIES else 1.0
        out.append({
            "t": 3600.0 * i,
            "value": numerator / denominator,
            "numerator": numerator,
            "denominator": denominator,
        })
    return out


def _replay(det: DetectorBase, xs: list[Features], rescore: int = 0) -> list[float]:
    """Score then learn each point; ``rescore`` extra score calls check scoring is pure."""
    scores = []
    for x in xs:
        s = det.score_one(x)  # type: ignore[attr-defined]
        for _ in range(rescore):
            assert det.score_one(x) == s  # type: ignore[attr-defined]
            det.expect_one(x)  # type: ignore[attr-defined]
        scores.append(s)
        assert det.learn_one(x) is None  # type: ignore[attr-defined]
    return scores


def _auc(scores: list[float], positive: set[int]) -> float:
    """Probability that an anomaly outscores a normal point (ties count half)."""
    pos = [scores[i] for i in positive]
    neg = [s for i, s in enumerate(scores) if i not in positive]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_detector_is_covered() -> None:
    for cls_name, cls in CLASSES.items():
        required = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.default is inspect.Parameter.empty
        ]
        assert not required or cls_name in EXAMPLE_PARAMS, f"{cls_name} needs EXAMPLE_PARAMS"
    for kind, cls in DETECTORS.items():  # the rule path builds what the suite checks, guarded
        built = build_detector(kind, _params(cls), window_s=3600.0)
        assert type(built) is Guarded and type(built.detector) is CLASSES[cls.__name__]
        assert repr(built.detector) == repr(_make(cls.__name__))


def test_auto_seasonal_is_selectable_by_rules() -> None:
    det = build_detector("auto_seasonal", {"hold": 50, "horizons": [1, 8]})
    assert isinstance(det, Guarded)
    assert (det.detector.hold, det.detector.horizons) == (50, (1, 8))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="hold"):
        build_detector("auto_seasonal", {"hold": "long"})


def test_first_score_is_zero_or_finite_and_scores_are_non_negative(name: str) -> None:
    det = _make(name)
    scores = _replay(det, _stream(300))
    assert all(math.isfinite(s) and s >= 0.0 for s in scores)


def test_score_before_learn_has_no_side_effect_and_input_is_untouched(name: str) -> None:
    xs = _stream(1200)
    before = copy.deepcopy(xs)
    once = _replay(_make(name), xs)
    assert _replay(_make(name), xs, rescore=2) == once
    assert xs == before


def test_pickle_mid_stream_then_continue_gives_identical_scores(name: str) -> None:
    xs = _stream()
    det = _make(name)
    _replay(det, xs[:1400])
    restored = pickle.loads(pickle.dumps(det))
    assert _replay(restored, xs[1400:]) == _replay(det, xs[1400:])


def test_clone_is_fresh_with_the_same_parameters(name: str) -> None:
    xs = _stream(1300)
    det = _make(name)
    first = _replay(det, xs)
    fresh = det.clone()
    assert repr(fresh) == repr(_make(name))
    assert _replay(fresh, xs) == first


def test_deterministic_with_a_seed(name: str) -> None:
    xs = _stream(1300, seed=5)
    assert _replay(_make(name), xs) == _replay(_make(name), xs)


def _shifted_stream(shift_at: int = 1500) -> list[Features]:
    """`_stream` without its spikes, whose level rises by half from ``shift_at`` on."""
    out = []
    for i, x in enumerate(_stream()):
        if i in ANOMALIES:
            x = {**x, "numerator": x["numerator"] / 3.0, "value": x["value"] / 3.0}
        if i >= shift_at:
            x = {**x, "numerator": 1.5 * x["numerator"], "value": 1.5 * x["value"]}
        out.append(x)
    return out


# Detectors whose job is a change of level, not a spike (a median does not see one point): the
# labelled stream they must beat random on is a lasting shift, labelled from when it holds the
# recent window's median (k/2 points in) to when it holds the older one's (3k/2): (start, end).
SHIFT_DETECTORS = {"MedianShift": (64, 192)}


def test_better_than_random_on_a_labelled_stream(name: str) -> None:
    if name in SHIFT_DETECTORS:
        scores = _replay(_make(name), _shifted_stream(1500))
        start, end = SHIFT_DETECTORS[name]
        labelled = set(range(1500 + start, 1500 + end))
    else:
        scores = _replay(_make(name), _stream())
        labelled = {i for i in ANOMALIES if i >= 1000}
    auc = _auc(scores[1000:], {i - 1000 for i in labelled})
    assert auc > 0.9, f"{name}: AUC {auc:.3f}"


def test_memory_per_instance_is_bounded(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    xs = _stream(2 * MEMORY_HALF)
    det = _make(name)
    _replay(det, xs[:MEMORY_HALF])
    half = len(pickle.dumps(det))
    _replay(det, xs[MEMORY_HALF:])
    full = len(pickle.dumps(det))
    with capsys.disabled():
        print(f"\n{name}: {full / 1024:.1f} KiB pickled after {len(xs)} points")
    assert full <= MAX_PICKLED_BYTES
    assert full <= 1.25 * half + 4096, "state keeps growing with the stream"
