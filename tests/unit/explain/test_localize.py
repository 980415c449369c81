"""Root-cause localisation on small seeded cubes, and benchmarks/rca.py on generated layouts."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from stream_guard.explain.cube import LeafTable
from stream_guard.explain.localize import Localisation, localize, localize_sparse

REPO = Path(__file__).resolve().parents[3]
LEVELS = {"x": 4, "y": 5, "z": 3}
Leaf = dict[str, str]


def leaves() -> list[Leaf]:
    combos = product(*(range(n) for n in LEVELS.values()))
    return [{a: f"{a}{i}" for a, i in zip(LEVELS, c, strict=True)} for c in combos]


def inside(leaf: Leaf, element: Leaf) -> bool:
    return all(leaf[k] == v for k, v in element.items())


def additive(changes: list[tuple[Leaf, float]], seed: int = 7) -> LeafTable:
    """Forecasts of varied size, 1% noise, each element's leaves scaled by (1 + change)."""
    rng = np.random.default_rng(seed)
    rows = leaves()
    forecast = rng.lognormal(5.0, 1.0, len(rows))
    actual = forecast * (1.0 + rng.normal(0.0, 0.01, len(rows)))
    for element, change in changes:
        actual *= np.array([1.0 + change if inside(r, element) else 1.0 for r in rows])
    return LeafTable.from_columns(columns(rows), actual, forecast)


def columns(rows: list[Leaf]) -> dict[str, list[str]]:
    return {a: [r[a] for r in rows] for a in LEVELS}


def found(result: Localisation) -> list[Leaf]:
    return [dict(c.attrs) for c in result.elements]


def sparse(changes: list[tuple[Leaf, float]], seed: int = 5, mean: float = 2.0) -> LeafTable:
    """A live window's cube: Poisson counts of ~`mean` per leaf around a known forecast."""
    rng = np.random.default_rng(seed)
    rows = leaves()
    forecast = rng.gamma(2.0, mean / 2.0, len(rows))
    rate = forecast.copy()
    for element, change in changes:
        rate *= np.array([1.0 + change if inside(r, element) else 1.0 for r in rows])
    return LeafTable.from_columns(columns(rows), rng.poisson(rate), forecast)


@pytest.mark.parametrize("seed", range(5))
def test_sparse_cubes_name_a_two_attribute_element(seed: int) -> None:
    result = localize_sparse(sparse([({"x": "x1", "y": "y3"}, 4.0)], seed))
    assert found(result)[:1] == [{"x": "x1", "y": "y3"}]
    assert sum(c.share for c in result.elements) <= 1.0 + 1e-9
    assert result.elements[0].share > 0.5


@pytest.mark.parametrize("seed", range(5))
def test_sparse_cubes_call_a_platform_wide_change_external(seed: int) -> None:
    assert localize_sparse(sparse([({}, 0.8)], seed)).external


@pytest.mark.parametrize("seed", range(5))
def test_sparse_cubes_of_noise_alone_name_nothing(seed: int) -> None:
    result = localize_sparse(sparse([], seed))
    assert result.elements == ()


def test_one_attribute_cause() -> None:
    result = localize(additive([({"y": "y2"}, -0.4)]))
    assert found(result) == [{"y": "y2"}]
    assert not result.external
    cause = result.elements[0]
    assert cause.share == pytest.approx(1.0, abs=0.05)
    assert cause.relative_change == pytest.approx(-0.4, abs=0.02)
    assert cause.change < 0


def test_two_attribute_cause_is_neither_parent_nor_child() -> None:
    result = localize(additive([({"x": "x1", "z": "z0"}, -0.5)]))
    assert found(result) == [{"x": "x1", "z": "z0"}]


def test_two_simultaneous_elements_most_explanatory_first() -> None:
    table = additive([({"x": "x0"}, -0.6), ({"y": "y4", "z": "z2"}, -0.7)])
    result = localize(table)
    assert sorted(map(str, found(result))) == sorted(
        map(str, [{"x": "x0"}, {"y": "y4", "z": "z2"}])
    )
    shares = [c.share for c in result.elements]
    assert shares == sorted(shares, reverse=True)
    assert 0.0 < sum(shares) <= 1.0 + 1e-12


def test_overlapping_elements_shares_never_exceed_the_total() -> None:
    result = localize(additive([({"x": "x2"}, -0.5), ({"y": "y1"}, -0.5), ({"z": "z1"}, -0.3)]))
    assert len(result.elements) >= 2
    assert all(0.0 <= c.share <= 1.0 for c in result.elements)
    assert result.explained <= 1.0 + 1e-12


def test_platform_wide_change_is_external() -> None:
    result = localize(additive([({}, -0.3)]))
    assert result.external
    assert result.elements == ()


def test_no_change_is_neither_a_cause_nor_external() -> None:
    table = additive([])
    exact = LeafTable(table.attributes, table.values, table.codes, table.forecast, table.forecast)
    result = localize(exact)
    assert result == Localisation((), external=False)


def test_deterministic() -> None:
    table = additive([({"x": "x3"}, 0.5), ({"y": "y0", "z": "z1"}, -0.4)])
    assert localize(table) == localize(table)


