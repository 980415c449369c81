"""Silences and acks: matching, expiry, the control view, the CLI's parsing, Slack buttons."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from stream_guard.alert.silences import Ack, ControlView, Silence
from stream_guard.cli import build_parser
from stream_guard.errors import InvalidEvent
from stream_guard.runtime.notifier import NotifierSettings, action_to_control, handling_of
from stream_guard.sinks.interactivity import AlertAction
from stream_guard.sinks.slack import SlackSettings

H = 3_600_000


def silence(**overrides: Any) -> Silence:
    base = {"metric": "complaint_rate", "slice_": {"region": "EU"}, "starts_ms": 0,
            "ends_ms": H, "reason": "recall", "author": "ana"}
    return Silence.create(**{**base, **overrides})


def test_matching_needs_the_metric_every_label_and_the_time() -> None:
    s = silence()
    assert s.matches("complaint_rate", {"region": "EU", "category": "toys"}, 0)
    assert not s.matches("complaint_rate", {"region": "NA"}, 0)
    assert not s.matches("complaint_rate", {}, 0)  # a global episode is not a slice
    assert not s.matches("complaint_rate", {"region": "EU"}, H)  # ends are exclusive
    assert silence(slice_={}).matches("complaint_rate", {"region": "NA"}, 0)


def test_ids_are_content_derived_and_the_latest_record_wins() -> None:
    assert silence().id == silence().id != silence(reason="other").id
    view = ControlView()
    view.apply(silence().to_record())
    view.apply(silence().expired(10).to_record())
    assert view.silencing("complaint_rate", {"region": "EU"}, 5) != []
    assert view.silencing("complaint_rate", {"region": "EU"}, 10) == []
    assert len(view.silences) == 1


def test_malformed_control_records_are_invalid_events() -> None:
    with pytest.raises(InvalidEvent) as info:
        ControlView().apply({"kind": "silence", "id": "x", "metric": "gmv", "surprise": 1})
    assert info.value.reason == "invalid_control_record"
    with pytest.raises(InvalidEvent):
        ControlView().apply({"kind": "mute-everything"})


def test_buttons_become_an_ack_and_a_one_hour_snooze_shown_on_the_parent() -> None:
    press = AlertAction("acknowledge", "ep-1", "U0ANA", "ana", "C1", "1.0", at_ms=5 * H,
                        metric="gmv", slice={"region": "EU"})
    ack = action_to_control(press)
    assert isinstance(ack, Ack) and ack.id == "ack-ep-1"
    snooze = action_to_control(AlertAction(**{**_fields(press), "action": "snooze_1h"}))
    assert isinstance(snooze, Silence)
    assert (snooze.metric, snooze.slice, snooze.ends_ms - snooze.starts_ms) == (
        "gmv", {"region": "EU"}, H)
    view = ControlView()
    view.apply(ack.to_record())
    view.apply(snooze.to_record())
    shown = handling_of(view, "ep-1", 5 * H + 1)
    assert shown is not None and (shown.acked_by, shown.snoozed_by) == ("U0ANA", "U0ANA")
    assert handling_of(view, "ep-1", 6 * H) is not None  # the ack stays; the snooze ended
    assert handling_of(view, "ep-2", 5 * H) is None
    bare = AlertAction("snooze_1h", "ep-1", "U0ANA", None, None, None, at_ms=0)
    assert action_to_control(bare) is None  # a button without metric cannot say what to mute


def _fields(action: AlertAction) -> dict[str, Any]:
    return {name: getattr(action, name) for name in AlertAction.__slots__}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["silence", "add", "--metric", "gmv", "--slice", "region=EU", "--slice", "tier=new",
          "--for", "2h", "--reason", "deploy"], None),
        (["silence", "add", "--metric", "gmv", "--slice", "region", "--for", "2h",
          "--reason", "x"], "expected K=V"),
        (["silence", "add", "--metric", "gmv", "--for", "soon", "--reason", "x"],
         "not a duration"),
        (["silence", "add", "--metric", "gmv", "--for", "0s", "--reason", "x"], "positive"),
        (["silence", "expire"], "required"),
    ],
)
def test_cli_parsing(argv: list[str], expected: str | None,
                     capsys: pytest.CaptureFixture[str]) -> None:
    if expected is None:
        args = build_parser().parse_args(argv)
        assert args.slice == [("region", "EU"), ("tier", "new")]
        assert args.duration.total_seconds() == 7200
        return
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert expected in capsys.readouterr().err


def test_settings_never_show_the_secrets() -> None:
    slack = SlackSettings(bot_token=SecretStr("xoxb-real-token"),
                          signing_secret=SecretStr("signing-secret"))
    settings = NotifierSettings(slack=slack, routes=None)  # type: ignore[arg-type]
    for text in (repr(settings), str(settings)):
        assert "xoxb-real-token" not in text and "signing-secret" not in text
