#!/usr/bin/env python3
"""Class-unlearning results table: every unlearning method on LeNet-5 / Fashion-MNIST, checked against the original.

Trains the original model θ_o once (LeNet-5, Fashion-MNIST, 5 epochs), then runs `lethe unlearn` for each forgotten
set (each single class of --classes, then each set of --multi) and each method of --methods, and writes one markdown
table comparing every unlearned model with θ_o on the test set:

  * forgotten-class test accuracy, θ_o → unlearned (must reach ~0%: a model that never saw a class scores ~0% on it);
  * retained-class test accuracy, θ_o → unlearned, and the change Δ in percentage points;
  * UA, RA, MIA-efficacy, steps and seconds as `lethe unlearn --json` reports them.

Each row is checked: forgotten-class test accuracy ≤ 5% (finetune, which only stops rehearsing the forgotten classes
and so forgets them more slowly: aim ≤ 20%), and Δ ≥ -3 points (a retained accuracy above the original's is fine).
The script prints a summary line on stderr and exits 1 if any row fails, after writing the table. When the lethe
binary changes between runs (a rebuild while resuming), the table says so.

Models and per-run JSON results are kept in --work, and runs whose result already exists there are skipped, so an
interrupted run resumes where it stopped.

Usage:
  bench/unlearning_table.py [--lethe PATH] [--work DIR] [--classes 1,3,7] [--multi "2,5;1,4,7"]
                            [--methods retrain,finetune,randlabel,amnesiac,neggrad] [--seed 0] [--out FILE]

Example:
  bench/unlearning_table.py --work /tmp/ul_table --out /tmp/unlearning-results.md

Standard library only.
"""
import argparse
import datetime
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NET, DATA, EPOCHS, THREADS = "lenet5", "fashion-mnist", 5, 2

# Bars of the acceptance check, as fractions. FORGET_BAR[method] bounds the forgotten-class test accuracy; methods
# not listed (hu-exact, hu-approx) get only the retained-accuracy check. Finetune's bar is a looser aim: it only
# stops rehearsing the forgotten classes, so they fade slowly.
FORGET_BAR = {"retrain": 0.05, "randlabel": 0.05, "amnesiac": 0.05, "neggrad": 0.05}
FORGET_AIM = {"finetune": 0.20}
RETAINED_DROP_BAR = 3.0  # percentage points the retained-class test accuracy may fall below the original's


