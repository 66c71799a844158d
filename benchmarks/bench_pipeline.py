"""A stack end to end against its encoder alone: how close the pipelined driver gets to the encoder's speed.

A 512×512 stack: frame 0 is the CT pair's reference slice, painted; the
other frames are its target slice shifted by a few pixels each. Objects:
``small`` = the CT tumour (< 0.5% of the slice), ``large`` = a disc over 30%
of it; variants natural and medical, k = 1..5, exact EMD. SAM ViT-B with
random weights (speed does not depend on the values).

For each case: the median seconds per segmented frame of
:func:`~napari_p2sam.engine.propagate.propagate` (time between consecutive
results; the reference is built before), with retrieval overlapped in a pool
thread and without, and the median seconds per frame of the encoder alone
on the same frames in batches of the same size. Prints frames/s and the
ratio end to end / encoder (1.00: the run is as fast as its encoder). Also
the process's CPU seconds (all threads) per segmented frame of each, whose
ratio measures the work beyond the encoder whatever else loads the machine.

    python benchmarks/bench_pipeline.py --frames 16 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from bench_engine import CT, large_mask, random_model
from PIL import Image

from napari_p2sam import Settings
from napari_p2sam.engine.embeddings import encode_images
from napari_p2sam.engine.pipeline import PipelineOptions, default_batch_size
from napari_p2sam.engine.propagate import propagate
from napari_p2sam.models.allocator import keep_freed_memory


def ct_stack(count: int) -> np.ndarray:
    """``(count, 512, 512)`` uint8: the reference slice, then the target slice shifted right by 0, 2, 4, ... pixels."""
    reference = np.array(Image.open(CT / "ref_image.png"))
    target = np.array(Image.open(CT / "test_image.png"))
    return np.stack([reference] + [np.roll(target, 2 * i, axis=1) for i in range(count - 1)])


def end_to_end(
    model, frames, mask, settings: Settings, options: PipelineOptions
) -> tuple[list[float], float, set[int]]:
    """Seconds between consecutive segmented frames (from the painted frame 0's result on), CPU seconds per
    segmented frame, and the ks chosen."""
    stamps, cpu, ks = [], [], set()
    for result in propagate(model, frames, {0: mask}, settings, pipeline=options):
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        ks.update(s.k for s in result.segmentations.values())
    return [b - a for a, b in zip(stamps, stamps[1:])], (cpu[-1] - cpu[0]) / (len(cpu) - 1), ks


def encoder_alone(model, frames, batch_size: int) -> tuple[list[float], float]:
    """Seconds per frame of each encoder batch over the target frames (each batch's time divided by its size),
    and CPU seconds per frame."""
    rgbs = [np.repeat(frame[..., None], 3, axis=2) for frame in frames[1:]]
    seconds = []
    cpu_start = time.process_time()
    for start in range(0, len(rgbs), batch_size):
        batch = rgbs[start : start + batch_size]
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        begin = time.perf_counter()
        encode_images(model, batch)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        seconds += [(time.perf_counter() - begin) / len(batch)] * len(batch)
    return seconds, (time.process_time() - cpu_start) / len(rgbs)


def main() -> None:
    keep_freed_memory()  # as the command line and the widget's model process do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="stack length, the painted frame included")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, help="default: the driver's own choice")
    parser.add_argument("--cases", nargs="+", default=["small", "large"], choices=["small", "large"])
    parser.add_argument("--variants", nargs="+", default=["natural", "medical"], choices=["natural", "medical"])
    parser.add_argument("--overlap", nargs="+", default=["on", "off"], choices=["on", "off"])
    args = parser.parse_args()
    model = random_model("vit_b", args.device)
    batch_size = args.batch_size or default_batch_size(model)
    frames = ct_stack(args.frames)
    small = (np.array(Image.open(CT / "ref_mask.png")) > 0).astype(np.uint8)
    masks = {"small": small, "large": large_mask(small.shape)}
    encode_images(model, [np.zeros((512, 512, 3), np.uint8)])  # warm-up
    device = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "CPU"
    print(
        f"SAM ViT-B (random weights), {device}, {torch.get_num_threads()} torch threads, {args.frames} frames of "
        f"512×512 ({args.frames - 1} segmented), batch size {batch_size}, fp32, k = 1..5, exact EMD; "
        "medians per frame\n"
    )
    print(
        "| object | variant | retrieval overlapped | end to end frames/s | encoder alone frames/s | ratio "
        "| CPU s / frame, end to end | CPU s / frame, encoder | CPU ratio | k |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        for variant in args.variants:
            settings = Settings(variant=variant, parts=(1, 5))
            for overlap in args.overlap:
                options = PipelineOptions(batch_size=batch_size, overlap_retrieval=overlap == "on")
                run, run_cpu, ks = end_to_end(model, frames, masks[case], settings, options)
                encoder, encoder_cpu = encoder_alone(model, frames, batch_size)  # right after, under the same load
                run_s, encoder_s = statistics.median(run), statistics.median(encoder)
                print(
                    f"| {case} | {variant} | {overlap} | {1 / run_s:.3f} | {1 / encoder_s:.3f} | "
                    f"{run_s / encoder_s:.3f} | {run_cpu:.1f} | {encoder_cpu:.1f} | {run_cpu / encoder_cpu:.3f} "
                    f"| {','.join(map(str, sorted(ks)))} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
