// WorkerRegistry: the workers the coordinator knows, with the time each was last heard from;
// a worker is healthy while its last heartbeat is younger than the timeout and the coordinator
// has not found it unreachable since. Waiting for workers is woken by registrations and
// heartbeats. The clock is injectable for tests. Thread-safe.
#ifndef RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
#define RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_

#include <cstdint>
#include <functional>
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
  // The one way to get workers, for a job's first assignment and every rebuild: waits until
  // at least `count` workers are healthy and returns them (registration order). Woken by
  // every registration, heartbeat and WakeWaiters; `cancelled` is checked on each wake (so
  // whoever makes it true calls WakeWaiters). DeadlineExceeded naming how many are healthy;
  // Cancelled. `on_wait` (may be empty) hears the healthy count whenever it changes while
  // waiting.
  absl::StatusOr<std::vector<Worker>> Acquire(
      int64_t count, absl::Time deadline, const std::function<bool()>& cancelled = {},
      const std::function<void(int64_t healthy)>& on_wait = {}) const;
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

  const absl::Duration timeout_;
  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;  // A registration, heartbeat or suspicion.
  std::vector<Worker> workers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace resbm

#endif  // RESBM_SERVICES_COORDINATOR_WORKER_REGISTRY_H_
