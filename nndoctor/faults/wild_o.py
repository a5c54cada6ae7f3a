"""Wild cases, fifteenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): Prototypical Networks for few-shot
classification after the common PyTorch implementations of Snell et al. (generated
Omniglot-like glyphs from 200 classes split into training and held-out classes, a
hand-written 5-way 5-shot episode sampler, the four Conv-BN-ReLU-MaxPool blocks,
prototypes as mean support embeddings, negative squared Euclidean distances as logits,
``CrossEntropyLoss`` per episode, Adam with ``StepLR`` halving); TransE after the usual
PyTorch ports of Bordes et al. (a generated knowledge graph whose relations are
translations of a hidden latent space, entity and relation embeddings initialised in
+-6/sqrt(d), entities renormalised in place before each batch, head-or-tail corruption,
L1 distance, ``MarginRankingLoss(margin=1)`` with target -1, plain SGD, filtered mean
rank and Hits@10); and Funk-SVD style explicit-feedback matrix factorisation (generated
1-5 star ratings, user/item factors and biases and a global mean initialised to the
training mean, ``keepdim`` shapes squeezed at the end, a per-rating style loop over a
shuffled list in batches of 4, ``MSELoss`` and ``SGD(weight_decay)``, held-out RMSE
against the global-mean baseline). Each fault is one bug as it arrives in code in that
style.

Names start with ``wild-``. Split: three scripts of the group of ten in ``wild_m.py`` to
``wild_p.py`` (the BiLSTM-CRF tagger, Prototypical Networks and the matrix factorisation),
with their faults, are ``test``, drawn at random (seed 20261204) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

PROTONET = "wild-protonet-fewshot"
TRANSE = "wild-transe-kg"
MF = "wild-mf-ratings-sgd"

for case in (
    HealthyCase(
        PROTONET,
        "test",
        "Prototypical Networks, 5-way 5-shot with 10 queries per class on generated glyphs: "
        "a fresh episode of new classes every step (class ids are episode-local, 0-4), "
        "support and queries through one BatchNorm conv encoder, prototypes as support "
        "means, logits = -squared distance (large and negative), CrossEntropyLoss, Adam "
        "with StepLR halving every 3 epochs, test accuracy on held-out classes",
        script="wild/protonet_fewshot.py",
    ),
    HealthyCase(
        TRANSE,
        "dev",
        "TransE on a generated knowledge graph: embedding tables with dense gradients, "
        "entity rows renormalised to unit norm in place before each batch (through "
        ".data), random head/tail corruption, L1 distances, MarginRankingLoss(margin=1, "
        "reduction='sum') with target -1 (lower distance is better) that reaches ~0 on "
        "most triples, plain SGD at lr 0.01, filtered mean rank and Hits@10",
        script="wild/transe_kg.py",
    ),
    HealthyCase(
        MF,
        "test",
        "Funk-SVD matrix factorisation on 1-5 star ratings: embeddings and biases with a "
        "global mean parameter started at the training mean, batches of 4 ratings from a "
        "shuffled Python list (about 8,000 tiny steps per epoch, noisy loss), MSELoss, SGD "
        "with a small weight decay over the dense embedding gradients, held-out RMSE "
        "against the global-mean baseline",
        script="wild/mf_ratings_sgd.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- Prototypical Networks -----------------------------------------------------------
    Fault(
        "wild-protonet-fewshot-query-targets-repeat",
        PROTONET,
        4,
        "test",
        "the query targets of a training episode are built with "
        "torch.arange(n_way).repeat(n_query) (0, 1, 2, 3, 4, 0, 1, ...) while the sampler "
        "lays the queries out class by class (0, 0, ..., 1, 1, ...): four queries in five "
        "carry another class's label; the training loss stays at ln 5 = 1.61 with training "
        "accuracy 0.19, and the held-out 5-way 5-shot accuracy falls from 0.65 at "
        "initialisation to 0.56 after 300 episodes instead of rising to 0.88",
        also=(3,),
        edits=(
            Edit(
                "            target = torch.arange(args.n_way).repeat_interleave(args.n_query)\n",
                "            target = torch.arange(args.n_way).repeat(args.n_query)\n",
            ),
        ),
    ),
    Fault(
        "wild-protonet-fewshot-prototypes-mean-over-classes",
        PROTONET,
        25,
        "test",
        "the prototypes are z.view(n_way, k_shot, z_dim).mean(0) instead of .mean(1): with "
        "5-way 5-shot the shape (5, z_dim) is the same, but prototype j is the average of "
        "the j-th shot of every class, so all prototypes are near-identical mixtures of the "
        "five classes; the training loss stays at ln 5 = 1.61 and the held-out 5-way "
        "5-shot accuracy is 0.20 (chance) after 300 episodes instead of 0.88",
        also=(4,),
        edits=(
            Edit(
                ".view(n_way, k_shot, z_dim).mean(1)",
                ".view(n_way, k_shot, z_dim).mean(0)",
            ),
        ),
    ),
    # --- TransE --------------------------------------------------------------------------
    Fault(
        "wild-transe-kg-no-zero-grad",
        TRANSE,
        26,
        "dev",
        "optimizer.zero_grad() is missing from the batch loop: every SGD step applies the "
        "sum of all gradients since the start, which soon swamps the current batch; the "
        "loss stays near 1.0 per triple with half of the triples violating the margin, and "
        "after 100 epochs the filtered mean rank is 531 and Hits@10 0.024, no better than "
        "a random ranking (healthy: loss 0.027, violations 0.046, mean rank 25.8, Hits@10 "
        "0.566)",
        also=(36,),
        edits=(Edit("            optimizer.zero_grad()\n", ""),),
    ),
    Fault(
        "wild-transe-kg-margin-target-sign",
        TRANSE,
        19,
        "dev",
        "MarginRankingLoss is given target +1 (the convention for scores, where higher is "
        "better) for distances, where lower is better: the loss max(0, d_neg - d_pos + 1) "
        "pulls the corrupted triples together and pushes the true ones apart; the loss "
        "falls from 0.38 to 0.20 while 99% of the triples end up on the wrong side of the "
        "margin, and the filtered mean rank is 660 and Hits@10 0.026 after 100 epochs, "
        "worse than random (healthy: mean rank 25.8, Hits@10 0.566)",
        also=(18, 21),
        edits=(
            Edit(
                "target = torch.tensor([-1], dtype=torch.float)",
                "target = torch.tensor([1], dtype=torch.float)",
            ),
        ),
    ),
    # --- Matrix factorisation ------------------------------------------------------------
    Fault(
        "wild-mf-ratings-sgd-prediction-not-squeezed",
        MF,
        19,
        "test",
        "forward returns the (batch, 1) prediction without .squeeze(1): MSELoss against the "
        "(batch,) ratings broadcasts to (batch, batch) (with only a UserWarning), so every "
        "prediction is pulled towards the mean of the four ratings in its batch; the "
        "factors learn nothing, the training MSE stays at 0.93 and the held-out RMSE is "
        "0.885 after 10 epochs instead of 0.732 (global-mean baseline 0.966)",
        also=(25,),
        edits=(Edit("        return pred.squeeze(1)\n", "        return pred\n"),),
    ),
    Fault(
        "wild-mf-ratings-sgd-default-embedding-init",
        MF,
        28,
        "test",
        "the call to _init_weights() is missing from the constructor: the factors and "
        "biases keep nn.Embedding's N(0, 1) initialisation, so the 20-factor dot products "
        "start with a standard deviation near 4.5 stars (first-epoch training MSE 7.1); SGD "
        "fits the training ratings (MSE 0.33, healthy 0.30) by memorising around the random "
        "factors, and the held-out RMSE is 0.948 after 10 epochs, barely below the "
        "global-mean baseline 0.966, instead of 0.732",
        also=(21,),
        edits=(Edit("        self._init_weights()\n", ""),),
    ),
):
    register_fault(fault)
