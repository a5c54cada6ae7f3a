"""A PyTorch Lightning ``LightningModule`` trained with ``Trainer.fit``: healthy.

In the manner of the Lightning "LitClassifier" examples: a small conv net (two conv
blocks and a linear head) classifies 12x12 grey images into four classes by where a
bright bar lies (top, bottom, left or right, with noise), generated in code and served
by ``DataLoader``s over ``TensorDataset``s (training shuffled, validation not).
``training_step`` returns ``F.cross_entropy`` of the logits, ``validation_step`` logs
the loss and accuracy with ``self.log``; ``configure_optimizers`` returns Adam and a
``StepLR`` in a dict. hyper-parameters saved with ``save_hyperparameters``. The
``Trainer`` runs on CPU with no logger, no checkpoints, no progress bar. ``main()``
with argparse. Prints the validation metrics at the end.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/lightning_classifier.py
    nndoctor check examples/compat/lightning_classifier.py
"""

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.randn(n, 1, 12, 12, generator=g) * 0.5
    offset = torch.randint(0, 3, (n,), generator=g)
    for i in range(n):
        k, o = labels[i].item(), offset[i].item()
        if k == 0:
            images[i, 0, o, :] += 1.5
        elif k == 1:
            images[i, 0, 11 - o, :] += 1.5
        elif k == 2:
            images[i, 0, :, o] += 1.5
        else:
            images[i, 0, :, 11 - o] += 1.5
    return images, labels


class LitClassifier(L.LightningModule):
    def __init__(self, hidden: int = 16, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(hidden, hidden * 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Linear(hidden * 2 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    L.seed_everything(args.seed, verbose=False)

    train = TensorDataset(*make_bars(3000, seed=2 * args.seed))
    val = TensorDataset(*make_bars(500, seed=2 * args.seed + 1))
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val, batch_size=256)

    model = LitClassifier()
    trainer = L.Trainer(max_epochs=args.max_epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_loader, val_loader)
    print({k: round(v.item(), 4) for k, v in trainer.callback_metrics.items()})


if __name__ == "__main__":
    main()
