"""Where ARC's training time goes: one adapter's forward + backward, taken apart.

    python benchmarks/arc_profile.py            # ViT-S video stream: 4 clips x 784 tokens, D=384, r=50
    python benchmarks/arc_profile.py --quick    # small shapes, a smoke run

Times, side by side in interleaved rounds (process CPU time, 1 thread, median):

- ``adapter``: adaptcli's ``ArcAdapter`` around a frozen LayerNorm (the bias as one more row of the up
  projection, residual add inside ``addmm``), forward + backward;
- ``shift``: the earlier form, the bias folded into the norm's shift (``LN(x; w, beta + b)``), which
  CUDA's LayerNorm backward breaks over > 65,536 rows (docs/performance.md); kept to compare speed;
- ``formula``: the same adapter written as the paper's formula ``h + dropout(h U S) U^T + b``;
- ``norm``: the LayerNorm alone (what a model without ARC pays anyway);
- ``matmuls``: the six rank-r matmuls of forward + backward alone (two forward, four backward:
  the input gradient through both, the weight gradient of both uses of U);
- ``dropout``: drawing and applying the dropout mask on the rank-r activation.

``adapter - norm`` is what ARC adds per LayerNorm; ``matmuls`` is the part no formulation removes.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from measure import time_interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4 * 784, help="batch x tokens")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--rank", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.rounds = 256, 3
    torch.set_num_threads(1)

    from adaptcli.methods.arc.method import ArcAdapter, ArcProjection

    torch.manual_seed(0)
    n, d, r = args.tokens, args.dim, args.rank
    norm = nn.LayerNorm(d, eps=1e-6).requires_grad_(False)  # frozen, as in every adapted model
    adapter = ArcAdapter(norm, ArcProjection(d, r), args.dropout, "xavier")
    with torch.no_grad():
        adapter.bias.normal_(0, 0.1)
    x = torch.randn(n, d, requires_grad=True)
    grad = torch.randn(n, d)
    u, s, b = adapter.projection.weight, adapter.scale, adapter.bias
    z = torch.randn(n, r)

    def formula() -> torch.Tensor:
        h = norm(x)
        return h + nn.functional.dropout(h @ (u * s), args.dropout, True) @ u.T + b

    def shift() -> torch.Tensor:
        down = u * s
        hb = nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias + b, norm.eps)
        flat = hb.reshape(-1, d)
        z = nn.functional.dropout(torch.addmm(-(b @ down), flat, down), args.dropout, True)
        return torch.addmm(flat, z, u.T.contiguous()).view(hb.shape)

    def matmuls() -> None:
        h = x.detach()
        down, up = h @ u, z @ u.T  # forward
        grad @ u, z.T @ grad, h.T @ z, z @ u.T  # backward: input and weight gradients

    def dropout() -> None:
        nn.functional.dropout(z, args.dropout, True)

    def backward_of(fn):
        return lambda: fn().backward(grad)

    steps = {
        "adapter": backward_of(lambda: adapter(x)),
        "shift": backward_of(shift),
        "formula": backward_of(formula),
        "norm": backward_of(lambda: norm(x)),
        "matmuls": matmuls,
        "dropout": dropout,
    }
    torch.manual_seed(1)
    fused_out = adapter(x)
    torch.manual_seed(1)
    plain_out = formula()
    difference = (fused_out - plain_out).abs().max().item()
    _, cpu = time_interleaved(steps, args.rounds, 2, alternate=True)
    ms = {name: statistics.median(times) * 1000 for name, times in cpu.items()}
    flops = 6 * 2 * n * d * r
    print(f"tokens {n}, D {d}, r {r}, dropout {args.dropout}; fused vs formula output: max |diff| {difference:.1e}")
    print("| part | CPU ms | note |")
    print("| --- | ---: | --- |")
    print(f"| adapter (fused, adaptcli) | {ms['adapter']:.2f} | forward + backward, LayerNorm included |")
    print(f"| earlier form (b on the norm's shift) | {ms['shift']:.2f} | {ms['shift'] / ms['adapter']:.3f}x the fused form |")
    print(f"| formula (h + dropout(hUS)U^T + b) | {ms['formula']:.2f} | {ms['formula'] / ms['adapter']:.2f}x the fused form |")
    print(f"| norm alone | {ms['norm']:.2f} | paid without ARC too |")
    print(f"| ARC's own cost (adapter - norm) | {ms['adapter'] - ms['norm']:.2f} | |")
    print(f"| six rank-{r} matmuls | {ms['matmuls']:.2f} | {flops / 1e6:.0f} MFLOP, "
          f"{flops / ms['matmuls'] / 1e6:.0f} GFLOP/s; {ms['matmuls'] / (ms['adapter'] - ms['norm']):.0%} of ARC's own cost |")
    print(f"| dropout mask on the rank-{r} activation | {ms['dropout']:.2f} | |")


if __name__ == "__main__":
    main()
