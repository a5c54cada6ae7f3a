"""Wild cases, tenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a two-input defect classifier (a
small channel-last RGB photo and a row of sensor readings, about one defect in ten) whose
``Dataset`` returns ``(image, features, label)``, balanced by a ``WeightedRandomSampler``
with inverse class-frequency weights per sample, with a CNN branch and an MLP branch
fused by concatenation, a hand-written focal loss (gamma = 2) on the logits and
validation by balanced accuracy and macro F1 on the unbalanced split; and Poisson
regression of hourly bike rentals (one-hot categories, numeric columns standardised with
training statistics, an MLP predicting the log-rate under
``nn.PoissonNLLLoss(log_input=True)``, ``ReduceLROnPlateau`` on the validation deviance,
early stopping, D² against a constant rate). Each fault is one bug as it arrives in code
in that style.

Names start with ``wild-``. Split: the two-input classifier and its faults are ``test`` (drawn at
random before the first measurement), the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

MULTIMODAL = "wild-multimodal-sampler"
POISSON = "wild-poisson-counts"

for case in (
    HealthyCase(
        MULTIMODAL,
        "test",
        "image + tabular defect classifier on 1:9 classes: Dataset of (image, features, "
        "label), WeightedRandomSampler with replacement (minority parts repeat ~9 times an "
        "epoch), CNN and MLP branches concatenated, hand-written focal loss (gamma=2, small "
        "loss values), Adam, balanced accuracy and macro F1 on an unbalanced validation split",
        script="wild/multimodal_sampler.py",
    ),
    HealthyCase(
        POISSON,
        "dev",
        "Poisson regression of hourly rentals: one-hot categories and standardised numeric "
        "columns, MLP on the log-rate with the last bias at log(mean count), "
        "PoissonNLLLoss(log_input=True) (negative loss values, no log y! term), Adam, "
        "ReduceLROnPlateau on validation deviance, early stopping, manual mini-batches",
        script="wild/poisson_counts.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- image + tabular classifier with a balancing sampler ----------------------------
    Fault(
        "wild-multimodal-sampler-class-weights-to-sampler",
        MULTIMODAL,
        3,
        "test",
        "the sampler is given the two per-class weights instead of the per-sample weights: "
        "WeightedRandomSampler only draws indices 0 and 1, so every epoch is the same two "
        "(normal) parts repeated 6,400 times; the focal loss falls to 0.0000 from the second "
        "epoch while the validation balanced accuracy stays at 0.500 and macro F1 at 0.475 "
        "(healthy: 0.885 and 0.88 after 10 epochs)",
        also=(10, 21),
        edits=(
            Edit(
                "WeightedRandomSampler(sample_weights,",
                "WeightedRandomSampler(class_weights,",
            ),
        ),
    ),
    Fault(
        "wild-multimodal-sampler-without-replacement",
        MULTIMODAL,
        8,
        "test",
        "the sampler is built with replacement=False: drawing all 6,400 parts once does not "
        "balance the classes, it only orders them, the defects mostly in the first quarter "
        "of the epoch (34% of it) and 48 of the 100 batches without a single defect at the "
        "end; the model ends each epoch predicting 'normal', the validation balanced "
        "accuracy is 0.500 after epochs 1-3 and 10 and peaks at 0.674 (healthy: 0.885)",
        also=(7, 10, 21),
        edits=(Edit("replacement=True", "replacement=False"),),
    ),
    # --- Poisson regression of counts ---------------------------------------------------
    Fault(
        "wild-poisson-counts-output-not-squeezed",
        POISSON,
        25,
        "dev",
        "the model's (batch, 1) output is no longer squeezed: PoissonNLLLoss silently "
        "broadcasts it against the (batch,) counts and scores every prediction against "
        "every count of the batch, so the best output is the batch mean for all rows; the "
        "predictions stay between 3.11 and 3.26 (constant rate 3.22) and the test D² is "
        "0.000, deviance 5.50 on the rows paired correctly (healthy: 0.98, D² 0.82)",
        also=(19, 4),
        edits=(
            Edit(
                "return self.net(x).squeeze(-1)  # log of the expected count",
                "return self.net(x)  # log of the expected count",
            ),
        ),
    ),
    Fault(
        "wild-poisson-counts-log-input-false",
        POISSON,
        19,
        "dev",
        "the loss is built with log_input=False while the model outputs the log-rate: it "
        "takes the output for the rate itself and computes log(output), which is NaN "
        "wherever the log-rate is negative; the training loss prints nan from the first "
        "epoch and the test deviance is 104 against 5.5 for a constant rate (D² -17.8; "
        "healthy: 0.98, D² 0.82)",
        also=(18, 37),
        edits=(
            Edit(
                "criterion = nn.PoissonNLLLoss(log_input=True)",
                "criterion = nn.PoissonNLLLoss(log_input=False)",
            ),
        ),
    ),
):
    register_fault(fault)
