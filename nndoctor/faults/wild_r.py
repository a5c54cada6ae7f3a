"""Wild cases: capsules, graphs and sets, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a capsule network with dynamic
routing (Sabour et al.) on generated stroke glyphs (a ReLU conv layer, primary capsules
cut from a strided conv, class capsules from per-pair 16x8 transformation matrices and
three routing-by-agreement iterations on detached predictions but the last, squash,
margin loss plus a 0.0005-weighted reconstruction from a label-masked decoder, Adam with
exponential decay, accuracy from the capsule lengths); graph classification with a Graph
Isomorphism Network written without torch_geometric (generated unattributed graphs of
three families, PyG-style batching with shifted edge indices and a ``batch`` vector,
``index_add_`` neighbour sums, BatchNorm MLPs, sum-pooled jumping-knowledge readout,
``log_softmax`` and ``nll_loss``, Adam with ``StepLR``, a held-out fold); and Deep Sets
on the sum of the digits in a set (8-bit seven-segment readings scaled to [0, 1], sets
drawn on the fly per index, padding ``collate`` with a mask, element-wise ``phi``, masked
sum pooling, ``rho``, L1 loss, Adam with per-batch cosine decay, tested on sets larger
than any seen in training). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: four scripts of the group of thirteen in ``wild_q.py`` to
``wild_t.py`` (the GIN graph classifier, the attention GRU translator, SWA and Wide & Deep),
with their faults, are ``test``, drawn at random (seed 20261205) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

CAPSNET = "wild-capsnet-routing"
GIN = "wild-gin-graph-classification"
DEEPSETS = "wild-deepsets-sum"

for case in (
    HealthyCase(
        CAPSNET,
        "dev",
        "CapsNet with dynamic routing on 20x20 stroke glyphs: primary capsules reshaped from "
        "a strided conv, einsum predictions through per-pair matrices, three routing "
        "iterations (intermediate ones on detached predictions, coupling logits reset per "
        "batch), squash, margin loss that sits near 0.04 rather than 0, plus 0.0005 x the "
        "summed squared reconstruction error (about 20 per image, never near 0) from a "
        "decoder masked by the true label; Adam + ExponentialLR per epoch; test accuracy "
        "0.974 / 0.978 / 0.976 on seeds 0-2",
        script="wild/capsnet_routing.py",
    ),
    HealthyCase(
        GIN,
        "test",
        "GIN graph classification in plain torch: unattributed graphs with a constant node "
        "feature, PyG-style collate (concatenated nodes, edge indices shifted per graph, a "
        "batch vector), index_add_ neighbour sums, learnable eps, BatchNorm MLPs, sum-pooled "
        "readouts of every layer concatenated, log_softmax + nll_loss, Adam + StepLR per "
        "epoch, noisy training loss (a bump near epoch 10); test accuracy 0.98 / 1.00 / 0.99 "
        "on seeds 0-2",
        script="wild/gin_graph_classification.py",
    ),
    HealthyCase(
        DEEPSETS,
        "dev",
        "Deep Sets digit sum: variable-size sets padded by a collate with a mask, map-style "
        "Dataset drawing each set from a generator seeded by its index, phi MLP per element, "
        "masked sum pooling, rho MLP, L1 loss on sums up to 90 (the loss starts near 12), "
        "Adam + CosineAnnealingLR per batch; MAE 0.26 / 0.25 / 0.22 on held-out sets of 1-10 "
        "and 0.54 / 0.50 / 0.42 (rounded accuracy 0.64 / 0.68 / 0.76) on sets of 11-20 on "
        "seeds 0-2",
        script="wild/deepsets_sum.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- CapsNet -------------------------------------------------------------------------
    Fault(
        "wild-capsnet-routing-final-iteration-on-detached",
        CAPSNET,
        23,
        "dev",
        "the last routing iteration also sums the detached predictions (u_hat_detached for "
        "u_hat), as the intermediate ones do: nothing of the margin loss reaches W, the "
        "primary capsules or the conv layer, which keep their initial values; only the "
        "decoder trains; the margin loss stays at 0.810 from the first epoch and the test "
        "accuracy at 0.145 (chance 0.167) after 5 epochs instead of 0.974 (margin loss "
        "0.042)",
        also=(22,),
        edits=(
            Edit(
                "v = squash((c.unsqueeze(-1) * u_hat).sum(dim=2))",
                "v = squash((c.unsqueeze(-1) * u_hat_detached).sum(dim=2))",
            ),
        ),
    ),
    Fault(
        "wild-capsnet-routing-softmax-over-input-capsules",
        CAPSNET,
        25,
        "dev",
        "the coupling coefficients are a softmax over dim=2, the 288 primary capsules, "
        "instead of dim=1, the 6 class capsules: each class capsule gets a weighted average "
        "of the predictions (48x smaller at the start) instead of their routed sum, so the "
        "squashed lengths start near 0 and learning is slow; test accuracy 0.16 after the "
        "first epoch (healthy 0.87) and 0.845 after 5 epochs with margin loss 0.247 "
        "(healthy 0.974, 0.042)",
        also=(22, 35),
        edits=(Edit("c = F.softmax(b, dim=1)", "c = F.softmax(b, dim=2)"),),
    ),
    # --- GIN -----------------------------------------------------------------------------
    Fault(
        "wild-gin-graph-classification-edge-index-not-offset",
        GIN,
        3,
        "test",
        "collate concatenates the graphs' edge_index without adding the number of nodes "
        "before each graph: every graph's edges point at the first nodes of the batch (the "
        "first one or two graphs), the other graphs arrive edgeless, and with a constant "
        "node feature and family-independent node counts nothing is left to classify; the "
        "loss stays at 1.0987 (ln 3) for 40 epochs and the test accuracy is 0.31 instead of "
        "0.98",
        also=(25, 1),
        edits=(
            Edit(
                "edge_indices.append(g.edge_index + offset)",
                "edge_indices.append(g.edge_index)",
            ),
        ),
    ),
    Fault(
        "wild-gin-graph-classification-log-softmax-dropped",
        GIN,
        19,
        "test",
        "the model returns the classifier's raw logits (the final F.log_softmax dropped) "
        "while the loop still calls F.nll_loss, which expects log-probabilities: the loss "
        "is minus the true class's logit, unbounded below, and falls to -4.6e5 after 5 "
        "epochs and -4.5e7 after 40 as the true classes' logits are pushed up without bound; "
        "test accuracy 0.37 instead of 0.98",
        also=(18,),
        edits=(Edit("        return F.log_softmax(out, dim=-1)\n", "        return out\n"),),
    ),
    # --- Deep Sets -----------------------------------------------------------------------
    Fault(
        "wild-deepsets-sum-prediction-not-squeezed",
        DEEPSETS,
        25,
        "dev",
        "the training loop no longer squeezes the (batch, 1) prediction: F.l1_loss "
        "broadcasts it against the (batch,) sums (with a UserWarning) and scores every "
        "prediction against every sum of the batch, so the best output is the batch median "
        "for every set; after 4 epochs the MAE is 12.0 on held-out sets of 1-10 and 45.9 "
        "on sets of 11-20, rounded accuracy 0.024 / 0.001 (healthy: 0.26 / 0.54, accuracy "
        "0.87 / 0.64)",
        also=(19, 4),
        edits=(
            Edit(
                "            pred = model(x, mask).squeeze(-1)\n            loss = F.l1_loss",
                "            pred = model(x, mask)\n            loss = F.l1_loss",
            ),
        ),
    ),
    Fault(
        "wild-deepsets-sum-readings-not-scaled",
        DEEPSETS,
        12,
        "dev",
        "the Dataset returns the 8-bit readings as floats without dividing by 255: the "
        "element features are 0-255 instead of 0-1, the first layer of phi starts far off "
        "scale and its summed outputs with it, and training is slow and noisy; after 4 "
        "epochs the MAE is 0.78 on held-out sets of 1-10 and 1.46 on sets of 11-20, "
        "rounded accuracy 0.46 / 0.23 (healthy: 0.26 / 0.54, accuracy 0.87 / 0.64)",
        also=(1,),
        edits=(
            Edit(
                "features = read_digits(digits, g).float() / 255",
                "features = read_digits(digits, g).float()",
            ),
        ),
    ),
):
    register_fault(fault)
