"""ESIM natural language inference on generated sentence pairs: healthy.

In the manner of the common PyTorch ESIM implementations (coetaur0's ``ESIM``: ``esim/model.py``,
``esim/layers.py``, ``esim/utils.py`` and ``scripts/training/train_snli.py``, after Chen et al.
2017): the sentence pairs are generated. A premise lists 2 to 6 distinct animals, each with a
colour and sometimes a size ("a big red cat and the blue dog near a small green fox"); a
hypothesis says the colour of one animal ("the cat is really red"). The label follows from
the words: entailment when the premise gives that animal that colour, contradiction when it
gives it another colour, neutral when the animal is not in the premise; the three labels
are equally likely, 6,000 training, 1,000 validation and 1,000 test pairs. A
``Preprocessor`` builds the word dictionary from the training words (``_PAD_`` 0, ``_OOV_``
1, ``_BOS_`` 2, ``_EOS_`` 3, then by frequency) and turns every split into ids with BOS/EOS
around each sentence; ``NLIDataset`` returns dicts and ``collate_batch`` pads premises and
hypotheses separately to the longest of each in the batch, with their lengths.

``ESIM``: ``nn.Embedding(padding_idx=0)``, ``RNNDropout`` (one dropout mask per sequence),
a ``Seq2SeqEncoder`` (bidirectional ``nn.LSTM`` over ``pack_padded_sequence(...,
enforce_sorted=False)`` and ``pad_packed_sequence``), ``SoftmaxAttention`` (similarity
``bmm``, ``masked_softmax`` with the other sentence's padding mask each way, ``weighted_sum``
re-masked), enhancement ``[a; a~; a - a~; a * a~]``, a Linear + ReLU projection, a
composition BiLSTM, masked average and max pooling (``replace_masked`` with -1e7), and a
Dropout/Linear/Tanh/Dropout/Linear classifier over 3 classes; xavier/orthogonal init with the
LSTM forget-gate biases at 1; the model returns logits and probabilities. Cross-entropy on
the logits, Adam, ``clip_grad_norm_(10.0)``, ``ReduceLROnPlateau(mode="max", factor=0.5,
patience=0)`` stepped on the validation accuracy, early stopping with patience 5 and the
best state kept in memory. ``train`` / ``validate`` / ``main()`` with argparse; prints the
training loss and accuracy and the validation accuracy each epoch, then the test accuracy
of the best model against the majority class.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/esim_nli.py
    nndoctor check examples/wild/esim_nli.py
"""

import argparse
import copy
import random
import time
from collections import Counter

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

ANIMALS = ["cat", "dog", "bird", "fish", "horse", "cow", "fox", "duck", "goat", "sheep", "frog", "bear"]
COLOURS = ["red", "blue", "green", "black", "white", "brown", "grey", "pink"]
LABELS = {"entailment": 0, "neutral": 1, "contradiction": 2}


# -----------------------------------------------------------------------------
# data


def make_pair(rng):
    label = rng.choice(list(LABELS))
    animals = rng.sample(ANIMALS, rng.randint(2, 6))
    colours = {a: rng.choice(COLOURS) for a in animals}
    premise = []
    for i, animal in enumerate(animals):
        if i > 0:
            premise.append(rng.choice(["and", "near", "with"]))
        premise.append(rng.choice(["a", "the"]))
        if rng.random() < 0.3:
            premise.append(rng.choice(["big", "small"]))
        premise += [colours[animal], animal]
    if label == "neutral":
        animal = rng.choice([a for a in ANIMALS if a not in colours])
        colour = rng.choice(COLOURS)
    else:
        animal = rng.choice(animals)
        if label == "entailment":
            colour = colours[animal]
        else:
            colour = rng.choice([c for c in COLOURS if c != colours[animal]])
    hypothesis = ["the", animal, "is"] + (["really"] if rng.random() < 0.3 else []) + [colour]
    return {"premise": premise, "hypothesis": hypothesis, "label": label}


