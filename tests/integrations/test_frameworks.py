"""nndoctor check on unmodified framework scripts: a Lightning Trainer.fit and a Hugging Face
Trainer (tiny models built from a config, no downloads). Skipped where the package is not
installed (the test extra installs them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import check_script

LIGHTNING_SCRIPT = """
import torch, torch.nn as nn, lightning as L
torch.manual_seed(0)
x = torch.randn(2048, 16)
y = (x[:, 0] + x[:, 1] > 0).long()
class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    def forward(self, x):
        return self.net(x)
    def training_step(self, batch, idx):
        xb, yb = batch
        return nn.functional.cross_entropy(self(xb), yb)
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
trainer = L.Trainer(max_epochs=2, enable_progress_bar=False, logger=False, enable_checkpointing=False,
                    accelerator="cpu", enable_model_summary=False)
trainer.fit(Net(), loader)
"""

HF_SCRIPT = """
import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
torch.manual_seed(0)
V = 100
class Toy(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, V, (n, 16), generator=g)
        self.labels = (self.ids[:, 0] > V // 2).long()
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(16, dtype=torch.long),
                "labels": self.labels[i]}
config = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, num_labels=2)
args = TrainingArguments(output_dir="hf_out", num_train_epochs=1, per_device_train_batch_size=32,
                         learning_rate=1e-3, report_to=[], save_strategy="no", use_cpu=True,
                         disable_tqdm=True)
Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Toy(512, 0)).train()
"""


def _check(tmp_path: Path, name: str, text: str) -> object:
    path = tmp_path / name
    path.write_text(text)
    return check_script(str(path), steps=8, timeout=240)


def test_a_lightning_trainer_fit_is_observed_and_replayed(tmp_path: Path) -> None:
    pytest.importorskip("lightning", reason="lightning is not installed")
    report = _check(tmp_path, "lit.py", LIGHTNING_SCRIPT)
    assert report.run.observed, report.run.error
    assert report.subject["model"] == "Net" and report.subject["replayable"]
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert serious(report) == []


def test_a_hugging_face_trainer_is_observed_and_replayed(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="the Trainer needs accelerate")
    report = _check(tmp_path, "hf.py", HF_SCRIPT)
    assert report.run.observed, report.run.error
    assert report.subject["model"] == "BertForSequenceClassification"
    # Called with keyword arguments alone, computing its loss inside forward: replayable.
    assert report.subject["replayable"]
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert not [c for c in report.checks if c.status == "crashed"]
    assert serious(report) == []
    assert not (tmp_path / "hf_out").exists()
