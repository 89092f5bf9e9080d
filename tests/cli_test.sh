#!/usr/bin/env bash
# End-to-end checks of the `lethe` command line: exit codes and error messages for bad usage and malformed files,
# and, when Fashion-MNIST is installed, a train -> eval -> info -> predict round trip.
# Run by ctest as `lethe_cli` with LETHE_BIN set; by hand: LETHE_BIN=build/lethe bash tests/cli_test.sh
set -u

LETHE=${LETHE_BIN:-build/lethe}
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -x "$LETHE" ]; then
  echo "FAIL: LETHE_BIN ($LETHE) is not an executable"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lethe_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
skipped=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
skip() { echo "SKIP: $1"; skipped=$((skipped + 1)); }

# lethe ARGS...: runs the binary, leaving its exit code in $rc and its output in $tmp/out and $tmp/err.
lethe() {
  "$LETHE" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
stderr_excerpt() { head -c 600 "$tmp/err" | tr '\n' ' '; }

# expect NAME WANT_RC [TEXT...]: the last run exited WANT_RC, and stderr contains every TEXT.
expect() {
  local name=$1 want=$2
  shift 2
  if [ "$rc" -ne "$want" ]; then
    fail "$name: exit code $rc, expected $want; stderr: $(stderr_excerpt)"
    return
  fi
  local text
  for text in "$@"; do
    if ! grep -qF -- "$text" "$tmp/err"; then
      fail "$name: stderr lacks '$text'; stderr: $(stderr_excerpt)"
      return
    fi
  done
  pass "$name"
}

# A safetensors file from a header string and a number of data bytes (little-endian u64 length, then the header).
write_safetensors_raw() {
  local path=$1 header=$2 data_bytes=$3
  local n=${#header}
  printf "$(printf '\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)))\\x00\\x00\\x00\\x00\\x00\\x00" >"$path"
  printf '%s' "$header" >>"$path"
  head -c "$data_bytes" /dev/zero >>"$path"
}

# --- usage ------------------------------------------------------------------------------------------------------
lethe --help
expect "--help exits 0" 0
grep -q "train" "$tmp/out" || fail "--help lists no train command"
for cmd in train eval info predict data "data info" "data split" unlearn attack "attack param" "attack invert" \
  "attack hu-recover" "attack hu-label" defend "defend prune" "defend noise" "defend finetune"; do
  # shellcheck disable=SC2086  # "data info" is two words on purpose
  lethe $cmd --help
  expect "$cmd --help exits 0" 0
done
lethe --version
expect "--version exits 0" 0
grep -q "^lethe [0-9]" "$tmp/out" || fail "--version prints no 'lethe X.Y.Z': $(cat "$tmp/out")"

lethe
expect "no command exits 2" 2 "lethe: error:"
lethe train --no-such-option --out "$tmp/m.safetensors"
expect "unknown option exits 2" 2 "lethe: error:" "--no-such-option"
lethe train --epochs 0 --out "$tmp/m.safetensors"
expect "--epochs 0 exits 2" 2 "lethe: error:"
lethe train --net no-such-net --out "$tmp/m.safetensors"
expect "unknown --net exits 2" 2 "lethe: error:"
lethe train --data no-such-dataset --out "$tmp/m.safetensors"
expect "unknown dataset name exits 2" 2 "lethe: error:" "no-such-dataset"
lethe train --out "$tmp/no/such/dir/m.safetensors"
expect "--out in a missing directory exits 2" 2 "$tmp/no/such/dir"

# A CPU-only build must refuse cuda with a message that says so; with a GPU present only failure is required
# (the model file below does not exist).
lethe eval --device cuda --model "$tmp/absent.safetensors"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  [ "$rc" -ne 0 ] && pass "--device cuda (GPU machine) fails on a missing model" || fail "--device cuda exit 0"
elif [ "$rc" -ne 0 ] && grep -qi "cuda" "$tmp/err" && grep -q "lethe: error:" "$tmp/err"; then
  pass "--device cuda fails clearly (exit $rc)"
else
  fail "--device cuda: exit $rc, stderr: $(stderr_excerpt)"
fi

lethe eval --device cuda:x --model "$tmp/absent.safetensors"
expect "--device cuda:x exits 2" 2 "cuda:K"
lethe eval --device cuda:7 --model "$tmp/absent.safetensors"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  [ "$rc" -ne 0 ] && pass "--device cuda:7 (GPU machine) fails" || fail "--device cuda:7 exit 0"
else
  expect "--device cuda:7 without a GPU exits 2" 2 "cuda:7"
fi

# --- malformed model files: exit 3, and the message names the file --------------------------------------------
: >"$tmp/empty.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":' >"$tmp/truncated_header.safetensors"
write_safetensors_raw "$tmp/truncated_data.safetensors" \
  '{"w":{"dtype":"F32","shape":[10,10],"data_offsets":[0,400]}}' 10
write_safetensors_raw "$tmp/garbage_header.safetensors" 'this is not json at all!' 0
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >"$tmp/huge_header.safetensors"
write_safetensors_raw "$tmp/not_a_model.safetensors" '{"__metadata__":{"arch":"lenet5"}}' 0
for name in empty truncated_header truncated_data garbage_header huge_header not_a_model; do
  model="$tmp/$name.safetensors"
  lethe info "$model"
  expect "info on $name model exits 3" 3 "lethe: error:" "$model"
  lethe eval --model "$model" --data fashion-mnist
  expect "eval on $name model exits 3" 3 "lethe: error:" "$model"
done
lethe info "$tmp/absent.safetensors"
expect "info on a missing file exits 3" 3 "$tmp/absent.safetensors"

# --- malformed datasets: exit 3, and the message names the place --------------------------------------------------
lethe train --data fashion-mnist:/nonexistent --epochs 1 --out "$tmp/m.safetensors"
expect "--data fashion-mnist:/nonexistent exits 3" 3 "lethe: error:" "/nonexistent"

bad_idx="$tmp/bad-idx"
mkdir -p "$bad_idx"
for base in train-images-idx3-ubyte t10k-images-idx3-ubyte; do
  printf '\x00\x00\x08\x99\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$bad_idx/$base"  # bad magic
  head -c 784 /dev/zero >>"$bad_idx/$base"
done
for base in train-labels-idx1-ubyte t10k-labels-idx1-ubyte; do
  printf '\x00\x00\x08\x01\x00\x00\x00\x01\x00' >"$bad_idx/$base"
done
lethe train --data "fashion-mnist:$bad_idx" --epochs 1 --out "$tmp/m.safetensors"
expect "idx file with a bad magic exits 3" 3 "lethe: error:" "$bad_idx"

short_idx="$tmp/short-idx"
cp -r "$bad_idx" "$short_idx"
for base in train-images-idx3-ubyte t10k-images-idx3-ubyte; do  # claims 1000 images, holds one
  printf '\x00\x00\x08\x03\x00\x00\x03\xe8\x00\x00\x00\x1c\x00\x00\x00\x1c' >"$short_idx/$base"
  head -c 784 /dev/zero >>"$short_idx/$base"
done
lethe train --data "fashion-mnist:$short_idx" --epochs 1 --out "$tmp/m.safetensors"
expect "truncated idx file exits 3" 3 "lethe: error:" "$short_idx"

# --- every official format: data info, training, splits, and corrupt files -----------------------------------------
MAKE_FIXTURES=${LETHE_MAKE_FIXTURES:-build/lethe_make_fixtures}
if [ ! -x "$MAKE_FIXTURES" ] || ! command -v python3 >/dev/null 2>&1; then
  fail "LETHE_MAKE_FIXTURES ($MAKE_FIXTURES) is not an executable, or python3 is missing"
else
  # format, net, extra train options
  while read -r fmt net opts; do
    dir="$tmp/fx-$fmt"
    "$MAKE_FIXTURES" "$fmt" "$dir" 40 12 3 || fail "lethe_make_fixtures $fmt"
    lethe data info --data "$fmt:$dir" --json
    if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
fmt = sys.argv[1]
train, test = r["splits"]["train"], r["splits"]["test"]
per_class_train = 3 * 40 if fmt == "folder" else 40  # the folder fixture has 40 images in each of 3 classes
assert train["n"] == per_class_train and sum(train["per_class"]) == train["n"], train
assert test["n"] == (3 * 12 if fmt == "folder" else 12), test
assert len(r["class_names"]) == r["num_classes"] == len(train["per_class"])
assert r["shape"] == {"folder": [3, 20, 24], "stl10": [3, 96, 96]}.get(fmt, [3, 32, 32]), r["shape"]
' "$fmt" <"$tmp/out"; then
      pass "data info --data $fmt:DIR --json: splits, shape and per-class counts"
    else
      fail "data info $fmt (exit $rc): $(head -c 400 "$tmp/out") $(stderr_excerpt)"
    fi
    lethe data info --data "$fmt:$dir"
    expect "data info $fmt (text)" 0
    grep -q "total" "$tmp/out" || fail "data info $fmt text has no count table: $(head -c 400 "$tmp/out")"

    # shellcheck disable=SC2086  # opts is a list of options
    lethe train --data "$fmt:$dir" --net "$net" --epochs 1 --batch 16 --threads 2 $opts --out "$tmp/$fmt.safetensors"
    expect "train --data $fmt:DIR --net $net $opts" 0
    lethe info "$tmp/$fmt.safetensors" --json
    if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
meta = json.load(sys.stdin)["metadata"]["lethe"]
assert meta["dataset"] == sys.argv[1], meta["dataset"]
split = meta["split"]
assert len(split["hash"]) == 16 and len(split["indices_hash"]) == 16 and split["part"] == "train", split
assert "augment" in meta["train"], meta["train"]
' "$fmt" <"$tmp/out"; then
      pass "the $fmt model records its data, split hash and augmentation"
    else
      fail "info --json of the $fmt model (exit $rc): $(head -c 600 "$tmp/out")"
    fi
  done <<'LIST'
cifar10 resnet18
cifar100 lenet5 --label coarse
svhn lenet5
stl10 lenet5 --resize 32x32
folder lenet5 --resize 32x32
LIST

  # An experiment split: written by `data split`, used by train (--part retain) and eval (--part forget).
  cdir="$tmp/fx-cifar10"
  lethe data split --data "cifar10:$cdir" --seed 4 --aux-fraction 0.25 --forget-classes 3 --out "$tmp/split.json"
  expect "data split exits 0" 0
  grep -q "forget" "$tmp/out" || fail "data split prints no part table: $(head -c 400 "$tmp/out")"
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 1 --batch 16 --split "$tmp/split.json" --part retain \
    --out "$tmp/retain.safetensors" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
split = json.load(open(sys.argv[1]))
assert r["split"]["hash"] == split["hash"] and r["split"]["part"] == "retain", r["split"]
assert r["train_samples"] == split["counts"]["retain"] == split["counts"]["train"] - split["counts"]["forget"]
assert split["counts"]["forget"] == 3  # class 3 holds 4 of the 40 images; a quarter of each class went to aux
' "$tmp/split.json" <"$tmp/out"; then
    pass "train --split FILE --part retain trains on the retain part and records the split"
  else
    fail "train --part retain (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe eval --model "$tmp/retain.safetensors" --data "cifar10:$cdir" --part forget --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["n"] == 3 and r["split"]["part"] == "forget", r
assert r["per_class_count"][3] == 3
' <"$tmp/out"; then
    pass "eval --part forget uses the split recorded in the model"
  else
    fail "eval --part forget (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe data split --data "cifar10:$cdir" --forget-fraction 3:1.5 --out "$tmp/bad.json"
  expect "data split with a fraction above 1 exits 2" 2 "3:1.5"
  lethe data split --data "cifar10:$cdir" --forget-indices 40 --out "$tmp/bad.json"
  expect "data split with an index outside the data exits 2" 2 "forget index 40"
  printf '{"seed": 1, "aux_fractoin": 0.1}' >"$tmp/typo.json"
  lethe train --data "cifar10:$cdir" --split "$tmp/typo.json" --epochs 1 --out "$tmp/m.safetensors"
  expect "a split file with an unknown field exits 3" 3 "aux_fractoin"
  lethe train --data "svhn:$tmp/fx-svhn" --split "$tmp/split.json" --epochs 1 --out "$tmp/m.safetensors"
  expect "a split made for another dataset exits 2" 2 "cifar10"

  # Unlearning: the forget set comes from the split recorded in the model; retraining is `train --part retain`.
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 2 --batch 8 --seed 3 --quiet --out "$tmp/orig.safetensors"
  expect "train the model to unlearn" 0
  lethe unlearn --model "$tmp/orig.safetensors" --data "cifar10:$cdir" --method retrain --forget 3 \
    --out "$tmp/u-retrain.safetensors" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
for key in ("method", "forget", "UA", "RA", "TA", "forgotten_test_acc", "MIA", "seconds", "steps"):
    assert key in r, "missing key " + key
assert r["method"] == "retrain" and r["forget"] == [3] and r["n_forget"] == 4 and r["n_retain"] == 36, r
assert r["steps"] == 2 * 5  # 2 epochs of 36 images in batches of 8
assert r["forgotten_test_acc"] == 0.0  # the retrained model never saw class 3
' <"$tmp/out"; then
    pass "unlearn --method retrain --forget 3 --json: one object with the metrics, exact forget set"
  else
    fail "unlearn retrain --json (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe data split --data "cifar10:$cdir" --seed 3 --forget-classes 3 --out "$tmp/split3.json"
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 2 --batch 8 --seed 3 --quiet --split "$tmp/split3.json" \
    --part retain --out "$tmp/retain3.safetensors"
  expect "train --part retain with the original's recipe" 0
  cat >"$tmp/tensors.py" <<'PY'
import json, struct, sys

def load(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]

def tensors(path):
    header, data = load(path)
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}

cmd = sys.argv[1]
if cmd == "same":  # the two files hold bit-identical tensors
    a, b = tensors(sys.argv[2]), tensors(sys.argv[3])
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), "tensors differ"
elif cmd == "meta":  # prints Lethe's metadata as JSON
    print(load(sys.argv[2])[0]["__metadata__"]["lethe"])
