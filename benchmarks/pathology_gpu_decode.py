"""Tile features end to end with JPEG tiles decoded on the device vs in CPU worker processes vs the network alone.

One run, the same slide mosaics for every side (built at the start, under a temporary folder):

- ``aperio``: CMU-1-Small-Region.svs's own JPEG tiles (240 px, untransformed RGB, abbreviated streams
  with shared JPEGTables: the Aperio layout) repeated ``--mosaic`` x ``--mosaic`` times over its 9 x 12
  full tiles, plus two re-encoded lower levels for the thumbnail;
- ``ycbcr``: ``pathology_tiling.build_mosaic`` (the mosaic of ``pathology_features.py``: tifffile JPEG,
  YCbCr 4:2:0, full streams, 256 px tiles, levels 1/4/16).

Per mosaic: end to end (tiling + ``predict_tiles``, features back on the host) with ``decode="cpu"``
(DataLoader workers decode, today's path) and ``decode="gpu"`` (workers read compressed tiles, the
main process decodes batches with ``torchvision.io.decode_jpeg`` on the device: nvJPEG on CUDA),
each at the ``workers:batch`` settings given; decoding alone for both paths; the network alone on
a resident batch (bf16 autocast, channels_last, eager on CUDA; fp32 on CPU, as the engine runs
there; ``--compile`` adds torch.compile); and the agreement of the two paths (pixels on a sample of
tiles, features and probabilities of the two end-to-end runs). Ratios: device / CPU decoding end to
end (target: never below 1) and device decoding end to end / network alone (target >= 0.75 on a GPU).

Fastest of ``--repeats``. The run keeps to ``--budget-s`` (skipped steps are listed) and writes
``pathology_gpu_decode.json`` and ``.md`` to ``--out`` after every step, so a cut run still leaves
its figures. ``--write-results`` also updates ``results/pathology.md``.

    # CPU, small (here: no GPU; the "device" path then runs torchvision's libjpeg-turbo in-process)
    .venv/bin/python benchmarks/pathology_gpu_decode.py --out /tmp/gpu_decode --write-results
    # lent GPU (H200): keeps to its own 420 s budget; needs gistrisk importable and OpenSlide + imagecodecs there
    python3 benchmarks/pathology_gpu_decode.py --device cuda --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pathology_features import _model_and_header  # noqa: E402
from pathology_tiling import CMU, RESULTS, _replace_block, build_mosaic  # noqa: E402

KINDS = ("aperio", "ycbcr")


def build_aperio_mosaic(path: Path, reps: int) -> Path:
    """CMU's stored JPEG tiles (not re-encoded) laid ``reps`` x ``reps`` times over its full tiles."""
    import tifffile
    from PIL import Image

    with tifffile.TiffFile(CMU) as tf:
        page = tf.pages[0]
        tw, th = page.tilewidth, page.tilelength
        across = -(-page.imagewidth // tw)
        nx, ny = page.imagewidth // tw, page.imagelength // th
        raw = {}
        for r in range(ny):
            for c in range(nx):
                i = r * across + c
                tf.filehandle.seek(page.dataoffsets[i])
                raw[r, c] = tf.filehandle.read(page.databytecounts[i])
        tables = page.jpegtables
        base = page.asarray()[:ny * th, :nx * tw]

    def stored():
        for row in range(ny * reps):
            for col in range(nx * reps):
                yield raw[row % ny, col % nx]

    with tifffile.TiffWriter(path, bigtiff=True) as w:
        w.write(stored(), shape=(ny * th * reps, nx * tw * reps, 3), dtype=np.uint8, tile=(th, tw),
                compression="jpeg", photometric="rgb", jpegtables=tables, subsampling=(1, 1),
                compressionargs={"outcolorspace": "rgb"}, resolution=(1e4 / 0.499,) * 2,
                resolutionunit="CENTIMETER", subfiletype=0)
        for ds in (4, 16):  # base sides are multiples of 16: the tiled reduction is the reduced mosaic
            small = np.asarray(Image.fromarray(base).resize((base.shape[1] // ds, base.shape[0] // ds),
                                                            Image.Resampling.BOX))
            w.write(np.tile(small, (reps, reps, 1)), tile=(256, 256), photometric="rgb", compression="jpeg",
                    compressionargs={"level": 85}, resolution=(1e4 / (0.499 * ds),) * 2,
                    resolutionunit="CENTIMETER", subfiletype=1, maxworkers=os.cpu_count())
    return path


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _tile(path: Path):
    from gistrisk.pathology.slides import Slide
    from gistrisk.pathology.tiling import TileConfig, tile_slide

    with Slide(path) as s:
        return tile_slide(s, TileConfig())


def end_to_end(model, header, path: Path, device: str, decode: str, workers: int, batch: int,
               compile_: bool = False) -> dict:
    """Tiling + predict_tiles; seconds, tiling seconds, outputs and the decode report."""
    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.engine import InferenceConfig, predict_tiles
    from gistrisk.pathology.gpu_decode import DecodeReport

    rep = DecodeReport()
    t0 = time.perf_counter()
    tiles = _tile(path)
    t1 = time.perf_counter()
    probs, feats = predict_tiles(model, header, tiles, SlideSource(str(path)),
                                 InferenceConfig(batch_size=batch, num_workers=workers, device=device,
                                                 decode=decode, compile=compile_), report=rep)
    _sync(device)
    t2 = time.perf_counter()
    return {"s": t2 - t0, "tiling_s": t1 - t0, "tiles": len(tiles), "probs": probs, "feats": feats, "report": rep}


def warm_up(model, header, tiles, path: Path, device: str, decode: str, workers: int, batch: int) -> None:
    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.engine import InferenceConfig, predict_tiles

    predict_tiles(model, header, tiles, SlideSource(str(path)),
                  InferenceConfig(batch_size=batch, num_workers=workers, device=device, decode=decode))


def decode_alone(tiles, device: str, decode: str, workers: int, batch: int) -> float:
    """Seconds to get every tile as a uint8 batch where the network would take it (no network)."""
    import torch
    from torch.utils.data import DataLoader

    from gistrisk.pathology.data import TileDataset
    from gistrisk.pathology.gpu_decode import DecodeReport, DeviceDecoder

    ds = TileDataset(tiles)
    t0 = time.perf_counter()
    try:
        if decode == "cpu":
            for xb, _ in DataLoader(ds, batch_size=batch, num_workers=workers,
                                    pin_memory=device.startswith("cuda"), prefetch_factor=4 if workers else None):
                xb.to(device, non_blocking=True)
        else:
            for _rows, _pix in DeviceDecoder(ds, batch, torch.device(device), workers, DecodeReport()):
                pass
        _sync(device)
    finally:
        ds.close()
    return time.perf_counter() - t0


def network_alone(model, header, device: str, batch: int, seconds: float, compile_: bool = False) -> float:
    """Tiles/s of the network on a resident uint8 batch (normalisation included), as the engine runs it."""
    import contextlib

    import torch

    from gistrisk.pathology.data import to_input

    dev = torch.device(device)
    m = model.to(dev, memory_format=torch.channels_last).eval()
    if compile_:
        m = torch.compile(m, dynamic=False)
    xb = torch.randint(0, 255, (batch, 224, 224, 3), dtype=torch.uint8, device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        for _ in range(2 if dev.type == "cpu" else 3):
            m(to_input(xb, header["mean"], header["std"], dev))
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t0 < seconds:
            m(to_input(xb, header["mean"], header["std"], dev))
            n += 1
            if dev.type == "cuda" and n % 5:
                continue
            _sync(device)
        _sync(device)
    return n * batch / (time.perf_counter() - t0)


def pixel_agreement(tiles, device: str, n: int) -> dict:
    """Device path vs CPU path on ``n`` tiles spread over the table: max / mean / 99.9th percentile."""
    from gistrisk.pathology.data import TileDataset
    from gistrisk.pathology.gpu_decode import DecodeReport, decode_tiles

    pick = tiles.iloc[np.linspace(0, len(tiles) - 1, min(n, len(tiles))).astype(int)].reset_index(drop=True)
    ds = TileDataset(pick)
    try:
        ref = np.stack([ds.read(i) for i in range(len(ds))]).astype(np.int16)
    finally:
        ds.close()
    rep = DecodeReport(requested="gpu")
    ds = TileDataset(pick)
    try:
        got = decode_tiles(ds, device, 64, 0, rep).astype(np.int16)
    finally:
        ds.close()
    d = np.abs(got - ref)
    return {"tiles": len(pick), "max_abs": int(d.max()), "mean_abs": float(d.mean()),
            "p999_abs": float(np.percentile(d, 99.9)), "tiles_device": rep.tiles_device, "fallback": rep.fallback}


def output_agreement(a: dict, b: dict) -> dict:
    fa, fb = a["feats"], b["feats"]
    cos = (fa * fb).sum(1) / np.maximum(np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1), 1e-12)
    return {"feature_max_abs": float(np.abs(fa - fb).max()), "feature_cosine_min": float(cos.min()),
            "prob_max_abs": float(np.abs(a["probs"] - b["probs"]).max()),
            "argmax_agree": float((a["probs"].argmax(1) == b["probs"].argmax(1)).mean())}


def _configs(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, b = part.split(":")
        out.append((int(w), int(b)))
    return out


class Run:
    """Results, the time budget, and the files written after every step."""

    def __init__(self, out: Path, budget_s: float, meta: dict):
        self.out, self.budget_s, self.t0 = out, budget_s, time.perf_counter()
        self.res = {"meta": meta, "kinds": {}, "network": {}, "skipped": []}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def step(self, name: str, need_s: float, fn):
        if self.left() < need_s:
            self.res["skipped"].append(name)
            print(f"skipped (budget): {name}", flush=True)
            return None
        t = time.perf_counter()
        value = fn()
        print(f"{name}: done in {time.perf_counter() - t:.1f} s", flush=True)
        self.save()
        return value

    def save(self) -> None:
        self.res["meta"]["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.res["meta"]["load_end"] = [round(v, 2) for v in os.getloadavg()]
        (self.out / "pathology_gpu_decode.json").write_text(json.dumps(self.res, indent=1, default=str))
        (self.out / "pathology_gpu_decode.md").write_text(markdown(self.res))


def _best(rows: list[dict]) -> dict | None:
    return min(rows, key=lambda r: r["s"]) if rows else None


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [f"Machine: {m['machine']}; torch {m['torch']}, torchvision {m['torchvision']}; "
             f"device {m['device']}; mosaic {m['mosaic']} x {m['mosaic']}; fastest of {m['repeats']}; "
             f"{m['stamp']}. Script: `benchmarks/pathology_gpu_decode.py {m['args']}`. Load average "
             f"(1, 5, 15 min) at the start {m['load_start']}, at the end {m.get('load_end')}.", ""]
    if not m["device"].startswith("cuda"):
        lines += ["On a CPU the network takes nearly all the time and the \"device\" path decodes in the main "
                  "process, one batch after the other, so these ratios say nothing about a GPU: the run shows the "
                  "path works end to end and gives the CPU path's pixels and features. With other work on the "
                  "cores, compare within one row pair, not across runs.", ""]
    net = res["network"]
    if net.get("eager_tps"):
        what = "bf16 autocast, channels_last, eager" if m["device"].startswith("cuda") else "fp32, channels_last"
        lines.append(f"Network alone ({what}, resident batch of {net['batch']}): **{net['eager_tps']:.0f} tiles/s**"
                     + (f"; compiled {net['compiled_tps']:.0f}" if net.get("compiled_tps") else "") + ".")
        lines.append("")
    lines += ["| mosaic | tiles | path | workers:batch | end to end tiles/s | of which tiling (s) | decoding alone "
              "tiles/s | / CPU decoding end to end | / network alone | tiles on device / CPU path |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for kind, k in res["kinds"].items():
        best: dict[tuple, dict] = {}
        for r in k.get("e2e", []):
            key = (r["decode"] != "cpu", r["workers"], r["batch"], r.get("compile", False))
            if key not in best or r["s"] < best[key]["s"]:
                best[key] = r
        cpu = _best([r for r in best.values() if r["decode"] == "cpu"])
        for key in sorted(best):
            r = best[key]
            dec = k.get("decode_alone", {}).get(f"{r['decode']}:{r['workers']}:{r['batch']}")
            tps = k["tiles"] / r["s"]
            label = ("device (" + ("nvJPEG" if m["device"].startswith("cuda") else "libjpeg-turbo in-process") + ")"
                     if r["decode"] == "gpu" else "CPU workers") + (", compiled" if r.get("compile") else "")
            lines.append(" | ".join([
                f"| {kind}", str(k["tiles"]), label, f"{r['workers']}:{r['batch']}", f"{tps:.1f}",
                f"{r['tiling_s']:.2f}", f"{k['tiles'] / dec:.1f}" if dec else "",
                f"{cpu['s'] / r['s']:.2f}" if cpu else "",
                f"{tps / net['eager_tps']:.2f}" if net.get("eager_tps") else "",
                f"{r['tiles_device']} / {r['tiles_cpu']} |"]))
    lines.append("")
    for kind, k in res["kinds"].items():
        if k.get("pixels"):
            p = k["pixels"]
            lines.append(f"- {kind}: device vs CPU path pixels on {p['tiles']} tiles: max {p['max_abs']}, mean "
                         f"{p['mean_abs']:.4f}, 99.9th percentile {p['p999_abs']:.1f} grey levels "
                         f"(device-decoded {p['tiles_device']}; fallbacks {p['fallback'] or 'none'})")
        if k.get("outputs"):
            o = k["outputs"]
            lines.append(f"- {kind}: end-to-end outputs, device vs CPU decoding: features max |diff| "
                         f"{o['feature_max_abs']:.2e}, min cosine {o['feature_cosine_min']:.6f}; probabilities "
                         f"max |diff| {o['prob_max_abs']:.2e}; same top class {o['argmax_agree']:.1%}")
        if k.get("probe"):
            lines.append(f"- {kind}: probe {k['probe']}; fallbacks {k.get('fallback') or 'none'}")
    if res["skipped"]:
        lines.append(f"- skipped for the time budget: {', '.join(res['skipped'])}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--mosaic", type=int, default=None, help="copies per side (default: 16 on CUDA, 1 on CPU)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="mosaics: aperio,ycbcr")
    ap.add_argument("--cpu-configs", default=None, help="workers:batch of the CPU decoding path "
                    "(default 14:128 on CUDA, today's best; 0:16 on CPU)")
    ap.add_argument("--gpu-configs", default=None, help="workers:batch of the device decoding path "
                    "(default 4:128,8:256 on CUDA; 0:16 on CPU)")
    ap.add_argument("--net-batch", type=int, default=None, help="network-alone batch (default 256 on CUDA, 16 CPU)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pixel-tiles", type=int, default=None, help="tiles in the pixel check (512 CUDA, 45 CPU)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile: network alone and device path")
    ap.add_argument("--budget-s", type=float, default=None, help="time budget (default 420 on CUDA, 600 on CPU)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the JSON and markdown results")
    ap.add_argument("--write-results", action="store_true", help="update benchmarks/results/pathology.md")
    args = ap.parse_args()
    if not CMU.is_file():
        print(f"skipped: {CMU} not found (set GISTRISK_SHARED_DATA)")
        return 0
    import torch
    import torchvision

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("skipped: --device cuda but no CUDA device here")
        return 0
    mosaic = args.mosaic or (16 if cuda else 1)
    cpu_cfgs = _configs(args.cpu_configs or ("14:128" if cuda else "0:16"))
    gpu_cfgs = _configs(args.gpu_configs or ("4:128,8:256" if cuda else "0:16"))
    net_batch = args.net_batch or (256 if cuda else 16)
    pixel_tiles = args.pixel_tiles or (512 if cuda else 45)
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu_decode_"))
    machine = (f"{torch.cuda.get_device_name()}, {os.cpu_count()} CPUs" if cuda
               else f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, no GPU")
    run = Run(out, args.budget_s or (420.0 if cuda else 600.0), {
        "machine": machine, "torch": torch.__version__, "torchvision": torchvision.__version__,
        "device": args.device, "mosaic": mosaic, "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "stamp": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "args": " ".join(sys.argv[1:]),
        "cpu_configs": cpu_cfgs, "gpu_configs": gpu_cfgs, "platform": platform.platform(),
        "load_start": [round(v, 2) for v in os.getloadavg()]})
    model, header = _model_and_header()
    kinds = [k for k in args.kinds.split(",") if k]
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for kind in kinds:
            build = build_aperio_mosaic if kind == "aperio" else build_mosaic
            paths[kind] = run.step(f"build {kind} mosaic", 30, lambda b=build, k=kind: b(Path(d) / f"{k}.tif", mosaic))
        run.res["network"]["batch"] = net_batch
        run.res["network"]["eager_tps"] = run.step(
            "network alone", 20, lambda: network_alone(model, header, args.device, net_batch, 5.0 if cuda else 10.0))
        for kind, path in paths.items():
            if path is None:
                continue
            k = run.res["kinds"].setdefault(kind, {"e2e": [], "decode_alone": {}})
            tiles = _tile(path)
            k["tiles"] = len(tiles)
            if cuda:  # warm-up: cuDNN, nvJPEG, worker start-up code paths
                head = tiles.head(2 * max(b for _, b in cpu_cfgs + gpu_cfgs))
                run.step(f"{kind}: warm-up", 30, lambda p=path, h=head: [
                    warm_up(model, header, h, p, args.device, dec, w, b)
                    for dec, (w, b) in (("cpu", cpu_cfgs[0]), ("gpu", gpu_cfgs[0]))])
            last: dict[str, dict] = {}
            plan = ([("cpu", w, b, False) for w, b in cpu_cfgs] + [("gpu", w, b, False) for w, b in gpu_cfgs]
                    + ([("gpu", *gpu_cfgs[0], True)] if args.compile else []))
            for rep_i in range(args.repeats):
                for dec, w, b, comp in plan:
                    need = 3 * (last[f"{dec}:{w}:{b}:{comp}"]["s"] if f"{dec}:{w}:{b}:{comp}" in last else 5)
                    r = run.step(f"{kind}: end to end decode={dec} {w}:{b}{' compiled' if comp else ''} "
                                 f"#{rep_i + 1}", need,
                                 lambda dec=dec, w=w, b=b, comp=comp, p=path: end_to_end(model, header, p, args.device,
                                                                                         dec, w, b, comp))
                    if r is None:
                        continue
                    last[f"{dec}:{w}:{b}:{comp}"] = r
                    rp = r["report"]
                    k["e2e"].append({"decode": dec, "workers": w, "batch": b, "compile": comp, "s": r["s"],
                                     "tiling_s": r["tiling_s"], "tiles_device": rp.tiles_device,
                                     "tiles_cpu": rp.tiles_cpu, "compile_used": rp.compile_used,
                                     "compile_error": rp.compile_error})
                    if dec == "gpu":
                        k["probe"] = [{q: p[q] for q in ("accepted", "mode", "mean_abs", "max_abs", "tiles", "reason")}
                                      for p in rp.probes]
                        k["fallback"] = rp.fallback
                    print(f"  {kind} {dec} {w}:{b}: {r['tiles'] / r['s']:.1f} tiles/s (tiling {r['tiling_s']:.2f} s)",
                          flush=True)
            cpu_r = last.get(f"cpu:{cpu_cfgs[0][0]}:{cpu_cfgs[0][1]}:False")
            gpu_r = last.get(f"gpu:{gpu_cfgs[0][0]}:{gpu_cfgs[0][1]}:False")
            if cpu_r and gpu_r:
                k["outputs"] = output_agreement(cpu_r, gpu_r)
            k["pixels"] = run.step(f"{kind}: pixel agreement", 30,
                                   lambda t=tiles: pixel_agreement(t, args.device, pixel_tiles))
            for dec, cfgs in (("cpu", cpu_cfgs), ("gpu", gpu_cfgs)):
                for w, b in cfgs:
                    s = run.step(f"{kind}: decoding alone {dec} {w}:{b}", 20,
                                 lambda dec=dec, w=w, b=b, t=tiles: min(decode_alone(t, args.device, dec, w, b)
                                                                       for _ in range(args.repeats)))
                    if s is not None:
                        k["decode_alone"][f"{dec}:{w}:{b}"] = s
        if args.compile:
            run.res["network"]["compiled_tps"] = run.step(
                "network alone compiled", 120,
                lambda: network_alone(model, header, args.device, net_batch, 5.0, compile_=True))
    run.save()
    md = markdown(run.res)
    print(md)
    print(f"results in {out}")
    if args.write_results:
        key = "pathology_gpu_decode_gpu" if cuda else "pathology_gpu_decode_cpu"
        title = ("## JPEG decoding on the GPU vs CPU workers vs the network alone (GPU)" if cuda else
                 "## JPEG decoding on the device vs CPU workers vs the network alone (CPU, no GPU lent; GPU "
                 "figure pending)")
        _replace_block(RESULTS, key, "\n".join([f"<!-- {key}:start -->", title, "", md.rstrip("\n"),
                                                f"<!-- {key}:end -->", ""]))
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
