"""A tiny Transformer-XL word-level language model with segment-level recurrence: healthy.

In the manner of the PyTorch code of kimiyoung/transformer-xl (``mem_transformer.py``,
``data_utils.py`` and ``train.py``): the corpus is a token stream from a generated
topic-switching grammar, a hidden Markov source over 96 words whose hidden state is a topic
(4 of them, kept for about 150 tokens, then switched) and a category within the topic (10
per topic, each emitting one of 5 words with Zipf-like probabilities and moving to one of 3
successor categories of the same topic); words are shared between topics and categories,
so the topic, and with it the next word, has to be inferred from a long context. 192,000
tokens are generated for training and 19,200 for validation. ``LMOrderedIterator``
batchifies each stream into ``bsz`` contiguous columns, ``(n_step, bsz)`` sequence-first,
and yields segments of ``tgt_len`` = 24 tokens in order with the targets one step ahead.

``MemTransformerLM`` is 2 post-norm decoder layers (d_model 64, 4 heads of 16, inner 128,
dropout 0.1) of ``RelPartialLearnableMultiHeadAttn``: keys and values over the
concatenation of the memory and the current segment, a sinusoidal embedding of the
relative positions ``klen-1 .. 0`` projected by ``r_net``, the global content and position
biases ``r_w_bias`` and ``r_r_bias``, the content (AC) and position (BD) scores by
``einsum`` with BD aligned by the zero-pad ``_rel_shift`` trick, and the causal mask
``triu(ones(qlen, klen), diagonal=1 + mlen)`` over [mem + current]. ``_update_mems`` keeps
the last ``mem_len`` = 24 hidden states of every layer (and of the embedding) under
``torch.no_grad()``, detached, and the loop threads them from segment to segment (reset
every epoch). The output layer is tied to the word embedding; the per-token losses come
back ``(tgt_len, bsz)`` and are averaged. Adam (lr 2e-3); the learning rate is warmed up by
hand for 100 steps and then follows ``CosineAnnealingLR`` stepped per step;
``clip_grad_norm_(0.25)``. Top-level functions and ``main()`` with argparse; ``evaluate()``
runs the validation stream with its own memories under ``torch.no_grad()`` in
``model.eval()`` every epoch; the log prints the training loss every 100 steps and the
validation loss and perplexity; at the end the validation perplexity is printed against the
unigram perplexity of the corpus and the perplexity of the source itself.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/transformer_xl_memory.py
    nndoctor check examples/wild/transformer_xl_memory.py
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

# -----------------------------------------------------------------------------
# corpus: a topic-switching hidden Markov grammar


def make_grammar(rng, n_token=96, n_topic=4, n_cat=10, words_per_cat=5, n_next=3):
    """Emission and transition tables of the joint (topic, category) chain."""
    n_state = n_topic * n_cat
    emit = np.zeros((n_state, n_token))
    trans = np.zeros((n_state, n_state))
    zipf = 1.0 / np.arange(1, words_per_cat + 1)
    for topic in range(n_topic):
        for c in range(n_cat):
            s = topic * n_cat + c
            words = rng.choice(n_token, size=words_per_cat, replace=False)
            emit[s, words] = rng.permutation(zipf) / zipf.sum()
            nxt = topic * n_cat + rng.choice(n_cat, size=n_next, replace=False)
            trans[s, nxt] = rng.dirichlet(np.ones(n_next))
    unused = np.flatnonzero(emit.sum(0) == 0)
    for w in unused:
        s = rng.integers(n_state)
        emit[s, w] = 0.1
        emit[s] /= emit[s].sum()
    # the topic is switched with probability 1/150 per token, to a random category of another
    p_switch = 1.0 / 150
    topic_of = np.arange(n_state) // n_cat
    other = (topic_of[:, None] != topic_of[None, :]).astype(float)
    other /= other.sum(1, keepdims=True)
    trans = (1 - p_switch) * trans + p_switch * other
    return emit, trans


def sample_streams(rng, emit, trans, n_streams, length):
    n_state, n_token = emit.shape
    emit_cdf, trans_cdf = emit.cumsum(1), trans.cumsum(1)
    state = rng.integers(n_state, size=n_streams)
    tokens = np.empty((n_streams, length), dtype=np.int64)
    for t in range(length):
        u = rng.random((n_streams, 1))
        tokens[:, t] = np.minimum((u > emit_cdf[state]).sum(1), n_token - 1)
        u = rng.random((n_streams, 1))
        state = np.minimum((u > trans_cdf[state]).sum(1), n_state - 1)
    return tokens


def source_nll(emit, trans, tokens):
    """Mean -log p(x_t | x_<t) under the source itself (forward filtering), per row."""
    belief = np.full((tokens.shape[0], emit.shape[0]), 1.0 / emit.shape[0])
    nll = np.empty(tokens.shape)
    for t in range(tokens.shape[1]):
        if t > 0:
            belief = belief @ trans
        joint = belief * emit[:, tokens[:, t]].T
        p = joint.sum(1)
        nll[:, t] = -np.log(p)
        belief = joint / p[:, None]
    return nll.mean()


class LMOrderedIterator:
    def __init__(self, data, bsz, bptt):
        self.bsz = bsz
        self.bptt = bptt
        # Work out how cleanly we can divide the dataset into bsz parts.
        self.n_step = data.size(0) // bsz
        # Trim off any extra elements that wouldn't cleanly fit (remainders).
        data = data.narrow(0, 0, self.n_step * bsz)
        # Evenly divide the data across the bsz batches.
        self.data = data.view(bsz, -1).t().contiguous()
        self.n_batch = (self.n_step + self.bptt - 1) // self.bptt

    def get_batch(self, i, bptt=None):
        if bptt is None:
            bptt = self.bptt
        seq_len = min(bptt, self.data.size(0) - 1 - i)
        data = self.data[i : i + seq_len]
        target = self.data[i + 1 : i + 1 + seq_len]
        return data, target, seq_len

    def get_fixlen_iter(self, start=0):
        for i in range(start, self.data.size(0) - 1, self.bptt):
            yield self.get_batch(i)

    def __iter__(self):
        return self.get_fixlen_iter()


# -----------------------------------------------------------------------------
# model


class PositionalEmbedding(nn.Module):
    def __init__(self, demb):
        super().__init__()
        self.demb = demb
        inv_freq = 1 / (10000 ** (torch.arange(0.0, demb, 2.0) / demb))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, pos_seq):
        sinusoid_inp = torch.outer(pos_seq, self.inv_freq)
        pos_emb = torch.cat([sinusoid_inp.sin(), sinusoid_inp.cos()], dim=-1)
        return pos_emb[:, None, :]


class PositionwiseFF(nn.Module):
    def __init__(self, d_model, d_inner, dropout):
        super().__init__()
        self.CoreNet = nn.Sequential(
            nn.Linear(d_model, d_inner),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(d_inner, d_model),
            nn.Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, inp):
        core_out = self.CoreNet(inp)
        return self.layer_norm(inp + core_out)


class RelPartialLearnableMultiHeadAttn(nn.Module):
    def __init__(self, n_head, d_model, d_head, dropout, dropatt=0.0):
        super().__init__()
        self.n_head = n_head
        self.d_model = d_model
        self.d_head = d_head
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head, bias=False)
        self.r_net = nn.Linear(d_model, n_head * d_head, bias=False)
        self.drop = nn.Dropout(dropout)
        self.dropatt = nn.Dropout(dropatt)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)
        self.scale = 1 / (d_head**0.5)

    def _rel_shift(self, x):
        # x: (qlen, klen, bsz, n_head); row i is shifted left by qlen - 1 - i
        zero_pad = torch.zeros((x.size(0), 1, *x.size()[2:]), device=x.device, dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=1)
        x_padded = x_padded.view(x.size(1) + 1, x.size(0), *x.size()[2:])
        return x_padded[1:].view_as(x)

    def forward(self, w, r, r_w_bias, r_r_bias, attn_mask=None, mems=None):
        qlen, rlen, bsz = w.size(0), r.size(0), w.size(1)

        if mems is not None:
            cat = torch.cat([mems, w], 0)
        else:
            cat = w
        w_heads = self.qkv_net(cat)
        r_head_k = self.r_net(r)
        w_head_q, w_head_k, w_head_v = torch.chunk(w_heads, 3, dim=-1)
        w_head_q = w_head_q[-qlen:]

        klen = w_head_k.size(0)
        w_head_q = w_head_q.view(qlen, bsz, self.n_head, self.d_head)
        w_head_k = w_head_k.view(klen, bsz, self.n_head, self.d_head)
        w_head_v = w_head_v.view(klen, bsz, self.n_head, self.d_head)
        r_head_k = r_head_k.view(rlen, self.n_head, self.d_head)

        # compute attention score
        rw_head_q = w_head_q + r_w_bias  # qlen x bsz x n_head x d_head
        AC = torch.einsum("ibnd,jbnd->ijbn", (rw_head_q, w_head_k))  # qlen x klen x bsz x n_head
        rr_head_q = w_head_q + r_r_bias
        BD = torch.einsum("ibnd,jnd->ijbn", (rr_head_q, r_head_k))  # qlen x klen x bsz x n_head
        BD = self._rel_shift(BD)

        attn_score = AC + BD
        attn_score.mul_(self.scale)
        if attn_mask is not None:
            attn_score = attn_score.masked_fill(attn_mask[:, :, :, None], -float("inf"))

        # [qlen x klen x bsz x n_head]
        attn_prob = F.softmax(attn_score, dim=1)
        attn_prob = self.dropatt(attn_prob)

        attn_vec = torch.einsum("ijbn,jbnd->ibnd", (attn_prob, w_head_v))
        attn_vec = attn_vec.contiguous().view(qlen, bsz, self.n_head * self.d_head)
        attn_out = self.drop(self.o_net(attn_vec))
        return self.layer_norm(w + attn_out)


class RelPartialLearnableDecoderLayer(nn.Module):
    def __init__(self, n_head, d_model, d_head, d_inner, dropout, dropatt=0.0):
        super().__init__()
        self.dec_attn = RelPartialLearnableMultiHeadAttn(n_head, d_model, d_head, dropout, dropatt)
        self.pos_ff = PositionwiseFF(d_model, d_inner, dropout)

    def forward(self, dec_inp, r, r_w_bias, r_r_bias, dec_attn_mask=None, mems=None):
        output = self.dec_attn(dec_inp, r, r_w_bias, r_r_bias, attn_mask=dec_attn_mask, mems=mems)
        return self.pos_ff(output)


class MemTransformerLM(nn.Module):
    def __init__(self, n_token, n_layer, n_head, d_model, d_head, d_inner, dropout, mem_len):
        super().__init__()
        self.n_token = n_token
        self.d_model = d_model
        self.n_head = n_head
        self.d_head = d_head
        self.n_layer = n_layer
        self.mem_len = mem_len

        self.word_emb = nn.Embedding(n_token, d_model)
        self.emb_scale = d_model**0.5
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            RelPartialLearnableDecoderLayer(n_head, d_model, d_head, d_inner, dropout)
            for _ in range(n_layer)
        )
        self.pos_emb = PositionalEmbedding(d_model)
        self.r_w_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.r_r_bias = nn.Parameter(torch.zeros(n_head, d_head))
        self.crit = nn.Linear(d_model, n_token)
        self.crit.weight = self.word_emb.weight  # tie_weight

    def init_mems(self):
        param = next(self.parameters())
        return [torch.empty(0, dtype=param.dtype, device=param.device) for _ in range(self.n_layer + 1)]

    def _update_mems(self, hids, mems, qlen, mlen):
        # There are `mlen + qlen` steps that can be cached into mems; keep the last mem_len.
        with torch.no_grad():
            new_mems = []
            end_idx = mlen + qlen
            beg_idx = max(0, end_idx - self.mem_len)
            for i in range(len(hids)):
                cat = torch.cat([mems[i], hids[i]], dim=0)
                new_mems.append(cat[beg_idx:end_idx].detach())
        return new_mems

    def _forward(self, dec_inp, mems):
        qlen, bsz = dec_inp.size()
        word_emb = self.word_emb(dec_inp) * self.emb_scale
        mlen = mems[0].size(0)
        klen = mlen + qlen
        dec_attn_mask = torch.triu(word_emb.new_ones(qlen, klen), diagonal=1 + mlen).bool()[:, :, None]

        hids = []
        pos_seq = torch.arange(klen - 1, -1, -1.0, device=word_emb.device, dtype=word_emb.dtype)
        pos_emb = self.drop(self.pos_emb(pos_seq))
        core_out = self.drop(word_emb)
        hids.append(core_out)
        for i, layer in enumerate(self.layers):
            core_out = layer(
                core_out, pos_emb, self.r_w_bias, self.r_r_bias,
                dec_attn_mask=dec_attn_mask, mems=mems[i],
            )
            hids.append(core_out)
        core_out = self.drop(core_out)
        new_mems = self._update_mems(hids, mems, qlen, mlen)
        return core_out, new_mems

    def forward(self, data, target, *mems):
        # nn.DataParallel does not allow size(0) tensors to be broadcasted, so the memories
        # are passed as positional arguments and initialised here when there are none yet.
        if not mems:
            mems = self.init_mems()
        tgt_len = target.size(0)
        hidden, new_mems = self._forward(data, mems=mems)
        pred_hid = hidden[-tgt_len:]
        logit = self.crit(pred_hid)
        loss = F.cross_entropy(
            logit.view(-1, self.n_token), target.reshape(-1), reduction="none"
        ).view(tgt_len, -1)
        return [loss] + new_mems


def weights_init(m, init_std=0.02):
    classname = m.__class__.__name__
    if classname.find("Linear") != -1:
        if hasattr(m, "weight") and m.weight is not None:
            nn.init.normal_(m.weight, 0.0, init_std)
        if hasattr(m, "bias") and m.bias is not None:
            nn.init.constant_(m.bias, 0.0)
    elif classname.find("Embedding") != -1:
        if hasattr(m, "weight"):
            nn.init.normal_(m.weight, 0.0, init_std)
    elif classname.find("LayerNorm") != -1:
        nn.init.normal_(m.weight, 1.0, init_std)
        nn.init.constant_(m.bias, 0.0)
    elif classname.find("TransformerLM") != -1:
        nn.init.normal_(m.r_w_bias, 0.0, init_std)
        nn.init.normal_(m.r_r_bias, 0.0, init_std)


# -----------------------------------------------------------------------------
# training


def evaluate(model, eval_iter):
    model.eval()
    total_len, total_loss = 0, 0.0
    with torch.no_grad():
        mems = ()
        for data, target, seq_len in eval_iter:
            ret = model(data, target, *mems)
            loss, mems = ret[0], ret[1:]
            total_loss += seq_len * loss.float().mean().item()
            total_len += seq_len
    model.train()
    return total_loss / total_len


def main():
    parser = argparse.ArgumentParser(description="tiny Transformer-XL on a generated grammar")
    parser.add_argument("--n_layer", type=int, default=2)
    parser.add_argument("--n_head", type=int, default=4)
    parser.add_argument("--d_head", type=int, default=16)
    parser.add_argument("--d_model", type=int, default=64)
    parser.add_argument("--d_inner", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eta_min", type=float, default=1e-4)
    parser.add_argument("--warmup_step", type=int, default=100)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=8)
    parser.add_argument("--tgt_len", type=int, default=24)
    parser.add_argument("--mem_len", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--log_interval", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    emit, trans = make_grammar(rng)
    n_token = emit.shape[1]
    train_streams = sample_streams(rng, emit, trans, 16, 12000)
    valid_streams = sample_streams(rng, emit, trans, 4, 4800)
    train_data = torch.from_numpy(train_streams.reshape(-1))
    valid_data = torch.from_numpy(valid_streams.reshape(-1))

    counts = np.bincount(train_streams.reshape(-1), minlength=n_token)
    freq = counts[counts > 0] / counts.sum()
    unigram_ppl = math.exp(-(freq * np.log(freq)).sum())
    source_ppl = math.exp(source_nll(emit, trans, valid_streams))
    print(
        f"{len(train_data):,} training tokens, vocabulary {n_token}; unigram ppl "
        f"{unigram_ppl:.2f}, source ppl {source_ppl:.2f}"
    )

    tr_iter = LMOrderedIterator(train_data, args.batch_size, args.tgt_len)
    va_iter = LMOrderedIterator(valid_data, args.eval_batch_size, args.tgt_len)

    model = MemTransformerLM(
        n_token, args.n_layer, args.n_head, args.d_model, args.d_head, args.d_inner,
        args.dropout, args.mem_len,
    )
    model.apply(weights_init)
    print(f"#params = {sum(p.nelement() for p in model.parameters()):,}")

    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    max_step = args.epochs * tr_iter.n_batch
    scheduler = optim.lr_scheduler.CosineAnnealingLR(
        optimizer, max_step - args.warmup_step, eta_min=args.eta_min
    )
    optimizer.param_groups[0]["lr"] = args.lr / args.warmup_step

    train_step = 0
    train_loss = 0.0
    log_start_time = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        mems = ()
        for batch, (data, target, _) in enumerate(tr_iter):
            model.zero_grad()
            ret = model(data, target, *mems)
            loss, mems = ret[0], ret[1:]
            loss = loss.float().mean()
            loss.backward()
            train_loss += loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()

            # step-wise learning rate: linear warm-up, then cosine annealing
            train_step += 1
            if train_step < args.warmup_step:
                curr_lr = args.lr * (train_step + 1) / args.warmup_step
                optimizer.param_groups[0]["lr"] = curr_lr
            else:
                scheduler.step()

            if train_step % args.log_interval == 0:
                cur_loss = train_loss / args.log_interval
                elapsed = time.time() - log_start_time
                print(
                    f"| epoch {epoch:2d} step {train_step:5d} | {batch + 1:4d} / "
                    f"{tr_iter.n_batch} batches | lr {optimizer.param_groups[0]['lr']:.3g} | "
                    f"ms/batch {elapsed * 1000 / args.log_interval:5.1f} | loss {cur_loss:5.2f} "
                    f"| ppl {math.exp(cur_loss):7.2f}"
                )
                train_loss = 0.0
                log_start_time = time.time()

        val_loss = evaluate(model, va_iter)
        print("-" * 80)
        print(
            f"| end of epoch {epoch:2d} | valid loss {val_loss:5.3f} | valid ppl "
            f"{math.exp(val_loss):7.2f}"
        )
        print("-" * 80)

    val_loss = evaluate(model, va_iter)
    print(
        f"final valid ppl {math.exp(val_loss):.2f} (unigram ppl {unigram_ppl:.2f}, "
        f"source ppl {source_ppl:.2f})"
    )


if __name__ == "__main__":
    main()
