"""Distributed jobs: the bugs that only several ranks have (reasons 3, 7, 23, 26, 32, 36).

These checks compare the ranks of one job. They read ``recording.distributed``, the
:class:`~nndoctor.probes.distributed.DistributedRecord` that rank 0 gathers from every rank
(:mod:`nndoctor.distributed.check`), and run there only: in a single process they are no
part of the report. Every finding names the ranks it concerns in ``where.ranks``.

Synchronised replicas are bit-identical: DDP broadcasts rank 0's parameters at
construction, averages the gradients in the backward pass so that every rank holds the same
bits, and every rank then applies the same update. So the parameter norms, gradient norms
and (with SyncBatchNorm, or DDP's buffer broadcast) buffer norms the rank probe records
match exactly on every rank, and any difference beyond ``rank_checksum_rtol`` means the
replicas are not the same model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import module_of
from nndoctor.report.model import Where

if TYPE_CHECKING:
    from nndoctor.probes.distributed import DistributedRecord, RankFacts


def _record(ctx: CheckContext) -> DistributedRecord:
    record = ctx.recording.distributed
    if record is None:
        ctx.skip("not a distributed job")
    if len(record.ranks) < 2:
        ctx.skip("fewer than two ranks answered: nothing to compare")
    return record


def _ranks_text(ranks: Iterable[int]) -> str:
    ranks = sorted(ranks)
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def _differ(a: float, b: float, rtol: float) -> bool:
    """Whether two checksums differ: NaN on both sides (nothing recorded) is no difference."""
    if math.isnan(a) and math.isnan(b):
        return False
    if math.isnan(a) or math.isnan(b):
        return True
    return abs(a - b) > rtol * max(abs(a), abs(b), 1e-30)


# -- the same data on every rank ------------------------------------------------------------


def _shared_share(mine: list[float], theirs: list[float]) -> float:
    """The share of ``mine`` (one fingerprint per sample) also in ``theirs``."""
    if not mine or not theirs:
        return 0.0
    ordered = sorted(theirs)
    hits = 0
    for v in mine:
        tol = 1e-6 * abs(v) + 1e-9
        i = bisect.bisect_left(ordered, v - tol)
        hits += i < len(ordered) and ordered[i] <= v + tol
    return hits / len(mine)


def _step_shares(a: RankFacts, b: RankFacts) -> dict[int, float]:
    """Per step both ranks recorded: the share of b's samples also in a's batch."""
    shares: dict[int, float] = {}
    for step, fps in b.sample_fingerprints.items():
        if step in a.sample_fingerprints:
            shares[step] = _shared_share(fps, a.sample_fingerprints[step])
    if shares:
        return shares
    for step, fp in b.batch_fingerprints.items():  # no per-sample fingerprints: whole batches
        if step in a.batch_fingerprints:
            shares[step] = float(
                all(
                    math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
                    for x, y in zip(fp, a.batch_fingerprints[step], strict=True)
                )
            )
    return shares


@register_check(id="ranks-read-same-batches", reasons=(3,), severity="error", distributed=True)
def ranks_read_same_batches(ctx: CheckContext) -> None:
    """Every rank reads the same batches.

    Why it matters:
        Data parallelism splits the data: each rank must see its own share of every epoch.
        When every rank reads the same samples (a DataLoader without a DistributedSampler,
        or each rank shuffling the whole data set with the same seed), the all-reduced
        gradient is the gradient of one rank's batch: N ranks do the work of one, the
        epoch is N times longer than it looks, and nothing fails or warns.

    What is measured:
        Every rank's model input at each observed step, one fingerprint per sample (a fixed
        random projection of the sample, the same on every rank). For each pair of ranks,
        the share of one rank's samples also in the other's batch of the same step: a
        step shares its batch above ``rank_shared_sample_fraction``, and ranks that share
        at ``rank_shared_step_fraction`` of the steps read the same data. A
        DistributedSampler's shards share nothing (at most a few padding samples).

    How to fix:
        Give each rank its own shard: ``DistributedSampler(dataset)`` as the loader's
        sampler (and ``shuffle=False`` on the loader itself), with ``set_epoch`` at every
        epoch; or, for data sliced by hand, take every world-size-th sample from the rank.

    Example:
        Before::

            loader = DataLoader(dataset, batch_size=32, shuffle=True)

        After::

            sampler = DistributedSampler(dataset)
            loader = DataLoader(dataset, batch_size=32, sampler=sampler)
            for epoch in range(epochs):
                sampler.set_epoch(epoch)
                for x, y in loader:
                    ...
    """
    record = _record(ctx)
    t = ctx.thresholds
    pairs: list[tuple[int, int, int, int, float, int]] = []
    compared = 0
    for i, a in enumerate(record.ranks):
        for b in record.ranks[i + 1 :]:
            shares = _step_shares(a, b)
            if len(shares) < 2:
                continue
            compared += 1
            shared = sorted(s for s, v in shares.items() if v >= t.rank_shared_sample_fraction)
            mean = sum(shares.values()) / len(shares)
            if len(shared) >= t.rank_shared_step_fraction * len(shares):
                pairs.append((a.rank, b.rank, len(shared), len(shares), mean, shared[0]))
    if not compared:
        ctx.skip("fewer than two steps with a recorded model input on two ranks")
    ctx.note(f"{compared} pair(s) of ranks compared, {len(pairs)} read the same batches")
    if not pairs:
        return
    ranks = sorted({r for p in pairs for r in p[:2]})
    a, b, shared, steps, mean, first = pairs[0]
    ctx.finding(
        title="Every rank reads the same batches",
        message=(
            f"Ranks {a} and {b} fed their model the same samples at {shared} of {steps} "
            f"observed steps ({mean:.0%} of rank {b}'s samples were in rank {a}'s batch of the "
            f"same step, on average); {_ranks_text(ranks)} read the same data. The all-reduced "
            f"gradient is then one rank's gradient: {record.world} ranks do the work of one."
        ),
        fix=(
            "Shard the data: DataLoader(dataset, sampler=DistributedSampler(dataset)) with "
            "shuffle left off on the loader, and sampler.set_epoch(epoch) at every epoch."
        ),
        where=Where(step=first, ranks=tuple(ranks)),
        evidence={
            "pairs": [{"ranks": [p[0], p[1]], "shared_steps": p[2], "steps": p[3]} for p in pairs],
            "mean_shared_share": mean,
            "world_size": record.world,
        },
    )


# -- a DistributedSampler whose epoch never advances --------------------------------------


@register_check(id="sampler-epoch-not-set", reasons=(7,), severity="warning", distributed=True)
def sampler_epoch_not_set(ctx: CheckContext) -> None:
    """A DistributedSampler replays the same order every epoch (set_epoch never called).

    Why it matters:
        A shuffling DistributedSampler draws its permutation from its seed and its epoch.
        Without ``sampler.set_epoch(epoch)`` before each epoch the epoch stays 0: every
        epoch visits the samples in the same order, in the same batches, on the same rank,
        which is an unshuffled data set with extra steps. Training still runs and the loss
        still falls, a little worse and for no visible reason.

    What is measured:
        Every pass of a ``DistributedSampler`` with ``shuffle=True`` over a training loop
        (gradients enabled when the pass began): its data set, seed and epoch. Two passes
        over the same data set with the same seed and epoch give the same order.

    How to fix:
        Call ``sampler.set_epoch(epoch)`` at the start of every epoch, before iterating
        the loader; a sampler built anew every epoch needs it too.

    Example:
        Before::

            for epoch in range(epochs):
                for x, y in loader:
                    ...

        After::

            for epoch in range(epochs):
                sampler.set_epoch(epoch)
                for x, y in loader:
                    ...
    """
    record = _record(ctx)
    repeated: dict[int, tuple[int, int]] = {}  # rank -> (passes, epoch repeated)
    observed = 0
    for facts in record.ranks:
        passes = [p for p in facts.sampler_passes if p.shuffle and p.training]
        by_data: dict[int, list[tuple[int, int]]] = {}
        for p in passes:
            by_data.setdefault(p.dataset, []).append((p.seed, p.epoch))
        for orders in by_data.values():
            if len(orders) < 2:
                continue
            observed += 1
            again = [o for i, o in enumerate(orders) if o in orders[:i]]
            if again:
                repeated[facts.rank] = (len(orders), again[0][1])
    if not observed:
        ctx.skip(
            "no shuffling DistributedSampler was iterated twice in training within the step "
            "budget (raise --steps past one epoch to see a second pass)"
        )
    ctx.note(
        f"{observed} sampler(s) iterated twice or more; {len(repeated)} rank(s) repeat an epoch"
    )
    if not repeated:
        return
    passes, epoch = next(iter(repeated.values()))
    everywhere = len(repeated) == len(record.ranks)
    ctx.finding(
        title="A DistributedSampler replays the same order every epoch",
        message=(
            f"The training DistributedSampler was iterated {passes} times within the observed "
            f"steps, with the same seed and epoch ({epoch}) more than once "
            f"{'on every rank' if everywhere else 'on ' + _ranks_text(repeated)}: set_epoch was "
            "not called (or not with a new epoch), so every epoch repeats the same order, in "
            "the same batches."
        ),
        fix="Call sampler.set_epoch(epoch) at the start of every epoch, before iterating the loader.",
        where=Where(ranks=None if everywhere else tuple(sorted(repeated))),
        evidence={"passes": passes, "epoch": epoch, "ranks": sorted(repeated)},
    )


# -- replicas that differ ---------------------------------------------------------------


def _diverging(
    record: DistributedRecord, rows: str, names: str, rtol: float
) -> tuple[dict[str, int], dict[int, set[int]], int, float]:
    """Compare the per-step rows ``rows`` (named by ``names``) of every rank with rank 0's.

    Returns the first step (1-based) at which each differing name differs, the ranks that
    differ from rank 0 at each such step, how many steps were compared and the largest
    relative difference."""
    base = record.ranks[0]
    first: dict[str, int] = {}
    ranks_at: dict[int, set[int]] = {}
    compared, worst = 0, 0.0
    base_rows, base_names = getattr(base, rows), getattr(base, names)
    for other in record.ranks[1:]:
        if getattr(other, names) != base_names:
            continue  # different parameter lists: not the same model, nothing to compare
        for step, (x, y) in enumerate(zip(base_rows, getattr(other, rows), strict=False), 1):
            compared = max(compared, step)
            for name, a, b in zip(base_names, x, y, strict=True):
                if _differ(a, b, rtol):
                    first[name] = min(first.get(name, step), step)
                    ranks_at.setdefault(step, {0}).add(other.rank)
                    if not (math.isnan(a) or math.isnan(b)):
                        worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-30))
    return first, ranks_at, compared, worst


def _replicated(ctx: CheckContext, record: DistributedRecord) -> None:
    sharded = [f.rank for f in record.ranks if f.sharded]
    if sharded:
        ctx.skip("the parameters are FSDP shards: they differ across ranks by design")


def _modules(names: Iterable[str], outside: set[str]) -> list[str]:
    """The model's modules holding ``names`` (those outside the model have no module)."""
    return list(dict.fromkeys(module_of(n) or "<root>" for n in names if n not in outside))


