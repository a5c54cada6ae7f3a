"""Next-token labels shifted twice (reason 3): once where the batch is built, once more in
a Hugging Face style model that shifts its labels inside ``forward``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

CHECK = "targets-shifted-twice"

# A causal LM called with keywords, computing its loss inside forward from shifted labels;
# sentences of several lengths padded, with -100 on the padding of the labels.
CAUSAL_LM = """
import torch
from torch import nn
torch.manual_seed(0)
V, L, PAD = 24, 14, 0
lengths = torch.randint(8, L + 1, (512,))
tokens = torch.randint(1, V, (512, L))
tokens[torch.arange(L)[None, :] >= lengths[:, None]] = PAD

class CausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.rnn = nn.GRU(32, 32, batch_first=True)
        self.head = nn.Linear(32, V)

    def forward(self, input_ids, labels=None):
        logits = self.head(self.rnn(self.emb(input_ids))[0])
        shift_logits = logits[:, :-1].reshape(-1, V)
        shift_labels = labels[:, 1:].reshape(-1)
        return nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100)

def collate(ids):
    labels = {labels}
    return {{"input_ids": ids, "labels": labels.masked_fill(labels == PAD, -100)}}

model = CausalLM()
opt = torch.optim.AdamW(model.parameters(), 1e-3)
for step in range(30):
    batch = collate(tokens[torch.randint(0, 512, (16,))])
    loss = model(**batch)
    opt.zero_grad(); loss.backward(); opt.step()
"""


def _check(tmp_path: Path, labels: str) -> Report:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(CAUSAL_LM.format(labels=labels)))
    return check_script(str(path), steps=10, phase_steps=0, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("targets-shifted-twice")
def test_labels_shifted_in_the_collate_and_again_in_forward(tmp_path: Path) -> None:
    report = _check(tmp_path, "ids.roll(-1, dims=1)")
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [3, 4] and finding.severity == "warning"
    assert finding.evidence["min_two_positions_share"] >= 0.9
    assert finding.evidence["max_next_position_share"] < 0.5


@pytest.mark.silent("targets-shifted-twice")
def test_labels_equal_to_the_input_ids_are_shifted_once(tmp_path: Path) -> None:
    report = _check(tmp_path, "ids.clone()")
    assert report.by_check(CHECK) == []
    assert report.result(CHECK).status == "passed"
