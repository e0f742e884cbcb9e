#!/usr/bin/python3
"""bench_torch.py - the PyTorch peer of tests/bench_models.c: the same figures for
nn.RNN (tanh Elman), nn.LSTM and nn.GRU at H = 16, 32, 64 with D = 1 and a Linear head
to O = 1, on one thread.

    /usr/bin/python3 scripts/bench_torch.py [--quick] [--streams N]

Prints the torch version and thread count, then one line per kind and hidden size:

    torch kind=K H=N step_ns=.. streams1000_sps=.. bptt_tps=.. bytes=..

  - step_ns: ns per streaming step of one stream: nn.{RNN,LSTM,GRU}Cell and the head
    under torch.no_grad(), the state carried from step to step (inputs pre-made tensors);
  - streams1000_sps: samples/s stepping 1000 streams that each own their weights (1000
    separate cell and head modules), visited round-robin one sample each; a bounded
    number of rounds is timed;
  - bptt_tps: BPTT timesteps/s at T=64, B=32: nn.{RNN,LSTM,GRU} + head forward, MSE
    loss, backward, clip_grad_norm_(1.0), Adam step; timesteps = T*B per iteration;
  - bytes: parameter count * 4 of one network (cell + head; PyTorch keeps two bias
    vectors, bias_ih and bias_hh, where anomalyd keeps one).

--peer N runs only the end-to-end peer of scripts/bench_ingest instead: N streams that
each own an nn.LSTMCell(D, H) and nn.Linear(H, 1) (--peer-hidden, default 32;
--peer-inputs, default 5: the value and the daemon's default tod and dow features),
visited round-robin one sample each for --peer-seconds of thread CPU time, inputs
pre-made (no parsing, no normalising: optimistic for PyTorch). Prints

    torch-peer kind=lstm H=32 D=5 streams=N sps=.. build_s=.. bytes_per_stream=..

with bytes_per_stream the growth of the process's RSS over building the N streams
(parameters, their gradients' absence, module objects) divided by N.

Kinds are named as anomalyd's ad_cell_name() so the lines join bench_models' output:
elman, lstm, and gru_torch (nn.GRU's equations are exactly AD_CELL_GRU_TORCH's).
Times are this thread's CPU time (time.thread_time_ns), as bench_models measures, so a
busy machine descheduling the process does not count against it.
"""

import argparse
import signal
import sys
import time

import torch
from torch import nn

D, O = 1, 1
HIDDEN = (16, 32, 64)
T_BPTT, B_BPTT = 64, 32

KINDS = (
    # name, sequence module, cell module, carries c
    ("elman", nn.RNN, nn.RNNCell, False),
    ("lstm", nn.LSTM, nn.LSTMCell, True),
    ("gru_torch", nn.GRU, nn.GRUCell, False),
)


def now():
    return time.thread_time_ns() * 1e-9


def bench_step(cell_cls, has_c, H, min_s):
    """ns per step of one stream, state carried."""
    torch.manual_seed(1)
    cell, head = cell_cls(D, H), nn.Linear(H, O)
    xs = [torch.randn(1, D) for _ in range(256)]
    h = torch.zeros(1, H)
    state = (h, torch.zeros(1, H)) if has_c else h
    chunk, iters = 1000, 0
    with torch.no_grad():
        for i in range(200):  # warm up
            state = cell(xs[i & 255], state)
            y = head(state[0] if has_c else state)
        t0 = now()
        while True:
            for i in range(chunk):
                state = cell(xs[i & 255], state)
                y = head(state[0] if has_c else state)
            iters += chunk
            el = now() - t0
            if el >= min_s:
                break
    assert torch.isfinite(y).all()
    return 1e9 * el / iters


def bench_streams(cell_cls, has_c, H, nstreams, min_s, max_rounds):
    """samples/s over nstreams streams with their own weights, round-robin."""
    torch.manual_seed(2)
    cells = [cell_cls(D, H) for _ in range(nstreams)]
    heads = [nn.Linear(H, O) for _ in range(nstreams)]
    states = []
    for _ in range(nstreams):
        h = torch.zeros(1, H)
        states.append((h, torch.zeros(1, H)) if has_c else h)
    xs = [torch.randn(1, D) for _ in range(nstreams)]
    rounds = 0
    with torch.no_grad():
        for i in range(nstreams):  # one warm-up round
            states[i] = cells[i](xs[i], states[i])
        t0 = now()
        while True:
            for i in range(nstreams):
                st = cells[i](xs[i], states[i])
                states[i] = st
                y = heads[i](st[0] if has_c else st)
            rounds += 1
            el = now() - t0
            if el >= min_s or rounds >= max_rounds:
                break
    assert torch.isfinite(y).all()
    return rounds * nstreams / el


