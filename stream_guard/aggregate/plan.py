"""Compiles metric rules into per-topic update plans, the hot path of aggregation.

Every event adds ``(a, b)`` to the accumulator ``[numerator, denominator]`` of each slice it
belongs to, in each metric it feeds: for sum/mean ``(value, 1)``, for count ``(1, 1)``, for the
numerator of a ratio ``(value or 1, 0)``, for its denominator ``(0, value or 1)``. One shape for
every kind of metric keeps the loop short and the partials mergeable by plain addition.

`Contribution` and `slice_keys` state that rule per (topic, metric): they are the definition.
`compile_feeder` turns all the contributions of one topic into one generated function (its
source is in the function's ``__doc__``), so the per-event work is straight-line code: each
dimension read once per event, no loop over contributions or slices, and each slice's
accumulator found by one subscript on the raw dimension value (an `OpenWindow` keeps, per
slot, raw value -> accumulator; the slice key is built only the first time a value shows up in
a window). A week of replay is ~10 million slice updates, so this is where replay throughput is
won or lost. tests/unit/aggregate/test_plan.py holds the generated code to `slice_keys`.

Two more slots travel in the same shape, apart from the slices (aggregate/cube.py):

- the **leaf** of the event, every dimension at once (a raw tuple such as ``("EU", "toys")``,
  `cube_entry`), for the localisation over the window's leaf cube (explain/localize.py) -- one
  dict increment per event and metric, like a pair;
- the event's **seller** (a raw ``seller_id``) on the counted side of count and ratio
  metrics, for the sellers that carry a change (explain/sellers.py).

They are gathered in the window's `WindowCube`, which the source holds across batches and
hands over once per window; aggregate/windows.py bounds them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.aggregate.cube import LEAF_CAP
from stream_guard.config.rules import MetricRule, Source
from stream_guard.types import SliceKey

__all__ = [
    "Admit", "Contribution", "Feeder", "OpenWindow", "compile_feeder", "compile_function",
    "compile_plans", "cube_entry", "feeder_env", "feeder_lines", "slice_keys", "slot_key",
]

MISSING_DIM = "(none)"


@dataclass(frozen=True, slots=True)
class Contribution:
    """How events of one topic feed one metric."""

    metric_index: int
    width_ms: int
    field: str | None  # summed field; None counts events
    side: int  # 0: numerator and count (sum/count/mean); 1: ratio numerator; 2: ratio denominator
    where: tuple[tuple[str, frozenset[Any]], ...]
    dims: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]  # each pair sorted by dimension name
    leaf: tuple[str, ...] = ()  # the leaf cube's dimensions (none: no leaf slot)
    seller: str | None = None  # the seller field, on the counted side of count/ratio metrics
    slots: int = 0  # the metric's window slots: dims, pairs, leaf, seller (whichever side)
    leaf_cap: int = 0  # leaves per source window (beyond: the all-other leaf)
    cube: bool = False  # the metric keeps a window cube (leaves or sellers, either side)

    @property
    def seller_fields(self) -> tuple[str, ...]:
        return (self.seller,) if self.seller else ()

    @property
    def leaf_slot(self) -> int:
        return len(self.dims) + len(self.pairs)

    @property
    def seller_slot(self) -> int:
        return self.leaf_slot + bool(self.leaf)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(obj.get(name) in allowed for name, allowed in self.where)

    def increments(self, obj: Mapping[str, Any]) -> tuple[float, float]:
        value = float(obj[self.field]) if self.field else 1.0
        if self.side == 0:
            return value, 1.0
        return (value, 0.0) if self.side == 1 else (0.0, value)


def slice_keys(c: Contribution, obj: Mapping[str, Any]) -> list[SliceKey]:
    """The global slice, one slice per dimension and one per configured pair."""
    keys: list[SliceKey] = [()]
    get = obj.get
    for d in c.dims:
        keys.append(((d, str(get(d, MISSING_DIM))),))
    for a, b in c.pairs:
        keys.append(((a, str(get(a, MISSING_DIM))), (b, str(get(b, MISSING_DIM)))))
    return keys


def cube_entry(c: Contribution, obj: Mapping[str, Any]) -> tuple[tuple[str, ...] | None,
                                                                 str | None]:
    """The event's leaf (every cube dimension's value) and seller, None where not kept."""
    get = obj.get
    leaf = tuple(str(get(d, MISSING_DIM)) for d in c.leaf) if c.leaf else None
    return leaf, str(get(c.seller, MISSING_DIM)) if c.seller else None


def _where(src: Source) -> tuple[tuple[str, frozenset[Any]], ...]:
    return tuple(
        (name, frozenset(v if isinstance(v, list) else [v])) for name, v in src.where.items()
    )


def compile_plans(rules: list[MetricRule]) -> dict[str, list[Contribution]]:
    """Per topic, the contributions of its events to every metric."""
    plans: dict[str, list[Contribution]] = {}
    for i, rule in enumerate(rules):
        width = int(rule.window.total_seconds() * 1000)
        pairs = tuple(tuple(sorted(p)) for p in rule.pairs)
        sides = (
            [(rule.numerator, 1), (rule.denominator, 2)] if rule.value == "ratio"
            else [(rule.source, 0)]
        )
        leaf, seller = rule.leaf_dimensions, rule.seller_field
        slots = len(rule.dimensions) + len(pairs) + bool(leaf) + bool(seller)
        cap = min(rule.max_series, LEAF_CAP)
        for src, side in sides:
            assert src is not None  # guaranteed by MetricRule validation
            field = src.field if src.aggregate == "sum" or rule.value in ("sum", "mean") else None
            plans.setdefault(src.topic, []).append(Contribution(
                i, width, field, side, _where(src), tuple(rule.dimensions), pairs,  # type: ignore[arg-type]
                leaf, seller if side < 2 else None, slots, cap, bool(leaf or seller)))
    return plans


# --- compiled feeders -------------------------------------------------------------------------

Feeder = Callable[[int, Mapping[str, Any], int], None]
"""``feed(ts_ms, event, max_ts)``: one validated event of a topic into every metric it feeds;
`max_ts` is the aggregator's largest event time, this event included."""

