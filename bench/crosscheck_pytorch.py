#!/usr/bin/env python3
"""Cross-checks Lethe against PyTorch on the same weights and inputs, in both directions.

lethe->torch: `lethe train` writes a model; PyTorch loads it with load_state_dict(strict=True) into a module
              defined below and computes logits for random inputs, which `lethe predict` also computes.
torch->lethe: a PyTorch-initialised module (with randomised BatchNorm statistics, so eval-mode BatchNorm is
              exercised) is saved as safetensors with Lethe's metadata keys; `lethe predict` must reproduce it.

Error measure, per model: rel_err = max|lethe - torch| / max(max|torch|, 1e-6) over all logits, where torch is the
float64 forward pass of the same float32 weights (so rel_err is Lethe's own error, not PyTorch's float32 rounding;
the torch_f32 column shows PyTorch's float32 error by the same measure, for scale). Tolerance: 1e-4.

Training data: a small fashion-mnist-format directory made here (the first images of the installed fashion-mnist
when found, else random pixels and labels), so `lethe train` does not spend minutes evaluating a 10,000-image test
split.

Exit status: 0 all checks pass, 1 a check failed, 2 usage error, 77 torch/numpy not importable (skip).
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict

try:
    import numpy  # noqa: F401  (tensor.numpy() below needs it)
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print(f"crosscheck_pytorch: torch/numpy not available ({e}); skipped", file=sys.stderr)
    sys.exit(77)

TOLERANCE = 1e-4
FMNIST_MEAN, FMNIST_STD = [0.2860], [0.3530]
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]

# ---------------------------------------------------------------------------------------------------------------
# safetensors: just enough to read Lethe's files and write PyTorch's (F32 and I64, as Lethe supports).

ST_DTYPES = {"F32": (torch.float32, 4), "I64": (torch.int64, 8)}
ST_NAMES = {torch.float32: "F32", torch.int64: "I64"}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype, size = ST_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = 1
        for d in info["shape"]:
            numel *= d
        if end - begin != numel * size or base + end > len(data):
            raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} do not fit shape {info['shape']}")
        buf = bytearray(data[base + begin:base + end])  # frombuffer needs a writable buffer to avoid a warning
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(info["shape"])
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data aligned to 8 bytes, like the reference writer
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------------------------------------------
# The architectures, with the state-dict names Lethe uses.

class LeNet5(nn.Module):
    def __init__(self, c, h, w, k):
        super().__init__()
        side = lambda s: (s // 2 - 4) // 2  # noqa: E731  pool, 5x5 valid conv, pool
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * side(h) * side(w), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, k)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class ConvNet(nn.Module):
    """Hu et al.'s ConvNet (TASI-LAB recovery/nn/models.py, width 64). The official OrderedDict lists conv6/bn6/relu6
    twice; a repeated key keeps one entry, so there are eight convs. The Linear width follows the input size."""

    def __init__(self, c, h, w, k, width=64):
        super().__init__()
        widths = [width, 2 * width, 2 * width, 4 * width, 4 * width, 4 * width, 4 * width, 4 * width]
        layers, cin = OrderedDict(), c
        for i, cout in enumerate(widths):
            layers[f"conv{i}"] = nn.Conv2d(cin, cout, kernel_size=3, padding=1)
            layers[f"bn{i}"] = nn.BatchNorm2d(cout)
            layers[f"relu{i}"] = nn.ReLU()
            if i == 5:
                layers["pool0"] = nn.MaxPool2d(3)
            if i == 7:
                layers["pool1"] = nn.MaxPool2d(3)
            cin = cout
        layers["flatten"] = nn.Flatten()
        layers["linear"] = nn.Linear(cin * (h // 3 // 3) * (w // 3 // 3), k)
        self.model = nn.Sequential(layers)

    def forward(self, x):
        return self.model(x)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout, CIFAR-style: 3x3 stride-1 stem and no max pool."""

    def __init__(self, c, h, w, k):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 64
        for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, k)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MLP(nn.Module):
    def __init__(self, c, h, w, k, hidden):
        super().__init__()
        widths = [c * h * w] + list(hidden) + [k]
        for i in range(len(widths) - 1):
            setattr(self, f"fc{i + 1}", nn.Linear(widths[i], widths[i + 1]))
        self.depth = len(widths) - 1

    def forward(self, x):
        x = torch.flatten(x, 1)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"fc{i}")(x)
            if i < self.depth:
                x = F.relu(x)
        return x


def build(arch, c, h, w, k, hidden=()):
    if arch == "lenet5":
        return LeNet5(c, h, w, k)
    if arch == "convnet":
        return ConvNet(c, h, w, k)
    if arch == "resnet18":
        return ResNet18(c, h, w, k)
    if arch == "mlp":
        return MLP(c, h, w, k, hidden)
    raise ValueError(f"unknown arch {arch}")


# ---------------------------------------------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def run(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise CheckFailed(f"`{' '.join(cmd)}` exited {proc.returncode}: " + " | ".join(tail))
    return proc.stdout


