// PlanJobStarts: which queued jobs the coordinator starts now, and why the others wait. Pure.
//
// The queue is ordered by priority (higher first), then submission (oldest first); a job
// resumed after a coordinator restart comes before all of them. Walking it in that order,
// a job starts when the running-job limits allow it and enough idle workers remain for it
// (stages x replicas); jobs never share a worker and a running job is never preempted.
//
// Backfill: a job that does not fit yet does not stop a smaller one behind it from taking
// idle workers now, but every job that starts ahead of a waiting job counts against that job,
// and once a waiting job has been overtaken `max_overtakes` times nothing more starts ahead
// of it: the workers that free up from then on gather for it. So a large job waits at most
// for `max_overtakes` jobs that arrived after it (and for the jobs that ran before it), never
// indefinitely; 0 turns backfill off (strict order). A job larger than every healthy worker
// together holds no place: it could not start however long the others waited.
#ifndef RESBM_SERVICES_COORDINATOR_JOB_START_PLAN_H_
#define RESBM_SERVICES_COORDINATOR_JOB_START_PLAN_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace resbm {

struct PendingJob {
  std::string job_id;
  std::string owner;
  int32_t priority = 0;
  // Stages x replicas; 0 for a job that ends at once (cancelled before a restart).
  int64_t workers = 1;
  // Jobs started ahead of it while it waited.
  int64_t overtaken = 0;
  // RUNNING when the coordinator started: it goes first, whatever its priority.
  bool resumed = false;
};

struct JobStartLimits {
  // Jobs running at once (0: no limit but the workers).
  int64_t max_running_jobs = 0;
  // Running jobs of one owner (0: no limit).
  int64_t max_running_jobs_per_user = 0;
  // Jobs that may start ahead of a waiting one before it holds its place.
  int64_t max_overtakes = 4;
};

struct JobPool {
  // Healthy workers no job holds, and all healthy workers.
  int64_t idle_workers = 0;
  int64_t healthy_workers = 0;
  // Of the idle ones, those kept for running jobs whose pipelines are out
  // (WorkerRegistry::KeptIdle): no queued job starts on them.
  int64_t kept_workers = 0;
  int64_t running_jobs = 0;
  // Running jobs by owner.
  std::map<std::string, int64_t> running_by_owner;
};

struct JobStartPlan {
  // To start now, in this order.
  std::vector<std::string> start;
  // Each job that waits, and why ("needs 4 workers, 2 idle").
  std::map<std::string, std::string> waiting;
  // Per job to start, the waiting jobs it overtakes (each counts one more overtake once the
  // start happens).
  std::map<std::string, std::vector<std::string>> overtakes;
};

// Why a job that needs `workers` waits for them: "needs 4 workers, 2 idle" (and how many of
// those are kept for running jobs).
std::string NeedsWorkersReason(int64_t workers, const JobPool& pool);

// INVALID_ARGUMENT naming the limit (and its resbm-coordinator flag) when one is negative.
absl::Status ValidateJobStartLimits(const JobStartLimits& limits);

// `queue`: the QUEUED (and resumed) jobs in submission order.
JobStartPlan PlanJobStarts(std::vector<PendingJob> queue, const JobPool& pool,
                           const JobStartLimits& limits);

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_JOB_START_PLAN_H_
