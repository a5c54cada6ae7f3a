"""Classifying names with a character-level RNN, one name at a time: healthy.

In the manner of the classic PyTorch tutorial "NLP From Scratch: Classifying Names with a
Character-Level RNN": the name lists are generated here instead of read from
``data/names/*.txt``, from five invented languages, each with its own inventories of
onsets, vowels, codas and endings (sharing many letters, so that short names stay
ambiguous); 700 names per language, of which a fifth are held out. As in the tutorial,
a letter is a one-hot vector over ``string.ascii_letters + " .,;'"``, a name is a
``(length, 1, n_letters)`` tensor (``lineToTensor``), and ``RNN`` is hand-written: the
input and the hidden state are concatenated and fed to two ``nn.Linear`` layers,
``i2h`` for the next hidden state (through a ``tanh``, which the tutorial leaves out
and which keeps long names from blowing the hidden state up) and ``i2o`` for the
output, followed by
``nn.LogSoftmax(dim=1)``; the loss is ``nn.NLLLoss`` on the output after the last
letter. Training goes one random (language, name) pair at a time (batch size 1,
``randomTrainingExample``), the hidden state set to zeros for every name, and there is
no optimizer object: after ``rnn.zero_grad()`` and ``loss.backward()`` each parameter is
updated by hand with ``p.data.add_(p.grad.data, alpha=-learning_rate)``, learning rate
0.005, 28,000 iterations. A top-level script with the tutorial's helper functions
(``letterToIndex``, ``categoryFromOutput``, ``randomChoice``) and argparse; prints
every 4,000 iterations the running average of the loss, a sample guess, and the
accuracy on the held-out names.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/char_rnn_names.py
    nndoctor check examples/wild/char_rnn_names.py
"""

import argparse
import random
import string
import time

import torch
import torch.nn as nn

parser = argparse.ArgumentParser(description="char-RNN name classification")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--n-iters", type=int, default=28000)
parser.add_argument("--names-per-language", type=int, default=700)
args = parser.parse_args()

random.seed(args.seed)
torch.manual_seed(args.seed)

all_letters = string.ascii_letters + " .,;'"
n_letters = len(all_letters)

# ---------------------------------------------------------------------------------
# Five invented languages: (onsets, vowels, codas, endings).
LANGUAGES = {
    "Aldric": (
        ["b", "br", "d", "g", "gr", "h", "k", "w", "st", "tr", "f", "r"],
        ["a", "e", "i", "o", "u", "ei"],
        ["n", "ld", "rd", "lf", "rt", "st", "m", "nd", ""],
        ["mund", "hild", "wald", "ric", "bert", "", "helm"],
    ),
    "Velari": (
        ["l", "r", "v", "m", "n", "s", "t", "b", "c", "f"],
        ["a", "e", "i", "o", "ia", "io"],
        ["", "", "", "l", "n", "r"],
        ["o", "a", "ini", "etti", "ella", "ano"],
    ),
    "Kashu": (
        ["k", "sh", "t", "m", "n", "h", "y", "r", "s", "ch", "ts"],
        ["a", "i", "u", "e", "o"],
        ["", "", "", "n"],
        ["", "ko", "ro", "shi", "da", "moto"],
    ),
    "Dravik": (
        ["v", "d", "z", "b", "kr", "sl", "m", "p", "br", "st", "j"],
        ["o", "a", "i", "e", "y"],
        ["v", "r", "l", "k", "", "sl", "zh"],
        ["ov", "ek", "ich", "enko", "ski", "ova", ""],
    ),
    "Ouenne": (
        ["gh", "m", "l", "d", "c", "bh", "r", "s", "f", "n"],
        ["ou", "ae", "ea", "ai", "oi", "e"],
        ["nn", "ll", "gh", "r", "", "s", "ch"],
        ["eau", "enne", "aigh", "e", "", "ois"],
    ),
}


def make_name(parts):
    onsets, vowels, codas, endings = parts
    n_syllables = random.choice([1, 2, 2, 2, 3])
    name = ""
    for _ in range(n_syllables):
        name += random.choice(onsets) + random.choice(vowels) + random.choice(codas)
    name += random.choice(endings)
    return name.capitalize()


all_categories = list(LANGUAGES)
n_categories = len(all_categories)
category_lines, test_lines = {}, {}
for category, parts in LANGUAGES.items():
    names = [make_name(parts) for _ in range(args.names_per_language)]
    n_test = len(names) // 5
    category_lines[category] = names[n_test:]
    test_lines[category] = names[:n_test]


# ---------------------------------------------------------------------------------
# Turning names into tensors.
def letterToIndex(letter):
    return all_letters.find(letter)


def lineToTensor(line):
    tensor = torch.zeros(len(line), 1, n_letters)
    for li, letter in enumerate(line):
        tensor[li][0][letterToIndex(letter)] = 1
    return tensor


# ---------------------------------------------------------------------------------
class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        hidden = torch.tanh(self.i2h(combined))
        output = self.i2o(combined)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


n_hidden = 128
rnn = RNN(n_letters, n_hidden, n_categories)


def categoryFromOutput(output):
    top_n, top_i = output.topk(1)
    category_i = top_i[0].item()
    return all_categories[category_i], category_i


def randomChoice(seq):
    return seq[random.randint(0, len(seq) - 1)]


def randomTrainingExample():
    category = randomChoice(all_categories)
    line = randomChoice(category_lines[category])
    category_tensor = torch.tensor([all_categories.index(category)], dtype=torch.long)
    line_tensor = lineToTensor(line)
    return category, line, category_tensor, line_tensor


criterion = nn.NLLLoss()
learning_rate = 0.005  # If you set this too high, it might explode. If too low, it might not learn


def train(category_tensor, line_tensor):
    hidden = rnn.initHidden()

    rnn.zero_grad()

    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)

    loss = criterion(output, category_tensor)
    loss.backward()

    # Add parameters' gradients to their values, multiplied by learning rate
    for p in rnn.parameters():
        p.data.add_(p.grad.data, alpha=-learning_rate)

    return output, loss.item()


def evaluate(line_tensor):
    hidden = rnn.initHidden()
    for i in range(line_tensor.size()[0]):
        output, hidden = rnn(line_tensor[i], hidden)
    return output


def test_accuracy():
    correct = total = 0
    with torch.no_grad():
        for category, lines in test_lines.items():
            for line in lines:
                guess, _ = categoryFromOutput(evaluate(lineToTensor(line)))
                correct += guess == category
                total += 1
    return correct / total


n_iters = args.n_iters
print_every = 4000
current_loss = 0
start = time.time()

print(f"{n_categories} languages, {sum(map(len, category_lines.values()))} training names")
for iter in range(1, n_iters + 1):
    category, line, category_tensor, line_tensor = randomTrainingExample()
    output, loss = train(category_tensor, line_tensor)
    current_loss += loss

    if iter % print_every == 0:
        guess, guess_i = categoryFromOutput(output)
        correct = "✓" if guess == category else f"✗ ({category})"
        print(
            f"{iter} {iter / n_iters * 100:.0f}% ({time.time() - start:.0f}s) "
            f"avg loss {current_loss / print_every:.4f}  {line} / {guess} {correct}  "
            f"held-out accuracy {test_accuracy():.3f}"
        )
        current_loss = 0
