// FollowJob: `resbmctl watch` and `local` follow a job to its end: a live progress bar on a
// terminal, a line per event (steps: one every 5 s) otherwise, or one JSON event per line.
// A shutdown signal (Ctrl-C) stops following with CANCELLED.
#ifndef RESBM_TOOLS_RESBMCTL_FOLLOW_JOB_H_
#define RESBM_TOOLS_RESBMCTL_FOLLOW_JOB_H_

#include <string>

#include "absl/status/statusor.h"
#include "tools/resbmctl/job_client.h"

namespace resbm {

absl::StatusOr<v1::Job> FollowJob(JobClient& client, const std::string& job_id, bool json);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_FOLLOW_JOB_H_
