"""Calls of a module by its attribute in a script's own code (source_calls)."""

from __future__ import annotations

from pathlib import Path

from nndoctor.capture.source_calls import attribute_calls

LOOP = """
import torch

def evaluate(model, x):
    with torch.no_grad():
        return model.probe(x)

@torch.no_grad()
def predict(model, x):
    return model.aux_head(x)

for step in range(100):
    out = model(x)
    if step % 50 == 49:
        out = out + model.aux_head(x)  # an auxiliary term, every fiftieth step
    # model.forgotten(x) is only a comment
    text = "model.forgotten(x)"
"""


def _write(tmp_path: Path) -> str:
    path = tmp_path / "train.py"
    path.write_text(LOOP)
    return str(path)


def test_a_call_with_gradients_on_is_found_with_its_line(tmp_path: Path) -> None:
    (site,) = attribute_calls([_write(tmp_path)], "aux_head")
    assert site.line == 15 and site.code == "model.aux_head"
    assert site.describe() == "line 15 of train.py calls `model.aux_head`"


def test_calls_under_no_grad_blocks_and_decorators_are_evaluations(tmp_path: Path) -> None:
    assert attribute_calls([_write(tmp_path)], "probe") == []


def test_comments_strings_and_unreadable_files_name_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    paths = [_write(tmp_path), str(broken), str(tmp_path / "missing.py")]
    assert attribute_calls(paths, "forgotten") == []
