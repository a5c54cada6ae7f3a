"""A Transformer text classifier trained with Hugging Face Accelerate: healthy.

In the manner of the ``accelerate`` example scripts (``nlp_example.py`` and its
gradient-accumulation variant): a synthetic "review" corpus of variable-length token
sequences (a vocabulary of 200 ids, 0 is padding; a review is positive when it holds
more of the 20 "good" word ids than of the 20 "bad" ones) in a map-style ``Dataset`` of
dicts, batched by a ``collate_fn`` that pads to the longest sequence of the batch and
returns an ``attention_mask`` (1 for real tokens). The model embeds the tokens, adds a
learned position embedding, runs an ``nn.TransformerEncoder(batch_first=True)`` with
``src_key_padding_mask = attention_mask == 0`` and mean-pools the real tokens into a
linear head. ``Accelerator(gradient_accumulation_steps=2, cpu=True)`` prepares the
model, AdamW, both ``DataLoader``s and ``get_linear_schedule_with_warmup``; the loop
runs under ``accelerator.accumulate(model)`` and calls ``accelerator.backward(loss)``;
evaluation gathers predictions and labels with ``accelerator.gather``. A ``main()``
with argparse; prints the loss and the validation accuracy every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/accelerate_classifier.py
    nndoctor check examples/wild/accelerate_classifier.py
"""

import argparse

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import get_linear_schedule_with_warmup

VOCAB, PAD, MAX_LEN = 200, 0, 48
GOOD = range(10, 30)
BAD = range(30, 50)


class ReviewDataset(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(8, MAX_LEN + 1, (1,), generator=g))
            ids = torch.randint(50, VOCAB, (length,), generator=g)
            n_good = int(torch.randint(0, 6, (1,), generator=g))
            n_bad = int(torch.randint(0, 6, (1,), generator=g))
            if n_good == n_bad:
                n_good += 1
            pos = torch.randperm(length, generator=g)[: n_good + n_bad]
            ids[pos[:n_good]] = torch.randint(
                GOOD.start, GOOD.stop, (len(pos[:n_good]),), generator=g
            )
            ids[pos[n_good:]] = torch.randint(
                BAD.start, BAD.stop, (len(pos[n_good:]),), generator=g
            )
            # A short review may have had fewer slots than words: count what is there.
            label = int(
                ((ids >= GOOD.start) & (ids < GOOD.stop)).sum()
                > ((ids >= BAD.start) & (ids < BAD.stop)).sum()
            )
            self.items.append({"input_ids": ids, "labels": label})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def collate_fn(examples: list[dict]) -> dict[str, torch.Tensor]:
    longest = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), longest), PAD, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for i, e in enumerate(examples):
        input_ids[i, : len(e["input_ids"])] = e["input_ids"]
        attention_mask[i, : len(e["input_ids"])] = 1
    labels = torch.tensor([e["labels"] for e in examples])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class TransformerClassifier(nn.Module):
    def __init__(
        self, d_model: int = 64, nhead: int = 4, num_layers: int = 2, num_labels: int = 2
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = nn.Embedding(MAX_LEN, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward=128, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        h = self.embed(input_ids) + self.pos(positions)
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1)
        return self.classifier(pooled)


def main() -> None:
    parser = argparse.ArgumentParser(description="Transformer classifier with Accelerate")
    parser.add_argument("--num_epochs", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps, cpu=True
    )
    set_seed(args.seed)

    train_dataset = ReviewDataset(3000, seed=args.seed)
    eval_dataset = ReviewDataset(600, seed=args.seed + 1000)
    train_dataloader = DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn
    )
    eval_dataloader = DataLoader(eval_dataset, batch_size=64, shuffle=False, collate_fn=collate_fn)

    model = TransformerClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    num_training_steps = len(train_dataloader) * args.num_epochs // args.gradient_accumulation_steps
    lr_scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(0.06 * num_training_steps),
        num_training_steps=num_training_steps,
    )
    model, optimizer, train_dataloader, eval_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, lr_scheduler
    )
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(args.num_epochs):
        model.train()
        total_loss = 0.0
        for batch in train_dataloader:
            with accelerator.accumulate(model):
                logits = model(batch["input_ids"], batch["attention_mask"])
                loss = loss_fn(logits, batch["labels"])
                total_loss += loss.item()
                accelerator.backward(loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()

        model.eval()
        correct, seen = 0, 0
        for batch in eval_dataloader:
            with torch.no_grad():
                logits = model(batch["input_ids"], batch["attention_mask"])
            predictions, references = accelerator.gather((logits.argmax(dim=-1), batch["labels"]))
            correct += (predictions == references).sum().item()
            seen += references.numel()
        accelerator.print(
            f"epoch {epoch}: train loss {total_loss / len(train_dataloader):.4f}, eval accuracy {correct / seen:.3f}"
        )


if __name__ == "__main__":
    main()
