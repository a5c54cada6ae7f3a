"""Healthy cases of the bundled examples: the healthy scripts of ``examples/`` and the
plain training scripts of the zoo (``examples/zoo/``), plus the zoo subjects checked
through the Python API (the bases of the subject faults).

Splits: about a third of the cases are ``test`` (never tuned on), chosen so that each
family of setups has members in both splits.
"""

from __future__ import annotations

from nndoctor.faults.registry import HealthyCase, register_healthy

for case in (
    HealthyCase(
        "mlp",
        "dev",
        "tabular MLP, DataLoader, CrossEntropyLoss, Adam, argparse",
        script="healthy_mlp.py",
        ci=True,
    ),
    HealthyCase(
        "cnn",
        "dev",
        "conv net with BatchNorm, SGD momentum, cosine schedule per batch",
        script="healthy_cnn.py",
    ),
    HealthyCase(
        "regression",
        "test",
        "residual MLP regression, custom Dataset, MSE, AdamW + StepLR",
        script="healthy_regression.py",
    ),
    HealthyCase(
        "custom-loss",
        "dev",
        "hand-written focal loss, manual slicing, top-level loop",
        script="healthy_custom_loss.py",
        ci=True,
    ),
    HealthyCase(
        "lstm", "test", "LSTM sequence classifier, slow to learn at first", script="healthy_lstm.py"
    ),
    HealthyCase(
        "transformer",
        "dev",
        "Transformer encoder on token ids, warm-up + cosine, clipping",
        script="healthy_transformer.py",
    ),
    HealthyCase(
        "bn-regression",
        "dev",
        "BatchNorm MLP, Huber loss, Nesterov SGD, cosine per epoch",
        script="healthy_bn_regression.py",
        ci=True,
    ),
    HealthyCase(
        "bf16-cnn",
        "test",
        "conv net under bfloat16 autocast, loss of a cast output (replay)",
        script="healthy_bf16_cnn.py",
    ),
    HealthyCase(
        "vae", "dev", "VAE with a sampled latent and a hand-written ELBO", script="healthy_vae.py"
    ),
    # The zoo's plain scripts.
    HealthyCase("zoo-rotation", "dev", "rotation pretext task (4-way)", script="zoo/rotation.py"),
    HealthyCase(
        "zoo-jigsaw", "dev", "jigsaw pretext task, shared tower per tile", script="zoo/jigsaw.py"
    ),
    HealthyCase("zoo-exemplar", "test", "exemplar surrogate classes", script="zoo/exemplar.py"),
    HealthyCase(
        "zoo-relative-position",
        "dev",
        "relative patch location (8-way)",
        script="zoo/relative_position.py",
    ),
    HealthyCase("zoo-denoising", "dev", "denoising autoencoder", script="zoo/denoising.py"),
    HealthyCase(
        "zoo-context-encoder",
        "test",
        "context encoder (inpaint the centre)",
        script="zoo/context_encoder.py",
    ),
    HealthyCase("zoo-colorization", "dev", "colorization", script="zoo/colorization.py"),
    HealthyCase("zoo-split-brain", "test", "split-brain autoencoder", script="zoo/split_brain.py"),
    HealthyCase(
        "zoo-counting", "dev", "counting with a contrastive term", script="zoo/counting.py"
    ),
    HealthyCase(
        "zoo-multitask", "test", "multi-task pretext combination", script="zoo/multitask.py"
    ),
    HealthyCase("zoo-yolov3", "dev", "YOLOv3-style detector", script="zoo/yolov3.py"),
    HealthyCase(
        "zoo-efficientdet",
        "test",
        "EfficientDet-style detector with BiFPN",
        script="zoo/efficientdet.py",
    ),
    # Zoo subjects through the Python API: the healthy twins of the subject faults.
    HealthyCase(
        "api-rotation", "dev", "rotation subject through nndoctor.check_subject", zoo="rotation"
    ),
    HealthyCase(
        "api-relative-position",
        "test",
        "relative patch location subject (API)",
        zoo="relative_position",
    ),
    HealthyCase("api-yolov3", "dev", "YOLOv3-style detector subject (API)", zoo="yolov3"),
    HealthyCase(
        "api-efficientdet", "test", "EfficientDet-style detector subject (API)", zoo="efficientdet"
    ),
):
    register_healthy(case)
