// Optimizers against torch.optim (1.13).
//
// The reference rows were produced by a throwaway script that ran torch.optim.SGD / Adam / AdamW on one float32
// parameter initialised to kInitial, setting p.grad to kGrads[k] and param_groups[0]['lr'] to kLrs[k] before
// step k, and printing the parameter after each step with %.9g. The hand formulas they follow:
//   SGD:   d = g + wd·p;  buf = d (first step) or momentum·buf + (1-dampening)·d;
//          d = nesterov ? d + momentum·buf : buf;  p -= lr·d
//   Adam:  g += wd·p (AdamW instead: p *= 1 - lr·wd);  m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
//          p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps),  t = 1, 2, ...
// e.g. plain SGD step 1, element 0: 0.5 - 0.1·0.1 = 0.49; Adam step 1 moves every element by lr·sign(g).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/optim.h"

namespace {

using lethe::OptimConfig;

constexpr int kSteps = 4;
constexpr int kN = 5;
using Rows = std::array<std::array<float, kN>, kSteps>;

const std::array<float, kN> kInitial = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f};
const Rows kGrads = {{{0.1f, -0.2f, 0.3f, -0.4f, 0.5f},
                      {-0.3f, 0.25f, 0.0f, 0.7f, -0.1f},
                      {0.05f, 0.4f, -0.6f, 0.2f, 0.9f},
                      {0.2f, -0.1f, 0.35f, -0.25f, 0.0f}}};
// The schedule may change the rate between steps; the optimizer must use the one it is given.
const std::array<float, kSteps> kLrs = {0.1f, 0.05f, 0.1f, 0.02f};

// A two-tensor model ([2] and [3]) so the flat arena spans more than one parameter.
struct TinyModel {
  lethe::ParamArena arena;
  lethe::Tensor a, a_grad, b, b_grad;
  TinyModel() {
    arena.add_param("a", {2}, &a, &a_grad);
    arena.add_param("b", {3}, &b, &b_grad);
    arena.finalize(lethe::Device::CPU);
    std::copy(kInitial.begin(), kInitial.end(), arena.params().f32());
  }
};

// Runs kSteps steps of `cfg` and checks the parameters after each one against `expected`.
void check_against_torch(const OptimConfig& cfg, const Rows& expected) {
  TinyModel model;
  auto be = lethe::make_cpu_backend(1);
  auto opt = lethe::make_optimizer(cfg, model.arena, *be);
  for (int k = 0; k < kSteps; ++k) {
    std::copy(kGrads[k].begin(), kGrads[k].end(), model.arena.grads().f32());
    opt->step(kLrs[k]);
    CHECK(opt->steps() == k + 1);
    // Read through the layer views too: the update must land in the arena they alias.
    const std::vector<float> got = {model.a.f32()[0], model.a.f32()[1], model.b.f32()[0], model.b.f32()[1],
                                    model.b.f32()[2]};
    for (int i = 0; i < kN; ++i) {
      INFO("step " << k + 1 << ", element " << i);
      // Tolerance 1e-6·(1 + |value|): float rounding of a different but equivalent operation order stays
      // far below it, while any formula slip (a missing bias correction, wrong dampening) is far above.
      CHECK(got[i] == doctest::Approx(expected[k][i]).epsilon(1e-6).scale(1.0));
    }
  }
}

OptimConfig sgd(float momentum, float dampening, float weight_decay, bool nesterov) {
  OptimConfig c;
  c.kind = "sgd";
  c.momentum = momentum;
  c.dampening = dampening;
  c.weight_decay = weight_decay;
  c.nesterov = nesterov;
  return c;
}

OptimConfig adam(const char* kind, float weight_decay, float beta1 = 0.9f, float beta2 = 0.999f,
                 float eps = 1e-8f) {
  OptimConfig c;
  c.kind = kind;
  c.weight_decay = weight_decay;
  c.beta1 = beta1;
  c.beta2 = beta2;
  c.eps = eps;
  return c;
}

}  // namespace

