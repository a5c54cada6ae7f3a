"""labels-not-connected where no copy can rebuild the loss: the script replayed re-paired."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from nndoctor.capture._replay_child import _Repaired
from nndoctor.capture.replay import ReplayPlan, ReplayResult
from nndoctor.checks.data.pairing_replay import pairing_gain
from nndoctor.engine import Selection, check_script

# A log-likelihood written by hand: no recognised loss, so no copy can be trained here.
SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    x = torch.randn(512, 6)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    {edit}
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(100):
        {loop}
            logits = model(xb)
            loss = {loss}
            opt.zero_grad(); loss.backward(); opt.step()
""")
NLL = "-(logits - logits.logsumexp(1, keepdim=True)).gather(1, yb[:, None]).mean()"
LOADER = "for xb, {target}yb in DataLoader({dataset}, batch_size={batch}, shuffle=True):"
# Batches cut by hand: one shuffled index draws each batch's inputs and labels.
BY_HAND = (
    "perm = torch.randperm(len(x))\n"
    "    for i in range(0, len(x), {batch}):\n"
    "        xb, yb = x[perm[i:i + {batch}]], y[perm[i:i + {batch}]]"
)
# Full-batch: every step feeds the whole arrays the script holds, no rows drawn.
WHOLE = "for xb, yb in [(x, y)]:"


def _check(tmp_path: Path, **parts: str) -> Any:
    fields = {
        "edit": "",
        "target": "",
        "dataset": "TensorDataset(x, y)",
        "loss": NLL,
        "batch": "32",
        "loop": LOADER,
        **parts,
    }
    fields["loop"] = fields["loop"].format(**fields)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(**fields))
    return check_script(str(script), selection=Selection(select=("labels-not-connected",)))


@pytest.mark.fires("labels-not-connected")
@pytest.mark.parametrize("loop", [LOADER, BY_HAND, WHOLE], ids=["loader", "by-hand", "whole"])
def test_labels_shuffled_apart_under_a_custom_loss_are_found_by_replay(
    tmp_path: Path, loop: str
) -> None:
    # By hand, the replay re-pairs what one step cuts from two tensors by the same rows;
    # full-batch, the rows of the held arrays beside the one the model is fed.
    report = _check(tmp_path, edit="y = y[torch.randperm(len(y))]", loop=loop)
    (finding,) = report.by_check("labels-not-connected")
    assert list(finding.reasons) == [4]
    assert finding.evidence["method"].startswith("script replay")
    assert finding.evidence["gain_upper_bound"] < 0.1 * finding.evidence["repaired_level"]


@pytest.mark.silent("labels-not-connected")
@pytest.mark.parametrize("loop", [LOADER, BY_HAND, WHOLE], ids=["loader", "by-hand", "whole"])
def test_real_labels_under_a_custom_loss_follow_their_inputs(tmp_path: Path, loop: str) -> None:
    report = _check(tmp_path, loop=loop)
    result = report.result("labels-not-connected")
    assert report.by_check("labels-not-connected") == []
    assert result.status.value == "passed" and "the labels follow the inputs" in result.detail


def test_replays_that_read_too_few_samples_do_not_call_a_pairing_absent(tmp_path: Path) -> None:
    # Three samples a step: 150 steps read 450, too few for a model that generalises from
    # many samples to show a pairing (a multiple-instance model reads one bag a step), so
    # even labels shuffled apart are left undecided rather than a healthy script accused.
    # (Three samples a step are noisy too: the replays' spread may leave the gain's bounds
    # too wide to rule a pairing out before the count is asked.)
    report = _check(tmp_path, edit="y = y[torch.randperm(len(y))]", batch="3")
    result = report.result("labels-not-connected")
    assert report.by_check("labels-not-connected") == []
    assert result.conclusive is False
    assert (
        "the replay read only 450 samples, fewer than 512" in result.detail
        or "nor ruled out" in result.detail
    ), result.detail


def test_elements_the_loss_does_not_read_are_not_judged(tmp_path: Path) -> None:
    # Sample ids beside the input, unread by an autoencoder's loss: nothing to pair.
    report = _check(
        tmp_path,
        dataset="TensorDataset(x, torch.arange(len(x)) % 7)",
        loss="(logits - xb[:, :2]).pow(2).mean()",
    )
    result = report.result("labels-not-connected")
    assert result.status.value == "skipped" and "does not read them" in result.detail


def test_instance_labels_are_not_judged(tmp_path: Path) -> None:
    # One label per sample (an index): there is no pairing to learn faster than by heart.
    report = _check(
        tmp_path,
        dataset="TensorDataset(x, torch.arange(len(x)))",
        loss=NLL.replace("yb[", "(yb % 2)["),
    )
    result = report.result("labels-not-connected")
    assert result.status.value == "skipped" and "distinct numbers" in result.detail


