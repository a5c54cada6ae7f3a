"""A small GPT written like a Hugging Face causal language model: healthy.

In the manner of a Hugging Face ``...ForCausalLM`` model trained by a hand-written loop
(the "training loop in native PyTorch" pattern), without the ``transformers`` package: a
``GPTConfig`` dataclass; ``TinyGPTForCausalLM`` (token and learned position embeddings,
pre-LayerNorm blocks with causal self-attention through
``F.scaled_dot_product_attention`` and a GELU MLP, a final LayerNorm and an output layer
tied to the token embedding, weights drawn from N(0, 0.02)) whose ``forward`` takes
keyword arguments ``input_ids``, ``attention_mask`` and ``labels`` and returns a
``CausalLMOutput`` with ``.loss`` and ``.logits``; the loss is computed inside
``forward`` by shifting the labels one step against the logits, as the library does, with
-100 on the padding. During training the blocks run under activation checkpointing
(``torch.utils.checkpoint.checkpoint(..., use_reentrant=False)``). The sentences come
from a small generated grammar (determiners, adjectives, nouns and verbs that agree in
number, optional relative clauses and places), so they vary in length; a ``Dataset`` of
dicts, a ``DataLoader`` whose ``collate_fn`` pads to the longest sentence and builds
``attention_mask`` and ``labels``, and a loop that calls ``model(**batch)`` and
``outputs.loss.backward()``. AdamW without weight decay on biases and LayerNorm weights,
a linear warm-up then linear decay through ``LambdaLR`` stepped per batch, gradient
clipping. A ``main()`` with argparse; prints the training loss and the perplexity on
held-out sentences after each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gpt_kwargs_loop.py
    nndoctor check examples/wild/gpt_kwargs_loop.py
"""

import argparse
import math
import random
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset

SPECIALS = ["<pad>", "<bos>", "<eos>"]
DETERMINERS = (["a", "the", "this", "every"], ["the", "some", "these", "many"])
ADJECTIVES = ["small", "old", "happy", "brown", "quiet", "clever"]
SUBJECTS = [
    ("dog", "dogs"),
    ("cat", "cats"),
    ("farmer", "farmers"),
    ("child", "children"),
    ("bird", "birds"),
]
OBJECTS = [
    ("ball", "balls"),
    ("apple", "apples"),
    ("letter", "letters"),
    ("dog", "dogs"),
    ("cat", "cats"),
]
VERBS = [
    ("sees", "see"),
    ("finds", "find"),
    ("likes", "like"),
    ("carries", "carry"),
    ("watches", "watch"),
]
PLACES = ["garden", "house", "park", "river"]


class Grammar:
    def __init__(self) -> None:
        words = set(ADJECTIVES + PLACES + ["that", "in", "near", "."])
        for group in (DETERMINERS[0], DETERMINERS[1]):
            words.update(group)
        for pairs in (SUBJECTS, OBJECTS, VERBS):
            for sing, plur in pairs:
                words.update((sing, plur))
        self.vocab = SPECIALS + sorted(words)
        self.token_to_id = {w: i for i, w in enumerate(self.vocab)}

    def noun_phrase(self, nouns, rng: random.Random) -> tuple[list[str], int]:
        plural = rng.random() < 0.5
        words = [rng.choice(DETERMINERS[plural])]
        for _ in range(rng.choice([0, 0, 1, 2])):
            words.append(rng.choice(ADJECTIVES))
        words.append(rng.choice(nouns)[plural])
        return words, plural

    def sentence(self, rng: random.Random) -> list[str]:
        subject, plural = self.noun_phrase(SUBJECTS, rng)
        if rng.random() < 0.3:
            clause_object, _ = self.noun_phrase(OBJECTS, rng)
            subject += ["that", rng.choice(VERBS)[plural]] + clause_object
        obj, _ = self.noun_phrase(OBJECTS, rng)
        words = subject + [rng.choice(VERBS)[plural]] + obj
        if rng.random() < 0.4:
            words += [rng.choice(["in", "near"]), "the", rng.choice(PLACES)]
        return words + ["."]

    def encode(self, words: list[str]) -> list[int]:
        return [1] + [self.token_to_id[w] for w in words] + [2]


class SentenceDataset(Dataset):
    def __init__(self, grammar: Grammar, n: int, rng: random.Random) -> None:
        self.examples = [grammar.encode(grammar.sentence(rng)) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.examples[i]}


