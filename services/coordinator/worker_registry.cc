#include "services/coordinator/worker_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace resbm {

WorkerRegistry::WorkerRegistry(absl::Duration timeout, std::function<absl::Time()> clock)
    : timeout_(timeout), clock_(std::move(clock)) {}

std::string WorkerRegistry::Register(const std::string& address, const std::string& device,
                                     const std::string& exchange_address) {
  const std::string& exchange = exchange_address.empty() ? address : exchange_address;
  absl::MutexLock lock(&mu_);
  for (auto& worker : workers_) {
    if (worker.address == address) {
      worker.exchange_address = exchange;
      worker.device = device;
      worker.last_seen = clock_();
      worker.suspect = false;
      changed_.SignalAll();
      return worker.id;
    }
  }
  workers_.push_back(
      Worker{absl::StrCat("worker-", next_id_++), address, exchange, device, clock_()});
  changed_.SignalAll();
  return workers_.back().id;
}

absl::Status WorkerRegistry::Heartbeat(const std::string& id, const std::string& address) {
  absl::MutexLock lock(&mu_);
  for (auto& worker : workers_) {
    if (worker.id == id && (address.empty() || worker.address == address)) {
      worker.last_seen = clock_();
      worker.suspect = false;
      changed_.SignalAll();
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat("worker_id: '", id, "' is not registered",
                                          address.empty() ? "" : " at ", address));
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::HealthyLocked() const {
  std::vector<Worker> healthy;
  const absl::Time now = clock_();
  for (const auto& worker : workers_) {
    if (!worker.suspect && now - worker.last_seen < timeout_) healthy.push_back(worker);
  }
  return healthy;
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::All() const {
  absl::MutexLock lock(&mu_);
  return workers_;
}

std::vector<WorkerRegistry::Worker> WorkerRegistry::Healthy() const {
  absl::MutexLock lock(&mu_);
  return HealthyLocked();
}

absl::StatusOr<std::vector<WorkerRegistry::Worker>> WorkerRegistry::Acquire(
    int64_t count, absl::Time deadline, const std::function<bool()>& cancelled,
    const std::function<void(int64_t healthy)>& on_wait) const {
  int64_t told = -1;
  absl::MutexLock lock(&mu_);
  while (true) {
    std::vector<Worker> healthy = HealthyLocked();
    const int64_t have = static_cast<int64_t>(healthy.size());
    if (have >= count) return healthy;
    if (cancelled && cancelled()) return absl::CancelledError("stopped while waiting for workers");
    // The deadline is wall time (the injected clock judges health only).
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("workers: ", have, " healthy; the job needs ", count, " (one per stage)"));
    }
    if (have != told && on_wait) {
      mu_.Unlock();  // The callback may publish, which must not hold the registry.
      on_wait(have);
      mu_.Lock();
      told = have;
      continue;
    }
    changed_.WaitWithDeadline(&mu_, deadline);  // Woken by registrations, heartbeats, WakeWaiters.
  }
}

void WorkerRegistry::WakeWaiters() {
  absl::MutexLock lock(&mu_);
  changed_.SignalAll();
}

void WorkerRegistry::Suspect(const std::string& address) {
  absl::MutexLock lock(&mu_);
  for (auto& worker : workers_) {
    if (worker.address == address) worker.suspect = true;
  }
  changed_.SignalAll();
}

absl::Time WorkerRegistry::LapsesAt(const std::string& address) const {
  absl::MutexLock lock(&mu_);
  for (const Worker& worker : workers_) {
    if (worker.address == address) return worker.last_seen + timeout_;
  }
  return absl::InfiniteFuture();
}

}  // namespace resbm