def make_split(n, rng):
    return [make_pair(rng) for _ in range(n)]


class Preprocessor:
    def __init__(self, bos="_BOS_", eos="_EOS_"):
        self.bos, self.eos = bos, eos
        self.worddict = {}

    def build_worddict(self, data):
        words = Counter()
        for pair in data:
            words.update(pair["premise"])
            words.update(pair["hypothesis"])
        self.worddict = {"_PAD_": 0, "_OOV_": 1, "_BOS_": 2, "_EOS_": 3}
        for i, (word, _) in enumerate(words.most_common()):
            self.worddict[word] = i + 4

    def words_to_indices(self, sentence):
        indices = [self.worddict[self.bos]]
        indices += [self.worddict.get(word, self.worddict["_OOV_"]) for word in sentence]
        indices.append(self.worddict[self.eos])
        return indices

    def transform_to_indices(self, data):
        return {
            "premises": [self.words_to_indices(p["premise"]) for p in data],
            "hypotheses": [self.words_to_indices(p["hypothesis"]) for p in data],
            "labels": [LABELS[p["label"]] for p in data],
        }


class NLIDataset(Dataset):
    def __init__(self, data):
        self.premises = data["premises"]
        self.hypotheses = data["hypotheses"]
        self.labels = data["labels"]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {
            "premise": torch.tensor(self.premises[index]),
            "premise_length": len(self.premises[index]),
            "hypothesis": torch.tensor(self.hypotheses[index]),
            "hypothesis_length": len(self.hypotheses[index]),
            "label": self.labels[index],
        }


def collate_batch(batch, padding_idx=0):
    out = {}
    for key in ("premise", "hypothesis"):
        lengths = torch.tensor([item[key + "_length"] for item in batch])
        padded = torch.full((len(batch), int(lengths.max())), padding_idx, dtype=torch.long)
        for i, item in enumerate(batch):
            padded[i, : item[key + "_length"]] = item[key]
        out[key], out[key + "_length"] = padded, lengths
    out["label"] = torch.tensor([item["label"] for item in batch])
    return out


# -----------------------------------------------------------------------------
# utils


def get_mask(sequences_batch, sequences_lengths):
    batch_size = sequences_batch.size()[0]
    max_length = torch.max(sequences_lengths)
    mask = torch.ones(batch_size, max_length, dtype=torch.float)
    mask[sequences_batch[:, :max_length] == 0] = 0.0
    return mask


def masked_softmax(tensor, mask):
    tensor_shape = tensor.size()
    reshaped_tensor = tensor.view(-1, tensor_shape[-1])
    while mask.dim() < tensor.dim():
        mask = mask.unsqueeze(1)
    mask = mask.expand_as(tensor).contiguous().float()
    reshaped_mask = mask.view(-1, mask.size()[-1])
    result = nn.functional.softmax(reshaped_tensor * reshaped_mask, dim=-1)
    result = result * reshaped_mask
    # 1e-13 is added to avoid divisions by zero.
    result = result / (result.sum(dim=-1, keepdim=True) + 1e-13)
    return result.view(*tensor_shape)


def weighted_sum(tensor, weights, mask):
    weighted_sum = weights.bmm(tensor)
    while mask.dim() < weighted_sum.dim():
        mask = mask.unsqueeze(1)
    mask = mask.transpose(-1, -2)
    mask = mask.expand_as(weighted_sum).contiguous().float()
    return weighted_sum * mask


def replace_masked(tensor, mask, value):
    mask = mask.unsqueeze(1).transpose(2, 1)
    reverse_mask = 1.0 - mask
    values_to_add = value * reverse_mask
    return tensor * mask + values_to_add


def correct_predictions(output_probabilities, targets):
    _, out_classes = output_probabilities.max(dim=1)
    correct = (out_classes == targets).sum()
    return correct.item()


# -----------------------------------------------------------------------------
# layers and model


