#!/usr/bin/python3
"""gen_fixtures.py - PyTorch reference fixtures for tests/check_torch.c.

Runs nn.LSTM / nn.GRU (1 and 2 layers) with a Linear head on every timestep's top-layer
h, an MSE loss against a random target, and autograd, all in float32 as PyTorch
normally computes, and writes the weights, inputs, outputs, loss and every gradient to
tests/fixtures/torch_{lstm,lstm1,gru,gru1}.bin (D=2, H=5, O=1, T=7, B=3), and
torch_lstm1_o3.bin with a head of O=3 outputs (so that a transposed head shows). The files are committed, so CI needs
no torch; rerun this only to change the cases:

    /usr/bin/python3 scripts/gen_fixtures.py [outdir]

Deterministic: each case seeds torch.manual_seed and runs on one thread.

File format (all little-endian), version 1 (read by tests/fixture.c):

    "ADFX"            4 bytes magic
    u32 version       = 1
    u32 narrays
    narrays times:
        u32 name_len  bytes of the name (1..255)
        name bytes    ASCII, no NUL
        u32 ndim      0..8
        u32 dims[ndim]
        f32 data[prod(dims)]   C (row-major) order of dims, PyTorch's natural layout
    u32 CRC-32        zlib.crc32 of every byte before it

Shapes are carried by the arrays' dims, there are no separate scalars: x is (T, B, D),
weight_hh_l0 is (G*H, H) with G = 4 (LSTM, gates i,f,g,o) or 3 (GRU, gates r,z,n),
head.weight is (O, H), the number of layers is the number of weight_ih_l{k} arrays, and
the loss is a 1-element array of dims (1).

Array names: the module's own parameter names (weight_ih_l{k}, weight_hh_l{k},
bias_ih_l{k}, bias_hh_l{k}, head.weight, head.bias), then x (T, B, D), target (T, B, O),
y (T, B, O), loss (1), and "grad." + name for the gradient of the loss with respect to
every parameter and to x (grad.x, (T, B, D)). Loss = mean over T*B*O of (y - target)^2.
"""

import os
import struct
import sys
import zlib

import torch
from torch import nn

MAGIC = b"ADFX"
VERSION = 1

T, B, D, H = 7, 3, 2, 5


def pack_array(name, t):
    """One array record: name, dims and float32 data in C order."""
    a = t.detach().to(torch.float32).contiguous().cpu().numpy()
    if a.ndim == 0:
        a = a.reshape(1)
    nb = name.encode("ascii")
    assert 0 < len(nb) < 256 and a.ndim <= 8
    out = struct.pack("<I", len(nb)) + nb + struct.pack("<I", a.ndim)
    out += struct.pack("<%dI" % a.ndim, *a.shape)
    return out + a.astype("<f4").tobytes(order="C")


def write_fixture(path, arrays):
    body = MAGIC + struct.pack("<II", VERSION, len(arrays))
    for name, t in arrays:
        body += pack_array(name, t)
    body += struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(body)
    return len(body)


class Net(nn.Module):
    """nn.LSTM / nn.GRU with a Linear head on every timestep (zero initial state)."""

    def __init__(self, rnn_cls, layers, O):
        super().__init__()
        self.rnn = rnn_cls(input_size=D, hidden_size=H, num_layers=layers)
        self.head = nn.Linear(H, O)

    def forward(self, x):
        hs, _ = self.rnn(x)  # (T, B, H), top layer
        return self.head(hs)  # (T, B, O)


def make_case(rnn_cls, layers, O, seed):
    torch.manual_seed(seed)
    net = Net(rnn_cls, layers, O)  # PyTorch's default init: U(-1/sqrt(H), 1/sqrt(H))
    x = torch.randn(T, B, D, dtype=torch.float32).requires_grad_(True)
    target = torch.randn(T, B, O, dtype=torch.float32)

    net.zero_grad()
    y = net(x)
    loss = nn.functional.mse_loss(y, target, reduction="mean")
    loss.backward()

    params = [(n, p) for n, p in net.rnn.named_parameters()]
    params += [("head." + n, p) for n, p in net.head.named_parameters()]
    arrays = [(n, p) for n, p in params]
    arrays += [("x", x), ("target", target), ("y", y), ("loss", loss.reshape(1))]
    arrays += [("grad." + n, p.grad) for n, p in params]
    arrays += [("grad.x", x.grad)]
    for n, a in arrays:
        assert a.dtype == torch.float32, n
    return arrays, float(loss)


CASES = [
    # file, module, layers, O, seed
    ("torch_lstm.bin", nn.LSTM, 2, 1, 1001),
    ("torch_lstm1.bin", nn.LSTM, 1, 1, 1002),
    ("torch_gru.bin", nn.GRU, 2, 1, 2001),
    ("torch_gru1.bin", nn.GRU, 1, 1, 2002),
    ("torch_lstm1_o3.bin", nn.LSTM, 1, 3, 1003),
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures")
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    for fname, cls, layers, O, seed in CASES:
        arrays, loss = make_case(cls, layers, O, seed)
        path = os.path.join(outdir, fname)
        n = write_fixture(path, arrays)
        assert n < 100 * 1024
        print("%-18s %2d arrays %6d bytes  loss=%.6f  (torch %s)"
              % (fname, len(arrays), n, loss, torch.__version__))


if __name__ == "__main__":
    main()
