"""Analysts' answers as backtest labels (`stream-guard backtest --feedback DUMP`).

An episode judged "Real issue" becomes an incident: its metric, slice and direction, from the
start of its first window to the end of its last record. Episodes nobody judged say nothing, so
the replayed episodes that would match no judged episode (the same metric, in the same span,
as `evaluate` matches) are left out of the score instead of counted as false alarms: precision
is over the episodes an analyst could have judged, recall over the real ones.

The dump is one of the alerts and control topics (`stream-guard dump --topic alerts --topic
control`): the control topic holds the answers, the alerts topic the episodes' spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stream_guard.alert.history import EpisodeHistory, file_rows, group_episodes, read_rows
from stream_guard.alert.silences import Feedback
from stream_guard.backtest.evaluate import Incident, evaluate
from stream_guard.types import AlertRecord, epoch_ms, iso_utc

__all__ = ["FeedbackLabels", "judged_only", "labels_from_feedback"]


@dataclass(frozen=True)
class FeedbackLabels:
    """Every judged episode as an incident, the real ones, and answers without records."""

    judged: list[Incident]
    real: list[Incident]
    unmatched: int  # answers about episodes whose records are not in the dump

    def to_json(self) -> dict[str, Any]:
        """labels.json's shape (`--labels` reads it back), the real incidents only."""
        return {"incidents": [{"id": i.id, "metric": i.metric, "slice": i.slice,
                               "direction": i.direction, "start": iso_utc(i.start_ms),
                               "end": iso_utc(i.end_ms), "cause": i.cause,
                               "description": i.description} for i in self.real]}


def _incident(episode: EpisodeHistory, answer: Feedback) -> Incident:
    first = episode.first
    who = answer.user_name or answer.user_id
    return Incident(episode.episode_id, first.metric, dict(first.slice), first.direction,
                    epoch_ms(first.window_start), epoch_ms(episode.last.window_end),
                    "feedback", f"judged {answer.verdict} by {who}")


def labels_from_feedback(paths: Sequence[Path]) -> FeedbackLabels:
    """The answers in `paths` (record dumps), each as an incident of its episode."""
    history = read_rows(file_rows(paths))
    episodes = {e.episode_id: e for e in group_episodes(history)}
    judged = [(_incident(episodes[f.episode_id], f), f.verdict)
              for f in history.feedback.values() if f.episode_id in episodes]
    judged.sort(key=lambda pair: (pair[0].start_ms, pair[0].id))
    return FeedbackLabels([i for i, _ in judged], [i for i, v in judged if v == "real"],
                          len(history.feedback) - len(judged))


def judged_only(
    alerts: Sequence[AlertRecord], judged: list[Incident], windows_ms: dict[str, int]
) -> list[AlertRecord]:
    """The records of the replayed episodes that match a judged episode."""
    matches = evaluate(alerts, judged, windows_ms).matches
    kept = {episode for episodes in matches.values() for episode in episodes}
    return [a for a in alerts if a.episode_id in kept]