class SeqNet(nn.Module):
    def __init__(self, seq_cls, H):
        super().__init__()
        self.rnn = seq_cls(input_size=D, hidden_size=H, num_layers=1)
        self.head = nn.Linear(H, O)

    def forward(self, x):
        hs, _ = self.rnn(x)  # (T, B, H)
        return self.head(hs)  # (T, B, O)


def bench_bptt(seq_cls, H, min_s):
    """Timesteps/s of truncated BPTT training at T=64, B=32 with Adam."""
    torch.manual_seed(3)
    net = SeqNet(seq_cls, H)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(T_BPTT, B_BPTT, D)
    target = torch.randn(T_BPTT, B_BPTT, O)

    def iteration():
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), target)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(2):  # warm up
        iteration()
    iters, t0 = 0, now()
    while True:
        loss = iteration()
        iters += 1
        el = now() - t0
        if (el >= min_s and iters >= 3) or el >= 10 * min_s:
            break
    assert torch.isfinite(loss)
    return T_BPTT * B_BPTT * iters / el


def param_bytes(seq_cls, H):
    net = SeqNet(seq_cls, H)
    return 4 * sum(p.numel() for p in net.parameters())


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peer(nstreams, H, D_in, seconds):
    """The end-to-end peer: samples/s of nstreams own-weight LSTM streams."""
    torch.manual_seed(4)
    rss0, t0 = rss_bytes(), time.perf_counter()
    with torch.no_grad():
        cells = [nn.LSTMCell(D_in, H) for _ in range(nstreams)]
        heads = [nn.Linear(H, O) for _ in range(nstreams)]
        states = [(torch.zeros(1, H), torch.zeros(1, H)) for _ in range(nstreams)]
        xs = [torch.randn(1, D_in) for _ in range(nstreams)]
    build = time.perf_counter() - t0
    per_stream = (rss_bytes() - rss0) / nstreams
    n, y = 0, None
    with torch.no_grad():
        t0 = now()
        while True:
            for i in range(nstreams):
                st = cells[i](xs[i], states[i])
                states[i] = st
                y = heads[i](st[0])
                n += 1
                if (n & 1023) == 0 and now() - t0 >= seconds:
                    break
            else:
                continue
            break
        el = now() - t0
    assert torch.isfinite(y).all()
    print("torch-peer kind=lstm H=%d D=%d streams=%d sps=%.0f build_s=%.1f bytes_per_stream=%.0f"
          % (H, D_in, nstreams, n / el, build, per_stream))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter timings (about 4x)")
    ap.add_argument("--streams", type=int, default=1000, help="streams for streams_sps")
    ap.add_argument("--peer", type=int, default=0, metavar="N",
                    help="only the end-to-end peer of scripts/bench_ingest, N streams")
    ap.add_argument("--peer-hidden", type=int, default=32)
    ap.add_argument("--peer-inputs", type=int, default=5)
    ap.add_argument("--peer-seconds", type=float, default=3.0)
    args = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head

    torch.set_num_threads(1)
    if args.peer > 0:
        print("# torch version=%s threads=%d; times are thread CPU time"
              % (torch.__version__, torch.get_num_threads()))
        peer(args.peer, args.peer_hidden, args.peer_inputs, args.peer_seconds)
        return
    min_s = 0.1 if args.quick else 0.5
    max_rounds = 5 if args.quick else 20
    print("# torch version=%s threads=%d interop_threads=%d D=%d O=%d streams=%d "
          "BPTT T=%d B=%d Adam; times are thread CPU time%s"
          % (torch.__version__, torch.get_num_threads(), torch.get_num_interop_threads(),
             D, O, args.streams, T_BPTT, B_BPTT, " (quick)" if args.quick else ""))
    sys.stdout.flush()
    for name, seq_cls, cell_cls, has_c in KINDS:
        for H in HIDDEN:
            step = bench_step(cell_cls, has_c, H, min_s)
            sps = bench_streams(cell_cls, has_c, H, args.streams, min_s, max_rounds)
            tps = bench_bptt(seq_cls, H, min_s)
            print("torch kind=%s H=%d step_ns=%.1f streams%d_sps=%.0f bptt_tps=%.0f bytes=%d"
                  % (name, H, step, args.streams, sps, tps, param_bytes(seq_cls, H)))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
