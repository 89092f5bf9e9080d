#include "engine/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/loss.h"
#include "kernels/philox.h"

namespace lethe {

namespace {
// A float as the shortest decimal that reads back to it, so 0.9f is recorded as 0.9 rather than 0.8999999761581421.
double short_decimal(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", static_cast<double>(v));
  if (std::strtof(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return std::strtod(buf, nullptr);
}
}  // namespace

nlohmann::json TrainConfig::to_json() const {
  return {{"epochs", epochs},
          {"batch", batch},
          {"seed", seed},
          {"shuffle", shuffle},
          {"drop_last", drop_last},
          {"freeze_bn", freeze_bn},
          {"augment", augment.to_json()},
          {"optim",
           {{"kind", optim.kind},
            {"lr", short_decimal(optim.lr)},
            {"momentum", short_decimal(optim.momentum)},
            {"dampening", short_decimal(optim.dampening)},
            {"weight_decay", short_decimal(optim.weight_decay)},
            {"nesterov", optim.nesterov},
            {"beta1", short_decimal(optim.beta1)},
            {"beta2", short_decimal(optim.beta2)},
            {"eps", short_decimal(optim.eps)}}},
          {"schedule",
           {{"kind", schedule.kind},
            {"milestones", schedule.milestones},
            {"gamma", short_decimal(schedule.gamma)},
            {"total_epochs", schedule.total_epochs},
            {"eta_min", short_decimal(schedule.eta_min)},
            {"start_factor", short_decimal(schedule.start_factor)},
            {"end_factor", short_decimal(schedule.end_factor)}}}};
}

namespace {

// Copies rows `idx[begin, end)` of the dataset into the batch tensors (host staging, augmented if configured, then
// the model's device).
struct BatchLoader {
  const Dataset& data;
  Backend& be;
  Tensor host_x, host_y, dev_x, dev_y, gathered;

  void load(const std::vector<int64_t>& idx, int64_t begin, int64_t end, const AugmentConfig& augment,
            uint64_t seed, int epoch) {
    const int64_t n = end - begin, c = data.channels(), h = data.height(), w = data.width(), row = c * h * w;
    Tensor::ensure(host_x, {n, c, h, w});
    Tensor::ensure(host_y, {n}, DType::I64);
    if (augment.enabled()) Tensor::ensure(gathered, {n, c, h, w});
    const float* src = data.images.f32();
    const int64_t* labels = data.labels.i64();
    float* dst = augment.enabled() ? gathered.f32() : host_x.f32();
    const int64_t* rows = idx.data() + begin;
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(dst + i * row, src + rows[i] * row, sizeof(float) * row);
      host_y.i64()[i] = labels[rows[i]];
    }
    if (augment.enabled())
      augment_images(gathered.f32(), host_x.f32(), n, c, h, w, rows, augment, seed, static_cast<uint64_t>(epoch));
    if (be.device() == Device::CPU) {
      dev_x = host_x;
      dev_y = host_y;
    } else {
      Tensor::ensure(dev_x, host_x.shape(), DType::F32, be.device());
      Tensor::ensure(dev_y, host_y.shape(), DType::I64, be.device());
      be.copy(host_x, dev_x);
      be.copy(host_y, dev_y);
    }
  }
};

int64_t count_correct(Backend& be, const Tensor& logits, const Tensor& labels, Tensor& pred) {
  Tensor::ensure(pred, {logits.dim(0)}, DType::I64, logits.device());
  be.argmax_rows(logits, pred);
  const Tensor p = pred.device() == Device::CPU ? pred : pred.to_cpu();
  const Tensor y = labels.device() == Device::CPU ? labels : labels.to_cpu();
  int64_t correct = 0;
  for (int64_t i = 0; i < p.numel(); ++i) correct += p.i64()[i] == y.i64()[i];
  return correct;
}

// Each epoch gets its own shuffle, derived from (seed, epoch) so resuming at an epoch reproduces it.
uint64_t epoch_seed(uint64_t seed, int epoch) {
  const kernels::Philox4 r = kernels::philox4x32_10(seed, static_cast<uint64_t>(epoch), 0x7261696E);  // "rain"
  return (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
}

}  // namespace

std::vector<EpochReport> train(Model& model, const Dataset& data, const TrainConfig& cfg, const ProgressFn& progress,
                               const EpochFn& on_epoch) {
  if (cfg.epochs < 0) throw UsageError("epochs must be >= 0");
  if (cfg.batch <= 0) throw UsageError("batch size must be positive");
  check_fits(model, data);
  Backend& be = model.backend();
  auto optimizer = make_optimizer(cfg.optim, model.arena(), be);
  SoftmaxCrossEntropy loss;
  BatchLoader loader{data, be, {}, {}, {}, {}, {}};
  Tensor pred;
  std::vector<EpochReport> reports;
  const int64_t n = data.size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (cfg.shuffle) {
      order = seeded_permutation(n, epoch_seed(cfg.seed, epoch));
    } else {
      for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    }
    const float lr = lr_at(cfg.schedule, cfg.optim.lr, epoch);
    const int64_t usable = cfg.drop_last ? n / cfg.batch * cfg.batch : n;
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    for (int64_t begin = 0; begin < usable; begin += cfg.batch, ++step) {
      const int64_t end = std::min(begin + cfg.batch, usable);
      loader.load(order, begin, end, cfg.augment, cfg.seed, epoch);
      const Tensor& logits = model.forward(loader.dev_x, !cfg.freeze_bn);
      const double batch_loss = loss.forward(be, logits, loader.dev_y);
      if (!std::isfinite(batch_loss))
        throw Error(ExitCode::Other, "training diverged: loss is " + std::to_string(batch_loss) + " at epoch " +
                                         std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) +
                                         " (lower the learning rate)");
      correct += count_correct(be, logits, loader.dev_y, pred);
      model.arena().zero_grad(be);
      model.backward(loss.backward(be, loader.dev_y), true, false);
      optimizer->step(lr);
      loss_sum += batch_loss * static_cast<double>(end - begin);
      seen += end - begin;
      if (progress) progress(epoch, seen, usable, loss_sum / static_cast<double>(seen));
    }
    EpochReport r;
    r.epoch = epoch;
    r.samples = seen;
    r.loss = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    r.accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    r.lr = lr;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    reports.push_back(r);
    if (on_epoch) on_epoch(r);
  }
  return reports;
}

void check_fits(const Model& model, const Dataset& data, const std::string& role) {
  const ModelSpec& s = model.spec();
  if (data.images.ndim() != 4 || data.channels() != s.channels || data.height() != s.height ||
      data.width() != s.width)
    throw InputError("the " + role + " ('" + data.name + "') has images " + shape_str(data.images.shape()) +
                     " but the model (" + s.arch + ") takes " + shape_str(s.input_shape(data.size())));
  const int64_t* y = data.labels.i64();
  for (int64_t i = 0; i < data.size(); ++i)
    if (y[i] < 0 || y[i] >= s.num_classes)
      throw InputError("the " + role + " ('" + data.name + "'): label " + std::to_string(y[i]) + " at index " +
                       std::to_string(i) + " is outside the model's " + std::to_string(s.num_classes) + " classes");
}

void infer_in_chunks(Model& model, const Dataset& data, int64_t chunk, const LogitsFn& visit) {
  LETHE_CHECK(chunk > 0, "chunk must be positive");
  Backend& be = model.backend();
  Tensor x, logits;
  for (int64_t start = 0; start < data.size(); start += chunk) {
    const int64_t count = std::min(chunk, data.size() - start);
    x = data.images.rows(start, count);
    if (be.device() != Device::CPU) {
      Tensor on_device = Tensor::empty(x.shape(), DType::F32, be.device());
      be.copy(x, on_device);
      x = on_device;
    }
    model.infer_logits(x, logits, chunk);
    visit(start, count, logits);
  }
}

EvalReport evaluate(Model& model, const Dataset& data, int64_t chunk, const EvalProgressFn& progress) {
  check_fits(model, data);
  Backend& be = model.backend();
  const int64_t n = data.size(), k = model.spec().num_classes;
  EvalReport r;
  r.n = n;
  r.per_class_accuracy.assign(static_cast<size_t>(k), 0.0);
  r.per_class_count.assign(static_cast<size_t>(k), 0);
  std::vector<int64_t> correct_per_class(static_cast<size_t>(k), 0);
  Tensor logp, pred;
  const int64_t* y = data.labels.i64();
  double loss_sum = 0;
  int64_t correct = 0;
  infer_in_chunks(model, data, chunk, [&](int64_t start, int64_t count, const Tensor& logits) {
    Tensor::ensure(logp, logits.shape(), DType::F32, logits.device());
    be.log_softmax(logits, logp);
    Tensor::ensure(pred, {count}, DType::I64, logits.device());
    be.argmax_rows(logits, pred);
    const Tensor lp = logp.to_cpu(), pd = pred.to_cpu();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t label = y[start + i];
      const float l = lp.f32()[i * k + label];
      if (!std::isfinite(l)) throw Error(ExitCode::Other, "evaluation produced a non-finite loss (model has NaN/Inf)");
      loss_sum -= l;
      const bool ok = pd.i64()[i] == label;
      correct += ok;
      correct_per_class[static_cast<size_t>(label)] += ok;
      ++r.per_class_count[static_cast<size_t>(label)];
    }
    if (progress) progress(start + count, n, static_cast<double>(correct) / static_cast<double>(start + count));
  });
  r.accuracy = n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
  r.loss = n ? loss_sum / static_cast<double>(n) : 0.0;
  for (int64_t c = 0; c < k; ++c) {
    const int64_t cnt = r.per_class_count[static_cast<size_t>(c)];
    r.per_class_accuracy[static_cast<size_t>(c)] =
        cnt ? static_cast<double>(correct_per_class[static_cast<size_t>(c)]) / static_cast<double>(cnt) : 0.0;
  }
  return r;
}

}  // namespace lethe
