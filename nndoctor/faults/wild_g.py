"""Wild cases, seventh set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): neural collaborative filtering
(NeuMF) on generated implicit feedback (GMF and MLP towers over user and item
embeddings, 4 fresh negatives sampled per positive every epoch by the dataset's
``ng_sample()``, ``BCEWithLogitsLoss``, Adam, leave-one-out hit-rate@10 against 99
negatives), and face-recognition-style metric learning with an ArcFace head on
generated identities (a BatchNorm CNN embedder, L2-normalised embeddings and class
weights, cos(theta + m) on the true class, scale s = 30, cross-entropy, SGD with
momentum and weight decay + ``MultiStepLR``, verification accuracy on held-out
identities by a cosine-similarity threshold). Each fault is one bug as it arrives in
code in that style.

Names start with ``wild-``. Split: the ArcFace case and its faults are ``test`` (drawn at random
before the first measurement), the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

NCF = "wild-ncf-implicit"
ARCFACE = "wild-arcface-metric"

for case in (
    HealthyCase(
        NCF,
        "dev",
        "NeuMF on generated implicit feedback: GMF + MLP towers over user/item embeddings, "
        "4 negatives re-sampled per positive every epoch by the Dataset, shuffled "
        "DataLoader, BCEWithLogitsLoss, Adam; leave-one-out HR@10 against 99 negatives",
        script="wild/ncf_implicit.py",
    ),
    HealthyCase(
        ARCFACE,
        "test",
        "ArcFace metric learning on generated identities: BatchNorm/PReLU CNN embedder with "
        "a BN-Dropout-FC-BN output block, additive angular margin head (normalised "
        "embeddings and weights, m=0.5, s=30), CE, SGD momentum + weight decay, "
        "MultiStepLR per epoch; verification accuracy on unseen identities",
        script="wild/arcface_metric.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- neural collaborative filtering -------------------------------------------------
    Fault(
        "wild-ncf-negatives-before-positives",
        NCF,
        3,
        "dev",
        "ng_sample() concatenates the negatives before the positives in the features but "
        "the positive labels before the negative ones: the first 12,000 negatives are "
        "labelled 1 and every positive 0, so the labels follow the user id instead of the "
        "interaction; the training loss falls to 0.055 (healthy: 0.20) while HR@10 stays "
        "at chance, 0.09-0.15 every epoch and 0.12 at the end (healthy: 0.66, random: 0.10)",
        also=(4, 21),
        edits=(
            Edit(
                "self.features_fill = self.features_ps + features_ng",
                "self.features_fill = features_ng + self.features_ps",
            ),
        ),
    ),
    Fault(
        "wild-ncf-sigmoid-before-bce-with-logits",
        NCF,
        19,
        "dev",
        "the model's output goes through torch.sigmoid although the loss is "
        "BCEWithLogitsLoss, which applies its own: the 'logits' are confined to (0, 1), so "
        "no negative can score below 0.5 and the loss is bounded below by about 0.62; it "
        "stays at 0.687 from the third epoch (healthy: 0.20 at the end) and HR@10 reaches "
        "only 0.19-0.22 (healthy: 0.66)",
        also=(18,),
        edits=(
            Edit(
                "        prediction = self.predict_layer(concat)",
                "        prediction = torch.sigmoid(self.predict_layer(concat))",
            ),
        ),
    ),
    # --- ArcFace metric learning --------------------------------------------------------
    Fault(
        "wild-arcface-margin-on-other-classes",
        ARCFACE,
        18,
        "test",
        "the one-hot mask is applied the wrong way round, putting cos(theta + m) on every "
        "class but the true one: the loss is minimised by a degenerate geometry in which "
        "every embedding sits at about pi/2 - m/2 from every class weight, whatever its "
        "class; within two epochs the loss is 0.001 and the training accuracy 1.000, while "
        "verification accuracy on unseen identities falls to 0.55 (untrained: 0.62, "
        "healthy: 0.96)",
        also=(21,),
        edits=(
            Edit(
                "output = (one_hot * phi) + ((1.0 - one_hot) * cosine)",
                "output = (one_hot * cosine) + ((1.0 - one_hot) * phi)",
            ),
        ),
    ),
    Fault(
        "wild-arcface-weights-not-normalised",
        ARCFACE,
        37,
        "test",
        "the class weights are not L2-normalised in the head: 'cosine' leaves [-1, 1] as "
        "the weights grow (row norms 3.6 by epoch 8), 1 - cos^2 is clamped to 0 and the "
        "backward of sqrt there returns NaN (detect_anomaly: SqrtBackward0); the weights "
        "turn NaN during epoch 8, the loss is nan from then on and verification accuracy "
        "0.500 (before that it lagged: 0.916 at epoch 6, healthy 0.946)",
        also=(22, 18),
        edits=(
            Edit(
                "cosine = F.linear(F.normalize(input), F.normalize(self.weight))",
                "cosine = F.linear(F.normalize(input), self.weight)",
            ),
        ),
    ),
):
    register_fault(fault)
