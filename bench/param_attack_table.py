#!/usr/bin/env python3
"""Parameter-attack results table (docs/attacks/parameter.md): Zheng et al.'s parameter-based label-leakage attack
(`lethe attack param`) against every unlearning method on LeNet-5 / Fashion-MNIST.

Steps, each resumable (whatever already exists in --work is reused, so an interrupted run picks up where it stopped):
  1. a split with an auxiliary part (--aux-fraction of every class, the attacker's D_aux), and the original θ_o
     trained on the owner's part;
  2. targets: `lethe unlearn` of θ_o for every method × every single class 0..9, and for seeded sets of m = 2 and 3
     classes;
  3. attacks: `lethe attack param --features all --classifier all` on every target, with the number of forgotten
     classes known (--forget-count m) and unknown, and with each shadow surrogate of --shadows ("same" passes the
     target's true method: the attacker who knows the unlearning algorithm; the others are fixed guesses);
  4. scoring, done here and only here, after the attacks: predictions are compared with the forget sets this script
     chose. Single-class ASR (chance 1/K), and for m > 1 the exact-set ASR (chance 1/C(K, m)) with per-class
     precision and recall (chance m/K).

Usage:
  bench/param_attack_table.py [--lethe PATH] [--work DIR] [--out FILE] [--methods ...] [--classes 0,...,9]
                              [--multi-sets 3] [--shadows neggrad,same] [--threads 2]

Standard library only.
"""
import argparse
import itertools
import json
import math
import os
import random
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET, DATA, EPOCHS, K = "lenet5", "fashion-mnist", 5, 10
FEATURES = ["dot", "diff"]
CLASSIFIERS = ["kmeans", "youden", "tree"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, out_path=None):
    """Runs a lethe command; with out_path, stdout is written there atomically (the resumable unit)."""
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        sys.exit(f"failed (exit {res.returncode}): {' '.join(cmd)}\n{res.stderr[-2000:]}")
    if out_path:
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(res.stdout)
        os.replace(tmp, out_path)
    return res.stdout


def multi_sets(m, count):
    """Seeded, distinct class sets of size m."""
    rng, sets = random.Random(1000 + m), []
    while len(sets) < count:
        s = sorted(rng.sample(range(K), m))
        if s not in sets:
            sets.append(s)
    return sets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lethe", default=os.path.join(REPO_ROOT, "build", "lethe"))
    ap.add_argument("--work", default=os.path.join(REPO_ROOT, "build", "param_attack_eval"))
    ap.add_argument("--out", default=None, help="markdown table (default: stdout)")
    ap.add_argument("--methods", default="retrain,finetune,randlabel,amnesiac,neggrad")
    ap.add_argument("--classes", default=",".join(str(c) for c in range(K)))
    ap.add_argument("--multi-sets", type=int, default=3, help="sets of each size m = 2, 3")
    ap.add_argument("--shadows", default="neggrad,same", help="shadow surrogates: method names, 'same' or 'all'")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--stage", choices=["targets", "all"], default="all", help="stop after making the targets")
    a = ap.parse_args()

    lethe = [a.lethe, "--threads", a.threads, "-q"]
    methods = a.methods.split(",")
    classes = [int(c) for c in a.classes.split(",")]
    shadows = a.shadows.split(",")
    os.makedirs(a.work, exist_ok=True)
    w = lambda *p: os.path.join(a.work, *p)

    # 1. split and original
    if not os.path.exists(w("split.json")):
        run(lethe + ["data", "split", "--data", DATA, "--aux-fraction", "0.1", "--out", w("split.json")])
    if not os.path.exists(w("orig.safetensors")):
        log("training the original")
        run(lethe + ["train", "--net", NET, "--data", DATA, "--split", w("split.json"), "--epochs", str(EPOCHS),
                     "--out", w("orig.safetensors")])

    # 2. targets
    forget_sets = [[c] for c in classes] + multi_sets(2, a.multi_sets) + multi_sets(3, a.multi_sets)
    targets = []
    for s in forget_sets:
        for m in methods:
            name = f"u_{m}_{'-'.join(map(str, s))}"
            path = w(name + ".safetensors")
            if not os.path.exists(path):
                log(f"unlearning {s} with {m}")
                run(lethe + ["unlearn", "--model", w("orig.safetensors"), "--data", DATA, "--method", m,
                             "--forget", ",".join(map(str, s)), "--out", path, "--json"], w(name + ".unlearn.json"))
            targets.append((name, m, s, path))
    if a.stage == "targets":
        return

    # 3. attacks (the attack sees only the target file and D_aux; the truth s stays in this script)
    os.makedirs(w("attacks"), exist_ok=True)
    results = []
    for name, method, truth, path in targets:
        for known in (True, False):
            for shadow in shadows:
                surrogate = method if shadow == "same" else shadow
                out = w("attacks", f"{name}__{'known' if known else 'unknown'}__{shadow}.jsonl")
                # k-means uses no shadow runs: run it with the first surrogate only.
                clf = "all" if shadow == shadows[0] else "youden,tree"
                if not os.path.exists(out):
                    log(f"attacking {name} (m {'known' if known else 'unknown'}, shadow {shadow})")
                    run(lethe + ["attack", "param", "--target", path, "--data", DATA, "--features", "all",
                                 "--classifier", clf, "--forget-count", str(len(truth) if known else 0),
                                 "--shadow-method", surrogate, "--work", w("cache"), "--json"], out)
                with open(out) as f:
                    for line in f:
                        r = json.loads(line)
                        shadow_label = "-" if r["classifier"] == "kmeans" else shadow
                        results.append(dict(method=method, truth=truth, known=known, shadow=shadow_label,
                                            features=r["features"], classifier=r["classifier"],
                                            predicted=r["predicted"], columns=r["feature_names"],
                                            scaled=r["features_scaled"]))

    # 4. scoring
    write_table(results, methods, shadows, a)


