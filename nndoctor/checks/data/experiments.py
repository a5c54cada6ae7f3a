"""Experiments on the data: random inputs (2), shuffled labels (4), learnability (5), label noise (6).

Each trains short runs of fresh copies on the captured batches with one thing
changed, and compares the loss curves with the unchanged run.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.data.pairing_replay import pairing_by_replay
from nndoctor.checks.data.teacher import TeacherLayout, source_pairing, teacher_layout
from nndoctor.checks.lab import Lab, TrainResult, same_noise
from nndoctor.checks.noise_replays import noise_runs
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import (
    binomial_tail,
    binomial_upper_bound,
    homogeneity_p,
    mean_above_zero_p,
    one_way_anova_p,
)
from nndoctor.copying import set_training
from nndoctor.noise import noise_like
from nndoctor.probes.recording import Recording
from nndoctor.subject import Subject, redeal
from nndoctor.trees import map_tensors, tensors


def _require(ctx: CheckContext) -> tuple[Lab, Subject]:
    lab: Lab = ctx.services
    if lab is None or not lab.available:
        why = lab.unavailable_reason if lab is not None else "no subject"
        ctx.skip(f"{why}; declare a Subject (nndoctor.check) to run this experiment")
    assert lab.subject is not None
    return lab, lab.subject


def _noise_batches(lab: Lab, subject: Subject, t: Any) -> list[Any] | None:
    """The experiment batches with every input tensor replaced by noise like it (seeded)."""

    def compute() -> list[Any] | None:
        gen = torch.Generator().manual_seed(0)
        noisy = []
        for batch in _batches(lab, t):
            new = subject.with_inputs(
                batch, map_tensors(lambda x: noise_like(x, gen), subject.inputs(batch))
            )
            if new is None:
                return None
            noisy.append(new)
        return noisy

    return lab.memo("data-noise-batches", compute)


def _noise_is_the_input(subject: Subject, real: list[Any], noisy: list[Any]) -> bool:
    """Whether every input tensor of the noise batches equals the real one."""
    for a, b in zip(real, noisy, strict=True):
        xs, ys = tensors(subject.inputs(a)), tensors(subject.inputs(b))
        if len(xs) != len(ys) or not all(
            x.shape == y.shape and torch.equal(x, y) for x, y in zip(xs, ys, strict=True)
        ):
            return False
    return True


def noise_run(lab: Lab, subject: Subject, t: Any) -> TrainResult:
    """A copy trained on the noise batches (memoised: two checks read it)."""
    noisy = _noise_batches(lab, subject, t)
    assert noisy is not None
    return lab.memo(
        "data-noise", lambda: lab.train(noisy, t.data_experiment_steps, regularisation=False)
    )


@dataclass
class CrossFit:
    """Two copies, each trained on half of the experiment batches and asked about the other
    half: per held-out sample, the predicted class, its probability and the label.

    Whether the labels follow the inputs is measured from the agreement the copies'
    answers reach by chance (``chance_agreement``: what they score against the held-out
    labels permuted), not from the most frequent label's share. A copy that memorised its
    half answers each class about as often as its labels hold it, and with labels 80/20
    it gets 68% right whether or not it learned a weak pairing: below the majority share,
    yet no evidence either way. The gain over chance, in units of what chance leaves to
    gain, is Cohen's kappa; for balanced labels it is the gain over the most frequent
    label as a share of that guess's errors."""

    runs: list[TrainResult]
    predicted: torch.Tensor  # (n,) class indices
    confidence: torch.Tensor  # (n,) probability of the predicted class
    labels: torch.Tensor  # (n,)

    @property
    def labelled(self) -> torch.Tensor:
        return self.labels >= 0  # targets at ignore_index (negative) are no sample

    @property
    def total(self) -> int:
        return int(self.labelled.sum())

    @property
    def correct(self) -> int:
        return int(((self.predicted == self.labels) & self.labelled).sum())

    @property
    def majority_share(self) -> float:
        """The held-out share of the most frequent label: the best any guess can do that does
        not look at the inputs."""
        counts = torch.bincount(self.labels[self.labelled])
        return float(counts.max()) / self.total if self.total else 1.0

    def better_than_labels_alone(self) -> float:
        """One-sided binomial p-value of the held-out accuracy against the majority share.
        If the labels were independent of the inputs, every held-out prediction would be
        independent of its label and right with probability at most that share."""
        return binomial_tail(self.total, self.correct, self.majority_share)

    def chance_agreement(self) -> float:
        """The accuracy the answers reach on average against the held-out labels permuted:
        what answers independent of the labels, given as often, score."""
        if not self.total:
            return 1.0
        held = self.labelled
        answers, labels = self.predicted[held].long(), self.labels[held].long()
        size = int(max(answers.max(), labels.max())) + 1
        return float(
            (torch.bincount(answers, minlength=size) * torch.bincount(labels, minlength=size))
            .double()
            .sum()
        ) / (self.total**2)

    def pairing_p(self) -> float:
        """One-sided p-value of the held-out accuracy against chance agreement (binomial:
        the number right under a random pairing, given both sides' counts, varies no more
        than that). Labels independent of the inputs make it the test's error rate."""
        return binomial_tail(self.total, self.correct, self.chance_agreement())

    def describe(self) -> str:
        return (
            f"cross-fit held-out accuracy {self.correct}/{self.total} against "
            f"{self.chance_agreement():.0%} by chance ({self.majority_share:.0%} for the most "
            f"frequent label; binomial p={self.pairing_p():.2g})"
        )

    def _kappa(self, accuracy: float) -> float:
        chance = self.chance_agreement()
        return (accuracy - chance) / (1 - chance) if chance < 1 else math.inf

    def leans_against(self) -> bool:
        """Fewer right than chance agreement: the answers are no closer to their own labels
        than to others."""
        return self.correct < self.chance_agreement() * self.total

    def upper_gain(self, alpha: float) -> float:
        """The (1 - alpha) upper confidence bound on Cohen's kappa (Clopper-Pearson on the
        accuracy, chance agreement taken as known)."""
        return self._kappa(binomial_upper_bound(self.total, self.correct, alpha))

    @property
    def classes(self) -> int:
        return int((torch.bincount(self.labels[self.labelled]) > 0).sum()) if self.total else 0

    def useful_gain(self, t: Any) -> float:
        """The gain over chance agreement (Cohen's kappa) that a learnable pairing gives at
        least: ``pairing_useful_gain``."""
        return t.pairing_useful_gain

    def gain_ruled_out(self, t: Any) -> bool:
        """An equivalence test: on enough held-out samples, with at least
        ``pairing_min_per_class`` of them per class, kappa's upper confidence bound at
        ``label_pairing_alpha`` stays below ``useful_gain``. Copies that learned a pairing
        that well would show less only ``label_pairing_alpha`` of the time."""
        return (
            self.total >= t.pairing_min_held_out
            and self.total >= t.pairing_min_per_class * self.classes
            and self.upper_gain(t.label_pairing_alpha) < self.useful_gain(t)
        )

    def against(self, t: Any) -> bool:
        """The held-out samples speak against the pairing: a useful gain over chance ruled
        out beyond reasonable doubt. Fewer right than chance alone is no evidence: a real
        pairing not yet learned gives that half of the time too."""
        return self.gain_ruled_out(t)

    def sentence(self, t: Any) -> str:
        return (
            f" Copies that never saw them get {self.correct} of {self.total} held-out labels right, "
            f"against {self.chance_agreement():.0%} for answers given as often without looking at "
            f"the inputs: a gain over that of at most {self.upper_gain(t.label_pairing_alpha):.3f} "
            f"of what it leaves (Cohen's kappa) at {100 * (1 - t.label_pairing_alpha):.4g}% "
            f"confidence, short of the {t.pairing_useful_gain:.4g} a learnable pairing gives."
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "held_out_correct": self.correct,
            "held_out_samples": self.total,
            "chance_agreement": self.chance_agreement(),
            "majority_share": self.majority_share,
            "binomial_p": self.pairing_p(),
        }


