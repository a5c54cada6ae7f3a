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
    uint8_flat_min_features: int = 64  # a 2-D input this wide may be flattened images (8x8 and up)
    # --- shuffling (7, 10)
    sorted_target_fraction: float = 0.95  # share of non-decreasing adjacent targets inside a batch
    single_label_batch_fraction: float = 0.5  # share of batches holding one class only
    long_run_steps: int = 4  # consecutive batches whose majority class is the same
    # ...and a run that long arises in random batches of that size with at most this
    # probability (a class holding most of the data is the majority of most random batches).
    majority_run_alpha: float = 0.05
    sorted_min_batch: int = 8  # smaller batches are sorted by chance too often to judge
    # Batch class mix drifting this many times more than random batches of the same size
    # would (mean total-variation distance from the pooled mix); random batches give ~1.
    class_drift_ratio: float = 2.0
    # inputs-in-order: the error rate of each of its two tests (batch means spread beyond
    # random batches; consecutive batches alike), the least steps it judges, the
    # permutations of the order test, and the least spread it reports (batch means this
    # many times as far apart as random batches' at most: an effect worth a warning).
    input_order_alpha: float = 1e-3
    input_order_min_steps: int = 10
    input_order_permutations: int = 4000
    input_order_spread_ratio: float = 4.0
    # loader-not-shuffled: the error rate of each test that the unshuffled loader's batches
    # are no random draws (their class mixes by the chi-square test of homogeneity, their
    # input means by inputs-in-order's spread): where neither rejects, the fixed order is
    # advice (an info), not a warning.
    loader_order_alpha: float = 1e-3
    # --- normalisation (12)
    feature_mean_abs_max: float = 3.0  # |mean| of a channel/feature, in units of its std, or raw
    feature_std_min: float = 0.1
    feature_std_max: float = 10.0
    feature_scale_ratio_max: float = 100.0  # largest/smallest per-feature std
    # Inputs far from standardised warn when a copy on them starts this many times above its
    # twin on them standardised (the initial loss inflated as chance_ratio_warning reads it
    # against chance)...
    standardisation_start_ratio: float = 1.5
    # ... or ends this many times above it without fitting its batches: an order of
    # magnitude, as optimizer_gap_factor asks of one optimiser against another.
    standardisation_gain: float = 10.0
    # ... or the standardised twin's loss falls this many times as far as the raw copy's (a
    # clear fall, by learned_fraction of its start): the raw copy needs as many times the
    # steps for the same progress (losses that stay far from zero in the twin's steps)
    standardisation_progress: float = 4.0
    # Rows of a 2-D input whose sums (non-negative values) or lengths agree with one within
    # this relative tolerance (float32 rounding, with margin) are normalised per sample.
    row_normalised_rtol: float = 1e-3
    # Regression targets far from standardised warn when a copy on them ends this many
    # times above its twin on them standardised...
    target_twin_gain: float = 2.0
    # ... and this much above it, both in units of the best constant prediction's loss on
    # their own targets (a quarter of what a constant leaves unexplained).
    target_twin_margin: float = 0.25
    # ...unless, trained on past the twin's steps, the raw copy reaches the standardised
    # copy's level within horizon_delay_share of the planned run (see there).
    # A feature whose variance is within this share of mean * (1 - mean) at every step is
    # 0/1 (binary, one-hot): its std measures how rare it is, not its scale.
    binary_feature_tolerance: float = 0.05
    # --- loss at chance (17)
    chance_ratio_warning: float = 1.5  # initial loss above chance by this factor
    chance_ratio_error: float = 3.0
    chance_abs_margin: float = 0.1  # absolute slack for small chance values
    # A start above that bar which the script's own steps undo by this step (the median
    # of the observed loss from here on below the bar) cost that many steps: an info.
    chance_recovery_steps: int = 5
    # --- symmetric initial weights (28): a hand-held matrix's first-step gradient rows that
    # differ by more than this share of its largest entry differ beyond floating-point noise.
    symmetric_rows_rtol: float = 1e-6
    # --- overfit a tiny batch (27)
    overfit_steps: int = 150
    overfit_batch_size: int = 8
    overfit_target_fraction: float = 0.1  # healthy: final loss below this share of the initial
    overfit_ce_target: float = 0.1  # ...or, for classification, below this absolute value
    overfit_accuracy_target: float = 0.99
    # regularisation-prevents-fit: the regularised tiny-batch run must keep no more than this
    # share of the unregularised run's fall (a run just short of the fit line is slowed)
    regularisation_progress_kept: float = 0.5
    # A run that did not fit but whose loss fell below half its start is redone this many
    # times longer before it is judged...
    overfit_extension: int = 3
    # ...and a longer run whose last tenth lies this share below the tenth that ends two
    # thirds in is still learning: slow, not stuck (a note, not a failure)
    overfit_still_falling: float = 0.1
    # A script replay on the tiny batch at rate 0 for carried_state_steps steps: a loss
    # that moves by more than carried_state_rtol of its first value reads state the
    # script carries between steps (a queue of negatives, a momentum encoder), not the
    # model and the batch alone. Identical parameters, inputs and rewound random streams
    # give the same loss to rounding (float32 reductions: 1e-6 relative and below).
    carried_state_steps: int = 20
    carried_state_rtol: float = 1e-4
    # --- a loss without a floor (18): a run of the script as written, unbounded_steps long
    # (judged from unbounded_min_steps finite steps), whose loss ends below minus its start,
    # lies lower over each third than over the one before (Mann-Whitney at unbounded_alpha
    # for each pair, were the steps independent: a loss that has levelled off is called
    # falling at most that often) and falls from the middle third to the last at least
    # unbounded_pace of its fall from the first third to the middle (a loss nearing a
    # minimum slows); a
    # run that does is redone unbounded_extension times longer (within the planned run),
    # and the longer run decides.
    unbounded_steps: int = 200
    unbounded_extension: int = 3
    unbounded_min_steps: int = 60
    unbounded_alpha: float = 1e-3
    unbounded_pace: float = 0.75
    # --- a loss met without data (18): the script replayed as written for
    # data_free_steps steps (within the planned run; judged from unbounded_min_steps), once
    # on its data and once with the model's inputs replaced by fresh noise like them at
    # every call: fires when the noise run's last third (median) lies at most
    # data_free_fraction of the lower first loss (data or noise), at or above zero, and the data does not lower
    # the loss: the real run is below the noise run by data_free_useful_gain or more at no
    # more of the last third's steps than chance gives (a sign test over the paired steps
    # at data_free_alpha; the margin is pairing_useful_gain's tenth). Inputs that
    # carry no information leave a loss that is zero or more at the best input-free
    # prediction's value, which a task reaches zero on only where its targets need no input.
    data_free_steps: int = 200
    data_free_fraction: float = 0.01
    data_free_alpha: float = 0.01
    data_free_useful_gain: float = 0.1
    # --- gradient check (22, 26)
    gradcheck_atol: float = 1e-5
    gradcheck_rtol: float = 1e-2  # deep ReLU nets cross a few kinks per direction: ~0.2% noise
    gradcheck_eps: float = 1e-7
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
    # A loss falling over the observed steps at this level (Mann-Kendall) shows large steps
    # that train: a high update ratio is then a note, not a warning.
    update_ratio_training_alpha: float = 0.01
    # Steps up the gradient (update/gradient cosine below zero) at this share of the steps
    # whose alignment was measured: a descent method (SGD, momentum, Adam) steps down it at
    # nearly every step; a rule that climbs it does so at every one.
    uphill_step_fraction: float = 0.8
    uphill_min_steps: int = 5
    # Norm clipping that scaled the gradient down at more than this share of the steps sets
    # the length of SGD's steps (lr x max_norm): the update-ratio and lr range rules, written
    # for steps proportional to the gradient, leave the rate to the experiments then.
    clip_active_share: float = 0.5
    loss_rise_ratio: float = 2.0  # last-quarter median loss over first-quarter median
    # A risen loss whose last quarter falls (Mann-Kendall, one-sided) at this level is
    # coming out of a bump: at 20 observed steps only a last quarter that falls at every
    # step (p = 1/120) qualifies.
    loss_rise_turned_alpha: float = 0.01
    loss_spike_ratio: float = 10.0  # a step's loss over the first loss
    # --- loss inputs (19)
    probability_sum_tolerance: float = 1e-3
    # Targets reaching past a bounded output's range by this share of their own span leave
    # part of the loss out of reach of any weights.
    bounded_target_excess: float = 0.05
    # Cross-entropy on class scores squashed into a range (a sigmoid, a tanh): a finding when
    # the loss floor that range sets is at least this share of the loss at chance (log C).
    # Two classes through a tanh sit at 18% of it; logits soft-capped at 30 (a tanh times
    # 30) are a multiplication, not a squash, and are not judged.
    squashed_scores_floor_share: float = 0.1
    # The largest distance from 0 of a frame's logsumexp over the classes that CTC's input
    # may show and still be log-probabilities (log_softmax in bf16 stays within ~0.01).
    ctc_normalisation_tolerance: float = 0.05
    # A derivative in the loss taken without its graph: the share of the gradient's norm
    # that taking it with its graph adds. Both gradients come from one graph and the same
    # values, so they differ only by the missing terms and float32 rounding (~1e-7); the
    # terms may be small at initialisation (a small diffusion coefficient) and still wrong.
    derivative_graph_change: float = 1e-4
    # --- frozen / unoptimised parameters (23), zero_grad (26, 36), train/eval mode (32)
    unchanged_update_norm: float = 0.0
    zero_grad_missing_fraction: float = 0.5  # share of later steps accumulating gradients: error
    eval_mode_step_fraction: float = 0.5  # share of training steps in eval mode: warning
    # --- nan tracing (37)
    max_trace_ops: int = 200_000

    # --- the loss against the task (18, 20, 21)
    regression_on_classes_max: int = 20  # integer targets up to this fed to MSE look like classes
    # One term's gradient this many times another's: "by orders of magnitude" (two or more).
    # The four healthy multi-term scripts of the dev split that it measures stay within 1.7x.
    loss_term_ratio: float = 100.0
    metric_loss_drop: float = 0.5  # the loss fell by this share...
    metric_accuracy_gain_min: float = 0.02  # ...while accuracy gained less than this
    metric_accuracy_ceiling: float = 0.9  # (unless accuracy is already this high)
    # An optimizer over another network whose last steps, this many at least, found no
    # gradient on any of its parameters (other-network-not-training).
    gradless_steps_min: int = 3
    # --- layers (24, 25)
    batch_dependence_rtol: float = 1e-6  # output change of another sample, relative
    # The same where the model runs only in its own float32 (a graph batch whose segment
    # sums go into float32 buffers the model makes): float32 rounding is ~1e-7 of a value.
    batch_dependence_rtol_float32: float = 1e-4
    # Change of a next-token model's outputs before the tokens replaced, relative, in the
    # model's own precision (float32 rounding is ~1e-7 of each output).
    next_token_rtol: float = 1e-4
    # --- experiments on data (2, 4, 5, 6)
    data_experiment_steps: int = 60
    # Captured batches the data experiments cycle through (a script capture keeps 8).
    data_experiment_batches: int = 4
    # ... and the held-out tests of the pairing (labels-not-connected's cross-fit, the
    # held-out batch): held out, a few more distinct samples are what gives them power.
    pairing_experiment_batches: int = 8
    pairing_batch_size: int = 64  # ... each cut to this many samples
    # Where every run memorises its batches and the cross-fit's copies do no better than a
    # blind guess, a second cross-fit on up to this many batches, for this many steps: a
    # model that memorises a few hundred samples before it generalises shows its pairing
    # on more samples and steps (the captured batches run to 1024 samples).
    pairing_extended_batches: int = 16
    pairing_extended_steps: int = 150
    # Held-out samples the cross-fit must judge before a model that memorises any pairing
    # is called unable to learn this one (fewer: inconclusive).
    pairing_min_held_out: int = 128
    # The pairing is called absent, on a cross-fit with at least pairing_min_held_out
    # held-out samples, when the upper confidence bound (at label_pairing_alpha) on the
    # copies' gain over chance agreement stays below this share of the room chance leaves
    # (Cohen's kappa: a tenth of 75 points for answers and labels over four balanced
    # classes, of 5 for a 95 % majority answered as often). A pairing that copies learn at
    # least this well is called absent at most label_pairing_alpha of the time; one they
    # learn less well in the experiment's budget is what the finding reports.
    pairing_useful_gain: float = 0.1
    # ... judged only with at least this many held-out samples per class: with fewer (a
    # hundred classes on 512 samples) a real pairing need not show in the copies' budget.
    pairing_min_per_class: int = 32
    # Fresh batches (not seen before) of the script's own run, in the later half of those
    # observed, below which its losses say nothing about the pairing.
    pairing_run_min_steps: int = 4
    # Where no copy can rebuild the loss (a custom loss), the script is replayed for this
    # many optimizer steps unchanged and this many times with every sample's target taken
    # from another sample (a fixed permutation each); the per-step gains of the real
    # pairing over the later half of the steps are cut into this many consecutive blocks,
    # whose means give the confidence bounds (Student's t at label_pairing_alpha). The
    # pairing is called absent when the upper bound stays below pairing_useful_gain of the
    # re-paired replays' loss: a pairing worth a tenth of that loss is called absent at
    # most label_pairing_alpha of the time.
    pairing_replay_steps: int = 150
    pairing_replay_nulls: int = 3
    pairing_replay_blocks: int = 5
    # ... and only on replays that read at least this many samples: a pairing is learned
    # from many samples, not by heart from a few, and the replay claims its absence on no
    # fewer than the cross-fit's copies train on (8 batches of 64). One bag per step (a
    # multiple-instance model at batch size 1) reads 150 in 150 steps: inconclusive.
    pairing_replay_min_samples: int = 512
    # Token sequences across the batch: the held-out gain of a token's neighbour across the
    # batch exceeds that along the sequence, the per-batch difference's lower confidence
    # bound (Student's t) above zero at this level, over at least this many batches.
    sequence_layout_alpha: float = 0.01
    sequence_layout_min_batches: int = 5
    # A label per sample or nearly (more than this share of distinct values): instance
    # discrimination or sample indices, where there is no pairing to learn but by heart.
    distinct_label_share: float = 0.8
    # Permutations of the held-out targets a cross-fit's statistic is compared with.
    pairing_permutations: int = 999
    # Looks the value cross-fit takes at the held-out samples, after all of the copies'
    # steps and after each earlier half of them (3: a quarter, half, all): a copy that
    # memorises its half predicts unseen samples best before it does.
    pairing_looks: int = 3
    # For a teacher-forced model (fed its targets one position on): permutations of the
    # held-out (decoder input, target) pairs its sources are tested against (their losses'
    # mean and spread: each permutation costs a pass over the held-out batches).
    source_permutations: int = 19
    experiment_batch_size: int = 16  # experiments training several copies cut batches to this
    random_input_same_rtol: float = 1e-4  # loss curves on noise and data this close: input ignored
    input_sensitivity: float = (
        1e-3  # output change (relative) under noise input above which the model reads it
    )
    label_pairing_alpha: float = (
        0.01  # held-out accuracy vs the majority label: binomial test level
    )
    # Samples shared between training and evaluation are an error, told from chance
    # collisions and natural repeats by tests at this level each. A report runs dozens of
    # tests; at 1% each, one healthy report in a hundred would carry this error for
    # nothing. A leak worth the name shares many samples and stays far below 1e-3.
    shared_samples_alpha: float = 1e-3
    # Level at which an evaluation forward's input, exactly at mean 0 and std 1 in every
    # channel, is called standardised with its own statistics: the chance that a split
    # standardised with other data's lands that close (one channel of 256K values does so
    # with probability 0.005, a dozen columns of 600 with 1e-63).
    split_own_statistics_alpha: float = 1e-3
    shuffled_label_margin: float = 0.03  # real pairing must end this share below shuffled labels
    learned_fraction: float = (
        0.1  # a loss that fell by this share of its start has learned something
    )
    shuffled_label_speedup: float = 1.25  # ... or its loss must fall this many times as far
    generalisation_margin: float = (
        0.95  # held-out loss below this share of the label prior's: inputs inform
    )
    label_noise_confidence: float = (
        0.9  # a held-out prediction this confident that contradicts its label
    )
    label_noise_fraction: float = 0.15  # share of such samples that suggests label noise
    label_noise_unstable_rise: float = (
        3.0  # a cross-fit copy whose loss rises this far is not evidence
    )
    # ... and the copy must be right about this share of the samples it does not contradict
    # outright: a weak copy's confident mistakes are its own, not the labels'
    label_noise_clean_accuracy: float = 0.95
    # --- parameters (23): a frozen layer whose values pass for its constructor's random draw
    default_init_alpha: float = 1e-3  # KS test level: a fresh layer is called trained this often
    # A frozen free parameter of a custom module (a positional table) is a fixed table, not a
    # random draw, when neighbours along one of its axes are closer than shuffled values are,
    # at this level (permutation test, split over the axes tested): a random draw is taken
    # for a table this often.
    fixed_table_alpha: float = 0.01
    # A plain tensor attribute is judged as weights from this many values (a 4x4 matrix).
    unregistered_min_elements: int = 16
    # --- dataset (8, 9, 11)
    imbalance_ratio: float = 10.0  # most / least frequent class in the observed targets
    next_token_match: float = (
        0.9  # targets equal to the token inputs one position on: a language model
    )
    # Float targets that are the model input itself, or an exact rescaling of it (binary
    # pixels in {0, 1} fed as {-1, 1}): an autoregressive model must not read them.
    own_target_correlation: float = 0.9999
    # The changed element's own output moving this many times more than any earlier one
    # (which a causal model leaves bit for bit as it was) reads its target.
    own_target_margin: float = 100.0
    # Targets equal to an integer model input at the same position: the model copies.
    target_copy_match: float = 0.99
    min_examples_per_class: int = 10
    # At most this share of the samples distinct within their batches: the data's rows are
    # mostly copies of a few samples.
    distinct_sample_fraction: float = 0.5
    min_sample_elements: int = 16  # smaller samples (a state, a few categories) recur by nature
    min_fingerprinted_samples: int = 128
    min_steps_per_epoch: int = 4
    # Dense targets mirrored against their inputs (3, 13): at most this many samples, pooled
    # to this many pixels a side, class ids of at most this many classes, each input fitted
    # against this many other samples' targets.
    alignment_max_samples: int = 256
    alignment_max_side: int = 64
    alignment_max_classes: int = 64
    alignment_unrelated: int = 8
    alignment_max_elements: int = 2**24  # samples x pixels x (channels + features + 1)
    # A sample counts when its best target fits it this many spreads of the other samples'
    # targets better than their mean; it is mirrored when a mirrored target beats its own by
    # this share of that margin.
    alignment_power_sd: float = 3.0
    alignment_mirror_share: float = 0.5
    # The share of a healthy pipeline's samples taken to look mirrored (where the linear map
    # misleads; none of 828 counted samples of 6 healthy dense-target scripts on dev did),
    # and the level of the one-sided binomial tests against it.
    alignment_null_rate: float = 0.01
    alignment_alpha: float = 1e-3
    # Targets moved against their inputs: offsets up to this many pixels a side (of the
    # compared grid, at most a quarter of the image) are tried on each axis.
    alignment_max_shift: int = 3
    # Fewer compared pixels a sample than this leave chance matches among the 49 offsets
    # too likely (the bench's colorization subject, a target of 8 x 8 and a centre of 4 x 4:
    # 26 of 171 healthy samples fit a moved target twice as well by chance).
    alignment_min_window: int = 64
    # A sample counts where its target leaves under this share of the residual other
    # samples' targets leave; it is moved where the best offset leaves under this share of
    # the residual where its target came (a healthy super-resolution pipeline on dev: none
    # of 256 samples; its targets cropped apart: 218).
    alignment_shift_gain: float = 0.5
    # Level of the one-sided binomial test that more than half of a triplet loss's positives
    # lie farther from their anchor than its negatives before training (19, 18).
    triplet_order_alpha: float = 1e-3
    # Steps in which one loss compares two forwards of the same input before the two
    # "views" are called identical (3, 18): a repeat is exact, so two are no accident.
    repeated_forward_min_steps: int = 2
    # An attention padding mask is inverted (4, 1) when its attended positions hold one id
    # (the padding) and its ignored ones at least this many, in this many observed steps.
    padding_mask_min_ids: int = 3
    padding_mask_min_steps: int = 2
    # A network called on another's outputs (a GAN's discriminator on generated samples):
    # a loss pushes the critic's score one way when sum(grad) / sum(|grad|) over its output
    # is at least this far from 0 (a binary cross-entropy against one label: 1); the two
    # networks' losses are called cooperating (18, 19) when, in at least this many of each
    # one's steps, both push the same way and never the opposite ways.
    adversarial_decisive_push: float = 0.5
    adversarial_min_steps: int = 2
    # --- preprocessing and splits (13, 14, 15)
    augmentation_view_ratio: float = 0.9  # distance between two views of a sample / between samples
    # One-sided level of the test that the model already answers fresh augmented training
    # batches better than the best constant answer (then the views keep their labels).
    augmentation_learned_alpha: float = 1e-3
    pretrained_stat_tolerance: float = 0.5  # channel mean/std off the pretrained normalisation
    # Weights an earlier phase of the run trained, fed inputs whose channels moved by more
    # than this many of the earlier phase's std, or whose std changed by more than this
    # factor either way: preprocessed apart (augmentations alone move a channel far less).
    phase_mean_shift: float = 1.0
    phase_std_ratio: float = 2.0
    split_mean_shift: float = 0.5  # train/eval channel mean difference, in train std units
    split_std_ratio: float = 2.0
    # ... and beyond the sampling noise of the two samples: Student's t / F-test at the
    # two-sided level of this many standard errors of a normal (4: 6.3e-5 per channel).
    split_noise_z: float = 4.0
    # --- hyperparameters and schedules (29, 31, 34, 36)
    max_weight_decay: float = 1.0
    max_adam_eps: float = 1e-2
    max_lr: float = (
        10.0  # a learning rate above this is far outside common ranges for any optimiser
    )
    max_adaptive_lr: float = 0.1  # ...and above this for the Adam family (steps are ~lr per weight)
    # The scheduler's plan (learning-rate-schedule): stepped per batch, below this share of
    # its peak for most of the first epoch; or past this factor of its base rate after this
    # many epochs and still rising.
    schedule_collapse_ratio: float = 1e-3
    schedule_overshoot_factor: float = 3.0
    schedule_overshoot_epochs: int = 3
    # ...or, stepped per epoch though built for whole epochs of batches, never reaching this
    # share of its planned peak within the run its length describes.
    schedule_peak_share: float = 0.5
    # ...or, stepped per batch, below schedule_collapse_ratio of its peak for at least this
    # share of the steps the script's loops plan: half the run changes nothing.
    schedule_idle_share: float = 0.5
    # A copy that trails another in an experiment (raw targets against standardised ones, the
    # user's rate against the proposed one) only delays a run whose loops plan it if, trained
    # on, it reaches the other's level within this share of the planned steps past the
    # comparison's; it trains at most horizon_delay_max_steps steps in all (a cost cap: past
    # it, a trailing copy reads as stalled).
    horizon_delay_share: float = 0.05
    horizon_delay_max_steps: int = 600
    give_it_time_slope: float = 0.01  # relative loss drop per step over the last half of the budget
    give_it_time_falling_share: float = (
        0.7  # share of late step pairs where the later loss is lower
    )
    give_it_time_min_steps: int = 8  # fewer observed losses say nothing about a trend
    give_it_time_floor: float = 0.1  # silent once the loss is below this share of its first value
    optimizer_gap_factor: float = (
        10.0  # the known-good optimiser reaches a loss this many times lower
    )
    lr_range_steps: int = 60
    lr_range_min: float = 1e-6
    lr_range_max: float = 10.0
    lr_outside_factor: float = 10.0  # the user's rate this far outside the proposed range
    lr_above_minimum_factor: float = (
        10.0  # ... or this far above the rate of the lowest loss (the loss rises there)
    )
    lr_range_divergence: float = (
        4.0  # the range test stops when the loss exceeds this times its best
    )
    lr_range_smoothing: float = 0.5  # EMA factor of the loss the divergence rule reads
    # A range test's "outside the range" must show in training: copies at the user's rate and
    # at the proposed one train this many steps on the same batches.
    lr_confirm_steps: int = 60
    lr_range_min_fall: float = (
        0.1  # the smoothed loss must fall (and, for an upper end, rise) by this share
    )
    # Without a replayable loss (a custom loss) the script itself is replayed for
    # lr_replay_steps steps at its own rates and at lr_replay_factor and its square times
    # them: the rate is too low when it makes less than lr_replay_fall_share of the fall the
    # best scaled run makes, and that run ends lower at lr_replay_alpha (a paired t-test).
    lr_replay_steps: int = 60
    lr_replay_factor: float = 10.0
    # The replay judges a rate the script holds: rates rising past this factor of the first
    # step's over the replayed steps are a warm-up (slow by design), and not judged.
    lr_replay_warmup_rise: float = 1.5
    lr_replay_fall_share: float = 0.1
    lr_replay_alpha: float = 0.01

    # --- watch: stream checks over a whole run (21, 32, 35, 36, 37); the ratios they share
    # with the checks above (lr_range_divergence, update_ratio_*, dead_relu_error_fraction,
    # metric_*, give_it_time_floor) are read from there.
    watch_warmup_steps: int = 10  # steps before the divergence rule holds a best loss
    watch_loss_smoothing: float = 0.1  # weight of a new loss in the smoothed loss (EMA)
    watch_divergence_steps: int = 5  # consecutive steps the smoothed loss stays diverged...
    watch_divergence_share: float = 0.5  # ...and above this share of the loss at warm-up end
    watch_dead_fraction: float = 0.99  # a ReLU whose output is zero this often is dead
    watch_sustained_samples: int = 5  # consecutive sampled steps a per-layer rule must hold
    watch_plateau_steps: int = 200  # the plateau rule compares means of windows this long
    watch_plateau_change: float = 0.01  # relative change of the window mean below which: flat
    watch_eval_mode_steps: int = 10  # consecutive training steps with the model in eval mode
    watch_scaler_window: int = 20  # steps a GradScaler's skips are counted over
    watch_scaler_skip_fraction: float = 0.5  # share of them skipped: persistent overflow
    watch_scaler_min_scale: float = 1.0  # a loss scale below this has collapsed

    # --- distributed jobs: comparing ranks (3, 7, 23, 26, 32, 36)
    # A step where this share of one rank's samples is also in another rank's batch of that
    # step shares its batch; ranks sharing it at this share of the steps read the same data.
    # A DistributedSampler shares none (a few padding samples at an epoch's end at most).
    rank_shared_sample_fraction: float = 0.5
    rank_shared_step_fraction: float = 0.5
    # Per-parameter (and per-buffer) norms of synchronised replicas are bit-identical on every
    # rank; beyond this relative difference they are not the same tensors.
    rank_checksum_rtol: float = 1e-5

    def with_changes(self, **changes: Any) -> Thresholds:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown threshold(s): {', '.join(unknown)}")
        return replace(self, **changes)


DEFAULT_THRESHOLDS = Thresholds()
