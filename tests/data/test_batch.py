"""The stream's one batch type: what the DataLoader does with it, and that nothing outside the stream
reads a batch as a dict."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptcli.data.stream.batch import Batch, Collate
from adaptcli.data.stream.evaluation import DamageReport, EvalStream

PACKAGE = Path(__file__).resolve().parents[2] / "adaptcli"
STREAM = PACKAGE / "data" / "stream"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _items(count: int) -> list[tuple[np.ndarray, int, str]]:
    rng = np.random.default_rng(3)
    return [(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8), i % 2, f"k{i}") for i in range(count)]


def test_collate_builds_a_batch_and_to_moves_inputs_and_labels():
    batch = Collate(MEAN, STD, video=False)(_items(3))
    assert isinstance(batch, Batch) and batch.encoded is None and len(batch) == 3
    assert batch.inputs.shape == (3, 3, 8, 8) and batch.labels.tolist() == [0, 1, 0] and batch.keys == ["k0", "k1", "k2"]
    moved = batch.to("cpu")
    assert torch.equal(moved.inputs, batch.inputs) and torch.equal(moved.labels, batch.labels)
    assert moved.keys == batch.keys and moved.damaged == {} and moved.skipped == 0


def test_multi_hot_labels_stay_float_rows():
    items = [(a, np.array([1.0, 0.0, 1.0], dtype=np.float32), k) for a, _, k in _items(2)]
    batch = Collate(MEAN, STD, video=False)(items)
    assert batch.labels.dtype == torch.float32 and batch.labels.shape == (2, 3)


def test_an_eval_stream_yields_batches_and_gathers_the_damage_reported_after_them():
    first = Collate(MEAN, STD, video=False)(_items(2))
    first.damaged = {"a.tar": "truncated member"}
    stream = EvalStream([first, DamageReport({"a.tar": "truncated member", "b.tar": "not a tar file"})])
    got = list(stream)
    assert len(got) == 1 and got[0] is first
    assert stream.damaged == {"a.tar": "truncated member", "b.tar": "not a tar file"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs a CUDA device")
def test_a_dataloader_with_pin_memory_pins_the_batch_through_its_method():
    loader = torch.utils.data.DataLoader(_items(4), batch_size=2, collate_fn=Collate(MEAN, STD, video=False),
                                         pin_memory=True)
    batches = list(loader)
    assert all(isinstance(b, Batch) and b.inputs.is_pinned() and b.labels.is_pinned() for b in batches)
    on_device = batches[0].to("cuda")
    assert on_device.inputs.is_cuda and on_device.labels.is_cuda


def dict_batch_reads(path: Path) -> list[str]:
    """``batch["inputs"]``, ``batch.get(...)``, ``"inputs" in batch`` and ``{"inputs": ..., "labels": ...}``."""
    def batch_like(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and ("batch" in node.id.lower() or node.id == "item")

    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Subscript) and batch_like(node.value) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            found.append(f"{path}:{node.lineno} reads {node.value.id}[{node.slice.value!r}]")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and batch_like(node.func.value):
            found.append(f"{path}:{node.lineno} calls {node.func.value.id}.get")
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) \
                and any(batch_like(c) for c in node.comparators):
            found.append(f"{path}:{node.lineno} looks a key up in a batch")
        elif isinstance(node, ast.Dict) and {"inputs", "labels"} <= {
                k.value for k in node.keys if isinstance(k, ast.Constant)}:
            found.append(f"{path}:{node.lineno} builds a dict batch")
    return found


def test_no_dict_batch_outside_the_stream():
    found = [line for path in sorted(PACKAGE.rglob("*.py")) if STREAM not in path.parents
             for line in dict_batch_reads(path)]
    assert not found, "use adaptcli.data.stream.batch.Batch's fields:\n" + "\n".join(found)


def test_the_dict_batch_check_sees_each_form(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('x = batch["inputs"]\ny = batch.get("damaged")\nz = "inputs" in batch\n'
                       'w = {"inputs": x, "labels": y}\n')
    assert len(dict_batch_reads(planted)) == 4
