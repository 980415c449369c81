"""Analysts' answers: Slack button presses as control records, and precision per rule.

A press becomes one record of the control topic (alert/silences.py): Acknowledge an `Ack`,
Snooze 1h / 4h / 24h a silence of the episode's metric and slice for that long, Real issue /
False alarm a `Feedback` keyed by the episode (the latest answer wins). `handling_of` is what
the parent message shows about them.

`precision_by_rule` reads the answers back: per metric (one rule per metric), the episodes
raised, how many an analyst judged, how many were real, and the precision real / judged: the
figure governance teams track per strategy. Episodes nobody judged are counted, not guessed.

>>> from stream_guard.sinks.interactivity import AlertAction
>>> press = AlertAction("snooze_4h", "ep-1", "U0ANA", "ana", None, None, at_ms=0, metric="gmv")
>>> snooze = action_to_control(press)
>>> (snooze.metric, snooze.ends_ms // 3_600_000, snooze.episode_id)
('gmv', 4, 'ep-1')
>>> action_to_control(AlertAction("feedback_false_alarm", "ep-1", "U0ANA", None, None, None,
...                               at_ms=5, metric="gmv")).verdict
'false_alarm'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from rich.table import Table

from stream_guard.alert.silences import (
    Ack,
    ControlRecord,
    ControlView,
    Feedback,
    Silence,
    Verdict,
)
from stream_guard.sinks.slack_blocks import Handling

if TYPE_CHECKING:
    from stream_guard.sinks.interactivity import AlertAction

__all__ = ["RulePrecision", "action_to_control", "handling_of", "precision_by_rule",
           "precision_table"]

HOUR_MS = 3_600_000
_SNOOZE = re.compile(r"snooze_([0-9]{1,3})h")
_VERDICT_OF: dict[str, Verdict] = {"feedback_real": "real", "feedback_false_alarm": "false_alarm"}


def action_to_control(action: AlertAction) -> ControlRecord | None:
    """The control record a button press stands for; None when it cannot say what to mute (a
    snooze whose button carried no metric) or the action is unknown."""
    if action.action == "acknowledge":
        return Ack(episode_id=action.episode_id, user_id=action.user_id,
                   user_name=action.user_name, at_ms=action.at_ms)
    if action.action in _VERDICT_OF:
        return Feedback(episode_id=action.episode_id, verdict=_VERDICT_OF[action.action],
                        metric=action.metric, slice=dict(action.slice), user_id=action.user_id,
                        user_name=action.user_name, at_ms=action.at_ms)
    snooze = _SNOOZE.fullmatch(action.action)
    if snooze is None or action.metric is None:
        return None
    hours = int(snooze.group(1))
    return Silence.create(action.metric, action.slice, action.at_ms,
                          action.at_ms + hours * HOUR_MS, reason=f"Snooze {hours}h from Slack",
                          author=action.user_id, episode_id=action.episode_id)


def handling_of(view: ControlView, episode_id: str, now_ms: int) -> Handling | None:
    """What the parent shows about who took the episode: its ack, its active snooze and the
    latest verdict; None when there is nothing to show."""
    ack, snooze = view.acks.get(episode_id), view.snooze_of(episode_id, now_ms)
    feedback = view.feedback.get(episode_id)
    if ack is None and snooze is None and feedback is None:
        return None
    return Handling(
        acked_by=ack.user_id if ack else None,
        acked_at_ms=ack.at_ms if ack else None,
        snoozed_by=snooze.author if snooze else None,
        snoozed_until_ms=snooze.ends_ms if snooze else None,
        judged_by=feedback.user_id if feedback else None,
        verdict=feedback.verdict if feedback else None,
    )


@dataclass(frozen=True)
class RulePrecision:
    """One rule's answers: episodes raised, judged, real, false alarms; precision = real /
    judged (None before any answer)."""

    metric: str
    episodes: int
    judged: int
    real: int
    false_alarm: int

    @property
    def precision(self) -> float | None:
        return self.real / self.judged if self.judged else None

    def to_dict(self) -> dict[str, Any]:
        precision = self.precision
        return {**asdict(self), "precision": None if precision is None else round(precision, 3)}


def precision_by_rule(
    episodes: Mapping[str, str], feedback: Iterable[Feedback]
) -> list[RulePrecision]:
    """Per metric, by name: `episodes` (episode id -> metric) raised in the period and the
    verdicts on them. A verdict on an episode missing from `episodes` (its records are not in
    the input) still counts, under the metric its button carried."""
    raised: dict[str, set[str]] = {}
    for episode, metric in episodes.items():
        raised.setdefault(metric, set()).add(episode)
    verdicts: dict[str, dict[str, str]] = {}
    for f in feedback:
        metric = episodes.get(f.episode_id) or f.metric or "(unknown)"
        verdicts.setdefault(metric, {})[f.episode_id] = f.verdict
    rows = []
    for metric in sorted({*raised, *verdicts}):
        answers = verdicts.get(metric, {})
        real = sum(v == "real" for v in answers.values())
        rows.append(RulePrecision(metric, len(raised.get(metric, set()) | set(answers)),
                                  len(answers), real, len(answers) - real))
    return rows


def precision_table(rows: Sequence[RulePrecision], title: str) -> Table:
    """`feedback report`: one row per rule, precision as a percentage, coverage of answers."""
    table = Table("rule (metric)", "episodes", "judged", "real", "false alarm", "precision",
                  "judged share", title=title)
    for r in rows:
        precision = "-" if r.precision is None else f"{r.precision:.0%}"
        share = f"{r.judged / r.episodes:.0%}" if r.episodes else "-"
        table.add_row(r.metric, str(r.episodes), str(r.judged), str(r.real), str(r.false_alarm),
                      precision, share)
    return table