elif cmd == "swap-truth":  # a copy whose metadata tells another story: forgot class 7 by retraining
    header, data = load(sys.argv[2])
    meta = json.loads(header["__metadata__"]["lethe"])
    meta["split"]["spec"]["forget"] = {"classes": [7], "fractions": [], "indices": []}
    meta["unlearning"]["method"] = "retrain"
    meta["unlearning"]["forget"] = meta["split"]["spec"]["forget"]
    header["__metadata__"]["lethe"] = json.dumps(meta)
    text = json.dumps(header).encode()
    open(sys.argv[3], "wb").write(struct.pack("<Q", len(text)) + text + data)
elif cmd == "drop-split":  # a copy without the split record, as a model from elsewhere would be
    header, data = load(sys.argv[2])
    meta = json.loads(header["__metadata__"]["lethe"])
    del meta["split"]
    header["__metadata__"]["lethe"] = json.dumps(meta)
    text = json.dumps(header).encode()
    open(sys.argv[3], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
  if python3 "$tmp/tensors.py" same "$tmp/u-retrain.safetensors" "$tmp/retain3.safetensors"; then
    pass "unlearn --method retrain equals train --part retain with the same seed, bit for bit"
  else
    fail "retrain differs from training on the retain part"
  fi
  python3 "$tmp/tensors.py" meta "$tmp/u-retrain.safetensors" >"$tmp/meta.json"
  if python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
u = m["unlearning"]
assert u["method"] == "retrain" and u["forget"]["classes"] == [3], u
assert u["config"]["train"]["epochs"] == 2 and u["config"]["train"]["batch"] == 8, u["config"]
assert m["split"]["spec"]["forget"]["classes"] == [3], m["split"]
' "$tmp/meta.json"; then
    pass "the unlearned model records the method, its configuration and the forget spec"
  else
    fail "unlearned model metadata: $(head -c 600 "$tmp/meta.json")"
  fi
  lethe eval --model "$tmp/u-retrain.safetensors" --data "cifar10:$cdir" --part forget --json
  if [ "$rc" -eq 0 ] && python3 -c 'import json, sys; r = json.load(sys.stdin); assert r["n"] == 4, r' <"$tmp/out"; then
    pass "eval --part forget of the unlearned model is its forget set"
  else
    fail "eval --part forget of the unlearned model (exit $rc): $(head -c 400 "$tmp/out") $(stderr_excerpt)"
  fi

  # Every method runs; forget specs select exactly what they say (class 3 holds 4 of the 40 images).
  while read -r method n_forget spec; do
    # shellcheck disable=SC2086  # spec is a list of options
    lethe unlearn --model "$tmp/orig.safetensors" --data "cifar10:$cdir" --method "$method" $spec --batch 8 \
      --out "$tmp/u.safetensors" --json --quiet
    if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["method"] == sys.argv[1] and r["n_forget"] == int(sys.argv[2]) and r["n_retain"] == 40 - r["n_forget"], r
# neggrad takes no step when D_f is already at or below its target accuracy
assert r["steps"] > 0 or r["stopped_by"] == "forget accuracy", r
assert 0 <= r["UA"] <= 1 and 0 <= r["MIA"] <= 1, r
' "$method" "$n_forget" <"$tmp/out"; then
      pass "unlearn --method $method $spec: $n_forget images forgotten"
    else
      fail "unlearn --method $method $spec (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
    fi
  done <<'LIST'
finetune 8 --forget=2,5
randlabel 12 --forget=1,4,7
amnesiac 4 --forget=3
neggrad 4 --forget=3
neggrad 2 --forget=3 --forget-fraction=0.5
hu-approx 3 --forget-indices=0,1,2
LIST

  # Amnesiac's stored-update variant: training logs the batches holding the split's forget part (the sensitive
  # samples); unlearning subtracts their updates.
  lethe data split --data "cifar10:$cdir" --seed 3 --forget-indices 5,17 --out "$tmp/sensitive.json"
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 2 --batch 8 --seed 3 --quiet --split "$tmp/sensitive.json" \
    --log-updates "$tmp/updates.safetensors" --out "$tmp/logged.safetensors"
  expect "train --log-updates" 0
  lethe unlearn --model "$tmp/logged.safetensors" --data "cifar10:$cdir" --method amnesiac \
    --updates "$tmp/updates.safetensors" --epochs 1 --out "$tmp/u-stored.safetensors" --json --quiet
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["n_forget"] == 2 and r["forget_spec"]["indices"] == [5, 17], r
assert r["undone_updates"] == 4, r  # each sample sits in one batch per epoch, 2 epochs, never the same batch twice
assert r["config"]["update_log"].endswith("updates.safetensors"), r["config"]
' <"$tmp/out"; then
    pass "unlearn --method amnesiac --updates FILE undoes the logged batches of the forget set"
  else
    fail "amnesiac --updates (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe unlearn --model "$tmp/logged.safetensors" --data "cifar10:$cdir" --method amnesiac \
    --updates "$tmp/updates.safetensors" --forget-indices 6 --out "$tmp/bad.safetensors"
  expect "amnesiac --updates for a sample not declared sensitive exits 2" 2 "not declared sensitive"
  lethe unlearn --model "$tmp/u-retrain.safetensors" --data "cifar10:$cdir" --method amnesiac --forget-indices 5 \
    --updates "$tmp/updates.safetensors" --out "$tmp/bad.safetensors"
  expect "an update log of other weights exits 3" 3 "weights hash"

  # Bad forget specs and options: exit 2, saying what is wrong; no output file.
  unlearn_args=(--model "$tmp/orig.safetensors" --data "cifar10:$cdir" --out "$tmp/bad.safetensors")
  lethe unlearn "${unlearn_args[@]}" --forget 10
  expect "unlearn --forget 10 (out of range) exits 2" 2 "class 10 is out of range"
  lethe unlearn "${unlearn_args[@]}" --forget 0,1,2,3,4,5,6,7,8,9
  expect "unlearn forgetting every class exits 2" 2 "every class"
  lethe unlearn "${unlearn_args[@]}" --forget 3 --forget-fraction 1.5
  expect "unlearn --forget-fraction 1.5 exits 2" 2 "outside (0, 1]"
  lethe unlearn "${unlearn_args[@]}" --forget 3 --forget-fraction 0
  expect "unlearn --forget-fraction 0 exits 2" 2 "outside (0, 1]"
  lethe unlearn "${unlearn_args[@]}"
  expect "unlearn without a forget spec exits 2" 2 "nothing to forget"
  lethe unlearn "${unlearn_args[@]}" --forget 3 --method finetune --max-steps 5
  expect "an ascent option with a training method exits 2" 2 "--max-steps"
  lethe unlearn "${unlearn_args[@]}" --forget 3 --method hu-exact
  expect "hu-exact without --base exits 2" 2 "--base"
  python3 "$tmp/tensors.py" drop-split "$tmp/orig.safetensors" "$tmp/nosplit.safetensors"
  lethe unlearn --model "$tmp/nosplit.safetensors" --data "cifar10:$cdir" --forget 3 --out "$tmp/bad.safetensors"
  expect "unlearn a model without split metadata exits 2" 2 "no split"
  [ -e "$tmp/bad.safetensors" ] && fail "a rejected unlearn left an output file"

  # The parameter attack: the attacker's D_aux is the aux part of the split recorded in the target (its forget spec
  # unread); every features x classifier combination prints one JSON object.
  lethe data split --data "cifar10:$cdir" --aux-fraction 0.5 --seed 2 --out "$tmp/split_aux.json"
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 2 --batch 8 --seed 2 --quiet --split "$tmp/split_aux.json" \
    --out "$tmp/orig_aux.safetensors"
  lethe unlearn --model "$tmp/orig_aux.safetensors" --data "cifar10:$cdir" --method neggrad --forget 3 \
    --out "$tmp/target.safetensors" --quiet
  expect "unlearn a model trained beside an auxiliary part" 0
  attack_args=(attack param --data "cifar10:$cdir" --relearn-batch 4 --shadow-epochs 1 --work "$tmp/work")
  lethe "${attack_args[@]}" --target "$tmp/target.safetensors" --features all --classifier all --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
rows = [json.loads(line) for line in sys.stdin]
assert len(rows) == 6, len(rows)
assert {(r["features"], r["classifier"]) for r in rows} == {(f, c) for f in ("dot", "diff") for c in ("kmeans", "youden", "tree")}
for r in rows:
    for key in ("attack", "features", "classifier", "predicted", "scores", "seconds"):
        assert key in r, "missing key " + key
    assert r["attack"] == "param" and len(r["scores"]) == 10 and len(r["predicted"]) >= 1, r
' <"$tmp/out"; then
    pass "attack param --features all --classifier all --json: one object per combination"
  else
    fail "attack param --json (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  cp "$tmp/out" "$tmp/attack_all.jsonl"
  python3 "$tmp/tensors.py" swap-truth "$tmp/target.safetensors" "$tmp/target_swapped.safetensors"
  lethe "${attack_args[@]}" --target "$tmp/target_swapped.safetensors" --features all --classifier all --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "target", "models_trained", "models_cached")}
