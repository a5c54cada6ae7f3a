"""Wild cases, eleventh set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): PointNet classification of generated
3-D point clouds (an input T-Net, a shared per-point ``Conv1d`` MLP, a max over the points,
``StepLR`` per epoch); a mixture density network for the two-valued inverse kinematics of
a two-link arm (mixture logits, means and log standard deviations, a hand-written mixture
negative log-likelihood through ``logsumexp`` that goes below zero); RankNet on a
generated LETOR-style collection (padded query slates, a pairwise logistic loss on score
differences within each query, NDCG@10); a tiny Vision Transformer trained from scratch on
generated 32x32 patterns (``Conv2d`` patch embedding, class token, learned positions,
pre-norm ``nn.MultiheadAttention`` blocks, label smoothing, AdamW with decay on the
weight matrices only, warm-up then cosine by ``LambdaLR``); and DQN on a gridworld with
walls and lava written in the script (replay memory, decaying epsilon, a target network
synced every 250 steps, ``smooth_l1_loss`` on the TD error). Each fault is one bug as it
arrives in code in that style.

Names start with ``wild-``. Split: the mixture density network and its faults are ``test``
(drawn at random with the other new group, seed 20261214, before the first measurement),
the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

POINTNET = "wild-pointnet-shapes"
MDN = "wild-mdn-inverse"
RANKNET = "wild-ranknet-letor"
VIT = "wild-vit-tiny"
DQN = "wild-dqn-gridworld"

for case in (
    HealthyCase(
        POINTNET,
        "dev",
        "PointNet on generated point clouds of 5 shapes: Dataset resampling 128 of 1,024 "
        "surface points per object with rotation and jitter in training, STN3d input "
        "transform, shared Conv1d/BatchNorm1d per-point MLP, max over the points, "
        "Dropout(0.3), CrossEntropyLoss, Adam + StepLR per epoch",
        script="wild/pointnet_shapes.py",
    ),
    HealthyCase(
        MDN,
        "test",
        "mixture density network for two-link arm inverse kinematics (two-valued targets): "
        "tanh MLP with mixture-logit, mean and log-std heads, hand-written mixture NLL by "
        "logsumexp (the loss goes down to about -4), Adam, manual shuffled mini-batches",
        script="wild/mdn_inverse.py",
    ),
    HealthyCase(
        RANKNET,
        "dev",
        "RankNet on a generated LETOR-style collection: 46 features on mixed scales "
        "standardised with training statistics, slates padded to 60 documents (label -1), "
        "pairwise BCEWithLogits on score differences over the pairs with different labels "
        "(a few thousand pairs a batch, loss near 0.1), Xavier init by apply, Adam, NDCG@10",
        script="wild/ranknet_letor.py",
    ),
    HealthyCase(
        VIT,
        "dev",
        "tiny ViT from scratch on generated 32x32 patterns: Conv2d patch embedding (16 "
        "patches), class token, learned position embeddings, 4 pre-norm blocks with "
        "nn.MultiheadAttention(batch_first=True), label smoothing 0.1, AdamW with decay on "
        "weight matrices only, linear warm-up + cosine by LambdaLR per batch (lr 0 at the "
        "end), clipping, random crop and flip per image",
        script="wild/vit_tiny.py",
    ),
    HealthyCase(
        DQN,
        "dev",
        "DQN on a gridworld in the script: one-hot row/column observation, replay memory of "
        "10,000, epsilon decaying from 1 to 0.05, target network synced every 250 steps, "
        "smooth_l1_loss on the TD error (loss near 2e-5 once learned), Adam, clipping; no "
        "update for the first 500 steps",
        script="wild/dqn_gridworld.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- PointNet on point clouds -------------------------------------------------------
    Fault(
        "wild-pointnet-view-for-transpose",
        POINTNET,
        25,
        "dev",
        "the (batch, points, 3) clouds are reshaped with .view(batch, 3, -1) instead of "
        "transposed: no error, but each Conv1d 'channel' now holds a run of x, y and z "
        "values of different points, so the per-point MLP never sees a point; the training "
        "loss stalls near 1.11 and the test accuracy ends at 0.54 over 5 shapes (healthy: "
        "loss 0.26, test accuracy 0.96)",
        also=(1,),
        edits=(
            Edit(
                "x = points.transpose(2, 1)  # (batch, 3, n_points) for Conv1d",
                "x = points.view(points.size(0), 3, -1)  # (batch, 3, n_points) for Conv1d",
            ),
        ),
    ),
    Fault(
        "wild-pointnet-steplr-per-batch",
        POINTNET,
        36,
        "dev",
        "scheduler.step() is moved from the end of the epoch into the batch loop: StepLR "
        "(step_size=4, gamma=0.5) now halves the learning rate every 4 batches, so it is "
        "below 2e-7 after the first epoch of 50 batches; the training loss stays at 1.43 "
        "and the test accuracy at 0.38-0.43 over the 10 epochs (healthy: loss 0.26, test "
        "accuracy 0.96)",
        also=(33,),
        edits=(
            Edit(
                "            seen += len(target)\n        scheduler.step()\n",
                "            seen += len(target)\n",
            ),
            Edit(
                "            optimizer.step()\n",
                "            optimizer.step()\n            scheduler.step()\n",
            ),
        ),
    ),
    # --- mixture density network --------------------------------------------------------
    Fault(
        "wild-mdn-logsumexp-over-batch",
        MDN,
        25,
        "test",
        "the mixture log-likelihood is reduced by logsumexp over dim=0, the batch, instead of "
        "dim=1, the components: each component only has to explain some sample of the "
        "batch, so the printed NLL looks better than the healthy one (train -6.3, val -8.5 "
        "against -4.06 / -4.03) while the most probable component's arm pose misses the "
        "target by 0.036 on average at the end (0.017-0.083 over the run; healthy: 0.0067)",
        also=(18, 21, 22),
        edits=(
            Edit(
                "return -torch.logsumexp(log_pi + log_normal, dim=1).mean()",
                "return -torch.logsumexp(log_pi + log_normal, dim=0).mean()",
            ),
        ),
    ),
    Fault(
        "wild-mdn-log-sigma-term-dropped",
        MDN,
        18,
        "test",
        "the -log(sigma) normalising term is dropped from the hand-written Gaussian "
        "log-density: the loss is then minimised by inflating every sigma, the squared "
        "z-scores go to zero and the NLL sticks at log(2*pi) = 1.838 from epoch 10 on, "
        "worse than one Gaussian on the targets (1.385), the means no longer get a "
        "gradient and the end-effector error stays at 0.083 (healthy: NLL -4.03, 0.0067)",
        also=(22,),
        edits=(
            Edit(
                "(-0.5 * z**2 - log_sigma - 0.5 * math.log(2 * math.pi))",
                "(-0.5 * z**2 - 0.5 * math.log(2 * math.pi))",
            ),
        ),
    ),
    # --- RankNet --------------------------------------------------------------------------
    Fault(
        "wild-ranknet-pair-labels-reversed",
        RANKNET,
        19,
        "dev",
        "the pair labels are built as sign(rel_j - rel_i) while the logits are s_i - s_j: "
        "every pair is taught the wrong order, the pairwise loss falls just as in the "
        "healthy run (0.11 against 0.105 after 40 epochs) while the model learns to rank "
        "the relevant documents last, validation NDCG@10 0.001 and test 0.0008, far below "
        "a random ranking (0.195; healthy: 0.885 and 0.898)",
        also=(18, 21),
        edits=(
            Edit(
                "s_ij = torch.sign(rel[:, :, None] - rel[:, None, :])",
                "s_ij = torch.sign(rel[:, None, :] - rel[:, :, None])",
            ),
        ),
    ),
    Fault(
        "wild-ranknet-zero-init",
        RANKNET,
        28,
        "dev",
        "the init function zeroes the Linear weights instead of applying Xavier: every "
        "hidden unit outputs 0, no weight gets a gradient and the bias's gradient cancels "
        "in the score differences, so nothing moves; the pairwise loss stays at "
        "ln 2 = 0.6931 for all 40 epochs and NDCG@10 at 0.194 val / 0.215 test, the level "
        "of a random ranking (healthy: 0.885 / 0.898)",
        also=(23, 35),
        edits=(Edit("nn.init.xavier_uniform_(m.weight)", "nn.init.zeros_(m.weight)"),),
    ),
    # --- tiny ViT -------------------------------------------------------------------------
    Fault(
        "wild-vit-tiny-attention-not-batch-first",
        VIT,
        25,
        "dev",
        "batch_first=True is dropped from nn.MultiheadAttention while the blocks still pass "
        "(batch, tokens, dim): attention runs across the images of the batch at each token "
        "position, and the class token, identical in every image, only ever attends to "
        "copies of itself, so the head never sees the image; the loss stays at ln 8 = "
        "2.08 and validation accuracy at 0.12-0.13 (healthy: loss 0.79, accuracy 0.86)",
        edits=(
            Edit(
                "nn.MultiheadAttention(dim, num_heads, dropout=drop, batch_first=True)",
                "nn.MultiheadAttention(dim, num_heads, dropout=drop)",
            ),
        ),
    ),
    Fault(
        "wild-vit-tiny-zero-grad-after-backward",
        VIT,
        23,
        "dev",
        "optimizer.zero_grad(set_to_none=True) is moved between loss.backward() and "
        "optimizer.step(): every gradient is set to None before the step, AdamW skips "
        "all parameters (not even weight decay acts) and clipping sees no gradient; the "
        "loss stays at 2.084 and the validation accuracy at 0.137 for all 6 epochs "
        "(healthy: loss 0.79, accuracy 0.86)",
        also=(33,),
        edits=(
            Edit("            optimizer.zero_grad(set_to_none=True)\n", ""),
            Edit(
                "            loss.backward()\n",
                "            loss.backward()\n            optimizer.zero_grad(set_to_none=True)\n",
            ),
        ),
    ),
    # --- DQN on a gridworld ---------------------------------------------------------------
    Fault(
        "wild-dqn-gridworld-q-not-squeezed",
        DQN,
        25,
        "dev",
        "the gathered Q(s, a) keep their (64, 1) shape: smooth_l1_loss broadcasts them "
        "against the (64,) TD targets (only a UserWarning) and pulls every Q value towards "
        "all 64 targets of the batch; the last 50 training episodes return -0.79 and the greedy "
        "policy reaches the goal from 4% of the start cells, mean return -0.92 (healthy: "
        "0.76 in training, greedy 0.857 = optimal from 100% of the cells)",
        also=(19,),
        edits=(
            Edit(
                ".gather(1, action_batch.unsqueeze(1)).squeeze(1)",
                ".gather(1, action_batch.unsqueeze(1))",
            ),
        ),
    ),
    Fault(
        "wild-dqn-gridworld-state-advanced-before-push",
        DQN,
        3,
        "dev",
        "state = next_state is moved above memory.push, so every stored transition is "
        "(s', a, r, s'): the action and reward are paired with the state they led to; "
        "the TD loss is tiny (5e-6 against 2e-5 healthy) while the agent never learns the "
        "way, the last 50 episodes return -1.15 and the greedy policy reaches the goal "
        "from none of the start cells, mean return -1.00 (healthy: 0.857 = optimal, 100%)",
        also=(4,),
        edits=(
            Edit(
                "    episode_return += reward\n    memory.push(state, action, reward, next_state, "
                "terminated)\n    state = next_state\n",
                "    episode_return += reward\n    state = next_state\n    memory.push(state, "
                "action, reward, next_state, terminated)\n",
            ),
        ),
    ),
):
    register_fault(fault)
