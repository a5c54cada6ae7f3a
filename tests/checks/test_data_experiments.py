"""Experiments on the data: random inputs, shuffled labels, learnability, label noise."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from torch import nn

from nndoctor.checks.data.experiments import CrossFit
from nndoctor.checks.thresholds import Thresholds
from nndoctor.report.model import Report

SELECT = ["model-ignores-input", "labels-not-connected", "nothing-generalizes", "label-noise"]
# Without the script's own run as evidence: the copies' experiments decide alone.
NO_RUN_EVIDENCE = Thresholds(pairing_run_min_steps=10**6)


@pytest.mark.silent("model-ignores-input")
@pytest.mark.silent("labels-not-connected")
@pytest.mark.silent("nothing-generalizes")
@pytest.mark.silent("label-noise")
def test_a_healthy_classifier_passes_every_data_experiment() -> None:
    report = run(select=SELECT, **healthy_classifier())
    assert report.findings == []
    assert all(report.result(c).status.value == "passed" for c in SELECT)


class IgnoresInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.detach() * 0)  # the bug


@pytest.mark.fires("model-ignores-input")
def test_a_model_that_zeroes_its_input_is_caught() -> None:
    model = IgnoresInput()
    report = run(
        select=["model-ignores-input"],
        model=model,
        data=batches(*blobs()),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("model-ignores-input")
    assert finding.reasons == [2] and finding.severity.value == "error"
    assert finding.evidence["max_relative_gap"] < 1e-4


@pytest.mark.fires("labels-not-connected")
def test_inputs_and_labels_shuffled_independently() -> None:
    x, y = blobs(n=512)
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]  # the bug
    model = mlp()
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4]
    assert (
        finding.evidence["binomial_p"] >= 0.01
    )  # held-out accuracy no better than the majority label


@pytest.mark.silent("model-ignores-input")
def test_a_model_that_reads_inputs_unrelated_to_its_labels_is_not_said_to_ignore_them() -> None:
    # The inputs are shuffled apart from the labels: noise trains as well as the real inputs,
    # but the model does read its input. That is the pairing (reason 4), not reason 2.
    x, y = blobs(n=512)
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(3))]
    model = mlp()
    report = run(
        select=["model-ignores-input", "labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("model-ignores-input") == []
    assert report.result("model-ignores-input").status.value == "passed"
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4]


@pytest.mark.silent("labels-not-connected")
def test_a_slow_learner_on_connected_labels_passes_on_held_out_accuracy() -> None:
    # SGD at a small rate: the training loss hardly moves in the experiment's budget, yet
    # held-out predictions already beat the most frequent label.
    x, y = blobs(n=512)
    model = mlp()
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.02),
        thresholds=NO_RUN_EVIDENCE,
    )
    assert report.by_check("labels-not-connected") == []
    assert "binomial p=" in report.result("labels-not-connected").detail


def test_the_binomial_tail_is_exact_on_small_cases() -> None:
    import math

    from nndoctor.checks.significance import binomial_tail

    assert math.isclose(binomial_tail(3, 2, 0.5), 0.5)  # P(X>=2) = (3 + 1) / 8
    assert math.isclose(binomial_tail(10, 0, 0.3), 1.0)
    assert math.isclose(binomial_tail(4, 4, 0.5), 1 / 16)
    assert binomial_tail(64, 40, 1 / 3) < 1e-5


@pytest.mark.fires("nothing-generalizes")
def test_random_labels_are_memorised_but_do_not_generalise() -> None:
    x, _ = blobs(n=512)
    y = torch.randint(0, 3, (512,), generator=torch.Generator().manual_seed(5))
    model = mlp(hidden=128)
    report = run(
        select=["nothing-generalizes"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("nothing-generalizes")
    assert finding.reasons == [5] and finding.severity.value == "info"
    assert serious(report) == []


@pytest.mark.fires("label-noise")
def test_a_third_of_flipped_labels_is_reported_as_label_noise() -> None:
    x, y = blobs(n=512)
    flip = torch.rand(512, generator=torch.Generator().manual_seed(7)) < 0.3
    y = torch.where(flip, (y + 1) % 3, y)  # the bug: 30% wrong labels
    model = mlp()
    report = run(
        select=["label-noise"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("label-noise")
    assert finding.reasons == [6] and finding.evidence["share"] >= 0.15
    assert (
        finding.severity.value == "warning"
        and finding.evidence["accuracy_not_contradicted"] >= 0.95
    )
    assert finding.evidence["flagged_samples"]


@pytest.mark.silent("label-noise")
def test_a_weak_copys_confident_mistakes_on_clean_labels_are_no_warning() -> None:
    # Clean labels on overlapping classes in 40 dimensions: a copy trained on a few batches
    # is often wrong and sure of it, which says nothing about the labels.
    g = torch.Generator().manual_seed(5)
    centers = torch.randn(3, 40, generator=g) * 0.3
    y = torch.randint(0, 3, (512,), generator=g)
    x = centers[y] + torch.randn(512, 40, generator=g)
    model = mlp(features=40)
    report = run(
        select=["label-noise"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.result("label-noise").status.value == "passed"
    (note,) = report.by_check("label-noise")  # the confident mistakes are listed to look at ...
    assert note.evidence["share"] >= 0.15
    assert note.severity.value == "info"  # ... but are no warning


def test_clean_labels_under_a_far_too_high_rate_are_not_called_noise() -> None:
    # Adam at 0.5: the cross-fit copies are unstable and confidently wrong about clean labels.
    x, y = blobs(n=512)
    model = mlp()
    report = run(
        select=["label-noise"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.5),
    )
    assert report.by_check("label-noise") == []
    assert "unstable" in report.result("label-noise").detail


@pytest.mark.silent("labels-not-connected")
def test_a_model_that_learns_nothing_says_nothing_about_the_labels() -> None:
    # Every ReLU dead from the start: neither pairing is learned, and that is no label bug.
    x, y = blobs(n=512)
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("labels-not-connected") == []
    assert "inconclusive" in report.result("labels-not-connected").detail


class TokenNet(nn.Module):
    """Token ids → embedding → linear; with ``ignore`` the embedding is multiplied by zero."""

    def __init__(self, ignore: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 8)
        self.fc = nn.Linear(48, 3)
        self.ignore = ignore

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)
        return self.fc((h * 0 if self.ignore else h).flatten(1))


def _tokens(ignore: bool) -> object:
    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (256, 6))
    model = TokenNet(ignore)
    return run(
        select=["model-ignores-input"],
        model=model,
        data=batches(tokens, tokens[:, 0] % 3),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )


@pytest.mark.silent("model-ignores-input")
def test_token_ids_are_replaced_by_random_ids_not_kept() -> None:
    # Integer inputs used to be left as they were, so the "noise" run was the real run.
    report = _tokens(ignore=False)
    assert report.by_check("model-ignores-input") == []


@pytest.mark.fires("model-ignores-input")
def test_a_token_model_that_zeroes_its_embedding_ignores_its_input() -> None:
    (finding,) = _tokens(ignore=True).by_check("model-ignores-input")
    assert finding.reasons == [2] and finding.severity.value == "error"


def _memorising_run(x: torch.Tensor, y: torch.Tensor, select: list[str]) -> object:
    """A wide MLP at a high rate: it memorises any pairing of a few batches."""
    model = mlp(hidden=128)
    return run(
        select=select,
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=3e-2),
    )


@pytest.mark.fires("labels-not-connected")
def test_a_model_that_memorises_any_pairing_is_judged_on_more_samples_it_never_saw() -> None:
    # Labels drawn apart from the inputs, memorised: held-out samples predicted no better
    # than the most frequent label, on the pairing batches and again on more of them for
    # longer, are the finding.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 10, generator=g)
    y = torch.randint(0, 3, (512,), generator=g)
    report = _memorising_run(x, y, ["labels-not-connected"])
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4] and finding.evidence["memorised"]
    assert finding.evidence["held_out_samples"] >= 128 and finding.evidence["binomial_p"] >= 0.01
    assert "on more samples and steps" in report.result("labels-not-connected").detail


@pytest.mark.silent("labels-not-connected")
def test_a_memorising_model_on_connected_labels_passes_on_held_out_accuracy() -> None:
    report = _memorising_run(*blobs(n=512), ["labels-not-connected"])
    assert report.by_check("labels-not-connected") == []
    assert report.result("labels-not-connected").status.value == "passed"


@pytest.mark.silent("label-noise")
def test_a_copy_no_better_than_the_most_frequent_label_says_nothing_about_the_labels() -> None:
    # Labels 70/30 drawn apart from the inputs: the copies answer confidently and
    # contradict many labels, yet do no better than always answering the majority class.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 10, generator=g)
    y = (torch.rand(512, generator=g) < 0.3).long()
    report = _memorising_run(x, y, ["label-noise"])
    assert report.by_check("label-noise") == []
    assert "no better than the most frequent label" in report.result("label-noise").detail


class _Categorical(nn.Module):
    """Two categorical columns, each through an embedding of its own size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.small, self.large = nn.Embedding(3, 4), nn.Embedding(50, 4)
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.small(x[:, 0]), self.large(x[:, 1])], 1))


