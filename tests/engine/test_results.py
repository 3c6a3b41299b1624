"""Typed results read the files earlier versions wrote, and write them back with the same keys."""

from __future__ import annotations

import json

import pytest

from adaptcli.runs.checkpoint import TrainState
from adaptcli.runs.results import EvalResult, TrainSummary, headline_metric

#: summary.json as trainer._summary wrote it before the typed results (keys and order verbatim).
OLD_SUMMARY = {
    "method": "arc", "backbone": "test_vit", "data": "/data/shards/dtd", "epochs": 3, "steps": 12,
    "final_loss": 0.8125, "task": "single-label", "metric": "top1", "best_epoch": 2, "best_val_top1": 66.25,
    "selected": "best on validation", "train_seconds": 4.2, "samples_per_second": 91.43, "seconds_per_step": 0.03125,
    "peak_memory_mb": 812.5, "peak_memory_kind": "cpu_peak_rss", "feature_cache": False,
    "damaged_shards": {"train-000001.tar": "truncated tar"}, "skipped_samples": 2, "processes": 1,
    "precision": "no", "compiled": False, "effective_lr": 0.001, "backbone_params": 85798656,
    "method_params": 110592, "head_params": 1010, "trainable_params": 111602, "trainable_percent": 0.1301,
    "mergeable": True,
}


def test_an_old_summary_json_reads_and_writes_back_with_the_same_keys(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(OLD_SUMMARY, indent=2))
    summary = TrainSummary.read(path)
    assert summary.metric == "top1" and summary.best_val == 66.25 and summary.best_epoch == 2
    assert summary.trainable_params == 111602 and summary.damaged_shards == {"train-000001.tar": "truncated tar"}
    written = summary.to_dict()
    assert list(written) == list(OLD_SUMMARY)  # the same keys, in the same order
    assert written == OLD_SUMMARY


def test_a_multi_label_summary_keeps_its_map_key():
    old = {**OLD_SUMMARY, "task": "multi-label", "metric": "mAP", "best_val_mAP": 41.5}
    del old["best_val_top1"]
    old = {k: old[k] for k in [*list(OLD_SUMMARY)[:9], "best_val_mAP", *list(OLD_SUMMARY)[10:]]}
    summary = TrainSummary.from_dict(old)
    assert summary.metric == "mAP" and summary.best_val == 41.5
    assert summary.to_dict() == old and list(summary.to_dict()) == list(old)


def test_a_summary_without_the_later_keys_still_reads():
    """Runs written before task/metric/memory were recorded: top-1, the missing values None."""
    older = {k: v for k, v in OLD_SUMMARY.items()
             if k not in ("task", "metric", "seconds_per_step", "peak_memory_mb", "peak_memory_kind", "compiled")}
    summary = TrainSummary.from_dict(older)
    assert summary.metric == "top1" and summary.best_val == 66.25
    assert summary.peak_memory_mb is None and summary.compiled is None


def test_last_epoch_selection_is_said_when_nothing_was_validated():
    summary = TrainSummary.from_dict({**OLD_SUMMARY, "best_epoch": None, "best_val_top1": None})
    assert summary.to_dict()["selected"] == "last epoch (no validation split)"


@pytest.mark.parametrize("multi_label, metric", [(False, "top1"), (True, "mAP")])
def test_one_headline_rule(multi_label, metric):
    assert headline_metric(multi_label) == metric


def test_eval_result_round_trips_and_has_a_headline():
    single = {"task": "single-label", "samples": 18, "top1": 61.1, "top5": 100.0, "mean_class_acc": 60.0,
              "per_class": {"a": 50.0, "b": None}, "split": "test", "views": "1x1", "data": "/d", "method": "arc",
              "backbone": "test_vit", "run": "/runs/r"}
    result = EvalResult.from_dict(single)
    assert result.headline == 61.1 and result.metric == "top1"
    assert result.to_dict() == single and list(result.to_dict()) == list(single)
    multi = {"task": "multi-label", "samples": 9, "mAP": 42.0, "classes_evaluated": 3, "classes_without_positives": 1,
             "excluded_classes": ["c"], "per_class_ap": {"a": 40.0, "b": 44.0, "c": None}, "split": "validation",
             "views": "1x1", "missing_samples": 0, "damaged_shards": {}}
    result = EvalResult.from_dict(multi)
    assert result.headline == 42.0 and result.metric == "mAP"
    assert result.to_dict() == multi


def test_train_state_reads_the_old_best_top1_key():
    """A run checkpointed before the rename resumes: state.json had ``best_top1`` (also holding mAP)."""
    old = {"epoch": 2, "step": 8, "best_epoch": 1, "best_top1": 57.5, "history": [], "batch": 0,
           "loss_sum": 0.0, "loss_count": 0}
    state = TrainState.from_dict(old)
    assert state.best_value == 57.5 and state.best_epoch == 1 and state.epoch == 2
    assert state.train_seconds == 0.0  # written before it carried the train time: the resume counts from 0
    assert "best_top1" not in state.to_dict() and state.to_dict()["best_value"] == 57.5
    assert not state.improves(50.0) and state.improves(60.0) and state.best_epoch == 2