@dataclass
class ValueCrossFit:
    """The cross-fit for targets without class scores (values, binary or multi-label
    targets, masks): the copies' held-out predictions beside their targets, each output
    element standardised over the held-out samples of its half. At each look (a few points
    along the copies' training) the statistic is their summed products, a covariance:
    scale-free, so a copy over-confident after memorising its half is judged by whether
    it points the right way, not by its loss. The looks are combined by their largest
    standardised value, compared with the same maximum under each permutation of the
    held-out targets (one permutation for every look, so the test stays exact)."""

    runs: list[TrainResult]
    statistic: float  # the largest standardised statistic over the looks
    null: torch.Tensor  # (R,) the same under each permutation of the held-out targets
    correlation: float  # the mean correlation of prediction and target at the best look
    best_step: int  # the copies' step at the best look
    total: int  # held-out samples
    columns: int = 1  # target elements per sample that vary over the held-out samples
    # For a binary target of one column whose loss says where its answers part (logits at
    # 0, probabilities at 0.5): the held-out answers at the look where most are right.
    answers: CrossFit | None = None

    def pairing_p(self) -> float:
        """Permutation p-value: if the targets were independent of the inputs, each
        permutation would be as likely as the real pairing, so this is the test's error
        rate."""
        exceed = int((self.null >= self.statistic).sum())
        return (1 + exceed) / (1 + self.null.numel())

    def describe(self) -> str:
        return (
            f"cross-fit: held-out predictions correlate {self.correlation:.3f} with their targets over "
            f"{self.total} samples after {self.best_step} steps "
            f"(permutation p={self.pairing_p():.2g})"
        )

    def leans_against(self) -> bool:
        """Held-out predictions that point towards their own targets no more than the
        permuted pairings do on average."""
        return self.statistic <= float(self.null.mean())

    def against(self, t: Any) -> bool:
        """Never: held-out predictions of values (or of a multi-label target) can show a
        pairing, not its absence (a binary label's answers are read by ``BinaryCrossFit``).
        A real value target can correlate weakly with what a model makes of its input in
        this budget (a noisy regression learning slowly), and then its statistic falls
        where a disconnected target's does: below the permutations' mean half the time. A
        bound on the correlation, with no scale for a useful one, would call such targets
        disconnected; a coin's toss would call half of them so."""
        return False

    def evidence(self) -> dict[str, Any]:
        return {
            "held_out_correlation": self.correlation,
            "held_out_samples": self.total,
            "permutation_p": self.pairing_p(),
        }


@dataclass
class BinaryCrossFit(CrossFit):
    """The cross-fit of a binary target of one column, read two ways: its predictions'
    covariance with the targets (``values``, the permutation test that shows a pairing, as
    for any value) and the answers they give (a logit above 0, a probability above 0.5),
    which can speak against a pairing as a class label's do (a binary label is two
    classes). The answers are taken at the look where the most are right, so a copy that
    has begun to overfit is judged at its best."""

    values: ValueCrossFit

    @classmethod
    def of(cls, values: ValueCrossFit) -> BinaryCrossFit:
        answers = values.answers
        assert answers is not None
        return cls(answers.runs, answers.predicted, answers.confidence, answers.labels, values)

    def pairing_p(self) -> float:
        return self.values.pairing_p()

    def describe(self) -> str:
        return (
            f"{self.values.describe()}, held-out answers right {self.correct}/{self.total} "
            f"against {self.chance_agreement():.0%} by chance"
        )

    def evidence(self) -> dict[str, Any]:
        return {
            **self.values.evidence(),
            "held_out_correct": self.correct,
            "chance_agreement": self.chance_agreement(),
        }


def cross_fit(
    lab: Lab, subject: Subject, t: Any, *, pairing: bool = False, extended: bool = False
) -> CrossFit | None:
    """The cross-fit experiment, memoised: over the data experiments' batches (label-noise)
    or, with ``pairing``, over the pairing tests' (labels-not-connected); ``extended``, over
    up to ``pairing_extended_batches`` for ``pairing_extended_steps``. None for fewer than
    four batches or a subject without per-sample class scores."""
    if extended:
        batches = lab.small_batches(t.pairing_extended_batches, t.pairing_batch_size)
        steps = t.pairing_extended_steps
    else:
        batches = _pairing_batches(lab, t) if pairing else _batches(lab, t)
        steps = t.data_experiment_steps
    if len(batches) < 4:
        return None
    if pairing or extended:
        batches, _ = dealt(lab, subject, t, batches, "extended" if extended else "pairing")

    def compute() -> CrossFit | None:
        half = len(batches) // 2
        halves = (batches[:half], batches[half:])
        runs: list[TrainResult] = []
        answers: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for k in (0, 1):
            model = lab.fresh_model()
            runs.append(lab.train(halves[k], steps, regularisation=False, model=model))
            set_training(model, False)
            answers[1 - k] = []
            with torch.no_grad():
                for b in halves[1 - k]:
                    scores = subject.class_scores(model, b)
                    target = subject.targets(b)
                    if (
                        scores is None
                        or not isinstance(target, torch.Tensor)
                        or target.is_floating_point()
                        or scores.dim() != 2
                        or target.dim() != 1
                    ):
                        return None
                    conf, pred = scores.float().softmax(1).max(1)
                    answers[1 - k].append((pred.cpu(), conf.cpu(), target.cpu()))
        # In batch order, so a sample's index is its place in the captured batches.
        rows = answers[0] + answers[1]
        return CrossFit(runs, *(torch.cat([r[i] for r in rows]) for i in range(3)))

    key = "extended" if extended else "pairing" if pairing else ""
    return lab.memo(f"data-cross-fit-{key}", compute)


def fed_in_order(batches: list[Any], subject: Subject, alpha: float) -> bool:
    """Whether the batches' targets differ between batches beyond chance: class labels by
    the chi-square test of homogeneity of their counts per batch (targets below zero, an
    ignore_index, left out), values by the one-way analysis of variance of their
    per-sample means; each at ``alpha``. Data fed sorted or one class per batch do;
    batches drawn at random from one dataset do at the rate ``alpha``. False for targets
    that are neither."""
    targets = [subject.targets(b) for b in batches]
    if len(targets) < 2 or not all(
        isinstance(x, torch.Tensor) and x.dim() > 0 and x.numel() > 0 for x in targets
    ):
        return False
    if all(not x.is_floating_point() for x in targets):
        labels = [x.reshape(-1).long().cpu() for x in targets]
        labels = [v[v >= 0] for v in labels]
        if not any(v.numel() for v in labels):
            return False
        size = max(int(v.max()) for v in labels if v.numel()) + 1
        counts = [torch.bincount(v, minlength=size).double().tolist() for v in labels]
        return homogeneity_p(counts) < alpha
    if all(x.is_floating_point() for x in targets):
        groups = [x.reshape(x.shape[0], -1).double().mean(1).cpu().tolist() for x in targets]
        return one_way_anova_p(groups) < alpha
    return False


def dealt(
    lab: Lab, subject: Subject, t: Any, batches: list[Any], key: str
) -> tuple[list[Any], bool]:
    """The pairing experiments' batches: ``batches`` as captured, or, where the script fed
    them in an order that sorts their targets (``fed_in_order`` at ``label_pairing_alpha``),
    their samples dealt anew at random into batches of the same sizes, as a shuffled
    loader would have. The pairing of each input with its target is kept; only the order
    goes, which is loader-not-shuffled's, targets-sorted's and single-label-batches' to
    judge. Copies trained on one class at a time, or cross-fitted on halves that hold out
    classes they never saw, would show labels that do not follow their inputs when they
    do. Batches that cannot be joined stay as captured (memoised by ``key``). With them,
    whether they were dealt anew."""

    def compute() -> tuple[list[Any], bool]:
        if not fed_in_order(batches, subject, t.label_pairing_alpha):
            return batches, False
        anew = redeal(batches, subject)
        return (anew, True) if anew is not None else (batches, False)

    return lab.memo(f"dealt-{key}", compute)


def _standardised(x: torch.Tensor) -> torch.Tensor:
    """Each column standardised over the rows; columns that do not vary become zero."""
    x = x - x.mean(0, keepdim=True)
    sd = x.pow(2).mean(0, keepdim=True).sqrt()
    return torch.where(sd > 0, x / sd.clamp_min(1e-30), torch.zeros_like(x))