@pytest.mark.silent("model-ignores-input")
def test_noise_for_categorical_columns_stays_within_each_columns_ids() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.stack(
        [torch.randint(0, 3, (256,), generator=g), torch.randint(0, 50, (256,), generator=g)], 1
    )
    y = (x[:, 0] == 1).long()
    model = _Categorical()
    report = run(
        select=["model-ignores-input"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.result("model-ignores-input").status.value == "passed"


def _ignores_input(model: nn.Module, data: list[Any]) -> Report:
    """model-ignores-input alone on ``data``, with Adam at 1e-2 and cross-entropy."""
    return run(
        select=["model-ignores-input"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )


class _ConstantNodes(nn.Module):
    """A graph network whose nodes all carry the same feature: what it knows of a graph is
    its adjacency mask (a bool input, layout kept as is by the noise)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Linear(4, 8), nn.Linear(8, 2)

    def forward(self, nodes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(nodes))  # (batch, nodes, 8)
        return self.head((adjacency.float() @ h).sum(1))  # messages summed over the graph


def test_constant_node_features_leave_no_noise_to_compare_with() -> None:
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(8):
        adjacency = torch.rand(32, 6, 6, generator=g) < torch.rand(32, 1, 1, generator=g)
        y = (adjacency.sum((1, 2)) > 18).long()
        data.append(((torch.ones(32, 6, 4), adjacency), y))
    model = _ConstantNodes()
    report = _ignores_input(model, data)
    assert report.by_check("model-ignores-input") == []
    result = report.result("model-ignores-input")
    assert result.status.value == "skipped" and "inputs themselves" in result.detail


class _PackedGru(nn.Module):
    """Padded token ids and their lengths, longest first, packed with ``enforce_sorted``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.gru, self.head = nn.Embedding(20, 8), nn.GRU(8, 16), nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, enforce_sorted=True)
        _, h = self.gru(packed)  # (layers, batch, hidden)
        return self.head(h[-1])


@pytest.mark.silent("model-ignores-input")
def test_lengths_sorted_longest_first_are_layout_and_kept_in_the_noise() -> None:
    # Random lengths would no longer be sorted and the packing would raise: the check
    # would crash instead of measuring.
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(8):
        lengths = torch.randint(2, 12, (32,), generator=g).sort(descending=True).values
        ids = torch.randint(1, 20, (12, 32), generator=g)  # (time, batch), 0 pads
        ids[torch.arange(12)[:, None] >= lengths[None, :]] = 0
        y = (ids[0] > 10).long()
        data.append(((ids, lengths), y))
    model = _PackedGru()
    report = _ignores_input(model, data)
    assert report.result("model-ignores-input").status.value == "passed"


@pytest.mark.silent("labels-not-connected")
def test_a_pairing_learned_too_slowly_to_show_at_first_shows_on_more_samples() -> None:
    # Heavily overlapping classes: in the budget the real pairing ends no lower than the
    # permuted ones, and copies predict unseen samples only a little better than the
    # majority label (41% against 37%, short of significance). The second cross-fit, on
    # more samples for more steps, shows the pairing.
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(3, 10, generator=g) * 0.15
    y = torch.randint(0, 3, (512,), generator=g)
    x = centers[y] + torch.randn(512, 10, generator=g)
    model = mlp()
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("labels-not-connected") == []
    detail = report.result("labels-not-connected").detail
    assert "on more samples and steps" in detail and detail.endswith("the labels follow the inputs")


@pytest.mark.fires("labels-not-connected")
def test_labels_dealt_by_a_second_loader_are_called_disconnected() -> None:
    # Inputs and labels from two shuffled loaders zipped together: every epoch pairs them
    # anew, so the captured batches are a random pairing that a model memorises as fast
    # as a permuted one. Copies predict held-out samples about as well as the majority
    # label, so the pairing does not lean against the inputs either way; the equivalence
    # test rules out a useful gain on more samples and decides.
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(4, 10, generator=g)
    y = torch.randint(0, 4, (1024,), generator=g)
    x = centers[y] + 0.5 * torch.randn(1024, 10, generator=g)
    xs = x[torch.randperm(1024, generator=g)]
    ys = y[torch.randperm(1024, generator=g)]
    model = mlp(classes=4, hidden=64)
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(xs, ys),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    found = report.by_check("labels-not-connected")
    assert len(found) == 1 and found[0].reasons[0] == 4
    assert "on more samples and steps" in report.result("labels-not-connected").detail


def _linear_targets(n: int = 512, outputs: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs and several real-valued targets, a noisy linear function of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    w = torch.randn(10, outputs, generator=g)
    return x, x @ w + 0.3 * torch.randn(n, outputs, generator=g)


def _check_regression(
    *,
    shuffled: bool,
    hidden: int = 32,
    lr: float = 1e-2,
    outputs: int = 4,
    shuffle_seed: int = 3,
    **kwargs: Any,
) -> Report:
    """labels-not-connected on an MLP regressing ``_linear_targets``; with ``shuffled`` the
    targets are permuted apart from their inputs (the bug)."""
    x, y = _linear_targets(outputs=outputs)
    if shuffled:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(shuffle_seed))]
    model = mlp(classes=outputs, hidden=hidden)
    return run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        **kwargs,
    )


