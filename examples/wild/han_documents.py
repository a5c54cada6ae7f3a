"""A Hierarchical Attention Network over generated documents: healthy.

In the manner of the popular PyTorch re-implementations of the Hierarchical Attention
Network (Yang et al. 2016, "Hierarchical Attention Networks for Document Classification"):
the documents are generated from a vocabulary of 300 tokens (0 is PAD). Each one has 3 to 8
sentences of 4 to 14 words of filler; five key phrases (two-word bigrams) name the five
classes, of unequal frequency (30% for the largest). One sentence of a document holds the
key phrase of its class, as two adjacent words in order; the other sentences carry
distractors: the two words of another class's phrase in the wrong order or apart, and single
key words. A bag of words is not enough: the class is the phrase that occurs, in order, in
one of the sentences. 4,000 documents for training and 1,000 for testing, padded to
``[batch, max_sents, max_words]`` with the number of sentences per document and of words
per sentence kept alongside.

``HierarchicalAttentionNetwork`` is an ``nn.Module`` made of a ``WordAttention`` and a
``SentenceAttention`` module. The real sentences of the batch are gathered into one
``[n_sentences, max_words]`` tensor, embedded (``padding_idx=0``), run through a
bidirectional ``nn.GRU`` over a ``pack_padded_sequence``, and pooled with attention: a
``tanh`` projection scored against a learned word context vector ``u_w`` (a ``Linear``
without bias), softmax over the real words of each sentence (PAD positions filled with
``-inf``). The sentence vectors are scattered back into ``[batch, max_sents, 2h]``, a second
bidirectional GRU runs over the real sentences of each document, and sentence attention
with its context vector ``u_s`` pools them into a document vector for a linear classifier.
Dropout on the embeddings and the document vector. ``nn.CrossEntropyLoss``, Adam,
``clip_grad_norm_`` at 5, shuffled mini-batches of 64 for 8 epochs. Top-level functions and
``main()`` with argparse; prints the training loss and accuracy per epoch, then the test
accuracy against the majority class.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/han_documents.py
    nndoctor check examples/wild/han_documents.py
"""

import argparse

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD = 0
VOCAB_SIZE = 300
N_CLASSES = 5
CLASS_PRIORS = [0.30, 0.25, 0.20, 0.15, 0.10]
MAX_SENTS, MAX_WORDS = 8, 14
# Key words 1..10: class k's phrase is (KEY_A[k], KEY_B[k]); filler words are 11..299.
KEY_A = [1, 2, 3, 4, 5]
KEY_B = [6, 7, 8, 9, 10]
FIRST_FILLER = 11


def make_documents(n, g):
    """Padded documents [n, MAX_SENTS, MAX_WORDS], sentence and word counts, and labels."""
    docs = torch.full((n, MAX_SENTS, MAX_WORDS), PAD, dtype=torch.long)
    words_per_sentence = torch.zeros(n, MAX_SENTS, dtype=torch.long)
    labels = torch.multinomial(torch.tensor(CLASS_PRIORS), n, replacement=True, generator=g)
    sentences_per_doc = torch.randint(3, MAX_SENTS + 1, (n,), generator=g)

    def randint(low, high):
        return int(torch.randint(low, high, (1,), generator=g))

    for i in range(n):
        n_sents = int(sentences_per_doc[i])
        key_sentence = randint(0, n_sents)
        for s in range(n_sents):
            length = randint(4, MAX_WORDS + 1)
            sentence = torch.randint(FIRST_FILLER, VOCAB_SIZE, (length,), generator=g)
            if s == key_sentence:
                k = int(labels[i])
                pos = randint(0, length - 1)
                sentence[pos], sentence[pos + 1] = KEY_A[k], KEY_B[k]
            elif torch.rand(1, generator=g) < 0.6:
                # A distractor: another class's phrase reversed, or its two words apart.
                j = randint(0, N_CLASSES)
                p, q = torch.randperm(length, generator=g)[:2].tolist()
                if torch.rand(1, generator=g) < 0.5:
                    p, q = min(p, q), min(p, q) + 1
                    sentence[p], sentence[q] = KEY_B[j], KEY_A[j]
                elif abs(p - q) > 1:
                    sentence[min(p, q)], sentence[max(p, q)] = KEY_A[j], KEY_B[j]
                else:
                    sentence[p] = KEY_A[j]
            if torch.rand(1, generator=g) < 0.3:
                # A stray key word on its own.
                sentence[randint(0, length)] = randint(1, FIRST_FILLER)
            docs[i, s, :length] = sentence
            words_per_sentence[i, s] = length
    return docs, sentences_per_doc, words_per_sentence, labels


