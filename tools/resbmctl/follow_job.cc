#include "tools/resbmctl/follow_job.h"

#include <unistd.h>

#include <cstdio>

#include "common/runtime/shutdown_signal.h"
#include "tools/resbmctl/job_views.h"

namespace resbm {

absl::StatusOr<v1::Job> FollowJob(JobClient& client, const std::string& job_id, bool json) {
  const bool terminal = ::isatty(::fileno(stdout)) != 0;
  absl::Time last_line = absl::InfinitePast();
  auto job = client.Watch(
      job_id,
      [&](const v1::JobEvent& event) {
        if (json) {
          std::printf("%s\n", ToJson(event).c_str());
        } else if (event.kind() == v1::JOB_EVENT_KIND_STEP) {
          // Steps are many: redraw on a terminal, a line every 5 s otherwise.
          if (terminal) {
            std::printf("\r\033[K%s", ProgressBar(event.job()).c_str());
          } else if (absl::Now() - last_line >= absl::Seconds(5)) {
            std::printf("%s\n", ProgressBar(event.job()).c_str());
            last_line = absl::Now();
          }
        } else {
          if (terminal) std::printf("\r\033[K");
          std::printf("%s", ProgressBar(event.job()).c_str());
          if (!event.message().empty()) std::printf("  (%s)", event.message().c_str());
          std::printf("\n");
        }
        std::fflush(stdout);
      },
      [] { return ShutdownSignalPending(); });
  if (terminal && !json) std::printf("\n");
  return job;
}

}  // namespace resbm