@pytest.mark.silent("labels-not-connected")
def test_real_valued_targets_that_follow_the_inputs_pass_on_the_value_cross_fit() -> None:
    report = _check_regression(shuffled=False, thresholds=NO_RUN_EVIDENCE)
    assert report.by_check("labels-not-connected") == []
    detail = report.result("labels-not-connected").detail
    assert "permutation p=" in detail and "follow the inputs" in detail


@pytest.mark.silent("labels-not-connected")
def test_the_scripts_own_run_beating_the_constants_on_unseen_batches_shows_the_pairing() -> None:
    report = _check_regression(shuffled=False)
    detail = report.result("labels-not-connected").detail
    assert "the script's own run" in detail and "follow the inputs" in detail


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-3},
        {"hidden": 128, "outputs": 1, "shuffle_seed": 4, "thresholds": NO_RUN_EVIDENCE},
    ],
    ids=["learned-slowly", "memorised"],
)
def test_real_valued_targets_shuffled_apart_are_inconclusive_not_disconnected(
    kwargs: dict,
) -> None:
    # Held-out predictions of values that do not show the pairing look the same for a
    # shuffled target and for a real one too weak to learn in the budget (a click model):
    # below the permutations' mean half the time either way. They show a pairing or
    # nothing, so the experiment says it is inconclusive rather than toss that coin.
    report = _check_regression(shuffled=True, **kwargs)
    assert report.by_check("labels-not-connected") == []
    detail = report.result("labels-not-connected").detail
    assert "inconclusive" in detail and "cross-fit" in detail