TEST_CASE("SGD matches torch.optim.SGD") {
  SUBCASE("plain") {
    check_against_torch(sgd(0, 0, 0, false), {{{0.49000001f, -1.23000002f, 1.97000003f, 0.0400000028f, -0.800000012f},
                                               {0.504999995f, -1.24250007f, 1.97000003f, 0.00500000268f, -0.795000017f},
                                               {0.5f, -1.28250003f, 2.02999997f, -0.0149999978f, -0.88499999f},
                                               {0.495999992f, -1.28050005f, 2.023f, -0.00999999791f, -0.88499999f}}});
  }
  SUBCASE("momentum 0.9") {
    check_against_torch(sgd(0.9f, 0, 0, false),
                        {{{0.49000001f, -1.23000002f, 1.97000003f, 0.0400000028f, -0.800000012f},
                          {0.500500023f, -1.2335f, 1.95650005f, 0.0230000019f, -0.817499995f},
                          {0.514400005f, -1.27980006f, 1.99220002f, -0.0275999978f, -0.93900001f},
                          {0.512902021f, -1.286134f, 1.99162602f, -0.0317079984f, -0.960870028f}}});
  }
  SUBCASE("momentum 0.9, dampening 0.3") {
    check_against_torch(sgd(0.9f, 0.3f, 0, false),
                        {{{0.49000001f, -1.23000002f, 1.97000003f, 0.0400000028f, -0.800000012f},
                          {0.496000022f, -1.22975004f, 1.95650005f, 0.0335000046f, -0.819000006f},
                          {0.503300011f, -1.25730002f, 1.97420001f, 0.00780000445f, -0.916199982f},
                          {0.501814008f, -1.26085901f, 1.97248602f, 0.00667400425f, -0.933695972f}}});
  }
  SUBCASE("nesterov, momentum 0.8, weight decay 0.01") {
    check_against_torch(sgd(0.8f, 0, 0.01f, true),
                        {{{0.481099993f, -1.21175003f, 1.94239998f, 0.0720000044f, -0.838649988f},
                          {0.504307032f, -1.22635949f, 1.93041182f, 0.0217352044f, -0.844655216f},
                          {0.507915378f, -1.30049658f, 2.0173099f, -0.038669996f, -1.02341413f},
                          {0.501990557f, -1.30208659f, 2.00859618f, -0.0361174308f, -1.03738225f}}});
  }
  SUBCASE("weight decay 0.05") {
    check_against_torch(sgd(0, 0, 0.05f, false),
                        {{{0.487500012f, -1.22375f, 1.96000004f, 0.0400000028f, -0.796249986f},
                          {0.501281261f, -1.23319066f, 1.95510006f, 0.00490000425f, -0.789259374f},
                          {0.493774861f, -1.26702476f, 2.0053246f, -0.015124497f, -0.875313103f},
                          {0.489281088f, -1.26375771f, 1.99631929f, -0.0101093724f, -0.874437809f}}});
  }
  SUBCASE("momentum 0.9, dampening 0.1, weight decay 0.05") {
    check_against_torch(sgd(0.9f, 0.1f, 0.05f, false),
                        {{{0.487500012f, -1.22375f, 1.96000004f, 0.0400000028f, -0.796249986f},
                          {0.494278133f, -1.22043407f, 1.93759f, 0.0264100041f, -0.810770929f},
                          {0.499754518f, -1.24497342f, 1.9425329f, -0.016170837f, -0.914260149f},
                          {0.496690482f, -1.24646997f, 1.93537438f, -0.0193208344f, -0.932065368f}}});
  }
}

TEST_CASE("Adam and AdamW match torch.optim") {
  SUBCASE("Adam, defaults") {
    check_against_torch(adam("adam", 0), {{{0.400000006f, -1.14999998f, 1.89999998f, 0.100000001f, -0.849999964f},
                                           {0.424709499f, -1.15813661f, 1.86649704f, 0.0843072683f, -0.875551283f},
                                           {0.452459306f, -1.21588075f, 1.90050054f, 0.0453709289f, -0.950603247f},
                                           {0.450151503f, -1.22293723f, 1.90005946f, 0.0426161774f, -0.96289885f}}});
  }
  SUBCASE("Adam, weight decay 0.1, betas (0.8, 0.99), eps 1e-6") {
    check_against_torch(adam("adam", 0.1f, 0.8f, 0.99f, 1e-6f),
                        {{{0.400000662f, -1.15000033f, 1.90000021f, 0.0999997631f, -0.849999785f},
                          {0.418299794f, -1.13602233f, 1.85658705f, 0.0812241137f, -0.863158703f},
                          {0.422864348f, -1.16520047f, 1.85053253f, 0.0372899063f, -0.934042275f},
                          {0.415142506f, -1.16338181f, 1.84141064f, 0.034657605f, -0.943495393f}}});
  }
  SUBCASE("AdamW, weight decay 0.1") {
    check_against_torch(adam("adamw", 0.1f), {{{0.395000011f, -1.13749993f, 1.88f, 0.100000001f, -0.842499971f},
                                               {0.417734504f, -1.13994908f, 1.83709705f, 0.0838072672f, -0.863838792f},
                                               {0.441306978f, -1.18629372f, 1.85272956f, 0.0440328568f, -0.930252373f},
                                               {0.43811658f, -1.19097769f, 1.8485831f, 0.0411900394f, -0.940687478f}}});
  }
}

