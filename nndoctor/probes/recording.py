"""The Recording: what probes observed, as plain Python numbers, one record per step.

Probes write device tensors into a :class:`PendingStep`; at the end of a step the
pending tensors are copied to the host in one non-blocking transfer and decoded
later (a step later on a GPU, at once on the CPU) into a :class:`StepRecord`.
Checks read only this module's types.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from nndoctor.probes.broadcasts import LossBroadcast
from nndoctor.probes.layers import LayerKind, is_kind, torch_class
from nndoctor.probes.stats import ACTIVATION_FIELDS, LOGIT_FIELDS, TENSOR_FIELDS


@dataclass
class TensorSummary:
    """A batch tensor (model input or target) at one step."""

    shape: tuple[int, ...]
    dtype: str
    mean: float = math.nan
    std: float = math.nan
    min: float = math.nan
    max: float = math.nan
    zero_frac: float = math.nan
    integral: bool = False
    fingerprint: tuple[float, float] = (math.nan, math.nan)
    channel_mean: list[float] | None = None
    channel_std: list[float] | None = None
    # Per channel, the fourth central moment over the squared variance (NaN: no spread).
    channel_kurtosis: list[float] | None = None

    @property
    def measured(self) -> bool:
        """Whether statistics were recorded: float and uint8 tensors. Other integer
        tensors (token ids, indices) carry only shape and dtype, and are never non-finite."""
        return self.dtype.startswith(("float", "bfloat")) or self.dtype == "uint8"

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.mean, self.std, self.min, self.max))

    def same_as(self, other: TensorSummary | None) -> bool:
        if other is None or other.shape != self.shape:
            return False
        return all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
            for a, b in zip(self.fingerprint, other.fingerprint, strict=True)
        )


@dataclass
class TargetSummary(TensorSummary):
    """A target batch, with class counts and order when the targets are class indices."""

    class_counts: list[float] | None = None
    sortedness: float = math.nan  # share of non-decreasing adjacent pairs
    first: float = math.nan
    next_position_match: float = math.nan  # share equal to the integer model input one position on
    # Per integer model input (up to four): the share of scored positions holding that
    # input's value at the same position, and the share holding it one position on.
    same_position_matches: list[float] | None = None
    next_position_matches: list[float] | None = None
    # ... and the share of scored positions holding it two positions on (labels shifted twice).
    two_positions_matches: list[float] | None = None
    # For values regressed on (MSE, L1, Huber): of the target's columns, the one least
    # often found among the float model input's columns, as the share of samples where
    # the best-matching input column holds it exactly (1: every target column is a copy of
    # an input feature); NaN where not measured (a target as large as the input).
    input_column_match: float = math.nan


@dataclass
class LossCall:
    """A recognised loss function called during a training step."""

    fn: str  # e.g. "cross_entropy", "binary_cross_entropy_with_logits", "mse_loss"
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    input_dtype: str
    target_dtype: str | None
    kwargs: dict[str, Any]
    input_stats: dict[str, float] = field(default_factory=dict)  # LOGIT_FIELDS
    target: TargetSummary | None = None
    linked_to_output: str | None = None  # how the input relates to the model output
    # Where the input is the model output reshaped (its axes perhaps moved first): that
    # output's shape before the reshape, which says what the input's rows are.
    input_layout: tuple[int, ...] | None = None
    # The last operation that changed the input's values, from its autograd node ("sigmoid",
    # "tanh", "softmax", "clamp", "addmm", ...); "" when the input has no gradient history.
    input_op: str = ""
    # Where that operation bounds its output: its name and the range it can produce
    # (``("elu", -1.0, inf)``, ``("clamp", 0.0, 1.0)``); None otherwise.
    input_range: tuple[str, float, float] | None = None
    file: str | None = None
    line: int | None = None
    value: float = math.nan
    accuracy: float = math.nan  # batch accuracy implied by a classification loss
    # The per-class weights (``weight=``) of a class-index loss, where given (read at the
    # first observed step's first loss call only: they are a constant of the loss).
    class_weights: list[float] | None = None
    # The loss of the best constant prediction fitted to this batch's own targets (its class
    # frequencies, each output's mean): what a model blind to the inputs does at best.
    prior: float = math.nan


@dataclass
class ElementwiseLoss:
    """A recognised loss function called with ``reduction="none"`` in a training step (a
    focal loss, a masked or re-weighted sequence loss): the mean of its elements, and of
    its targets' values and squares where they are floats."""

    fn: str
    input_shape: tuple[int, ...]
    kwargs: dict[str, Any]
    value: float = math.nan
    target_mean: float = math.nan
    target_mean_square: float = math.nan
    file: str | None = None
    line: int | None = None


@dataclass
class DerivativeCall:
    """``torch.autograd.grad`` called in a training step without ``create_graph``, of
    outputs that carry a graph, with respect to tensors the script marked as requiring a
    gradient (not parameters): the derivative comes back as a constant, and where it is
    part of the loss its own dependence on the weights is lost."""

    file: str | None = None
    line: int | None = None