class WordAttention(nn.Module):
    """Word encoder (bidirectional GRU) and word attention: one vector per sentence."""

    def __init__(self, vocab_size, emb_dim, word_rnn_size, word_att_size, dropout):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.word_rnn = nn.GRU(emb_dim, word_rnn_size, batch_first=True, bidirectional=True)
        self.word_attention = nn.Linear(2 * word_rnn_size, word_att_size)
        self.word_context_vector = nn.Linear(word_att_size, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, sentences, words_per_sentence):
        # sentences: [n_sentences, max_words]
        embedded = self.dropout(self.embeddings(sentences))
        packed = pack_padded_sequence(
            embedded, words_per_sentence, batch_first=True, enforce_sorted=False
        )
        packed_out, _ = self.word_rnn(packed)
        h, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=sentences.size(1))

        u = torch.tanh(self.word_attention(h))
        scores = self.word_context_vector(u).squeeze(-1)  # [n_sentences, max_words]
        mask = sentences != PAD
        scores = scores.masked_fill(~mask, float("-inf"))
        alphas = torch.softmax(scores, dim=1)
        sentence_vectors = (alphas.unsqueeze(-1) * h).sum(dim=1)
        return sentence_vectors, alphas


class SentenceAttention(nn.Module):
    """Sentence encoder (bidirectional GRU) and sentence attention: one vector per document."""

    def __init__(self, in_size, sentence_rnn_size, sentence_att_size):
        super().__init__()
        self.sentence_rnn = nn.GRU(in_size, sentence_rnn_size, batch_first=True, bidirectional=True)
        self.sentence_attention = nn.Linear(2 * sentence_rnn_size, sentence_att_size)
        self.sentence_context_vector = nn.Linear(sentence_att_size, 1, bias=False)

    def forward(self, sentence_vectors, sentences_per_doc):
        # sentence_vectors: [batch, max_sents, in_size]
        packed = pack_padded_sequence(
            sentence_vectors, sentences_per_doc, batch_first=True, enforce_sorted=False
        )
        packed_out, _ = self.sentence_rnn(packed)
        h, _ = pad_packed_sequence(
            packed_out, batch_first=True, total_length=sentence_vectors.size(1)
        )

        u = torch.tanh(self.sentence_attention(h))
        scores = self.sentence_context_vector(u).squeeze(-1)  # [batch, max_sents]
        positions = torch.arange(h.size(1)).unsqueeze(0)
        mask = positions < sentences_per_doc.unsqueeze(1)
        scores = scores.masked_fill(~mask, float("-inf"))
        alphas = torch.softmax(scores, dim=1)
        documents = (alphas.unsqueeze(-1) * h).sum(dim=1)
        return documents, alphas


class HierarchicalAttentionNetwork(nn.Module):
    def __init__(
        self,
        n_classes,
        vocab_size,
        emb_dim=64,
        word_rnn_size=48,
        sentence_rnn_size=48,
        word_att_size=64,
        sentence_att_size=64,
        dropout=0.3,
    ):
        super().__init__()
        self.word_attention = WordAttention(
            vocab_size, emb_dim, word_rnn_size, word_att_size, dropout
        )
        self.sentence_attention = SentenceAttention(
            2 * word_rnn_size, sentence_rnn_size, sentence_att_size
        )
        self.fc = nn.Linear(2 * sentence_rnn_size, n_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, documents, sentences_per_doc, words_per_sentence):
        batch, max_sents, _ = documents.shape
        real = words_per_sentence > 0  # [batch, max_sents]
        sentence_vectors, word_alphas = self.word_attention(
            documents[real], words_per_sentence[real]
        )
        per_doc = sentence_vectors.new_zeros(batch, max_sents, sentence_vectors.size(-1))
        per_doc[real] = sentence_vectors
        document_vectors, sentence_alphas = self.sentence_attention(per_doc, sentences_per_doc)
        scores = self.fc(self.dropout(document_vectors))
        return scores, word_alphas, sentence_alphas


def train_epoch(model, data, criterion, optimizer, batch_size, grad_clip):
    docs, n_sents, n_words, labels = data
    model.train()
    order = torch.randperm(len(labels))
    total_loss, correct = 0.0, 0
    for start in range(0, len(labels), batch_size):
        idx = order[start : start + batch_size]
        scores, _, _ = model(docs[idx], n_sents[idx], n_words[idx])
        loss = criterion(scores, labels[idx])

        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()

        total_loss += loss.item() * len(idx)
        correct += (scores.argmax(dim=1) == labels[idx]).sum().item()
    return total_loss / len(labels), correct / len(labels)


@torch.no_grad()
def evaluate(model, data, batch_size=500):
    docs, n_sents, n_words, labels = data
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        sl = slice(start, start + batch_size)
        scores, _, _ = model(docs[sl], n_sents[sl], n_words[sl])
        correct += (scores.argmax(dim=1) == labels[sl]).sum().item()
    return correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description="Hierarchical Attention Network")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_data = make_documents(args.n_train, g)
    test_data = make_documents(args.n_test, g)

    model = HierarchicalAttentionNetwork(N_CLASSES, VOCAB_SIZE)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        loss, acc = train_epoch(
            model, train_data, criterion, optimizer, args.batch_size, args.grad_clip
        )
        print(f"epoch {epoch}  train loss {loss:.4f}  train acc {acc:.3f}")

    test_labels = test_data[3]
    majority = torch.bincount(train_data[3], minlength=N_CLASSES).argmax()
    baseline = (test_labels == majority).float().mean().item()
    print(f"test accuracy {evaluate(model, test_data):.3f}  (majority class: {baseline:.3f})")


if __name__ == "__main__":
    main()
