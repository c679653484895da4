#include "common/runtime/cancellation.h"

#include <utility>

namespace resbm {

bool Cancellation::Cancel(absl::Status reason) {
  if (reason.ok()) reason = absl::CancelledError("cancelled");
  absl::MutexLock lock(&mu_);
  if (cancelled()) return false;
  reason_ = std::move(reason);
  cancelled_.store(true, std::memory_order_release);
  for (auto& [id, wake] : wakes_) wake();
  wakes_.clear();
  return true;
}

Cancellation::Subscription Cancellation::Subscribe(const Cancellation* token,
                                                   std::function<void()> wake) {
  if (token == nullptr) return Subscription();
  absl::MutexLock lock(&token->mu_);
  if (token->cancelled()) return Subscription();
  const int64_t id = token->next_id_++;
  token->wakes_.emplace(id, std::move(wake));
  return Subscription(token, id);
}

Cancellation::Subscription::Subscription(Subscription&& other) noexcept
    : token_(std::exchange(other.token_, nullptr)), id_(other.id_) {}

Cancellation::Subscription& Cancellation::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    Reset();
    token_ = std::exchange(other.token_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

Cancellation::Subscription::~Subscription() { Reset(); }

void Cancellation::Subscription::Reset() {
  if (token_ == nullptr) return;
  absl::MutexLock lock(&token_->mu_);  // A running Cancel holds it until its wake-ups end.
  token_->wakes_.erase(id_);
  token_ = nullptr;
}

}  // namespace resbm