@register_check(
    id="grads-differ-across-ranks",
    reasons=(26,),
    severity="error",
    distributed=True,
    explains=("params-diverge-across-ranks",),
)
def grads_differ_across_ranks(ctx: CheckContext) -> None:
    """Gradients differ across ranks after the all-reduce.

    Why it matters:
        DDP averages every parameter's gradient over the ranks during the backward pass;
        at the optimizer step all ranks hold the same gradient. A parameter outside the
        DDP-wrapped module (a head or a learnable loss weight added to the optimizer on
        its own), or a backward pass run entirely under ``no_sync()``, keeps its local
        gradient: each rank then steps with a different gradient, and the replicas drift
        apart from the first step on, silently.

    What is measured:
        At the end of every optimizer step, the norm of the gradient of every parameter
        the optimizer holds, on every rank, compared with rank 0's (relative difference
        above ``rank_checksum_rtol``; synchronised gradients are bit-identical).

    How to fix:
        Put every trained module inside the one module DDP wraps (or wrap the extra
        module in DDP too), and keep ``no_sync()`` to the micro-batches before the last
        one of an accumulated step: the last backward pass must synchronise.

    Example:
        Before::

            model = DDP(backbone)
            optimizer = SGD([*model.parameters(), *head.parameters()], lr=0.1)
            loss = criterion(head(model(x)), y)

        After::

            model = DDP(nn.Sequential(backbone, head))
            optimizer = SGD(model.parameters(), lr=0.1)
            loss = criterion(model(x), y)
    """
    record = _record(ctx)
    _replicated(ctx, record)
    base = record.ranks[0]
    if not base.grad_norms:
        ctx.skip("no optimizer step with gradients was recorded")
    first, ranks_at, compared, worst = _diverging(
        record, "grad_norms", "param_names", ctx.thresholds.rank_checksum_rtol
    )
    ctx.note(
        f"{len(base.param_names)} gradients compared across {len(record.ranks)} ranks at {compared} step(s)"
    )
    if not first:
        return
    outside = set(base.outside_model)
    names = sorted(first, key=lambda n: (first[n], base.param_names.index(n)))
    step = first[names[0]]
    steps = len(ranks_at)
    ranks = tuple(sorted(set().union(*ranks_at.values())))
    if set(names) <= outside:
        why = "they are outside the module DDP wraps, so their gradients are never all-reduced"
    elif len(names) == len(base.param_names):
        why = (
            "no gradient was all-reduced at those steps: the backward pass ran under no_sync(), "
            "or the model that stepped is not the one DDP wraps"
        )
    else:
        why = "their gradients were not all-reduced with the others'"
    modules = _modules(names, outside)
    ctx.finding(
        title="Gradients differ across ranks after the all-reduce",
        message=(
            f"{len(names)} of {len(base.param_names)} parameters held different gradients on "
            f"{_ranks_text(ranks)} at {steps} of {compared} steps (largest relative difference "
            f"{worst:.2g}), from step {step} on: {why}. Each rank steps with its own gradient."
        ),
        fix=(
            "Wrap every trained module in the one DDP model (DDP(nn.Sequential(backbone, "
            "head))), and let the last backward pass of an accumulated step run outside "
            "no_sync()."
        ),
        where=Where(
            module=None if names[0] in outside else module_of(names[0]),
            step=step,
            ranks=ranks,
        ),
        evidence={
            "parameters": names[:10],
            "modules": modules[:10],
            "outside_model": sorted(set(names) & outside),
            "steps_differing": steps,
            "steps_compared": compared,
            "max_relative_difference": worst,
        },
    )


