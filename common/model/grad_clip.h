// GradClipFactor: the factor every stage scales its gradients by for global grad-norm
// clipping, from the norm over all stages. No LibTorch, so the coordinator computes it too.
// Pure; thread-safe.
#ifndef RESBM_COMMON_MODEL_GRAD_CLIP_H_
#define RESBM_COMMON_MODEL_GRAD_CLIP_H_

#include <algorithm>

namespace resbm {

// min(1, clip / (global_norm + 1e-6)); 1 when clip <= 0 (clipping disabled).
inline double GradClipFactor(double global_norm, double clip) {
  if (clip <= 0.0) return 1.0;
  return std::min(1.0, clip / (global_norm + 1e-6));
}

}  // namespace resbm

#endif  // RESBM_COMMON_MODEL_GRAD_CLIP_H_