Admit = Callable[["OpenWindow", int, int, Any], list[float]]
"""``admit(window, metric_index, slot, raw)``: the accumulator for a raw value new in `window`
(the slice key built, `max_series` enforced: a refused slice gets a scratch accumulator)."""


Late = Callable[[str, int], None]
"""``late(topic, metric_index)``: count one late event."""


class OpenWindow:
    """One open window of one metric: its accumulators and, per slot, raw value -> accumulator.

    Slots are the metric's dimensions, then its pairs (raw value: a tuple of two); the global
    slice is `total`, created with the window, as the first event of a window always adds it.
    """

    __slots__ = ("lookups", "slices", "total")

    def __init__(self, slots: int) -> None:
        self.total = [0.0, 0.0]
        self.slices: dict[SliceKey, list[float]] = {(): self.total}
        self.lookups: list[dict[Any, list[float]]] = [{} for _ in range(slots)]


def slot_key(c: Contribution, slot: int, raw: Any) -> SliceKey:
    """The slice key of a (dimension or pair) slot's raw value(s), as `slice_keys` builds it."""
    if slot < len(c.dims):
        return ((c.dims[slot], raw),)
    a, b = c.pairs[slot - len(c.dims)]
    return ((a, raw[0]), (b, raw[1]))


def compile_function(
    label: str, signature: str, lines: list[str], env: dict[str, Any]
) -> Callable[..., Any]:
    """``def {signature}:`` with `lines` as its body, compiled with `env` as its globals (the
    source is in the function's ``__doc__``; `label` names it in profiles and tracebacks)."""
    source = f"def {signature}:\n" + "\n".join(lines or ["    pass"]) + "\n"
    # a template filled with reprs of names and ints: nothing external
    exec(compile(source, f"<{label}>", "exec"), env)
    fn: Callable[..., Any] = env[signature.split("(", 1)[0]]
    fn.__doc__ = f"Generated {label}; its source:\n{source}"
    return fn


AdmitLeaf = Callable[[OpenWindow, Any], list[float]]
"""``leaf(window, raw)``: a leaf beyond its window's cap (one call on the hot path)."""
NewWindow = Callable[[int], OpenWindow]
"""``new(start)``: a metric's window at `start`, its cube slots bound to the window's cube."""


def feeder_env(
    contributions: list[Contribution], windows: list[dict[int, OpenWindow]], admit: Admit,
    late: Late, leaves: Mapping[int, AdmitLeaf], new: Mapping[int, NewWindow],
) -> dict[str, Any]:
    """The globals `feeder_lines` reads: `windows[m]` (window start -> open window) belongs to
    the caller and is updated in place; `new[m]` makes metric m's windows when it keeps a cube,
    `leaves[m]` takes its leaves beyond the cap."""
    env: dict[str, Any] = {"OpenWindow": OpenWindow,
                           "admit": admit, "late": late, "MISSING_DIM": MISSING_DIM}
    for c in contributions:
        env[f"open{c.metric_index}"] = windows[c.metric_index]
        if c.leaf:
            env[f"leaf{c.metric_index}"] = leaves[c.metric_index]
        if c.cube:
            env[f"new{c.metric_index}"] = new[c.metric_index]
        for j, (_name, allowed) in enumerate(c.where):
            env[f"where{c.metric_index}_{c.side}_{j}"] = allowed
    return env


def compile_feeder(
    topic: str,
    contributions: list[Contribution],
    windows: list[dict[int, OpenWindow]],
    lateness_ms: list[int],
    admit: Admit,
    late: Late,
) -> Feeder:
    """One function feeding an event of `topic` into every metric (see the module docstring);
    no cube (aggregate/windows.py `WindowAggregator` keeps them)."""
    assert not any(c.cube for c in contributions), "cubes: WindowAggregator.compile"
    env = feeder_env(contributions, windows, admit, late, {}, {})
    lines = feeder_lines(topic, contributions, lateness_ms)
    return compile_function(f"feeder {topic}", "feed(ts, obj, max_ts)", lines, env)


