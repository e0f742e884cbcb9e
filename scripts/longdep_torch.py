#!/usr/bin/python3
"""longdep_torch.py - the PyTorch peer of tests/bench_longdep.c: the recall task of
models/longdep.h with nn.RNN (tanh), nn.LSTM and nn.GRU, the same budget.

The task: sequences of L+1 steps, two inputs per step (a value uniform in [-1, 1] and a
marker, 1 at step 0 only); the target is the marked value, v_0; only the output at the
last step counts. Training: `steps` batches of `batch` fresh sequences, MSE of the last
step, backward through the whole sequence (plain BPTT from a zero state), gradient-norm
clipping (clip_grad_norm_), Adam. Then the MSE on `eval` held-out sequences against
predicting 0 on the same ones. The numbers differ from anomalyd's (another generator),
the distributions do not.

Initialisation: PyTorch's own (every weight and bias uniform in +-1/sqrt(H)), as users of
nn.LSTM get it; --forget-bias B sets the LSTM's forget-gate bias to B (b_ih = B,
b_hh = 0 for the f rows) as models/net.h's ad_net_init_with does.

Prints one line per kind and lag, in bench_longdep's format:
  torch kind=K L=N H=N fb=X|torch clip=X seed=N mse=.. trivial=.. ratio=.. clipped=..
        grad_max=.. seconds=..

Usage: /usr/bin/python3 scripts/longdep_torch.py [--lags 5,10,20,50,100,200]
       [--kinds rnn,lstm,gru] [--hidden 32] [--steps N] [--batch 32] [--lr 0.005]
       [--clip 1] [--eval 1024] [--seed 1] [--forget-bias B] [--quick]
Needs Debian's python3-torch (scripts/setup --torch). One thread.
"""
import argparse
import sys
import time

import torch


class Net(torch.nn.Module):
    def __init__(self, kind, hidden, forget_bias):
        super().__init__()
        cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
        self.rnn = cls(2, hidden)  # (T, B, D) in
        self.head = torch.nn.Linear(hidden, 1)
        if kind == "lstm" and forget_bias is not None:
            with torch.no_grad():  # gate order i, f, g, o
                self.rnn.bias_ih_l0[hidden:2 * hidden] = forget_bias
                self.rnn.bias_hh_l0[hidden:2 * hidden] = 0.0

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1]).squeeze(-1)  # the last step's output (B)


def batch(gen, lag, n):
    """n sequences of lag+1 steps: x (T, n, 2), target (n)."""
    v = torch.rand(lag + 1, n, generator=gen) * 2.0 - 1.0
    m = torch.zeros(lag + 1, n)
    m[0] = 1.0
    return torch.stack([v, m], dim=2), v[0].clone()


def run(kind, lag, a):
    torch.manual_seed(a.seed)
    net = Net(kind, a.hidden, a.forget_bias)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(a.seed)
    clipped, grad_max = 0, 0.0
    t0 = time.process_time()
    for _ in range(a.steps):
        x, y = batch(gen, lag, a.batch)
        loss = torch.mean((net(x) - y) ** 2)
        opt.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(net.parameters(),
                                                    a.clip if a.clip > 0 else float("inf")))
        clipped += a.clip > 0 and norm > a.clip
        grad_max = max(grad_max, norm)
        opt.step()
    seconds = time.process_time() - t0
    egen = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        x, y = batch(egen, lag, a.eval)
        mse = float(torch.mean((net(x) - y) ** 2))
        trivial = float(torch.mean(y ** 2))
    fb = "torch" if a.forget_bias is None or kind != "lstm" else f"{a.forget_bias:g}"
    print(f"torch kind={kind} L={lag} H={a.hidden} fb={fb} clip={a.clip:g} seed={a.seed} "
          f"mse={mse:.5f} trivial={trivial:.5f} ratio={mse / trivial:.4f} "
          f"clipped={clipped / max(a.steps, 1):.3f} grad_max={grad_max:.3g} "
          f"seconds={seconds:.1f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lags", default="5,10,20,50,100,200")
    p.add_argument("--kinds", default="rnn,lstm,gru")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--eval", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--forget-bias", type=float, default=None)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.steps is None:
        a.steps = 100 if a.quick else 1000
    torch.set_num_threads(1)
    for kind in a.kinds.split(","):
        if kind not in ("rnn", "lstm", "gru"):
            sys.exit(f"longdep_torch.py: unknown kind {kind!r}")
        for lag in (int(s) for s in a.lags.split(",")):
            run(kind, lag, a)


if __name__ == "__main__":
    main()