@register_check(
    id="params-diverge-across-ranks", reasons=(26, 23), severity="error", distributed=True
)
def params_diverge_across_ranks(ctx: CheckContext) -> None:
    """The ranks' parameters drift apart: the replicas are no longer one model.

    Why it matters:
        Data parallelism trains one model on N ranks: every rank must hold the same
        parameters at every step. Once they differ, each rank trains its own model on its
        own shard, the checkpoint rank 0 saves is one of N different models, and metrics
        averaged over ranks describe none of them.

    What is measured:
        After every optimizer step, the norm of every parameter the optimizer holds, on
        every rank, compared with rank 0's (relative difference above
        ``rank_checksum_rtol``; synchronised replicas are bit-identical).

    How to fix:
        Wrap every trained module in DDP (it broadcasts rank 0's parameters when built and
        keeps the gradients equal); initialise parameters created outside it the same way
        on every rank (the same seed), or broadcast them from rank 0.

    Example:
        Before::

            torch.manual_seed(rank)        # a different head on every rank
            head = nn.Linear(64, 10)
            model = DDP(backbone)

        After::

            model = DDP(nn.Sequential(backbone, nn.Linear(64, 10)))
    """
    record = _record(ctx)
    _replicated(ctx, record)
    base = record.ranks[0]
    if not base.param_norms:
        ctx.skip("no optimizer step was recorded")
    first, ranks_at, compared, worst = _diverging(
        record, "param_norms", "param_names", ctx.thresholds.rank_checksum_rtol
    )
    ctx.note(
        f"{len(base.param_names)} parameters compared across {len(record.ranks)} ranks at {compared} step(s)"
    )
    if not first:
        return
    outside = set(base.outside_model)
    names = sorted(first, key=lambda n: (first[n], base.param_names.index(n)))
    step = first[names[0]]
    ranks = tuple(sorted(set().union(*ranks_at.values())))
    ctx.finding(
        title="The ranks' parameters have diverged",
        message=(
            f"{len(names)} of {len(base.param_names)} parameters hold different values on "
            f"{_ranks_text(ranks)} (largest relative difference of their norms {worst:.2g}), "
            f"from step {step} on"
            + (
                f"; {len(set(names) & outside)} of them are outside the module DDP wraps"
                if set(names) & outside
                else ""
            )
            + ": each rank now trains a different model."
        ),
        fix=(
            "Wrap every trained module in the one DDP model, so its parameters start from rank "
            "0's and its gradients are averaged; initialise anything outside it identically on "
            "every rank."
        ),
        where=Where(
            module=None if names[0] in outside else module_of(names[0]), step=step, ranks=ranks
        ),
        evidence={
            "parameters": names[:10],
            "modules": _modules(names, outside)[:10],
            "steps_compared": compared,
            "max_relative_difference": worst,
        },
    )