def _check_binary(*, shuffled: bool, n: int = 1024, seed: int = 0) -> Report:
    """labels-not-connected on an MLP answering a balanced binary label (the side of a
    hyperplane) with binary cross-entropy on logits; with ``shuffled`` the labels are
    permuted apart from their inputs (the bug)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x @ torch.randn(10, 1, generator=g) > 0).float()  # (n, 1)
    if shuffled:
        y = y[torch.randperm(n, generator=g)]
    model = mlp(classes=1, hidden=128)
    return run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y, 64),
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        thresholds=NO_RUN_EVIDENCE,
    )


@pytest.mark.fires("labels-not-connected")
def test_a_binary_label_shuffled_apart_is_called_disconnected_by_its_held_out_answers() -> None:
    # A binary label is two classes: the copies' answers on 1024 held-out samples rule
    # out a gain over chance agreement of a tenth (Cohen's kappa), as class labels' do.
    report = _check_binary(shuffled=True)
    found = report.by_check("labels-not-connected")
    assert len(found) == 1 and found[0].reasons[0] == 4
    assert "Cohen's kappa" in found[0].message
    assert found[0].evidence["held_out_samples"] == 1024


@pytest.mark.silent("labels-not-connected")
def test_a_binary_label_that_follows_the_inputs_passes() -> None:
    report = _check_binary(shuffled=False)
    assert report.by_check("labels-not-connected") == []
    assert report.result("labels-not-connected").detail.endswith("the labels follow the inputs")


def test_binary_answers_are_measured_from_chance_agreement_not_the_majority_label() -> None:
    # Labels 80/20 and a copy that memorised its half, answering 1 a fifth of the time
    # about as often whatever the label (a weak pairing: 21 of the 100 ones, 80 of the 400
    # zeros): 68% right, below the 80% majority share, yet a little above what chance
    # gives such answers. It neither leans against the pairing nor, on 500 samples, rules
    # out a useful gain.
    from nndoctor.checks.data.experiments import BinaryCrossFit, ValueCrossFit

    labels = torch.cat([torch.ones(100), torch.zeros(400)]).long()
    answers = torch.cat([torch.ones(21), torch.zeros(79), torch.ones(80), torch.zeros(320)])
    values = ValueCrossFit([], 0.0, torch.zeros(9), correlation=0.0, best_step=60, total=500)
    fit = BinaryCrossFit([], answers.long(), torch.full((500,), 0.9), labels, values)
    assert fit.correct == 341 and fit.correct < fit.majority_share * fit.total
    assert fit.chance_agreement() == pytest.approx(0.202 * 0.2 + 0.798 * 0.8)
    assert not fit.leans_against() and not fit.against(Thresholds())


def test_memorised_targets_of_several_columns_stay_inconclusive() -> None:
    # Their columns' mean held-out correlation is near zero for healthy multi-label tasks
    # too, so no second cross-fit is asked to decide.
    report = _check_regression(shuffled=True, hidden=128, thresholds=NO_RUN_EVIDENCE)
    assert report.by_check("labels-not-connected") == []
    detail = report.result("labels-not-connected").detail
    assert "targets of several columns" in detail and "inconclusive" in detail


@pytest.mark.silent("labels-not-connected")
def test_a_weak_real_valued_pairing_memorised_first_is_not_called_disconnected() -> None:
    # A product of two inputs under noise four times its spread: copies memorise their
    # half before the held-out samples show the signal, and on more samples and steps the
    # held-out predictions point towards their targets, if not yet significantly.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1024, 10, generator=g)
    y = x[:, :1] * x[:, 1:2] + 3.0 * torch.randn(1024, 1, generator=g)
    model = mlp(classes=1, hidden=128)
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y, 64),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        thresholds=Thresholds(
            pairing_run_min_steps=10**6,
            pairing_experiment_batches=4,
            pairing_batch_size=32,
            pairing_min_held_out=64,
        ),
    )
    assert report.by_check("labels-not-connected") == []
    detail = report.result("labels-not-connected").detail
    assert "on more samples and steps" in detail and "inconclusive" in detail


def test_the_value_cross_fit_is_blind_to_over_confidence() -> None:
    from nndoctor.checks.data.experiments import _standardised

    g = torch.Generator().manual_seed(0)
    pred = torch.randn(64, 5, generator=g, dtype=torch.float64)
    assert torch.allclose(_standardised(pred), _standardised(100.0 * pred + 3.0))
    constant = torch.ones(64, 1, dtype=torch.float64)
    assert bool(
        (_standardised(constant) == 0).all()
    )  # an element that does not vary counts for nothing


def test_the_value_cross_fit_p_value_counts_the_permutations_at_least_as_extreme() -> None:
    from nndoctor.checks.data.experiments import ValueCrossFit

    null = torch.arange(999, dtype=torch.float64) - 499.0  # one null value per permutation

    def fit(statistic: float) -> ValueCrossFit:
        return ValueCrossFit([], statistic, null, correlation=0.1, best_step=60, total=256)

    assert fit(400.0).pairing_p() == pytest.approx((1 + 100) / 1000)  # 400..499
    assert not fit(400.0).leans_against()
    assert fit(-1.0).leans_against()


def _disconnected_but_lucky(monkeypatch: pytest.MonkeyPatch, held_out_correct: int) -> Report:
    """Labels shuffled apart from their inputs, where the real run happens to end 6% below
    both null runs, without falling clearly further (a third of such runs end lowest of
    three by chance), and 512 held-out samples get ``held_out_correct`` right against a 25%
    majority label."""
    from nndoctor.checks.data import experiments
    from nndoctor.checks.lab import Lab, TrainResult

    labels = torch.arange(512) % 4
    predicted = labels.clone()
    predicted[held_out_correct:] = (labels[held_out_correct:] + 1) % 4
    fit = experiments.CrossFit([], predicted, torch.full((512,), 0.5), labels)
    monkeypatch.setattr(experiments, "run_evidence", lambda rec, t: None)
    monkeypatch.setattr(experiments, "cross_fit", lambda *a, **k: fit)
    monkeypatch.setattr(experiments, "real_run", lambda lab, t: TrainResult([1.4] + [1.0] * 5))
    monkeypatch.setattr(Lab, "train", lambda self, *a, **k: TrainResult([1.4] + [1.06] * 5))
    monkeypatch.setattr(experiments, "held_out_run", lambda *a, **k: None)
    x, y = blobs(n=512)
    model = mlp()
    return run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y[torch.randperm(512, generator=torch.Generator().manual_seed(3))]),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("labels-not-connected")
def test_a_lucky_real_run_does_not_outweigh_held_out_samples_no_better_than_a_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = _disconnected_but_lucky(monkeypatch, held_out_correct=100)  # 20% < 25%
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4]


@pytest.mark.fires("labels-not-connected")
def test_a_lucky_real_run_does_not_outweigh_held_out_samples_that_rule_out_a_useful_gain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 27% right against 25% by chance: above it, but a gain over it of a tenth of the
    # rest (Cohen's kappa) is ruled out at 99%; the second cross-fit shows no more.
    report = _disconnected_but_lucky(monkeypatch, held_out_correct=140)
    (finding,) = report.by_check("labels-not-connected")
    assert "Cohen's kappa" in finding.message


@pytest.mark.silent("labels-not-connected")
def test_a_real_run_ending_below_the_null_runs_passes_where_held_out_samples_do_not_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 147 of 512 right (29% against 25%): neither shown beyond chance (p ~ 0.03) nor a
    # useful gain ruled out (kappa's upper bound 0.11).
    report = _disconnected_but_lucky(monkeypatch, held_out_correct=147)
    assert report.result("labels-not-connected").status == "passed"


@pytest.mark.silent("labels-not-connected")
def test_data_fed_sorted_by_class_is_dealt_anew_and_its_pairing_found() -> None:
    # Sorted by class, the first batches hold one class each: copies trained one class at
    # a time, and halves that hold out classes the copies never saw, would make a real
    # pairing look missing. The experiments deal the same samples anew instead.
    x, y = blobs(n=512, classes=4)
    order = torch.argsort(y, stable=True)
    model = mlp(classes=4)
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x[order], y[order]),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        thresholds=NO_RUN_EVIDENCE,
    )
    assert report.by_check("labels-not-connected") == []
    assert "the labels follow the inputs" in report.result("labels-not-connected").detail


def test_only_data_fed_in_order_is_dealt_anew() -> None:
    from nndoctor.checks.data.experiments import fed_in_order
    from nndoctor.subject import Subject

    subject = Subject(model=mlp(), batches=lambda: [], loss_fn=nn.CrossEntropyLoss())
    x, y = blobs(n=256, classes=4)
    assert not fed_in_order(batches(x, y), subject, 0.01)
    order = torch.argsort(y, stable=True)
    assert fed_in_order(batches(x[order], y[order]), subject, 0.01)
    values = torch.linspace(0, 1, 256).unsqueeze(1)
    assert fed_in_order(batches(x, values), subject, 0.01)
    assert not fed_in_order(batches(x, values[torch.randperm(256)]), subject, 0.01)


def _cross_fit(correct_share: float, n: int, seed: int) -> CrossFit:
    """Held-out answers over four balanced classes, each right with ``correct_share``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    right = torch.rand(n, generator=g) < correct_share
    wrong = (labels + torch.randint(1, 4, (n,), generator=g)) % 4
    predicted = torch.where(right, labels, wrong)
    return CrossFit([], predicted, torch.ones(n), labels)


