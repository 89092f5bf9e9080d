#include "engine/loss.h"

#include <cmath>

namespace lethe {

double SoftmaxCrossEntropy::forward(Backend& be, const Tensor& logits, const Tensor& labels) {
  Tensor::ensure(probs_, logits.shape(), DType::F32, logits.device());
  return be.softmax_xent_forward(logits, labels, probs_);
}

const Tensor& SoftmaxCrossEntropy::backward(Backend& be, const Tensor& labels) {
  LETHE_CHECK(probs_.defined(), "SoftmaxCrossEntropy::backward before forward");
  Tensor::ensure(dlogits_, probs_.shape(), DType::F32, probs_.device());
  const int64_t n = probs_.dim(0);
  be.softmax_xent_backward(probs_, labels, n > 0 ? 1.0f / static_cast<float>(n) : 0.0f, dlogits_);
  return dlogits_;
}

}  // namespace lethe