a = [strip(json.loads(line)) for line in open(sys.argv[1])]
b = [strip(json.loads(line)) for line in sys.stdin]
assert a == b, "the prediction changed with the recorded ground truth"
' "$tmp/attack_all.jsonl" <"$tmp/out"; then
    pass "attack param: rewriting the target's recorded forget class and method changes nothing"
  else
    fail "attack param with swapped metadata (exit $rc): $(stderr_excerpt)"
  fi
  lethe "${attack_args[@]}" --target "$tmp/target.safetensors" --forget-count 1
  if [ "$rc" -eq 0 ] && grep -q "predicted forgotten: " "$tmp/out" && grep -q "from the cache" "$tmp/out"; then
    pass "attack param prints the scores and the prediction, reusing the work cache"
  else
    fail "attack param text output (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${attack_args[@]}" --target "$tmp/target.safetensors" --forget-count 10
  expect "attack param --forget-count 10 (every class) exits 2" 2 "--forget-count"
  lethe "${attack_args[@]}" --target "$tmp/target.safetensors" --classifier svm
  expect "attack param --classifier svm exits 2" 2 "svm"
  lethe "${attack_args[@]}" --target "$tmp/u-retrain.safetensors"
  expect "attack param on a target whose split has no auxiliary part exits 2" 2 "auxiliary"
  lethe "${attack_args[@]}" --target "$tmp/nosplit.safetensors"
  expect "attack param on a target without split metadata exits 2" 2 "no split"
  lethe "${attack_args[@]}" --target "$tmp/missing.safetensors"
  expect "attack param on a missing target exits 3" 3 "missing.safetensors"

  # The inversion attacks: both criteria judge one set of prototypes (one JSON object each), the PNG grid is written,
  # the recorded ground truth changes nothing, and bad options exit 2.
  invert_args=(attack invert --data "cifar10:$cdir" --steps 5 --restarts 1 --population 8 --generations 3
               --reference-epochs 1 --work "$tmp/invert_work")
  for mode in white black; do
    lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --mode "$mode" --criterion all \
      --images "$tmp/protos" --json
    if [ "$rc" -eq 0 ] && python3 -c '