@register_check(
    id="buffers-diverge-across-ranks", reasons=(32,), severity="warning", distributed=True
)
def buffers_diverge_across_ranks(ctx: CheckContext) -> None:
    """Buffers (BatchNorm statistics) differ across ranks: SyncBatchNorm was not in effect.

    Why it matters:
        BatchNorm keeps running statistics in buffers. DDP broadcasts rank 0's buffers
        before every forward (``broadcast_buffers=True``), and SyncBatchNorm computes the
        batch statistics over every rank; without either, each rank keeps its own running
        statistics, so the ranks evaluate differently and the checkpoint holds rank 0's
        alone. A script that asks for SyncBatchNorm but whose layers stayed plain BatchNorm
        normalises every batch with one rank's small-batch statistics instead.

    What is measured:
        The norm of every buffer of the model when each step's first training forward
        begins (after DDP's broadcast) and at the step's end, on every rank, compared with
        rank 0's (relative difference above ``rank_checksum_rtol``). Buffers that differ
        at the forward: not synchronised at all. BatchNorm statistics that differ only at
        the step's end, in a script whose source names SyncBatchNorm while its model holds
        none: SyncBatchNorm was intended and is not in effect.

    How to fix:
        Convert the model before wrapping it:
        ``model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(model))``; or keep DDP's
        ``broadcast_buffers=True`` (the default) for rank 0's statistics on every rank.

    Example:
        Before::

            model = DDP(model, broadcast_buffers=False)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # too late: after DDP

        After::

            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DDP(model)
    """
    record = _record(ctx)
    base = record.ranks[0]
    if not base.buffer_names:
        ctx.skip("the model has no buffers")
    if not base.buffers_at_forward:
        ctx.skip("no optimizer step was recorded")
    rtol = ctx.thresholds.rank_checksum_rtol
    at_forward, ranks_fwd, compared, worst = _diverging(
        record, "buffers_at_forward", "buffer_names", rtol
    )
    at_end, ranks_end, _, worst_end = _diverging(
        record, "buffers_at_step_end", "buffer_names", rtol
    )
    intended = base.source.sync_batchnorm
    unsynced = [n for n in at_end if n in base.batchnorm_buffers]
    intent_missed = intended is not None and base.sync_batchnorm_layers == 0 and bool(unsynced)
    ctx.note(
        f"{len(base.buffer_names)} buffers compared across {len(record.ranks)} ranks at "
        f"{compared} step(s): {len(at_forward)} differ when the forward begins, {len(at_end)} "
        "at the step's end"
    )
    if at_forward:
        names = sorted(at_forward, key=lambda n: (at_forward[n], base.buffer_names.index(n)))
        ranks = tuple(sorted(set().union(*ranks_fwd.values())))
        message = (
            f"{len(names)} of {len(base.buffer_names)} buffers ({', '.join(names[:4])}"
            f"{', …' if len(names) > 4 else ''}) hold different values on {_ranks_text(ranks)} "
            f"when a training forward begins (largest relative difference {worst:.2g}), from "
            f"step {at_forward[names[0]]} on: nothing synchronises them (DDP's "
            "broadcast_buffers (forward_sync_buffers in recent torch) is off, or they are outside the module DDP wraps), so each rank "
            "keeps its own statistics and the ranks evaluate differently."
        )
        step = at_forward[names[0]]
    elif intent_missed:
        names = sorted(unsynced, key=lambda n: (at_end[n], base.buffer_names.index(n)))
        ranks = tuple(sorted(set().union(*ranks_end.values())))
        message = (
            f"The script names SyncBatchNorm (line {intended}) but the model holds plain "
            f"BatchNorm layers: their running statistics differ on {_ranks_text(ranks)} after "
            f"each step (largest relative difference {worst_end:.2g}), so every rank normalises "
            "its batch with its own statistics, not the statistics of the global batch."
        )
        step = at_end[names[0]]
    else:
        return
    ctx.finding(
        title="BatchNorm statistics are not synchronised across ranks",
        message=message,
        fix=(
            "Convert before wrapping: model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(model)) "
            "(and use its return value); or keep DDP's broadcast_buffers=True."
        ),
        where=Where(module=module_of(names[0]) or None, step=step, ranks=ranks),
        evidence={
            "buffers": names[:10],
            "differ_at_forward": len(at_forward),
            "differ_at_step_end": len(at_end),
            "sync_batchnorm_named_at_line": intended,
            "sync_batchnorm_layers": base.sync_batchnorm_layers,
        },
    )