@dataclass
class EvaluatedCopy:
    """A copy of the model (the same kind, the same parameter names and shapes) that the
    script called with gradients off or in ``eval()`` mode: an EMA, a best checkpoint.
    Read at its first such call (``step``); ``steps_called`` holds every step at which it
    was called so, to the end of the observation."""

    network: str
    step: int
    batch_norms: int  # its BatchNorm layers in eval() mode that track statistics
    # Those whose statistics were never updated while the model's counterpart's were.
    batch_norms_untracked: list[str] = field(default_factory=list)
    at_initial_weights: bool = False  # every parameter equal to the model's initial value
    model_changed: bool = False  # the model's own parameters had moved from theirs
    steps_called: set[int] = field(default_factory=set)


@dataclass
class DistributionLogits:
    """A ``torch.distributions.Categorical`` built from ``logits=`` (or an
    ``F.gumbel_softmax`` call, named ``gumbel_softmax``) while the training steps were observed: the range of those logits and how far the sums of their rows are from 1
    (probabilities passed as logits sum to 1, logits from a layer do not)."""

    distribution: str
    step: int
    shape: tuple[int, ...]
    min: float
    max: float
    rowsum_dev: float
    file: str | None = None
    line: int | None = None


@dataclass
class CtcCall:
    """A CTC loss called during a training step, and what makes it ill-posed (counts over
    the batch; see ``stats.ctc_facts``)."""

    blank: int
    classes: int
    log_probs_shape: tuple[int, ...]
    input_op: str = ""  # the last operation that made the log-probabilities
    blank_labels: int = 0
    labels_outside: int = 0
    too_short: int = 0  # samples whose input cannot hold an alignment of their target
    normalisation_error: float = 0.0  # largest |logsumexp over the classes| of a frame
    file: str | None = None
    line: int | None = None


@dataclass
class TripletCall:
    """A triplet loss (``triplet_margin_loss``, ``triplet_margin_with_distance_loss``)
    called during a training step: how its three arguments were made, and for how many
    samples the one passed as the positive lies farther from the anchor than the one
    passed as the negative."""

    samples: int
    # The three arguments come out of the same operation (one network's output, or
    # chunks of it), none picked out of a batch by indexing (mined triplets).
    same_source: bool
    op: str = ""  # the last operation that made the anchor
    positive_farther: int = 0
    file: str | None = None
    line: int | None = None


@dataclass
class PaddingMaskCall:
    """An attention's ``key_padding_mask`` (True, or -inf, where a key is ignored) at a
    training step, read against the token ids of the same shape that the model was given:
    how many distinct ids the ignored positions hold, and how many the attended ones."""

    module: str
    ignored: int  # positions ignored
    attended: int
    ignored_ids: int  # distinct ids at the ignored positions
    attended_ids: int


@dataclass(frozen=True)
class PlateauScheduler:
    """A ``ReduceLROnPlateau`` the script built: its mode (``min``: the metric should fall)
    and the line of the script's own code that built it."""

    mode: str
    file: str
    line: int


@dataclass
class RepeatedForward:
    """A later training forward of the model in a step, before any backward pass, given
    the values of the step's first forward's input and returning the values of its output
    (two "views" of a sample that are one and the same)."""

    call: int  # the forward's number within the step (2: the second)
    same_tensor: bool  # the very tensor the first forward was given, not equal values
    # Both forwards' outputs feed the graph of one backward pass (the loss compares them).
    in_one_loss: bool = False
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class StorageExtent:
    """The bytes a tensor spans in its storage (``start`` inclusive, ``end`` exclusive),
    the storage's address and size (tensors cut from one array share ``storage``), and
    the bytes from one row of its first axis to the next (0 without an axis)."""

    storage: int
    start: int
    end: int
    total: int = 0
    row: int = 0

    @classmethod
    def of(cls, x: torch.Tensor) -> StorageExtent:
        size = x.element_size()
        start = x.storage_offset() * size
        span = sum((d - 1) * st for d, st in zip(x.shape, x.stride(), strict=True)) + 1
        stored = x.untyped_storage()
        return cls(
            stored.data_ptr(),
            start,
            start + span * size if x.numel() else start,
            stored.nbytes(),
            x.stride(0) * size if x.dim() else 0,
        )

    def overlaps(self, other: StorageExtent) -> bool:
        return self.storage == other.storage and self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class GradClip:
    """Gradient clipping the script ran between its backward pass and its update
    (``torch.nn.utils.clip_grad_norm_`` or ``clip_grad_value_``): part of its update rule."""

    kind: str  # "norm" (clip_grad_norm_) or "value" (clip_grad_value_)
    limit: float  # max_norm, or clip_value
    norm_type: float = 2.0
    params: tuple[str, ...] = ()  # the model's parameters it covered, by name


@dataclass
class ActivationSummary:
    mean: float
    std: float
    zero_frac: float
    sat_frac: float
    min: float
    max: float

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.mean, self.std, self.min, self.max))