import json, os, sys
rows = [json.loads(line) for line in sys.stdin]
assert [r["criterion"] for r in rows] == ["threshold", "entropy"], rows
for r in rows:
    for key in ("attack", "mode", "criterion", "predicted", "scores", "queries", "seconds", "images"):
        assert key in r, "missing key " + key
    assert r["attack"] == "invert" and r["mode"] == sys.argv[1] and len(r["scores"]) == 10, r
    assert len(r["predicted"]) == 1 and r["queries"] > 0, r
    with open(r["images"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "not a PNG"
' "$mode" <"$tmp/out"; then
      pass "attack invert --mode $mode --criterion all --json: one object per criterion, PNG prototypes written"
    else
      fail "attack invert --mode $mode (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
    fi
  done
  lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --mode black --json
  cp "$tmp/out" "$tmp/invert_a.jsonl"
  lethe "${invert_args[@]}" --target "$tmp/target_swapped.safetensors" --mode black --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
strip = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "target", "images")}
a = [strip(json.loads(line)) for line in open(sys.argv[1])]
b = [strip(json.loads(line)) for line in sys.stdin]
assert a == b, "the prediction changed with the recorded ground truth"
' "$tmp/invert_a.jsonl" <"$tmp/out"; then
    pass "attack invert: rewriting the target's recorded forget class and method changes nothing"
  else
    fail "attack invert with swapped metadata (exit $rc): $(stderr_excerpt)"
  fi
  lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --source reference
  if [ "$rc" -eq 0 ] && grep -q "predicted forgotten: " "$tmp/out" && grep -q "10 target queries" "$tmp/out"; then
    pass "attack invert --source reference trains the reference on D_aux and shows the target only the prototypes"
  else
    fail "attack invert --source reference (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --mode grey
  expect "attack invert --mode grey exits 2" 2 "grey"
  lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --elites 8
  expect "attack invert --elites equal to the population exits 2" 2 "elites"
  lethe "${invert_args[@]}" --target "$tmp/target.safetensors" --forget-count 10
  expect "attack invert --forget-count 10 (every class) exits 2" 2 "--forget-count"
  lethe "${invert_args[@]}" --target "$tmp/missing.safetensors"
  expect "attack invert on a missing target exits 3" 3 "missing.safetensors"

  # Feature recovery (Hu et al.): D_u is the user pool of the first 16 images, so sample 5's row in D_u is its
  # training position. Approximate unlearning (one ascent step) and exact (θ_0 fine-tuned on D_u and on D_u \ X).
  lethe data split --data "cifar10:$cdir" --user-pool 16 --seed 5 --out "$tmp/split_user.json"
  lethe train --data "cifar10:$cdir" --net lenet5 --epochs 1 --batch 8 --seed 5 --quiet --split "$tmp/split_user.json" \
    --part train --out "$tmp/theta0.safetensors"
  lethe train --data "cifar10:$cdir" --init "$tmp/theta0.safetensors" --epochs 1 --batch 16 --lr 0.001 --momentum 0 \
    --quiet --split "$tmp/split_user.json" --part user --out "$tmp/theta_o.safetensors"
  lethe unlearn --model "$tmp/theta_o.safetensors" --data "cifar10:$cdir" --method hu-approx --forget-indices 5 \
    --out "$tmp/u-approx.safetensors" --quiet
  lethe unlearn --model "$tmp/theta_o.safetensors" --data "cifar10:$cdir" --method hu-exact \
    --base "$tmp/theta0.safetensors" --forget-indices 5 --out "$tmp/u-exact.safetensors" --quiet
  lethe train --data "cifar10:$cdir" --net mlp --hidden 8 --epochs 1 --quiet --split "$tmp/split_user.json" \
    --part user --out "$tmp/mlp-user.safetensors"
  expect "hu-approx and hu-exact models for feature recovery" 0
  lethe data info --data "cifar10:$cdir" --split "$tmp/split_user.json" --indices user,forget --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.loads(sys.stdin.read())["split"]["indices"]
