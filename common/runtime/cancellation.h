// Cancellation: a one-shot token that ends the waits of one piece of work (a training step)
// at once, with a reason: a cancelled RPC, a failed peer, a control call that supersedes the
// work. Waiters sleep on their own condition variables and subscribe a wake-up here; nobody
// polls. The first Cancel wins and its reason is kept.
//
// Lock order: Cancel runs the wake-ups while holding the token's lock (so that a Subscription
// never outlives a running wake-up), and a wake-up takes its waiter's lock. So Subscribe and
// ~Subscription must not be called with a lock a wake-up takes; cancelled() and reason() take
// no lock and may be called anywhere. Thread-safe.
#ifndef RESBM_COMMON_RUNTIME_CANCELLATION_H_
#define RESBM_COMMON_RUNTIME_CANCELLATION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace resbm {

class Cancellation {
 public:
  Cancellation() = default;
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Trips the token with `reason` (not OK) and runs every subscribed wake-up on this thread.
  // Returns false, and does nothing, if the token was tripped already.
  bool Cancel(absl::Status reason);

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // The first Cancel's reason; OK while the token is not tripped.
  absl::Status reason() const { return cancelled() ? reason_ : absl::OkStatus(); }

  // Keeps a wake-up subscribed while it lives. Movable.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept;
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription();  // Waits for the wake-up if it is running.

   private:
    friend class Cancellation;
    Subscription(const Cancellation* token, int64_t id) : token_(token), id_(id) {}
    void Reset();

    const Cancellation* token_ = nullptr;
    int64_t id_ = 0;
  };

  // Runs `wake` once when the token trips, unless the Subscription is gone first. A token
  // tripped already does not run it: a waiter checks cancelled() under its own lock after
  // subscribing, before it sleeps. `token` may be null (nothing to subscribe to).
  static Subscription Subscribe(const Cancellation* token, std::function<void()> wake);

 private:
  mutable absl::Mutex mu_;
  std::atomic<bool> cancelled_{false};
  absl::Status reason_;  // Written once, before cancelled_ is set.
  mutable int64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  mutable std::map<int64_t, std::function<void()>> wakes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace resbm

#endif  // RESBM_COMMON_RUNTIME_CANCELLATION_H_
