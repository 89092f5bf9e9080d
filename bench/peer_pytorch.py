#!/usr/bin/env python3
"""PyTorch peer of bench/bench.cpp: the same three LeNet-5 workloads on the same data and thread count, the
fused parameter comparison (16 aux vectors against a ResNet-18-sized target: dot products and squared norms), the
white-box inversion step over 10 prototypes, inference on the batch of one GA generation (10 x 1024 images), and
one ZOO step of Hu et al.'s label-inference probe making (10 probes x 1568 queries).

Prints one JSON object per workload line (the same fields lethe_bench --json prints), so bench/run can put both
side by side. Exits 77 if torch is not importable, so callers can tell "peer skipped" from a failure.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the benchmark is optional wherever torch is not installed
    print(f"peer_pytorch: torch/numpy not available ({e}); peer skipped", file=sys.stderr)
    sys.exit(77)

MEAN, STD = 0.2860, 0.3530
TRAIN_BATCH, INFER_BATCH = 128, 1024
LR, MOMENTUM = 0.05, 0.9
GRAD_STEP, GRAD_STEPS, GRAD_WARMUP_STEPS = 0.1, 200, 20
N_SYNTHETIC = 60000


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        # Like Lethe's Model, the network takes pixels in [0, 1] and normalises them itself.
        x = (x - MEAN) / STD
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def read_idx(path, magic):
    """Reads an idx file (raw or gzip) into a numpy uint8 array, checking the magic and the size."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        raise ValueError(f"{path}: not an idx file with magic {magic:#010x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    header = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(raw) != header + count:
        raise ValueError(f"{path}: expected {header + count} bytes for dims {dims}, found {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_file(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def data_search_path():
    """The same order as Lethe's datasets/registry: $LETHE_DATA/NAME, ./data/NAME, /usr/share/datasets/NAME."""
    dirs = []
    if os.environ.get("LETHE_DATA"):
        dirs.append(os.path.join(os.environ["LETHE_DATA"], "fashion-mnist"))
    dirs += ["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"]
    return dirs


def synthetic_data():
    """Seeded stand-in for Fashion-MNIST, element for element the same as lethe_bench's fallback."""
    idx = np.arange(N_SYNTHETIC * 28 * 28, dtype=np.uint64)
    pixels = ((idx * np.uint64(2654435761) + np.uint64(12345)) & np.uint64(0xFFFFFFFF)) >> np.uint64(24)
    images = (pixels.astype(np.float32) / np.float32(255)).reshape(N_SYNTHETIC, 1, 28, 28)
    labels = np.arange(N_SYNTHETIC, dtype=np.int64) % 10
    return torch.from_numpy(images), torch.from_numpy(labels), "synthetic (seeded; Fashion-MNIST not found)"


def load_data():
    for directory in data_search_path():
        images_path = find_file(directory, "train-images-idx3-ubyte")
        labels_path = find_file(directory, "train-labels-idx1-ubyte")
        if images_path and labels_path:
            images = read_idx(images_path, 0x00000803)
            labels = read_idx(labels_path, 0x00000801)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
            x = torch.from_numpy(images.astype(np.float32) / np.float32(255)).unsqueeze(1).contiguous()
            y = torch.from_numpy(labels.astype(np.int64))
            return x, y, f"fashion-mnist train ({os.path.abspath(directory)})"
    return synthetic_data()


def train_epoch(model, opt, x, y, generator):
    """One shuffled epoch; tracks loss and accuracy like Lethe's trainer does."""
    model.train()
    n = x.shape[0]
    perm = torch.randperm(n, generator=generator)
    loss_sum, correct = 0.0, 0
    for start in range(0, n, TRAIN_BATCH):
        idx = perm[start:start + TRAIN_BATCH]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * xb.shape[0]
        correct += int((logits.detach().argmax(1) == yb).sum())
    return loss_sum / n, correct / n


def bench_train(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    generator = torch.Generator().manual_seed(0)
    train_epoch(model, opt, x, y, generator)  # warm-up epoch
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        train_epoch(model, opt, x, y, generator)
        runs.append(x.shape[0] / (time.perf_counter() - t0))
    return runs


def bench_infer(model, x):
    model.eval()
    batch = x[:INFER_BATCH].contiguous()
    runs = []
    with torch.no_grad():
        for rep in range(3 + 20):
            t0 = time.perf_counter()
            model(batch)
            elapsed = time.perf_counter() - t0
            if rep >= 3:
                runs.append(INFER_BATCH / elapsed)
    return runs


def first_of_each_class(y, classes=10):
    picks = []
    for k in range(classes):
        hits = (y == k).nonzero()
        if hits.numel() == 0:
            raise ValueError(f"no training image of class {k}")
        picks.append(int(hits[0]))
    return picks


def input_gradient_steps(model, x0, labels, steps):
    x = x0.clone().requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = (x - GRAD_STEP * grad).clamp_(0.0, 1.0)
        x.requires_grad_(True)
    return x.detach()


def bench_inputgrad(model, x, y):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    picks = first_of_each_class(y)
    x0 = x[picks].contiguous()
    labels = torch.arange(10, dtype=torch.int64)
    input_gradient_steps(model, x0, labels, GRAD_WARMUP_STEPS)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        input_gradient_steps(model, x0, labels, GRAD_STEPS)
        runs.append(GRAD_STEPS / (time.perf_counter() - t0))
    for p in model.parameters():
        p.requires_grad_(True)
    return runs


INVERT_STEPS, INVERT_WARMUP_STEPS, INVERT_LR, INVERT_TV, INVERT_L2 = 200, 20, 0.05, 0.005, 0.0005
GA_POPULATION, GA_GENERATIONS = 1024, 10


def invert_steps(model, x, labels, opt, steps):
    """Lethe's white-box inversion step: Adam on the pixels against -sum_i log p_k(x_i) + TV + L2, then the box."""
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        tv = ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum()
        loss = F.cross_entropy(model(x), labels, reduction="sum") + INVERT_TV * tv + INVERT_L2 * (x * x).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0.0, 1.0)


def bench_invert(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(10, 1, 28, 28, requires_grad=True)
    labels = torch.arange(10, dtype=torch.int64)
    opt = torch.optim.Adam([x], lr=INVERT_LR)
    invert_steps(model, x, labels, opt, INVERT_WARMUP_STEPS)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        invert_steps(model, x, labels, opt, INVERT_STEPS)
        runs.append(INVERT_STEPS / (time.perf_counter() - t0))
    for p in model.parameters():
        p.requires_grad_(True)
    return runs


def bench_ga_infer(model):
    """The peer of one GA generation (K = 10, P = 1024): PyTorch inference on a batch of the same 10240 images."""
    model.eval()
    batch = torch.rand(10 * GA_POPULATION, 1, 28, 28)
    runs = []
    with torch.no_grad():
        for rep in range(1 + GA_GENERATIONS):
            t0 = time.perf_counter()
            model(batch)
            elapsed = time.perf_counter() - t0
            if rep >= 1:
                runs.append(batch.shape[0] / elapsed)
    return runs


ZOO_COORDINATES, ZOO_H, ZOO_LR, ZOO_BETA1, ZOO_BETA2, ZOO_EPS, ZOO_STEPS = 1024, 1e-4, 0.1, 0.9, 0.999, 1e-8, 5


def zoo_step(model, x, labels, coords, adam):
    """One ZOO step of Hu et al.'s probe making (Lethe's attacks/hu_label.cpp): the 2S queries of every probe (x with
    pixel coords[a, j] moved by +h and by -h), one batched forward, f = -log p_y in float64 from the logits, the
    symmetric difference (f(x + h e_i) - f(x - h e_i)) / 2h per coordinate, and an Adam step of each drawn pixel with
    its own moments and step counter, clamped to [0, 1]. x [A, D], coords [A, S]; adam = (m, v, t), each [A, D]."""
    probes = x.shape[0]
    s = coords.shape[1]
    queries = x[:, None, None, :].repeat(1, s, 2, 1)  # [A, S, 2, D]: query 2j + sign of each probe
    offsets = torch.tensor([ZOO_H, -ZOO_H]).view(1, 1, 2, 1).expand(probes, s, 2, 1)
    queries.scatter_add_(3, coords[:, :, None, None].expand(probes, s, 2, 1), offsets)
    with torch.no_grad():
        logits = model(queries.view(-1, 1, 28, 28))
    log_p = F.log_softmax(logits.double(), dim=1).view(probes, s, 2, -1)
    f = -log_p.gather(3, labels.view(probes, 1, 1, 1).expand(probes, s, 2, 1)).squeeze(3)
    g = ((f[:, :, 0] - f[:, :, 1]) / (2 * ZOO_H)).float()
    m, v, t = adam
    t_c = t.gather(1, coords) + 1
    m_c = ZOO_BETA1 * m.gather(1, coords) + (1 - ZOO_BETA1) * g
    v_c = ZOO_BETA2 * v.gather(1, coords) + (1 - ZOO_BETA2) * g * g
    m_hat = m_c / (1 - ZOO_BETA1 ** t_c)
    v_hat = v_c / (1 - ZOO_BETA2 ** t_c)
    x_c = (x.gather(1, coords) - ZOO_LR * m_hat / (v_hat.sqrt() + ZOO_EPS)).clamp_(0.0, 1.0)
    for tensor, update in ((x, x_c), (m, m_c), (v, v_c), (t, t_c)):
        tensor.scatter_(1, coords, update)


def bench_zoo(model):
    """ZOO steps over one probe per class (10 x 2 x 784 = 15680 queries a step), as lethe_bench's bench_zoo: 1
    warm-up step, then the median of 5, in images/s (queries/s). Every pixel is drawn when S >= D, as the attack
    does."""
    model.eval()
    probes, pixels = 10, 28 * 28
    s = min(ZOO_COORDINATES, pixels)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(probes, pixels, generator=gen).clamp_(0.0, 1.0)
    adam = (torch.zeros(probes, pixels), torch.zeros(probes, pixels), torch.zeros(probes, pixels))
    labels = torch.arange(probes)
    runs = []
    for step in range(1 + ZOO_STEPS):
        t0 = time.perf_counter()
        if s < pixels:
            coords = torch.rand(probes, pixels, generator=gen).argsort(dim=1)[:, :s]
        else:
            coords = torch.arange(pixels).repeat(probes, 1)
        zoo_step(model, x, labels, coords, adam)
        elapsed = time.perf_counter() - t0
        if step >= 1:
            runs.append(probes * 2 * s / elapsed)
    return runs


COMPARE_AUX, COMPARE_REPS = 16, 7


def resnet18_bounds():
    """ResNet-18's parameter tensors in order (CIFAR stem, 10 classes), as lethe_bench's resnet18_bounds()."""
    sizes = [64 * 3 * 9, 64, 64]
    cin = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            sizes += [cin * width * 9, width, width, width * width * 9, width, width]
            if block == 0 and width != 64:
                sizes += [cin * width, width, width]
            cin = width
    sizes += [512 * 10, 10]
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    return bounds


def compare_segment(aux, t, scratch):
    """The four sums of Lethe's compare_params for one segment, in the cheapest eager torch expressions that sum
    the same terms: a GEMV for a.t, norm reductions (no temporaries) for |a|^2 and |t|^2, and |a - t|^2 summed
    directly (a.a - 2 a.t + t.t would cancel), chunk by chunk through a preallocated cache-sized buffer, since a
    whole [16, P] temporary costs more in page faults than the arithmetic. Three passes over aux in all."""
    dot = torch.mv(aux, t)
    aux_sq = torch.linalg.vector_norm(aux, dim=1).square()
    target_sq = torch.dot(t, t)
    diff_sq = torch.zeros(aux.shape[0], dtype=torch.float64)
    chunk = scratch.shape[1]
    for lo in range(0, aux.shape[1], chunk):
        hi = min(lo + chunk, aux.shape[1])
        d = torch.sub(aux[:, lo:hi], t[lo:hi], out=scratch[:, :hi - lo])
        diff_sq += torch.linalg.vector_norm(d, dim=1).double().square()
    return dot, aux_sq, target_sq, diff_sq


def bench_compare(layers):
    bounds = resnet18_bounds()
    p = bounds[-1]
    if not layers:
        bounds = [0, p]
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(p, generator=gen) * 0.2 - 0.1
    aux = torch.rand(COMPARE_AUX, p, generator=gen) * 0.2 - 0.1
    nbytes = (COMPARE_AUX + 1) * p * 4
    scratch = torch.empty(COMPARE_AUX, 65536)
    runs = []
    with torch.no_grad():
        for rep in range(1 + COMPARE_REPS):
            t0 = time.perf_counter()
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                compare_segment(aux[:, lo:hi], t[lo:hi], scratch)
            elapsed = time.perf_counter() - t0
            if rep > 0:
                runs.append(nbytes / elapsed / 1e9)
    return runs


def emit(workload, metric, runs, threads, data, as_json):
    record = {"impl": "pytorch", "version": torch.__version__, "workload": workload, "metric": metric,
              "median": statistics.median(runs), "runs": runs, "threads": threads, "data": data}
    if as_json:
        print(json.dumps(record), flush=True)
    else:
        print(f"pytorch {workload:10s} {record['median']:12.1f} {metric}  (runs: "
              + ", ".join(f"{r:.1f}" for r in runs) + ")", flush=True)


def profile(model, x, y):
    """Operator-level breakdown of one training step, inference, and one input-gradient step (stderr)."""
    from torch.autograd import profiler
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xb, yb = x[:TRAIN_BATCH], y[:TRAIN_BATCH]

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    model.train()
    step()
    with profiler.profile() as prof:
        for _ in range(20):
            step()
    print("== pytorch train step (batch 128, 20 steps)", file=sys.stderr)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    model.eval()
    with torch.no_grad(), profiler.profile() as prof:
        for _ in range(5):
            model(x[:INFER_BATCH])
    print("== pytorch inference (batch 1024, 5 passes)", file=sys.stderr)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", choices=["train", "infer", "inputgrad", "compare", "invert", "ga", "zoo"])
    parser.add_argument("--json", action="store_true", help="one JSON object per workload line")
    parser.add_argument("--profile", action="store_true", help="print torch's operator profile to stderr")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be >= 1")

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)  # only allowed before any parallel work; harmless if refused
    except RuntimeError:
        pass
    torch.manual_seed(0)
    compare_data = "synthetic uniform values, 16 aux x 11173962 floats"
    if args.only == "compare":
        emit("compare", "GB/s", bench_compare(False), args.threads, compare_data, args.json)
        emit("compare_layers", "GB/s", bench_compare(True), args.threads, compare_data, args.json)
        return
    x, y, data = load_data()
    model = LeNet5()

    if args.profile:
        profile(model, x, y)
        return
    if args.only in (None, "train"):
        emit("train", "images/s", bench_train(model, x, y), args.threads, data, args.json)
    if args.only in (None, "infer"):
        emit("infer", "images/s", bench_infer(model, x), args.threads, data, args.json)
    if args.only in (None, "inputgrad"):
        emit("inputgrad", "steps/s", bench_inputgrad(model, x, y), args.threads, data, args.json)
    if args.only in (None, "invert"):
        emit("invert", "steps/s", bench_invert(model), args.threads, data, args.json)
    if args.only in (None, "ga"):
        emit("ga", "images/s", bench_ga_infer(model), args.threads, data, args.json)
    if args.only in (None, "zoo"):
        emit("zoo", "images/s", bench_zoo(model), args.threads, data, args.json)
    if args.only is None:
        del x, y, model
        emit("compare", "GB/s", bench_compare(False), args.threads, compare_data, args.json)
        emit("compare_layers", "GB/s", bench_compare(True), args.threads, compare_data, args.json)


if __name__ == "__main__":
    main()