assert r["user"] == list(range(16)) and r["forget"] == [], r
' <"$tmp/out"; then
    pass "data info --indices: the rows of the named parts (D_u is the first 16 images)"
  else
    fail "data info --indices (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe train --data "cifar10:$cdir" --net convnet --width 4 --epochs 1 --batch 8 --quiet --limit 16 \
    --out "$tmp/convnet4.safetensors"
  if [ "$rc" -eq 0 ] && "$LETHE" info "$tmp/convnet4.safetensors" 2>/dev/null |
    grep -q "conv0.weight.*\[4, 3, 3, 3\]"; then
    pass "train --net convnet --width 4: a reduced-width ConvNet"
  else
    fail "train --width (exit $rc): $(stderr_excerpt) $("$LETHE" info "$tmp/convnet4.safetensors" 2>&1 | head -c 400)"
  fi
  lethe train --data "cifar10:$cdir" --net lenet5 --width 4 --epochs 1 --out "$tmp/bad.safetensors"
  expect "train --width on lenet5 exits 2" 2 "base_channels"
  recover_args=(attack hu-recover --data "cifar10:$cdir" --restarts 2 --iterations 4)
  theta_o=(--original "$tmp/theta_o.safetensors" --sample 5)
  lethe "${recover_args[@]}" "${theta_o[@]}" --unlearned "$tmp/u-approx.safetensors" --images "$tmp/recovered" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, math, sys
r = json.load(sys.stdin)
for key in ("attack", "unlearning", "sample", "label", "predicted", "mse", "psnr", "psnr_hu", "ssim",
            "random_baseline", "cost", "costs", "queries", "seconds", "config", "images"):
    assert key in r, key
assert r["attack"] == "hu-recover" and r["unlearning"] == "approximate" and r["predicted"] is None, r
assert r["sample"] == 5 and 0 <= r["label"] < 10 and len(r["costs"]) == 2 and r["cost"] == min(r["costs"]), r
assert r["queries"] == 4 * (3 * 2 + 2) + 2, r["queries"]
assert 0 < r["mse"] < 1 and abs(r["psnr"] - 10 * math.log10(1 / r["mse"])) < 1e-9, r
assert r["psnr_hu"] > r["psnr"] and set(r["random_baseline"]) == {"mse", "psnr", "psnr_hu", "ssim"}, r
assert r["config"]["restarts"] == 2 and r["config"]["iterations"] == 4 and r["user_count"] == 16, r
' <"$tmp/out" && [ -s "$tmp/recovered/u-approx-recover-5.png" ]; then
    pass "attack hu-recover --json (approximate unlearning): metrics beside their baselines, PNG written"
  else
    fail "attack hu-recover --json (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  exact=(--unlearned "$tmp/u-exact.safetensors" --pretrained "$tmp/theta0.safetensors")
  lethe "${recover_args[@]}" "${theta_o[@]}" "${exact[@]}" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["unlearning"] == "exact" and r["pretrained"].endswith("theta0.safetensors") and r["forget_count"] == 1, r
' <"$tmp/out"; then
    pass "attack hu-recover --pretrained: exact unlearning, attacked at θ_0"
  else
    fail "attack hu-recover --pretrained (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${recover_args[@]}" "${theta_o[@]}" --unlearned "$tmp/u-approx.safetensors"
  if [ "$rc" -eq 0 ] && grep -q "PSNR (Hu)" "$tmp/out" && grep -q "best restart" "$tmp/out"; then
    pass "attack hu-recover prints the metrics and their random baselines"
  else
    fail "attack hu-recover text output (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${recover_args[@]}" --original "$tmp/theta_o.safetensors" --sample 16 --unlearned "$tmp/u-approx.safetensors"
  expect "attack hu-recover --sample outside D_u exits 2" 2 "--sample 16 is outside part 'user'"
  lethe "${recover_args[@]}" "${theta_o[@]}" --unlearned "$tmp/theta_o.safetensors"
  expect "attack hu-recover with nothing unlearned (g* = 0) exits 3" 3 "is zero"
  lethe "${recover_args[@]}" "${theta_o[@]}" "${exact[@]}" --forget-count 16
  expect "attack hu-recover with k = N exits 2" 2 "0 < k < N"
  lethe "${recover_args[@]}" --original "$tmp/orig.safetensors" --sample 5 --unlearned "$tmp/u-approx.safetensors"
  expect "attack hu-recover on a model trained without a user pool exits 2" 2 "no user pool"
  lethe "${recover_args[@]}" "${theta_o[@]}" --unlearned "$tmp/mlp-user.safetensors"
  expect "attack hu-recover on models of two architectures exits 3" 3 "mlp-user.safetensors is a mlp"
  lethe "${recover_args[@]}" "${theta_o[@]}" --unlearned "$tmp/missing.safetensors"
  expect "attack hu-recover on a missing model exits 3" 3 "missing.safetensors"

  # The pruning defense: a model whose metadata records it, with half the weights zero.
  lethe defend prune --model "$tmp/target.safetensors" --out "$tmp/pruned.safetensors" --rate 0.5 --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["defense"] == "prune" and r["rate"] == 0.5 and r["scope"] == "weights", r
