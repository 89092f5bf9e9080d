#include "engine/unlearn/update_log.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/hash.h"
#include "engine/json_fields.h"
#include "engine/safetensors.h"

namespace lethe::unlearn {

namespace {

constexpr const char* kMetadataKey = "lethe_update_log";

bool contains_sorted(const std::vector<int64_t>& sorted, int64_t v) {
  return std::binary_search(sorted.begin(), sorted.end(), v);
}

}  // namespace

std::string params_hash(const Model& model) {
  const std::vector<float> p = model.arena().params().to_vector();
  return hex64(fnv1a(kFnvBasis, p.data(), p.size() * sizeof(float)));
}

UpdateRecorder::UpdateRecorder(const Model& model, std::vector<int64_t> row_positions, std::vector<int64_t> sensitive)
    : model_(model), row_positions_(std::move(row_positions)), sensitive_(std::move(sensitive)) {
  std::sort(sensitive_.begin(), sensitive_.end());
  sensitive_.erase(std::unique(sensitive_.begin(), sensitive_.end()), sensitive_.end());
  previous_ = model_.arena().params().to_vector();
}

StepFn UpdateRecorder::hook() {
  return [this](int epoch, int64_t step, const int64_t* rows, int64_t count) { after_step(epoch, step, rows, count); };
}

void UpdateRecorder::after_step(int epoch, int64_t step, const int64_t* rows, int64_t count) {
  std::vector<float> now = model_.arena().params().to_vector();
  Step logged{epoch, step, {}};
  for (int64_t i = 0; i < count; ++i) {
    LETHE_CHECK(rows[i] >= 0 && rows[i] < static_cast<int64_t>(row_positions_.size()), "update log: row out of range");
    const int64_t position = row_positions_[static_cast<size_t>(rows[i])];
    if (contains_sorted(sensitive_, position)) logged.samples.push_back(position);
  }
  if (!logged.samples.empty()) {
    std::sort(logged.samples.begin(), logged.samples.end());
    const size_t offset = updates_.size();
    updates_.resize(offset + now.size());
    for (size_t i = 0; i < now.size(); ++i) updates_[offset + i] = now[i] - previous_[i];
    steps_.push_back(std::move(logged));
  }
  previous_ = std::move(now);
}

void UpdateRecorder::save(const std::string& path) const {
  const int64_t p = model_.arena().size(), m = logged_steps();
  nlohmann::json steps = nlohmann::json::array();
  for (const Step& s : steps_) steps.push_back({{"epoch", s.epoch}, {"step", s.step}, {"samples", s.samples}});
  const nlohmann::json meta = {{"arch", model_.spec().arch},
                               {"parameters", p},
                               {"model_hash", params_hash(model_)},
                               {"sensitive", sensitive_},
                               {"steps", steps}};
  // Tensor::borrow needs a mutable pointer; the data are only read.
  Tensor updates = Tensor::borrow(const_cast<float*>(updates_.data()), {m, p});
  write_safetensors(path, {{"updates", updates}}, {{kMetadataKey, meta.dump()}});
}

UndoReport undo_logged_updates(Model& model, const std::string& log_path, const std::vector<int64_t>& forget) {
  const SafeTensorsFile file = read_safetensors(log_path);
  const auto meta_it = file.metadata.find(kMetadataKey);
  if (meta_it == file.metadata.end())
    throw InputError(log_path + ": not an update log (no '" + std::string(kMetadataKey) + "' metadata); write one with "
                     "lethe train --log-updates");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_it->second);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(log_path + ": update log metadata is not valid JSON (" + e.what() + ")");
  }
  reject_unknown_keys(meta, {"arch", "parameters", "model_hash", "sensitive", "steps"}, log_path, "the update log");
  const int64_t p = model.arena().size();
  const std::string arch = get_field<std::string>(meta, "arch", log_path, "");
  if (arch != model.spec().arch || get_field<int64_t>(meta, "parameters", log_path, -1) != p)
    throw InputError(log_path + ": an update log of a " + arch + ", not of this " + model.spec().arch + " with " +
                     std::to_string(p) + " parameters");
  if (get_field<std::string>(meta, "model_hash", log_path, "") != params_hash(model))
    throw InputError(log_path + ": logged while training other weights than the model's (weights hash differs)");
  std::vector<int64_t> sensitive = get_field<std::vector<int64_t>>(meta, "sensitive", log_path, {});
  std::sort(sensitive.begin(), sensitive.end());
  const std::vector<nlohmann::json> steps = get_field<std::vector<nlohmann::json>>(meta, "steps", log_path, {});
  const Tensor* updates = file.find("updates");
  const int64_t m = static_cast<int64_t>(steps.size());
  if (!updates || updates->dtype() != DType::F32 || updates->shape() != Shape{m, p})
    throw InputError(log_path + ": tensor 'updates' must be F32 [" + std::to_string(m) + ", " + std::to_string(p) +
                     "], one row per logged step");

  for (const int64_t position : forget)
    if (!contains_sorted(sensitive, position))
      throw UsageError("training-split sample " + std::to_string(position) + " was not declared sensitive when " +
                       "the model was trained, so " + log_path + " holds no update to undo for it (the stored-update "
                       "variant forgets only sensitive samples; use the relabel variant)");
  std::vector<int64_t> sorted_forget = forget;
  std::sort(sorted_forget.begin(), sorted_forget.end());

  UndoReport report;
  report.logged_steps = m;
  std::vector<double> total(static_cast<size_t>(p), 0.0);  // summed in double, in step order: deterministic
  for (int64_t s = 0; s < m; ++s) {
    reject_unknown_keys(steps[static_cast<size_t>(s)], {"epoch", "step", "samples"}, log_path, "a logged step");
    const auto samples = get_field<std::vector<int64_t>>(steps[static_cast<size_t>(s)], "samples", log_path, {});
    const bool touched = std::any_of(samples.begin(), samples.end(),
                                     [&](int64_t v) { return contains_sorted(sorted_forget, v); });
    if (!touched) continue;
    const float* row = updates->f32() + s * p;
    for (int64_t i = 0; i < p; ++i) total[static_cast<size_t>(i)] += row[i];
    ++report.undone_steps;
  }
  std::vector<float> params = model.arena().params().to_vector();
  for (int64_t i = 0; i < p; ++i)
    params[static_cast<size_t>(i)] =
        static_cast<float>(static_cast<double>(params[static_cast<size_t>(i)]) - total[static_cast<size_t>(i)]);
  Tensor arena = model.arena().params();
  model.backend().copy(Tensor::from_vector(params, {p}), arena);
  return report;
}

}  // namespace lethe::unlearn