def test_the_equivalence_test_rules_out_a_useful_pairing_only_at_its_stated_rate() -> None:
    t = Thresholds()
    share = 0.25 + t.pairing_useful_gain * 0.75  # copies that learned just the useful gain
    ruled_out = sum(_cross_fit(share, 512, seed).gain_ruled_out(t) for seed in range(400))
    assert ruled_out <= 400 * t.label_pairing_alpha * 1.5
    # Disconnected labels (a held-out guess right a quarter of the time) are ruled out
    # nearly always on 512 samples, and never on fewer than pairing_min_held_out.
    chance = [_cross_fit(0.25, 512, seed) for seed in range(100)]
    assert sum(f.gain_ruled_out(t) for f in chance) >= 90
    assert not any(_cross_fit(0.25, 64, seed).gain_ruled_out(t) for seed in range(20))


def test_held_out_accuracy_just_above_chance_reads_as_no_useful_gain() -> None:
    # 140 of 512 right over four balanced classes, the answers balanced too: 27% against
    # 25% by chance, above it (so it does not lean against the pairing) but far short of
    # a useful gain.
    labels = torch.arange(512) % 4
    predicted = torch.where(torch.arange(512) < 140, labels, (labels + 1) % 4)
    fit = CrossFit([], predicted, torch.ones(512), labels)
    t = Thresholds()
    assert fit.chance_agreement() == pytest.approx(0.25)
    assert not fit.leans_against()
    assert fit.gain_ruled_out(t) and fit.against(t)
    sentence = fit.sentence(t)
    assert "140 of 512" in sentence and "at 99% confidence" in sentence
    assert "against 25% for answers given as often" in sentence
    assert "short of the 0.1 a learnable pairing gives" in sentence
    # The sentence states the thresholds in force, not the defaults.
    stricter = Thresholds(label_pairing_alpha=0.001, pairing_useful_gain=0.2)
    assert "at 99.9% confidence" in fit.sentence(stricter)
    assert "short of the 0.2 a" in fit.sentence(stricter)


