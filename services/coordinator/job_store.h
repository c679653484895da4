// JobStore: the coordinator's durable record of jobs, in one SQLite database file: every job
// (spec, state, progress, last complete checkpoint) and the loss record of every step. Each
// write is one transaction in WAL mode, so a kill -9 of the coordinator loses nothing that a
// call returned for. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_JOB_STORE_H_
#define RESBM_SERVICES_COORDINATOR_JOB_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/train/trainer.h"
#include "resbm/v1/job_service.pb.h"

struct sqlite3;

namespace resbm {

class JobStore {
 public:
  // Opens (creating if needed) the database at `path`.
  static absl::StatusOr<std::unique_ptr<JobStore>> Open(const std::string& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Stores a new job under the next id ("job-1", "job-2", ...) and returns it. `complete`
  // (may be empty) fills in what depends on the id before the one insert.
  absl::StatusOr<v1::Job> Create(v1::Job job,
                                 const std::function<void(v1::Job*)>& complete = nullptr);
  // Replaces the stored job with the same job_id (NOT_FOUND if there is none).
  absl::Status Put(const v1::Job& job);
  absl::StatusOr<v1::Job> Get(const std::string& job_id);
  // Every job, in submission order.
  absl::StatusOr<std::vector<v1::Job>> List();

  // The per-step record of a job; a step recorded again (replayed) replaces the old one.
  absl::Status PutStep(const std::string& job_id, const StepRecord& record);
  // Drops the records of steps after `step` (they will be replayed).
  absl::Status TruncateSteps(const std::string& job_id, int64_t step);
  absl::StatusOr<std::vector<StepRecord>> Steps(const std::string& job_id);

 private:
  explicit JobStore(sqlite3* db);
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A store written by an older coordinator keeps its steps; columns added since get their
  // documented default.
  absl::Status AddStepColumnsMissingFromOlderStores() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_JOB_STORE_H_
