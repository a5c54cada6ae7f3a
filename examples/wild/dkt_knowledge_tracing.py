"""Deep Knowledge Tracing with an LSTM on simulated students: healthy.

In the manner of the PyTorch ports of Deep Knowledge Tracing (Piech et al., 2015) run on
ASSISTments-style logs: the logs are simulated here. 24 skills in four topics have a
hidden difficulty; each student has a hidden ability, a strength per topic and a
learning rate, and the chance of answering right grows with the practice the student
has had on the skill (``sigmoid(ability + topic strength - difficulty + rate *
log1p(practice))``). A student practises one skill a few times in a row before moving
on (usually to the next skill of the curriculum), 15 to 60 interactions in all. Each
student's log is a pair of sequences (skill ids, 0/1 answers) in a ``Dataset``; a
``collate_fn`` pads them with ``pad_sequence(batch_first=True, padding_value=-1)`` so
that -1 marks the padding. ``DKT`` embeds the interaction id ``skill + n_skills *
correct`` with an ``nn.Embedding`` (one row per (skill, answer) pair, the learned
form of the paper's one-hot input), runs an ``nn.LSTM(batch_first=True)`` and outputs,
per time step, a sigmoid probability of a right answer for every skill. The loss
gathers from the output at step t the probability of the skill asked at step t+1 and
applies ``nn.BCELoss`` against the answer given at t+1, on the positions that are not
padding. Adam, ``clip_grad_norm_``, shuffled ``DataLoader``. A ``main()`` with
argparse; prints per epoch the training loss and the ROC AUC (hand-computed from
ranks) of the next-answer predictions on 1,000 held-out students, against the AUC of
the training set's per-skill success rates.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dkt_knowledge_tracing.py
    nndoctor check examples/wild/dkt_knowledge_tracing.py
"""

import argparse

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

N_SKILLS, N_TOPICS = 24, 4
PAD = -1


def simulate_students(n_students, generator):
    """Skill and answer sequences of simulated students (lists of 1-D long tensors)."""
    g = generator
    difficulty = 1.2 * torch.randn(N_SKILLS, generator=g)
    topic_of = torch.arange(N_SKILLS) * N_TOPICS // N_SKILLS
    max_len = 60
    ability = torch.randn(n_students, generator=g)
    strength = 0.8 * torch.randn(n_students, N_TOPICS, generator=g)
    rate = 0.3 + 0.4 * torch.rand(n_students, generator=g)
    lengths = torch.randint(15, max_len + 1, (n_students,), generator=g)

    rows = torch.arange(n_students)
    practice = torch.zeros(n_students, N_SKILLS)
    skill = torch.randint(0, N_SKILLS, (n_students,), generator=g)
    skills, answers = [], []
    for t in range(max_len):
        if t > 0:
            move = torch.rand(n_students, generator=g) < 0.3
            follow = torch.rand(n_students, generator=g) < 0.7
            jump = torch.randint(0, N_SKILLS, (n_students,), generator=g)
            nxt = torch.where(follow, (skill + 1) % N_SKILLS, jump)
            skill = torch.where(move, nxt, skill)
        logit = (
            ability
            + strength[rows, topic_of[skill]]
            - difficulty[skill]
            + rate * torch.log1p(practice[rows, skill])
        )
        correct = (torch.rand(n_students, generator=g) < torch.sigmoid(logit)).long()
        practice[rows, skill] += 1
        skills.append(skill)
        answers.append(correct)
    skills, answers = torch.stack(skills, 1), torch.stack(answers, 1)
    return [(skills[i, : lengths[i]], answers[i, : lengths[i]]) for i in range(n_students)]


class StudentLogs(Dataset):
    def __init__(self, logs):
        self.logs = logs

    def __len__(self):
        return len(self.logs)

    def __getitem__(self, i):
        return self.logs[i]


def collate(batch):
    skills = pad_sequence([s for s, _ in batch], batch_first=True, padding_value=PAD)
    answers = pad_sequence([a for _, a in batch], batch_first=True, padding_value=PAD)
    return skills, answers


class DKT(nn.Module):
    def __init__(self, n_skills, embed_dim=64, hidden_dim=100):
        super().__init__()
        self.n_skills = n_skills
        self.interaction_embed = nn.Embedding(2 * n_skills, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, n_skills)

    def forward(self, skills, answers):
        interaction = skills + self.n_skills * answers
        h, _ = self.lstm(self.interaction_embed(interaction))
        return torch.sigmoid(self.out(h))  # (batch, time, n_skills)


def next_step_predictions(model, skills, answers):
    """Predicted probability and actual answer of every next interaction (no padding)."""
    valid = skills != PAD
    inputs_s = skills.clamp(min=0)  # padding enters as skill 0, wrong; masked below
    inputs_a = answers.clamp(min=0)
    prob = model(inputs_s[:, :-1], inputs_a[:, :-1])
    next_skill = inputs_s[:, 1:].unsqueeze(-1)
    p_next = prob.gather(-1, next_skill).squeeze(-1)
    mask = valid[:, 1:]
    return p_next[mask], answers[:, 1:][mask].float()


def roc_auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return ((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    scores, labels = [], []
    for skills, answers in loader:
        p, y = next_step_predictions(model, skills, answers)
        scores.append(p)
        labels.append(y)
    model.train()
    return roc_auc(torch.cat(scores), torch.cat(labels))


def main():
    parser = argparse.ArgumentParser(description="Deep Knowledge Tracing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    logs = simulate_students(args.n_train + args.n_test, g)
    train_logs, test_logs = logs[: args.n_train], logs[args.n_train :]

    # Reference: each skill's success rate on the training students.
    all_s = torch.cat([s for s, _ in train_logs])
    all_a = torch.cat([a for _, a in train_logs]).float()
    rate = torch.zeros(N_SKILLS).index_add_(0, all_s, all_a) / torch.bincount(
        all_s, minlength=N_SKILLS
    )
    test_s = torch.cat([s[1:] for s, _ in test_logs])
    test_a = torch.cat([a[1:] for _, a in test_logs])
    print(f"per-skill success rate AUC on the test students {roc_auc(rate[test_s], test_a):.3f}")

    train_loader = DataLoader(
        StudentLogs(train_logs), batch_size=args.batch_size, shuffle=True, collate_fn=collate
    )
    test_loader = DataLoader(StudentLogs(test_logs), batch_size=256, collate_fn=collate)

    model = DKT(N_SKILLS)
    criterion = nn.BCELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        total, batches = 0.0, 0
        for skills, answers in train_loader:
            p, y = next_step_predictions(model, skills, answers)
            loss = criterion(p, y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
            optimizer.step()
            total += loss.item()
            batches += 1
        auc = evaluate(model, test_loader)
        print(f"epoch {epoch:2d}  train BCE {total / batches:.4f}  test AUC {auc:.4f}")


if __name__ == "__main__":
    main()
