#!/usr/bin/env python3
"""Inversion-attack results table (docs/attacks/inversion.md): Zheng et al.'s inversion-based label-leakage attacks
(`lethe attack invert`) against every unlearning method on LeNet-5 / Fashion-MNIST.

Steps, each resumable (whatever already exists in --work is reused):
  1. the targets of bench/param_attack_table.py (same split, original and unlearned models; made by it with
     --stage targets when missing);
  2. attacks: `lethe attack invert --criterion all` on every target, for each mode of --modes and source of --sources,
     with the number of forgotten classes known (--forget-count m) and unknown;
  3. scoring, done here and only here, after the attacks: predictions are compared with the forget sets. Single-class
     ASR (chance 1/K), for m > 1 exact-set ASR (chance 1/C(K, m)) with per-class precision and recall (chance m/K),
     and the mean number of target queries beside every black-box number.

Usage:
  bench/invert_attack_table.py [--lethe PATH] [--work DIR] [--out FILE] [--modes white,black]
                               [--sources target] [--calibrations reference] [--seeds 0] [--unknown]
                               [--only-single]
                               [--threads 2] [-- extra lethe options]

Standard library only.
"""
import argparse
import glob
import itertools
import json
import math
import os
import subprocess
import sys
import time

from param_attack_table import REPO_ROOT, log, run  # same folder: the targets' maker and its resumable runner

DATA, K = "fashion-mnist", 10
CRITERIA = ["threshold", "entropy"]
METHODS = ["retrain", "finetune", "randlabel", "amnesiac", "neggrad"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lethe", default=os.path.join(REPO_ROOT, "build", "lethe"))
    ap.add_argument("--work", default=os.path.join(REPO_ROOT, "build", "param_attack_eval"))
    ap.add_argument("--out", default=None, help="markdown table (default: stdout)")
    ap.add_argument("--modes", default="white,black")
    ap.add_argument("--sources", default="target")
    ap.add_argument("--calibrations", default="reference", help="reference, none or both")
    ap.add_argument("--seeds", default="0", help="attack seeds (random starts, reference model); trials pool them")
    ap.add_argument("--unknown", action="store_true", help="also attack with the number of forgotten classes unknown")
    ap.add_argument("--only-single", action="store_true", help="single-class targets only")
    ap.add_argument("--threads", default="2")
    ap.add_argument("extra", nargs="*", help="more `lethe attack invert` options, after --")
    a = ap.parse_args()

    w = lambda *p: os.path.join(a.work, *p)
    if not glob.glob(w("u_*.safetensors")):
        log("making the targets (bench/param_attack_table.py --stage targets)")
        subprocess.run([sys.executable, os.path.join(REPO_ROOT, "bench", "param_attack_table.py"), "--lethe", a.lethe,
                        "--work", a.work, "--stage", "targets"], check=True)

    targets = []
    for path in sorted(glob.glob(w("u_*.safetensors"))):
        _, method, classes = os.path.basename(path)[: -len(".safetensors")].split("_")
        truth = [int(c) for c in classes.split("-")]
        if a.only_single and len(truth) > 1:
            continue
        targets.append((method, truth, path))

    os.makedirs(w("invert"), exist_ok=True)
    os.makedirs(w("invert", "images"), exist_ok=True)
    results = []
    for method, truth, path in targets:
        name = os.path.basename(path)[: -len(".safetensors")]
        for mode, source, calib, seed, known in itertools.product(
                a.modes.split(","), a.sources.split(","), a.calibrations.split(","), a.seeds.split(","),
                [True, False] if a.unknown else [True]):
            tag = f"{name}__{mode}__{source}__{calib}__{'known' if known else 'unknown'}"
            out = w("invert", tag + ("" if seed == "0" else f"__seed{seed}") + ".jsonl")
            if not os.path.exists(out):
                log(f"attacking {name} ({mode}-box, {source}, calibrated by {calib}, seed {seed}, "
                    f"m {'known' if known else 'unknown'})")
                run([a.lethe, "--threads", a.threads, "-q", "attack", "invert", "--target", path, "--data", DATA,
                     "--mode", mode, "--source", source, "--calibrate", calib, "--criterion", "all", "--seed", seed,
                     "--forget-count", str(len(truth) if known else 0), "--work", w("cache"), "--images",
                     w("invert", "images"), "--json"] + a.extra, out)
            with open(out) as f:
                for line in f:
                    r = json.loads(line)
                    results.append(dict(method=method, truth=truth, known=known, mode=mode, source=source,
                                        calib=calib, criterion=r["criterion"], predicted=r["predicted"],
                                        queries=r["queries"], seconds=r["seconds"]))
    write_table(results, a)


def pct(x):
    return "n/a" if x != x else f"{100 * x:.0f}%"


def write_table(results, a):
    lines = []
    p = lines.append
    p(f"Fashion-MNIST, LeNet-5. Generated by `bench/invert_attack_table.py` on {time.strftime('%Y-%m-%d')}.\n")
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    for m_size in sorted({len(r["truth"]) for r in results}):
        for known in (True, False):
            sel = [r for r in results if len(r["truth"]) == m_size and r["known"] == known]
            if not sel:
                continue
            n_sets = len({tuple(r["truth"]) for r in sel if r["method"] == methods[0]})
            p(f"### m = {m_size} ({n_sets} forget sets per method, seeds {a.seeds}), number of forgotten classes "
              f"{'known' if known else 'unknown'}\n")
            p(f"Exact-set ASR; chance {pct(1 / math.comb(K, m_size))}" +
              ("" if m_size == 1 else f"; per-class precision/recall in brackets, chance {pct(m_size / K)}") +
              ". Black-box: mean target queries per attack in braces.\n")
            p("| mode | source | calibrated by | criterion | " + " | ".join(methods) + " |")
            p("|---|---|---|---|" + "---|" * len(methods))
            for mode, source, calib in itertools.product(a.modes.split(","), a.sources.split(","),
                                                         a.calibrations.split(",")):
                for crit in CRITERIA:
                    cells = []
                    for meth in methods:
                        rows = [r for r in sel if r["method"] == meth and r["mode"] == mode and
                                r["source"] == source and r["calib"] == calib and r["criterion"] == crit]
                        if not rows:
                            cells.append("-")
                            continue
                        cell = pct(sum(sorted(r["predicted"]) == sorted(r["truth"]) for r in rows) / len(rows))
                        if m_size > 1:
                            tp = sum(len(set(r["predicted"]) & set(r["truth"])) for r in rows)
                            cell += (f" ({pct(tp / sum(len(r['predicted']) for r in rows))}/"
                                     f"{pct(tp / sum(len(r['truth']) for r in rows))})")
                        if mode == "black":
                            cell += f" {{{sum(r['queries'] for r in rows) / len(rows):,.0f}}}"
                        cells.append(cell)
                    p(f"| {mode} | {source} | {calib} | {crit} | " + " | ".join(cells) + " |")
            p("")
    text = "\n".join(lines)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
