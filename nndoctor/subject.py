"""What nndoctor diagnoses: a Subject (model, batches, loss, optimizer, task).

A subject is *declared* through the Python API, *captured* from an unmodified
script, or *built* by the zoo. Every experiment works on copies made from it,
so the user's objects are never trained or mutated.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from nndoctor.probes.layers import DROPOUT
from nndoctor.probes.recording import GradClip
from nndoctor.probes.trace import recorded_module_inputs
from nndoctor.trees import first_tensor, map_tensors, tensors

TaskKind = Literal[
    "classification",  # single-label, C classes, integer targets (or probabilities)
    "binary",  # one logit per sample
    "multilabel",  # K independent binary outputs
    "regression",
    "reconstruction",  # output approximates (part of) the input
    "detection",
    "custom",  # anything else: a (model, batch) -> loss callable
]


@dataclass(frozen=True)
class Task:
    """A hint of what the model learns; it decides the chance-level loss and metrics."""

    kind: TaskKind = "custom"
    num_classes: int | None = None

    @classmethod
    def classification(cls, num_classes: int) -> Task:
        return cls("classification", num_classes)

    @classmethod
    def binary(cls) -> Task:
        return cls("binary", 2)

    @classmethod
    def multilabel(cls, num_outputs: int) -> Task:
        return cls("multilabel", num_outputs)

    @classmethod
    def regression(cls) -> Task:
        return cls("regression")

    @classmethod
    def reconstruction(cls) -> Task:
        return cls("reconstruction")

    @classmethod
    def detection(cls, num_classes: int | None = None) -> Task:
        return cls("detection", num_classes)

    def describe(self) -> str:
        if self.num_classes is not None and self.kind in ("classification", "multilabel"):
            return f"{self.kind} ({self.num_classes} {'classes' if self.kind == 'classification' else 'outputs'})"
        return self.kind


@dataclass
class OptimizerSpec:
    """How to build a fresh optimizer of the user's kind, so copies can be trained.

    ``groups`` holds, per parameter group, the hyperparameters and the *names*
    of its parameters (names relative to the model), so the spec can be
    re-applied to a deep copy of the model. ``grad_clip`` is gradient clipping the
    user runs between the backward pass and the step: part of the update rule, so
    copies trained with the spec are clipped the same way (``clip_gradients``).
    """

    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any]
    groups: list[dict[str, Any]] = field(default_factory=list)
    grad_clip: GradClip | None = None
    # Optimizers over the model's other parameters that step with this one after the same
    # backward pass (sparse embeddings under SparseAdam beside Adam for the dense layers):
    # a copy trained by this spec alone would leave those parameters at their start.
    others: tuple[OptimizerSpec, ...] = ()

    @classmethod
    def from_optimizer(
        cls,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        planned_peak: float | None = None,
        warmup_target: float | None = None,
    ) -> OptimizerSpec:
        """The spec of ``optimizer`` over ``model``. ``planned_peak`` is the highest rate the
        first group's scheduler plans (``probes.schedule.planned_peak``): where it is known,
        every group's scheduled rate is its base rate scaled as the first group's is.
        ``warmup_target`` is the rate a warm-up written by hand rises to
        (``probes.schedule.hand_warmup_target``): every group's rate is scaled as the first
        group's rate of the moment is to it."""
        names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
        groups = []
        base = _scheduled_lr(optimizer.param_groups[0]) if optimizer.param_groups else None
        scale = planned_peak / base if planned_peak and base else None
        now = optimizer.param_groups[0].get("lr") if optimizer.param_groups else None
        by_hand = (
            warmup_target / now
            if base is None and warmup_target and isinstance(now, (int, float)) and now > 0
            else None
        )
        for g in optimizer.param_groups:
            hyper = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            hyper["param_names"] = [names[id(p)] for p in g["params"] if id(p) in names]
            if by_hand is not None and isinstance(g.get("lr"), (int, float)):
                # Still in a warm-up written by hand: the copies train at the rate it rises
                # to, as under a scheduler at its planned peak.
                hyper["lr_at_capture"] = g.get("lr")
                hyper["lr"] = g["lr"] * by_hand
                groups.append(hyper)
                continue
            scheduled = _scheduled_lr(g)
            if scheduled is not None and scale is not None:
                # The schedule's own peak, not its base rate: a LambdaLR's function scales
                # the base by any factor (the Noam schedule by about 1e-3 at its peak).
                scheduled *= scale
            if scheduled is not None and scheduled != g.get("lr"):
                # Under a scheduler the rate of the moment (in warm-up, or decayed) is not the
                # rate the run is built around: experiments on copies use the schedule's own.
                hyper["lr_at_capture"] = g.get("lr")
                hyper["lr"] = scheduled
            groups.append(hyper)
        defaults = {k: copy.deepcopy(v) for k, v in optimizer.defaults.items()}
        return cls(type(optimizer), defaults, groups)

    @classmethod
    def from_optimizers(
        cls,
        optimizers: list[torch.optim.Optimizer],
        model: nn.Module,
        planned_peak: float | None = None,
        warmup_target: float | None = None,
    ) -> OptimizerSpec:
        """The spec of the first of ``optimizers`` (as :meth:`from_optimizer`), with the
        others, each over other parameters of ``model`` and stepped after the same backward
        pass, as ``others`` (their own schedules are not read: their rates as captured).
        One that needs a closure (LBFGS) cannot step beside another: the first alone."""
        first = cls.from_optimizer(optimizers[0], model, planned_peak, warmup_target)
        rest = [cls.from_optimizer(o, model) for o in optimizers[1:]]
        if not rest or any(_needs_closure(s.cls) for s in (first, *rest)):
            return first
        first.others = tuple(rest)
        return first

    @classmethod
    def of(cls, optimizer_cls: type[torch.optim.Optimizer], **hyper: Any) -> OptimizerSpec:
        return cls(optimizer_cls, dict(hyper), [])

    def hyperparameters(self) -> list[dict[str, Any]]:
        """One dict per group (the defaults when no groups were recorded), the other
        optimizers' groups after this one's, in the order :meth:`build` holds them."""
        own = (
            [dict(self.defaults)]
            if not self.groups
            else [{k: v for k, v in g.items() if k != "param_names"} for g in self.groups]
        )
        return own + [h for other in self.others for h in other.hyperparameters()]

    def build(self, model: nn.Module, **overrides: Any) -> torch.optim.Optimizer | JointOptimizer:
        """A fresh optimizer over ``model``'s parameters, with ``overrides`` on every group."""
        if self.others:
            alone = OptimizerSpec(self.cls, self.defaults, self.groups)
            parts = [alone.build(model, **overrides)]
            parts += [other.build(model, **overrides) for other in self.others]
            return JointOptimizer(parts)
        if not self.groups:
            params = [p for p in model.parameters() if p.requires_grad]
            sparse = sparse_gradient_params(model) if self.cls not in SPARSE_CAPABLE else set()
            hyper = {**self.defaults, **overrides}
            tables = [p for p in params if id(p) in sparse]
            if not tables:
                return self.cls(params, **hyper)
            # Adam and most others refuse sparse gradients: the embeddings that give them
            # get SparseAdam at the same rate, as a script built that way does.
            dense = [p for p in params if id(p) not in sparse]
            table_opt = torch.optim.SparseAdam(tables, lr=hyper.get("lr", 1e-3))
            return JointOptimizer([self.cls(dense, **hyper), table_opt]) if dense else table_opt
        by_name = dict(model.named_parameters(remove_duplicate=False))
        groups = []
        for g in self.groups:
            hyper = {k: v for k, v in g.items() if k != "param_names"}
            hyper.update(overrides)
            hyper.pop("initial_lr", None)
            hyper.pop("lr_at_capture", None)
            params = [by_name[n] for n in g["param_names"] if n in by_name]
            if params:
                groups.append({"params": params, **hyper})
        return self.cls(groups)

    def with_lr_scaled(self, factor: float) -> OptimizerSpec:
        """The same spec with every group's learning rate multiplied by ``factor`` (groups keep
        their ratios to one another)."""

        def scaled(hyper: dict[str, Any]) -> dict[str, Any]:
            out = dict(hyper)
            if isinstance(out.get("lr"), (int, float)):
                out["lr"] = float(out["lr"]) * factor
            return out

        return OptimizerSpec(
            self.cls,
            scaled(self.defaults),
            [scaled(g) for g in self.groups],
            self.grad_clip,
            tuple(other.with_lr_scaled(factor) for other in self.others),
        )

    def clip_gradients(self, model: nn.Module) -> None:
        """Clip ``model``'s gradients as the user's training does (nothing without clipping):
        call it between the backward pass and the step."""
        clip = self.grad_clip
        if clip is None:
            return
        by_name = dict(model.named_parameters(remove_duplicate=False))
        names = clip.params or tuple(n for n, p in by_name.items() if p.requires_grad)
        params = [by_name[n] for n in names if n in by_name]
        if clip.kind == "value":
            torch.nn.utils.clip_grad_value_(params, clip.limit)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip.limit, norm_type=clip.norm_type)

    def describe(self) -> str:
        hp = self.hyperparameters()[0]
        beside = "".join(
            f" + {other.cls.__name__}(lr={other.hyperparameters()[0].get('lr')})"
            for other in self.others
        )
        shown = {k: hp[k] for k in ("lr", "momentum", "betas", "weight_decay", "eps") if k in hp}
        text = f"{self.cls.__name__}({', '.join(f'{k}={v}' for k, v in shown.items())}){beside}"
        if "lr_at_capture" in hp:
            text += f" (lr of the schedule; {hp['lr_at_capture']:.3g} at the last observed step)"
        clip = self.grad_clip
        if clip is not None:
            text += (
                f", gradients clipped to norm {clip.limit:g}"
                if clip.kind == "norm"
                else f", gradients clipped to ±{clip.limit:g}"
            )
        return text


