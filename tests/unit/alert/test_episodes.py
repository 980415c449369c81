"""Episode timelines: concurrent incidents on one metric are separate episodes, related slices
share one, and each episode has its own `for`, cooldown and resolution."""

from __future__ import annotations

import pickle

from stream_guard.alert.episodes import Anomaly, EpisodeTracker, Update, group_slices
from stream_guard.config.rules import AlertPolicy
from stream_guard.types import Direction, SliceKey

W = 900_000  # one 15-minute window
HOME: SliceKey = (("category", "home"),)
ELECTRONICS: SliceKey = (("category", "electronics"),)
HOME_EU: SliceKey = (("category", "home"), ("region", "EU"))
EU: SliceKey = (("region", "EU"),)


def _tracker(max_open: int = 8, **policy: object) -> EpisodeTracker:
    settings = {"for": 1, "resolve_after": 2, "cooldown": 2, "repeat": "4h", **policy}
    return EpisodeTracker("gmv", "gmv@1", AlertPolicy.model_validate(settings), max_open)


def _down(lead: SliceKey, severity: str = "warning", score: float = 6.0) -> Anomaly:
    return (severity, score, lead, "down")


def _timeline(t: EpisodeTracker, windows: list[list[Anomaly]]) -> list[list[tuple[str, str]]]:
    """(reason, episode slice as text) of every update, window by window."""
    return [[(u.reason, _name(u)) for u in t.observe((i + 1) * W, anomalies)]
            for i, anomalies in enumerate(windows)]


def _name(u: Update) -> str:
    return ",".join(f"{k}={v}" for k, v in u.episode.slice) or "platform"


def test_two_unrelated_slices_are_two_episodes_that_resolve_on_their_own() -> None:
    t = _tracker()
    out = _timeline(t, [
        [_down(HOME)],
        [_down(HOME), _down(ELECTRONICS)],
        [_down(HOME), _down(ELECTRONICS)],
        [_down(ELECTRONICS)],
        [_down(ELECTRONICS)],  # home: 2 windows without anomaly
        [],
        [],
    ])
    assert out == [
        [("new", "category=home")],
        [("new", "category=electronics")],
        [],
        [],
        [("resolved", "category=home")],
        [],
        [("resolved", "category=electronics")],
    ]
    assert t.episodes == [] and set(t.cooldowns) == {ELECTRONICS}


def test_each_episode_has_its_own_fingerprint_sequence_and_severity() -> None:
    t = _tracker()
    home = t.observe(W, [_down(HOME)])[0].episode
    updates = t.observe(2 * W, [_down(HOME, "critical", 9.0), _down(ELECTRONICS)])
    electronics = next(u.episode for u in updates if u.reason == "new")
    assert [(u.reason, u.episode is home) for u in updates] == [("escalated", True),
                                                                ("new", False)]
    assert home.fingerprint != electronics.fingerprint
    assert home.episode_id != electronics.episode_id
    assert (home.severity, home.sequence) == ("critical", 1)  # new is record 0
    assert (electronics.severity, electronics.sequence) == ("warning", 0)


def test_a_descendant_slice_joins_its_ancestors_episode_and_an_ancestor_a_descendants() -> None:
    t = _tracker()
    # a new lead is announced once (slices changed), not every window it leads
    assert _timeline(t, [[_down(HOME)], [_down(HOME_EU)], [_down(HOME_EU)]]) == [
        [("new", "category=home")], [("slices_changed", "category=home")], []]
    assert t.anchors() == [HOME] and t.episodes[0].leads_seen == {HOME, HOME_EU}
    u = _tracker()
    assert _timeline(u, [[_down(HOME_EU)], [_down(HOME)]]) == [
        [("new", "category=home,region=EU")], [("slices_changed", "category=home,region=EU")]]


def test_a_platform_anomaly_opens_its_own_episode_which_then_absorbs_other_slices() -> None:
    t = _tracker()
    out = _timeline(t, [
        [_down(HOME)],
        [_down(HOME), _down(())],  # platform-wide: not hidden under category=home
        [_down(HOME), _down(ELECTRONICS)],  # electronics joins the platform episode
        [_down(ELECTRONICS)],
        [_down(ELECTRONICS)],
    ])
    assert out == [[("new", "category=home")], [("new", "platform")],
                   [("slices_changed", "platform")], [], [("resolved", "category=home")]]
    assert t.anchors() == [()] and t.episodes[0].leads_seen == {(), ELECTRONICS}