def test_a_real_pairing_that_runs_higher_than_re_paired_ones_is_no_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replays exchangeable under disconnected labels do not run apart beyond chance; a real
    # pairing clearly higher is a loss learning a pairing does not lower (a policy's
    # objective, as PPO's replay showed), not labels that do not follow their inputs.
    from nndoctor.checks.lab import Lab

    def replays(self: Lab, mode: str, plans: list[dict[str, Any]]) -> list[ReplayResult]:
        def result(level: float, seed: int) -> ReplayResult:
            g = torch.Generator().manual_seed(seed)
            losses = (level + 0.01 * torch.randn(150, generator=g)).tolist()
            return ReplayResult(
                ok=True, losses=losses, paired=True, stored_targets=True, pairs_read=4800
            )

        return [result(2.0 if i == 0 else 1.0, i) for i in range(len(plans))]

    monkeypatch.setattr(Lab, "replays", replays)
    result = _check(tmp_path).result("labels-not-connected")
    assert result.status.value == "passed" and "runs higher than the re-paired" in result.detail


class _Noisy(torch.utils.data.Dataset):
    """(x, noise drawn at each read): no stored pairing."""

    def __init__(self) -> None:
        self.x = torch.arange(10.0)

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], torch.randn(())


class _Recorder:
    def __init__(self) -> None:
        self.result = ReplayResult(ok=False)

    def note_target(self, value: Any) -> None:
        self.result.paired = True


def test_a_repaired_sample_keeps_its_input_and_takes_the_rest_from_its_partner() -> None:
    data = [(torch.tensor(float(i)), i, f"s{i}") for i in range(8)]
    replay = _Recorder()
    swapped = _Repaired(data, seed=1, swap=True, replay=replay)  # type: ignore[arg-type]
    kept = _Repaired(data, seed=1, swap=False, replay=replay)  # type: ignore[arg-type]
    for i in range(8):
        j = swapped.partner[i]
        assert swapped[i] == (data[i][0], j, f"s{j}")
        assert kept[i] == data[i]
    assert sorted(swapped.partner) == list(range(8)) and swapped.partner != list(range(8))
    assert replay.result.paired and replay.result.stored_targets is True
    named = _Repaired(
        [{"input_ids": i, "mask": -i, "labels": 10 + i} for i in range(8)],
        1,
        True,
        _Recorder(),  # type: ignore[arg-type]
    )
    j = named.partner[3]
    assert named[3] == {"input_ids": 3, "mask": -3, "labels": 10 + j}


def test_samples_without_a_label_keep_their_mark_and_labelled_ones_trade_among_themselves() -> None:
    # Semi-supervised data: a quarter labelled, the rest marked NO_LABEL (-1).
    data = [(torch.tensor(float(i)), torch.tensor(i if i % 4 == 0 else -1)) for i in range(64)]
    swapped = _Repaired(data, seed=1, swap=True, replay=_Recorder())  # type: ignore[arg-type]
    moved = 0
    for i in range(64):
        x, y = swapped[i]
        assert x == data[i][0]
        if i % 4:
            assert y == -1  # the mark stays: the loss counts as many samples as before
        else:
            assert y >= 0 and y % 4 == 0  # another labelled sample's label
            moved += int(y != i)
    assert moved >= 12


# Semi-supervised training after Mean Teacher: ten noisy classes, one sample in ten labelled, the others marked
# NO_LABEL, and each batch drawn with a labelled share of its own (a weighted sampler gives
# the labelled samples nine times their share); a loss of the labelled samples summed over
# the batch, with a consistency term beside it.
SEMI_SUPERVISED = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
    torch.manual_seed(0)
    x = torch.randn(2048, 6)
    y = (x @ torch.randn(6, 10) + 2 * torch.randn(2048, 10)).argmax(1)  # ten classes, noisy
    labelled = torch.arange(len(y)) % 10 == 0
    y[~labelled] = -1
    weights = 1.0 + 8.0 * labelled.float()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sampler = WeightedRandomSampler(weights, num_samples=len(y))
    for epoch in range(20):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, sampler=sampler):
            logits = model(xb)
            noisy = model(xb + 0.1 * torch.randn_like(xb))
            consistency = F.mse_loss(logits.softmax(1), noisy.softmax(1).detach())
            loss = F.cross_entropy(logits, yb, ignore_index=-1, reduction="sum") / len(yb) + consistency
            opt.zero_grad(); loss.backward(); opt.step()