def ratio_table(orders: Callable[[Leaf], float], rate: Callable[[Leaf], float]) -> LeafTable:
    """complaints / orders: Poisson counts; forecasts = the usual volumes at a 5% rate."""
    rng = np.random.default_rng(11)
    rows = leaves()
    f_den = rng.uniform(1000.0, 3000.0, len(rows))
    f_num = f_den * 0.05
    den = rng.poisson(f_den * np.array([orders(r) for r in rows])).astype(float)
    num = rng.poisson(den * np.array([rate(r) for r in rows])).astype(float)
    return LeafTable.from_columns(columns(rows), num, f_num, den, f_den)


def test_ratio_cause_where_the_denominator_moves() -> None:
    # x1's orders halve while its complaints do not: its complaint rate doubles.
    in_x1 = {"x": "x1"}
    table = ratio_table(
        lambda r: 0.5 if inside(r, in_x1) else 1.0,
        lambda r: 0.10 if inside(r, in_x1) else 0.05,
    )
    result = localize(table, ratio=True)
    assert found(result) == [in_x1]
    assert result.elements[0].change == pytest.approx(0.05, abs=0.01)  # of the rate


def test_ratio_mix_shift_alone_blames_no_slice() -> None:
    # x1's orders double at the usual rate: the rate moved nowhere.
    table = ratio_table(lambda r: 2.0 if r["x"] == "x1" else 1.0, lambda r: 0.05)
    assert localize(table, ratio=True).elements == ()


def test_ratio_needs_denominators() -> None:
    with pytest.raises(ValueError, match="denominators"):
        localize(additive([]), ratio=True)


# --- benchmarks/rca.py on generated layouts -------------------------------------------------


def write_b0(root: Path) -> None:
    setting = root / "B_cuboid_layer_1_n_ele_1"
    setting.mkdir(parents=True)
    info = [["set", "timestamp"]]
    for k, (element, ts) in enumerate(((("x", "x1"), "100"), (("y", "y3"), "200"))):
        table = additive([({element[0]: element[1]}, -0.5)], seed=k)
        with open(setting / f"{ts}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["real", "predict", *LEVELS])
            for i, row in enumerate(leaves()):
                w.writerow([table.actual[i], table.forecast[i], *row.values()])
        info.append([f"{element[0]}={element[1]}", ts])
    with open(setting / "injection_info.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(info)


def write_rs(root: Path) -> None:
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    t0 = 1_600_000_000
    with open(root / "case1.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["min", *LEVELS, "value", "cnt"])
        for minute, row in product(range(5), leaves()):
            cnt = int(rng.integers(500, 1500))
            broken = minute == 4 and row["z"] == "z2"
            w.writerow(
                [t0 + 60 * minute, *row.values(), rng.binomial(cnt, 0.4 if broken else 0.02), cnt]
            )
    (root / "anomaly.yaml").write_text(
        f"- data: case1\n  timestamp: {t0 + 240}\n  cause: {{'z':'z2'}}\n"
    )


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        (
            write_b0,
            {
                "B_cuboid_layer_1_n_ele_1/100": [{"x": "x1"}],
                "B_cuboid_layer_1_n_ele_1/200": [{"y": "y3"}],
            },
        ),
        (write_rs, {"RS/case1": [{"z": "z2"}]}),
    ],
)
def test_benchmark_writes_documented_lines(
    tmp_path: Path, layout: Callable[[Path], None], expected: dict[str, list[Leaf]]
) -> None:
    data = tmp_path / "data"
    layout(data if layout is write_b0 else data / "RS")
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "rca.py"),
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert {x["case"]: x["causes"] for x in lines} == expected
    assert all(set(x) == {"case", "causes", "external"} and x["external"] is False for x in lines)
    assert "overall" in done.stdout and "F1 1.000" in done.stdout
    assert "seconds per case" in done.stdout


def sums(changes: list[tuple[Leaf, float]], seed: int, priced: bool = True) -> LeafTable:
    """A live GMV window: ~8 orders per leaf, orders under x=x0 ten times dearer (lognormal
    values); `priced` says each leaf's mean value per order (`unit`)."""
    rng = np.random.default_rng(seed)
    rows = leaves()
    price = np.array([200.0 if r["x"] == "x0" else 20.0 for r in rows]) * np.exp(0.8**2 / 2)
    events = rng.gamma(2.0, 4.0, len(rows))
    rate = events.copy()
    for element, change in changes:
        rate *= np.array([1.0 + change if inside(r, element) else 1.0 for r in rows])
    actual = [rng.lognormal(np.log(p) - 0.8**2 / 2, 0.8, k).sum()
              for p, k in zip(price, rng.poisson(rate), strict=True)]
    return LeafTable.from_columns(columns(rows), actual, events * price,
                                  unit=price if priced else None)


def test_a_sum_is_counted_in_events_so_dear_orders_are_not_taken_for_a_change() -> None:
    """Issue 13 (simulated GMV): one dispersion per table made the noise of expensive leaves
    look like changes; with each leaf's mean order value their noise is theirs."""
    true = {"y": "y2", "z": "z1"}
    priced = [found(localize_sparse(sums([(true, -0.8)], seed))) for seed in range(10)]
    blind = [found(localize_sparse(sums([(true, -0.8)], seed, priced=False)))
             for seed in range(10)]
    assert not any(e.get("x") == "x0" for names in priced for e in names)
    assert sum(names[:1] == [true] for names in priced) >= 6
    assert sum(any(e.get("x") == "x0" for e in names) for names in blind) >= 5


def test_a_unit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="unit"):
        LeafTable.from_columns({"x": ["a", "b"]}, [1.0, 2.0], [1.0, 2.0], unit=[1.0, 0.0])
