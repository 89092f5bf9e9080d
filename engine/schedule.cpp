#include "engine/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

#include "engine/error.h"

namespace lethe {
namespace {

std::string num(double x) {
  char s[32];
  std::snprintf(s, sizeof s, "%g", x);
  return s;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw UsageError("invalid learning-rate schedule: " + what);
}

// MultiStepLR: one factor of gamma per milestone already reached.
double multistep(const ScheduleConfig& c, double base, int epoch) {
  require(std::isfinite(c.gamma) && c.gamma > 0.0f, "multistep gamma must be > 0, got " + num(c.gamma));
  // PyTorch's chained form never applies a milestone at epoch 0, so only positive, increasing ones are meaningful.
  int passed = 0;
  for (size_t i = 0; i < c.milestones.size(); ++i) {
    require(c.milestones[i] > 0, "multistep milestones must be positive, got " + std::to_string(c.milestones[i]));
    require(i == 0 || c.milestones[i] > c.milestones[i - 1], "multistep milestones must be strictly increasing");
    if (c.milestones[i] <= epoch) ++passed;
  }
  return base * std::pow(static_cast<double>(c.gamma), passed);
}

// CosineAnnealingLR with T_max = total_epochs. Past T_max PyTorch's chained recursion keeps following the same
// cosine (the rate climbs back towards base over the next T_max epochs, period 2·T_max); the closed form below
// is that curve for every epoch, so it matches PyTorch there too rather than clamping at eta_min.
double cosine(const ScheduleConfig& c, double base, int epoch) {
  require(c.total_epochs >= 1, "cosine needs total_epochs >= 1, got " + std::to_string(c.total_epochs));
  require(std::isfinite(c.eta_min) && c.eta_min >= 0.0f, "cosine eta_min must be >= 0, got " + num(c.eta_min));
  const double eta_min = c.eta_min;
  return eta_min + (base - eta_min) * (1.0 + std::cos(std::numbers::pi * epoch / c.total_epochs)) / 2.0;
}

// LinearLR with total_iters = total_epochs: the factor moves linearly from start to end, then holds.
double linear(const ScheduleConfig& c, double base, int epoch) {
  require(c.total_epochs >= 1, "linear needs total_epochs >= 1, got " + std::to_string(c.total_epochs));
  // PyTorch's bounds: a zero start factor would make its chained form divide by zero.
  require(c.start_factor > 0.0f && c.start_factor <= 1.0f,
          "linear start_factor must be in (0, 1], got " + num(c.start_factor));
  require(c.end_factor >= 0.0f && c.end_factor <= 1.0f, "linear end_factor must be in [0, 1], got " +
                                                             num(c.end_factor));
  const double start = c.start_factor, end = c.end_factor;
  const int done = std::min(epoch, c.total_epochs);
  return base * (start + (end - start) * done / c.total_epochs);
}

}  // namespace

float lr_at(const ScheduleConfig& c, float base_lr, int epoch) {
  require(std::isfinite(base_lr) && base_lr >= 0.0f, "base learning rate must be >= 0, got " + num(base_lr));
  require(epoch >= 0, "epoch must be >= 0, got " + std::to_string(epoch));
  const double base = base_lr;
  double lr;
  if (c.kind == "constant") {
    lr = base;
  } else if (c.kind == "multistep") {
    lr = multistep(c, base, epoch);
  } else if (c.kind == "cosine") {
    lr = cosine(c, base, epoch);
  } else if (c.kind == "linear") {
    lr = linear(c, base, epoch);
  } else {
    throw UsageError("unknown learning-rate schedule '" + c.kind + "' (known: constant, multistep, cosine, linear)");
  }
  return static_cast<float>(lr);
}

}  // namespace lethe
