"""TabNet on generated tabular data with ghost batch norm and sparsemax attention: healthy.

In the manner of dreamquark-ai's ``pytorch-tabnet`` (the PyTorch implementation of Arik &
Pfister's TabNet, 2019), written small and by hand: the data are 16,000 generated rows
(12,000 for training, 2,000 for validation, 2,000 for testing) of 30 numeric features on
their natural, very different scales (only six of them enter the label) and two
categorical columns stored as float codes in the same matrix (a region of 8 values that
matters and a channel of 5 that does not); the 3-class label comes from a nonlinear rule
(an interaction, a sine, a square, a threshold and a per-region offset) with a little
label noise.

The model follows ``tab_network.py``: an ``EmbeddingGenerator`` replaces the categorical
codes by ``nn.Embedding`` vectors, an input ``BatchNorm1d`` standardises the (raw)
features, and ``TabNetEncoder`` runs an initial splitter and ``N_steps`` = 3 decision
steps. Each step's ``FeatTransformer`` is a ``GLU_Block`` whose linear layers are shared
by all steps followed by a step-specific one (fully connected layer, ghost batch
normalisation over virtual batches of 64, GLU, residual sum scaled by sqrt(0.5)); each ``AttentiveTransformer`` is a linear
layer with ghost BN whose output, multiplied by the prior scales, goes through a sparsemax
written as an ``autograd.Function`` (sorting, threshold and support, and its backward); the
prior is updated with the relaxation factor gamma = 1.3. The ReLU decision outputs of the
steps are summed into the final linear mapping. Loss: ``nn.CrossEntropyLoss`` plus
lambda_sparse = 1e-3 times the mean entropy of the masks; ``torch.optim.Adam`` (lr 2e-2)
with ``StepLR`` (step 10 epochs, gamma 0.9) stepped after each epoch, shuffled batches of
256 with virtual batches of 64, 40 epochs. Top-level classes and ``main()`` with argparse;
prints every 5 epochs the training loss and the validation accuracy, then the test accuracy
against the majority class and the share of the global feature importances (aggregated
masks, as ``feature_importances_``) that falls on the seven informative features.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/tabnet_tabular.py
    nndoctor check examples/wild/tabnet_tabular.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.autograd import Function

N_NUMERIC = 30
CAT_IDXS = [30, 31]  # column positions of the categorical features
CAT_DIMS = [8, 5]  # their numbers of modalities
INFORMATIVE = [0, 1, 2, 3, 4, 5, 30]  # the features that enter the label


def make_data(n, g):
    scales = 10.0 ** torch.linspace(-2, 3, N_NUMERIC)
    scales = scales[torch.randperm(N_NUMERIC, generator=g)]
    offsets = 5.0 * torch.randn(N_NUMERIC, generator=g) * scales
    z = torch.randn(n, N_NUMERIC, generator=g)
    region = torch.randint(0, CAT_DIMS[0], (n,), generator=g)
    channel = torch.randint(0, CAT_DIMS[1], (n,), generator=g)
    region_effect = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 1.5])

    score_a = z[:, 0] + 0.5 * z[:, 1] * z[:, 2] + torch.sin(z[:, 2]) + region_effect[region]
    score_b = 0.5 * z[:, 3] ** 2 + (z[:, 4] > 0.0).float() - z[:, 5]
    y = torch.where(score_a < -0.5, 0, torch.where(score_b < 0.8, 1, 2))
    flip = torch.rand(n, generator=g) < 0.03
    y = torch.where(flip, torch.randint(0, 3, (n,), generator=g), y)

    numeric = z * scales + offsets
    x = torch.cat([numeric, region[:, None].float(), channel[:, None].float()], dim=1)
    return x, y


def _make_ix_like(input, dim=0):
    d = input.size(dim)
    rho = torch.arange(1, d + 1, device=input.device, dtype=input.dtype)
    view = [1] * input.dim()
    view[0] = -1
    return rho.view(view).transpose(0, dim)


class SparsemaxFunction(Function):
    """Sparsemax (Martins & Astudillo, 2016): a Euclidean projection onto the simplex."""

    @staticmethod
    def forward(ctx, input, dim=-1):
        ctx.dim = dim
        max_val, _ = input.max(dim=dim, keepdim=True)
        input = input - max_val  # same numerical stability trick as for softmax
        tau, supp_size = SparsemaxFunction._threshold_and_support(input, dim=dim)
        output = torch.clamp(input - tau, min=0)
        ctx.save_for_backward(supp_size, output)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        supp_size, output = ctx.saved_tensors
        dim = ctx.dim
        grad_input = grad_output.clone()
        grad_input[output == 0] = 0

        v_hat = grad_input.sum(dim=dim) / supp_size.to(output.dtype).squeeze(dim)
        v_hat = v_hat.unsqueeze(dim)
        grad_input = torch.where(output != 0, grad_input - v_hat, grad_input)
        return grad_input, None

    @staticmethod
    def _threshold_and_support(input, dim=-1):
        input_srt, _ = torch.sort(input, descending=True, dim=dim)
        input_cumsum = input_srt.cumsum(dim) - 1
        rhos = _make_ix_like(input, dim)
        support = rhos * input_srt > input_cumsum

        support_size = support.sum(dim=dim).unsqueeze(dim)
        tau = input_cumsum.gather(dim, support_size - 1)
        tau /= support_size.to(input.dtype)
        return tau, support_size


class Sparsemax(nn.Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return SparsemaxFunction.apply(input, self.dim)


def initialize_non_glu(module, input_dim, output_dim):
    gain_value = math.sqrt((input_dim + output_dim) / math.sqrt(4 * input_dim))
    nn.init.xavier_normal_(module.weight, gain=gain_value)


def initialize_glu(module, input_dim, output_dim):
    gain_value = math.sqrt((input_dim + output_dim) / math.sqrt(input_dim))
    nn.init.xavier_normal_(module.weight, gain=gain_value)


class GBN(nn.Module):
    """Ghost Batch Normalization: batch norm over virtual batches (Hoffer et al., 2017)."""

    def __init__(self, input_dim, virtual_batch_size=64, momentum=0.02):
        super().__init__()
        self.virtual_batch_size = virtual_batch_size
        self.bn = nn.BatchNorm1d(input_dim, momentum=momentum)

    def forward(self, x):
        chunks = x.chunk(int(math.ceil(x.shape[0] / self.virtual_batch_size)), 0)
        res = [self.bn(x_) for x_ in chunks]
        return torch.cat(res, dim=0)


class GLU_Layer(nn.Module):
    def __init__(self, input_dim, output_dim, fc=None, virtual_batch_size=64, momentum=0.02):
        super().__init__()
        self.output_dim = output_dim
        if fc:
            self.fc = fc
        else:
            self.fc = nn.Linear(input_dim, 2 * output_dim, bias=False)
        initialize_glu(self.fc, input_dim, 2 * output_dim)
        self.bn = GBN(2 * output_dim, virtual_batch_size=virtual_batch_size, momentum=momentum)

    def forward(self, x):
        x = self.fc(x)
        x = self.bn(x)
        out = torch.mul(x[:, : self.output_dim], torch.sigmoid(x[:, self.output_dim :]))
        return out


class GLU_Block(nn.Module):
    """Independent GLU layers, with a residual connection scaled by sqrt(0.5)."""

    def __init__(
        self,
        input_dim,
        output_dim,
        n_glu=2,
        first=False,
        shared_layers=None,
        virtual_batch_size=64,
        momentum=0.02,
    ):
        super().__init__()
        self.first = first
        self.shared_layers = shared_layers
        self.n_glu = n_glu
        self.glu_layers = nn.ModuleList()

        params = {"virtual_batch_size": virtual_batch_size, "momentum": momentum}
        fc = shared_layers[0] if shared_layers else None
        self.glu_layers.append(GLU_Layer(input_dim, output_dim, fc=fc, **params))
        for glu_id in range(1, self.n_glu):
            fc = shared_layers[glu_id] if shared_layers else None
            self.glu_layers.append(GLU_Layer(output_dim, output_dim, fc=fc, **params))

    def forward(self, x):
        scale = math.sqrt(0.5)
        if self.first:  # the first layer of the block has no residual
            x = self.glu_layers[0](x)
            layers_left = range(1, self.n_glu)
        else:
            layers_left = range(self.n_glu)

        for glu_id in layers_left:
            x = torch.add(x, self.glu_layers[glu_id](x))
            x = x * scale
        return x


class FeatTransformer(nn.Module):
    def __init__(
        self,
        input_dim,
        output_dim,
        shared_layers,
        n_glu_independent,
        virtual_batch_size=64,
        momentum=0.02,
    ):
        super().__init__()
        params = {
            "n_glu": n_glu_independent,
            "virtual_batch_size": virtual_batch_size,
            "momentum": momentum,
        }
        self.shared = GLU_Block(
            input_dim,
            output_dim,
            first=True,
            shared_layers=shared_layers,
            n_glu=len(shared_layers),
            virtual_batch_size=virtual_batch_size,
            momentum=momentum,
        )
        self.specifics = GLU_Block(output_dim, output_dim, first=False, **params)

    def forward(self, x):
        x = self.shared(x)
        x = self.specifics(x)
        return x


class AttentiveTransformer(nn.Module):
    def __init__(self, input_dim, group_dim, virtual_batch_size=64, momentum=0.02):
        super().__init__()
        self.fc = nn.Linear(input_dim, group_dim, bias=False)
        initialize_non_glu(self.fc, input_dim, group_dim)
        self.bn = GBN(group_dim, virtual_batch_size=virtual_batch_size, momentum=momentum)
        self.selector = Sparsemax(dim=-1)

    def forward(self, priors, processed_feat):
        x = self.fc(processed_feat)
        x = self.bn(x)
        x = torch.mul(x, priors)
        x = self.selector(x)
        return x


class TabNetEncoder(nn.Module):
    def __init__(
        self,
        input_dim,
        n_d=8,
        n_a=8,
        n_steps=3,
        gamma=1.3,
        n_independent=2,
        n_shared=2,
        epsilon=1e-15,
        virtual_batch_size=64,
        momentum=0.02,
    ):
        super().__init__()
        self.input_dim = input_dim
        self.n_d = n_d
        self.n_a = n_a
        self.n_steps = n_steps
        self.gamma = gamma
        self.epsilon = epsilon
        self.initial_bn = nn.BatchNorm1d(input_dim, momentum=0.01)

        shared_feat_transform = nn.ModuleList()
        for i in range(n_shared):
            if i == 0:
                shared_feat_transform.append(nn.Linear(input_dim, 2 * (n_d + n_a), bias=False))
            else:
                shared_feat_transform.append(nn.Linear(n_d + n_a, 2 * (n_d + n_a), bias=False))

        params = {"virtual_batch_size": virtual_batch_size, "momentum": momentum}
        self.initial_splitter = FeatTransformer(
            input_dim, n_d + n_a, shared_feat_transform, n_independent, **params
        )
        self.feat_transformers = nn.ModuleList()
        self.att_transformers = nn.ModuleList()
        for _ in range(n_steps):
            self.feat_transformers.append(
                FeatTransformer(
                    input_dim, n_d + n_a, shared_feat_transform, n_independent, **params
                )
            )
            self.att_transformers.append(AttentiveTransformer(n_a, input_dim, **params))

    def forward(self, x):
        x = self.initial_bn(x)
        prior = torch.ones(x.shape, device=x.device)
        M_loss = 0
        att = self.initial_splitter(x)[:, self.n_d :]
        steps_output = []
        for step in range(self.n_steps):
            M = self.att_transformers[step](prior, att)
            M_loss += torch.mean(torch.sum(torch.mul(M, torch.log(M + self.epsilon)), dim=1))
            # update prior
            prior = torch.mul(self.gamma - M, prior)
            # output
            masked_x = torch.mul(M, x)
            out = self.feat_transformers[step](masked_x)
            d = nn.ReLU()(out[:, : self.n_d])
            steps_output.append(d)
            # update attention
            att = out[:, self.n_d :]

        M_loss /= self.n_steps
        return steps_output, M_loss

    def forward_masks(self, x):
        x = self.initial_bn(x)
        prior = torch.ones(x.shape, device=x.device)
        M_explain = torch.zeros(x.shape, device=x.device)
        att = self.initial_splitter(x)[:, self.n_d :]
        for step in range(self.n_steps):
            M = self.att_transformers[step](prior, att)
            prior = torch.mul(self.gamma - M, prior)
            masked_x = torch.mul(M, x)
            out = self.feat_transformers[step](masked_x)
            d = nn.ReLU()(out[:, : self.n_d])
            step_importance = torch.sum(d, dim=1)
            M_explain += torch.mul(M, step_importance.unsqueeze(dim=1))
            att = out[:, self.n_d :]
        return M_explain


class EmbeddingGenerator(nn.Module):
    """Replaces the categorical columns by their embeddings, keeps the numeric ones."""

    def __init__(self, input_dim, cat_dims, cat_idxs, cat_emb_dims):
        super().__init__()
        self.post_embed_dim = input_dim + sum(cat_emb_dims) - len(cat_emb_dims)
        self.embeddings = nn.ModuleList(
            [nn.Embedding(n, d) for n, d in zip(cat_dims, cat_emb_dims, strict=True)]
        )
        self.continuous_idx = torch.ones(input_dim, dtype=torch.bool)
        self.continuous_idx[cat_idxs] = 0
        # which original feature each embedded column comes from
        self.origin = []
        for feat_idx in range(input_dim):
            if self.continuous_idx[feat_idx]:
                self.origin.append(feat_idx)
            else:
                self.origin += [feat_idx] * cat_emb_dims[cat_idxs.index(feat_idx)]

    def forward(self, x):
        cols = []
        cat_feat_counter = 0
        for feat_init_idx, is_continuous in enumerate(self.continuous_idx):
            if is_continuous:
                cols.append(x[:, feat_init_idx].float().view(-1, 1))
            else:
                cols.append(self.embeddings[cat_feat_counter](x[:, feat_init_idx].long()))
                cat_feat_counter += 1
        return torch.cat(cols, dim=1)


class TabNet(nn.Module):
    def __init__(self, input_dim, output_dim, cat_idxs, cat_dims, cat_emb_dim=3, **kwargs):
        super().__init__()
        self.embedder = EmbeddingGenerator(
            input_dim, cat_dims, cat_idxs, [cat_emb_dim] * len(cat_idxs)
        )
        self.encoder = TabNetEncoder(self.embedder.post_embed_dim, **kwargs)
        self.final_mapping = nn.Linear(self.encoder.n_d, output_dim, bias=False)
        initialize_non_glu(self.final_mapping, self.encoder.n_d, output_dim)

    def forward(self, x):
        x = self.embedder(x)
        steps_output, M_loss = self.encoder(x)
        res = torch.sum(torch.stack(steps_output, dim=0), dim=0)
        return self.final_mapping(res), M_loss

    def forward_masks(self, x):
        return self.encoder.forward_masks(self.embedder(x))


@torch.no_grad()
def predict(model, x, batch_size=1024):
    model.eval()
    outputs = [model(x[i : i + batch_size])[0] for i in range(0, len(x), batch_size)]
    return torch.cat(outputs).argmax(dim=1)


@torch.no_grad()
def feature_importances(model, x, input_dim, batch_size=1024):
    model.eval()
    m_explain = torch.cat(
        [model.forward_masks(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )
    sums = m_explain.sum(dim=0)
    importances = torch.zeros(input_dim).index_add_(0, torch.tensor(model.embedder.origin), sums)
    return importances / importances.sum()


def main():
    parser = argparse.ArgumentParser(description="TabNet on generated tabular data")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--virtual-batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--n-steps", type=int, default=3)
    parser.add_argument("--gamma", type=float, default=1.3)
    parser.add_argument("--lambda-sparse", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, y = make_data(16_000, g)
    x_train, y_train = x[:12_000], y[:12_000]
    x_valid, y_valid = x[12_000:14_000], y[12_000:14_000]
    x_test, y_test = x[14_000:], y[14_000:]
    input_dim = x.shape[1]

    model = TabNet(
        input_dim,
        3,
        CAT_IDXS,
        CAT_DIMS,
        n_d=8,
        n_a=8,
        n_steps=args.n_steps,
        gamma=args.gamma,
        virtual_batch_size=args.virtual_batch_size,
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.9)

    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train))
        total, n = 0.0, 0
        for i in range(0, len(x_train), args.batch_size):
            idx = order[i : i + args.batch_size]
            output, M_loss = model(x_train[idx])
            loss = criterion(output, y_train[idx])
            loss = loss - args.lambda_sparse * M_loss

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            n += len(idx)
        scheduler.step()

        if epoch % 5 == 0:
            valid_acc = (predict(model, x_valid) == y_valid).float().mean().item()
            print(f"epoch {epoch:3d}  loss {total / n:.4f}  valid accuracy {valid_acc:.4f}")

    test_acc = (predict(model, x_test) == y_test).float().mean().item()
    majority = (y_test == torch.bincount(y_train).argmax()).float().mean().item()
    importances = feature_importances(model, x_test, input_dim)
    mass = importances[INFORMATIVE].sum().item()
    print(f"final: test accuracy {test_acc:.4f}  (majority class: {majority:.4f})")
    print(
        f"final: feature-importance mass on the {len(INFORMATIVE)} informative features "
        f"{mass:.3f}  (uniform: {len(INFORMATIVE) / input_dim:.3f})"
    )


if __name__ == "__main__":
    main()