@dataclass
class StepRecord:
    """One optimizer step as observed."""

    step: int
    loss: float = math.nan
    loss_seen: bool = False
    inputs: TensorSummary | None = None
    # The model call's other tensor arguments (up to four, strided): the element count and
    # the two fingerprint values of :func:`stats.tensor_stats` for each; None where the
    # call had none. A batch repeats only where these repeat too (a graph's whole feature
    # matrix beside the sampled node ids is the same at every step, the ids are not).
    other_inputs: list[float] | None = None
    # When the first model input holds ids (a tabular model's categories), the first later
    # input holding measurements (its continuous columns); None otherwise.
    columns: TensorSummary | None = None
    loss_calls: list[LossCall] = field(default_factory=list)
    # Recognised losses called unreduced, in the first steps (ELEMENTWISE_STEPS).
    elementwise_losses: list[ElementwiseLoss] = field(default_factory=list)
    ctc_calls: list[CtcCall] = field(default_factory=list)
    triplet_calls: list[TripletCall] = field(default_factory=list)
    repeated_forwards: list[RepeatedForward] = field(default_factory=list)
    padding_masks: list[PaddingMaskCall] = field(default_factory=list)
    # Elementwise operations of a hand-written loss that stretched the model's output along
    # a new axis (the first LOSS_BROADCAST_STEPS steps' backward passes).
    loss_broadcasts: list[LossBroadcast] = field(default_factory=list)
    # Later training forwards compared with the step's first (same input shape, no
    # backward pass between), repeats or not.
    forwards_compared: int = 0
    derivative_calls: list[DerivativeCall] = field(default_factory=list)
    activations: dict[str, ActivationSummary] = field(default_factory=dict)  # forward order
    output_grad_norms: dict[str, float] = field(default_factory=dict)  # backward order
    grad_norms: dict[str, float] = field(default_factory=dict)  # param name -> norm
    weight_norms: dict[str, float] = field(default_factory=dict)
    # The norms of the parameters the optimizer does not hold, read as it steps: a script
    # that updates them itself (an EMA target network) moves them from step to step, a
    # frozen layer or one left out of the optimizer never.
    outside_norms: dict[str, float] = field(default_factory=dict)
    update_norms: dict[str, float] = field(default_factory=dict)
    # The cosine between the step's change of the parameters and minus their gradient: near
    # 1 for a step down the gradient (SGD exactly 1), below 0 for a step that climbs it; NaN
    # where no gradient was held when the step ended.
    update_alignment: float = math.nan
    zero_grad_called: bool = False
    grads_present_at_forward: bool = False
    # The share of the storage it lives in that the model input's rows take up: below 1 for
    # rows cut from a larger tensor (x[i:i + 64] of the whole data), 1 for a batch of its
    # own (collated, or all data, with or without some of every row's columns).
    input_storage_share: float = 1.0
    # The model input is the very tensor object of the previous step (data fed as it is,
    # not rebuilt by indexing, slicing or collating at each step).
    input_same_object: bool = False
    # The script called a global seeding function (``torch.manual_seed``, ``np.random.seed``,
    # ``random.seed``) itself since the previous step: its draws for this step replay the
    # seed's.
    reseeded: bool = False
    # Where the model input lies: its storage's address and the bytes it spans there.
    input_storage: StorageExtent | None = None
    grad_norm_at_forward: float = (
        0.0  # norm of the gradients already present when the forward began
    )
    model_training: bool = True
    # Every module in eval() mode at the step's first forward, the model itself ("") included:
    # the per-module modes the experiments' copies train in.
    modules_in_eval: list[str] = field(default_factory=list)
    hyperparameters: list[dict[str, Any]] = field(default_factory=list)
    forwards: int = 0
    training_forwards: int = 0  # of those, in training mode (an evaluation without no_grad is not)
    backwards: int = 0
    loader: int | None = None  # index into Recording.loaders of the loader that fed this step
    skipped_by_scaler: bool = False  # a GradScaler found inf/NaN gradients and skipped the update
    sample_fingerprints: list[float] = field(default_factory=list)  # one per input sample
    # One per row of the first loss call's target (a fixed random projection of the row),
    # when the target has rows; paired with sample_fingerprints where the counts agree.
    target_fingerprints: list[float] = field(default_factory=list)
    foreign_steps: int = 0  # steps of optimizers that hold none of the model's parameters
    # Whether any of the model's parameters had a gradient when its optimizer stepped (None
    # without an optimizer step). Gradients read earlier in the step (after the backward
    # pass, before the optimizer was known) may have been cleared since.
    grads_at_step: bool | None = None
    # Parameters the last backward pass gave a gradient that was gone (grad None) when the
    # optimizer stepped: the script removed it (``p.grad = None`` to hold a layer).
    grads_held: list[str] = field(default_factory=list)
    # The model's gradient at a backward pass, after another optimizer stepped on a loss
    # that had reached the model too, was non-zero: not zeroed since, it carries that loss.
    carried_gradient: bool = False
    # Clipping of the model's gradients in this step, the last call's when several ran; and
    # the total gradient norm clip_grad_norm_ measured before it clipped.
    grad_clip: GradClip | None = None
    grad_norm_before_clip: float = math.nan
    # Model inputs that hold the values of a tensor of the batch the DataLoader had just
    # yielded, in that tensor's own memory order but under other axis sizes (a reshape
    # between the loader and the model): (the batch tensor's shape, the input's shape).
    loader_reshapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    # The shapes of the tensors of the loader batch that fed the step (first steps only):
    # where the samples lie in the data as delivered, before the script cut from it.
    loader_shapes: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def target(self) -> TargetSummary | None:
        return self.loss_calls[0].target if self.loss_calls else None

    @property
    def unrolled(self) -> bool:
        """The model was called more often than the loss was evaluated: a recurrence
        unrolled in the script (a call per character, the hidden state fed back), a
        rollout (a call per environment step), or several inputs per loss. The first
        call's input, which the step's input statistics describe, is then one of several.
        Calls in eval mode (an evaluation that forgot ``no_grad``) are not counted."""
        return self.training_forwards > max(len(self.loss_calls), self.backwards, 1)

    @property
    def alternating(self) -> bool:
        """Another network's optimizer stepped after its own backward pass within this step:
        the script trains several networks, each against its own loss (a GAN, alternating
        optimisation), rather than one model against one loss."""
        return self.foreign_steps >= 1 and self.backwards >= 2