# -- ranks that do not step together ------------------------------------------------------


@register_check(
    id="uneven-step-counts",
    reasons=(3,),
    severity="error",
    distributed=True,
    explains=("params-diverge-across-ranks", "grads-differ-across-ranks"),
)
def uneven_step_counts(ctx: CheckContext) -> None:
    """The ranks take different numbers of steps (a rank runs out of data, or skips a step).

    Why it matters:
        Every optimizer step of DDP is collective: each rank's backward pass waits for the
        others' gradients. A rank with fewer batches (uneven shards without a
        DistributedSampler, ``drop_last`` differing) leaves the others waiting in an
        all-reduce it never joins: the job hangs until the collective's timeout kills it,
        often at the end of the first epoch. A rank that skips a step (a NaN guard on its
        local loss) leaves its optimizer one step behind: the replicas diverge.

    What is measured:
        How many optimizer steps each rank took and how its script ended. nndoctor stops
        every rank at the same agreed step; a rank whose script ended on its own (its loop
        ran out) while another's did not, or a different step count, is reported.

    How to fix:
        Give every rank the same number of batches: ``DistributedSampler`` (it pads the
        shards to one length) or ``drop_last=True``; wrap uneven loops in DDP's
        ``model.join()``; decide to skip a step with a collective (all-reduce the "bad
        loss" flag) so every rank skips together.

    Example:
        Before::

            shard = dataset[rank * n // world:(rank + 1) * n // world]   # uneven lengths
            loader = DataLoader(shard, batch_size=32)

        After::

            loader = DataLoader(dataset, batch_size=32, sampler=DistributedSampler(dataset))
    """
    record = _record(ctx)
    steps = {f.rank: f.steps for f in record.ranks}
    finished = {f.rank for f in record.ranks if f.stop_reason == "script finished"}
    uneven = len(set(steps.values())) > 1
    alone = bool(finished) and len(finished) < len(record.ranks)
    ctx.note("steps per rank: " + ", ".join(f"{r}: {s}" for r, s in sorted(steps.items())))
    if not (uneven or alone):
        return
    fewest = min(steps.values())
    behind = sorted(r for r, s in steps.items() if s == fewest) if uneven else sorted(finished)
    others = [f for f in record.ranks if f.rank not in finished]
    waited = next((f for f in others if f.error is not None), None)
    details = ", ".join(f"rank {r}: {s}" for r, s in sorted(steps.items()))
    message = (
        f"The ranks took different numbers of optimizer steps ({details})"
        if uneven
        else (
            f"The script of {_ranks_text(finished)} ended on its own after {steps[min(finished)]} "
            f"step(s) while {_ranks_text(f.rank for f in others)} still had batches to train on"
        )
    )
    if waited is not None:
        message += (
            f"; rank {waited.rank} then waited in a collective the others never joined and "
            f"raised {waited.error}"
        )
    message += (
        ". In a real run the rank that stops early leaves the others blocked in DDP's "
        "all-reduce until its timeout; one that skips a step falls a step behind."
    )
    ctx.finding(
        title="The ranks take different numbers of steps",
        message=message,
        fix=(
            "Give every rank the same number of batches (DistributedSampler, or drop_last=True), "
            "wrap uneven loops in DDP's model.join(), and decide to skip a step collectively "
            "(all-reduce the flag) so every rank skips together."
        ),
        where=Where(step=fewest, ranks=tuple(behind)),
        evidence={
            "steps": {str(r): s for r, s in sorted(steps.items())},
            "finished": sorted(finished),
        },
    )


