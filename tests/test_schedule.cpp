// Learning-rate schedules against torch.optim.lr_scheduler (1.13).
//
// The reference rows were produced by a throwaway script: torch.optim.SGD with lr 0.1 on one parameter, the
// scheduler built on it, and for each epoch e = 0..11 the group's lr recorded, then opt.step(); sched.step().
// That is PyTorch's chained (recursive) form stepped once per epoch; lr_at computes the closed forms:
//   multistep: base·gamma^(#milestones <= e)
//   cosine:    eta_min + (base - eta_min)·(1 + cos(pi·e/T_max))/2   (past T_max PyTorch keeps following this
//              same cosine back up, so 12 epochs with T_max 5 or 8 also check that lr_at matches it there)
//   linear:    base·(start + (end - start)·min(e, total)/total)
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/schedule.h"

namespace {

using lethe::ScheduleConfig;

constexpr float kBase = 0.1f;

void check_against_torch(const ScheduleConfig& cfg, const std::vector<double>& expected) {
  for (size_t e = 0; e < expected.size(); ++e) {
    INFO("epoch " << e);
    // Relative 1e-6 with a 1e-9 floor for the exact zero at the end of a cosine to eta_min = 0.
    CHECK(lethe::lr_at(cfg, kBase, static_cast<int>(e)) ==
          doctest::Approx(expected[e]).epsilon(1e-6).scale(1e-3));
  }
}

ScheduleConfig multistep(std::vector<int> milestones, float gamma) {
  ScheduleConfig c;
  c.kind = "multistep";
  c.milestones = std::move(milestones);
  c.gamma = gamma;
  return c;
}

ScheduleConfig cosine(int t_max, float eta_min) {
  ScheduleConfig c;
  c.kind = "cosine";
  c.total_epochs = t_max;
  c.eta_min = eta_min;
  return c;
}

ScheduleConfig linear(float start, float end, int total) {
  ScheduleConfig c;
  c.kind = "linear";
  c.start_factor = start;
  c.end_factor = end;
  c.total_epochs = total;
  return c;
}

}  // namespace

TEST_CASE("constant schedule returns the base rate") {
  ScheduleConfig c;
  for (int e : {0, 1, 7, 1000}) CHECK(lethe::lr_at(c, kBase, e) == kBase);
}

TEST_CASE("multistep matches MultiStepLR") {
  check_against_torch(multistep({3, 7, 8}, 0.5f),
                      {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.0125, 0.0125, 0.0125, 0.0125});
  check_against_torch(multistep({2, 5}, 0.1f),
                      {0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001});
  check_against_torch(multistep({}, 0.1f), std::vector<double>(6, 0.1));
}

TEST_CASE("cosine matches CosineAnnealingLR, including past T_max") {
  check_against_torch(cosine(5, 0.001f), {0.1, 0.0905463412, 0.0657963412, 0.0352036588, 0.0104536588, 0.001,
                                          0.0104536588, 0.0352036588, 0.0657963412, 0.0905463412, 0.1, 0.0905463412});
  check_against_torch(cosine(8, 0.0f), {0.1, 0.0961939766, 0.0853553391, 0.0691341716, 0.05, 0.0308658284,
                                        0.0146446609, 0.00380602337, 0, 0.00380602337, 0.0146446609, 0.0308658284});
}

TEST_CASE("linear matches LinearLR") {
  check_against_torch(linear(0.25f, 1.0f, 4),
                      {0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1});
  check_against_torch(linear(1.0f, 0.1f, 6),
                      {0.1, 0.085, 0.07, 0.055, 0.04, 0.025, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01});
}

TEST_CASE("invalid schedules are usage errors") {
  auto rejects = [](const ScheduleConfig& c, float base = kBase, int epoch = 0) {
    INFO("kind " << c.kind);
    CHECK_THROWS_AS(lethe::lr_at(c, base, epoch), lethe::UsageError);
  };

  ScheduleConfig unknown;
  unknown.kind = "exponential";
  rejects(unknown);
  try {
    lethe::lr_at(unknown, kBase, 0);
  } catch (const lethe::UsageError& e) {
    const std::string msg = e.what();  // names the bad kind and lists the known ones
    CHECK(msg.find("exponential") != std::string::npos);
    CHECK(msg.find("multistep") != std::string::npos);
    CHECK(msg.find("cosine") != std::string::npos);
  }

  ScheduleConfig constant;
  rejects(constant, -0.1f);
  rejects(constant, std::nanf(""));
  rejects(constant, kBase, -1);

  rejects(multistep({0, 3}, 0.1f));  // epoch-0 milestones never fire in PyTorch
  rejects(multistep({-2}, 0.1f));
  rejects(multistep({3, 3}, 0.1f));
  rejects(multistep({5, 3}, 0.1f));
  rejects(multistep({3}, 0.0f));
  rejects(multistep({3}, -0.5f));

  rejects(cosine(0, 0.0f));
  rejects(cosine(-4, 0.0f));
  rejects(cosine(5, -0.01f));

  rejects(linear(0.0f, 1.0f, 4));  // PyTorch: start factor in (0, 1]
  rejects(linear(1.5f, 1.0f, 4));
  rejects(linear(0.5f, -0.1f, 4));  // end factor in [0, 1]
  rejects(linear(0.5f, 1.1f, 4));
  rejects(linear(0.5f, 1.0f, 0));
}