# Optimizers that accept the sparse gradients of nn.Embedding(sparse=True).
SPARSE_CAPABLE: frozenset[type[torch.optim.Optimizer]] = frozenset(
    {torch.optim.SGD, torch.optim.SparseAdam, torch.optim.Adagrad}
)


def sparse_gradient_params(model: nn.Module) -> set[int]:
    """The ids of the parameters whose gradients are sparse: the weights of embeddings
    built with ``sparse=True``."""
    return {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse and m.weight.requires_grad
    }


class JointOptimizer:
    """Several optimizers over disjoint parameters of one model, stepped together: the
    optimizer interface the experiments use (``param_groups``, ``zero_grad``, ``step``)."""

    def __init__(self, parts: list[torch.optim.Optimizer]) -> None:
        self.parts = parts

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for part in self.parts for g in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> None:
        for part in self.parts:
            part.step()


def _needs_closure(cls: type[torch.optim.Optimizer]) -> bool:
    return cls is torch.optim.LBFGS


def _scheduled_lr(group: dict[str, Any]) -> float | None:
    """The rate a learning-rate scheduler is built around: OneCycleLR's ``max_lr``, else the
    base rate every scheduler stores as ``initial_lr``; None without a scheduler."""
    rates = [group.get(k) for k in ("max_lr", "initial_lr")]
    rates = [
        float(r) for r in rates if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0
    ]
    return max(rates) if rates else None


