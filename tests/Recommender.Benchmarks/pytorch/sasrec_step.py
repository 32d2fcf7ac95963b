"""The PyTorch reference for the training-vs-pytorch benchmark: SASRec as pmixer/SASRec.pytorch writes it.

The model, loss and optimiser follow that port (the public PyTorch SASRec most papers compare against):
item and position embeddings, the item embedding scaled by sqrt(d), padding masked after every block,
pre-norm queries over un-normalised keys and values, a Conv1d point-wise feed-forward, BCE against one
uniform negative per position, Adam(lr, betas 0.9/0.98). Batches are drawn before the clock starts, as the
port's sampler processes do beside training; the clock covers zero_grad, forward, loss, backward and step.

Prints one JSON object: the milliseconds of every measured step, and what ran (torch, threads, BLAS).
"""
import argparse
import json
import os
import time

import numpy as np
import torch


class PointWiseFeedForward(torch.nn.Module):
    def __init__(self, hidden, dropout):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(hidden, hidden, kernel_size=1)
        self.dropout1 = torch.nn.Dropout(p=dropout)
        self.relu = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv1d(hidden, hidden, kernel_size=1)
        self.dropout2 = torch.nn.Dropout(p=dropout)

    def forward(self, inputs):
        outputs = self.dropout2(self.conv2(self.relu(self.dropout1(self.conv1(inputs.transpose(-1, -2))))))
        return outputs.transpose(-1, -2) + inputs


class SASRec(torch.nn.Module):
    def __init__(self, items, hidden, blocks, heads, maxlen, dropout):
        super().__init__()
        self.hidden = hidden
        self.item_emb = torch.nn.Embedding(items + 1, hidden, padding_idx=0)
        self.pos_emb = torch.nn.Embedding(maxlen + 1, hidden, padding_idx=0)
        self.emb_dropout = torch.nn.Dropout(p=dropout)
        self.attention_layernorms = torch.nn.ModuleList([torch.nn.LayerNorm(hidden, eps=1e-8) for _ in range(blocks)])
        self.attention_layers = torch.nn.ModuleList([torch.nn.MultiheadAttention(hidden, heads, dropout) for _ in range(blocks)])
        self.forward_layernorms = torch.nn.ModuleList([torch.nn.LayerNorm(hidden, eps=1e-8) for _ in range(blocks)])
        self.forward_layers = torch.nn.ModuleList([PointWiseFeedForward(hidden, dropout) for _ in range(blocks)])
        self.last_layernorm = torch.nn.LayerNorm(hidden, eps=1e-8)

    def log2feats(self, log_seqs):
        seqs = self.item_emb(log_seqs) * self.hidden ** 0.5
        positions = torch.arange(1, log_seqs.shape[1] + 1).unsqueeze(0).repeat(log_seqs.shape[0], 1)
        positions = positions * (log_seqs != 0)
        seqs = self.emb_dropout(seqs + self.pos_emb(positions))
        timeline_mask = (log_seqs == 0).unsqueeze(-1)
        seqs = seqs * ~timeline_mask
        length = seqs.shape[1]
        attention_mask = ~torch.tril(torch.ones((length, length), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = seqs.transpose(0, 1)
            q = self.attention_layernorms[i](seqs)
            mha, _ = self.attention_layers[i](q, seqs, seqs, attn_mask=attention_mask)
            seqs = (q + mha).transpose(0, 1)
            seqs = self.forward_layers[i](self.forward_layernorms[i](seqs))
            seqs = seqs * ~timeline_mask
        return self.last_layernorm(seqs)

    def forward(self, log_seqs, pos_seqs, neg_seqs):
        feats = self.log2feats(log_seqs)
        return (feats * self.item_emb(pos_seqs)).sum(-1), (feats * self.item_emb(neg_seqs)).sum(-1)


def read_sequences(path):
    """SASRec's format: one 'user item' line per interaction, in time order per user."""
    sequences = {}
    items = 0
    with open(path) as f:
        for line in f:
            user, item = line.split()
            sequences.setdefault(user, []).append(int(item))
            items = max(items, int(item))
    # Leave-one-out: the last two items of each user are validation and test, as in the product's split; users
    # with at least two training items, as the product's side of the benchmark draws.
    return [s[:-2] for s in sequences.values() if len(s) >= 4], items


def draw_batch(rng, train, items, batch, maxlen):
    """The port's sampler: a user, the last maxlen+1 items of their training sequence, a negative per position."""
    seq = np.zeros((batch, maxlen), dtype=np.int64)
    pos = np.zeros((batch, maxlen), dtype=np.int64)
    neg = np.zeros((batch, maxlen), dtype=np.int64)
    for b in range(batch):
        history = train[rng.integers(len(train))]
        window = history[-(maxlen + 1):]
        n = len(window) - 1
        seq[b, maxlen - n:] = window[:-1]
        pos[b, maxlen - n:] = window[1:]
        seen = set(history)
        for j in range(maxlen - n, maxlen):
            candidate = int(rng.integers(1, items + 1))
            while candidate in seen:
                candidate = int(rng.integers(1, items + 1))
            neg[b, j] = candidate
    return torch.from_numpy(seq), torch.from_numpy(pos), torch.from_numpy(neg)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--maxlen", type=int, default=50)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, items = read_sequences(args.data)
    model = SASRec(items, args.hidden, args.blocks, args.heads, args.maxlen, args.dropout)
    for _, p in model.named_parameters():
        try:
            torch.nn.init.xavier_normal_(p.data)
        except ValueError:
            pass  # biases and other one-dimensional parameters keep their initialisation, as in the port
    model.train()
    bce = torch.nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))

    batches = [draw_batch(rng, train, items, args.batch, args.maxlen) for _ in range(args.warmup + args.steps)]
    times = []
    losses = []
    for step, (seq, pos, neg) in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad()
        pos_logits, neg_logits = model(seq, pos, neg)
        valid = torch.where(pos != 0)
        loss = bce(pos_logits[valid], torch.ones_like(pos_logits[valid])) + bce(neg_logits[valid], torch.zeros_like(neg_logits[valid]))
        loss.backward()
        optimizer.step()
        elapsed = (time.perf_counter() - start) * 1000
        if step >= args.warmup:
            times.append(elapsed)
            losses.append(loss.item())

    blas = os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas,
        "items": items,
        "users": len(train),
        "step_ms": [round(t, 2) for t in times],
        "last_loss": round(losses[-1], 4),
    }))


if __name__ == "__main__":
    main()
