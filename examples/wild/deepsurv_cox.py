"""DeepSurv: a Cox proportional-hazards MLP on censored survival data: healthy.

In the manner of DeepSurv and of pycox's ``CoxPH`` loss written out in plain PyTorch: a
generated cohort of 6,000 patients with ten covariates on their natural scales (age in
years, sex, body-mass index, systolic blood pressure in mmHg, a log-normal lab value and
five standardised marker scores). The log-hazard is a nonlinear function of them (a
Gaussian bump over two markers as in the DeepSurv simulation, an interaction of sex and
high blood pressure, a product of two markers, linear age and lab effects); event times
are exponential with that hazard and independent exponential censoring hides about 40%
of the events. The cohort is split 70/15/15, the covariates standardised with the
training split's statistics. ``DeepSurv`` is a ``Linear``/``SELU``/``AlphaDropout``
MLP ending in a bias-free ``Linear`` to one log-risk. ``cox_ph_loss`` is the negative
Cox partial log-likelihood: the batch is sorted by descending duration so that a
running ``torch.logcumsumexp`` over the log-risks gives the log of each risk set's sum,
and the loss averages ``log_risk - log_risk_set`` over the events. Adam with weight
decay over a shuffled ``DataLoader``, ``StepLR``; validation under ``torch.no_grad()``
with ``model.eval()`` by Harrell's concordance index, the best epoch's weights kept.
A ``main()`` with argparse; prints per epoch the training loss and the validation
C-index, and at the end the test C-index next to that of the true log-hazard.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/deepsurv_cox.py
    nndoctor check examples/wild/deepsurv_cox.py
"""

import argparse
import copy

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def make_cohort(n, rng):
    age = rng.normal(62, 10, n)
    sex = rng.integers(0, 2, n).astype(float)
    bmi = rng.normal(27, 4.5, n)
    sbp = rng.normal(132, 18, n)
    lab = rng.lognormal(1.0, 0.5, n)
    markers = rng.standard_normal((n, 5))

    log_hazard = (
        2.0 * np.exp(-(markers[:, 0] ** 2 + markers[:, 1] ** 2) / 2.0)
        + 0.9 * sex * (sbp > 140)
        + 0.8 * np.tanh(markers[:, 2] * markers[:, 3])
        + 0.04 * (age - 62)
        + 0.25 * (lab - 3.0)
        - 0.03 * (bmi - 27) ** 2 / 4
    )
    event_time = rng.exponential(1.0 / (0.05 * np.exp(log_hazard)))
    censor_time = rng.exponential(np.median(event_time) * 1.6, n)
    duration = np.minimum(event_time, censor_time)
    event = (event_time <= censor_time).astype(np.float32)

    x = np.column_stack([age, sex, bmi, sbp, lab, markers]).astype(np.float32)
    return x, duration.astype(np.float32), event, log_hazard.astype(np.float32)


def concordance_index(risk, duration, event):
    """Harrell's C: among comparable pairs (i had the event before j's time), the share
    in which i has the higher predicted risk; ties in risk count one half."""
    earlier = (duration[:, None] < duration[None, :]) & (event[:, None] > 0)
    diff = risk[:, None] - risk[None, :]
    concordant = (diff > 0).float() + 0.5 * (diff == 0).float()
    return (concordant * earlier).sum().item() / earlier.sum().item()


def cox_ph_loss(log_risk, duration, event, eps=1e-7):
    idx = torch.argsort(duration, descending=True)
    log_risk = log_risk[idx]
    event = event[idx]
    log_risk_set = torch.logcumsumexp(log_risk, dim=0)
    return -(log_risk - log_risk_set).mul(event).sum() / (event.sum() + eps)


class DeepSurv(nn.Module):
    def __init__(self, n_in, hidden=(64, 64), dropout=0.1):
        super().__init__()
        layers, width = [], n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SELU(), nn.AlphaDropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)  # log-risk


def main():
    parser = argparse.ArgumentParser(description="DeepSurv on a generated cohort")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x, duration, event, true_log_hazard = make_cohort(args.n, rng)
    n_train, n_val = int(0.7 * args.n), int(0.15 * args.n)
    splits = {
        "train": slice(0, n_train),
        "val": slice(n_train, n_train + n_val),
        "test": slice(n_train + n_val, None),
    }
    mean, std = x[splits["train"]].mean(axis=0), x[splits["train"]].std(axis=0)
    x = (x - mean) / std
    data = {
        name: tuple(torch.from_numpy(a[s]) for a in (x, duration, event, true_log_hazard))
        for name, s in splits.items()
    }
    print(
        f"{n_train} training patients, {data['train'][2].mean().item():.0%} with an event, "
        f"median follow-up {np.median(duration):.1f}"
    )

    loader = DataLoader(TensorDataset(*data["train"][:3]), batch_size=args.batch_size, shuffle=True)
    model = DeepSurv(x.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=15, gamma=0.5)

    best_c, best_state = 0.0, None
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for xb, tb, eb in loader:
            loss = cox_ph_loss(model(xb), tb, eb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        scheduler.step()

        model.eval()
        with torch.no_grad():
            xv, tv, ev, _ = data["val"]
            c_val = concordance_index(model(xv), tv, ev)
        if c_val > best_c:
            best_c, best_state = c_val, copy.deepcopy(model.state_dict())
        if epoch % 5 == 0 or epoch == 1:
            print(f"epoch {epoch:3d}: train loss {total / batches:.4f}, val C-index {c_val:.4f}")

    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        xt, tt, et, ht = data["test"]
        c_test = concordance_index(model(xt), tt, et)
        c_true = concordance_index(ht, tt, et)
    print(f"test C-index {c_test:.4f} (true log-hazard {c_true:.4f}, random 0.5)")


if __name__ == "__main__":
    main()