assert r["pruned"] == r["considered"] // 2 and r["threshold"] > 0, r
' <"$tmp/out" && "$LETHE" info "$tmp/pruned.safetensors" 2>/dev/null | grep -q '"kind": "prune"'; then
    pass "defend prune --json: half the weights pruned, the defense recorded in the model"
  else
    fail "defend prune (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe defend prune --model "$tmp/target.safetensors" --out "$tmp/pruned.safetensors" --rate 1.5
  expect "defend prune --rate 1.5 exits 2" 2 "rate"
  lethe defend prune --model "$tmp/missing.safetensors" --out "$tmp/pruned.safetensors"
  expect "defend prune on a missing model exits 3" 3 "missing.safetensors"

  # The other two defenses: noise on every parameter, and fine-tuning on the aux part recorded in the target.
  lethe defend noise --model "$tmp/target.safetensors" --out "$tmp/noisy.safetensors" --sigma 0.01 --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["defense"] == "noise" and r["sigma"] == 0.01 and r["scope"] == "all" and r["perturbed"] > 0, r
assert 0.5 < r["noise_norm"] / (0.01 * r["perturbed"] ** 0.5) < 1.5, r
' <"$tmp/out" && "$LETHE" info "$tmp/noisy.safetensors" 2>/dev/null | grep -q '"kind": "noise"'; then
    pass "defend noise --json: N(0, sigma²) on every parameter, the defense recorded in the model"
  else
    fail "defend noise (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe defend noise --model "$tmp/target.safetensors" --out "$tmp/noisy.safetensors" --sigma -1
  expect "defend noise --sigma -1 exits 2" 2 "sigma"
  lethe defend finetune --model "$tmp/target.safetensors" --data "cifar10:$cdir" --out "$tmp/tuned.safetensors" \
    --limit 8 --batch 4 --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["defense"] == "finetune" and r["part"] == "aux" and r["images"] == 8 and len(r["epochs"]) == 1, r
' <"$tmp/out" && "$LETHE" info "$tmp/tuned.safetensors" 2>/dev/null | grep -q '"kind": "finetune"'; then
    pass "defend finetune --json: one epoch on 8 held-out images of the recorded aux part, recorded in the model"
  else
    fail "defend finetune (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe defend finetune --model "$tmp/theta_o.safetensors" --data "cifar10:$cdir" --out "$tmp/tuned.safetensors"
  expect "defend finetune on a split without held-out data exits 2" 2 "is empty"
  lethe defend finetune --model "$tmp/target.safetensors" --data "cifar10:$cdir" --part test \
    --out "$tmp/tuned.safetensors"
  expect "defend finetune on the test split exits 2" 2 "test"

  # Label inference (Hu et al.): tiny ZOO settings; the probes are cached in --work for the second run.
  label_args=(attack hu-label --original "$tmp/theta_o.safetensors" --probes-per-class 1 --iterations 2 --tries 1
    --coordinates 16 --work "$tmp/hu-work")
  lethe "${label_args[@]}" --unlearned "$tmp/u-approx.safetensors" --json
  cp "$tmp/out" "$tmp/label1.json"
  lethe "${label_args[@]}" --unlearned "$tmp/u-approx.safetensors" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
first, again = (json.load(open(p)) for p in sys.argv[1:])
assert first["attack"] == "hu-label" and len(first["predicted"]) == 1 and len(first["delta"]) == 10, first
assert first["decision"] == "probability" and len(first["delta_log_odds"]) == 10, first
assert first["chance"] == 0.1 and first["probes"]["count"] == 10 and not first["probes"]["cached"], first
# each probe: one query at its start, then per step 2 x 16 queries and one for its confidence
assert first["queries"] == first["probes"]["queries"] + 20 and 10 <= first["probes"]["queries"] <= 10 * 67, first
assert again["probes"]["cached"] and again["predicted"] == first["predicted"] and again["delta"] == first["delta"]
' "$tmp/label1.json" "$tmp/out"; then
    pass "attack hu-label --json: Δ per class, the prediction, queries counted; probes cached in --work"
  else
    fail "attack hu-label (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${label_args[@]}" --unlearned "$tmp/u-approx.safetensors"
  if [ "$rc" -eq 0 ] && grep -q "predicted unlearned" "$tmp/out" && grep -q "chance 10%" "$tmp/out"; then
    pass "attack hu-label prints Δ per class and the prediction beside chance"
  else
    fail "attack hu-label text output (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${label_args[@]}" --unlearned "$tmp/u-approx.safetensors" --forget-count 10
  expect "attack hu-label --forget-count 10 (every class) exits 2" 2 "--forget-count"
  lethe "${label_args[@]}" --unlearned "$tmp/mlp-user.safetensors"
  expect "attack hu-label on models of two architectures exits 3" 3 "architecture"

  # Corrupt files in each format: exit 3 with the file's name in the message.
  cp -r "$tmp/fx-cifar10" "$tmp/bad-cifar10"
  head -c 5000 "$tmp/fx-cifar10/data_batch_2.bin" >"$tmp/bad-cifar10/data_batch_2.bin"
  lethe data info --data "cifar10:$tmp/bad-cifar10"
  expect "truncated CIFAR-10 batch exits 3" 3 "data_batch_2.bin"
  cp -r "$tmp/fx-svhn" "$tmp/bad-svhn"
  printf 'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .' \
    >"$tmp/bad-svhn/train_32x32.mat"
  head -c 600 /dev/zero >>"$tmp/bad-svhn/train_32x32.mat"
  lethe train --data "svhn:$tmp/bad-svhn" --epochs 1 --out "$tmp/m.safetensors"
  expect "a MATLAB v7.3 file exits 3" 3 "train_32x32.mat" "7.3"
  cp -r "$tmp/fx-stl10" "$tmp/bad-stl10"
  printf '\x0b' | dd of="$tmp/bad-stl10/test_y.bin" bs=1 seek=2 conv=notrunc 2>/dev/null
  lethe data info --data "stl10:$tmp/bad-stl10"
  expect "STL-10 label 11 exits 3" 3 "test_y.bin"
  cp -r "$tmp/fx-folder" "$tmp/bad-folder"
  first_png=$(find "$tmp/bad-folder/train" -name '*.png' | sort | head -n 1)
  head -c 40 "$first_png" >"$tmp/cut.png" && mv "$tmp/cut.png" "$first_png"
  lethe data info --data "folder:$tmp/bad-folder"
  expect "truncated PNG in a folder exits 3" 3 "$first_png"
fi

# --- lethe audit: resumable, shardable, and lethe report -------------------------------------------------------
if [ -x "$MAKE_FIXTURES" ] && command -v python3 >/dev/null 2>&1; then
  adir="$tmp/fx-audit"
  "$MAKE_FIXTURES" cifar10 "$adir" 200 40 5 || fail "lethe_make_fixtures cifar10 (audit)"
  audit_args=(audit --data "cifar10:$adir" --epochs 1 --methods finetune,neggrad --attacks param-dot,invert-white
              --classes 0,1 --scenario single,multi --aux-fraction 0.25)
  # 3 forget cases ({0}, {1}, {0,1}) x 2 methods: 6 unlearning rows and 12 attack rows.
  lethe "${audit_args[@]}" --out "$tmp/audit" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