def parse_classes(text):
    """'2,5' -> [2, 5]."""
    try:
        classes = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of class numbers: {text!r}")
    if not classes:
        raise argparse.ArgumentTypeError("empty class list")
    return classes


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lethe", default=os.environ.get("LETHE_BIN") or os.path.join(REPO_ROOT, "build", "lethe"),
                   help="the lethe binary (default: $LETHE_BIN, else build/lethe in the repository)")
    p.add_argument("--work", help="directory for models and per-run results (default: a new temporary directory)")
    p.add_argument("--classes", type=parse_classes, default=[1, 3, 7],
                   help="single classes to forget, one run each (default 1,3,7)")
    p.add_argument("--multi", default="2,5;1,4,7",
                   help="';'-separated class sets forgotten together (default \"2,5;1,4,7\"; \"\" for none)")
    p.add_argument("--methods", default="retrain,finetune,randlabel,amnesiac,neggrad",
                   help="comma-separated unlearning methods (default: the five class-unlearning methods)")
    p.add_argument("--seed", type=int, default=0, help="seed of training and unlearning (default 0)")
    p.add_argument("--out", help="write the markdown here (default: stdout)")
    args = p.parse_args()
    args.multi = [parse_classes(s) for s in args.multi.split(";") if s.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.lethe = os.path.abspath(args.lethe)
    if not os.access(args.lethe, os.X_OK):
        p.error(f"lethe binary not found or not executable: {args.lethe}")
    return args


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_lethe(lethe, argv):
    """Runs lethe with argv, returns its stdout. Exits the script, showing lethe's stderr, if lethe fails."""
    cmd = [lethe] + argv
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        log(f"unlearning_table: command failed with exit code {proc.returncode}:\n  {shlex.join(cmd)}")
        log(proc.stderr.rstrip() or "(no stderr)")
        sys.exit(1)
    return proc.stdout


def run_lethe_json(lethe, argv):
    """Runs lethe with --json --quiet and returns its JSON object, tagged with the binary's hash.

    The hash lets the table notice results that came from different builds (the binary may be rebuilt between
    resumed runs).
    """
    binary_hash = sha256_prefix(lethe)
    out = run_lethe(lethe, argv + ["--json", "--quiet"])
    try:
        result = json.loads(out)
    except json.JSONDecodeError as e:
        log(f"unlearning_table: lethe {argv[0]} printed no valid JSON ({e}):\n{out}")
        sys.exit(1)
    result["lethe_sha256"] = binary_hash
    return result


def sha256_prefix(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def write_json_atomically(path, obj):
    # A killed run must never leave a truncated result that a rerun would take as done.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def train_argv(out, seed):
    return ["train", "--net", NET, "--data", DATA, "--epochs", str(EPOCHS), "--seed", str(seed),
            "--threads", str(THREADS), "--out", out]


def eval_argv(model):
    return ["eval", "--model", model, "--data", DATA, "--threads", str(THREADS)]


def unlearn_argv(model, method, forget, out, seed):
    return ["unlearn", "--model", model, "--data", DATA, "--method", method, "--forget", ",".join(map(str, forget)),
            "--seed", str(seed), "--threads", str(THREADS), "--out", out]


def original_model(args):
    """Trains θ_o unless the work dir has it; returns (path, its `lethe eval --json` result, its training result).

    The training result is None when θ_o was made by hand or by an older version of this script.
    """
    model = os.path.join(args.work, "orig.safetensors")
    if os.path.exists(model):
        log(f"original model: reusing {model}")
    else:
        log(f"original model: training {NET} on {DATA} for {EPOCHS} epochs (seed {args.seed})")
        # Train to a temporary name so an interrupted training is not mistaken for a finished one.
        tmp = os.path.join(args.work, "orig.tmp.safetensors")
        trained = run_lethe_json(args.lethe, train_argv(tmp, args.seed))
        os.replace(tmp, model)
        write_json_atomically(os.path.join(args.work, "orig.train.json"), trained)
    result_path = os.path.join(args.work, "orig.eval.json")
    if os.path.exists(result_path) and os.path.getmtime(result_path) >= os.path.getmtime(model):
        evaluation = load_json(result_path)
    else:
        evaluation = run_lethe_json(args.lethe, eval_argv(model))
        write_json_atomically(result_path, evaluation)
    train_path = os.path.join(args.work, "orig.train.json")
    training = load_json(train_path) if os.path.exists(train_path) else None
    return model, evaluation, training


def unlearn_all(args, orig_model):
    """Runs every (forgotten set, method) pair, skipping those with a result in the work dir; returns the results."""
    results = []
    forget_sets = [[c] for c in args.classes] + args.multi
    total = len(forget_sets) * len(args.methods)
    for forget in forget_sets:
        for method in args.methods:
            name = f"forget{'-'.join(map(str, forget))}_{method}"
            result_path = os.path.join(args.work, name + ".json")
            n = len(results) + 1
            if os.path.exists(result_path):
                log(f"[{n}/{total}] {method} forgetting {forget}: reusing {result_path}")
                result = load_json(result_path)
            else:
                log(f"[{n}/{total}] {method} forgetting {forget} ...")
                out = os.path.join(args.work, name + ".safetensors")
                result = run_lethe_json(args.lethe, unlearn_argv(orig_model, method, forget, out, args.seed))
                write_json_atomically(result_path, result)
                log(f"    done in {result['seconds']:.1f} s: forgotten-class test acc "
                    f"{pct(result['forgotten_test_acc'])}, TA {pct(result['TA'])}")
            results.append(result)
    return results


def class_mean(per_class, counts, classes):
    """Accuracy over `classes` from per-class accuracies, weighted by the per-class test counts when known.

    The Fashion-MNIST test set is balanced (1000 per class), so this equals the plain mean of the per-class
    accuracies, and it equals the accuracy on those classes' test images.
    """
    weights = [counts[c] if counts else 1 for c in classes]
    return sum(per_class[c] * w for c, w in zip(classes, weights)) / sum(weights)


def make_row(result, orig_eval):
    """One table row: the run's numbers next to the original's, and the acceptance check."""
    per_class, counts = orig_eval["per_class_accuracy"], orig_eval.get("per_class_count")
    forget = result["forget"]
    retained = [c for c in range(len(per_class)) if c not in forget]
    row = {
        "forget": forget,
        "method": result["method"],
        "orig_forgotten": class_mean(per_class, counts, forget),
        "forgotten": result["forgotten_test_acc"],
        "orig_retained": class_mean(per_class, counts, retained),
        "retained": result["TA"],
        "UA": result["UA"], "RA": result["RA"], "MIA": result["MIA"],
        "steps": result["steps"], "stopped_by": result.get("stopped_by"), "seconds": result["seconds"],
    }
    row["delta"] = 100.0 * (row["retained"] - row["orig_retained"])

    failures = []
    bar = FORGET_BAR.get(row["method"], FORGET_AIM.get(row["method"]))
    if bar is not None and row["forgotten"] > bar:
        failures.append(f"forgotten {pct(row['forgotten'])} > {100 * bar:.0f}%")
    if row["delta"] < -RETAINED_DROP_BAR:
        failures.append(f"Δ {row['delta']:+.1f} < -{RETAINED_DROP_BAR:g} pts")
    row["failures"] = failures
    row["consistency"] = consistency_notes(result, forget, retained)
    return row


def consistency_notes(result, forget, retained):
    """Cross-checks lethe's summary numbers against its own per-class accuracies (both are on the test set)."""
    notes = []
    per_class, counts = result["per_class_accuracy"], result.get("per_class_count")
    for key, classes in (("forgotten_test_acc", forget), ("TA", retained)):
        from_classes = class_mean(per_class, counts, classes)
        if abs(from_classes - result[key]) > 1e-6:
            notes.append(f"{key} {result[key]:.6f} but per-class accuracies give {from_classes:.6f}")
    return notes


def pct(x):
    return f"{100.0 * x:.1f}%"


def git_head():
    try:
        out = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def binary_note(lethe_results):
    """Names the lethe build(s) the numbers come from; warns when resumed runs mixed builds."""
    hashes = sorted({r.get("lethe_sha256", "unknown") for r in lethe_results})
    if len(hashes) == 1:
        return f"lethe binary sha256 `{hashes[0]}…`."
    return (f"**Warning: the results come from {len(hashes)} different lethe builds** (sha256 "
            + ", ".join(f"`{h}…`" for h in hashes) + "); rerun with a fresh work directory for one build.")


def markdown(args, orig_eval, lethe_results, rows):
    methods = ", ".join(f"`{m}`" for m in args.methods)
    sets = ", ".join("{" + ", ".join(map(str, r)) + "}" for r in [[c] for c in args.classes] + args.multi)
    head = git_head()
    work = "$WORK/"
    passed = sum(not r["failures"] for r in rows)
    lines = [
        "# Class unlearning: results",
        "",
        f"Generated by `bench/unlearning_table.py` on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}"
        f" with `{args.lethe}`" + (f" (repository HEAD `{head}` when the table was written)" if head else "")
        + f", seed {args.seed}, {THREADS} CPU threads. The original model θ_o is a {NET} trained on {DATA} for"
        f" {EPOCHS} epochs; each"
        f" method ({methods}) then makes a copy of it forget each class set ({sets}). " + binary_note(lethe_results)
        + " Commands (`$WORK` is the script's work directory):",
        "",
        "```",
        "lethe " + shlex.join(train_argv(work + "orig.safetensors", args.seed)),
        "lethe " + shlex.join(eval_argv(work + "orig.safetensors") + ["--json", "--quiet"]),
        "lethe " + shlex.join(unlearn_argv(work + "orig.safetensors", "METHOD", ["CLASSES"],
                                           work + "forgetCLASSES_METHOD.safetensors", args.seed)
                              + ["--json", "--quiet"]),
        "```",
        "",
        f"Original model θ_o: test accuracy **{pct(orig_eval['accuracy'])}** over all 10 classes.",
        "",
        "All accuracies are on the Fashion-MNIST test set (1000 images per class) unless named otherwise. A model"
        " that never saw a class scores ~0% on it, so the forgotten-class test accuracy of a successful unlearning"
        " is ~0%, not chance (10%). The retained-class column compares θ_o and the unlearned model on the test"
        " images of the classes kept; Δ is the change in percentage points. UA (unlearning accuracy) is 1 − the"
        " unlearned model's accuracy on the forgotten training images (higher: more forgotten), RA its accuracy on"
        " the retained training images, MIA-efficacy the fraction of forgotten training images a membership-inference"
        " classifier judges non-members (higher: more forgotten). Steps are optimiser steps, with what stopped the"
        " method; seconds are the wall-clock time of the unlearning as lethe reports it (metrics not included).",
        "",
        f"Check: forgotten-class test accuracy ≤ {100 * max(FORGET_BAR.values()):.0f}%"
        f" (finetune: aim ≤ {100 * FORGET_AIM['finetune']:.0f}%) and Δ ≥ -{RETAINED_DROP_BAR:g} points."
        f" **{passed} of {len(rows)} rows pass.**",
        "",
        "| forgotten classes | method | forgotten-class test acc (θ_o → unlearned) "
        "| retained-class test acc (θ_o → unlearned, Δ pts) | UA | RA | MIA-efficacy | steps | seconds | check |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        aim = FORGET_AIM.get(r["method"])
        bar_note = f" (aim ≤ {100 * aim:.0f}%)" if aim is not None else ""
        check = "PASS" if not r["failures"] else "FAIL: " + "; ".join(r["failures"])
        steps = f"{r['steps']:,}" + (f" ({r['stopped_by']})" if r["stopped_by"] else "")
        lines.append(
            f"| {', '.join(map(str, r['forget']))} | {r['method']} "
            f"| {pct(r['orig_forgotten'])} → {pct(r['forgotten'])}{bar_note} "
            f"| {pct(r['orig_retained'])} → {pct(r['retained'])} ({r['delta']:+.1f}) "
            f"| {pct(r['UA'])} | {pct(r['RA'])} | {pct(r['MIA'])} | {steps} | {r['seconds']:.1f} | {check} |")
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    if args.work:
        args.work = os.path.abspath(args.work)
        os.makedirs(args.work, exist_ok=True)
    else:
        args.work = tempfile.mkdtemp(prefix="lethe-unlearning-table-")
    log(f"work directory: {args.work}")

    orig_model, orig_eval, orig_training = original_model(args)
    log(f"original model test accuracy: {pct(orig_eval['accuracy'])}")
    results = unlearn_all(args, orig_model)
    rows = [make_row(result, orig_eval) for result in results]

    for r in rows:
        for note in r["consistency"]:
            log(f"warning: {r['method']} forgetting {r['forget']}: {note}")
    lethe_results = [orig_eval] + ([orig_training] if orig_training else []) + results
    text = markdown(args, orig_eval, lethe_results, rows)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        log(f"wrote {args.out}")
    else:
        sys.stdout.write(text)

    failed = [r for r in rows if r["failures"]]
    log(f"summary: {len(rows) - len(failed)} of {len(rows)} rows pass")
    for r in failed:
        log(f"  FAIL {r['method']} forgetting {r['forget']}: {'; '.join(r['failures'])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
