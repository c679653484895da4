// WorkerRegistry: the workers the coordinator knows, with the time each was last heard from
// and the job that holds it; a worker is healthy while its last heartbeat is younger than the
// timeout and the coordinator has not found it unreachable since. Jobs never share a worker:
// a job leases the workers it runs on (Reserve, Acquire) until it lets them go (ReleaseJob).
// Waiting for workers is woken by registrations and heartbeats. The clock is injectable for
// tests. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
#define RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace resbm {

class WorkerRegistry {
 public:
  struct Worker {
    std::string id;
    std::string address;           // Where the coordinator calls it.
    std::string exchange_address;  // Where the previous stage streams to it.
    std::string device;
    absl::Time last_seen;
    bool suspect = false;  // Unreachable since its last heartbeat.
    std::string job_id;    // The job that holds it; empty: idle.
  };

  explicit WorkerRegistry(
      absl::Duration timeout, std::function<absl::Time()> clock = [] { return absl::Now(); });

  // Registers (or re-registers, keeping its id) the worker at `address`; returns its id.
  // An empty `exchange_address` means `address`.
  std::string Register(const std::string& address, const std::string& device,
                       const std::string& exchange_address = "");
  // NotFound for an unknown id (the worker must register again).
  // NOT_FOUND unless `id` is registered (with `address`, when one is given).
  absl::Status Heartbeat(const std::string& id, const std::string& address = "");
  // Healthy workers in registration order.
  std::vector<Worker> Healthy() const;
  // Every worker ever registered, healthy or not, in registration order.
  std::vector<Worker> All() const;
  bool IsHealthy(const Worker& worker) const {
    return !worker.suspect && clock_() - worker.last_seen < timeout_;
  }
  // The one way for a job to get workers, for its first assignment and every rebuild: waits
  // until `count` healthy workers are idle or already held by `job_id`, then leases exactly
  // `count` of them to the job (those it holds first, then idle ones in registration order),
  // lets the job's other healthy workers go (its unhealthy ones stay its own until
  // ReleaseJob: a lapsed heartbeat may come back), and returns the `count` in registration
  // order. Woken by every
  // registration, heartbeat, release and WakeWaiters; `cancelled` is checked on each wake (so
  // whoever makes it true calls WakeWaiters). DeadlineExceeded naming how many are available;
  // Cancelled. `on_wait` (may be empty) hears the available count whenever it changes while
  // waiting. While a job waits here, Reserve gives no idle worker to another job: a running
  // job's recovery takes idle workers before a queued job starts.
  absl::StatusOr<std::vector<Worker>> Acquire(
      const std::string& job_id, int64_t count, absl::Time deadline,
      const std::function<bool()>& cancelled = {},
      const std::function<void(int64_t available)>& on_wait = {});
  // The scheduler's way to start a job without waiting: leases `count` healthy idle workers
  // to `job_id` when that many exist and no running job waits in Acquire; false (nothing
  // leased) otherwise.
  bool Reserve(const std::string& job_id, int64_t count);
  // Lets every worker `job_id` holds go (idle again), and ends its Want.
  void ReleaseJob(const std::string& job_id);
  // A running job that goes on with fewer workers than its grid (pipelines out of the job)
  // and takes them back when it can: it would hold `total` in all. Idle workers up to what it
  // lacks (`total` minus the healthy workers it holds) are kept for it: Reserve gives them to
  // no other job, so a degraded job is whole again before a queued one starts. 0 ends it.
  void Want(const std::string& job_id, int64_t total);
  // Healthy workers no job holds.
  int64_t IdleHealthy() const;
  // Of those, the ones kept for running jobs by Want.
  int64_t KeptIdle() const;
  // Jobs waiting in Acquire now (not those whose workers were there at once).
  int64_t waiting_jobs() const;
  // Called (with no lock of the workers held) whenever a worker may have become available to
  // a job: a registration, a worker heard from again after it lapsed or was suspected, a
  // release, the end of a wait in Acquire. Replacing it (e.g. with an empty one) waits for a
  // call in progress, so its target may go once this returns.
  void set_on_available(std::function<void()> on_available);
  // The coordinator could not reach the worker at `address` (an RPC failed UNAVAILABLE): it is
  // not healthy until it registers or heartbeats again, so a rebuild takes another worker
  // instead of waiting out the heartbeat timeout.
  void Suspect(const std::string& address);
  // When the worker at `address` stops counting as healthy unless it is heard from again;
  // InfiniteFuture for an address no worker registered.
  absl::Time LapsesAt(const std::string& address) const;
  // Wakes every Acquire to check its `cancelled` again.
  void WakeWaiters();

 private:
  std::vector<Worker> HealthyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Indexes of the healthy workers idle or held by `job_id`, those it holds first.
  std::vector<size_t> AvailableLocked(const std::string& job_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Leases the first `count` of `available` to `job_id` and lets its other workers go;
  // whether any lease changed.
  bool LeaseLocked(const std::string& job_id, const std::vector<size_t>& available, int64_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TellAvailable() const;
  std::vector<size_t> IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What the jobs that Want workers lack in all.
  int64_t WantedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration timeout_;
  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;  // A registration, heartbeat or suspicion.
  std::vector<Worker> workers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;  // Acquires waiting.
  std::map<std::string, int64_t> wanted_ ABSL_GUARDED_BY(mu_);  // Job -> Want's total.
  // Held while on_available_ runs: never while mu_ is.
  mutable absl::Mutex callback_mu_;
  std::function<void()> on_available_ ABSL_GUARDED_BY(callback_mu_);
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