def asr(rows):
    return sum(sorted(r["predicted"]) == sorted(r["truth"]) for r in rows) / len(rows) if rows else float("nan")


def precision_recall(rows):
    tp = sum(len(set(r["predicted"]) & set(r["truth"])) for r in rows)
    pred = sum(len(r["predicted"]) for r in rows)
    true = sum(len(r["truth"]) for r in rows)
    return (tp / pred if pred else float("nan")), (tp / true if true else float("nan"))


def pct(x):
    return "n/a" if x != x else f"{100 * x:.0f}%"


def write_table(results, methods, shadows, a):
    combos = [(f, c, s) for f in FEATURES for c in CLASSIFIERS for s in (["-"] if c == "kmeans" else shadows)]
    lines = []
    p = lines.append
    p(f"Fashion-MNIST, LeNet-5 ({EPOCHS} epochs), D_aux = 10% of every class. Generated by "
      f"`bench/param_attack_table.py` on {time.strftime('%Y-%m-%d')}.\n")
    for m_size in sorted({len(r["truth"]) for r in results}):
        chance_exact = 1 / math.comb(K, m_size)
        for known in (True, False):
            sel = [r for r in results if len(r["truth"]) == m_size and r["known"] == known]
            if not sel:
                continue
            n_sets = len({tuple(r["truth"]) for r in sel})
            head = (f"### m = {m_size} ({n_sets} forget sets per method), number of forgotten classes "
                    f"{'known' if known else 'unknown'}")
            p(head + "\n")
            p(f"Exact-set ASR; chance {pct(chance_exact)}" +
              ("" if m_size == 1 else f"; per-class precision/recall in brackets, chance {pct(m_size / K)}") + ".\n")
            p("| features | classifier | shadow | " + " | ".join(methods) + " |")
            p("|---|---|---|" + "---|" * len(methods))
            for f, c, s in combos:
                cells = []
                for meth in methods:
                    rows = [r for r in sel if r["method"] == meth and r["features"] == f and r["classifier"] == c
                            and r["shadow"] == s]
                    cell = pct(asr(rows))
                    if m_size > 1 and rows:
                        pr, rc = precision_recall(rows)
                        cell += f" ({pct(pr)}/{pct(rc)})"
                    cells.append(cell)
                p(f"| {f} | {c} | {s} | " + " | ".join(cells) + " |")
            p("")
    column_table(results, methods, p)
    text = "\n".join(lines)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def column_table(results, methods, p):
    """How well each feature column alone names a single forgotten class (its top class), per method: the evidence
    for which column is each family's score."""
    sel = [r for r in results if len(r["truth"]) == 1 and r["known"] and r["classifier"] == "kmeans"]
    if not sel:
        return
    p("### Each feature column alone, m = 1\n")
    p("The class with the highest (robust-scaled) value of the column is named forgotten; chance 10%.\n")
    p("| features | column | " + " | ".join(methods) + " |")
    p("|---|---|" + "---|" * len(methods))
    for f in FEATURES:
        rows_f = [r for r in sel if r["features"] == f]
        if not rows_f:
            continue
        for j, name in enumerate(rows_f[0]["columns"]):
            cells = []
            for meth in methods:
                rows = [r for r in rows_f if r["method"] == meth]
                hits = sum(max(range(K), key=lambda c: r["scaled"][c][j]) == r["truth"][0] for r in rows)
                cells.append(f"{hits}/{len(rows)}")
            escaped = name.replace("|", "\\|")  # a bare | would split the table cell
            p(f"| {f} | `{escaped}` | " + " | ".join(cells) + " |")
    p("")


if __name__ == "__main__":
    main()
