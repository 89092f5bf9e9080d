// `lethe predict`: logits and softmax probabilities of a saved model for images given in a safetensors file.
// Tensor files in and out make it easy to cross-check against PyTorch.
#include <cmath>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "engine/safetensors.h"
#include "nets/model_io.h"
#include "tools/common.h"

namespace lethe::cli {
namespace {

struct PredictOptions {
  std::string model, input, out;
};

// The "input" tensor: F32 [N, C, H, W] matching the model, pixels in [0, 1].
Tensor checked_input(const SafeTensorsFile& file, const std::string& path, const ModelSpec& spec,
                     const std::string& model_path) {
  const Tensor* x = file.find("input");
  if (!x) throw InputError(path + ": no tensor named \"input\" (expected F32 [N, C, H, W] pixels in [0, 1])");
  const Shape want = spec.input_shape(x->ndim() == 4 ? x->dim(0) : 0);
  if (x->dtype() != DType::F32 || x->shape() != want || x->dim(0) < 1)
    throw InputError(path + ": \"input\" is " + dtype_name(x->dtype()) + " " + shape_str(x->shape()) + ", but " +
                     model_path + " takes F32 [N, " + std::to_string(spec.channels) + ", " +
                     std::to_string(spec.height) + ", " + std::to_string(spec.width) + "] with N >= 1");
  const float* v = x->f32();
  for (int64_t i = 0; i < x->numel(); ++i)
    if (!(v[i] >= 0.0f && v[i] <= 1.0f))  // also catches NaN
      throw InputError(path + ": \"input\" element " + std::to_string(i) + " is " + std::to_string(v[i]) +
                       ", pixels must be in [0, 1]");
  return *x;
}

int run_predict(const PredictOptions& o, const GlobalOptions& g) {
  auto be = open_backend(g);
  auto model = load_model(o.model, *be);
  const SafeTensorsFile in = read_safetensors(o.input);
  const Tensor x = checked_input(in, o.input, model->spec(), o.model);

  Tensor logits, probs;
  model->infer_logits(x, logits);
  Tensor::ensure(probs, logits.shape(), DType::F32, logits.device());
  be->softmax(logits, probs);
  write_safetensors(o.out, {{"logits", logits}, {"probs", probs}}, {{"model", o.model}, {"input", o.input}});

  const int64_t n = x.dim(0), k = logits.dim(1);
  if (g.json) {
    const nlohmann::json result = {{"out", o.out}, {"n", n}, {"num_classes", k}};
    std::printf("%s\n", result.dump().c_str());
  } else {
    std::printf("wrote %s: logits and probs %s for %s images\n", o.out.c_str(), shape_str({n, k}).c_str(),
                group_digits(n).c_str());
  }
  return 0;
}

}  // namespace

Command add_predict_command(CLI::App& parent, GlobalOptions& g) {
  auto o = std::make_shared<PredictOptions>();
  CLI::App* app = parent.add_subcommand("predict", "Write a model's logits and probabilities for input images");
  app->add_option("--model", o->model, "Model file (.safetensors)")->required();
  app->add_option("--input", o->input, "safetensors file with \"input\": F32 [N, C, H, W] pixels in [0, 1]")
      ->required();
  app->add_option("--out", o->out, "Output safetensors file: \"logits\" and \"probs\", F32 [N, K]")->required();
  add_global_options(*app, g);
  return {app, [o, &g] { return run_predict(*o, g); }};
}

}  // namespace lethe::cli
