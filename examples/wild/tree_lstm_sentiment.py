"""A Child-Sum Tree-LSTM for sentence sentiment over binary parse trees: healthy.

In the manner of the popular PyTorch TreeLSTM sentiment implementations (Tai et al. 2015;
``treelstm.pytorch`` and its Stanford Sentiment Treebank forks): the sentences are
generated from a small grammar over 41 words (positive and negative adjectives, neutral
words, negators such as "not", intensifiers such as "very") together with their binary
parse trees, and the sentiment composes along the tree: a leaf is +1, -1 or 0, a negator
flips the phrase it is attached to, an intensifier doubles it and two phrases add up. Every
node whose value is not zero is labelled with its sign (positive / negative), the root
always is (sentences of 3 to about 20 words). 1,000 trees for training, 500 held out.

``ChildSumTreeLSTM`` is the cell of the reference: ``ioux``/``iouh`` give the input, output
and update gates from the node's input and the sum of its children's hidden states, one
forget gate per child from ``fx``/``fh``, ``c = i * u + sum(f_k * c_k)``, ``h = o *
tanh(c)``; the tree is processed recursively node by node, the leaves with their word
embedding and zero child states, the inner nodes with a zero input. ``SentimentModule``
(dropout, ``nn.Linear``, ``F.log_softmax``) classifies every node's hidden state and the
loss of a tree is ``nn.NLLLoss`` summed over its labelled nodes. One tree at a time: each
tree's loss is backpropagated as it comes, the gradients of ``--batch-size`` 25 trees add
up and ``optimizer.step()`` is taken once per mini-batch, as in the reference trainer.
``torch.optim.Adagrad`` (lr 0.05, weight decay 1e-4, as in the paper), randomly
initialised embeddings of size 32, memory size 64, 3 epochs. Top-level functions and
classes, ``main()`` with argparse; prints the training loss and the held-out root and
all-node accuracy every epoch, then the final root accuracy against the majority class and
a bag-of-words logistic regression (which cannot see what a negator applies to).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/tree_lstm_sentiment.py
    nndoctor check examples/wild/tree_lstm_sentiment.py
"""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

POSITIVE = ["good", "great", "fun", "brilliant", "charming", "moving", "clever", "superb"]
NEGATIVE = ["bad", "dull", "boring", "awful", "clumsy", "bland", "tedious", "weak"]
NEUTRAL = ["the", "movie", "film", "plot", "cast", "story", "script", "ending", "music"]
NEUTRAL += ["director", "it", "this", "was", "is", "and", "a", "acting", "scenes"]
NEGATORS = ["not", "never", "hardly"]
INTENSIFIERS = ["very", "really", "truly", "so"]
VOCAB = POSITIVE + NEGATIVE + NEUTRAL + NEGATORS + INTENSIFIERS
WORD2IDX = {w: i for i, w in enumerate(VOCAB)}
NUM_CLASSES = 2  # 0 negative, 1 positive


class Tree:
    """A node of a binary parse tree; ``idx`` is the leaf's position in the sentence."""

    def __init__(self, children=(), idx=None, value=0.0):
        self.children = list(children)
        self.num_children = len(self.children)
        self.idx = idx
        self.value = value
        self.gold_label = None if value == 0 else int(value > 0)
        self.state = None
        self.output = None

    def traverse(self):
        for child in self.children:
            yield from child.traverse()
        yield self


def generate_phrase(rng, words, depth=0, max_depth=6):
    """A random phrase: appends its words to ``words`` and returns its tree."""
    if depth >= max_depth or rng.random() < 0.05 + 0.15 * depth:
        r = rng.random()
        if r < 0.35:
            word, value = rng.choice(POSITIVE), 1.0
        elif r < 0.7:
            word, value = rng.choice(NEGATIVE), -1.0
        else:
            word, value = rng.choice(NEUTRAL), 0.0
        words.append(WORD2IDX[word])
        return Tree(idx=len(words) - 1, value=value)

    r = rng.random()
    if r < 0.25:
        words.append(WORD2IDX[rng.choice(NEGATORS)])
        left = Tree(idx=len(words) - 1)
        right = generate_phrase(rng, words, depth + 1, max_depth)
        return Tree([left, right], value=-right.value)
    if r < 0.4:
        words.append(WORD2IDX[rng.choice(INTENSIFIERS)])
        left = Tree(idx=len(words) - 1)
        right = generate_phrase(rng, words, depth + 1, max_depth)
        return Tree([left, right], value=2.0 * right.value)
    left = generate_phrase(rng, words, depth + 1, max_depth)
    right = generate_phrase(rng, words, depth + 1, max_depth)
    return Tree([left, right], value=left.value + right.value)


def generate_dataset(n, rng):
    data = []
    while len(data) < n:
        words = []
        tree = generate_phrase(rng, words)
        if tree.value != 0 and len(words) >= 3:
            data.append((tree, torch.tensor(words)))
    return data


def to_text(tree, sentence):
    if tree.num_children == 0:
        return VOCAB[sentence[tree.idx]]
    return "(" + " ".join(to_text(c, sentence) for c in tree.children) + ")"


