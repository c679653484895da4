#include "common/model/optimizer_state.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {

absl::Status RestoreStateTensor(const NamedTensors& state, const std::string& name,
                                at::Tensor& target) {
  for (const auto& [key, value] : state) {
    if (key != name) continue;
    if (!value.sizes().equals(target.sizes())) {
      return absl::FailedPreconditionError(
          absl::StrCat("optimizer state ", name, ": shape [", absl::StrJoin(value.sizes(), ","),
                       "]; expected [", absl::StrJoin(target.sizes(), ","), "]"));
    }
    torch::NoGradGuard no_grad;
    target.copy_(value);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("optimizer state ", name, ": missing"));
}

}  // namespace resbm