TEST_CASE("optimizer configurations PyTorch rejects are usage errors") {
  TinyModel model;
  auto be = lethe::make_cpu_backend(1);
  auto rejects = [&](const OptimConfig& c) {
    INFO("kind " << c.kind);
    CHECK_THROWS_AS(lethe::make_optimizer(c, model.arena, *be), lethe::UsageError);
  };
  auto accepts = [&](const OptimConfig& c) {
    INFO("kind " << c.kind);
    CHECK_NOTHROW(lethe::make_optimizer(c, model.arena, *be));
  };

  OptimConfig unknown;
  unknown.kind = "rmsprop";
  rejects(unknown);
  try {
    lethe::make_optimizer(unknown, model.arena, *be);
  } catch (const lethe::UsageError& e) {
    const std::string msg = e.what();  // the message lists what is known
    CHECK(msg.find("rmsprop") != std::string::npos);
    CHECK(msg.find("sgd") != std::string::npos);
    CHECK(msg.find("adamw") != std::string::npos);
  }

  for (const char* kind : {"sgd", "adam", "adamw"}) {
    OptimConfig c = adam(kind, 0);
    c.lr = -0.1f;
    rejects(c);
    c.lr = std::nanf("");
    rejects(c);
    c = adam(kind, -0.01f);
    rejects(c);
    c = adam(kind, 0);
    c.lr = 0.0f;  // a zero rate is allowed, as in PyTorch
    accepts(c);
  }

  rejects(sgd(-0.5f, 0, 0, false));
  rejects(sgd(0, 0, 0, true));        // nesterov without momentum
  rejects(sgd(0.9f, 0.1f, 0, true));  // nesterov with dampening
  accepts(sgd(0.9f, 0, 0, true));
  accepts(sgd(0.9f, 0.5f, 1e-4f, false));

  for (const char* kind : {"adam", "adamw"}) {
    rejects(adam(kind, 0, 1.0f));
    rejects(adam(kind, 0, -0.1f));
    rejects(adam(kind, 0, 0.9f, 1.0f));
    rejects(adam(kind, 0, 0.9f, -0.5f));
    rejects(adam(kind, 0, 0.9f, 0.999f, -1e-8f));
    accepts(adam(kind, 0, 0.0f, 0.0f, 0.0f));
  }

  // A negative rate handed to step() (e.g. by a broken schedule) is refused too.
  auto opt = lethe::make_optimizer(sgd(0, 0, 0, false), model.arena, *be);
  CHECK_THROWS_AS(opt->step(-1.0f), lethe::UsageError);
  CHECK(opt->steps() == 0);
}

TEST_CASE("optimizers leave parameters alone when gradients are zero") {
  // With zero gradients and no weight decay, neither SGD (with momentum) nor Adam may move the parameters.
  for (const char* kind : {"sgd", "adam", "adamw"}) {
    TinyModel model;
    auto be = lethe::make_cpu_backend(1);
    OptimConfig c = adam(kind, 0);
    c.momentum = std::string(kind) == "sgd" ? 0.9f : 0.0f;
    auto opt = lethe::make_optimizer(c, model.arena, *be);
    for (int k = 0; k < 3; ++k) opt->step(0.1f);
    const std::vector<float> after = model.arena.params().to_vector();
    for (int i = 0; i < kN; ++i) CHECK(after[i] == kInitial[i]);
  }
}
