"""Per-kernel time floor of back-to-back tiny kernels on one GPU, eager and replayed as a CUDA graph.

Informs `Efficiency.kernel_launch_us`: the time a serving step pays per kernel when kernels are
tiny (decode at small batch). Prints one line per case and, with --json, the figures as JSON.

    python3 bench/gpu/launch_floor.py [--kernels 2000] [--json]
"""

from __future__ import annotations

import argparse
import json

from decode_step import positive_int, require_cuda, time_ms  # same folder: this script runs as bench/gpu/launch_floor.py


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernels", type=positive_int, default=2000, help="kernels per timed chain")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch = require_cuda()

    x = torch.zeros(1024, device="cuda")
    n = args.kernels

    def chain():
        for _ in range(n):
            x.add_(1.0)

    chain()
    eager_us = time_ms(torch, chain, 7) * 1e3 / n
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        chain()
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        chain()
    g.replay()
    graph_us = time_ms(torch, g.replay, 7) * 1e3 / n
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "kernels": n,
           "eager_us_per_kernel": round(eager_us, 3), "graph_us_per_kernel": round(graph_us, 3)}
    print(f"{res['device']}: eager {eager_us:.2f} us/kernel, CUDA graph {graph_us:.2f} us/kernel ({n} tiny kernels)")
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