def test_class_answers_given_as_often_as_imbalanced_labels_are_not_evidence_against() -> None:
    # Labels 80/20 over two classes given as class indices, and a memorising copy that
    # answers the minority class about as often, a little more often when it is right:
    # below the majority share, above chance agreement; and its accuracy beats chance
    # agreement far more clearly than it could ever beat the majority share.
    labels = torch.cat([torch.ones(200), torch.zeros(800)]).long()
    answers = torch.cat([torch.ones(60), torch.zeros(140), torch.ones(140), torch.zeros(660)])
    fit = CrossFit([], answers.long(), torch.full((1000,), 0.9), labels)
    assert fit.correct == 720 and fit.correct < fit.majority_share * fit.total
    assert not fit.leans_against() and not fit.against(Thresholds())
    assert fit.pairing_p() < 0.01 < fit.better_than_labels_alone()


def test_a_near_certain_majority_label_leaves_no_room_to_rule_a_gain_out() -> None:
    # 95 % of the labels are one class: copies right 96 % of the time may well have
    # learned a real pairing, and a bound 10 points above the majority could never be
    # reached; the test is held to a tenth of the 5 points of room, which 512 samples
    # cannot resolve.
    labels = (torch.arange(512) % 20 == 0).long()
    predicted = torch.where(torch.arange(512) < 492, labels, 1 - labels)
    fit = CrossFit([], predicted, torch.ones(512), labels)
    assert not fit.leans_against() and not fit.gain_ruled_out(Thresholds())