def feeder_lines(topic: str, contributions: list[Contribution], lateness_ms: list[int]
                 ) -> list[str]:
    """Statements (indented for a function body) feeding the event `obj` at `ts` into every
    metric; `max_ts` is the source's watermark, this event included. The lateness rule and the
    order of updates are those of `slice_keys`: per contribution, its where-filter, then late
    or added to every slice."""
    fields: dict[str, str] = {}  # dimension -> local variable holding str(value)
    for c in contributions:
        for d in [*c.dims, *(d for pair in c.pairs for d in pair), *c.leaf, *c.seller_fields]:
            fields.setdefault(d, f"d{len(fields)}")
    lines = []
    if fields:  # by subscript; when one is missing, all again with the "(none)" default
        lines += ["    try:", *(f"        {var} = obj[{d!r}]" for d, var in fields.items()),
                  "    except KeyError:",
                  *(f"        {var} = obj.get({d!r}, MISSING_DIM)" for d, var in fields.items())]
    for var in fields.values():
        lines += [f"    if type({var}) is not str:", f"        {var} = str({var})"]
    for c in contributions:
        lines += _contribution_lines(topic, c, fields, lateness_ms[c.metric_index])
    return lines


def _contribution_lines(
    topic: str, c: Contribution, fields: dict[str, str], lateness: int
) -> list[str]:
    m, pad = c.metric_index, "    "
    lines = [f"    # metric {m}, side {c.side}"]
    if c.where:
        tests = [f"obj.get({name!r}) in where{m}_{c.side}_{j}"
                 for j, (name, _) in enumerate(c.where)]
        lines.append(f"    if {' and '.join(tests)}:")
        pad += "    "
    lines += [pad + line for line in (
        f"start = ts - ts % {c.width_ms}",
        f"if start + {c.width_ms + lateness} <= max_ts:",
        f"    late({topic!r}, {m})",
        "else:",
        "    try:",
        f"        w = open{m}[start]",
        "    except KeyError:",
        f"        w = open{m}[start] = " + (f"new{m}(start)" if c.cube
                                            else f"OpenWindow({c.slots})"),
    )]
    pad += "    "
    if c.field:
        lines += [pad + f"a = obj[{c.field!r}]", pad + "if type(a) is not float:",
                  pad + "    a = float(a)"]
    add = _increments(c.side, "a" if c.field else "1.0")
    lines += [pad + line.replace("acc", "w.total") for line in add]
    raws = [fields[d] for d in c.dims] + [f"({fields[a]}, {fields[b]})" for a, b in c.pairs]
    cube = []
    if c.leaf:
        cube.append("(" + "".join(f"{fields[d]}, " for d in c.leaf) + ")")
    if c.seller:  # the seller slot follows the leaf: slot numbers as `slot_key` reads them
        cube.append(fields[c.seller])
    if raws or cube:
        n = len(raws) + len(cube)
        # every slot named (a ratio's denominator has no seller: `_`), no starred list
        names = [f"l{k}" if k < n else "_" for k in range(c.slots)]
        lines.append(pad + ", ".join(names) + ", = w.lookups")
    if raws:
        # Accumulators by subscript (no method call); a value new in this window raises
        # KeyError once, and then every slot goes through `admit`, in slot order, before
        # anything is added: same slices, same order, same max_series verdicts.
        slots = range(len(raws))
        lines.append(pad + "try:")
        lines += [pad + f"    s{k} = l{k}[{raws[k]}]" for k in slots]
        lines.append(pad + "except KeyError:")
        lines += [pad + f"    s{k} = l{k}.get({raws[k]}) or admit(w, {m}, {k}, {raws[k]})"
                  for k in slots]
        lines += [pad + line.replace("acc", f"s{k}") for k in slots for line in add]
    for k, raw in enumerate(cube, start=len(raws)):
        # Leaves and sellers miss often (a sparse cube): get, not try; their caps are their
        # own, so their admission order does not matter.
        lines += [pad + f"s{k} = l{k}.get({raw})", pad + f"if s{k} is None:"]
        if c.leaf and k == c.leaf_slot:  # a new leaf costs a list, up to the cap
            lines += [pad + f"    if len(l{k}) < {c.leaf_cap}:",
                      pad + f"        s{k} = l{k}[{raw}] = [0.0, 0.0]",
                      pad + "    else:",
                      pad + f"        s{k} = leaf{m}(w, {raw})"]
        else:
            lines.append(pad + f"    s{k} = admit(w, {m}, {k}, {raw})")
        lines += [pad + line.replace("acc", f"s{k}") for line in add]
    return lines


def _increments(side: int, value: str) -> list[str]:
    """`Contribution.increments` as statements; adding 0.0 is skipped (it changes no sum)."""
    if side == 0:
        return [f"acc[0] += {value}", "acc[1] += 1.0"]
    return [f"acc[0] += {value}"] if side == 1 else [f"acc[1] += {value}"]
