#include "common/schedule/microbatch_deal.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace resbm {

absl::StatusOr<std::vector<MicrobatchShare>> DealMicrobatches(int64_t microbatches,
                                                              absl::Span<const int64_t> live) {
  std::vector<int64_t> replicas(live.begin(), live.end());
  std::sort(replicas.begin(), replicas.end());
  const bool repeated = std::adjacent_find(replicas.begin(), replicas.end()) != replicas.end();
  if (replicas.empty() || replicas.front() < 0 || repeated) {
    return absl::InvalidArgumentError(absl::StrCat("live pipelines: [", absl::StrJoin(live, ", "),
                                                   "]; expected distinct replica indices >= 0"));
  }
  const int64_t n = static_cast<int64_t>(replicas.size());
  if (microbatches < n) {
    return absl::InvalidArgumentError(absl::StrCat("microbatches: ", microbatches, " for ", n,
                                                   " pipelines; expected at least one each"));
  }
  std::vector<MicrobatchShare> shares;
  int64_t next = 0;
  for (int64_t i = 0; i < n; ++i) {
    MicrobatchShare share{replicas[i], {}};
    const int64_t count = microbatches / n + (i < microbatches % n ? 1 : 0);
    for (int64_t k = 0; k < count; ++k) share.microbatches.push_back(next++);
    shares.push_back(std::move(share));
  }
  return shares;
}

}  // namespace resbm
