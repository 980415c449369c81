"""NAB scorer: hand-computed values of the rules in /work/shared/nab/README.md."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

import pytest

from stream_guard.backtest.nab import (
    REWARD_LOW_FN,
    REWARD_LOW_FP,
    STANDARD,
    ScoredFile,
    assign_folds,
    cross_fold,
    held_out_score,
    probation_length,
    scaled_sigmoid,
    score_at,
    score_corpus,
    window_indices,
)

S_MINUS_1 = 2 / (1 + math.exp(-5)) - 1  # the sigmoid at the window's first row: 0.98661


def test_probation_is_15_percent_capped_at_750_rows() -> None:
    assert probation_length(40) == 6
    assert probation_length(1625) == 243
    assert probation_length(22696) == 750


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(S_MINUS_1)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(0.5) == pytest.approx(2 / (1 + math.exp(2.5)) - 1)
    assert scaled_sigmoid(2.99) == pytest.approx(2 / (1 + math.exp(14.95)) - 1)
    assert scaled_sigmoid(3.0) == -1.0  # NAB's sweeper: ">= 3.0" is well behind the window


def test_window_indices_are_inclusive_rows() -> None:
    t0 = datetime(2014, 4, 1)
    stamps = [t0 + timedelta(minutes=5 * i) for i in range(10)]
    windows = [(stamps[2], stamps[4]), (stamps[7] + timedelta(seconds=1), stamps[9])]
    assert window_indices(stamps, windows) == [(2, 4), (8, 9)]


def test_position_weights_inside_before_and_after_a_window() -> None:
    f = ScoredFile.build("f", [0.0] * 40, [(20, 24)])
    assert f.weight[10] == -1.0  # no window before: a full false positive
    assert f.weight[20] == pytest.approx(S_MINUS_1)  # y = -(24 - 20 + 1) / 5 = -1
    assert f.weight[22] == pytest.approx(scaled_sigmoid(-0.6))
    assert f.weight[26] == pytest.approx(scaled_sigmoid((26 - 24) / (5 - 1)))
    assert list(f.window[19:26]) == [-1, 0, 0, 0, 0, 0, -1]
    assert not f.scored[5] and f.scored[6]


def _file(detections: dict[int, float], n: int = 40) -> ScoredFile:
    scores = [0.0] * n
    for i, s in detections.items():
        scores[i] = s
    return ScoredFile.build("f", scores, [(20, 24)])


def test_best_threshold_and_normalised_scores_by_profile() -> None:
    # Row 22 detects the window (y = -0.6), row 10 is a false positive at a lower score.
    f = _file({22: 0.9, 10: 0.8})
    tp = scaled_sigmoid(-0.6) / S_MINUS_1  # 0.91740
    std = score_corpus([f], STANDARD)
    assert (std.threshold, std.true_positives, std.false_positives) == (0.9, 1, 0)
    assert std.raw == pytest.approx(tp)
    assert std.score == pytest.approx(100 * (tp + 1) / 2)  # 95.87
    low_fn = score_corpus([f], REWARD_LOW_FN)
    assert low_fn.score == pytest.approx(100 * (tp + 2) / 3)


def test_a_false_positive_worth_taking_for_a_window() -> None:
    # The FP (0.9) outranks the TP (0.8): taking the TP costs A_FP but earns A_TP + A_FN.
    f = _file({22: 0.8, 10: 0.9})
    tp = scaled_sigmoid(-0.6) / S_MINUS_1
    assert score_corpus([f], STANDARD).raw == pytest.approx(tp - 0.11)
    assert score_corpus([f], REWARD_LOW_FP).raw == pytest.approx(tp - 0.22)


def test_only_the_earliest_detection_in_a_window_counts_and_later_fps_cost_less() -> None:
    f = _file({21: 0.9, 23: 0.9, 26: 0.9})
    tp = scaled_sigmoid(-0.8) / S_MINUS_1
    fp_after = 0.11 * scaled_sigmoid(0.5)  # negative, smaller than A_FP
    result = score_corpus([f], STANDARD)
    assert result.raw == pytest.approx(tp + fp_after)
    assert result.false_positives == 1


def test_detector_that_only_raises_false_alarms_scores_zero() -> None:
    f = _file({10: 0.9, 30: 0.9})
    result = score_corpus([f], STANDARD)
    assert result.score == pytest.approx(0.0)
    assert math.isinf(result.threshold)


def test_probation_rows_are_ignored() -> None:
    f = ScoredFile.build("f", [1.0 if i < 6 else 0.0 for i in range(40)], [(20, 24)])
    # Rows 0-5 score 1 but are not scored; threshold 0 then fires everywhere after probation.
    result = score_corpus([f], STANDARD)
    fps = 0.11 * sum(f.weight[i] for i in range(6, 40) if f.window[i] < 0)
    assert result.raw == pytest.approx(max(1.0 + fps, -1.0))


def test_one_threshold_for_the_whole_corpus() -> None:
    a = _file({22: 0.9})
    b = _file({22: 0.5, 10: 0.7})
    tp = scaled_sigmoid(-0.6) / S_MINUS_1
    result = score_corpus([a, b], STANDARD)
    # Best: threshold 0.5 (both windows, one FP) = 2 tp - 0.11, vs 0.9 (one window) = tp - 1.
    assert result.threshold == 0.5
    assert result.raw == pytest.approx(2 * tp - 0.11)
    assert result.score == pytest.approx(100 * (2 * tp - 0.11 + 2) / 4)


def test_a_window_inside_the_probation_period_is_not_counted_but_shapes_later_fps() -> None:
    # 40 rows: probation is rows 0-5; window (1, 4) is never scorable, (20, 24) is.
    scores = [0.0] * 40
    scores[7] = 0.9  # 3 rows after the hidden window of width 4: y = 3 / 3 = 1
    f = ScoredFile.build("f", scores, [(1, 4), (20, 24)])
    assert f.n_windows == 1
    assert list(f.window[19:26]) == [-1, 0, 0, 0, 0, 0, -1]
    assert f.weight[7] == pytest.approx(scaled_sigmoid(1.0))
    result = score_corpus([f], STANDARD)  # firing at row 7 only costs; never firing scores 0
    assert (result.raw, result.score) == (-1.0, 0.0)


def test_hand_computed_corpus_of_two_files() -> None:
    # File a (40 rows, window 20-24): detections at rows 21 (0.8) and 30 (0.6).
    # File b (40 rows, windows 10-14 and 30-34): detections at rows 8 (0.7), 14 (0.6).
    # At threshold 0.6: a's TP at y = -(24-21+1)/5 = -0.8, a's FP at y = (30-24)/4 = 1.5,
    # b's FP before any window (-1), b's first window at its last row (y = -0.2), b's second
    # window missed.
    a = ScoredFile.build("a", [0.8 if i == 21 else 0.6 if i == 30 else 0.0 for i in range(40)],
                         [(20, 24)])
    b = ScoredFile.build("b", [0.7 if i == 8 else 0.6 if i == 14 else 0.0 for i in range(40)],
                         [(10, 14), (30, 34)])
    s = lambda y: 2 / (1 + math.exp(5 * y)) - 1  # noqa: E731
    raw_06 = s(-0.8) / S_MINUS_1 + 0.11 * s(1.5) - 0.11 + s(-0.2) / S_MINUS_1 - 1.0
    raw_08 = s(-0.8) / S_MINUS_1 - 2.0  # only a's TP; b's two windows missed
    raw_07 = raw_08 - 0.11
    assert raw_06 > raw_08 > raw_07
    result = score_corpus([a, b], STANDARD)
    assert result.threshold == 0.6
    # By hand: 0.9771 - 0.1099 - 0.11 + 0.4684 - 1 = 0.2256.
    assert result.raw == pytest.approx(0.22562, abs=1e-5)
    assert result.score == pytest.approx(100 * (raw_06 + 3) / 6)
    assert (result.true_positives, result.false_positives) == (2, 2)


def _category(name: str) -> str:
    return name.split("/", 1)[0]


def test_folds_are_stratified_by_category_and_dealt_in_hash_order() -> None:
    names = [f"c{c}/f{i}.csv" for c, n in enumerate([5, 6, 1]) for i in range(n)]
    folds = assign_folds(names, _category)
    for c, n in enumerate([5, 6, 1]):
        members = sorted((m for m in names if m.startswith(f"c{c}/")),
                         key=lambda m: hashlib.sha256(m.encode()).hexdigest())
        assert [folds[m] for m in members] == ["A", "B"] * (n // 2) + ["A"] * (n % 2)


def test_folds_ignore_input_order_and_other_categories() -> None:
    names = [f"c/f{i}.csv" for i in range(7)]
    folds = assign_folds(names, _category)
    assert assign_folds(reversed(names), _category) == folds
    more = assign_folds([*names, "d/x.csv", "d/y.csv", "e/z.csv"], _category)
    assert {n: more[n] for n in names} == folds  # a new category moves no file


def _one_window(name: str, detections: dict[int, float]) -> ScoredFile:
    scores = [0.0] * 40
    for i, v in detections.items():
        scores[i] = v
    return ScoredFile.build(name, scores, [(20, 24)])


def test_score_at_a_fixed_threshold_matches_the_corpus_sweep_at_its_own_threshold() -> None:
    files = [_one_window("a", {22: 0.9, 10: 0.8}), _one_window("b", {21: 0.5, 30: 0.7})]
    best = score_corpus(files, STANDARD)
    assert score_at(files, best.threshold, STANDARD) == pytest.approx(best.score)
    assert score_at(files, math.inf, STANDARD) == 0.0  # never firing
    assert score_at([ScoredFile.build("n", [0.9] * 40, [])], 0.5, STANDARD) == 0.0  # no window


def test_cross_fold_chooses_on_one_fold_and_scores_the_other() -> None:
    # Fold A's file is detected at 0.9 (a false alarm at 0.5), fold B's at 0.5 only.
    a = _one_window("a", {22: 0.9, 10: 0.5})
    b = _one_window("b", {22: 0.5})
    tp = scaled_sigmoid(-0.6) / S_MINUS_1
    a_to_b, b_to_a = cross_fold([a, b], {"a": "A", "b": "B"}, STANDARD)
    assert (a_to_b.chosen_on, a_to_b.scored_on, a_to_b.threshold) == ("A", "B", 0.9)
    assert a_to_b.in_sample == pytest.approx(100 * (tp + 1) / 2)
    assert a_to_b.score == 0.0  # B never reaches 0.9: its window is missed
    assert (b_to_a.chosen_on, b_to_a.scored_on, b_to_a.threshold) == ("B", "A", 0.5)
    assert b_to_a.score == pytest.approx(100 * (tp - 0.11 + 1) / 2)  # A fires its FP too
    # Pooled, each file at the other fold's threshold: the two-group held-out score.
    pooled = held_out_score([a, b], STANDARD, {"a": "A", "b": "B"}.__getitem__)
    assert pooled == pytest.approx(100 * (tp - 0.11 - 1 + 2) / 4)
