"""Wild cases, fifth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a physics-informed network for the
1-D heat equation (no data, a loss built from the PDE residual through
``torch.autograd.grad(..., create_graph=True)`` plus initial and boundary terms), a
RealNVP normalizing flow on two moons (affine couplings with alternating masks, loss the
negative log-likelihood), BERT-style masked language modelling on a generated grammar
(hand-written 80/10/10 masking with labels -100 off the chosen positions, a tied output
embedding, warm-up then linear decay per batch), advantage actor-critic on vectorised
gridworlds (n-step returns, entropy bonus, detached advantages, RMSprop with clipping),
and image captioning of generated shape scenes (CNN encoder, GRU decoder over packed
padded captions with teacher forcing, an EMA of the weights kept with ``AveragedModel``
and validated). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

PINN = "wild-pinn-heat"
REALNVP = "wild-realnvp-moons"
MLM = "wild-mlm-tiny-bert"
A2C = "wild-a2c-gridworld"
CAPTION = "wild-caption-gru"

for case in (
    HealthyCase(
        PINN,
        "dev",
        "physics-informed MLP (tanh) for the 1-D heat equation: fresh collocation points "
        "each step, PDE residual through autograd.grad(create_graph=True), plus initial- and "
        "boundary-condition MSE; no data; Adam + StepLR",
        script="wild/pinn_heat.py",
    ),
    HealthyCase(
        REALNVP,
        "dev",
        "RealNVP on standardised two moons: six affine couplings with alternating masks, "
        "tanh scale nets, loss = -(base log-prob + sum of log-dets), Adam, manual batches",
        script="wild/realnvp_moons.py",
    ),
    HealthyCase(
        MLM,
        "dev",
        "BERT-style MLM on a generated grammar: collate_fn masking 15% (80/10/10), labels "
        "-100 elsewhere, TransformerEncoder(batch_first=True) with a padding mask, tied "
        "output embedding, CE(ignore_index=-100), AdamW + warm-up/linear decay per batch",
        script="wild/mlm_tiny_bert.py",
    ),
    HealthyCase(
        A2C,
        "dev",
        "A2C on 16 vectorised gridworlds: shared trunk with policy and value heads, 5-step "
        "returns, policy loss - 0.01 entropy + 0.5 value MSE with detached advantages, "
        "RMSprop, gradient clipping; the data come from the policy itself",
        script="wild/a2c_gridworld.py",
    ),
    HealthyCase(
        CAPTION,
        "dev",
        "captioning generated shape scenes: CNN encoder to the GRU's initial state, teacher "
        "forcing over pack_padded_sequence, CE(ignore_index=pad), Adam, an EMA of the "
        "weights (AveragedModel) validated by greedy decoding",
        script="wild/caption_gru.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- physics-informed network -------------------------------------------------------
    Fault(
        "wild-pinn-heat-retain-graph-for-create-graph",
        PINN,
        26,
        "dev",
        "the second derivative u_xx is taken with retain_graph=True instead of "
        "create_graph=True: it is computed but not differentiable in the weights, so the "
        "residual's gradient lacks its diffusion term; after 4,000 steps the residual's "
        "mean square is 6e-3 instead of 3e-4 and the error against the solution 6.4% "
        "instead of 1.3%",
        also=(18,),
        edits=(
            Edit(
                "grad_outputs=torch.ones_like(u_x), create_graph=True)[0]",
                "grad_outputs=torch.ones_like(u_x), retain_graph=True)[0]",
            ),
        ),
    ),
    Fault(
        "wild-pinn-heat-boundary-not-squared",
        PINN,
        18,
        "dev",
        "the boundary term is written as the mean of the boundary values, without the "
        "square: the loss is unbounded below, the network drives u(+-1, t) to large negative "
        "values, the total loss falls to about -40 while the error against the solution "
        "grows past 2,000%",
        also=(21,),
        edits=(
            Edit(
                "loss_bc = model(x_bc, t_bc).pow(2).mean()",
                "loss_bc = model(x_bc, t_bc).mean()",
            ),
        ),
    ),
    # --- RealNVP flow -------------------------------------------------------------------
    Fault(
        "wild-realnvp-logdet-subtracted",
        REALNVP,
        18,
        "dev",
        "the log-likelihood subtracts the sum of log-determinants instead of adding it: the "
        "loss rewards contracting every layer, its 'NLL' saturates at -5 nats within 5 "
        "epochs while samples from the flow spread over a standard deviation of 44 (the "
        "data: 0.9)",
        also=(22,),
        edits=(
            Edit(
                "return base.log_prob(x).sum(dim=1) + log_det",
                "return base.log_prob(x).sum(dim=1) - log_det",
            ),
        ),
    ),
    Fault(
        "wild-realnvp-mask-not-alternated",
        REALNVP,
        22,
        "dev",
        "the line that flips the mask between coupling layers is lost: every layer "
        "transforms the same coordinate, the other one passes through untouched and is "
        "modelled as a standard normal; the test NLL stays at 1.62 nats instead of 0.38",
        also=(24,),
        edits=(Edit("            mask = 1 - mask\n", ""),),
    ),
    # --- masked language modelling ------------------------------------------------------
    Fault(
        "wild-mlm-mask-token-on-labels",
        MLM,
        3,
        "dev",
        "the collator writes [MASK] into the labels instead of the inputs: the chosen "
        "tokens stay visible and 80% of their targets are [MASK], which the model learns "
        "to predict; the printed masked-token accuracy (scored on the same labels) reads "
        "0.83, while scored against the real hidden words it is 0.01 after two epochs "
        "(healthy: 0.45)",
        also=(4, 18),
        edits=(Edit("input_ids[indices_replaced] = 3", "labels[indices_replaced] = 3"),),
    ),
    Fault(
        "wild-mlm-input-ids-as-targets",
        MLM,
        18,
        "dev",
        "the loss is given the batch's (masked) input ids as targets instead of its labels: "
        "the model learns to copy its input, [MASK] included, at every position; after two "
        "epochs the loss is 0.008 and the masked-token accuracy 0.10 (healthy: 0.45)",
        also=(3, 21),
        edits=(Edit('batch["labels"].view(-1))', 'batch["input_ids"].view(-1))'),),
    ),
    # --- advantage actor-critic ---------------------------------------------------------
    Fault(
        "wild-a2c-advantages-not-detached",
        A2C,
        18,
        "dev",
        "the advantages are not detached in the policy term: the policy loss back-propagates "
        "into the value head and the shared trunk, the value estimates are pushed away "
        "from the returns (value loss up to 3.4) and the policy collapses; the mean return "
        "ends at -0.28 instead of 0.97 (a random policy: about 0.15)",
        edits=(
            Edit(
                "policy_loss = -(advantages.detach() * log_probs_t).mean()",
                "policy_loss = -(advantages * log_probs_t).mean()",
            ),
        ),
    ),
    Fault(
        "wild-a2c-log-prob-of-resampled-action",
        A2C,
        4,
        "dev",
        "the log-probability kept for the update is that of a second sample from the "
        "distribution, not of the action sent to the environment: returns are credited to "
        "actions that were not taken, the policy stays uniform (entropy ln 4) and the mean "
        "return stays about 0.1",
        also=(3, 18),
        edits=(
            Edit(
                "log_probs.append(dist.log_prob(action))",
                "log_probs.append(dist.log_prob(dist.sample()))",
            ),
        ),
    ),
    # --- image captioning ---------------------------------------------------------------
    Fault(
        "wild-caption-targets-not-shifted",
        CAPTION,
        3,
        "dev",
        "the targets are sliced like the inputs (captions[:, :-1]) instead of one token "
        "ahead: the decoder learns to copy its input token, the training loss falls to 0.06 "
        "and greedy decoding gets no token right from the sixth epoch on (healthy: 0.81)",
        also=(4, 21),
        edits=(
            Edit(
                "inputs, targets = captions[:, :-1], captions[:, 1:]",
                "inputs, targets = captions[:, :-1], captions[:, :-1]",
            ),
        ),
    ),
    Fault(
        "wild-caption-ema-never-updated",
        CAPTION,
        23,
        "dev",
        "ema_model.update_parameters(model) is missing from the step: the averaged model "
        "that is validated keeps its initial weights, and its validation token accuracy "
        "stays at 0.065 every epoch while the training loss falls from 0.77 to 0.10",
        also=(21,),
        edits=(Edit("        ema_model.update_parameters(model)\n", ""),),
    ),
):
    register_fault(fault)