class RNNDropout(nn.Dropout):
    """Same dropout mask for every step of a sequence."""

    def forward(self, sequences_batch):
        ones = sequences_batch.data.new_ones(sequences_batch.shape[0], sequences_batch.shape[-1])
        dropout_mask = nn.functional.dropout(ones, self.p, self.training, inplace=False)
        return dropout_mask.unsqueeze(1) * sequences_batch


class Seq2SeqEncoder(nn.Module):
    def __init__(self, rnn_type, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, bidirectional=False):
        super().__init__()
        self._encoder = rnn_type(
            input_size,
            hidden_size,
            num_layers=num_layers,
            bias=bias,
            batch_first=True,
            dropout=dropout,
            bidirectional=bidirectional,
        )

    def forward(self, sequences_batch, sequences_lengths):
        packed_batch = nn.utils.rnn.pack_padded_sequence(
            sequences_batch, sequences_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self._encoder(packed_batch, None)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True)
        return outputs


class SoftmaxAttention(nn.Module):
    def forward(self, premise_batch, premise_mask, hypothesis_batch, hypothesis_mask):
        # Dot product between premises and hypotheses in each sequence of the batch.
        similarity_matrix = premise_batch.bmm(hypothesis_batch.transpose(2, 1).contiguous())

        # Softmax attention weights.
        prem_hyp_attn = masked_softmax(similarity_matrix, hypothesis_mask)
        hyp_prem_attn = masked_softmax(similarity_matrix.transpose(1, 2).contiguous(), premise_mask)

        # Weighted sums of the hypotheses for the the premises attention, and vice-versa for the attention of the hypotheses.
        attended_premises = weighted_sum(hypothesis_batch, prem_hyp_attn, premise_mask)
        attended_hypotheses = weighted_sum(premise_batch, hyp_prem_attn, hypothesis_mask)
        return attended_premises, attended_hypotheses


class ESIM(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_size, padding_idx=0, dropout=0.5, num_classes=3):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_classes = num_classes
        self.dropout = dropout

        self._word_embedding = nn.Embedding(self.vocab_size, self.embedding_dim, padding_idx=padding_idx)
        if self.dropout:
            self._rnn_dropout = RNNDropout(p=self.dropout)
        self._encoding = Seq2SeqEncoder(nn.LSTM, self.embedding_dim, self.hidden_size, bidirectional=True)
        self._attention = SoftmaxAttention()
        self._projection = nn.Sequential(nn.Linear(4 * 2 * self.hidden_size, self.hidden_size), nn.ReLU())
        self._composition = Seq2SeqEncoder(nn.LSTM, self.hidden_size, self.hidden_size, bidirectional=True)
        self._classification = nn.Sequential(
            nn.Dropout(p=self.dropout),
            nn.Linear(2 * 4 * self.hidden_size, self.hidden_size),
            nn.Tanh(),
            nn.Dropout(p=self.dropout),
            nn.Linear(self.hidden_size, self.num_classes),
        )

        # Initialize all weights and biases in the model.
        self.apply(_init_esim_weights)

    def forward(self, premises, premises_lengths, hypotheses, hypotheses_lengths):
        premises_mask = get_mask(premises, premises_lengths)
        hypotheses_mask = get_mask(hypotheses, hypotheses_lengths)

        embedded_premises = self._word_embedding(premises)
        embedded_hypotheses = self._word_embedding(hypotheses)

        if self.dropout:
            embedded_premises = self._rnn_dropout(embedded_premises)
            embedded_hypotheses = self._rnn_dropout(embedded_hypotheses)

        encoded_premises = self._encoding(embedded_premises, premises_lengths)
        encoded_hypotheses = self._encoding(embedded_hypotheses, hypotheses_lengths)

        attended_premises, attended_hypotheses = self._attention(
            encoded_premises, premises_mask, encoded_hypotheses, hypotheses_mask
        )

        enhanced_premises = torch.cat(
            [
                encoded_premises,
                attended_premises,
                encoded_premises - attended_premises,
                encoded_premises * attended_premises,
            ],
            dim=-1,
        )
        enhanced_hypotheses = torch.cat(
            [
                encoded_hypotheses,
                attended_hypotheses,
                encoded_hypotheses - attended_hypotheses,
                encoded_hypotheses * attended_hypotheses,
            ],
            dim=-1,
        )

        projected_premises = self._projection(enhanced_premises)
        projected_hypotheses = self._projection(enhanced_hypotheses)

        if self.dropout:
            projected_premises = self._rnn_dropout(projected_premises)
            projected_hypotheses = self._rnn_dropout(projected_hypotheses)

        v_ai = self._composition(projected_premises, premises_lengths)
        v_bj = self._composition(projected_hypotheses, hypotheses_lengths)

        v_a_avg = torch.sum(v_ai * premises_mask.unsqueeze(1).transpose(2, 1), dim=1) / torch.sum(
            premises_mask, dim=1, keepdim=True
        )
        v_b_avg = torch.sum(v_bj * hypotheses_mask.unsqueeze(1).transpose(2, 1), dim=1) / torch.sum(
            hypotheses_mask, dim=1, keepdim=True
        )

        v_a_max, _ = replace_masked(v_ai, premises_mask, -1e7).max(dim=1)
        v_b_max, _ = replace_masked(v_bj, hypotheses_mask, -1e7).max(dim=1)

        v = torch.cat([v_a_avg, v_a_max, v_b_avg, v_b_max], dim=1)

        logits = self._classification(v)
        probabilities = nn.functional.softmax(logits, dim=-1)

        return logits, probabilities