summary = json.load(sys.stdin)
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 18 and len({r["key"] for r in rows}) == 18, len(rows)
attacks = [r for r in rows if r["type"] == "attack"]
assert len(attacks) == 12 and all(set(r["predictions"]) for r in attacks), attacks[0]
cells = {(c["scenario"], c["method"], c["attack"]): c for c in summary["asr"]}
assert len(cells) == 2 * 2 * 3, sorted(cells)  # invert-white is judged by two criteria
single = cells[("single", "neggrad", "param-dot · kmeans")]
assert single["trials"] == 2 and abs(single["chance"] - 0.1) < 1e-12, single
assert abs(cells[("multi", "finetune", "invert-white · entropy")]["chance"] - 1 / 45) < 1e-12
assert len(summary["unlearning"]) == 4
' "$tmp/audit/results.jsonl" <"$tmp/out" && [ -s "$tmp/audit/summary.md" ] && [ -s "$tmp/audit/summary.csv" ] &&
     [ -s "$tmp/audit/figures/scores-param-dot-kmeans.png" ] && [ "$(ls "$tmp/audit/prototypes" | wc -l)" -eq 6 ] &&
     grep -q "data:image/png;base64," "$tmp/audit/index.html" && ! grep -q 'src="http' "$tmp/audit/index.html"; then
    pass "audit --json: a results.jsonl line per trial, the summary beside chance, figures, a self-contained index.html"
  else
    fail "audit (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  cp "$tmp/audit/summary.json" "$tmp/audit-summary.json"
  lethe "${audit_args[@]}" --out "$tmp/audit"
  if [ "$rc" -eq 0 ] && grep -q "0 of 18 results to go" "$tmp/err" && [ "$(wc -l <"$tmp/audit/results.jsonl")" -eq 18 ]; then
    pass "audit rerun: every trial already in results.jsonl is skipped"
  else
    fail "audit rerun (exit $rc): $(stderr_excerpt)"
  fi
  # An interrupted append leaves half a line: it is dropped and that trial redone, with the same result.
  size=$(stat -c %s "$tmp/audit/results.jsonl")
  truncate -s $((size - 20)) "$tmp/audit/results.jsonl"
  lethe "${audit_args[@]}" --out "$tmp/audit"
  if [ "$rc" -eq 0 ] && grep -q "cut short" "$tmp/err" && grep -q "1 of 18 results to go" "$tmp/err" &&
     [ "$(wc -l <"$tmp/audit/results.jsonl")" -eq 18 ] && cmp -s "$tmp/audit/summary.json" "$tmp/audit-summary.json"; then
    pass "audit after an interrupted write: the cut-short trial is redone, the summary unchanged"
  else
    fail "audit after truncation (exit $rc): $(stderr_excerpt)"
  fi
  # Two shards with their own fresh model cache, merged by lethe report, equal the unsharded run.
  lethe "${audit_args[@]}" --out "$tmp/audit-sharded" --shard 0/2
  rc0=$rc
  lethe "${audit_args[@]}" --out "$tmp/audit-sharded" --shard 1/2
  rc1=$rc
  lethe report "$tmp/audit-sharded" --json
  if [ "$rc0" -eq 0 ] && [ "$rc1" -eq 0 ] && [ "$rc" -eq 0 ] && python3 -c '
import json, sys
merged, whole = json.load(sys.stdin), json.load(open(sys.argv[1]))
assert merged["asr"] == whole["asr"], "ASR differs"
strip = lambda us: [{**u, "mean": {k: v for k, v in u["mean"].items() if k != "seconds"}} for u in us]
assert strip(merged["unlearning"]) == strip(whole["unlearning"]), "unlearning metrics differ"
' "$tmp/audit-summary.json" <"$tmp/out" && [ -s "$tmp/audit-sharded/results.0-of-2.jsonl" ] &&
     [ -s "$tmp/audit-sharded/results.1-of-2.jsonl" ]; then
    pass "audit --shard 0/2 and 1/2, merged by lethe report, equal the unsharded run"
  else
    fail "audit shards (exit $rc0 $rc1 $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  # Defenses as one more axis: each unlearned model (from the cache) pruned, its metrics and both attacks again.
  lethe "${audit_args[@]}" --out "$tmp/audit" --defenses none,prune:0.5 --json
  if [ "$rc" -eq 0 ] && grep -q "18 of 36 results to go" "$tmp/err" && python3 -c '
import json, sys
summary = json.load(sys.stdin)
rows = [json.loads(l) for l in open(sys.argv[1])]
defense = [r for r in rows if r["type"] == "defense"]
assert len(rows) == 36 and len(defense) == 6, (len(rows), len(defense))
assert all(r["record"]["kind"] == "prune" and r["record"]["result"]["pruned"] > 0 for r in defense)
assert {c["defense"] for c in summary["asr"]} == {"none", "prune:0.5"}
' "$tmp/audit/results.jsonl" <"$tmp/out" && grep -q "defense prune:0.5: metrics after the defense" "$tmp/audit/summary.md"; then
    pass "audit --defenses none,prune:0.5: every attack again on the pruned models, their metrics, a table per defense"
  else
    fail "audit --defenses (exit $rc): $(head -c 600 "$tmp/out") $(stderr_excerpt)"
  fi
  lethe "${audit_args[@]}" --out "$tmp/audit" --defenses prune:2
  expect "audit --defenses prune:2 exits 2" 2 "prune:2"
  lethe "${audit_args[@]}" --out "$tmp/audit" --shard 2/2
  expect "audit --shard 2/2 exits 2" 2 "--shard"
  lethe "${audit_args[@]}" --out "$tmp/audit" --attacks param-dot,oracle
  expect "audit --attacks with an unknown attack exits 2" 2 "oracle"
  lethe "${audit_args[@]}" --out "$tmp/audit" --classes 0,10
  expect "audit --classes 10 (of 10 classes) exits 2" 2 "class 10"
  lethe "${audit_args[@]}" --out "$tmp/audit" --methods hu-exact
  expect "audit --methods hu-exact exits 2" 2 "hu-exact"
  mkdir -p "$tmp/empty-report"
  lethe report "$tmp/empty-report"
  expect "report on a directory without results exits 3" 3 "no results"
  printf 'garbage\n{"key": "x"}\n' >"$tmp/empty-report/results.jsonl"
  lethe report "$tmp/empty-report"
  expect "report on a damaged results file exits 3" 3 "line 1"
fi

# --- the round trip on real data --------------------------------------------------------------------------------
if [ ! -d "$FMNIST" ]; then
  skip "Fashion-MNIST not installed at $FMNIST: train/eval/info/predict round trip not run"
elif ! command -v python3 >/dev/null 2>&1; then
  skip "python3 not found: train/eval/info/predict round trip not run"
