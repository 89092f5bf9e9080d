#include "engine/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/json_fields.h"
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

TrainConfig standard_recipe(int epochs, uint64_t seed) {
  TrainConfig cfg;
  cfg.epochs = epochs;
  cfg.batch = 128;
  cfg.optim.lr = 0.05f;
  cfg.optim.momentum = 0.9f;
  cfg.schedule.kind = "cosine";
  cfg.schedule.total_epochs = epochs;
  cfg.seed = seed;
  return cfg;
}

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

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw InputError(source + ": the training recipe must be a JSON object");
  TrainConfig c;
  c.epochs = get_field<int>(j, "epochs", source, c.epochs);
  c.batch = get_field<int64_t>(j, "batch", source, c.batch);
  c.seed = get_field<uint64_t>(j, "seed", source, c.seed);
  c.shuffle = get_field<bool>(j, "shuffle", source, c.shuffle);
  c.drop_last = get_field<bool>(j, "drop_last", source, c.drop_last);
  c.freeze_bn = get_field<bool>(j, "freeze_bn", source, c.freeze_bn);
  if (j.contains("augment")) {
    const nlohmann::json& a = j.at("augment");
    if (!a.is_object()) throw InputError(source + ": field 'augment' must be a JSON object");
    c.augment.pad = get_field<int32_t>(a, "pad", source, 0);
    c.augment.flip = get_field<bool>(a, "flip", source, false);
  }
  if (j.contains("optim")) {
    const nlohmann::json& o = j.at("optim");
    if (!o.is_object()) throw InputError(source + ": field 'optim' must be a JSON object");
    c.optim.kind = get_field<std::string>(o, "kind", source, c.optim.kind);
    c.optim.lr = get_field<float>(o, "lr", source, c.optim.lr);
    c.optim.momentum = get_field<float>(o, "momentum", source, c.optim.momentum);
    c.optim.dampening = get_field<float>(o, "dampening", source, c.optim.dampening);
    c.optim.weight_decay = get_field<float>(o, "weight_decay", source, c.optim.weight_decay);
    c.optim.nesterov = get_field<bool>(o, "nesterov", source, c.optim.nesterov);
    c.optim.beta1 = get_field<float>(o, "beta1", source, c.optim.beta1);
    c.optim.beta2 = get_field<float>(o, "beta2", source, c.optim.beta2);
    c.optim.eps = get_field<float>(o, "eps", source, c.optim.eps);
  }
  if (j.contains("schedule")) {
    const nlohmann::json& s = j.at("schedule");
    if (!s.is_object()) throw InputError(source + ": field 'schedule' must be a JSON object");
    c.schedule.kind = get_field<std::string>(s, "kind", source, c.schedule.kind);
    c.schedule.milestones = get_field<std::vector<int>>(s, "milestones", source, {});
    c.schedule.gamma = get_field<float>(s, "gamma", source, c.schedule.gamma);
    c.schedule.total_epochs = get_field<int>(s, "total_epochs", source, c.schedule.total_epochs);
    c.schedule.eta_min = get_field<float>(s, "eta_min", source, c.schedule.eta_min);
    c.schedule.start_factor = get_field<float>(s, "start_factor", source, c.schedule.start_factor);
    c.schedule.end_factor = get_field<float>(s, "end_factor", source, c.schedule.end_factor);
  }
  return c;
}

namespace {

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

void BatchLoader::load(const std::vector<int64_t>& rows, int64_t begin, int64_t end, const AugmentConfig& augment,
                       uint64_t seed, int epoch, const RelabelFn& relabel) {
  const int64_t n = end - begin, c = data_.channels(), h = data_.height(), w = data_.width(), row = c * h * w;
  Tensor::ensure(host_x_, {n, c, h, w});
  Tensor::ensure(host_y_, {n}, DType::I64);
  if (augment.enabled()) Tensor::ensure(gathered_, {n, c, h, w});
  const float* src = data_.images.f32();
  const int64_t* labels = data_.labels.i64();
  float* dst = augment.enabled() ? gathered_.f32() : host_x_.f32();
  const int64_t* picked = rows.data() + begin;
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * row, src + picked[i] * row, sizeof(float) * row);
    const int64_t label = labels[picked[i]];
    host_y_.i64()[i] = relabel ? relabel(epoch, picked[i], label) : label;
  }
  if (augment.enabled())
    augment_images(gathered_.f32(), host_x_.f32(), n, c, h, w, picked, augment, seed, static_cast<uint64_t>(epoch));
  if (be_.device() == Device::CPU) {
    dev_x_ = host_x_;
    dev_y_ = host_y_;
  } else {
    Tensor::ensure(dev_x_, host_x_.shape(), DType::F32, be_.device());
    Tensor::ensure(dev_y_, host_y_.shape(), DType::I64, be_.device());
    be_.copy(host_x_, dev_x_);
    be_.copy(host_y_, dev_y_);
  }
}

double BatchGradients::compute(const Tensor& images, const Tensor& labels, bool train_mode, const std::string& where) {
  Backend& be = model_.backend();
  const Tensor& logits = model_.forward(images, train_mode);
  const double batch_loss = loss_.forward(be, logits, labels);
  if (!std::isfinite(batch_loss))
    throw Error(ExitCode::Other, "training diverged: loss is " + std::to_string(batch_loss) + " at " + where +
                                     " (lower the learning rate)");
  correct_ = count_correct(be, logits, labels, pred_);
  model_.arena().zero_grad(be);
  model_.backward(loss_.backward(be, labels), true, false);
  return batch_loss;
}

std::vector<EpochReport> train(Model& model, const Dataset& data, const TrainConfig& cfg, const TrainHooks& hooks) {
  if (cfg.epochs < 0) throw UsageError("epochs must be >= 0");
  if (cfg.batch <= 0) throw UsageError("batch size must be positive");
  check_fits(model, data);
  Backend& be = model.backend();
  auto optimizer = make_optimizer(cfg.optim, model.arena(), be);
  BatchLoader loader(data, be);
  BatchGradients gradients(model);
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
      loader.load(order, begin, end, cfg.augment, cfg.seed, epoch, hooks.relabel);
      const double batch_loss =
          gradients.compute(loader.images(), loader.labels(), !cfg.freeze_bn,
                            "epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step + 1));
      correct += gradients.correct();
      optimizer->step(lr);
      if (hooks.after_step) hooks.after_step(epoch, step, order.data() + begin, end - begin);
      loss_sum += batch_loss * static_cast<double>(end - begin);
      seen += end - begin;
      if (hooks.progress) hooks.progress(epoch, seen, usable, loss_sum / static_cast<double>(seen));
    }
    EpochReport r;
    r.epoch = epoch;
    r.samples = seen;
    r.loss = seen ? loss_sum / static_cast<double>(seen) : 0.0;
    r.accuracy = seen ? static_cast<double>(correct) / static_cast<double>(seen) : 0.0;
    r.lr = lr;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    reports.push_back(r);
    if (hooks.on_epoch) hooks.on_epoch(r);
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