# Regularising layers that experiments switch off.
REGULARISERS = DROPOUT


def switch_off_dropout(model: nn.Module, *, recurse: bool = True) -> None:
    """Set every dropout rate of ``model`` (and, with ``recurse``, of its submodules) to
    zero: the dropout layers' ``p`` and the float rates modules apply themselves while
    training (``nn.MultiheadAttention``'s attention dropout, a ``DropPath``'s
    ``drop_prob``, a rate handed on as ``dropout_p`` to ``scaled_dot_product_attention``),
    whose name says they drop, or ``p`` on a module whose class name does (a hand-written
    ``DropoutNd``). Experiments that switch regularisation off leave no random mask on."""
    for module in model.modules() if recurse else [model]:
        if isinstance(module, REGULARISERS):
            module.p = 0.0
            continue
        dropping_class = "drop" in type(module).__name__.lower()
        for attr, value in list(vars(module).items()):
            if (
                type(value) is float
                and 0.0 < value <= 1.0
                and ("drop" in attr.lower() or (attr == "p" and dropping_class))
            ):
                setattr(module, attr, 0.0)


def fix_batch_statistics(model: nn.Module, run: Callable[[], Any]) -> list[str]:
    """Give every batch-norm layer of ``model`` that keeps no running statistics
    (``track_running_stats=False``: it normalises each batch with that batch's own mean and
    variance, in eval mode too, as MAML's and some GANs' networks do by design) the mean and
    variance its input has in ``run()`` (a forward of ``model``) as running statistics. In
    eval mode each such layer is then a fixed affine map of every sample, like any batch
    norm with running statistics. The names of the layers fixed, in forward order."""
    stateless = {
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None
    }
    if not stateless:
        return []
    with recorded_module_inputs(model, stateless) as seen, torch.no_grad():
        run()
    fixed = []
    for name, inputs in seen.items():
        x = first_tensor(inputs[0])
        if x is None or x.dim() < 2 or not x.is_floating_point():
            continue
        module = model.get_submodule(name)
        axes = [0, *range(2, x.dim())]
        module.running_mean = x.detach().mean(axes)
        module.running_var = x.detach().var(axes, unbiased=False)
        fixed.append(name)
    return fixed


LossFn = Callable[[nn.Module, Any], torch.Tensor]
Criterion = Callable[[Any, Any], torch.Tensor]


