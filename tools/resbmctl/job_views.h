// How resbmctl shows jobs and the cluster: aligned tables and detail blocks for people, the
// proto's JSON form (snake_case field names, every field) for scripts, and the one-line
// progress bar of `watch`. Pure functions.
#ifndef RESBM_TOOLS_RESBMCTL_JOB_VIEWS_H_
#define RESBM_TOOLS_RESBMCTL_JOB_VIEWS_H_

#include <string>
#include <vector>

#include "google/protobuf/message.h"
#include "resbm/v1/job_service.pb.h"

namespace resbm {

// "QUEUED", "RUNNING", ... (the enum name without its prefix).
std::string JobStateName(v1::JobState state);
// One row per job: JOB NAME STATE STEP LOSS VAL TOK/S RECOV MESSAGE.
std::string JobsTable(const std::vector<v1::Job>& jobs);
// Every field of one job that a person asks `get` for, one per line.
std::string JobDetail(const v1::Job& job);
// One row per worker: WORKER ADDRESS DEVICE HEALTH SEEN JOB STAGE; then the queue.
std::string ClusterTable(const v1::ClusterStatus& status);
// "[#######-------] step 120/300  loss 2.1300  val 2.2000  3400 tok/s  ETA 1m02s".
std::string ProgressBar(const v1::Job& job, int width = 30);
// The message as JSON, with snake_case names and default values printed.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace resbm

#endif  // RESBM_TOOLS_RESBMCTL_JOB_VIEWS_H_
