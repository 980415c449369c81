"""Rules load without River: detector parameters are validated from `detect/params.py`'s
descriptions, and a detector's module is imported only when a detector is built.

The import checks run in a fresh interpreter (this one has long imported everything). The
descriptions are checked against the constructors, which stay the definition of the parameters.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import get_type_hints

import pytest

from stream_guard.detect.params import CONTEXT_PARAMS, PARAMS
from stream_guard.detect.registry import DETECTORS, build_detector, validate_params

REPO = Path(__file__).parents[3]
# Heavy modules nothing in rule loading needs: River (~0.6 s, ~100 MiB, with scipy), numpy,
# matplotlib, and the Faust runtime and Kafka client the CLI's other commands use.
HEAVY = ("river", "scipy", "numpy", "matplotlib", "faust", "kafka", "aiokafka")


def _imported_after(code: str) -> list[str]:
    """The HEAVY top-level modules imported by `code`, run in a fresh interpreter from REPO."""
    probe = f"{code}\nimport sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_loading_the_shipped_rules_imports_no_river() -> None:
    imported = _imported_after(
        "from pathlib import Path\n"
        "from stream_guard.config.rules import load_rules\n"
        "from stream_guard.config.topics import load_topics\n"
        "rules = load_rules(Path('alert_rules'), load_topics(None))\n"
        "assert rules and all(r.detector.type for r in rules)\n"
    )
    assert imported == [], f"loading alert_rules/ imported {imported}"


def test_rules_commands_import_nothing_heavy() -> None:
    """`stream-guard rules list|validate` start without River, numpy, Faust or Kafka."""
    for command in ("list", "validate"):
        imported = _imported_after(
            "import contextlib, io\n"
            "from stream_guard.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main(['rules', {command!r}, 'alert_rules']) == 0\n"
        )
        assert imported == [], f"`stream-guard rules {command}` imported {imported}"


def test_river_rules_are_validated_strictly_without_river() -> None:
    """A River detector's parameters are checked at load (unknown names, wrong types) without
    importing River; building one imports it."""
    imported = _imported_after(
        "import pytest\n"
        "from stream_guard.detect.registry import validate_params\n"
        "assert validate_params('river_forecast', {'seasonality': '96'})['seasonality'] == 96\n"
        "with pytest.raises(ValueError, match='seasonalty: Extra inputs'):\n"
        "    validate_params('river_forecast', {'seasonalty': 96})\n"
        "with pytest.raises(ValueError, match='model: Input should be'):\n"
        "    validate_params('river_forecast', {'model': 'arima'})\n"
        "with pytest.raises(ValueError, match='n_trees: Input should be a valid integer'):\n"
        "    validate_params('river_hst', {'n_trees': 'many'})\n"
    )
    assert "river" not in imported
    built = _imported_after(
        "from stream_guard.detect.registry import build_detector\n"
        "build_detector('river_hst', {'seed': 1})\n"
    )
    assert "river" in built


def test_unknown_detector_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError,
                       match=r"unknown detector type 'prophet' \(known: auto, auto_seas"):
        validate_params("prophet", {})


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_description_matches_the_constructor(kind: str) -> None:
    """params.PARAMS[kind] lists the constructor's parameters -- names in order, annotations,
    defaults -- and which context parameters (the window) it takes."""
    desc = PARAMS[kind]
    cls = DETECTORS[kind]
    assert (cls.__module__, cls.__name__) == (desc.module, desc.name)
    hints = get_type_hints(cls.__init__)
    signature = inspect.signature(cls.__init__).parameters
    expected = {
        name: (hints.get(name), ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in signature.items()
        if name != "self" and name not in CONTEXT_PARAMS
    }
    where = f"stream_guard/detect/params.py: PARAMS[{kind!r}] ({desc.name}.__init__)"
    assert list(desc.params) == list(expected), f"{where}: parameter names or order differ"
    for name, (annotation, default) in expected.items():
        assert desc.params[name] == (annotation, default), (
            f"{where}: {name} is {annotation} = {default!r} in the constructor, "
            f"{desc.params[name][0]} = {desc.params[name][1]!r} in the description")
    assert desc.context == CONTEXT_PARAMS & set(signature), f"{where}: context parameters"


def test_every_detector_class_is_described() -> None:
    """DETECTORS (lazy) and PARAMS name the same types; iterating imports no class."""
    assert sorted(DETECTORS) == sorted(PARAMS)
    assert "river_hst" in DETECTORS and "prophet" not in DETECTORS
    assert _imported_after(
        "from stream_guard.detect.registry import DETECTORS\n"
        "assert len(DETECTORS) == len(list(DETECTORS)) and 'river_forecast' in DETECTORS\n"
    ) == []


def test_built_detector_gets_the_window_only_if_it_takes_one() -> None:
    det = build_detector("seasonal", {}, window_s=900.0)
    assert det.detector.window == 900.0  # type: ignore[attr-defined]
    assert build_detector("rate", {}, window_s=900.0).detector.warmup == 12  # type: ignore[attr-defined]