def _init_esim_weights(module):
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight.data)
        nn.init.constant_(module.bias.data, 0.0)
    elif isinstance(module, nn.LSTM):
        nn.init.xavier_uniform_(module.weight_ih_l0.data)
        nn.init.orthogonal_(module.weight_hh_l0.data)
        nn.init.constant_(module.bias_ih_l0.data, 0.0)
        nn.init.constant_(module.bias_hh_l0.data, 0.0)
        hidden_size = module.bias_hh_l0.data.shape[0] // 4
        module.bias_hh_l0.data[hidden_size : (2 * hidden_size)] = 1.0

        if module.bidirectional:
            nn.init.xavier_uniform_(module.weight_ih_l0_reverse.data)
            nn.init.orthogonal_(module.weight_hh_l0_reverse.data)
            nn.init.constant_(module.bias_ih_l0_reverse.data, 0.0)
            nn.init.constant_(module.bias_hh_l0_reverse.data, 0.0)
            module.bias_hh_l0_reverse.data[hidden_size : (2 * hidden_size)] = 1.0


# -----------------------------------------------------------------------------
# training


def train(model, dataloader, optimizer, criterion, epoch_number, max_gradient_norm):
    model.train()
    epoch_start = time.time()
    running_loss = 0.0
    correct_preds = 0

    for batch in dataloader:
        premises = batch["premise"]
        premises_lengths = batch["premise_length"]
        hypotheses = batch["hypothesis"]
        hypotheses_lengths = batch["hypothesis_length"]
        labels = batch["label"]

        optimizer.zero_grad()

        logits, probs = model(premises, premises_lengths, hypotheses, hypotheses_lengths)
        loss = criterion(logits, labels)
        loss.backward()

        nn.utils.clip_grad_norm_(model.parameters(), max_gradient_norm)
        optimizer.step()

        running_loss += loss.item()
        correct_preds += correct_predictions(probs, labels)

    epoch_time = time.time() - epoch_start
    epoch_loss = running_loss / len(dataloader)
    epoch_accuracy = correct_preds / len(dataloader.dataset)
    return epoch_time, epoch_loss, epoch_accuracy