def collate(features: list[dict], pad_token_id: int = 0) -> dict:
    max_len = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), max_len), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), max_len), dtype=torch.long)
    for i, f in enumerate(features):
        ids = torch.tensor(f["input_ids"], dtype=torch.long)
        input_ids[i, : len(ids)] = ids
        attention_mask[i, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@dataclass
class GPTConfig:
    vocab_size: int = 64
    n_positions: int = 64
    n_embd: int = 64
    n_layer: int = 3
    n_head: int = 4
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    pad_token_id: int = 0
    gradient_checkpointing: bool = True


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        batch, seq, width = hidden.shape
        q, k, v = self.c_attn(hidden).split(width, dim=2)
        q, k, v = (t.view(batch, seq, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        out = out.transpose(1, 2).contiguous().view(batch, seq, width)
        return self.resid_dropout(self.c_proj(out))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, hidden: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attn(self.ln_1(hidden), attn_mask)
        return hidden + self.mlp(self.ln_2(hidden))


class TinyGPTForCausalLM(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.wte.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> CausalLMOutput:
        batch, seq = input_ids.shape
        positions = torch.arange(seq, device=input_ids.device)
        hidden = self.drop(self.wte(input_ids) + self.wpe(positions))

        # boolean mask, True where attention is allowed: causal and not onto padding
        attn_mask = torch.ones(seq, seq, dtype=torch.bool, device=input_ids.device).tril()
        attn_mask = attn_mask.view(1, 1, seq, seq)
        if attention_mask is not None:
            attn_mask = attn_mask & attention_mask.bool().view(batch, 1, 1, seq)

        for block in self.h:
            if self.config.gradient_checkpointing and self.training:
                hidden = checkpoint(block, hidden, attn_mask, use_reentrant=False)
            else:
                hidden = block(hidden, attn_mask)
        logits = self.lm_head(self.ln_f(hidden))

        loss = None
        if labels is not None:
            shift_logits = logits[..., :-1, :].contiguous()
            shift_labels = labels[..., 1:].contiguous()
            loss = F.cross_entropy(
                shift_logits.view(-1, shift_logits.size(-1)),
                shift_labels.view(-1),
                ignore_index=-100,
            )
        return CausalLMOutput(loss=loss, logits=logits)


def get_linear_schedule_with_warmup(optimizer, num_warmup_steps: int, num_training_steps: int):
    def lr_lambda(current_step: int) -> float:
        if current_step < num_warmup_steps:
            return current_step / max(1, num_warmup_steps)
        return max(
            0.0, (num_training_steps - current_step) / max(1, num_training_steps - num_warmup_steps)
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


@torch.no_grad()
def perplexity(model: TinyGPTForCausalLM, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        outputs = model(**batch)
        n_tokens = (batch["labels"][:, 1:] != -100).sum().item()
        total_nll += outputs.loss.item() * n_tokens
        total_tokens += n_tokens
    model.train()
    return math.exp(total_nll / total_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tiny GPT trained in a hand-written loop")
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-eval", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    grammar = Grammar()
    rng = random.Random(args.seed)
    train_dataset = SentenceDataset(grammar, args.n_train, rng)
    eval_dataset = SentenceDataset(grammar, args.n_eval, rng)
    train_dataloader = DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=True, collate_fn=collate
    )
    eval_dataloader = DataLoader(eval_dataset, batch_size=128, collate_fn=collate)

    config = GPTConfig(vocab_size=len(grammar.vocab))
    model = TinyGPTForCausalLM(config).to(device)

    no_decay = ["bias", "ln_1.weight", "ln_2.weight", "ln_f.weight"]
    grouped_parameters = [
        {
            "params": [
                p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)
            ],
            "weight_decay": args.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(grouped_parameters, lr=args.lr)
    num_training_steps = args.epochs * len(train_dataloader)
    lr_scheduler = get_linear_schedule_with_warmup(
        optimizer, int(args.warmup_ratio * num_training_steps), num_training_steps
    )

    print(
        f"vocabulary {config.vocab_size}, {sum(p.numel() for p in model.parameters())} parameters"
    )
    print(f"before training: held-out perplexity {perplexity(model, eval_dataloader, device):.2f}")
    model.train()
    for epoch in range(args.epochs):
        running, steps = 0.0, 0
        for batch in train_dataloader:
            batch = {k: v.to(device) for k, v in batch.items()}
            outputs = model(**batch)
            loss = outputs.loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            running += loss.item()
            steps += 1
        ppl = perplexity(model, eval_dataloader, device)
        print(
            f"epoch {epoch + 1}: train loss {running / steps:.4f} | held-out perplexity {ppl:.2f}"
        )


if __name__ == "__main__":
    main()