def idx_pair(directory, prefix):
    """(images, labels) raw IDX bytes of one split, plain or gzipped, or None if absent."""
    out = []
    for base in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        for name, opener in ((base, open), (base + ".gz", gzip.open)):
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                with opener(path, "rb") as f:
                    out.append(f.read())
                break
        else:
            return None
    return out


def make_small_fmnist(dest, n_train, n_test, seed):
    """A fashion-mnist-format directory with the first n images of each split; returns where they came from."""
    os.makedirs(dest)
    roots = [os.path.join(os.environ["LETHE_DATA"], "fashion-mnist")] if os.environ.get("LETHE_DATA") else []
    roots += ["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"]
    source = next((r for r in roots if idx_pair(r, "train") and idx_pair(r, "t10k")), None)
    gen = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if source:
            images, labels = idx_pair(source, prefix)
            pixels, targets = images[16:16 + n * 784], labels[8:8 + n]
        else:
            pixels = torch.randint(0, 256, (n * 784,), generator=gen, dtype=torch.uint8).numpy().tobytes()
            targets = torch.randint(0, 10, (n,), generator=gen, dtype=torch.uint8).numpy().tobytes()
        with open(os.path.join(dest, f"{prefix}-images-idx3-ubyte"), "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
        with open(os.path.join(dest, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + targets)
    return source or "random pixels and labels (no fashion-mnist found)"


def parse_spec(metadata, path):
    for key in ("format", "arch", "input_shape", "num_classes", "mean", "std"):
        if key not in metadata:
            raise CheckFailed(f"{path}: metadata key '{key}' missing")
    if metadata["format"] != "pt":
        raise CheckFailed(f"{path}: metadata format is '{metadata['format']}', expected 'pt'")
    c, h, w = json.loads(metadata["input_shape"])
    return {
        "arch": metadata["arch"], "shape": (c, h, w), "classes": int(metadata["num_classes"]),
        "hidden": json.loads(metadata.get("hidden", "[]")),
        "mean": json.loads(metadata["mean"]), "std": json.loads(metadata["std"]),
    }


def torch_logits(module, spec, x):
    """Logits in float64 and float32 for pixels x, with the model's normalisation applied first."""
    c = spec["shape"][0]

    def normalise(x, dtype):
        if not spec["mean"]:
            return x.to(dtype)
        # The metadata values as the float32 numbers Lethe uses.
        mean = torch.tensor(spec["mean"], dtype=torch.float32).to(dtype).view(1, c, 1, 1)
        std = torch.tensor(spec["std"], dtype=torch.float32).to(dtype).view(1, c, 1, 1)
        return (x.to(dtype) - mean) / std

    module.eval()
    with torch.no_grad():
        ref64 = module.double()(normalise(x, torch.float64))
        ref32 = module.float()(normalise(x, torch.float32))
    return ref64, ref32


def rel_err(a, ref):
    return ((a.double() - ref).abs().max() / max(ref.abs().max().item(), 1e-6)).item()


def lethe_predict(lethe, model_path, x, work, tag):
    inp, out = os.path.join(work, f"{tag}-input.safetensors"), os.path.join(work, f"{tag}-logits.safetensors")
    write_safetensors(inp, {"input": x}, {})
    run([lethe, "predict", "--model", model_path, "--input", inp, "--out", out, "-q"])
    tensors, _ = read_safetensors(out)
    if "logits" not in tensors:
        raise CheckFailed(f"{out}: no 'logits' tensor")
    return tensors["logits"]


def compare(direction, spec, module, model_path, lethe, work, n, seed):
    c, h, w = spec["shape"]
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    tag = f"{direction}-{spec['arch']}-{c}x{h}x{w}".replace(">", "")
    logits = lethe_predict(lethe, model_path, x, work, tag)
    ref64, ref32 = torch_logits(module, spec, x)
    if tuple(logits.shape) != tuple(ref64.shape):
        raise CheckFailed(f"lethe logits {list(logits.shape)} vs torch {list(ref64.shape)}")
    agree = int((logits.argmax(1) == ref64.argmax(1)).sum())
    return rel_err(logits, ref64), rel_err(ref32, ref64), f"{agree}/{n}"


def lethe_to_torch(arch, lethe, work, data_dir, limit, batch, n, seed):
    model_path = os.path.join(work, f"lethe-{arch}.safetensors")
    run([lethe, "train", "--net", arch, "--data", f"fashion-mnist:{data_dir}", "--limit", str(limit), "--epochs", "1",
         "--batch", str(batch), "--seed", str(seed), "--out", model_path, "-q"])
    tensors, metadata = read_safetensors(model_path)
    spec = parse_spec(metadata, model_path)
    if spec["arch"] != arch:
        raise CheckFailed(f"{model_path}: metadata arch '{spec['arch']}', expected '{arch}'")
    json.loads(metadata.get("lethe", "{}"))  # provenance must be JSON
    module = build(arch, *spec["shape"], spec["classes"], spec["hidden"])
    expected = module.state_dict()
    for name, t in tensors.items():
        if name in expected and t.dtype != expected[name].dtype:
            raise CheckFailed(f"{model_path}: {name} is {t.dtype}, PyTorch has {expected[name].dtype}")
    module.load_state_dict(tensors, strict=True)  # raises on a missing, unexpected or mis-shaped tensor
    return spec, module, model_path


def randomise_batchnorm(module, gen):
    """Non-trivial running statistics and affine parameters, so eval-mode BatchNorm is really compared."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(7)


def torch_to_lethe(arch, shape, classes, mean, std, lethe, work, n, seed, hidden=()):
    torch.manual_seed(seed)
    module = build(arch, *shape, classes, hidden)
    randomise_batchnorm(module, torch.Generator().manual_seed(seed))
    metadata = {
        "format": "pt", "arch": arch, "input_shape": json.dumps(list(shape), separators=(",", ":")),
        "num_classes": str(classes), "mean": json.dumps(mean), "std": json.dumps(std),
    }
    if arch == "mlp":
        metadata["hidden"] = json.dumps(list(hidden), separators=(",", ":"))
    c, h, w = shape
    model_path = os.path.join(work, f"torch-{arch}-{c}x{h}x{w}.safetensors")
    write_safetensors(model_path, module.state_dict(), metadata)
    spec = parse_spec(metadata, model_path)
    return spec, module, model_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lethe", default=os.environ.get("LETHE_BIN"), help="lethe binary (default: $LETHE_BIN)")
    parser.add_argument("--n", type=int, default=16, help="random input images per model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fast", action="store_true", help="skip training resnet18 (the slowest check)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if not args.lethe or not os.access(args.lethe, os.X_OK):
        print("crosscheck_pytorch: give the lethe binary with --lethe or $LETHE_BIN", file=sys.stderr)
        return 2

    tmp_root = os.environ.get("LETHE_TEST_TMP") or None
    if tmp_root:
        os.makedirs(tmp_root, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lethe-crosscheck-", dir=tmp_root)
    data_dir = os.path.join(work, "fashion-mnist")
    source = make_small_fmnist(data_dir, n_train=512, n_test=64, seed=args.seed)

    # (direction, arch, how to get (spec, module, path)). Training uses the CLI's own flags.
    checks = [
        ("lethe->torch", "lenet5", lambda: lethe_to_torch("lenet5", args.lethe, work, data_dir, 512, 128, args.n, args.seed)),
    ]
    if not args.fast:
        checks.append(("lethe->torch", "resnet18",
                       lambda: lethe_to_torch("resnet18", args.lethe, work, data_dir, 128, 32, args.n, args.seed)))
    checks += [
        ("torch->lethe", "lenet5",
         lambda: torch_to_lethe("lenet5", (1, 28, 28), 10, FMNIST_MEAN, FMNIST_STD, args.lethe, work, args.n, args.seed)),
        ("torch->lethe", "lenet5",
         lambda: torch_to_lethe("lenet5", (3, 32, 32), 10, CIFAR_MEAN, CIFAR_STD, args.lethe, work, args.n, args.seed)),
        ("torch->lethe", "resnet18",
         lambda: torch_to_lethe("resnet18", (1, 28, 28), 10, FMNIST_MEAN, FMNIST_STD, args.lethe, work, args.n, args.seed)),
        ("torch->lethe", "resnet18",
         lambda: torch_to_lethe("resnet18", (3, 32, 32), 10, CIFAR_MEAN, CIFAR_STD, args.lethe, work, args.n, args.seed)),
        ("torch->lethe", "convnet",
         lambda: torch_to_lethe("convnet", (1, 28, 28), 10, FMNIST_MEAN, FMNIST_STD, args.lethe, work, args.n, args.seed)),
        ("torch->lethe", "mlp",
         lambda: torch_to_lethe("mlp", (1, 28, 28), 10, [], [], args.lethe, work, args.n, args.seed, hidden=(64, 32))),
    ]

    print(f"crosscheck: lethe vs PyTorch {torch.__version__}, {args.n} random inputs in [0, 1] per model")
    print(f"training data: {source}")
    print(f"rel_err = max|lethe - torch| / max(max|torch|, 1e-6) over all logits, torch in float64; "
          f"tolerance {TOLERANCE:g}")
    row = "{:<13} {:<9} {:<8} {:>10} {:>10} {:>7}  {}"
    print(row.format("direction", "arch", "input", "rel_err", "torch_f32", "argmax", "result"))
    failures = 0
    for i, (direction, arch, setup) in enumerate(checks):
        try:
            spec, module, model_path = setup()
            c, h, w = spec["shape"]
            err, err32, agree = compare(direction, spec, module, model_path, args.lethe, work, args.n, args.seed + i)
            ok = err <= TOLERANCE
            failures += not ok
            print(row.format(direction, arch, f"{c}x{h}x{w}", f"{err:.2e}", f"{err32:.2e}", agree,
                             "PASS" if ok else "FAIL"), flush=True)
        except (CheckFailed, RuntimeError, ValueError, KeyError, OSError) as e:
            failures += 1
            print(row.format(direction, arch, "-", "-", "-", "-", f"FAIL: {e}"), flush=True)

    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"crosscheck: {len(checks) - failures}/{len(checks)} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
