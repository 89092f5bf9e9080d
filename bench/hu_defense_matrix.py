#!/usr/bin/env python3
"""Hu et al.'s unlearning-inversion attacks and the three defenses (docs/attacks/hu-and-defenses.md), one command.

Stages (each resumable: every model and attack result is a file in --work, reused when present):
  setup    Hu et al.'s setting on Fashion-MNIST per net of --nets: a split with a user pool of 10,000 (|D_u| = 512)
           and a held-out aux part (10% of each class, the fine-tuning defense's data); θ_0 trained on the rest;
           θ_o = θ_0 fine-tuned one epoch on D_u (SGD lr 1e-3, no momentum, BN frozen).
  label    label inference (`lethe attack hu-label`) after exact (hu-exact) and approximate (hu-approx, lr 1e-3,
           batch 32, one pass) unlearning of a fraction of one class of D_u, for every class and every fraction of
           --fractions. The probes are made once per θ_o and cached.
  recover  feature recovery (`lethe attack hu-recover`) after approximate unlearning of one sample (one ascent step,
           lr 1), for --samples samples of D_u; PSNR (peak 1 and Hu's 1/std peak), SSIM, against random images.
  matrix   every defense setting of DEFENSES against every attack: Hu's label inference (exact and approximate, at
           fraction 0.5 over the 10 classes) and feature recovery, and Zheng et al.'s parameter and inversion attacks
           on the single-class retrain targets of bench/param_attack_table.py; each with the defended models' test
           accuracy.
Scoring happens here, after the attacks: predictions are compared with the forget specs only in this script.

Usage:
  bench/hu_defense_matrix.py [--lethe PATH] [--work DIR] [--stages setup,label,recover,matrix] [--nets lenet5]
                             [--fractions 0.01,0.1,0.25,0.5,1.0] [--samples 10] [--recover-iterations N]
                             [--zheng-work DIR] [--out FILE]
Standard library only.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys

from param_attack_table import REPO_ROOT, log, run  # same folder: the resumable runner

DATA, K = "fashion-mnist", 10
# (name, `lethe defend` arguments); "none" is the undefended model.
DEFENSES = [
    ("none", None),
    ("noise 0.01", ["noise", "--sigma", "0.01"]),
    ("noise 0.05", ["noise", "--sigma", "0.05"]),
    ("prune 0.25", ["prune", "--rate", "0.25"]),
    ("prune 0.5", ["prune", "--rate", "0.5"]),
    ("prune 0.9", ["prune", "--rate", "0.9"]),
    ("finetune 1000", ["finetune", "--epochs", "1", "--limit", "1000"]),
]
NET_ARGS = {"lenet5": ["--net", "lenet5"], "convnet": ["--net", "convnet", "--width", "8"]}
THETA0_EPOCHS = {"lenet5": 5, "convnet": 2}


def load_json(path):
    with open(path) as f:
        return json.loads(f.read().strip().splitlines()[-1])


class Lab:
    def __init__(self, a, net):
        self.a, self.net = a, net
        variant = "" if a.user_size == 512 else f"-u{a.user_size}"
        variant += "" if a.user_batch == 512 else f"-b{a.user_batch}"
        self.dir = os.path.join(a.work, net + variant)
        os.makedirs(self.dir, exist_ok=True)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def lethe(self, *args, out=None, json_out=True):
        cmd = [self.a.lethe, *args, "--threads", self.a.threads, "-q"] + (["--json"] if json_out else [])
        if out and os.path.exists(out):
            return load_json(out)
        text = run(cmd, out)
        return json.loads(text.strip().splitlines()[-1]) if json_out else text

    def model(self, path, *args):
        """Runs a model-writing command unless the model exists."""
        if not os.path.exists(path):
            self.lethe(*args, "--out", path + ".tmp.safetensors", json_out=False)
            os.replace(path + ".tmp.safetensors", path)
        return path

    # --- setup
    def setup(self):
        split = self.p("split.json")
        if not os.path.exists(split):
            self.lethe("data", "split", "--data", DATA, "--user-pool", "10000", "--user-size", str(self.a.user_size),
                       "--aux-fraction", "0.1", "--seed", "0", "--out", split, json_out=False)
        log(f"{self.net}: θ_0 and θ_o")
        self.model(self.p("theta0.safetensors"), "train", "--data", DATA, *NET_ARGS[self.net], "--split", split,
                   "--part", "train", "--epochs", str(THETA0_EPOCHS[self.net]))
        self.model(self.p("theta_o.safetensors"), "train", "--data", DATA, "--split", split, "--part", "user",
                   "--init", self.p("theta0.safetensors"), "--freeze-bn", "--batch", str(self.a.user_batch),
                   "--optim", "sgd", "--lr", "0.001",
                   "--momentum", "0", "--schedule", "constant", "--epochs", "1", "--augment", "none")
        self.user_counts = self.lethe("eval", "--model", self.p("theta_o.safetensors"), "--data", DATA, "--part",
                                      "user", out=self.p("user_counts.json"))["per_class_count"]

    def accuracy(self, model):
        return self.lethe("eval", "--model", model, "--data", DATA, "--part", "test",
                          out=model + ".test.json")["accuracy"]

    # --- unlearning
    def unlearned(self, method, cls, fraction):
        """θ_u after unlearning `fraction` of class `cls` of D_u; None if that deletes no sample."""
        if math.floor(fraction * self.user_counts[cls]) == 0:
            return None
        path = self.p("u", f"{method}_{cls}_{fraction}.safetensors")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        forget = ["--forget", str(cls)] + ([] if fraction == 1.0 else ["--forget-fraction", str(fraction)])
        if method == "exact":
            extra = ["--method", "hu-exact", "--base", self.p("theta0.safetensors")]
        else:
            extra = ["--method", "hu-approx", "--lr", "0.001", "--batch", "32", "--epochs", "1"]
        return self.model(path, "unlearn", "--model", self.p("theta_o.safetensors"), "--data", DATA, *forget, *extra)

    def hu_label(self, target, tag):
        out = self.p("attacks", f"hu-label__{tag}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        return self.lethe("attack", "hu-label", "--original", self.p("theta_o.safetensors"), "--unlearned", target,
                          "--work", self.p("probes"), *self.a.label_args.split(), out=out)

    # --- stages
    def label_sweep(self, fractions):
        rows = []
        for method in ("exact", "approx"):
            for fraction in fractions:
                hits, hits_lo, n, queries = 0, 0, 0, []
                for cls in range(K):
                    target = self.unlearned(method, cls, fraction)
                    if target is None:
                        continue
                    log(f"{self.net}: hu-label, {method} unlearning of {fraction} of class {cls}")
                    r = self.hu_label(target, os.path.basename(target)[: -len(".safetensors")])
                    hits += argmin(r["delta"]) == cls
                    hits_lo += argmin(r["delta_log_odds"]) == cls
                    n += 1
                    queries.append(r["queries"])
                rows.append((method, fraction, hits, hits_lo, n, statistics.mean(queries) if queries else 0))
        return rows

    def user_rows(self):
        """D_u's rows in the training split (what `unlearn --forget-indices` takes), in part order."""
        info = self.lethe("data", "info", "--data", DATA, "--split", self.p("split.json"), "--indices", "user",
                          out=self.p("user_rows.json"))
        return info["split"]["indices"]["user"]

    def sample_unlearned(self, position):
        """θ_u after approximate unlearning of D_u's sample at `position` (Hu's setting: one ascent step, lr 1)."""
        path = self.p("u", f"approx-sample_{position}.safetensors")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.model(path, "unlearn", "--model", self.p("theta_o.safetensors"), "--data", DATA,
                          "--forget-indices", str(self.user_rows()[position]), "--method", "hu-approx")

    def hu_recover(self, target, position, tag):
        out = self.p("attacks", f"hu-recover__{tag}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        os.makedirs(self.p("images"), exist_ok=True)
        return self.lethe("attack", "hu-recover", "--original", self.p("theta_o.safetensors"), "--unlearned", target,
                          "--data", DATA, "--sample", str(position), "--iterations", str(self.a.recover_iterations),
                          "--images", self.p("images"), out=out)

    def recover_table(self, positions):
        rows = []
        for position in positions:
            log(f"{self.net}: hu-recover of D_u's sample {position}")
            target = self.sample_unlearned(position)
            rows.append(self.hu_recover(target, position, os.path.basename(target)[: -len(".safetensors")]))
        return rows

    # --- defenses
    def defended(self, model, defense):
        """`model` under the defense (name, lethe defend arguments), saved in this net's defended/ folder; the model
        itself for "none"."""
        name, args = defense
        if args is None:
            return model
        os.makedirs(self.p("defended"), exist_ok=True)
        stem = os.path.basename(model)[: -len(".safetensors")]
        path = self.p("defended", stem + "__" + name.replace(" ", "-") + ".safetensors")
        extra = ["--data", DATA] if args[0] == "finetune" else []
        return self.model(path, "defend", *args, "--model", model, *extra)

    def zheng(self, attack, target, tag, zheng_work):
        out = self.p("attacks", f"{attack}__{tag}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        extra = ["--mode", "white"] if attack == "invert" else []
        return self.lethe("attack", attack, "--target", target, "--data", DATA, "--forget-count", "1", "--work",
                          os.path.join(zheng_work, "cache"), *extra, out=out)

    def matrix(self, zheng_work, samples):
        """One row per defense: Hu's label inference (exact, approximate; fraction 0.5, every class), feature
        recovery (`samples` samples), Zheng's parameter and white-box inversion attacks (retrain, every class), and
        the defended models' test accuracy."""
        rows = []
        for defense in DEFENSES:
            name = defense[0]
            row = {"defense": name}
            for method in ("exact", "approx"):
                hits, hits_lo, acc = 0, 0, []
                for cls in range(K):
                    log(f"{self.net}: {name} against hu-label, {method} unlearning of half of class {cls}")
                    d = self.defended(self.unlearned(method, cls, 0.5), defense)
                    r = self.hu_label(d, os.path.basename(d)[: -len(".safetensors")])
                    hits += argmin(r["delta"]) == cls
                    hits_lo += argmin(r["delta_log_odds"]) == cls
                    acc.append(self.accuracy(d))
                row[f"label_{method}"] = hits / K
                row[f"label_{method}_lo"] = hits_lo / K
                row[f"acc_{method}"] = statistics.mean(acc)
            psnr, psnr_hu, base = [], [], []
            for position in range(samples):
                log(f"{self.net}: {name} against hu-recover of sample {position}")
                d = self.defended(self.sample_unlearned(position), defense)
                r = self.hu_recover(d, position, os.path.basename(d)[: -len(".safetensors")])
                psnr.append(r["psnr"])
                psnr_hu.append(r["psnr_hu"])
                base.append(r["random_baseline"]["psnr"])
            row["psnr"], row["psnr_hu"], row["psnr_random"] = map(statistics.mean, (psnr, psnr_hu, base))
            if zheng_work:
                for attack in ("param", "invert"):
                    hits, acc = 0, []
                    for cls in range(K):
                        log(f"{self.net}: {name} against Zheng's {attack} attack, retrain target of class {cls}")
                        d = self.defended(os.path.join(zheng_work, f"u_retrain_{cls}.safetensors"), defense)
                        tag = "zheng_" + os.path.basename(d)[: -len(".safetensors")]
                        hits += self.zheng(attack, d, tag, zheng_work)["predicted"][0] == cls
                        acc.append(self.accuracy(d))
                    row[attack] = hits / K
                    row["acc_zheng"] = statistics.mean(acc)
            rows.append(row)
        return rows


def argmin(values):
    return min(range(len(values)), key=lambda k: values[k])


def fmt_pct(hits, n):
    return "n/a (no sample deleted)" if n == 0 else f"{100.0 * hits / n:.0f}% ({hits}/{n})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lethe", default=os.path.join(REPO_ROOT, "build", "lethe"))
    ap.add_argument("--work", default=os.path.join(REPO_ROOT, "build", "hu_eval"))
    ap.add_argument("--stages", default="setup,label,recover,matrix")
    ap.add_argument("--nets", default="lenet5")
    ap.add_argument("--fractions", default="0.01,0.1,0.25,0.5,1.0")
    ap.add_argument("--user-size", type=int, default=512, help="|D_u|")
    ap.add_argument("--user-batch", type=int, default=512,
                    help="θ_o's batch on D_u (hu-exact repeats the recipe); 512 with |D_u| = 512: one full-batch step")
    ap.add_argument("--samples", type=int, default=10, help="feature recovery: samples of D_u")
    ap.add_argument("--matrix-samples", type=int, default=2, help="feature recovery samples per defense")
    ap.add_argument("--recover-iterations", type=int, default=2000)
    ap.add_argument("--zheng-work", default=os.path.join(REPO_ROOT, "build", "param_attack_eval"),
                    help="bench/param_attack_table.py's work folder (its retrain targets); empty: skip Zheng's attacks")
    ap.add_argument("--label-args", default="", help="more `lethe attack hu-label` options (e.g. lighter ZOO settings)")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--out", default=None, help="markdown (default: stdout)")
    a = ap.parse_args()
    stages = a.stages.split(",")
    lines = []
    for net in a.nets.split(","):
        lab = Lab(a, net)
        lab.setup()
        lines.append(f"## {net}\n")
        lines.append(f"θ_0 test accuracy {100 * lab.accuracy(lab.p('theta0.safetensors')):.2f}%, θ_o "
                     f"{100 * lab.accuracy(lab.p('theta_o.safetensors')):.2f}%; D_u class sizes {lab.user_counts}\n")
        if "label" in stages:
            fractions = [float(f) for f in a.fractions.split(",")]
            lines.append("### Label inference (chance 10%)\n")
            lines.append("| unlearning | fraction of the class | accuracy (Δ p, Hu's) | accuracy (Δ log-odds) | "
                         "mean queries |")
            lines.append("|---|---|---|---|---|")
            for method, fraction, hits, hits_lo, n, q in lab.label_sweep(fractions):
                lines.append(f"| {method} | {fraction} | {fmt_pct(hits, n)} | {fmt_pct(hits_lo, n)} | {q:,.0f} |")
            lines.append("")
        if "recover" in stages:
            rows = lab.recover_table(range(a.samples))
            lines.append(f"### Feature recovery: approximate unlearning of one sample ({a.recover_iterations} "
                         "iterations, 5 restarts)\n")
            lines.append("| sample | label | MSE | PSNR (peak 1) | PSNR (Hu, peak 1/std) | SSIM | random: PSNR | "
                         "random: PSNR (Hu) | random: SSIM |")
            lines.append("|---|---|---|---|---|---|---|---|---|")
            for pos, r in enumerate(rows):
                b = r["random_baseline"]
                lines.append(f"| {pos} | {r['label']} | {r['mse']:.4f} | {r['psnr']:.2f} | {r['psnr_hu']:.2f} | "
                             f"{r['ssim']:.3f} | {b['psnr']:.2f} | {b['psnr_hu']:.2f} | {b['ssim']:.3f} |")
            mean = lambda key, base=False: statistics.mean((r["random_baseline"] if base else r)[key] for r in rows)
            lines.append(f"| mean | | {mean('mse'):.4f} | {mean('psnr'):.2f} | {mean('psnr_hu'):.2f} | "
                         f"{mean('ssim'):.3f} | {mean('psnr', True):.2f} | {mean('psnr_hu', True):.2f} | "
                         f"{mean('ssim', True):.3f} |\n")
        if "matrix" in stages:
            zheng = a.zheng_work if a.zheng_work and os.path.isdir(a.zheng_work) else ""
            rows = lab.matrix(zheng, a.matrix_samples)
            lines.append("### Defenses against every attack (ASR: chance 10%; PSNR: the random image's beside it)\n")
            head = ("| defense | test acc (Hu θ_u) | hu-label exact: Δ p (Δ log-odds) | hu-label approx: Δ p "
                    "(Δ log-odds) | hu-recover PSNR (Hu PSNR; random) |")
            rule = "|---|---|---|---|---|"
            if zheng:
                head += " test acc (Zheng targets) | param | invert (white) |"
                rule += "---|---|---|"
            lines += [head, rule]
            for r in rows:
                line = (f"| {r['defense']} | {100 * r['acc_exact']:.2f}% | {100 * r['label_exact']:.0f}% "
                        f"({100 * r['label_exact_lo']:.0f}%) | {100 * r['label_approx']:.0f}% "
                        f"({100 * r['label_approx_lo']:.0f}%) | {r['psnr']:.2f} ({r['psnr_hu']:.2f}; "
                        f"{r['psnr_random']:.2f}) |")
                if zheng:
                    line += f" {100 * r['acc_zheng']:.2f}% | {100 * r['param']:.0f}% | {100 * r['invert']:.0f}% |"
                lines.append(line)
            lines.append("")
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text)
        os.replace(a.out + ".tmp", a.out)
    else:
        print(text)


if __name__ == "__main__":
    main()