def test_many_classes_with_few_held_out_samples_each_are_not_judged() -> None:
    # A hundred classes on 512 samples: five per class, too few for a pairing to show.
    labels = torch.arange(512) % 100
    predicted = torch.where(torch.arange(512) < 20, labels, (labels + 1) % 100)
    fit = CrossFit([], predicted, torch.ones(512), labels)
    assert not fit.gain_ruled_out(Thresholds())


@pytest.mark.silent("labels-not-connected")
def test_a_few_dozen_held_out_samples_do_not_show_a_pairing_absent() -> None:
    # The CIFAR tutorial's shape: batches of four, SGD at lr=1e-3. Eight captured batches
    # are 32 samples, half of them held out against ten classes of weakly separated
    # blobs: the real run ends between the two permuted ones, as a pairing not yet learned
    # does as often as a missing one.
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(10, 32, generator=g) * 0.5
    y = torch.randint(0, 10, (256,), generator=g)
    x = centers[y] + torch.randn(256, 32, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    report = run(
        select=["labels-not-connected"],
        model=model,
        data=batches(x, y, size=4),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9),
    )
    assert report.by_check("labels-not-connected") == []
    result = report.result("labels-not-connected")
    assert result.conclusive is False
    assert "(fewer than 128) are too few to show it absent" in result.detail, result.detail


def _full_batch(shuffled: bool) -> Report:
    """600 samples of three classes fed whole at every step (full-batch training); with
    ``shuffled`` the labels are permuted on their own, disconnected from the inputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 10, generator=g)
    y = (x @ torch.randn(10, 3, generator=g)).argmax(1)
    if shuffled:
        y = y[torch.randperm(600, generator=g)]
    torch.manual_seed(0)
    model = mlp(10, 3, 64)
    return run(
        select=["labels-not-connected"],
        model=model,
        data=lambda: iter([(x, y)] * 50),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )


@pytest.mark.fires("labels-not-connected")
def test_labels_shuffled_apart_from_a_full_batch_are_found() -> None:
    # Copies are asked about samples they never saw: the repeated batch's rows are dealt
    # out, not cut to the same first rows for both halves of the cross-fit.
    (finding,) = _full_batch(shuffled=True).by_check("labels-not-connected")
    assert finding.reasons[0] in (3, 4)


@pytest.mark.silent("labels-not-connected")
def test_a_full_batch_whose_labels_follow_the_inputs_passes() -> None:
    report = _full_batch(shuffled=False)
    assert serious(report, "labels-not-connected") == []
    assert "the labels follow the inputs" in report.result("labels-not-connected").detail
