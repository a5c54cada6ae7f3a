"""Sequence classification with an LSTM: a healthy training script.

Trains ``SequenceClassifier`` (a custom ``nn.Module``: a one-layer ``nn.LSTM`` whose
last hidden state feeds a linear head) to tell whether a random walk of 20 steps
(three features per step; the first is the walk's increment) ends above zero. The
task is learnable but slow to show at first: within nndoctor's short experiments the
real labels are learned faster than shuffled ones, not yet to a low loss.
``DataLoader`` over a ``TensorDataset`` with shuffling, an ``nn.CrossEntropyLoss``
module, Adam, a top-level training loop.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_lstm.py
    nndoctor check examples/healthy_lstm.py
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
torch.manual_seed(seed)

n, steps = 4096, 20
walks = torch.randn(n, steps, 3)
labels = (walks[:, :, 0].sum(dim=1) > 0).long()


class SequenceClassifier(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x)  # h: (1, N, hidden), the last hidden state
        return self.head(h[-1])


model = SequenceClassifier()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(walks, labels), batch_size=64, shuffle=True)

for epoch in range(20):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: last loss {loss.item():.4f}")