@dataclass
class LoaderInfo:
    """A DataLoader the script iterated."""

    index: int
    sampler: str
    shuffle: bool
    batch_size: int | None
    dataset_len: int | None
    dataset: str
    drop_last: bool
    num_workers: int
    under_no_grad: bool = False  # first iterated while gradients were disabled (evaluation)
    batches_yielded: int = 0
    iterated: bool = True  # False: built by the script but not iterated within the budget
    # Optimizer steps before which it yielded a batch with gradients on (since the step
    # before): a second source of each training batch (labelled and unlabelled data) too.
    steps_fed: int = 0
    # ... and the batches it yielded with gradients on, over those steps: several per step
    # where the script accumulates gradients over micro-batches.
    training_batches: int = 0

    def batches_per_step(self) -> int:
        """The batches it yields per optimizer step it feeds: the micro-batches a step
        accumulates (1 without accumulation, and where too few steps tell)."""
        if self.steps_fed < 2:
            return 1
        return max(1, self.training_batches // self.steps_fed)

    def feeds_training(self, steps: int) -> bool:
        """Whether it yielded batches for at least half of ``steps`` observed steps with
        gradients on: a source of the training batches, whichever loader yielded last. An
        evaluation loader yields in bursts between epochs, not step after step."""
        return not self.under_no_grad and steps > 0 and 2 * self.steps_fed >= steps


@dataclass
class UnheldNetwork:
    """A network beside the observed model whose parameters received gradients in the
    script's training steps that no optimizer used (none holds them, or those that do never
    stepped), and that nothing else changed."""

    module: str  # its class
    parameters: int  # its parameter tensors that require grad (none shared with the model)
    with_grad: int  # of them, holding a gradient at an optimizer step
    loaded: bool  # it, or a module inside it, loaded weights before training
    holders: list[str] = field(default_factory=list)  # optimizers holding it, never stepped
    steps_without: int = 0  # other optimizers' steps meanwhile


@dataclass
class ProbeCrash:
    probe: str
    error: str
    traceback: str


@dataclass
class NonFiniteEvent:
    """The first place a non-finite value was seen."""

    step: int
    phase: str  # "input", "forward", "loss", "backward", "gradient", "weights"
    module: str | None = None
    param: str | None = None


@dataclass
class ModeAfterEvaluation:
    """The model's mode at its first training forward after its first evaluation pass (a
    forward with gradients off), seen after the step budget (nndoctor.capture.phases)."""

    step: int  # optimizer steps the script had taken by then
    model_training: bool
    modules_in_eval: list[str] = field(default_factory=list)  # mode-dependent, in eval()


@dataclass
class OtherOptimizer:
    """An optimizer over another network (none of the model's parameters): at each of its
    steps, the model's step count then and whether any of its parameters had a gradient
    (a parameter without one is skipped by every torch optimizer: the step moves nothing)."""

    name: str  # its class
    params: int
    steps: list[int] = field(default_factory=list)
    with_grad: list[bool] = field(default_factory=list)


@dataclass
class CriticPush:
    """A network's training call on another network's output (a discriminator on generated
    samples), and which way the loss back-propagated to it pushed its output: gradient
    descent lowers the output where ``grad_sum`` is positive (see probes/adversarial.py)."""

    critic: str  # the class of the network called on the other's output
    producer: str  # the class of the network whose output it was given
    side: str  # whose update the loss served: "critic" or "producer" (the next optimizer's)
    step: int  # the optimizer step (counting every optimizer) that followed
    grad_sum: float  # sum of the gradient over the critic's outputs
    grad_abs_sum: float  # sum of its absolute values
    output: int = 0  # which of the critic's float outputs (a score and class logits: 0, 1)


@dataclass
class Recording:
    """Everything the probes saw while real training steps ran."""

    steps: list[StepRecord] = field(default_factory=list)
    param_names: list[str] = field(default_factory=list)
    param_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    requires_grad: dict[str, bool] = field(default_factory=dict)
    in_optimizer: set[str] = field(default_factory=set)
    param_groups: dict[str, int] = field(default_factory=dict)  # parameter -> group index
    other_optimizer_params: set[str] = field(default_factory=set)  # stepped by another optimizer
    # Optimizers over other networks (a GAN's second network), in the order first seen.
    other_optimizers: list[OtherOptimizer] = field(default_factory=list)
    # Calls of one network on another's output, in the first optimizer steps (a GAN).
    critic_pushes: list[CriticPush] = field(default_factory=list)
    module_types: dict[str, str] = field(default_factory=dict)  # name -> class name, for messages
    # name -> class, for kinds of layer (a subclass of nn.ReLU is a ReLU); see module_class.
    module_classes: dict[str, type] = field(default_factory=dict)
    module_files: dict[str, str] = field(default_factory=dict)  # user-defined module -> file
    loaders: list[LoaderInfo] = field(default_factory=list)
    crashes: list[ProbeCrash] = field(default_factory=list)
    # A distributed job's DistributedRecord: every rank's facts, gathered on rank 0
    # (nndoctor.probes.distributed); None for a single process.
    distributed: Any = None
    eval_forwards: int = 0
    # Forwards of the model inside a torch.func transform (vmap, grad): not observed.
    transformed_forwards: int = 0
    # Backward passes whose loss graph was searched for broadcasts (StepRecord.loss_broadcasts).
    loss_graphs_searched: int = 0
    # Before any module with parameters was called: the tensors a back-propagated loss
    # reached that belong to no module (count, values), parameters kept as plain tensors.
    plain_parameters: tuple[int, int] | None = None
    # Custom autograd Functions on the loss's graph in the first backward passes whose
    # hand-written backward returned the incoming gradient times one number, by class
    # name: those numbers, one per call (see nndoctor.probes.functions.gradient_multiple).
    gradient_multiples: dict[str, list[float]] = field(default_factory=dict)
    # Of those tensors, the ones that are nn.Parameter: held by a module whose forward the
    # script calls directly (``layer.forward(x)``), which runs no hooks.
    module_parameters_reached: int = 0
    optimizer_class: str | None = None
    scheduler_seen: bool = False
    # Every ReduceLROnPlateau the script built while observed (it steps them on its metric,
    # usually once per epoch, past the observation).
    plateau_schedulers: list[PlateauScheduler] = field(default_factory=list)
    # The plan of the scheduler of the model's optimizer (nndoctor.probes.schedule).
    schedule: Any = None
    # The steps the script's loops plan, read at the budget (nndoctor.capture.horizon).
    horizon: Any = None
    device: str = "cpu"
    saves_redirected: list[str] = field(default_factory=list)
    scaler_skipped_steps: int = 0
    eval_forwards_in_train_mode: int = 0  # no-grad forwards with Dropout/BatchNorm in train mode
    eval_inputs: list[TensorSummary] = field(default_factory=list)
    # The training steps finished when each of those forwards ran (parallel to eval_inputs).
    eval_steps: list[int] = field(default_factory=list)
    eval_input_storages: list[StorageExtent] = field(default_factory=list)
    # Where the batches came from: "api" (a data iterable handed to nndoctor) or "script"
    # (whatever an observed script fed its model, DataLoader or tensors of its own).
    data_source: str = "api"
    # How steps were recognised: "optimizer" (its step()) or "manual" (a backward pass, then
    # parameters changed by the script's own update, without an optimizer object).
    step_source: str = "optimizer"
    # Backward passes that were torch.autograd.grad calls on the model's parameters (their
    # gradients returned to the script, not stored in .grad), for updates by hand.
    gradients_taken: int = 0
    # ... and the trainable parameters the first such loss depends on whose gradient it
    # did not ask for (left out of an update by hand before any gradient could show it).
    gradients_not_taken: list[str] = field(default_factory=list)

    @property
    def alternating_objectives(self) -> bool:
        """Most observed steps alternate between optimizers of separate networks, each after
        its own backward pass (see ``StepRecord.alternating``)."""
        return bool(self.steps) and 2 * sum(s.alternating for s in self.steps) > len(self.steps)

    @property
    def gradient_reversals(self) -> list[str]:
        """The custom Functions whose backward multiplied the gradient by a negative number
        (a gradient reversal layer: the parameters before it ascend what the loss after it
        measures, as DANN's feature extractor does against its domain classifier)."""
        return [name for name, values in self.gradient_multiples.items() if min(values) < 0]

    @property
    def competing_objectives(self) -> str:
        """Why the loss is no one objective that every parameter descends, or "": networks
        trained in alternation against each other (a GAN), or one backward pass through a
        gradient reversal (DANN), where some parameters ascend part of it."""
        if self.alternating_objectives:
            return "the script alternates between the objectives of separate networks (a GAN)"
        if self.gradient_reversals:
            return (
                f"the backward pass runs through a gradient reversal "
                f"({', '.join(self.gradient_reversals)}: a negative multiple of the gradient), "
                "so part of the model ascends the loss"
            )
        return ""

    eval_sample_fingerprints: list[float] = field(default_factory=list)
    # Categorical distributions built from logits while observed (see DistributionLogits).
    distribution_logits: list[DistributionLogits] = field(default_factory=list)
    # Copies of the model the script evaluated (see EvaluatedCopy).
    evaluated_copies: list[EvaluatedCopy] = field(default_factory=list)
    # The training steps finished when each fingerprinted sample was evaluated (parallel).
    eval_fingerprint_steps: list[int] = field(default_factory=list)
    # Where the input each evaluation fingerprint was read from lies in its storage: a pass
    # over the very array the training batches come from measures the training data.
    eval_fingerprint_storages: list[StorageExtent | None] = field(default_factory=list)
    # The DataLoader (index into ``loaders``) whose batch each evaluation fingerprint was read
    # from, where known: a no-grad pass over the training loader measures the training data.
    eval_fingerprint_loaders: list[int | None] = field(default_factory=list)
    weights_loaded: list[str] = field(default_factory=list)  # load_state_dict before training
    # Of those, the ones whose checkpoint fits a network an earlier phase of this run
    # trained (its keys and shapes), or whose every tensor lives in the network this phase
    # trains (a momentum encoder started as its copy): weights the script made itself.
    weights_from_this_run: list[str] = field(default_factory=list)
    # Whether ``weights_loaded`` were loaded while a later phase was sought (this is that
    # phase's recording): the earlier phase's network going on, or a pretrained model.
    weights_loaded_between_phases: bool = False
    # The input summaries of the earlier phase's steps (a later phase's recording only):
    # the preprocessing the weights it trained expect.
    earlier_phase_inputs: list[TensorSummary] = field(default_factory=list)
    # The module a script called first, when an optimizer stepped other parameters before
    # any of its own (nndoctor.capture.retarget.Unstepped); None otherwise.
    unstepped: Any = None
    # Networks beside the observed model, trained in the script's forwards, whose gradients
    # no optimizer uses (nndoctor.capture.other_roots).
    unheld_networks: list[UnheldNetwork] = field(default_factory=list)
    # Modules that declare their layout (RNNs, Transformer layers, MultiheadAttention):
    # name -> (batch_first, the shape of their first input at the first training forward).
    sequence_layouts: dict[str, tuple[bool, tuple[int, ...]]] = field(default_factory=dict)
    # The model's mode when training resumed after its first evaluation pass, where the
    # script was followed that far past its budget; None where it was not.
    mode_after_evaluation: ModeAfterEvaluation | None = None
    # How that watch past the budget ended ("" where there was none): the time limit or
    # the script's end may come before the evaluation pass.
    epoch_watch_end: str = ""

    # For steps no DataLoader fed: the rows of an array the script holds that is the whole
    # of every step's batch, none larger holding its samples (full-batch training that
    # converts or copies its array anew at each step); None where none is.
    whole_array_rows: int | None = None
    # For those steps: the row counts of the arrays the script holds whose rows hold
    # (nearly) every recorded sample, and the median batch they were compared with; None
    # where they were not read.
    held_source_rows: list[int] | None = None
    held_source_batch: int | None = None

    def epoch_length(self) -> int | None:
        """Optimizer steps in one pass over the training data: the DataLoader that fed the
        steps (its length, over the micro-batches each step accumulates), else a batch
        sliced by hand from a larger tensor (the inverse of its share of that tensor); None
        when neither tells."""
        fed = [s.loader for s in self.steps if s.loader is not None]
        if fed:
            info = self.loaders[statistics.mode(fed)]
            if info.dataset_len and info.batch_size:
                full, rest = divmod(info.dataset_len, info.batch_size)
                batches = full + (1 if rest and not info.drop_last else 0)
                return max(1, batches // info.batches_per_step())
        shares = [s.input_storage_share for s in self.steps if 0 < s.input_storage_share < 1]
        if len(shares) * 2 > len(self.steps):
            return max(1, round(1 / statistics.median(shares)))
        return None

    @property
    def weights_from_elsewhere(self) -> list[str]:
        """The modules that loaded weights not trained by this run (a pretrained model)."""
        left = list(self.weights_from_this_run)
        out = []
        for name in self.weights_loaded:
            if name in left:
                left.remove(name)
            else:
                out.append(name)
        return out

    def input_batch_axis(self) -> int:
        """The axis of the model input (its first tensor) that holds the samples.

        The data says first: the batch size of the DataLoader that fed the step (or, where
        the script cut a sample off the batch on the way, the axis that holds the batch size
        in the loader's tensor of the same shape otherwise), else the leading length of a
        target with fewer axes than the input (one label or value per sample, so one row
        per sample); the model input's axis of that size is the batch
        axis. Without either (batches cut by hand, targets flattened over positions or of
        the input's own shape), the layers that declare a layout say: an RNN or Transformer
        layer with ``batch_first=False`` reads ``(seq_len, batch, ...)``, so its batch size
        is its input's axis 1. The data goes first because a layer declared with the wrong
        layout (``batch_first`` left out on batch-first data) is the bug batch independence
        must see, not a layout to follow. A size no axis has passes to the next witness; a
        size several axes have, or no witness at all, keeps the convention: axis 0."""
        axis = self.witnessed_batch_axis()
        return 0 if axis is None else axis

    def witnessed_batch_axis(self) -> int | None:
        """The batch axis of the model input as :meth:`input_batch_axis` finds it, or None
        where no witness names exactly one axis (the convention, axis 0, is not taken)."""
        step = next((s for s in self.steps if s.inputs is not None), None)
        if step is None or step.inputs is None or not step.inputs.shape:
            return None
        shape = step.inputs.shape
        loaded = self._loader_batch(step)
        axes = [i for i, d in enumerate(shape) if loaded is not None and d == loaded]
        if axes:
            return axes[0] if len(axes) == 1 else None
        carried = self._loader_axis_carried(step, tuple(shape), loaded)
        if carried is not None:
            return carried
        for size in (self._target_batch(step, len(shape)), self._layer_batch()):
            axes = [i for i, d in enumerate(shape) if size is not None and d == size]
            if axes:
                return axes[0] if len(axes) == 1 else None
        return None

    @staticmethod
    def _loader_axis_carried(
        step: StepRecord, shape: tuple[int, ...], size: int | None
    ) -> int | None:
        """The loader's batch axis carried over to a model input the script cut from its
        batch (``x[:, :-1]`` of a sequence-first batch drops a sample, not a position): the
        axis of the batch size in a loader tensor with as many axes as the input, when it
        is the only such axis and every other axis has the input's length; None otherwise."""
        if size is None:
            return None
        found = set()
        for loaded in step.loader_shapes:
            if len(loaded) != len(shape):
                continue
            axes = [i for i, d in enumerate(loaded) if d == size]
            if len(axes) == 1 and all(
                a == b for i, (a, b) in enumerate(zip(loaded, shape, strict=True)) if i != axes[0]
            ):
                found.add(axes[0])
        return found.pop() if len(found) == 1 else None

    def _loader_batch(self, step: StepRecord) -> int | None:
        if step.loader is None or step.loader >= len(self.loaders):
            return None
        info = self.loaders[step.loader]
        if info.batch_size is None:
            return None
        return min(info.batch_size, info.dataset_len or info.batch_size)

    def _target_batch(self, step: StepRecord, input_axes: int) -> int | None:
        """The leading length of a per-sample target: one with fewer axes than the input."""
        shape = next(
            (c.target_shape for s in [step, *self.steps] for c in s.loss_calls if c.target_shape),
            None,
        )
        return shape[0] if shape and len(shape) < input_axes else None

    def one_sequence_per_call(self) -> bool:
        """Whether the model reads one sequence per call: every sequence layer it ran (an
        LSTM, a Transformer layer) saw a batch of one over as many positions as the model
        input's first axis holds, so that axis is the sequence's, not a batch's (a tagger
        fed one sentence per step, reshaped to ``(len, 1, -1)`` inside)."""
        step = next((s for s in self.steps if s.inputs is not None), None)
        if step is None or step.inputs is None or not step.inputs.shape:
            return False
        if not self.sequence_layouts:
            return False
        length = step.inputs.shape[0]
        for batch_first, layout in self.sequence_layouts.values():
            if len(layout) < 3:
                batch, positions = 1, layout[0] if layout else 0
            elif batch_first:
                batch, positions = layout[0], layout[1]
            else:
                batch, positions = layout[1], layout[0]
            if batch != 1 or positions != length or length < 2:
                return False
        return True

    def _layer_batch(self) -> int | None:
        sizes = {
            layout[0] if batch_first else layout[1]
            for batch_first, layout in self.sequence_layouts.values()
            if len(layout) >= 3  # fewer axes: an unbatched sequence
        }
        return sizes.pop() if len(sizes) == 1 else None

    def _per_sample_target_rows(self, shape: tuple[int, ...] | None) -> int | None:
        """The input axis whose length is the leading length of a per-sample target (one
        with fewer axes than the input), when exactly one axis has it; else None."""
        if not shape or len(shape) < 2:
            return None
        target = next(
            (c.target_shape for s in self.steps for c in s.loss_calls if c.target_shape), None
        )
        if not target or len(target) >= len(shape):
            return None
        axes = [i for i, d in enumerate(shape) if d == target[0]]
        return axes[0] if len(axes) == 1 else None

    def forward_order(self) -> list[str]:
        """The modules in the order their forward finished, at the first step that recorded
        any (a container finishes after the modules inside it)."""
        step = next((s for s in self.steps if s.activations), None)
        return list(step.activations) if step is not None else []

    def module_class(self, name: str) -> type | None:
        """The class of module ``name``: the one recorded, else the ``torch.nn`` class its
        recorded name names (a Recording built from names alone)."""
        cls = self.module_classes.get(name)
        if cls is None and name in self.module_types:
            cls = torch_class(self.module_types[name])
        return cls

    def is_kind(self, name: str, kind: LayerKind, *, unless: LayerKind = ()) -> bool:
        """Whether module ``name`` is a layer of ``kind`` (see :mod:`nndoctor.probes.layers`)."""
        return is_kind(self.module_class(name), kind, unless=unless)

    def modules_of_kind(self, kind: LayerKind, *, unless: LayerKind = ()) -> list[str]:
        """The modules that are layers of ``kind``, in definition order."""
        return [n for n in self.module_types if self.is_kind(n, kind, unless=unless)]

    @property
    def losses(self) -> list[float]:
        return [s.loss for s in self.steps if s.loss_seen]

    def criterion_scales(self, steps: int = 3) -> list[float]:
        """At each of the first ``steps`` observed steps with a recognised loss call, the
        constant the back-propagated loss is that call's value times (1/k for a loss
        divided over k accumulated micro-batches; nan when it is no multiple of one)."""
        return [
            loss_scale_of(s.loss, [c.value for c in s.loss_calls])
            for s in self.steps[:steps]
            if s.loss_calls and s.loss_seen
        ]

    def criterion_scale(self, steps: int = 3) -> float:
        """The constant of ``criterion_scales`` when it is the same at each of those steps;
        1.0 without a recognised call, or when it is not constant (a loss of several
        terms)."""
        scales = self.criterion_scales(steps)
        if not scales or not math.isfinite(scales[0]) or scales[0] <= 0:
            return 1.0
        if any(not math.isclose(x, scales[0], rel_tol=1e-4) for x in scales):
            return 1.0
        return scales[0]

    def only_negative_infinity_in_forward(self) -> bool:
        """Whether every non-finite value recorded is a -inf in a module's output (no NaN,
        no +inf: the output's mean is -inf), with the inputs, losses, gradients and weights
        of every step finite: values masked out on purpose, not a computation gone wrong."""
        for s in self.steps:
            if s.inputs is not None and s.inputs.measured and not s.inputs.finite:
                return False
            if s.loss_seen and not math.isfinite(s.loss):
                return False
            for a in s.activations.values():
                if not a.finite and not (a.mean == -math.inf and a.min == -math.inf):
                    return False
            if not s.skipped_by_scaler and not all(
                math.isfinite(g) for g in (*s.output_grad_norms.values(), *s.grad_norms.values())
            ):
                return False
            if not all(math.isfinite(w) for w in s.weight_norms.values()):
                return False
        return True

    def first_nonfinite(self) -> NonFiniteEvent | None:
        """The earliest step and phase at which anything non-finite was recorded."""
        for s in self.steps:
            if s.inputs is not None and s.inputs.measured and not s.inputs.finite:
                return NonFiniteEvent(s.step, "input")
            for name, a in s.activations.items():
                if not a.finite:
                    return NonFiniteEvent(s.step, "forward", module=name)
            if s.loss_seen and not math.isfinite(s.loss):
                return NonFiniteEvent(s.step, "loss")
            if s.skipped_by_scaler:
                continue  # inf/NaN gradients are how a GradScaler finds its scale: expected
            for name, g in s.output_grad_norms.items():
                if not math.isfinite(g):
                    return NonFiniteEvent(s.step, "backward", module=name)
            for name, g in s.grad_norms.items():
                if not math.isfinite(g):
                    return NonFiniteEvent(s.step, "gradient", param=name)
            for name, w in s.weight_norms.items():
                if not math.isfinite(w):
                    return NonFiniteEvent(s.step, "weights", param=name)
        return None


# -- decoding ------------------------------------------------------------------


def decode_vector(values: list[float], names: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(names, values, strict=True))


def summary_from(values: list[float], shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
    d = decode_vector(values, TENSOR_FIELDS)
    return {
        "shape": shape,
        "dtype": dtype,
        "mean": d["mean"],
        "std": d["std"],
        "min": d["min"],
        "max": d["max"],
        "zero_frac": d["zero_frac"],
        "integral": d["integral"] > 0.5,
        "fingerprint": (d["fp_sum"], d["fp_weighted"]),
    }


def activation_from(values: list[float]) -> ActivationSummary:
    return ActivationSummary(**decode_vector(values, ACTIVATION_FIELDS))


def logits_from(values: list[float]) -> dict[str, float]:
    return decode_vector(values, LOGIT_FIELDS)


class HostTransfer:
    """Collects a step's device tensors and brings them to the host in one copy.

    ``add`` returns a slot; after ``ready()`` the slot's values are plain floats.
    On CUDA the copy is non-blocking into pinned memory and completion is polled
    with an event, so no hook ever waits for the GPU.
    """

    def __init__(self) -> None:
        self._parts: list[torch.Tensor] = []
        self._slots: list[tuple[int, int]] = []
        self._offset = 0
        self._host: torch.Tensor | None = None
        self._event: Any = None

    def add(self, t: torch.Tensor) -> int:
        # A DTensor (FSDP's sharded parameters and their statistics) is read as this rank's
        # local part: its whole value would take a collective.
        to_local = getattr(t, "to_local", None)
        flat = (to_local() if callable(to_local) else t).detach().reshape(-1).float()
        self._parts.append(flat)
        self._slots.append((self._offset, flat.numel()))
        self._offset += flat.numel()
        return len(self._slots) - 1

    def launch(self) -> None:
        if not self._parts:
            self._host = torch.zeros(0)
            return
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for p in self._parts:
            by_device.setdefault(p.device, []).append(p)
        if len(by_device) == 1 and next(iter(by_device)).type == "cpu":
            self._host = torch.cat(self._parts)
        else:
            parts = [p.to(self._parts[0].device, non_blocking=True) for p in self._parts]
            dev = torch.cat(parts)
            if dev.device.type == "cuda":
                host = torch.empty(dev.shape, dtype=dev.dtype, pin_memory=True)
                host.copy_(dev, non_blocking=True)
                self._event = torch.cuda.Event()
                self._event.record()
                self._host = host
            else:
                self._host = dev.to("cpu")
        self._parts = []

    def ready(self) -> bool:
        return self._event is None or self._event.query()

    def wait(self) -> None:
        if self._event is not None:
            self._event.synchronize()

    def get(self, slot: int) -> list[float]:
        assert self._host is not None
        start, n = self._slots[slot]
        return self._host[start : start + n].tolist()


def module_of(param: str) -> str:
    """The module path that owns parameter ``param`` ('' for the root), in the recording's
    naming (``named_parameters`` / ``named_modules``)."""
    return param.rsplit(".", 1)[0] if "." in param else ""


def loss_scale_of(backpropagated: float, calls: list[float]) -> float:
    """The constant the back-propagated loss is one recognised call's value times (nan when
    it is none of them): exactly 1 when it is the call itself."""
    for value in calls:
        if math.isclose(backpropagated, value, rel_tol=1e-5, abs_tol=1e-7):
            return 1.0
    finite = [v for v in calls if math.isfinite(v) and v != 0.0]
    return backpropagated / finite[0] if finite and math.isfinite(backpropagated) else math.nan