def test_beyond_the_cap_anomalies_fold_into_the_platform_episode_and_are_counted() -> None:
    t = _tracker(max_open=2)
    books: SliceKey = (("category", "books"),)
    toys: SliceKey = (("category", "toys"),)
    out = _timeline(t, [[_down(HOME)], [_down(HOME), _down(ELECTRONICS)],
                        [_down(HOME), _down(ELECTRONICS), _down(books), _down(toys)]])
    assert out == [[("new", "category=home")], [("new", "category=electronics")],
                   [("new", "platform")]]
    assert t.folded == 1  # books folded; toys then joined the platform episode it opened
    assert t.anchors() == [HOME, ELECTRONICS, ()]
    assert t.episodes[-1].leads_seen == {books}


def test_cooldown_keeps_a_resolved_family_closed_but_not_an_unrelated_slice() -> None:
    t = _tracker(resolve_after=1, cooldown=2)
    out = _timeline(t, [
        [_down(HOME)],
        [],  # home resolves: home and its descendants cool down for 2 windows
        [_down(HOME_EU), _down(ELECTRONICS)],
        [_down(HOME)],
        [_down(HOME)],
    ])
    assert out == [[("new", "category=home")], [("resolved", "category=home")],
                   [("new", "category=electronics")], [("resolved", "category=electronics")],
                   [("new", "category=home")]]


def test_for_counts_per_candidate_and_an_interruption_resets_it() -> None:
    t = _tracker(**{"for": 2})
    out = _timeline(t, [
        [_down(HOME)],
        [_down(ELECTRONICS)],  # home's count resets, electronics starts
        [_down(HOME), _down(ELECTRONICS)],
        [_down(HOME)],
    ])
    assert out == [[], [], [("new", "category=electronics")], [("new", "category=home")]]


def test_a_firing_episode_emits_nothing_until_it_changes() -> None:
    """Reminders are the notifier's (route repeat_interval), not the engine's: a rule's old
    `repeat` setting is ignored, and 12 unchanged windows emit nothing."""
    t = _tracker(repeat="15m")
    out = _timeline(t, [[_down(HOME)], *[[_down(HOME), _down(ELECTRONICS)]] * 12])
    assert out == [[("new", "category=home")], [("new", "category=electronics")], *[[]] * 11]


def test_the_tracker_survives_a_pickle_round_trip_mid_episode() -> None:
    t = _tracker()
    _timeline(t, [[_down(HOME)], [_down(HOME), _down(ELECTRONICS)]])
    copy = pickle.loads(pickle.dumps(t))
    windows = [[_down(ELECTRONICS)], [_down(ELECTRONICS)], []]
    assert [[(u.reason, u.episode.fingerprint) for u in t.observe((3 + i) * W, w)]
            for i, w in enumerate(windows)] == \
        [[(u.reason, u.episode.fingerprint) for u in copy.observe((3 + i) * W, w)]
         for i, w in enumerate(windows)]


def test_a_window_is_grouped_by_open_episodes_and_concentrated_slices() -> None:
    firing: list[tuple[SliceKey, Direction]] = [
        ((), "down"), (HOME, "down"), (ELECTRONICS, "down"), (EU, "down")]
    # home is open; the change is concentrated in electronics: the platform and region=EU
    # move because electronics does
    assert group_slices(firing, [(ELECTRONICS, "down")], [HOME]) == {
        HOME: [HOME], ELECTRONICS: [(), ELECTRONICS, EU]}
    # nothing stands out: a platform-wide change, which absorbs every other slice
    broad: list[tuple[SliceKey, Direction]] = [((), "down"), (EU, "down")]
    assert group_slices(broad, [], [HOME]) == {(): [(), EU]}
    # a lone slice unrelated to every lead and anchor is an incident of its own; a related one
    # joins the lead's group even when it moved the other way
    firing = [(ELECTRONICS, "up"), (EU, "up"), (HOME_EU, "down")]
    assert group_slices(firing, [(HOME_EU, "down")], []) == {
        HOME_EU: [EU, HOME_EU], ELECTRONICS: [ELECTRONICS]}
    # the platform alone, nothing else moving: the echo of the open incident in the total
    assert group_slices([((), "down")], [], [HOME]) == {HOME: [()]}


def test_a_slice_sharing_orders_with_an_open_episode_joins_it() -> None:
    t = _tracker()
    # region=EU moves when category=home does: the slices cannot tell two incidents apart
    assert _timeline(t, [[_down(HOME)], [_down(EU)], [_down(ELECTRONICS)]]) == [
        [("new", "category=home")], [("slices_changed", "category=home")],
        [("new", "category=electronics")]]
    assert t.episodes[0].leads_seen == {HOME, EU}
