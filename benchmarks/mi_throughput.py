"""MI throughput: batched Mixup Inference against the base model and a per-image loop.

Same model, same inputs, one run. Prints, per model:
- base_throughput: images/s of plain forwards at the batch size;
- mi_throughput: MI predictions/s (N partners each, batched, chunked by --max-batch);
- loop_throughput: predictions/s of the official code's style (one image, a Python loop over N);
- mi_efficiency = mi_throughput * N / base_throughput (1.0 is the limit: MI needs N forwards);
- speedup_vs_loop = mi_throughput / loop_throughput.
The base and MI timings are taken in interleaved pairs over the same work (the base model runs
N batches, MI one batch of N mixtures per image), and ratios are medians over the pairs, so
that load from other processes hits both sides alike.

    python benchmarks/mi_throughput.py [--batch 64] [--n 30] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse

import torch
from _timing import paired

from mi_bench.data import load_sample
from mi_bench.defenses.mi import MIConfig, MixupInference, reference_mi_loop
from mi_bench.device import set_precision
from mi_bench.models import create_model
from mi_bench.models.zoo import load_classifier


@torch.no_grad()
def bench(name: str, model: torch.nn.Module, args) -> dict:
    device = torch.device(args.device)
    set_precision(device)  # fp32, as evaluation runs
    model = model.to(device).eval()
    test, pool = load_sample("test"), load_sample("train")
    x = test.float_images(0, args.batch).to(device)
    mi = MixupInference(model, pool, MIConfig(mode="ol", n_samples=args.n),
                        torch.Generator().manual_seed(0), max_batch=args.max_batch, output="prob")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def base_n():  # the same number of base forwards as MI needs, at the plain batch size
        for _ in range(args.n):
            model(x)
        sync()

    def batched():
        mi(x)
        sync()

    x_loop = x[: args.loop_images]

    def loop():
        idx, _ = mi.draw(model(x_loop).argmax(1), args.n, "ol")
        reference_mi_loop(mi, x_loop, idx, 0.5)
        sync()

    t_base_n, t_mi, efficiency = paired(base_n, batched, args.repeats)
    t_loop, _, loop_over_mi = paired(loop, batched, max(1, args.repeats // 2))
    return {"model": name, "batch": args.batch, "N": args.n,
            "base_img_s": args.batch * args.n / t_base_n, "mi_pred_s": args.batch / t_mi,
            "loop_pred_s": args.loop_images / t_loop, "mi_efficiency": efficiency,
            "speedup_vs_loop": loop_over_mi * args.batch / args.loop_images}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--loop-images", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default="small-cnn,resnet18")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    rows = []
    for name in args.models.split(","):
        if name == "resnet18":
            model, _ = load_classifier("autoattack-resnet18")
        else:
            torch.manual_seed(0)
            model = create_model(name, 10)
        rows.append(bench(name, model, args))
        r = rows[-1]
        print(f"{r['model']:<10} batch {r['batch']} N {r['N']}: base {r['base_img_s']:.0f} img/s, "
              f"MI {r['mi_pred_s']:.2f} pred/s, loop {r['loop_pred_s']:.2f} pred/s | "
              f"mi_efficiency = {r['mi_efficiency']:.3f}, speedup_vs_loop = "
              f"{r['speedup_vs_loop']:.1f}x", flush=True)


if __name__ == "__main__":
    main()
