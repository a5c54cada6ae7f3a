"""Every threshold a check compares against, named in one place.

Calibrated on the healthy examples and the zoo: each healthy subject must stay
below every warning threshold. Override per run with ``Thresholds(**changes)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    # --- data sanity (1, 3)
    constant_input_std: float = 1e-8  # a batch whose std is below this is constant
    repeated_batch_fraction: float = 0.5  # share of steps repeating the previous batch
    uint8_range_max: float = 2.0  # max above this, all values integer-valued, min >= 0: raw 0..255
    # --- shuffling (7, 10)
    sorted_target_fraction: float = 0.95  # share of non-decreasing adjacent targets inside a batch
    single_label_batch_fraction: float = 0.5  # share of batches holding one class only
    long_run_steps: int = 4  # consecutive batches whose majority class is the same
    # --- normalisation (12)
    feature_mean_abs_max: float = 3.0  # |mean| of a channel/feature, in units of its std, or raw
    feature_std_min: float = 0.1
    feature_std_max: float = 10.0
    feature_scale_ratio_max: float = 100.0  # largest/smallest per-feature std
    # --- loss at chance (17)
    chance_ratio_warning: float = 1.5  # initial loss above chance by this factor
    chance_ratio_error: float = 3.0
    chance_abs_margin: float = 0.1  # absolute slack for small chance values
    # --- overfit a tiny batch (27)
    overfit_steps: int = 150
    overfit_batch_size: int = 8
    overfit_target_fraction: float = 0.1  # healthy: final loss below this share of the initial
    overfit_ce_target: float = 0.1  # ...or, for classification, below this absolute value
    overfit_accuracy_target: float = 0.99
    # --- gradient check (22, 26)
    gradcheck_atol: float = 1e-5
    gradcheck_rtol: float = 1e-3
    gradcheck_eps: float = 1e-6
    gradcheck_max_inputs: int = 4  # batch size for the float64 check
    # --- activation / gradient statistics (28, 33, 35, 36)
    dead_relu_fraction: float = 0.9  # a ReLU whose output is zero this often is dead
    dead_relu_error_fraction: float = 1.0  # zero everywhere at every step: completely dead (error)
    saturated_fraction: float = 0.9  # sigmoid/tanh outputs within 1% of their asymptotes
    stats_early_steps: int = 3  # "the first steps" for gradient spread and output saturation
    activation_std_growth: float = 20.0  # std ratio last/first hidden layer at init
    # Default init shrinks std ~0.4x per ReLU layer: a 6-layer bias-free MLP/CNN reaches ~0.01.
    activation_std_collapse: float = 1e-3
    grad_norm_span_orders: float = 5.0  # log10(max/min) of per-layer gradient norms
    # Update norm / initial weight norm, median over steps then over weight matrices.
    # ≈1e-3 is healthy; Adam at lr=1e-3..1e-2 on small nets reads 0.007-0.06.
    update_ratio_high: float = 0.1
    update_ratio_extreme: float = 1.0  # every step as large as the weights: error
    update_ratio_low: float = 1e-5  # two orders below healthy, mirroring update_ratio_high
    loss_rise_ratio: float = 2.0  # last-quarter median loss over first-quarter median
    loss_spike_ratio: float = 10.0  # a step's loss over the first loss
    # --- loss inputs (19)
    probability_sum_tolerance: float = 1e-3
    # --- frozen / unoptimised parameters (23), zero_grad (26, 36), train/eval mode (32)
    unchanged_update_norm: float = 0.0
    zero_grad_missing_fraction: float = 0.5  # share of later steps accumulating gradients: error
    eval_mode_step_fraction: float = 0.5  # share of training steps in eval mode: warning
    # --- nan tracing (37)
    max_trace_ops: int = 200_000

    def with_changes(self, **changes: Any) -> Thresholds:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown threshold(s): {', '.join(unknown)}")
        return replace(self, **changes)


DEFAULT_THRESHOLDS = Thresholds()
