"""From what ``check`` observed to a RunSeries: layers, gaps, markers and experiment curves.

A hand-built Recording pins the arithmetic (a layer's weight and bias combine into one norm,
an unseen loss is a gap, a finding at a step is a marker); one real check of a small
classifier shows the experiments' curves reaching the report, and the JSON carrying them.
"""

from __future__ import annotations

import json
import math

import pytest
from subjects import healthy_classifier

import nndoctor
from nndoctor.probes.recording import ActivationSummary, Recording, StepRecord
from nndoctor.probes.series import build_series, markers_from
from nndoctor.report import json as json_report
from nndoctor.report.model import Finding, Severity, Where
from nndoctor.report.series import Curve, ExperimentCurves


def act(mean: float) -> ActivationSummary:
    return ActivationSummary(mean=mean, std=1.0, zero_frac=0.25, sat_frac=0.0, min=-1, max=1)


def recording() -> Recording:
    rec = Recording(param_names=["0.weight", "0.bias", "2.weight", "frozen.weight"])
    rec.steps = [
        StepRecord(
            step=0,
            loss=2.0,
            loss_seen=True,
            grad_norms={"0.weight": 3.0, "0.bias": 4.0, "2.weight": 1.0},
            weight_norms={"0.weight": 6.0, "0.bias": 8.0, "2.weight": 2.0},
            update_norms={"0.weight": 0.06, "0.bias": 0.08, "2.weight": 0.0},
            activations={"0": act(0.5), "": act(0.1)},
            hyperparameters=[{"lr": 0.1}],
        ),
        StepRecord(
            step=1,
            loss_seen=False,
            grad_norms={"0.weight": 3.0, "0.bias": 4.0},
            activations={"0": act(0.7)},
        ),
    ]
    return rec


def test_parameters_combine_per_layer_and_missing_values_are_gaps() -> None:
    s = build_series(recording())
    assert s.steps == [0, 1]
    assert s.loss[0] == 2.0 and math.isnan(s.loss[1])
    assert s.learning_rate[0] == 0.1 and math.isnan(s.learning_rate[1])
    assert s.grad_norm["0"] == [5.0, 5.0]  # sqrt(3² + 4²): weight and bias together
    assert s.grad_norm["2"][0] == 1.0 and math.isnan(s.grad_norm["2"][1])
    assert "frozen" not in s.grad_norm  # never a gradient: no line at all
    assert s.update_ratio["0"][0] == pytest.approx(0.1 / 10.0)
    assert s.update_ratio["2"][0] == 0.0
    assert s.activation_mean["0"] == [0.5, 0.7]
    assert s.activation_mean[""][0] == 0.1 and math.isnan(s.activation_mean[""][1])
    assert s.activation_zero_frac["0"] == [0.25, 0.25]


def test_findings_at_a_step_become_markers_and_others_do_not() -> None:
    def finding(step: int | None) -> Finding:
        return Finding("c", [1], Severity.WARNING, f"t{step}", "m", "f", where=Where(step=step))

    markers = markers_from([finding(3), finding(None)])
    assert [(m.step, m.check, m.severity, m.label) for m in markers] == [(3, "c", "warning", "t3")]


def test_handed_back_curves_are_kept_in_order() -> None:
    curves = ExperimentCurves("x", "X", "step", "loss", [Curve("a", [0.0], [1.0])])
    assert build_series(recording(), experiments=[curves]).experiments == [curves]


def test_a_real_check_attaches_its_series_and_the_experiments_curves() -> None:
    kw = healthy_classifier()
    report = nndoctor.check(
        kw["model"],
        kw["data"],
        kw["loss_fn"],
        kw["optimizer"],
        steps=6,
        select=["cannot-overfit-tiny-batch", "learning-rate-out-of-range"],
    )
    s = report.series
    assert s is not None and len(s.steps) == 6 and all(math.isfinite(x) for x in s.loss)
    assert s.grad_norm and s.update_ratio and s.activation_std
    by_check = {e.check: e for e in s.experiments}
    lr = by_check["learning-rate-out-of-range"]
    assert lr.log_x and lr.curves[0].x and "your learning rate" in lr.x_marks
    overfit = by_check["cannot-overfit-tiny-batch"]
    labels = [c.label for c in overfit.curves]
    assert "observed training loss" in labels and len(overfit.curves[0].y) > 10
    data = json.loads(json_report.dumps(report))
    assert data["series"]["steps"] == s.steps
    assert {e["check"] for e in data["series"]["experiments"]} == set(by_check)
