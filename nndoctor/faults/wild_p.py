"""Wild cases, sixteenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): PPO with the clipped surrogate
objective after the CleanRL single-file ``ppo.py``, scaled down (8 cart-poles vectorised
in torch in the script with auto-reset, separate Tanh actor and critic MLPs initialised
by ``layer_init``, 128-step rollouts into storage tensors, GAE, 4 epochs over shuffled
minibatches with per-minibatch advantage normalisation, clipped value loss, entropy
bonus, Adam with linear annealing and ``clip_grad_norm_(0.5)``); and an LSTM autoencoder
for anomaly detection on multivariate sensor windows after the common tutorials (sliding
windows of generated periodic signals, a scaler fitted on the training windows, an
encoder LSTM to a latent vector repeated over time for the decoder LSTM, MSE, Adam,
early stopping on the validation loss, a threshold at the 99th percentile of the
training errors, AUROC and average precision on normal windows mixed with injected
spikes, level shifts and frequency changes). Each fault is one bug as it arrives in code
in that style.

Names start with ``wild-``. Split: three scripts of the group of ten in ``wild_m.py`` to
``wild_p.py`` (the BiLSTM-CRF tagger, Prototypical Networks and the matrix factorisation),
with their faults, are ``test``, drawn at random (seed 20261204) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

PPO = "wild-ppo-clip"
LSTM_AE = "wild-lstm-autoencoder-anomaly"

for case in (
    HealthyCase(
        PPO,
        "dev",
        "CleanRL-style PPO on 8 vectorised cart-poles: data produced by the policy itself, "
        "on-policy rollouts re-used for 4 epochs of minibatches, a surrogate loss near zero "
        "with advantages normalised per minibatch, a value loss in the tens (returns up to "
        "~100, truncation not bootstrapped), entropy bonus, learning rate annealed to zero, "
        "gradient norm clipped at 0.5",
        script="wild/ppo_clip.py",
    ),
    HealthyCase(
        LSTM_AE,
        "dev",
        "LSTM autoencoder on standardised 5-sensor windows: the input is its own target, "
        "latent repeated over time for the decoder, MSE from the data variance (1) down to "
        "0.004 with plateaus and bumps on the way, Adam, early stopping with the best "
        "state kept, anomaly scores from per-window reconstruction error judged by AUROC",
        script="wild/lstm_autoencoder_anomaly.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- PPO ------------------------------------------------------------------------------
    Fault(
        "wild-ppo-clip-obs-stored-after-step",
        PPO,
        4,
        "dev",
        "obs[step] is written after envs.step(action), with the observation that follows "
        "the action instead of the one it was chosen on: every stored action, "
        "log-probability and advantage is paired with the next state, so the ratio and "
        "the policy gradient are computed on the wrong inputs; the mean episodic return creeps up to 82 by "
        "iteration 90, then collapses to 17-19 (below the ~22 of a random policy) and the "
        "deterministic policy returns 16.8, against 500 and 500 healthy (seeds 0-2)",
        also=(3,),
        edits=(
            Edit("            obs[step] = next_obs\n", ""),
            Edit(
                "            rewards[step] = reward\n",
                "            rewards[step] = reward\n            obs[step] = next_obs\n",
            ),
        ),
    ),
    Fault(
        "wild-ppo-clip-softmax-actor-as-logits",
        PPO,
        19,
        "dev",
        "the actor ends in nn.Softmax(dim=-1) while get_action_and_value still builds "
        "Categorical(logits=...): the probabilities in [0, 1] are taken as logits, so no "
        "action can get more than e / (e + 1) = 0.73 of the mass and the gradients reach "
        "the network through a second softmax; the entropy stays at 0.61 (its floor under the cap "
        "is 0.58) and the mean episodic return of the trained, sampled policy plateaus at "
        "100-140 (121 / 131 at the end on seeds 0 / 1) instead of reaching 500 by "
        "iteration 140; only the argmax policy, which the cap does not touch, returns "
        "493 / 482",
        edits=(
            Edit(
                "            layer_init(nn.Linear(hidden, n_actions), std=0.01),\n        )\n",
                "            layer_init(nn.Linear(hidden, n_actions), std=0.01),\n"
                "            nn.Softmax(dim=-1),\n        )\n",
            ),
        ),
    ),
    Fault(
        "wild-ppo-clip-value-not-flattened",
        PPO,
        25,
        "dev",
        "newvalue = newvalue.view(-1) is left out: the critic's values of shape (256, 1) "
        "minus the minibatch's returns of shape (256,) broadcast to (256, 256) in the "
        "hand-written, clipped value loss, which asks every value to match every return of "
        "the minibatch, so the critic learns the minibatch's mean return: its explained "
        "variance stays within 0.05 of 0 from iteration 10 to 195 (healthy: 0.45-0.90 "
        "over iterations 30-130), the advantages are returns minus one number, and the "
        "policy learns more slowly and less steadily (mean episodic return 424-491 over "
        "iterations 80-195, deterministic 486.5; healthy 500 and 500, seed 0)",
        also=(19,),
        edits=(Edit("                newvalue = newvalue.view(-1)\n", ""),),
    ),
    # --- LSTM autoencoder -----------------------------------------------------------------
    Fault(
        "wild-lstm-autoencoder-anomaly-latent-repeat-view",
        LSTM_AE,
        25,
        "dev",
        "the decoder repeats the latent by z.repeat(seq_len, 1).view(-1, seq_len, dim), "
        "a port of the batch-size-one tutorial's repeat + reshape, instead of "
        "z.unsqueeze(1).repeat(1, seq_len, 1): the repeated rows are time-major, so each "
        "window is decoded from the latents of other windows of the batch; the training loss stays at 1.000 (the variance "
        "of the standardised data), early stopping ends at epoch 13 with validation loss "
        "1.010 and the test AUROC is 0.534, average precision 0.546, F1 0.069 (healthy, "
        "seed 0: validation loss 0.0043, AUROC 1.000, AP 1.000, F1 0.988)",
        also=(4,),
        edits=(
            Edit(
                "x = z.unsqueeze(1).repeat(1, self.seq_len, 1)",
                "x = z.repeat(self.seq_len, 1).view(-1, self.seq_len, self.embedding_dim)",
            ),
        ),
    ),
    Fault(
        "wild-lstm-autoencoder-anomaly-no-zero-grad",
        LSTM_AE,
        26,
        "dev",
        "optimizer.zero_grad() is missing from the training loop: the gradients of every "
        "batch since the start are summed and Adam follows that growing sum; the loss wanders between 0.84 and 1.03, early stopping "
        "ends at epoch 13 (best validation loss 0.843) and the test AUROC is 0.522, "
        "average precision 0.525, F1 0.039 (healthy, seed 0: validation loss 0.0043, "
        "AUROC 1.000, AP 1.000, F1 0.988)",
        also=(36,),
        edits=(Edit("            optimizer.zero_grad()\n", ""),),
    ),
):
    register_fault(fault)
