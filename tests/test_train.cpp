// Training and inference paths end to end: determinism, the accuracy bar on real data, class subsets, divergence,
// and agreement between the inference, training and input-gradient passes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "datasets/registry.h"
#include "engine/loss.h"
#include "engine/trainer.h"
#include "nets/nets.h"
#include "tests/test_util.h"

using namespace lethe;

namespace {

ModelSpec spec_for(const Dataset& d, const std::string& arch) { return spec_for_data(arch, d); }

TrainConfig sgd_config(int epochs, int64_t batch) {
  TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch = batch;
  cfg.optim.lr = 0.05f;
  cfg.optim.momentum = 0.9f;
  cfg.seed = 7;
  return cfg;
}

std::vector<float> trained_weights(const Dataset& d, int threads, uint64_t seed, AugmentConfig augment = {}) {
  auto be = make_cpu_backend(threads);
  auto model = make_model(spec_for(d, "lenet5"), *be, seed);
  TrainConfig cfg = sgd_config(2, 32);
  cfg.augment = augment;
  train(*model, d, cfg);
  return model->arena().params().to_vector();
}

bool has_fashion_mnist() {
  try {
    load_dataset(parse_data_ref("fashion-mnist"), Split::Test);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

TEST_CASE("train: the same seed and thread count give bit-identical weights") {
  const Dataset d = test::synthetic_dataset(200, 4, 1);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const std::vector<float> a = trained_weights(d, threads, 3), b = trained_weights(d, threads, 3);
    REQUIRE(a.size() == b.size());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    const std::vector<float> other_seed = trained_weights(d, threads, 4);
    CHECK(std::memcmp(a.data(), other_seed.data(), a.size() * sizeof(float)) != 0);
  }
}

TEST_CASE("train: augmented training is deterministic too, and the augmentation is recorded") {
  const Dataset d = test::synthetic_dataset(96, 4, 5);
  const AugmentConfig augment = AugmentConfig::parse("crop+flip", 2);
  const std::vector<float> a = trained_weights(d, 2, 3, augment), b = trained_weights(d, 2, 3, augment);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  const std::vector<float> plain = trained_weights(d, 2, 3);
  CHECK(std::memcmp(a.data(), plain.data(), a.size() * sizeof(float)) != 0);
  TrainConfig cfg;
  cfg.augment = augment;
  CHECK(cfg.to_json()["augment"]["kind"] == "crop+flip");
  CHECK(cfg.to_json()["augment"]["pad"] == 2);
}

TEST_CASE("train: learns a separable synthetic task and reports per-epoch statistics") {
  const Dataset d = test::synthetic_dataset(400, 4, 2);
  auto be = make_cpu_backend(2);
  auto model = make_model(spec_for(d, "lenet5"), *be, 0);
  const EvalReport before = evaluate(*model, d);
  int epochs_seen = 0;
  const auto reports = train(*model, d, sgd_config(3, 32), {{}, [&](const EpochReport&) { ++epochs_seen; }, {}, {}});
  REQUIRE(reports.size() == 3);
  CHECK(epochs_seen == 3);
  CHECK(reports.back().loss < reports.front().loss);
  CHECK(reports.back().samples == 400);
  const EvalReport after = evaluate(*model, d);
  CHECK(after.accuracy > 0.95);
  CHECK(after.loss < before.loss);
  CHECK(after.per_class_count == std::vector<int64_t>{100, 100, 100, 100});
}

TEST_CASE("train: a class subset leaves the model's other outputs untrained but present") {
  Dataset d = test::synthetic_dataset(400, 4, 3);
  const Dataset subset_data = filter_classes(d, {0, 1}, {});
  auto be = make_cpu_backend(1);
  auto model = make_model(spec_for(d, "lenet5"), *be, 0);
  train(*model, subset_data, sgd_config(3, 32));
  const EvalReport r = evaluate(*model, d);
  REQUIRE(r.per_class_accuracy.size() == 4);
  CHECK(r.per_class_accuracy[0] > 0.9);
  CHECK(r.per_class_accuracy[1] > 0.9);
  CHECK(r.per_class_accuracy[2] == 0.0);  // never trained on: the model never predicts them
  CHECK(r.per_class_accuracy[3] == 0.0);
}

TEST_CASE("train: a non-finite loss stops training with an error instead of passing NaN on") {
  Dataset d = test::synthetic_dataset(64, 4, 4);
  d.images.f32()[5 * 144 + 7] = std::nanf("");
  auto be = make_cpu_backend(1);
  auto model = make_model(spec_for(d, "lenet5"), *be, 0);
  CHECK_THROWS_WITH_AS(train(*model, d, sgd_config(1, 16)), doctest::Contains("diverged"), Error);
}

TEST_CASE("train: data that does not fit the model is a clear input error") {
  const Dataset d = test::synthetic_dataset(16, 4, 5);
  auto be = make_cpu_backend(1);
  ModelSpec wrong = spec_for(d, "lenet5");
  wrong.height = wrong.width = 28;
  auto model = make_model(wrong, *be, 0);
  CHECK_THROWS_AS(train(*model, d, sgd_config(1, 8)), InputError);
  ModelSpec few = spec_for(d, "lenet5");
  few.num_classes = 3;  // labels go up to 3
  auto small = make_model(few, *be, 0);
  CHECK_THROWS_WITH_AS(train(*small, d, sgd_config(1, 8)), doctest::Contains("outside"), InputError);
}

TEST_CASE("inference: chunked infer_logits equals the eval forward pass, for any chunk size") {
  const Dataset d = test::synthetic_dataset(37, 4, 6);
  for (const char* arch : {"lenet5", "convnet", "mlp"}) {
    CAPTURE(arch);
    auto be = make_cpu_backend(2);
    ModelSpec s = spec_for(d, arch);
    auto model = make_model(s, *be, 1);
    const std::vector<float> reference = model->forward(d.images, false).to_vector();
    for (int64_t chunk : {1, 5, 16, 1024}) {
      CAPTURE(chunk);
      Tensor logits;
      model->infer_logits(d.images, logits, chunk);
      CHECK(test::nmse(logits, Tensor::from_vector(reference, {37, 4})) < 1e-12);
    }
  }
}

TEST_CASE("inference: input_gradient matches the general backward and leaves parameter gradients alone") {
  const Dataset d = test::synthetic_dataset(10, 4, 7);
  auto be = make_cpu_backend(2);
  auto model = make_model(spec_for(d, "lenet5"), *be, 2);
  test::Rng rng(9);
  Tensor grads = model->arena().grads();
  test::fill_random(grads, rng);
  const std::vector<float> grads_before = grads.to_vector();
  Tensor dx;
  const double loss = model->input_gradient(d.images, d.labels, dx);
  CHECK(model->arena().grads().to_vector() == grads_before);
  CHECK(test::all_finite(dx));
  // The same gradient through forward/backward with parameter gradients on.
  const Tensor& logits = model->forward(d.images, false);
  SoftmaxCrossEntropy xent;
  CHECK(xent.forward(*be, logits, d.labels) == doctest::Approx(loss).epsilon(1e-12));
  const Tensor& dx_general = model->backward(xent.backward(*be, d.labels), true, true);
  CHECK(test::nmse(dx, dx_general) < 1e-12);
}

TEST_CASE("end to end: LeNet-5 on 5,000 Fashion-MNIST images for one epoch beats 70% test accuracy") {
  if (!has_fashion_mnist()) {
    MESSAGE("SKIPPED: Fashion-MNIST not found (apt-get install dataset-fashion-mnist)");
    return;
  }
  const DataRef ref = parse_data_ref("fashion-mnist");
  const Dataset train_set = take_shuffled(load_dataset(ref, Split::Train), 5000, 0);
  const Dataset test_set = load_dataset(ref, Split::Test);
  auto be = make_cpu_backend(2);  // fixed, so the result is reproducible wherever the suite runs
  auto model = make_model(spec_for(train_set, "lenet5"), *be, 0);
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.batch = 16;
  cfg.optim.kind = "adam";
  cfg.optim.lr = 0.002f;
  train(*model, train_set, cfg);
  const EvalReport r = evaluate(*model, test_set);
  MESSAGE("LeNet-5, 5,000 images, 1 epoch: test accuracy " << r.accuracy);
  CHECK(r.n == 10000);
  CHECK(r.accuracy > 0.70);
}
