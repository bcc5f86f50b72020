"""Time the two kinds of model pass iGOS++ is made of, per memory format, precision and batch size.

Every iteration of iGOS++ sends ``n_terms x S`` path images through the model with an input
gradient (the direction) and ``trials x n_terms x S`` without one (the line search). This
script measures, for one model, the milliseconds per image of

* ``forward``: a forward pass under ``torch.inference_mode`` (what a line-search trial costs);
* ``forward+grad``: a forward pass and the gradient of the summed class scores with respect to
  the input (what the direction costs);

for every combination of

* memory format: ``contiguous`` (NCHW, PyTorch's default), ``channels_last`` (NHWC) applied to
  the input and to a *copy* of the model's weights (the caller's model is never changed), and
  ``cl_input_only`` (NHWC input, the model's weights as they are);
* precision: ``fp32`` and ``bf16`` (autocast; only where the device supports it);
* batch size: ``--batch-sizes``.

and the largest difference of each variant's outputs and input gradients from the fp32 contiguous
reference (on the same random images), so that an "exact" speed-up can be told from one that
changes the numbers. Timings are medians of ``--repeats`` runs after one warm-up, measured side by
side in one process, interleaved variant by variant, so that the ratios share the machine's state.

Usage::

    python benchmarks/bench_passes.py                          # EfficientNet-Lite0, CPU, 2 threads
    python benchmarks/bench_passes.py --device cuda --batch-sizes 16,64,256
    python benchmarks/bench_passes.py --model timm:vit_tiny_patch16_224 --batch-sizes 8

Results are printed as a table and written (atomically) as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
from common import device_name

import igospp
from igospp.storage import write_json

# name: (memory format of the input, memory format of the weights)
FORMATS = {"contiguous": (torch.contiguous_format, torch.contiguous_format),
           "channels_last": (torch.channels_last, torch.channels_last),
           "cl_input_only": (torch.channels_last, torch.contiguous_format)}



def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)



def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: CUDA with bf16 support, or a CPU with AVX-512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def run_pass(model: torch.nn.Module, x: torch.Tensor, kind: str,
             precision: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass of ``kind`` (``"forward"`` or ``"forward+grad"``): the outputs (and the input gradient)."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    if kind == "forward":
        with torch.inference_mode(), autocast:
            return model(x).float(), None
    x = x.detach().requires_grad_(True)
    with autocast:
        out = model(x).float()
    top = out.detach().argmax(dim=1)
    (grad,) = torch.autograd.grad(out.gather(1, top[:, None]).sum(), x)
    return out.detach(), grad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet_lite0", help="a name igospp.load_model knows")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", default="8,16,32")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per variant (median reported)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_passes.json"))
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        ap.error(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if min(batch_sizes) < 1:
        ap.error(f"--batch-sizes must be positive, got {args.batch_sizes!r}")

    torch.set_num_threads(args.threads)
    bundle = igospp.load_model(args.model, device=args.device)
    device = bundle.device
    cl_model = copy.deepcopy(bundle.model).to(memory_format=torch.channels_last)
    models = {name: cl_model if weights == torch.channels_last else bundle.model
              for name, (_, weights) in FORMATS.items()}
    precisions = ["fp32"] + (["bf16"] if bf16_supported(device) else [])
    generator = torch.Generator(device="cpu").manual_seed(0)
    meta = dict(model=args.model, device=device_name(device), torch=torch.__version__,
                python=sys.version.split()[0], repeats=args.repeats)
    print(f"# {args.model} on {meta['device']}; torch {torch.__version__}; ms per image, median of {args.repeats}")
    header = (f"{'pass':<13} {'batch':>5} {'format':<14} {'precision':<9} {'ms/image':>9} {'ratio':>6} "
              f"{'max |diff|':>11}")
    print(header)
    print("-" * len(header))
    rows = []
    for kind in ("forward", "forward+grad"):
        for batch in batch_sizes:
            x = torch.randn(batch, 3, *bundle.input_size, generator=generator).to(device)
            variants = [(fmt, prec) for fmt in FORMATS for prec in precisions]
            reference = run_pass(models["contiguous"], x, kind, "fp32")
            inputs = {fmt: x.contiguous(memory_format=FORMATS[fmt][0]) for fmt in FORMATS}
            times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
            for fmt, prec in variants:  # warm-up
                run_pass(models[fmt], inputs[fmt], kind, prec)
            for _ in range(args.repeats):
                for fmt, prec in variants:
                    _sync(device)
                    start = time.perf_counter()
                    run_pass(models[fmt], inputs[fmt], kind, prec)
                    _sync(device)
                    times[(fmt, prec)].append(time.perf_counter() - start)
            base = None
            for fmt, prec in variants:
                ms = sorted(times[(fmt, prec)])[args.repeats // 2] / batch * 1000
                base = ms if base is None else base
                out, grad = run_pass(models[fmt], inputs[fmt], kind, prec)
                diff = (out - reference[0]).abs().max().item()
                if grad is not None:
                    diff = max(diff, (grad - reference[1]).abs().max().item())
                rows.append(dict(pass_kind=kind, batch=batch, memory_format=fmt, precision=prec, ms_per_image=ms,
                                 ratio_to_fp32_contiguous=base / ms, max_abs_diff=diff))
                print(f"{kind:<13} {batch:>5} {fmt:<14} {prec:<9} {ms:>9.1f} {base / ms:>6.2f} {diff:>11.2e}",
                      flush=True)
                write_json(args.out, dict(meta, rows=rows))
    print(f"# written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