def validate(model, dataloader, criterion):
    model.eval()
    epoch_start = time.time()
    running_loss = 0.0
    running_accuracy = 0.0

    with torch.no_grad():
        for batch in dataloader:
            premises = batch["premise"]
            premises_lengths = batch["premise_length"]
            hypotheses = batch["hypothesis"]
            hypotheses_lengths = batch["hypothesis_length"]
            labels = batch["label"]

            logits, probs = model(premises, premises_lengths, hypotheses, hypotheses_lengths)
            loss = criterion(logits, labels)

            running_loss += loss.item()
            running_accuracy += correct_predictions(probs, labels)

    epoch_time = time.time() - epoch_start
    epoch_loss = running_loss / len(dataloader)
    epoch_accuracy = running_accuracy / len(dataloader.dataset)
    return epoch_time, epoch_loss, epoch_accuracy


def main():
    parser = argparse.ArgumentParser(description="Train the ESIM model on generated NLI pairs")
    parser.add_argument("--embedding_dim", type=int, default=32)
    parser.add_argument("--hidden_size", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--max_grad_norm", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    print(20 * "=", " Preparing for training ", 20 * "=")
    train_pairs = make_split(6000, rng)
    dev_pairs = make_split(1000, rng)
    test_pairs = make_split(1000, rng)

    preprocessor = Preprocessor()
    preprocessor.build_worddict(train_pairs)
    train_data = NLIDataset(preprocessor.transform_to_indices(train_pairs))
    dev_data = NLIDataset(preprocessor.transform_to_indices(dev_pairs))
    test_data = NLIDataset(preprocessor.transform_to_indices(test_pairs))

    train_loader = DataLoader(train_data, shuffle=True, batch_size=args.batch_size, collate_fn=collate_batch)
    dev_loader = DataLoader(dev_data, shuffle=False, batch_size=args.batch_size, collate_fn=collate_batch)
    test_loader = DataLoader(test_data, shuffle=False, batch_size=args.batch_size, collate_fn=collate_batch)

    model = ESIM(
        len(preprocessor.worddict),
        args.embedding_dim,
        args.hidden_size,
        dropout=args.dropout,
        num_classes=len(LABELS),
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=0)

    best_score = 0.0
    best_state = copy.deepcopy(model.state_dict())
    patience_counter = 0

    print("\n", 20 * "=", "Training ESIM model", 20 * "=")
    for epoch in range(1, args.epochs + 1):
        epoch_time, epoch_loss, epoch_accuracy = train(
            model, train_loader, optimizer, criterion, epoch, args.max_grad_norm
        )
        print(
            f"* Epoch {epoch}: training time {epoch_time:.1f}s, loss = {epoch_loss:.4f}, "
            f"accuracy: {100 * epoch_accuracy:.2f}%"
        )

        epoch_time, epoch_loss, epoch_accuracy = validate(model, dev_loader, criterion)
        print(
            f"-> Valid. time {epoch_time:.1f}s, loss: {epoch_loss:.4f}, accuracy: "
            f"{100 * epoch_accuracy:.2f}%, lr: {optimizer.param_groups[0]['lr']:.2e}"
        )

        # Update the optimizer's learning rate with the scheduler.
        scheduler.step(epoch_accuracy)

        # Early stopping on validation accuracy.
        if epoch_accuracy < best_score:
            patience_counter += 1
        else:
            best_score = epoch_accuracy
            patience_counter = 0
            best_state = copy.deepcopy(model.state_dict())

        if patience_counter >= args.patience:
            print("-> Early stopping: patience limit reached, stopping...")
            break

    model.load_state_dict(best_state)
    _, _, test_accuracy = validate(model, test_loader, criterion)
    majority = Counter(test_data.labels).most_common(1)[0][1] / len(test_data)
    print(
        f"best validation accuracy {100 * best_score:.2f}%, test accuracy {100 * test_accuracy:.2f}% "
        f"(majority class {100 * majority:.2f}%)"
    )


if __name__ == "__main__":
    main()
