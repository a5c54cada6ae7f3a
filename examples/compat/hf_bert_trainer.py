"""A Hugging Face ``Trainer`` run of a tiny BERT built from a config: healthy.

In the manner of the ``transformers`` text-classification examples, offline: a
``BertForSequenceClassification`` is built from a small ``BertConfig`` (no download,
no tokenizer: token ids are generated directly). The task is sentiment over a toy
vocabulary: each "review" mixes neutral tokens with a few positive and negative
word ids, and its label says whether positives outnumber negatives. A plain
``torch.utils.data.Dataset`` returns dicts (``input_ids``, ``attention_mask`` with
right padding, ``labels``); ``TrainingArguments`` ask for AdamW with 30 warm-up steps and
linear decay, weight decay, evaluation every epoch with a ``compute_metrics``
accuracy, no saving and no reporting. ``main()`` with argparse. Prints the final
evaluation metrics.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/hf_bert_trainer.py
    nndoctor check examples/compat/hf_bert_trainer.py
"""

import argparse

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainingArguments,
    set_seed,
)

VOCAB = 200
PAD, CLS = 0, 1
POSITIVE = list(range(10, 20))
NEGATIVE = list(range(20, 30))
MAX_LEN = 24


class Reviews(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(8, MAX_LEN, (n,), generator=g)
        self.input_ids = torch.full((n, MAX_LEN), PAD, dtype=torch.long)
        self.attention_mask = torch.zeros(n, MAX_LEN, dtype=torch.long)
        self.labels = torch.zeros(n, dtype=torch.long)
        for i in range(n):
            length = int(lengths[i])
            words = torch.randint(30, VOCAB, (length - 1,), generator=g)
            n_pos, n_neg = torch.randint(0, 4, (2,), generator=g).tolist()
            if n_pos == n_neg:
                n_pos += 1
            slots = torch.randperm(length - 1, generator=g)[: n_pos + n_neg]
            picks = [POSITIVE[int(j)] for j in torch.randint(0, 10, (n_pos,), generator=g)]
            picks += [NEGATIVE[int(j)] for j in torch.randint(0, 10, (n_neg,), generator=g)]
            words[slots[: len(picks)]] = torch.tensor(picks, dtype=torch.long)
            self.input_ids[i, 0] = CLS
            self.input_ids[i, 1:length] = words
            self.attention_mask[i, :length] = 1
            self.labels[i] = int(n_pos > n_neg)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def compute_metrics(eval_pred) -> dict:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=float, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_seed(args.seed)

    config = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=MAX_LEN, num_labels=2,
                        pad_token_id=PAD)
    model = BertForSequenceClassification(config)
    training_args = TrainingArguments(
        output_dir="bert_reviews",
        num_train_epochs=args.epochs,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        learning_rate=5e-4,
        weight_decay=0.01,
        warmup_steps=30,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=args.seed,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=Reviews(2000, 2 * args.seed),
                      eval_dataset=Reviews(400, 2 * args.seed + 1), compute_metrics=compute_metrics)
    trainer.train()
    print(trainer.evaluate())


if __name__ == "__main__":
    main()