def default_inputs(batch: Any) -> Any:
    """The model input of a batch: the first element of a tuple/list, or the batch itself."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    if isinstance(batch, dict):
        for key in ("input", "inputs", "x", "image", "images"):
            if key in batch:
                return batch[key]
    return batch


def default_targets(batch: Any) -> Any:
    """The target of a batch: the second element of a tuple/list, or None."""
    if isinstance(batch, (tuple, list)) and len(batch) > 1:
        return batch[1]
    if isinstance(batch, dict):
        for key in ("target", "targets", "y", "label", "labels"):
            if key in batch:
                return batch[key]
    return None


def move_to(obj: Any, device: torch.device | str) -> Any:
    """``obj`` with every tensor inside moved to ``device`` (tuples, lists, dicts)."""
    return map_tensors(lambda t: t.to(device), obj)


@dataclass
class Subject:
    """A model with everything needed to train copies of it.

    Give either ``criterion`` (applied as ``criterion(model(inputs(batch)), targets(batch))``)
    or ``loss_fn`` (``loss_fn(model, batch) -> scalar loss``) for anything else.
    ``batches`` is an iterable of batches (a DataLoader, a list) or a zero-argument
    callable returning one; only a few batches are ever drawn from it.
    """

    model: nn.Module
    batches: Iterable[Any] | Callable[[], Iterable[Any]]
    criterion: Criterion | None = None
    loss_fn: LossFn | None = None
    optimizer: OptimizerSpec | None = None
    task: Task = field(default_factory=Task)
    inputs: Callable[[Any], Any] = default_inputs
    targets: Callable[[Any], Any] = default_targets
    # Keyword arguments the model is called with beside positional ``inputs``
    # (``model(frames, n_future=4)``, a mask), kept as they are when inputs are replaced.
    keywords: Callable[[Any], dict[str, Any]] | None = None
    name: str = "subject"
    # Where batches come from, for the data checks: the DataLoader (if any).
    loader: Any = None
    # Regularisation the subject uses, so experiments can switch it off.
    uses_augmentation: bool = False
    # How to put new inputs/targets into a batch (experiments substitute noise or permuted
    # labels); by default the first/second element of a tuple or list batch.
    replace_inputs: Callable[[Any, Any], Any] | None = None
    replace_targets: Callable[[Any, Any], Any] | None = None
    # The model's class scores for a batch, for per-sample experiments (label noise);
    # by default the model output when a criterion is given.
    logits: Callable[[nn.Module, Any], torch.Tensor] | None = None
    # The model was loaded with pretrained weights.
    pretrained: bool = False
    # For a loss_fn that is a known loss of one model output (a captured script's): that
    # output, and the loss of any tensor in its place. Experiments compare the model with
    # constant predictions through them; a criterion gives both by itself.
    loss_input: Callable[[nn.Module, Any], torch.Tensor] | None = None
    output_loss: Callable[[torch.Tensor, Any], torch.Tensor] | None = None
    # The recognised loss of that output by its functional name and keyword arguments
    # (``poisson_nll_loss``, ``{"log_input": True}``): what its lowest value on a batch is.
    loss_name: str | None = None
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # Cross-entropy label smoothing, when a loss_fn hides it (a criterion carries its own).
    label_smoothing: float = 0.0
    # The axis of the model input that holds the samples: 0, or 1 for sequence-first data
    # (``(seq_len, batch)``, as the model's RNN/Transformer layers declare with
    # ``batch_first=False``). Experiments cut and perturb batches along it. None: read off
    # the observed steps (the DataLoader's batch size, a per-sample target, the layers'
    # declared layout; see Recording.input_batch_axis), 0 until they are observed.
    batch_axis: int | None = None
    # The constant the back-propagated loss is ``loss_fn``'s value times: 1, or 1/k for a
    # loss divided over k accumulated micro-batches. Copies step on the scaled loss, as the
    # script does; losses are reported and compared (with chance, with constant
    # predictions) in the loss's own units.
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.criterion is None and self.loss_fn is None:
            raise ValueError("a Subject needs a criterion or a loss_fn")
        if self.optimizer is None:
            self.optimizer = OptimizerSpec.of(torch.optim.Adam, lr=1e-3)

    def smoothing(self) -> float:
        """The loss's label smoothing: the subject's own, or its criterion's."""
        return self.label_smoothing or float(getattr(self.criterion, "label_smoothing", 0.0) or 0.0)

    # -- batches ---------------------------------------------------------
    def iter_batches(self) -> Iterator[Any]:
        source = self.batches() if callable(self.batches) else self.batches
        return iter(source)

    def take_batches(self, n: int) -> list[Any]:
        """The first ``n`` batches (fewer if the source is shorter)."""
        return list(itertools.islice(self.iter_batches(), n))

    # -- loss ------------------------------------------------------------
    def compute_loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The training loss of ``model`` on ``batch`` (the subject's own definition)."""
        if self.loss_fn is not None:
            return self.loss_fn(model, batch)
        assert self.criterion is not None
        return self.criterion(self.forward_output(model, batch), self.targets(batch))

    def forward_output(self, model: nn.Module, batch: Any) -> Any:
        """``model`` called on ``batch``'s inputs (and keyword arguments, if any)."""
        return call_model(model, self.inputs(batch), self.call_keywords(batch))

    def call_keywords(self, batch: Any) -> dict[str, Any]:
        """The keyword arguments the model is called with beside its positional inputs."""
        return dict(self.keywords(batch)) if self.keywords is not None else {}

    def with_inputs(self, batch: Any, inputs: Any) -> Any | None:
        """``batch`` with its model inputs replaced; None when the layout is unknown."""
        if self.replace_inputs is not None:
            return self.replace_inputs(batch, inputs)
        if self.inputs is default_inputs and isinstance(batch, (tuple, list)) and batch:
            return (
                type(batch)([inputs, *batch[1:]])
                if isinstance(batch, list)
                else (inputs, *batch[1:])
            )
        return None

    def with_targets(self, batch: Any, targets: Any) -> Any | None:
        """``batch`` with its targets replaced; None when the layout is unknown."""
        if self.replace_targets is not None:
            return self.replace_targets(batch, targets)
        if self.targets is default_targets and isinstance(batch, (tuple, list)) and len(batch) > 1:
            return (
                (batch[0], targets, *batch[2:])
                if isinstance(batch, tuple)
                else [batch[0], targets, *batch[2:]]
            )
        return None

    def class_scores(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
        """Per-sample class scores (N, C), when the subject says how to get them."""
        if self.logits is not None:
            return self.logits(model, batch)
        if self.criterion is not None:
            out = self.forward_output(model, batch)
            return out if isinstance(out, torch.Tensor) and out.dim() == 2 else None
        return None

    def prediction(self, model: nn.Module, batch: Any) -> Any:
        """The model output the loss consumes, or None when the loss is opaque (a custom loss_fn)."""
        if self.loss_input is not None:
            return self.loss_input(model, batch)
        return self.forward_output(model, batch) if self.criterion is not None else None

    def loss_of_prediction(self, prediction: torch.Tensor, batch: Any) -> torch.Tensor | None:
        """The loss had the model output ``prediction`` on ``batch``; None when the loss is opaque."""
        if self.output_loss is not None:
            return self.output_loss(prediction, batch)
        return (
            self.criterion(prediction, self.targets(batch)) if self.criterion is not None else None
        )

    def loss_floor(self, batch: Any) -> float | None:
        """The lowest value the loss can take on ``batch``: its value at the output that
        matches every target exactly, for a loss whose floor depends on the targets
        (Poisson's negative log-likelihood of counts, binary cross-entropy of soft
        targets, cross-entropy against class probabilities); None where it does not or is
        not known (0 for most losses)."""
        name, kwargs = self.recognised_loss()
        target = self.targets(batch)
        if name is None or not isinstance(target, torch.Tensor):
            return None
        ideal = ideal_prediction(name, kwargs, target)
        if ideal is None:
            return None
        with torch.no_grad():
            value = self.loss_of_prediction(ideal, batch)
        return float(value) if value is not None and math.isfinite(float(value)) else None

    def recognised_loss(self) -> tuple[str | None, dict[str, Any]]:
        """The loss by its functional name and the keyword arguments that shape it
        (``binary_cross_entropy_with_logits``, ``{"pos_weight": ...}``): the captured loss
        call's, or the criterion's; (None, {}) where it is not one nndoctor knows."""
        if self.loss_name is None and self.criterion is not None:
            return _criterion_name(self.criterion)
        return self.loss_name, self.loss_kwargs

    def decision_threshold(self) -> float | None:
        """Where the prediction the loss consumes separates the two answers of a binary
        target: 0 for logits (binary cross-entropy with logits), 0.5 for probabilities
        (binary cross-entropy); None for other losses."""
        name, _ = self.recognised_loss()
        return {"binary_cross_entropy_with_logits": 0.0, "binary_cross_entropy": 0.5}.get(
            name or ""
        )

    @property
    def has_criterion(self) -> bool:
        return self.criterion is not None

    # -- copies ----------------------------------------------------------
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            "name": self.name,
            "model": type(self.model).__name__,
            "parameters": n_params,
            "device": str(self.device()),
            "task": self.task.describe(),
            "optimizer": self.optimizer.describe() if self.optimizer else None,
            "loss": _describe_loss(self),
        }


def ideal_prediction(
    name: str, kwargs: dict[str, Any], target: torch.Tensor
) -> torch.Tensor | None:
    """The output at which the recognised loss ``name`` is lowest for ``target``, for the
    losses whose lowest value depends on the targets; None for the others (and where
    weights make the lowest point another one)."""
    t = target.detach().float()
    if name == "cross_entropy" and target.is_floating_point() and target.dim() >= 2:
        # Class probabilities as targets (soft labels, mixup's blends): the loss is lowest,
        # at their entropy, where the predicted distribution is the target's (smoothed
        # first, as the loss smooths it).
        if kwargs.get("weight") is not None:
            return None
        eps = float(kwargs.get("label_smoothing", 0.0) or 0.0)
        q = (1.0 - eps) * t + eps / t.shape[1]
        return torch.log(q.clamp_min(1e-30))
    if name == "poisson_nll_loss":
        eps = float(kwargs.get("eps", 1e-8))
        # The rate equal to the count; a count of 0 wants a rate of 0, i.e. log-rate -inf.
        return torch.log(t.clamp_min(eps)) if kwargs.get("log_input", True) else t
    if name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        if kwargs.get("weight") is not None or kwargs.get("pos_weight") is not None:
            return None
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            return None  # targets outside [0, 1] (raw pixels): the loss has no lowest value
        if name == "binary_cross_entropy":
            return t.clamp(0.0, 1.0)
        # In float64, and kept away from 0 and 1 by more than float32 resolves: a target of
        # exactly 1 (an image's white pixel) would otherwise round to p = 1, an infinite
        # logit and a NaN loss. At a logit of ±16 the loss is within 1e-7 of its floor.
        p = t.double().clamp(1e-7, 1.0 - 1e-7)
        return (torch.log(p) - torch.log1p(-p)).float()
    return None


def _criterion_name(criterion: nn.Module) -> tuple[str | None, dict[str, Any]]:
    """A loss module's functional name and the arguments that set its lowest point."""
    if isinstance(criterion, nn.PoissonNLLLoss):
        return "poisson_nll_loss", {"log_input": criterion.log_input, "eps": criterion.eps}
    if isinstance(criterion, nn.BCEWithLogitsLoss):
        return "binary_cross_entropy_with_logits", {
            "weight": criterion.weight,
            "pos_weight": criterion.pos_weight,
        }
    if isinstance(criterion, nn.BCELoss):
        return "binary_cross_entropy", {"weight": criterion.weight}
    if isinstance(criterion, nn.CrossEntropyLoss):
        return "cross_entropy", {
            "weight": criterion.weight,
            "label_smoothing": criterion.label_smoothing,
        }
    return None, {}


def call_model(model: nn.Module, inputs: Any, keywords: dict[str, Any] | None = None) -> Any:
    """Call ``model`` on inputs given as a tensor, a tuple of positional args, or a dict of
    kwargs, with ``keywords`` beside positional ones."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs, **(keywords or {}))
    return model(inputs, **(keywords or {}))


def positional_call(
    model: nn.Module, args: tuple[Any, ...], keywords: dict[str, Any]
) -> tuple[Any, ...] | None:
    """The call ``model(*args, **keywords)`` as positional arguments alone, for experiments
    that cut and perturb positional inputs: a keyword naming a positional parameter of the
    forward takes its place (``model(ids, mask=m)`` is ``model(ids, m)``; a parameter
    skipped on the way gets its default). An optional keyword that holds no tensor is
    left out: a switch of the training call (``sample=True``, ``teacher_forcing=True``),
    whose default is the model's plain call, the one experiments in eval mode make; so is
    an optional keyword-only one. None when a keyword the model needs cannot be passed by
    position, or the forward's signature cannot be read."""
    if not keywords:
        return tuple(args)
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    by_name = {p.name: (i, p) for i, p in enumerate(params)}
    placed: dict[int, Any] = {}
    for name, value in keywords.items():
        i, param = by_name.get(name, (-1, None))
        optional = param is not None and param.default is not inspect.Parameter.empty
        if optional and not tensors(value):
            continue
        if param is not None and param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            if i < len(args):
                return None  # given twice: the call itself would fail
            placed[i] = value
        elif param is None or param.default is inspect.Parameter.empty:
            # Keyword-only and required, or read from ``**kwargs`` (perhaps unconditionally).
            return None
    filled = list(args)
    for i in range(len(args), max(placed, default=len(args) - 1) + 1):
        if i in placed:
            filled.append(placed[i])
        elif params[i].default is not inspect.Parameter.empty:
            filled.append(params[i].default)
        else:
            return None
    return tuple(filled)


def _describe_loss(subject: Subject) -> str:
    fn = subject.criterion if subject.criterion is not None else subject.loss_fn
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name if subject.criterion is not None else f"{name}(model, batch)"


def batch_size_of(batch: Any, subject: Subject | None) -> int | None:
    x = subject.inputs(batch) if subject is not None else batch
    t = first_tensor(x)
    axis = _axis(subject)
    return int(t.shape[axis]) if t is not None and t.dim() > axis else None


def _axis(subject: Subject | None) -> int:
    return subject.batch_axis if subject is not None and subject.batch_axis is not None else 0


def slice_batch(batch: Any, size: int, subject: Subject | None, *, spread: bool = False) -> Any:
    """Every tensor holding the batch axis, cut to ``size`` samples: the first ones, or with
    ``spread`` ones evenly spaced over the batch (:func:`spread_rows`).

    A batch whose tensors disagree on their first axis (an ``EmbeddingBag``'s flat token
    ids beside per-document offsets and targets, a mask shaped by the sequence) has no
    axis that can be cut without breaking how its parts refer to each other: it is
    returned whole, which only makes the experiment a little slower. So is a
    sequence-first batch whose targets cannot be cut with its inputs, and a batch of a
    graph's nodes beside its adjacency (a few nodes are a sparser graph, whose adjacency
    normalised for the whole graph no longer suits them)."""
    n = batch_size_of(batch, subject)
    if n is None or n <= size or not cuttable(batch, subject):
        return batch
    return take_samples(batch, spread_rows(n, size) if spread else list(range(size)), subject)


def cuttable(batch: Any, subject: Subject | None) -> bool:
    """Whether some of ``batch``'s samples make a batch (see :func:`slice_batch`)."""
    n = batch_size_of(batch, subject)
    if n is None:
        return False
    if _axis(subject) == 0 and len(leading_sizes(batch)) > 1:
        return False
    if _axis(subject) > 0 and not _targets_cut(batch, subject, n):
        return False
    first = _first_input(batch, subject)
    # A graph's nodes: a few of them would be another, sparser graph.
    return not (
        _axis(subject) == 0 and any(t is not first and _pairwise(t, n) for t in tensors(batch))
    )


def spread_rows(n: int, size: int) -> list[int]:
    """``size`` rows evenly spaced over a batch of ``n``, from the first: in a batch that
    keeps the data set's order (a whole sorted set every step, a loader without shuffling)
    the first rows are neighbours, near-duplicate inputs whose noisy targets no smooth
    model separates; in a shuffled batch any rows are as good as the first."""
    return [i * n // size for i in range(size)]


def same_tensors(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` hold the same tensors, in order, value for value (shape,
    dtype and layout alike; sparse ones compared coalesced). A layout torch cannot compare
    (CSR) is taken as unequal."""
    left, right = tensors(a), tensors(b)
    return len(left) == len(right) and all(
        x.shape == y.shape and x.dtype == y.dtype and x.layout == y.layout and _equal(x, y)
        for x, y in zip(left, right, strict=True)
    )


def _equal(x: torch.Tensor, y: torch.Tensor) -> bool:
    if x is y:
        return True
    try:
        if x.is_sparse:
            x, y = x.coalesce(), y.coalesce()
            return torch.equal(x.indices(), y.indices()) and torch.equal(x.values(), y.values())
        return bool(torch.equal(x, y))
    except (RuntimeError, NotImplementedError):
        return False


def dealt_rows(rows: int, n: int, size: int) -> list[list[int]]:
    """The rows of one batch of ``rows`` dealt into ``n`` small batches of at most ``size``,
    no row in two: small batch ``i`` takes rows ``i``, ``i + n``, ``i + 2n``, ... of every
    ``step``-th row, where ``step`` spaces ``n * size`` rows over the batch (1 where it has
    fewer, which then leaves each small batch about ``rows / n``); empty ones left out."""
    step = max(1, rows // (n * size))
    dealt = [
        [(i + n * j) * step for j in range(size) if (i + n * j) * step < rows] for i in range(n)
    ]
    return [index for index in dealt if index]


def leading_sizes(batch: Any) -> set[int]:
    """The distinct first-axis sizes of the tensors in ``batch`` (0-d tensors aside)."""
    # A captured batch's "loss_input_shape" is a tuple of ints: no tensor, no size.
    return {int(t.shape[0]) for t in tensors(batch) if t.dim() > 0}


def _lead(batch: Any, subject: Subject | None) -> tuple[int, ...]:
    """The model input's shape up to and including the batch axis: a tensor flattened over
    these axes (per-token targets of sequence-first data, ``.view(-1)``) holds one row per
    (position, sample)."""
    x = _first_input(batch, subject)
    return tuple(x.shape[: _axis(subject) + 1]) if x is not None else ()


def _targets_cut(batch: Any, subject: Subject | None, n: int) -> bool:
    """Whether the targets of a batch cut along a later axis can be cut with it."""
    if subject is None:
        return False
    target = first_tensor(subject.targets(batch))
    if target is None:
        return True
    return _cutter(target, _axis(subject), n, _lead(batch, subject)) is not None


def _cutter(
    t: torch.Tensor, axis: int, n: int, lead: tuple[int, ...]
) -> Callable[[list[int]], torch.Tensor] | None:
    """How to take samples from ``t``: along ``axis`` when it holds the batch there, along
    its only axis when it is one value per sample (the lengths or labels beside
    sequence-first data), or along the batch axis of the input's leading axes ``t`` is
    flattened over; None otherwise."""
    if t.dim() > axis and t.shape[axis] == n:
        return lambda index: t.index_select(axis, torch.as_tensor(index, device=t.device))
    if t.dim() == 1 and t.shape[0] == n:
        return lambda index: t.index_select(0, torch.as_tensor(index, device=t.device))
    rows = math.prod(lead)
    if axis > 0 and lead and t.dim() >= 1 and t.shape[0] == rows and rows != n:
        rest = tuple(t.shape[1:])

        def flat(index: list[int]) -> torch.Tensor:
            grid = t.reshape(*lead, *rest)
            picked = grid.index_select(axis, torch.as_tensor(index, device=t.device))
            return picked.reshape(-1, *rest)

        return flat
    return None


def _first_input(batch: Any, subject: Subject | None) -> torch.Tensor | None:
    """The model's first input tensor in ``batch``."""
    return first_tensor(subject.inputs(batch) if subject is not None else batch)


def _pairwise(t: torch.Tensor, n: int) -> bool:
    """Whether ``t``, beside the model's first input, relates the ``n`` samples of the batch
    to each other: a graph's adjacency over its nodes, a mask or target over pairs."""
    return t.dim() == 2 and t.shape[0] == t.shape[1] == n


def _induced(t: torch.Tensor, index: list[int]) -> torch.Tensor:
    """The rows and columns of ``t`` at ``index``: the pairs among the samples taken (the
    subgraph they induce). A sparse tensor too: it has no strided views."""
    at = torch.as_tensor(index, device=t.device)
    return t.index_select(0, at).index_select(1, at)


def take_samples(batch: Any, index: list[int], subject: Subject | None) -> Any:
    """The samples at ``index`` of every tensor holding the batch axis."""
    n = batch_size_of(batch, subject)
    if n is None:
        return batch
    axis = _axis(subject)
    lead = _lead(batch, subject) if axis > 0 else ()
    first = _first_input(batch, subject)

    # Not pytree: a list as long as the batch is a list of samples (cut as a whole, not
    # walked into), and the captured "loss_input_shape" is kept to be rescaled below.
    def pick(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            if axis == 0 and obj is not first and _pairwise(obj, n):
                return _induced(obj, index)
            cut = _cutter(obj, axis, n, lead) if obj.dim() > 0 else None
            return cut(index) if cut is not None else obj
        if isinstance(obj, tuple):
            return tuple(pick(o) for o in obj)
        if isinstance(obj, list):
            return (
                [obj[i] for i in index] if axis == 0 and len(obj) == n else [pick(o) for o in obj]
            )
        if isinstance(obj, dict):
            return {k: (v if k == "loss_input_shape" else pick(v)) for k, v in obj.items()}
        return obj

    out = pick(batch)
    if isinstance(out, dict) and "loss_input_shape" in out:
        out["loss_input_shape"] = _cut_shape(tuple(out["loss_input_shape"]), axis, n, lead, index)
    return out


class _Unjoinable(Exception):
    """Batches whose parts cannot be set end to end along the batch axis."""


def join_batches(batches: list[Any], subject: Subject | None) -> Any | None:
    """The batches set end to end along the batch axis (first only): tensors holding the
    batch concatenated, lists of samples joined, everything else equal in every batch
    and kept once; a captured batch's ``loss_input_shape`` grown with it. None for
    batches that disagree elsewhere (sequences padded to each batch's own length, a
    batch-first axis not first)."""
    if not batches or _axis(subject) != 0:
        return None
    sizes = [batch_size_of(b, subject) for b in batches]
    if any(n is None for n in sizes) or any(len(leading_sizes(b)) > 1 for b in batches):
        return None

    def join(parts: list[Any], key: str = "") -> Any:
        first = parts[0]
        if key == "loss_input_shape":
            shapes = [tuple(p) for p in parts]
            if any(len(x) != len(shapes[0]) or x[1:] != shapes[0][1:] for x in shapes):
                raise _Unjoinable
            return (sum(x[0] for x in shapes), *shapes[0][1:])
        if isinstance(first, torch.Tensor):
            if not all(isinstance(p, torch.Tensor) for p in parts):
                raise _Unjoinable
            if all(p.dim() > 0 and p.shape[0] == n for p, n in zip(parts, sizes, strict=True)):
                if any(p.shape[1:] != first.shape[1:] or p.dtype != first.dtype for p in parts):
                    raise _Unjoinable
                return torch.cat(parts)
            if all(p.shape == first.shape and bool(torch.equal(p, first)) for p in parts):
                return first
            raise _Unjoinable
        if isinstance(first, tuple):
            if any(not isinstance(p, tuple) or len(p) != len(first) for p in parts):
                raise _Unjoinable
            return tuple(join([p[i] for p in parts]) for i in range(len(first)))
        if isinstance(first, list):
            if all(isinstance(p, list) and len(p) == n for p, n in zip(parts, sizes, strict=True)):
                return [item for p in parts for item in p]
            if any(not isinstance(p, list) or len(p) != len(first) for p in parts):
                raise _Unjoinable
            return [join([p[i] for p in parts]) for i in range(len(first))]
        if isinstance(first, dict):
            if any(not isinstance(p, dict) or p.keys() != first.keys() for p in parts):
                raise _Unjoinable
            return {k: join([p[k] for p in parts], k) for k in first}
        if all(p == first for p in parts):
            return first
        raise _Unjoinable

    try:
        return join(batches)
    except _Unjoinable:
        return None


def redeal(batches: list[Any], subject: Subject | None, seed: int = 0) -> list[Any] | None:
    """The samples of ``batches`` dealt anew into batches of the same sizes, in a random
    order (seeded): what a shuffled loader would have fed. None where the batches cannot
    be joined (see ``join_batches``)."""
    pooled = join_batches(batches, subject)
    if pooled is None:
        return None
    sizes = [batch_size_of(b, subject) or 0 for b in batches]
    order = torch.randperm(sum(sizes), generator=torch.Generator().manual_seed(seed)).tolist()
    out, start = [], 0
    for n in sizes:
        out.append(take_samples(pooled, order[start : start + n], subject))
        start += n
    return out


def _cut_shape(
    shape: tuple[int, ...], axis: int, n: int, lead: tuple[int, ...], index: list[int]
) -> tuple[int, ...]:
    """A recorded shape (the loss input's) after cutting ``n`` samples to ``index``."""
    out = list(shape)
    if axis > 0 and len(out) > axis and out[axis] == n:
        out[axis] = len(index)
    elif out and out[0] % n == 0:
        # The batch axis first, or rows of (position, sample) pairs flattened.
        out[0] = out[0] // n * len(index)
    return tuple(out)