else
  model="$tmp/lenet5.safetensors"
  lethe train --net lenet5 --data fashion-mnist --limit 2000 --epochs 1 --batch 64 --lr 0.05 --out "$model"
  expect "train lenet5 --limit 2000 --epochs 1" 0
  grep -q "^epoch 1/1 " "$tmp/out" || fail "train printed no epoch line: $(cat "$tmp/out")"
  grep -q "^test accuracy " "$tmp/out" || fail "train printed no test accuracy: $(cat "$tmp/out")"
  [ -s "$model" ] || fail "train wrote no model file"

  lethe eval --model "$model" --data fashion-mnist --json
  expect "eval --json exits 0" 0
  if python3 -c '
import json, sys
r = json.load(sys.stdin)  # fails on anything but exactly one JSON document
assert isinstance(r, dict), "not an object"
for key in ("accuracy", "per_class_accuracy", "n", "loss"):
    assert key in r, "missing key " + key
assert r["n"] == 10000, r["n"]
assert len(r["per_class_accuracy"]) == 10
assert 0.3 < r["accuracy"] <= 1.0, r["accuracy"]  # 10% is chance; 2000 images reach far above it
assert r["loss"] > 0
' <"$tmp/out"; then
    pass "eval --json prints exactly one JSON object with accuracy, per_class_accuracy, n, loss"
  else
    fail "eval --json stdout: $(head -c 600 "$tmp/out")"
  fi
  accuracy=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])' <"$tmp/out" 2>/dev/null)

  lethe eval --model "$model" --data fashion-mnist
  expect "eval (text) exits 0" 0
  grep -q "accuracy" "$tmp/out" || fail "eval text output lacks accuracy"

  lethe info "$model"
  expect "info exits 0" 0
  if grep -q "lenet5" "$tmp/out" && grep -q "parameters" "$tmp/out" && grep -q "F32" "$tmp/out"; then
    pass "info shows arch, parameters and tensors"
  else
    fail "info output: $(head -c 600 "$tmp/out")"
  fi
  lethe info "$model" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["arch"] == "lenet5"
assert r["parameters"] > 0
assert r["tensors"] and all(t["dtype"] == "F32" for t in r["tensors"])
lethe = r["metadata"]["lethe"]
assert lethe["dataset"] == "fashion-mnist" and lethe["split"]["part"] == "train" and lethe["limit"] == 2000
' <"$tmp/out"; then
    pass "info --json: arch, parameters, tensors and provenance"
  else
    fail "info --json (exit $rc): $(head -c 600 "$tmp/out")"
  fi

  # predict on the first 200 test images, written and read back with nothing but the standard library.
  cat >"$tmp/st.py" <<'EOF'
import gzip, json, math, struct, sys

def write(path, tensors):
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)

def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        values = struct.unpack("<%df" % ((e - b) // 4), blob[8 + n + b:8 + n + e])
        out[name] = (info["shape"], values)
    return out

def test_images(root, count):
    with gzip.open(root + "/t10k-images-idx3-ubyte.gz") as f:
        pixels = f.read(16 + count * 784)[16:]
    with gzip.open(root + "/t10k-labels-idx1-ubyte.gz") as f:
        labels = list(f.read(8 + count)[8:])
    return [p / 255.0 for p in pixels], labels

cmd = sys.argv[1]
if cmd == "make":
    root, count, path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    pixels, _ = test_images(root, count)
    write(path, {"input": ([count, 1, 28, 28], pixels)})
elif cmd == "wrong-shape":
    write(sys.argv[2], {"input": ([2, 3, 28, 28], [0.5] * (2 * 3 * 28 * 28))})
elif cmd == "wrong-name":
    write(sys.argv[2], {"images": ([1, 1, 28, 28], [0.5] * 784)})
elif cmd == "check":
    root, count, path, eval_accuracy = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    _, labels = test_images(root, count)
    out = read(path)
    (lshape, logits), (pshape, probs) = out["logits"], out["probs"]
    assert lshape == [count, 10] and pshape == [count, 10], (lshape, pshape)
    correct = 0
    for i in range(count):
        row, p = logits[i * 10:(i + 1) * 10], probs[i * 10:(i + 1) * 10]
        m = max(row)
        z = sum(math.exp(v - m) for v in row)
        for v, q in zip(row, p):
            assert abs(math.exp(v - m) / z - q) < 1e-5, "probs is not softmax(logits)"
        correct += row.index(m) == labels[i]
    accuracy = correct / count
    # The first 200 images are a sample of the 10000 eval saw: agree within sampling noise.
    assert abs(accuracy - eval_accuracy) < 0.15, (accuracy, eval_accuracy)
EOF
  count=200
  python3 "$tmp/st.py" make "$FMNIST" "$count" "$tmp/input.safetensors"
  lethe predict --model "$model" --input "$tmp/input.safetensors" --out "$tmp/pred.safetensors"
  expect "predict exits 0" 0
  if [ "$rc" -eq 0 ] && python3 "$tmp/st.py" check "$FMNIST" "$count" "$tmp/pred.safetensors" "${accuracy:-0}"; then
    pass "predict round trip: logits/probs [$count, 10], probs = softmax(logits), accuracy agrees with eval"
  else
    fail "predict round trip"
  fi

  python3 "$tmp/st.py" wrong-shape "$tmp/wrong_shape.safetensors"
  lethe predict --model "$model" --input "$tmp/wrong_shape.safetensors" --out "$tmp/pred2.safetensors"
  expect "predict with a wrong input shape exits 3" 3 "lethe: error:" "$tmp/wrong_shape.safetensors"
  python3 "$tmp/st.py" wrong-name "$tmp/wrong_name.safetensors"
  lethe predict --model "$model" --input "$tmp/wrong_name.safetensors" --out "$tmp/pred3.safetensors"
  expect "predict without an \"input\" tensor exits 3" 3 "lethe: error:" "$tmp/wrong_name.safetensors"
  [ -e "$tmp/pred2.safetensors" ] && fail "a rejected predict left an output file"

  # A class subset trained with Adam: the model keeps all 10 outputs and records the filter.
  subset_model="$tmp/subset.safetensors"
  lethe train --net mlp --hidden 32 --data fashion-mnist --classes 0,1,2 --limit 300 --epochs 1 --optim adam \
    --quiet --json --out "$subset_model"
  expect "train mlp --classes 0,1,2 --optim adam --json" 0
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["train_samples"] == 300 and len(r["epochs"]) == 1, r
' <"$tmp/out"; then
    pass "train --json prints one JSON object"
  else
    fail "train --json stdout: $(head -c 600 "$tmp/out")"
  fi
  lethe info "$subset_model" --json
  if [ "$rc" -eq 0 ] && python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["spec"]["num_classes"] == 10 and r["spec"]["hidden"] == [32]
assert r["metadata"]["lethe"]["split"]["spec"]["classes"] == [0, 1, 2]
assert "adam" in json.dumps(r["metadata"]["lethe"]["train"])
' <"$tmp/out"; then
    pass "class-subset model keeps 10 outputs and records its class filter"
  else
    fail "class-subset info --json (exit $rc): $(head -c 600 "$tmp/out")"
  fi
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