""")


@pytest.mark.silent("labels-not-connected")
def test_a_pairing_replay_of_semi_supervised_data_keeps_the_share_of_labelled_samples(
    tmp_path: Path,
) -> None:
    # A re-pairing that handed the NO_LABEL mark to labelled samples would leave fewer labels
    # in each batch and a lower summed loss, which the real pairing would seem not to beat.
    script = tmp_path / "train.py"
    script.write_text(SEMI_SUPERVISED)
    report = check_script(str(script), selection=Selection(select=("labels-not-connected",)))
    result = report.result("labels-not-connected")
    assert report.by_check("labels-not-connected") == []
    assert result.status.value == "passed" and "the labels follow the inputs" in result.detail


def test_elements_drawn_anew_at_each_read_are_told_apart() -> None:
    replay = _Recorder()
    _Repaired(_Noisy(), seed=1, swap=True, replay=replay)[0]  # type: ignore[arg-type]
    assert replay.result.stored_targets is False


def test_the_gain_is_bounded_from_block_means() -> None:
    gen = torch.Generator().manual_seed(0)
    noise = [list((torch.randn(150, generator=gen) * 0.05 + 1.0).tolist()) for _ in range(4)]
    same = pairing_gain(noise[0], noise[1:], blocks=5, alpha=0.01)
    assert same is not None and same.lower < 0 < same.upper and abs(same.level - 1.0) < 0.05
    learned = pairing_gain([v - 0.5 for v in noise[0]], noise[1:], blocks=5, alpha=0.01)
    assert learned is not None and learned.lower > 0.4
    assert pairing_gain(noise[0][:12], noise[1:], blocks=5, alpha=0.01) is None


def test_the_gain_is_bounded_by_the_spread_between_pairings_too() -> None:
    # Each pairing settles at a level of its own (a permutation drawn once); the real one,
    # carrying nothing, lands among them: here above their mean, by less than they differ.
    gen = torch.Generator().manual_seed(0)
    runs = [
        list((torch.randn(150, generator=gen) * 0.002 + level).tolist())
        for level in (6.20, 6.14, 6.17, 6.16)
    ]
    gain = pairing_gain(runs[0], runs[1:], blocks=5, alpha=0.01)
    assert gain is not None and gain.gain < 0 < gain.upper  # not "beyond chance" higher
    assert gain.upper < 0.1 * gain.level  # and still far short of a useful pairing's gain
    # Shown below the others along the runs, a pairing passes on the lower bound alone.
    lower = pairing_gain([v - 0.1 for v in runs[0]], runs[1:], blocks=5, alpha=0.01)
    assert lower is not None and lower.lower > 0


def test_the_replays_read_the_plan_they_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One unchanged replay and pairing_replay_nulls re-paired ones, each its own seed.
    plans: list[ReplayPlan] = []

    def recorded(all_plans: list[ReplayPlan], server: object, parallel: int) -> list[ReplayResult]:
        plans.extend(all_plans)
        return [ReplayResult(True, losses=[0.7] * 150, steps=150) for _ in all_plans]

    monkeypatch.setattr("nndoctor.checks.lab.run_replays", recorded)
    report = _check(tmp_path)
    assert [p.mode for p in plans] == ["pairing"] * 4
    assert [p.overrides.get("pair_seed") for p in plans] == [None, 1, 2, 3]
    assert report.result("labels-not-connected").status.value == "skipped"


class _Lab:
    """What the input-reading test asks of a lab: the model and its first input."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.has_model, self.device = model, True, torch.device("cpu")

    def model_inputs(self, n: int) -> list[tuple[torch.Tensor]]:
        return [(torch.randn(16, 6, generator=torch.Generator().manual_seed(3)),)]

    def fresh_model(self) -> torch.nn.Module:
        return self.model


class _Blind(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.ones_like(x))


def test_a_model_that_does_not_read_its_input_is_told_apart() -> None:
    from types import SimpleNamespace

    from nndoctor.checks.data.pairing_replay import _reads_input
    from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS

    ctx = SimpleNamespace(thresholds=DEFAULT_THRESHOLDS)
    torch.manual_seed(0)
    assert _reads_input(_Lab(torch.nn.Linear(6, 2)), ctx) is True  # type: ignore[arg-type]
    assert _reads_input(_Lab(_Blind()), ctx) is False  # type: ignore[arg-type]


class _Reads:
    """What the replay's hand-cut re-pairing reports to: the draws it reads through."""

    def __init__(self) -> None:
        from nndoctor.capture._replay_child import _RowDraws

        self.draws = _RowDraws()
        self.targets: list[torch.Tensor] = []

    def note_drawn_targets(self, rows: torch.Tensor) -> None:
        self.targets.append(rows)


@pytest.mark.parametrize("seed", [None, 1], ids=["unchanged", "re-paired"])
def test_rows_cut_by_hand_by_one_index_keep_the_input_and_re_pair_the_rest(
    seed: int | None,
) -> None:
    from nndoctor.capture._replay_child import _HandPairs

    reads = _Reads()
    pairs = _HandPairs(seed, reads)  # type: ignore[arg-type]
    x = torch.arange(10.0)[:, None].expand(10, 3).contiguous()
    y = torch.arange(10)
    first, idx = torch.tensor([0, 2, 5]), torch.tensor([3, 1, 4])
    with pairs.installed():
        # A first step: x and y are paired, but data only once they are paired again.
        as_read = [x[first], y[first]]
        pairs.next_step()
        xb, yb, again = x[idx], y[idx], x[idx]
        ids = torch.arange(10) * 2  # a tensor of this step: its own, no data
        mine, theirs = ids[idx], ids.clone()[idx]
    partner = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(as_read[1], y[first])
    assert torch.equal(xb[:, 0], idx.float()) and torch.equal(again, xb)
    assert torch.equal(yb, y[idx] if seed is None else partner[idx])
    assert torch.equal(mine, idx * 2) and torch.equal(theirs, idx * 2)
    assert len(reads.targets) == 1 and torch.equal(reads.targets[0], y[idx])
