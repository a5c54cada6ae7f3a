"""The watch callbacks for Lightning and the Hugging Face Trainer, on tiny offline runs with the
real packages (skipped, with the reason, where they are not installed)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.nn.modules import module as module_mod


def _hooks() -> tuple[int, int, int, object]:
    return (
        len(module_mod._global_forward_hooks),
        len(optim_mod._global_optimizer_pre_hooks),
        len(optim_mod._global_optimizer_post_hooks),
        torch.Tensor.backward,
    )


def _lightning_fit(lr: float, epochs: int = 2) -> object:
    L = pytest.importorskip("lightning", reason="lightning is not installed")
    from nndoctor.integrations.lightning import NNDoctorCallback

    torch.manual_seed(0)
    x = torch.randn(1024, 16)
    y = (x[:, 0] + x[:, 1] > 0).long()

    class Net(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> torch.Tensor:
            xb, yb = batch
            return nn.functional.cross_entropy(self(xb), yb)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True
    )
    doctor = NNDoctorCallback(every=1, quiet=True)
    trainer = L.Trainer(
        max_epochs=epochs,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        accelerator="cpu",
        enable_model_summary=False,
        callbacks=[doctor],
    )
    trainer.fit(Net(), loader)
    return doctor


def test_lightning_callback_watches_the_whole_fit() -> None:
    before = _hooks()
    doctor = _lightning_fit(lr=0.05)
    report = doctor.report
    assert report is not None and report.steps_seen == 32  # 2 epochs of 16 batches
    assert report.steps_sampled == 32
    assert [f.check for f in report.alerts if f.severity.value != "info"] == []
    assert "net.1" in report.series.activation_zero_frac
    assert _hooks() == before


def test_lightning_callback_flags_a_diverging_fit() -> None:
    doctor = _lightning_fit(lr=200.0)
    errors = doctor.report.errors()
    assert errors and set(errors[0].reasons) & {36, 37}


def test_hugging_face_callback_watches_the_whole_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="the Trainer needs accelerate")
    from torch.utils.data import Dataset

    from nndoctor.integrations.hf import NNDoctorCallback

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    V = 100

    class Toy(Dataset):
        def __init__(self, n: int) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids = torch.randint(5, V, (n, 16), generator=g)
            self.labels = (self.ids[:, 0] > V // 2).long()

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {
                "input_ids": self.ids[i],
                "attention_mask": torch.ones(16, dtype=torch.long),
                "labels": self.labels[i],
            }

    config = transformers.BertConfig(
        vocab_size=V,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=1,
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    before = _hooks()
    doctor = NNDoctorCallback(every=2, quiet=True)
    model = transformers.BertForSequenceClassification(config)
    transformers.Trainer(model=model, args=args, train_dataset=Toy(256), callbacks=[doctor]).train()
    report = doctor.report
    assert report is not None and report.steps_seen == 8  # 256 / 32
    assert report.steps_sampled == 4
    assert [f.check for f in report.alerts if f.severity.value != "info"] == []
    assert not report.by_check("watch-phase")  # accelerate's optimizer wrapper is the same phase
    assert all(v > 0 for v in report.series.loss)
    assert _hooks() == before


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("nndoctor.integrations.lightning", ("lightning", "pytorch_lightning"), "lightning"),
        ("nndoctor.integrations.hf", ("transformers",), "hf"),
    ],
)
def test_importing_a_callback_without_its_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, hidden: tuple[str, ...], extra: str
) -> None:
    for name in hidden:
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    for name in [m for m in sys.modules if m == module or m.startswith(hidden[0] + ".")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=rf"nndoctor\[{extra}\]"):
        importlib.import_module(module)
