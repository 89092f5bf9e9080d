#pragma once
#include "engine/backend.h"

namespace lethe {

// Softmax cross-entropy with mean reduction, fused: forward keeps the probabilities that backward needs.
class SoftmaxCrossEntropy {
 public:
  double forward(Backend& be, const Tensor& logits, const Tensor& labels);  // returns the mean loss
  // dL/dlogits of the last forward, (p - onehot) / N.
  const Tensor& backward(Backend& be, const Tensor& labels);
  const Tensor& probs() const { return probs_; }

 private:
  Tensor probs_, dlogits_;
};

}  // namespace lethe