# -- the learning rate and the global batch ----------------------------------------------


@register_check(id="lr-not-scaled-with-world", reasons=(36,), severity="info", distributed=True)
def lr_not_scaled_with_world(ctx: CheckContext) -> None:
    """The global batch grows with the world size, the learning rate does not.

    Why it matters:
        With N ranks of batch B each, one optimizer step averages N·B samples. A learning
        rate tuned for B on one process is then too small for the larger batch (the linear
        scaling rule multiplies it by N, often with a warm-up; for Adam-like optimizers the
        square root of N is common). Not a bug on its own, but a run that trains slower on
        more ranks usually comes down to this.

    What is measured:
        The script's source: an expression multiplying a batch size by the world size (the
        script says its global batch grows with the number of ranks), and whether any
        expression combines a learning rate with the world size. Reported as a note.

    How to fix:
        Scale the learning rate with the global batch (``lr = base_lr * world_size``, with
        a few hundred steps of warm-up), or keep the global batch fixed by dividing the
        per-rank batch by the world size.

    Example:
        Before::

            global_batch = args.batch_size * world_size
            optimizer = SGD(model.parameters(), lr=args.lr)

        After::

            global_batch = args.batch_size * world_size
            optimizer = SGD(model.parameters(), lr=args.lr * world_size)
    """
    record = _record(ctx)
    source = record.ranks[0].source
    if source.batch_scaled is None:
        ctx.skip("the script's source does not multiply a batch size by the world size")
    line, text = source.batch_scaled
    if source.lr_scaled:
        ctx.note(f"the global batch grows with the world size (line {line}), and so does the rate")
        return
    lrs = record.ranks[0].learning_rates
    rate = f"learning rate {lrs[0]:g}" if lrs else "learning rate"
    ctx.finding(
        title="The learning rate is not scaled with the world size",
        message=(
            f"Line {line} ({text}) makes the global batch grow with the number of ranks "
            f"({record.world} here), but no expression of the script scales the {rate} with "
            "it: tuned for one process, it may now be too small."
        ),
        fix=(
            "Multiply the learning rate by the world size (linear scaling, with a warm-up) or "
            "its square root for Adam-like optimizers; or divide the per-rank batch instead."
        ),
        where=Where(file=source.file, line=line),
        evidence={"world_size": record.world, "learning_rates": lrs, "line": line},
    )
