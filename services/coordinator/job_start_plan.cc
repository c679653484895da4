#include "services/coordinator/job_start_plan.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {
namespace {

// Why `job` may not start whatever the workers (a limit), or "" when it may.
std::string LimitReason(const PendingJob& job, const JobPool& pool, const JobStartLimits& limits) {
  if (limits.max_running_jobs > 0 && pool.running_jobs >= limits.max_running_jobs) {
    return absl::StrCat(pool.running_jobs, " jobs running, the most at once (--max-running-jobs ",
                        limits.max_running_jobs, ")");
  }
  if (limits.max_running_jobs_per_user > 0) {
    auto running = pool.running_by_owner.find(job.owner);
    const int64_t mine = running == pool.running_by_owner.end() ? 0 : running->second;
    if (mine >= limits.max_running_jobs_per_user) {
      return absl::StrCat("user '", job.owner, "' runs ", mine,
                          " jobs, the most at once (--max-running-jobs-per-user ",
                          limits.max_running_jobs_per_user, ")");
    }
  }
  return "";
}

}  // namespace

absl::Status ValidateJobStartLimits(const JobStartLimits& limits) {
  for (const auto& [name, value] :
       {std::pair<const char*, int64_t>{"max-running-jobs", limits.max_running_jobs},
        {"max-running-jobs-per-user", limits.max_running_jobs_per_user},
        {"max-overtakes", limits.max_overtakes}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": ", value, "; expected 0 or more"));
    }
  }
  return absl::OkStatus();
}

std::string NeedsWorkersReason(int64_t workers, const JobPool& pool) {
  std::string reason = absl::StrCat("needs ", workers, " workers, ", pool.idle_workers, " idle");
  if (pool.kept_workers > 0) {
    absl::StrAppend(&reason, ", ", pool.kept_workers, " kept for a running job's pipelines out");
  }
  return reason;
}

JobStartPlan PlanJobStarts(std::vector<PendingJob> queue, const JobPool& start_pool,
                           const JobStartLimits& limits) {
  std::stable_sort(queue.begin(), queue.end(), [](const PendingJob& a, const PendingJob& b) {
    if (a.resumed != b.resumed) return a.resumed;
    return a.priority > b.priority;
  });
  JobPool pool = start_pool;
  JobStartPlan plan;
  std::vector<PendingJob*> blocked;  // Waiting for workers, ahead of the rest.
  for (PendingJob& job : queue) {
    if (std::string limit = LimitReason(job, pool, limits); !limit.empty()) {
      plan.waiting[job.job_id] = std::move(limit);
      continue;
    }
    if (job.workers > pool.idle_workers - pool.kept_workers) {
      plan.waiting[job.job_id] = NeedsWorkersReason(job.workers, pool);
      if (job.workers > pool.healthy_workers) {
        // It cannot start until workers join, however long the others wait: it holds no place.
        absl::StrAppend(&plan.waiting[job.job_id], " (", pool.healthy_workers, " healthy)");
      } else {
        blocked.push_back(&job);
      }
      continue;
    }
    auto holding = std::find_if(blocked.begin(), blocked.end(), [&](const PendingJob* ahead) {
      return ahead->overtaken >= limits.max_overtakes;
    });
    if (holding != blocked.end() && job.workers > 0) {
      plan.waiting[job.job_id] = absl::StrCat(
          "behind ", (*holding)->job_id, ", which waits for ", (*holding)->workers,
          " workers and was overtaken ", (*holding)->overtaken,
          " times: no more jobs start ahead of it (--max-overtakes ", limits.max_overtakes, ")");
      continue;
    }
    plan.start.push_back(job.job_id);
    pool.idle_workers -= job.workers;
    ++pool.running_jobs;
    ++pool.running_by_owner[job.owner];
    if (job.workers == 0) continue;  // Takes no worker: overtakes nobody.
    for (PendingJob* ahead : blocked) {
      ++ahead->overtaken;
      plan.overtakes[job.job_id].push_back(ahead->job_id);
    }
  }
  return plan;
}

}  // namespace resbm