class ChildSumTreeLSTM(nn.Module):
    def __init__(self, in_dim, mem_dim):
        super().__init__()
        self.in_dim = in_dim
        self.mem_dim = mem_dim
        self.ioux = nn.Linear(self.in_dim, 3 * self.mem_dim)
        self.iouh = nn.Linear(self.mem_dim, 3 * self.mem_dim)
        self.fx = nn.Linear(self.in_dim, self.mem_dim)
        self.fh = nn.Linear(self.mem_dim, self.mem_dim)

    def node_forward(self, inputs, child_c, child_h):
        child_h_sum = torch.sum(child_h, dim=0, keepdim=True)

        iou = self.ioux(inputs) + self.iouh(child_h_sum)
        i, o, u = torch.split(iou, iou.size(1) // 3, dim=1)
        i, o, u = torch.sigmoid(i), torch.sigmoid(o), torch.tanh(u)

        f = torch.sigmoid(self.fh(child_h) + self.fx(inputs).repeat(len(child_h), 1))
        fc = torch.mul(f, child_c)

        c = torch.mul(i, u) + torch.sum(fc, dim=0, keepdim=True)
        h = torch.mul(o, torch.tanh(c))
        return c, h

    def forward(self, tree, inputs):
        for child in tree.children:
            self.forward(child, inputs)

        if tree.num_children == 0:
            x = inputs[tree.idx].unsqueeze(0)
            child_c = inputs.new_zeros(1, self.mem_dim)
            child_h = inputs.new_zeros(1, self.mem_dim)
        else:
            x = inputs.new_zeros(1, self.in_dim)
            child_c, child_h = zip(*(child.state for child in tree.children), strict=True)
            child_c, child_h = torch.cat(child_c, dim=0), torch.cat(child_h, dim=0)

        tree.state = self.node_forward(x, child_c, child_h)
        return tree.state


class SentimentModule(nn.Module):
    def __init__(self, mem_dim, num_classes, dropout=0.2):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.l1 = nn.Linear(mem_dim, num_classes)

    def forward(self, vec):
        return F.log_softmax(self.l1(self.dropout(vec)), dim=1)


class TreeLSTMSentiment(nn.Module):
    def __init__(self, vocab_size, in_dim, mem_dim, num_classes):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, in_dim)
        self.childsumtreelstm = ChildSumTreeLSTM(in_dim, mem_dim)
        self.output_module = SentimentModule(mem_dim, num_classes)

    def forward(self, tree, sentence):
        inputs = self.emb(sentence)
        self.childsumtreelstm(tree, inputs)
        for node in tree.traverse():
            node.output = self.output_module(node.state[1])
        return tree.output


def tree_loss(tree, criterion):
    loss = 0.0
    for node in tree.traverse():
        if node.gold_label is not None:
            loss = loss + criterion(node.output, torch.tensor([node.gold_label]))
    return loss


def train_epoch(model, dataset, criterion, optimizer, batch_size):
    model.train()
    total_loss = 0.0
    indices = torch.randperm(len(dataset)).tolist()
    optimizer.zero_grad()
    for k, i in enumerate(indices, 1):
        tree, sentence = dataset[i]
        model(tree, sentence)
        loss = tree_loss(tree, criterion)
        total_loss += loss.item()
        (loss / batch_size).backward()
        if k % batch_size == 0 or k == len(indices):
            optimizer.step()
            optimizer.zero_grad()
    return total_loss / len(dataset)


@torch.no_grad()
def evaluate(model, dataset):
    model.eval()
    root_correct = node_correct = node_total = 0
    for tree, sentence in dataset:
        model(tree, sentence)
        root_correct += int(tree.output.argmax(dim=1).item() == tree.gold_label)
        for node in tree.traverse():
            if node.gold_label is not None:
                node_correct += int(node.output.argmax(dim=1).item() == node.gold_label)
                node_total += 1
    return root_correct / len(dataset), node_correct / node_total


def bag_of_words_baseline(train_data, test_data, steps=300):
    """Logistic regression on word counts: blind to what a negator applies to."""

    def featurise(data):
        x = torch.zeros(len(data), len(VOCAB))
        for row, (_, sentence) in enumerate(data):
            x[row].index_add_(0, sentence, torch.ones(len(sentence)))
        y = torch.tensor([tree.gold_label for tree, _ in data])
        return x, y

    x_train, y_train = featurise(train_data)
    x_test, y_test = featurise(test_data)
    clf = nn.Linear(len(VOCAB), NUM_CLASSES)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(clf(x_train), y_train).backward()
        opt.step()
    with torch.no_grad():
        return (clf(x_test).argmax(dim=1) == y_test).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="Child-Sum Tree-LSTM sentiment")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--wd", type=float, default=1e-4)
    parser.add_argument("--input-dim", type=int, default=32)
    parser.add_argument("--mem-dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = random.Random(args.seed)
    train_data = generate_dataset(args.n_train, rng)
    test_data = generate_dataset(args.n_test, rng)
    tree, sentence = train_data[0]
    sentiment = "positive" if tree.gold_label else "negative"
    print(f"example: {to_text(tree, sentence)}  ->  {sentiment}")

    model = TreeLSTMSentiment(len(VOCAB), args.input_dim, args.mem_dim, NUM_CLASSES)
    criterion = nn.NLLLoss()
    optimizer = torch.optim.Adagrad(model.parameters(), lr=args.lr, weight_decay=args.wd)

    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(model, train_data, criterion, optimizer, args.batch_size)
        root_acc, node_acc = evaluate(model, test_data)
        print(
            f"epoch {epoch}  train loss {loss:.3f}  test root acc {root_acc:.3f}  "
            f"test node acc {node_acc:.3f}"
        )

    labels = torch.tensor([tree.gold_label for tree, _ in test_data])
    majority = max(labels.float().mean().item(), 1 - labels.float().mean().item())
    bow = bag_of_words_baseline(train_data, test_data)
    root_acc, _ = evaluate(model, test_data)
    print(
        f"final: Tree-LSTM root acc {root_acc:.3f}  bag-of-words {bow:.3f}  "
        f"majority class {majority:.3f}"
    )


if __name__ == "__main__":
    main()