def value_cross_fit(
    lab: Lab, subject: Subject, t: Any, *, extended: bool = False
) -> ValueCrossFit | None:
    """The pairing tests' cross-fit for targets without class scores, memoised: two copies,
    each trained on half of the pairing batches (dealt anew where they were fed in
    order, see ``dealt``), predict the other half at each look
    (``pairing_looks``: after all of their steps, half, a quarter); their predictions (what the loss
    consumes) and the targets, one row per sample, are compared by ``ValueCrossFit``.
    ``extended``: over up to ``pairing_extended_batches`` for ``pairing_extended_steps``.
    None with fewer than four batches, or without a prediction shaped like its target (an
    opaque loss, class-index targets)."""
    if extended:
        batches = lab.small_batches(t.pairing_extended_batches, t.pairing_batch_size)
        steps = t.pairing_extended_steps
    else:
        batches = _pairing_batches(lab, t)
        steps = t.data_experiment_steps
    if len(batches) < 4:
        return None
    batches, _ = dealt(lab, subject, t, batches, "extended" if extended else "pairing")
    looks = sorted({max(1, steps >> k) for k in range(max(t.pairing_looks, 1))})

    def rows(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        out = subject.prediction(model, batch)
        target = subject.targets(batch)
        if not (isinstance(out, torch.Tensor) and isinstance(target, torch.Tensor)):
            return None
        if not (out.is_floating_point() and target.is_floating_point()) or target.dim() == 0:
            return None
        n = target.shape[0]
        if out.dim() == 0 or out.shape[0] != n or out.numel() != target.numel():
            return None
        return out.reshape(n, -1).double().cpu(), target.reshape(n, -1).double().cpu()

    class Unreadable(Exception):
        """A held-out prediction that cannot be set beside its target."""

    def predictions(model: torch.nn.Module, held: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        was_training = model.training
        set_training(model, False)
        try:
            with torch.no_grad():
                scored = [rows(model, b) for b in held]
        finally:
            if was_training:
                lab.training_mode(model)
        if any(r is None for r in scored) or len({r[0].shape[1] for r in scored}) != 1:
            raise Unreadable
        return torch.cat([r[0] for r in scored]), torch.cat([r[1] for r in scored])

    def compute() -> ValueCrossFit | None:
        half = len(batches) // 2
        halves = (batches[:half], batches[half:])
        runs: list[TrainResult] = []
        # grams[look][k]: gram[i, j] is held-out sample i's prediction against sample j's
        # target, in the half held out from copy k.
        grams: dict[int, list[torch.Tensor]] = {look: [] for look in looks}
        # raw[look]: per half, the held-out predictions and targets of a one-column target.
        raw: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {look: [] for look in looks}
        elements: dict[int, int] = {}
        for k in (0, 1):
            held = halves[1 - k]

            def look(step: int, model: torch.nn.Module, held: list[Any] = held) -> None:
                if step not in grams:
                    return
                pred, target = predictions(model, held)
                if pred.shape[1] == 1:
                    raw[step].append((pred[:, 0], target[:, 0]))
                target = _standardised(target)
                elements[step] = max(elements.get(step, 0), int((target.abs().sum(0) > 0).sum()))
                grams[step].append(_standardised(pred) @ target.T)

            try:
                runs.append(
                    lab.train(
                        halves[k],
                        steps,
                        regularisation=False,
                        model=lab.fresh_model(),
                        after_step=look,
                    )
                )
            except Unreadable:
                return None
        done = {
            step: g
            for step, g in grams.items()
            if len(g) == 2 and all(bool(torch.isfinite(x).all()) for x in g) and elements[step]
        }
        if not done:
            return None
        gen = torch.Generator().manual_seed(0)
        perms = [
            torch.stack(
                [torch.randperm(g.shape[0], generator=gen) for _ in range(t.pairing_permutations)]
            )
            for g in next(iter(done.values()))
        ]
        observed: list[float] = []
        nulls: list[torch.Tensor] = []
        for g in done.values():
            value = sum(float(x.diagonal().sum()) for x in g)
            null = sum(
                x[torch.arange(x.shape[0]).expand_as(pm), pm].sum(1)
                for x, pm in zip(g, perms, strict=True)
            )
            # Standardised by the permutation distribution, so looks compare on one scale.
            centre, spread = float(null.mean()), float(null.std()) or 1.0
            observed.append((value - centre) / spread)
            nulls.append((null - centre) / spread)
        best = max(range(len(observed)), key=observed.__getitem__)
        step = list(done)[best]
        total = sum(x.shape[0] for x in done[step])
        value = sum(float(x.diagonal().sum()) for x in done[step])
        return ValueCrossFit(
            runs,
            statistic=observed[best],
            null=torch.stack(nulls).max(0).values,
            correlation=value / max(total * elements[step], 1),
            best_step=step,
            total=total,
            columns=elements[step],
            answers=_binary_answers(runs, [raw[s] for s in done], subject.decision_threshold()),
        )

    return lab.memo(f"data-value-cross-fit-{'extended' if extended else 'pairing'}", compute)


def _value_fit(
    lab: Lab, subject: Subject, t: Any, *, extended: bool = False
) -> ValueCrossFit | BinaryCrossFit | None:
    """The value cross-fit, read as a binary label's where its target is one (see
    ``BinaryCrossFit``)."""
    fit = value_cross_fit(lab, subject, t, extended=extended)
    return BinaryCrossFit.of(fit) if fit is not None and fit.answers is not None else fit


def _binary_answers(
    runs: list[TrainResult],
    looks: list[list[tuple[torch.Tensor, torch.Tensor]]],
    threshold: float | None,
) -> CrossFit | None:
    """The held-out answers of a binary target (every target 0 or 1) at the look where the
    most are right: each prediction read as 1 above ``threshold``; its confidence is the
    probability of that answer. None without a threshold or for other targets."""
    if threshold is None:
        return None
    best: CrossFit | None = None
    for halves in looks:
        if len(halves) != 2:
            return None
        pred = torch.cat([p for p, _ in halves])
        target = torch.cat([y for _, y in halves])
        if not bool(((target == 0) | (target == 1)).all()):
            return None
        one = pred > threshold
        p_one = pred.sigmoid() if threshold == 0.0 else pred.clamp(0.0, 1.0)
        answers = CrossFit(
            runs,
            one.long(),
            torch.where(one, p_one, 1.0 - p_one).float(),
            target.long(),
        )
        if best is None or answers.correct > best.correct:
            best = answers
    return best


@dataclass
class RunEvidence:
    """What the script's own run says about the pairing: on each batch it had not trained
    on yet, its loss against the best constant prediction fitted to that batch's targets
    (the loss is taken before the step that trains on the batch, so each batch is held
    out from the weights that score it)."""

    gains: list[float]  # constant's loss minus the run's, over the later half of fresh steps
    steps: int  # fresh steps in that half

    @property
    def mean_gain(self) -> float:
        return sum(self.gains) / len(self.gains) if self.gains else math.nan

    def better_than_labels_alone(self) -> float:
        """One-sided t-test that the run beats the constants. Labels independent of the
        inputs make every such batch's loss at least the best constant's on average (the
        constant is fitted to the very targets it scores, in its own favour)."""
        return mean_above_zero_p(self.gains)

    def describe(self) -> str:
        return (
            f"the script's own run, on {self.steps} batches it had not trained on yet: loss "
            f"{self.mean_gain:+.3g} below the best constant fitted to each batch "
            f"(t-test p={self.better_than_labels_alone():.2g})"
        )


def _fresh(rec: Recording) -> list[bool]:
    """Per observed step, whether it fed samples the run had not trained on: within the
    first epoch of the DataLoader that fed it (counted per dataset, so a loader rebuilt
    every epoch does not start over), or, without one, when none of its samples' input
    fingerprints was met before (fingerprints of one input tensor, such as categorical
    codes, can repeat across samples, which only makes fewer steps fresh)."""
    seen: list[float] = []
    fed: dict[tuple[str, int], int] = {}
    fresh = []
    for s in rec.steps:
        info = (
            rec.loaders[s.loader] if s.loader is not None and s.loader < len(rec.loaders) else None
        )
        if info is not None and info.dataset_len and info.batch_size:
            key = (info.dataset, info.dataset_len)
            fed[key] = fed.get(key, 0) + 1
            full, rest = divmod(info.dataset_len, info.batch_size)
            per_epoch = full if info.drop_last or not rest else full + 1
            fresh.append(fed[key] <= per_epoch)
            continue
        prints = [v for v in s.sample_fingerprints if math.isfinite(v)]
        fresh.append(bool(prints) and not any(_met(seen, v) for v in prints))
        for v in prints:
            bisect.insort(seen, v)
    return fresh


def _met(sorted_values: list[float], v: float) -> bool:
    i = bisect.bisect_left(sorted_values, v)
    tol = 1e-5 * max(1.0, abs(v))
    return any(abs(sorted_values[j] - v) <= tol for j in (i - 1, i) if 0 <= j < len(sorted_values))


def run_evidence(rec: Recording, t: Any) -> RunEvidence | None:
    """The pairing as the script's own run shows it (``RunEvidence``), from the later half
    of the steps that fed batches not seen before (the first half, the model has hardly
    learned); None with fewer than ``pairing_run_min_steps`` of them or without a
    recognised loss whose constant prior is known."""
    scored = [
        s.loss_calls[0].prior - s.loss_calls[0].value
        for s, new in zip(rec.steps, _fresh(rec), strict=True)
        if new
        and s.loss_calls
        and math.isfinite(s.loss_calls[0].prior)
        and math.isfinite(s.loss_calls[0].value)
    ]
    later = scored[len(scored) // 2 :]
    if len(later) < t.pairing_run_min_steps:
        return None
    return RunEvidence(later, len(later))


def _input_sensitivity(lab: Lab, subject: Subject, batch: Any, noisy: Any) -> float | None:
    """How far the initial model's output moves when its input is replaced by noise,
    relative to the output's own size (0 for a model that does not read its input);
    None when the subject gives no model output."""
    model = set_training(lab.fresh_model(), False)
    with torch.no_grad():
        with same_noise(lab.device):
            real = subject.prediction(model, batch)
        with same_noise(lab.device):
            fake = subject.prediction(model, noisy)
    if (
        not (isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor))
        or real.shape != fake.shape
    ):
        return None
    size = float(real.float().norm())
    return float((real.float() - fake.float()).norm()) / size if size > 0 else None


def _batches(lab: Lab, t: Any) -> list[Any]:
    return lab.small_batches(t.data_experiment_batches, t.experiment_batch_size)


def _pairing_batches(lab: Lab, t: Any) -> list[Any]:
    return lab.small_batches(t.pairing_experiment_batches, t.pairing_batch_size)


def real_run(lab: Lab, t: Any) -> TrainResult:
    return lab.memo(
        "data-real",
        lambda: lab.train(_batches(lab, t), t.data_experiment_steps, regularisation=False),
    )


@dataclass
class HeldOut:
    """A copy trained on the captured batches but one, and its loss on that one."""

    run: TrainResult
    before: float  # held-out loss at the initial weights
    after: float  # held-out loss after training
    batches: int  # trained on
    prior: float | None  # held-out loss of the best constant prediction (the label prior)

    def beats_prior(self, t: Any) -> bool:
        """The held-out batch is predicted clearly better than by the label prior alone:
        the inputs carry information about the targets, and the model uses it."""
        return (
            self.prior is not None
            and math.isfinite(self.after)
            and self.after < t.generalisation_margin * self.prior
        )


def held_out_run(lab: Lab, t: Any, *, pairing: bool = False) -> HeldOut | None:
    """The held-out experiment, memoised: a copy trained on every batch but the last (the
    data experiments' batches, or with ``pairing`` the pairing tests'), asked about the
    last; None with < 4 batches."""
    batches = _pairing_batches(lab, t) if pairing else _batches(lab, t)
    if len(batches) < 4:
        return None

    def compute() -> HeldOut:
        train, held = batches[:-1], batches[-1]
        model = lab.fresh_model()
        before = lab.evaluate(model, [held])[0]
        run = lab.train(train, t.data_experiment_steps, regularisation=False, model=model)
        lab.training_mode(model)
        after = lab.evaluate(model, [held])[0]
        return HeldOut(run, before, after, len(train), _prior_loss(lab, model, held))

    return lab.memo("data-held-out-pairing" if pairing else "data-held-out", compute)


def _prior_constants(out: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor] | None:
    """Constant predictions shaped like ``out``, fitted to ``target`` itself: its class
    frequencies (as log-probabilities), or its mean, median and (for targets in [0, 1])
    the mean's log-odds. The criterion's best constant is among them or beaten by them
    only in its favour (each is fitted to the very targets it is scored on). None for
    targets they cannot be read from."""
    if not target.is_floating_point() and out.dim() >= 2 and out.is_floating_point():
        classes = out.shape[1]
        valid = target[(target >= 0) & (target < classes)].long().cpu()
        counts = torch.bincount(valid, minlength=classes).double()
        p = (counts + 0.5) / (counts.sum() + 0.5 * classes)
        shape = [1, classes] + [1] * (out.dim() - 2)
        return [p.log().to(out.device, out.dtype).view(shape).expand_as(out)]
    if target.is_floating_point() and target.shape == out.shape and target.dim() >= 1:
        # The mean is the best constant for a loss on values (MSE), the median for absolute
        # errors (L1), the mean's log-odds for a loss on logits (BCEWithLogits over binary or
        # multi-label targets in [0, 1]).
        mean = target.mean(0, keepdim=True).to(out.dtype)
        median = target.median(0, keepdim=True).values.to(out.dtype)
        constants = [mean.expand_as(out), median.expand_as(out)]
        if bool(((target >= 0) & (target <= 1)).all()):
            q = mean.clamp(1e-4, 1 - 1e-4)
            constants.append((q.log() - (-q).log1p()).expand_as(out))
        return constants
    return None


def _prior_loss(lab: Lab, model: torch.nn.Module, held: Any) -> float | None:
    """The subject's own criterion on ``held`` for the best constant prediction, fitted to
    ``held``'s own targets (``_prior_constants``). No constant does better, so a model that
    does must read its inputs. None for a custom loss or targets it cannot read."""
    subject = lab.subject
    if subject is None:
        return None
    try:
        with torch.no_grad():
            out = subject.prediction(model, held)
            target = subject.targets(held)
            if not (isinstance(out, torch.Tensor) and isinstance(target, torch.Tensor)):
                return None
            constants = _prior_constants(out, target)
            if constants is None:
                return None
            losses = [subject.loss_of_prediction(c, held) for c in constants]
            values = [float(x) for x in losses if x is not None]
            if not values:
                return None
            value = min(values)
    except Exception:  # noqa: BLE001 - no prior is a missing piece of evidence, not an error
        return None
    return value if math.isfinite(value) else None


_FOLLOW_THE_INPUT = (
    "Follow the input through forward(): a detach, a multiplication by zero, an unused argument."
)


@register_check(
    id="model-ignores-input",
    reasons=(2,),
    severity="error",
    kind="experiment",
    priority=15,
    symptom=True,
    explains=frozenset({"labels-not-connected", "nothing-generalizes", "label-noise"}),
    differential=(
        (35, "dead or saturated units (dead-relus, saturated-activations)"),
        (1, "inputs that are constant or zero"),
        (23, "frozen first layers"),
        (28, "the initialisation"),
    ),
)
def model_ignores_input(ctx: CheckContext) -> None:
    """The model trains the same on random noise as on the real inputs.

    Why it matters:
        If replacing every input with noise of the same shape and statistics leaves the
        loss curve unchanged, the model does not use its input: a detached tensor, an
        input multiplied by zero, a forward that reads a buffer instead of its argument.
        Whatever it learns is the label distribution.

    What is measured:
        Two copies from the initial weights trained for the same steps on the same
        batches — one on the real inputs, one on Gaussian noise with each input tensor's
        mean and std — and their loss curves compared. Where that noise is the inputs
        themselves (every float input constant, as a graph's nodes that all carry one
        feature, and the rest layout kept as is: masks, sorted indices), the two copies
        would be one: skipped. Where no copy can rebuild the loss (a loss written by hand,
        one computed inside the model), the script is replayed as written instead, once on
        its data and once with every tensor its model is handed replaced by fresh noise like
        it (the replays loss-met-without-data reads too), and only the same loss at every
        step to within ``random_input_same_rtol`` is a finding: without a held-out batch or
        the output's sensitivity to tell them apart, curves that differ little are a model
        that learns slowly as often as one that reads nothing.

    How to fix:
        Follow the input through forward(): look for ``.detach()``, ``* 0``, ``torch.no_grad()``,
        a wrong variable name, or an input overwritten before use.

    Example:
        Before::

            def forward(self, x):
                h = self.encoder(self.cached_input)   # the argument is never used

        After::

            def forward(self, x):
                h = self.encoder(x)
    """
    services: Lab | None = ctx.services
    if services is not None and not services.available and services.script is not None:
        _ignores_input_by_replay(ctx, services)
        return
    lab, subject = _require(ctx)
    t = ctx.thresholds
    noisy = _noise_batches(lab, subject, t)
    if noisy is None:
        ctx.skip("the batch layout does not say where the inputs are (give Subject.replace_inputs)")
    if _noise_is_the_input(subject, _batches(lab, t), noisy):
        # Constant features (a graph's nodes all alike) and layout tensors kept as they are
        # (masks, sorted indices): the noise copy would train on the very same batches.
        ctx.skip(
            "noise like the inputs is the inputs themselves (every float input constant, the "
            "rest layout kept as is: masks, sorted indices): the two copies would be one"
        )
    real = real_run(lab, t)
    noise = noise_run(lab, subject, t)
    if not real.losses or not noise.losses:
        ctx.skip("the training runs failed: " + (real.error or noise.error or "no loss"))
    n = min(len(real.losses), len(noise.losses))
    gap = _largest_relative_gap(real.losses[:n], noise.losses[:n])
    ctx.note(
        f"real inputs: loss {real.initial:.4g} → {real.final:.4g}; noise: {noise.initial:.4g} → "
        f"{noise.final:.4g}; largest relative gap between the curves {gap:.3g}"
    )
    evidence = {
        "steps": n,
        "real_final": real.final,
        "noise_final": noise.final,
        "max_relative_gap": gap,
    }
    if gap <= t.random_input_same_rtol:
        ctx.finding(
            title="The model ignores its input",
            message=(
                f"Trained on Gaussian noise instead of the real inputs, the loss curve is the same to within "
                f"{gap:.2g} (relative) over {n} steps: the output does not depend on the input."
            ),
            fix=_FOLLOW_THE_INPUT,
            evidence=evidence,
        )
    elif noise.final <= real.final and real.final > 0.5 * real.initial:
        held = held_out_run(lab, t)
        if held is not None and held.beats_prior(t):
            ctx.note(
                ctx.detail + f" — but a held-out batch is predicted better than the label prior "
                f"({held.after:.4g} against {held.prior:.4g}): the input is used, it is just learned slowly"
            )
            return
        sensitivity = _input_sensitivity(lab, subject, _batches(lab, t)[0], noisy[0])
        if sensitivity is not None and sensitivity > t.input_sensitivity:
            # The model reads its input, so its content, not the model, is what does not help:
            # the pairing of inputs and targets is labels-not-connected's to judge.
            ctx.note(
                ctx.detail
                + f" — but the output moves by {sensitivity:.2g} of its size when the input is "
                "noise: the model reads its input (see labels-not-connected)"
            )
            return
        ctx.finding(
            title="The model learns noise as well as the real inputs",
            message=(
                f"After {n} steps the loss on noise inputs ({noise.final:.4g}) is as low as on the real inputs "
                f"({real.final:.4g}): the model draws no benefit from the input's content so far."
            ),
            fix="Check that the input reaches the model intact (preprocessing, the right tensor, the right axis).",
            severity="warning",
            evidence=evidence,
        )


def _largest_relative_gap(real: list[float], noise: list[float]) -> float:
    """The largest gap between two loss curves, step by step, relative to the real one."""
    return max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(real, noise, strict=True))


def _ignores_input_by_replay(ctx: CheckContext, lab: Lab) -> None:
    """Where no copy can rebuild the loss: the script replayed as written on its data and
    with the model's inputs replaced by noise (``noise_runs``); the same loss at every step
    to within ``random_input_same_rtol`` is a model that does not read its input. Curves
    that differ say nothing more here: with the script's own loss there is no held-out
    batch or input sensitivity to tell a model that reads its input from one that learns
    slowly."""
    steps, real, noise = noise_runs(ctx, lab)
    gap = _largest_relative_gap(real, noise)
    ctx.note(
        f"the script replayed as written, {steps} steps: on its data {real[0]:.4g} → "
        f"{real[-1]:.4g}, on noise {noise[0]:.4g} → {noise[-1]:.4g}; "
        f"largest relative gap between the curves {gap:.3g}"
    )
    if gap > ctx.thresholds.random_input_same_rtol:
        return
    ctx.finding(
        title="The model ignores its input",
        message=(
            f"The script replayed for {steps} steps with every tensor its model is handed "
            f"replaced by noise gives the same loss at every step to within {gap:.2g} "
            "(relative): the output does not depend on the input."
        ),
        fix=_FOLLOW_THE_INPUT,
        evidence={
            "steps": steps,
            "real_final": real[-1],
            "noise_final": noise[-1],
            "max_relative_gap": gap,
        },
    )


@register_check(
    id="labels-not-connected",
    reasons=(4,),
    severity="warning",
    kind="experiment",
    priority=16,
    explains=causes.LABEL_SYMPTOMS,
)
def labels_not_connected(ctx: CheckContext) -> None:
    """The real input–label pairing is learned no faster than shuffled labels.

    Why it matters:
        Real labels carry structure the model can use; labels permuted against the inputs
        can only be memorised. If both are learned at the same pace, the real pairing has
        no structure either — typically inputs and labels were shuffled independently,
        or the labels belong to other samples (an off-by-one, a sort applied to one side).

    What is measured:
        First the script's own run: on the later half of the batches it had not trained
        on yet (the first epoch of its DataLoader, or inputs not met before), its loss
        against the best constant prediction fitted to each batch's own targets
        (recorded with the loss call); a one-sided t-test at ``label_pairing_alpha``
        that it beats them shows the labels follow the inputs (labels independent of the
        inputs are predicted no better than by their own frequencies, and a constant
        fitted to the batch errs in its own favour). Then a cross-fit: copies trained on
        half the captured batches (``pairing_experiment_batches``, 8, of up to
        ``pairing_batch_size``, 64, samples) predict the other half. Where the batches' targets
        differ beyond chance (data fed sorted, one class per batch: the chi-square test of
        homogeneity, or for values the one-way analysis of variance, at
        ``label_pairing_alpha``), every experiment here runs on the same samples dealt
        anew into batches at random, each input with its own target: the order is for
        loader-not-shuffled, targets-sorted and single-label-batches to judge, and copies
        trained on one class at a time, or held out a class they never saw, would show a
        pairing that is there as missing. Where the shuffled-label runs'
        samples all hold one label, no permutation changes them: without a cross-fit
        showing the pairing the experiment is inconclusive. For classification,
        if their held-out accuracy beats the agreement their answers reach by chance (the
        sum over classes of the shares the answers and the labels give each; a one-sided
        binomial test at ``label_pairing_alpha``, 1%: with labels independent of the
        inputs the answers are right that often, so this is the test's error rate) the
        labels follow the inputs. Not the most frequent label's share: a copy that
        memorised labels 80/20 answers each about as often as they come and gets 68% right
        with or without a weak pairing. For other targets (values, binary or multi-label
        targets, masks) the copies' predictions are compared with their targets, each output
        element standardised over the held-out samples: their summed products (a
        covariance, blind to how over-confident a copy that memorised its half is),
        taken after all of the copies' steps and after each earlier half of them
        (``pairing_looks``), against the same with the targets permuted among the
        held-out samples (``pairing_permutations``, 999; a max-statistic permutation
        test at the same level). Otherwise copies from the initial weights are trained
        on the same batches with the real pairing and with the targets permuted within
        each batch by two independent permutations; the real run must end below every
        null run, or fall clearly further, or a copy must predict a held-out batch
        better than the label prior. The first happens by chance a third of the time (a
        real run ends lowest of three exchangeable runs), so it does not count against a
        cross-fit of at least ``pairing_min_held_out`` samples whose answers are right
        less often than chance agreement or rule out a useful gain over it. When every
        run memorises its batches, their curves
        cannot tell structure from noise, and held-out samples that the copies predict
        no better than a blind guess are what a real pairing not yet learned gives too
        (a model that memorises a few hundred samples before it generalises). So then, and
        whenever the first cross-fit shows the pairing neither beyond chance nor worse than
        a blind guess, a second cross-fit runs, for class labels and for targets of one
        column (a binary label, one value), on up to ``pairing_extended_batches`` (16)
        batches for ``pairing_extended_steps`` (150) steps (the probe keeps small batches
        up to 1024 samples for it), and decides: the labels follow the inputs at
        ``label_pairing_alpha``, or with at least ``pairing_min_held_out`` held-out samples
        they do not when those samples speak against the pairing by an equivalence test:
        for class labels, the gain of held-out accuracy over chance agreement in units of
        what chance leaves to gain (Cohen's kappa; for balanced labels, the share of the
        most frequent label's errors removed), its upper bound from Clopper-Pearson's at
        ``label_pairing_alpha`` on the accuracy, stays below ``pairing_useful_gain`` (a
        tenth), on at least ``pairing_min_per_class`` (32) held-out samples per class (with
        fewer, a hundred classes on 512 samples, a real pairing need not show in the
        budget). Copies that learn a pairing at least that well are called disconnected at
        most ``label_pairing_alpha`` of the time; disconnected labels on 512 held-out
        samples are called so nearly always (four balanced classes: 90 in 100 or more, in
        ``tests/checks/test_data_experiments.py``); with a frequent label near certain (95
        in 100) the test has no power and leaves the verdict inconclusive. A real pairing
        the copies learn less well than that in the budget is reported too: the finding
        says how far they got. Fewer right than chance alone is no evidence: a pairing not
        yet learned gives that half of the time.
        A binary target of one column (0 or 1, under binary cross-entropy on logits or
        probabilities) is two classes: its copies' held-out answers (a logit above 0, a
        probability above 0.5), at the look where the most are right, get the same
        equivalence test (the pairing shows by the value test below). Balanced labels on
        1024 held-out samples are called disconnected most of the time; labels 80/20 on
        512 rarely (the bound stays near 0.15), and then the experiment is inconclusive.
        Value targets have no such test (a noisy regression correlates weakly with
        anything a model learns in the budget, just as a disconnected target does):
        held-out predictions can show their pairing, never its absence, so the cross-fit
        leaves them inconclusive. Targets of several
        columns (multi-label tags) are judged by their columns' mean correlation, which a
        healthy multi-label task on the bench keeps within 0.005-0.02 of zero, where
        disconnected tags sit: for them, or with too few held-out samples, the experiment
        says it is inconclusive, as it does
        when nothing is learned and the model cannot fit even a tiny batch. Not shown to
        follow the inputs is not yet shown not to (a slow task looks the same in this
        budget), so the finding also needs the held-out samples, at least
        ``pairing_min_held_out`` of them, to speak against the pairing by the equivalence
        test; otherwise it is inconclusive. Without such a cross-fit nothing
        speaks against the pairing (a few dozen samples hold too few of each class for
        copies trained on the other half to show one, and a real run ending among the
        permuted runs is what a pairing not yet learned gives as often as a missing one). How
        often healthy scripts draw the finding is measured on the bench's healthy cases
        (the README's numbers).
        A teacher-forced model (an encoder-decoder fed its targets one position on beside
        its source: token ids, an image) is tested differently, because its decoder input
        alone predicts part of each target and any test permuting the targets alone
        breaks that link: a copy trained on half of up to ``pairing_extended_batches``
        batches for ``pairing_extended_steps`` steps scores the other half with each
        sample's own source and under ``source_permutations`` (19) permutations of the
        (decoder input, target) pairs among the samples. A p-value at most
        ``label_pairing_alpha`` (the real loss one more draw among the permuted losses:
        Student's t on their mean and spread) shows the targets follow the sources; the
        finding needs the gain from the own sources ruled out beyond a tenth of the loss
        (``pairing_useful_gain``, an upper bound at ``label_pairing_alpha``: the gain plus
        Student's quantile times the permuted losses' spread); otherwise it is
        inconclusive.

        Where no copy can rebuild the loss (a custom loss, a recognised loss on a
        transformed output, several terms), the script itself is replayed
        (``pairing_replay_steps``, 150 optimizer steps): once unchanged and
        ``pairing_replay_nulls`` (3) times with each sample's elements but the first (its
        target, or a second input: an image's caption) taken from another sample by a
        fixed random permutation, which holds across epochs as a wrong pairing in the
        data would. A sample is what a DataLoader reads from a map-style dataset, or what
        a step cuts by hand from tensors of the script's own: the first tensor a set of
        rows is drawn from (``x[idx]``, ``x[i:i + 64]``) holds their inputs, every other
        tensor of as many rows drawn by the same rows their other elements; or, where the
        first two steps feed the model one whole array the script holds (full-batch
        training), each of its rows: every other array the script holds with as many rows
        (a tensor, or a numpy array) holds their other elements, re-paired in place from
        the third step on, the first two steps' losses forgotten. Where that
        leaves the first step's loss unchanged, the loss does not read them and nothing is
        judged. The replays are seeded alike and read the same samples, so they
        differ in the pairing alone. Over the later half of the steps, the per-step gain
        of the unchanged replay's loss over the re-paired replays' mean is cut into
        ``pairing_replay_blocks`` (5) blocks; their means give Student's t bounds at
        ``label_pairing_alpha``; the upper one, which a finding rests on, is widened where
        the re-paired replays' own means over those steps lie further apart to the
        prediction interval of one more replay beside their mean (each re-pairing is one
        permutation drawn, and with labels that carry nothing so is the real pairing: it
        lands above or below the others by as much as they differ among themselves). A
        lower bound above zero shows the labels follow the inputs; an upper bound below
        zero (the real pairing runs higher, which exchangeable
        replays do only ``label_pairing_alpha`` of the time) shows a loss that learning a
        pairing does not lower (a policy's objective), and is inconclusive; an upper bound
        below ``pairing_useful_gain`` (a tenth) of the re-paired
        replays' loss, from a model that memorises a replayed tiny batch (the tiny-batch
        experiment's rule, or a tenth lower where its loss has a floor above zero), shows
        they do not (with disconnected labels the replays are exchangeable, and a pairing
        worth a tenth of that loss is called absent at most ``label_pairing_alpha`` of the
        time); otherwise the experiment is inconclusive. Samples of one element, iterable
        datasets, and last elements that are nearly all distinct numbers (indices, a
        label per sample: ``distinct_label_share``) are not judged.

    How to fix:
        Shuffle inputs and labels together (one permutation, or a DataLoader over a
        Dataset returning (x, y) pairs); check any sort or filter is applied to both.

    Example:
        Before::

            x = x[torch.randperm(len(x))]
            y = y[torch.randperm(len(y))]      # a different permutation

        After::

            perm = torch.randperm(len(x))
            x, y = x[perm], y[perm]
    """
    lab: Lab = ctx.services
    if lab is not None and not lab.available and lab.script is not None:
        pairing_by_replay(ctx, lab)
        return
    lab, subject = _require(ctx)
    t = ctx.thresholds
    # Two independent permutations of the targets within each batch: under disconnected
    # labels the real run is exchangeable with each, so it ends below both by chance a
    # third of the time.
    gens = [torch.Generator().manual_seed(seed) for seed in (1, 2)]
    shuffled: list[list[Any]] = [[] for _ in gens]
    labels: list[int] = []
    pool, anew = dealt(lab, subject, t, _batches(lab, t), "data")
    for batch in pool:
        target = subject.targets(batch)
        if not isinstance(target, torch.Tensor) or target.dim() == 0 or target.shape[0] < 2:
            ctx.skip("the targets are not a tensor with a batch axis")
        if target.dim() == 1 and not target.is_floating_point():
            labels += target.tolist()
        for gen, batches in zip(gens, shuffled, strict=True):
            perm = torch.randperm(target.shape[0], generator=gen).to(target.device)
            new = subject.with_targets(batch, target[perm])
            if new is None:
                ctx.skip(
                    "the batch layout does not say where the targets are (give Subject.replace_targets)"
                )
            batches.append(new)
    if labels and len(set(labels)) > t.distinct_label_share * len(labels):
        # One sample per class (surrogate classes, instance discrimination): there is no
        # pairing to learn faster than by heart.
        ctx.skip(
            f"{len(set(labels))} distinct labels among {len(labels)} samples: each label is learned by heart"
        )
    layout = teacher_layout(
        subject, pool[0], int(subject.loss_kwargs.get("ignore_index", -100)), t.next_token_match
    )
    if layout is not None:
        _judge_sources(ctx, lab, subject, layout)
        return
    run = run_evidence(ctx.recording, t)
    if run is not None and run.better_than_labels_alone() < t.label_pairing_alpha:
        ctx.note(f"{run.describe()}: the labels follow the inputs")
        return
    fit: CrossFit | ValueCrossFit | None = (
        cross_fit(lab, subject, t, pairing=True)
        if subject.task.kind == "classification"
        else _value_fit(lab, subject, t)
    )
    if fit is not None and fit.total:
        p = fit.pairing_p()
        if p < t.label_pairing_alpha:
            ctx.note(f"{fit.describe()}: the labels follow the inputs")
            return
    if labels and len(set(labels)) < 2:
        # Every permutation of one label is the same labels: the permuted runs are no null.
        ctx.inconclusive(
            f"the shuffled-label runs' {len(labels)} samples all hold label {labels[0]}, which no "
            "permutation changes"
            + (f", and {fit.describe()}" if fit is not None and fit.total else "")
            + ": inconclusive"
        )
        return
    real = (
        real_run(lab, t)
        if not anew
        else lab.memo(
            "data-real-dealt",
            lambda: lab.train(pool, t.data_experiment_steps, regularisation=False),
        )
    )
    perm_run, again = (
        lab.train(b, t.data_experiment_steps, regularisation=False) for b in shuffled
    )
    if not (math.isfinite(real.final) and math.isfinite(perm_run.final)):
        ctx.skip("a training run did not stay finite")
    # Null runs: labels permuted against the inputs, twice. Disconnected labels make the
    # real run one more draw like them; only a real run that beats every one of them has
    # learned from the pairing. (Inputs replaced by noise are no such draw: random token
    # ids or pixels are easier or harder to memorise than the real ones.)
    nulls = {"shuffled labels": perm_run, "shuffled again": again}
    nulls = {k: v for k, v in nulls.items() if math.isfinite(v.final)}
    ctx.note(
        f"real pairing: loss {real.initial:.4g} → {real.final:.4g}; "
        + "; ".join(f"{k}: {v.initial:.4g} → {v.final:.4g}" for k, v in nulls.items())
        + (f"; {fit.describe()}" if fit is not None and fit.total else "")
        + (f"; {run.describe()}" if run is not None else "")
    )
    # Both pairings memorised: losses near zero compare by chance (the real run ends lowest
    # of three exchangeable runs a third of the time), so only held-out samples decide.
    memorised = real.final < 0.5 * real.initial and perm_run.final < 0.5 * perm_run.initial
    # Ending below both null runs happens by chance a third of the time when the labels are
    # disconnected: enough on its own, not against copies whose answers on enough samples
    # they never saw are right less often than chance, or rule out a useful gain over it
    # (the equivalence test's error rate is label_pairing_alpha). Those are left to the
    # tests below, the second cross-fit on more samples among them, which a real pairing
    # learned slowly passes. Falling clearly further than both (below) is rarer by
    # chance, and what a real pairing gives a model that has not generalised yet.
    held_out_against = (
        fit is not None
        and fit.total >= t.pairing_min_held_out
        and (fit.leans_against() or fit.against(t))
    )
    if (
        not memorised
        and not held_out_against
        and all(real.final <= (1 - t.shuffled_label_margin) * v.final for v in nulls.values())
    ):
        return
    real_drop = real.initial - real.final
    if (
        not memorised
        and real_drop > t.learned_fraction * real.initial
        and all(
            real_drop > t.shuffled_label_speedup * max(v.initial - v.final, 0.0)
            for v in nulls.values()
        )
    ):
        # The real pairing is learned clearly faster, only not far enough yet in this budget.
        ctx.note(ctx.detail + " — the real pairing fell clearly further than every null run")
        return
    held = held_out_run(lab, t, pairing=True)
    if held is not None and held.beats_prior(t):
        ctx.note(
            ctx.detail
            + f" — a held-out batch is predicted better than the label prior ({held.after:.4g} "
            f"against {held.prior:.4g}): the labels do follow the inputs"
        )
        return
    if real.final > (1 - t.learned_fraction) * real.initial and not lab.fits(
        lab.overfit_user(t), t
    ):
        # A model that cannot even memorise a tiny batch (dead units, a zero rate) learns no
        # pairing at all, and that says nothing about the labels.
        ctx.inconclusive(
            ctx.detail + " — nothing was learned, and the model cannot fit a tiny batch either: "
            "inconclusive (see cannot-overfit-tiny-batch)"
        )
        return
    if fit is not None and fit.total and (memorised or not fit.leans_against()):
        # Copies that memorised a few hundred samples, or that learned something on them
        # not yet shown beyond chance: so do models that memorise before they generalise (a
        # Transformer counting sentiment words on the bench, on 256 samples), and real but
        # weak signals. A second cross-fit on more samples, for more steps, gives the real
        # pairing its chance, and the verdict rests on it: the pairing shows, or the
        # held-out samples speak against it (worse than a blind guess, or a useful gain
        # ruled out at label_pairing_alpha), or it is inconclusive.
        # Targets of several columns (multi-label tags) are judged by their columns' mean
        # correlation, most of them rare tags near zero: a healthy multi-label task on the
        # bench sits at 0.005-0.02 there, where disconnected tags sit, so they stay
        # inconclusive.
        wider: CrossFit | ValueCrossFit | None = (
            _value_fit(lab, subject, t, extended=True)
            if isinstance(fit, BinaryCrossFit)
            else cross_fit(lab, subject, t, pairing=True, extended=True)
            if isinstance(fit, CrossFit)
            else value_cross_fit(lab, subject, t, extended=True)
            if isinstance(fit, ValueCrossFit) and fit.columns == 1
            else None
        )
        if wider is not None and wider.total:
            ctx.note(ctx.detail + f"; on more samples and steps, {wider.describe()}")
            if wider.pairing_p() < t.label_pairing_alpha:
                ctx.note(ctx.detail + ": the labels follow the inputs")
                return
            fit = wider
        elif memorised:
            ctx.inconclusive(
                ctx.detail
                + (
                    " — both memorised, and targets of several columns show too weak a "
                    "pairing to judge on more samples: inconclusive"
                    if isinstance(fit, ValueCrossFit) and fit.columns > 1
                    else " — both memorised: inconclusive"
                )
            )
            return
    if memorised and not (
        fit is not None and fit.total >= t.pairing_min_held_out and fit.against(t)
    ):
        # Both pairings were memorised within the budget: a large model on a few samples
        # learns anything by heart, and the curves cannot tell structure from noise. Only
        # samples held out could, and there are too few, or they do not speak against the
        # pairing. That shows no pairing, which is not yet the absence of one.
        ctx.inconclusive(
            ctx.detail
            + (
                " — both memorised, and too few held-out samples: inconclusive"
                if fit is None or fit.total < t.pairing_min_held_out
                else " — both memorised, and held-out predictions that do not show the pairing "
                "do not show it absent: inconclusive"
            )
        )
        return
    # Not shown to follow the inputs is not yet shown not to: a task learned slowly looks
    # the same in this budget. The finding needs the held-out samples to speak against the
    # pairing: copies short of a useful gain over chance agreement beyond reasonable doubt.
    # Held-out samples speak only where there are enough of them: a few dozen (a batch of
    # four, eight batches) hold too few of each class for copies trained on the other half
    # to show any pairing. Without them nothing here can: a real run ending among the
    # permuted ones is what a disconnected pairing gives, and a real one not yet learned
    # on a few dozen samples as often.
    if fit is None or fit.total < t.pairing_min_held_out:
        ctx.inconclusive(
            ctx.detail
            + " — the real pairing is not shown to be learned faster, and "
            + (
                f"{fit.total} held-out samples (fewer than {t.pairing_min_held_out}) are too "
                "few to show it absent"
                if fit is not None and fit.total
                else "no held-out samples could show it absent"
            )
            + ": inconclusive"
        )
        return
    if not fit.against(t):
        ctx.inconclusive(
            ctx.detail
            + " — the real pairing is not shown to be learned faster, and held-out samples "
            "that do not show it do not rule out a useful one: inconclusive"
        )
        return
    evidence: dict[str, Any] = {
        "real_final": real.final,
        "shuffled_final": perm_run.final,
        "steps": t.data_experiment_steps,
    }
    held_out = ""
    if fit.total:
        # Only class labels' cross-fits, and a binary label's answers, speak against a pairing
        # (ValueCrossFit.against).
        assert isinstance(fit, CrossFit)
        evidence.update(fit.evidence())
        held_out = fit.sentence(t)
    if "shuffled again" in nulls:
        evidence["shuffled_again_final"] = nulls["shuffled again"].final
    if run is not None:
        evidence.update(run_mean_gain=run.mean_gain, run_fresh_steps=run.steps)
    evidence["memorised"] = memorised
    if memorised:
        ctx.finding(
            title="Labels are no more predictable from their inputs than by chance",
            message=(
                f"The model memorises any pairing of these batches (after {t.data_experiment_steps} steps "
                f"the loss with the real labels is {real.final:.4g}, with labels permuted against the "
                f"inputs {perm_run.final:.4g}), so only samples it never saw can tell the real pairing "
                f"apart, and copies trained on {t.pairing_extended_steps} steps over more samples "
                f"still cannot.{held_out} The labels do not follow the inputs."
            ),
            fix="Check that inputs and labels are shuffled, sorted, cropped and filtered together.",
            evidence=evidence,
        )
        return
    ctx.finding(
        title="Real labels are learned no faster than shuffled ones",
        message=(
            f"After {t.data_experiment_steps} steps on the same batches the loss with the real labels is "
            f"{real.final:.4g}, with labels permuted against the inputs {perm_run.final:.4g}"
            + (
                f" (and {nulls['shuffled again'].final:.4g} permuted again)"
                if "shuffled again" in nulls
                else ""
            )
            + f": the pairing of inputs and labels carries no learnable structure.{held_out}"
        ),
        fix="Check that inputs and labels are shuffled, sorted and filtered together.",
        evidence=evidence,
    )


def _judge_sources(ctx: CheckContext, lab: Lab, subject: Subject, layout: TeacherLayout) -> None:
    """labels-not-connected for a teacher-forced model: the source against the (decoder
    input, target) pairs (see nndoctor.checks.data.teacher)."""
    t = ctx.thresholds
    batches = lab.small_batches(t.pairing_extended_batches, t.pairing_batch_size)
    batches, _ = dealt(lab, subject, t, batches, "sources")
    fit = source_pairing(
        lab, subject, batches, layout, t.pairing_extended_steps, t.source_permutations
    )
    if fit is None:
        ctx.inconclusive(
            "the model is fed its targets one position on (teacher forcing), and too few "
            "batches are kept to test its other inputs against them: inconclusive"
        )
        return
    if fit.p_value <= t.label_pairing_alpha:
        ctx.note(f"{fit.describe()}: the targets follow the model's other inputs")
        return
    permuted = sum(fit.permuted) / len(fit.permuted)
    useful = t.pairing_useful_gain * permuted
    bound = fit.gain_bound(t.label_pairing_alpha)
    if bound >= useful:
        ctx.inconclusive(
            f"{fit.describe()}: a gain of a tenth of the loss ({useful:.3g}) is not ruled out "
            f"(upper bound {bound:.3g}): inconclusive"
        )
        return
    ctx.finding(
        title="Targets do not follow the model's inputs beyond its decoder input",
        message=(
            f"The model is fed its targets one position on (teacher forcing), which predicts "
            f"part of them by itself; tested against that, {fit.describe()}. The gain from "
            f"the samples' own sources is at most {max(bound, 0.0):.3g} "
            f"(upper bound at {t.label_pairing_alpha:g}), under a tenth of the loss: the "
            "sources and targets are paired at random."
        ),
        fix=(
            "Check that sources and targets are shuffled, sorted, padded and filtered "
            "together (a collate_fn that sorts the sources must reorder the targets too)."
        ),
        evidence={
            "teacher_input": layout.index,
            "held_out_samples": fit.samples,
            "steps": fit.steps,
            "loss_own_sources": fit.real,
            "loss_other_sources": permuted,
            "p_value": fit.p_value,
            "gain_upper_bound": bound,
        },
    )


@register_check(
    id="nothing-generalizes", reasons=(5,), severity="info", kind="experiment", priority=24
)
def nothing_generalizes(ctx: CheckContext) -> None:
    """A few batches are memorised, but a held-out batch stays at its initial loss.

    Why it matters:
        When the model fits its training samples yet predicts nothing about unseen ones,
        either the relation between input and output is too random to learn at this
        scale, or something differs between the samples (leakage in one direction,
        labels that are noise). It is evidence, not a verdict: a few batches are little.

    What is measured:
        A copy trained on the captured batches but the last (``data_experiment_batches``,
        4, cut to ``experiment_batch_size`` samples); the loss on the last, held-out batch
        before and after.

    How to fix:
        Check the labels on a sample by eye, try a simpler version of the task, and get
        more data before concluding the task is learnable.

    Example:
        Before::

            y = torch.randint(0, 10, (n,))        # labels unrelated to the inputs

        After::

            y = labels_from_the_annotation_file
    """
    lab, _ = _require(ctx)
    held = held_out_run(lab, ctx.thresholds)
    if held is None:
        ctx.skip("fewer than four batches were captured")
    run, before, after = held.run, held.before, held.after
    ctx.note(
        f"training batches: {run.initial:.4g} → {run.final:.4g}; held-out batch: {before:.4g} → {after:.4g}"
    )
    if not (math.isfinite(before) and math.isfinite(after) and math.isfinite(run.final)):
        return
    if run.final <= 0.5 * run.initial and after >= 0.98 * before:
        ctx.finding(
            title="Training batches are fit, a held-out batch is not",
            message=(
                f"On {held.batches} batches the loss fell from {run.initial:.4g} to {run.final:.4g}, while on a held-out "
                f"batch it went from {before:.4g} to {after:.4g}: nothing learned so far carries over."
            ),
            fix="Inspect labels against inputs by eye, and try more data or a simpler task before more tuning.",
            evidence={"train_final": run.final, "held_out_before": before, "held_out_after": after},
        )


@register_check(
    id="label-noise",
    reasons=(6,),
    severity="warning",
    kind="experiment",
    priority=23,
    explains=frozenset({"nothing-generalizes", "loss-accuracy-disagree"}),
)
def label_noise(ctx: CheckContext) -> None:
    """Many samples are confidently predicted as another class by a model that never saw them.

    Why it matters:
        A model trained on part of the data, asked about the rest, disagrees confidently
        with a few labels in any dataset — those are worth a look. When the share is large
        while its accuracy on the others is good, the labels themselves are noisy, and the
        noise caps what the model can learn.

    What is measured:
        Cross-fitting on the captured batches: a copy trained on half predicts the other
        half and vice versa; the share of samples whose predicted class is another one
        with probability above the confidence threshold. A warning only when the copies
        are right about ``label_noise_clean_accuracy`` (95%) of the samples they do not
        contradict, otherwise a note: a weak copy's confident mistakes are its own. Nothing
        when the copies do no better than always answering the most frequent label
        (one-sided binomial test at ``label_pairing_alpha``, 1%): a copy that answers one
        class confidently contradicts every other label. Skipped when a copy's training
        loss rises above ``label_noise_unstable_rise`` (3) times its start: an unstable
        run is confidently wrong about clean labels too.

    How to fix:
        Look at the flagged samples (their indices are in the evidence), relabel or drop
        them, or use a noise-robust loss (label smoothing, bootstrapping).

    Example:
        Before::

            loss = F.cross_entropy(logits, noisy_y)

        After::

            loss = F.cross_entropy(logits, cleaned_y, label_smoothing=0.1)
    """
    lab, subject = _require(ctx)
    if subject.task.kind != "classification":
        ctx.skip("label noise is estimated for single-label classification only")
    t = ctx.thresholds
    fit = cross_fit(lab, subject, t)
    if fit is None:
        ctx.skip(
            "fewer than four batches were captured, or the subject gives no per-sample class scores"
        )
    for run in fit.runs:
        peak = max((x for x in run.losses if math.isfinite(x)), default=math.nan)
        if run.diverged or not peak <= t.label_noise_unstable_rise * run.initial:
            # An unstable copy (a far too high rate) is confidently wrong about clean labels too.
            ctx.skip(
                f"the copy trained with the user's optimiser is unstable (loss {run.initial:.4g} rose to "
                f"{peak:.4g}): its confident mistakes say nothing about the labels (see loss-diverging, "
                "learning-rate-out-of-range)"
            )
    wrong = (
        (fit.predicted != fit.labels) & (fit.confidence > t.label_noise_confidence) & fit.labelled
    )
    confident_wrong, total, correct = int(wrong.sum()), fit.total, fit.correct
    flagged = [int(i) for i in wrong.nonzero().flatten()]
    share = confident_wrong / max(total, 1)
    accuracy = correct / max(total, 1)
    unflagged = total - confident_wrong
    clean_accuracy = correct / unflagged if unflagged else 0.0
    ctx.note(
        f"held-out accuracy {accuracy:.3f} ({clean_accuracy:.3f} on the samples not contradicted); "
        f"{confident_wrong} of {total} samples confidently contradict their labels"
    )
    if share < t.label_noise_fraction or accuracy < 0.5:
        return
    p = fit.better_than_labels_alone()
    if p >= t.label_pairing_alpha:
        # A copy no better than always answering the most frequent label (binomial test)
        # contradicts every other label confidently: its mistakes are its own.
        ctx.note(
            ctx.detail + f" — but the copies do no better than the most frequent label "
            f"({fit.majority_share:.0%}, binomial p={p:.2g}): no evidence about the labels"
        )
        return
    # A copy trained on a few batches is weak and over-confident: most of its own mistakes
    # are confident too. Only a copy that is nearly always right elsewhere makes its
    # confident contradictions evidence against the labels rather than against itself.
    strong = clean_accuracy >= t.label_noise_clean_accuracy
    ctx.finding(
        title="Many labels look wrong" if strong else "Some labels may be wrong: worth a look",
        message=(
            f"{confident_wrong} of {total} samples ({share:.0%}) are predicted as another class with "
            f"probability above {t.label_noise_confidence} by a copy that never saw them, while it gets "
            f"{clean_accuracy:.0%} of the other samples right"
            + (
                ": a large share of labels may be noise."
                if strong
                else f" (below {t.label_noise_clean_accuracy:.0%}: the copy's own mistakes could explain them)."
            )
        ),
        fix="Inspect the flagged samples and relabel or drop them; consider label smoothing.",
        severity=None if strong else "info",
        evidence={
            "share": share,
            "held_out_accuracy": accuracy,
            "accuracy_not_contradicted": clean_accuracy,
            "flagged_samples": flagged[:20],
        },
    )
