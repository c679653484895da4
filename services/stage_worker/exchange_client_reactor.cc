#include "services/stage_worker/exchange_client_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {

void ExchangeClientReactor::Start(v1::StageWorker::Stub* stub, std::shared_ptr<FrameLink> link,
                                  std::shared_ptr<grpc::ClientContext> context) {
  // Freed in OnDone.
  auto* reactor = new ExchangeClientReactor(std::move(link), std::move(context));
  stub->async()->Exchange(reactor->context_.get(), reactor);
  reactor->link_->Attach(reactor);
  reactor->StartRead(&reactor->incoming_);
  reactor->StartCall();
}

ExchangeClientReactor::ExchangeClientReactor(std::shared_ptr<FrameLink> link,
                                             std::shared_ptr<grpc::ClientContext> context)
    : context_(std::move(context)), link_(std::move(link)) {}

void ExchangeClientReactor::StartFrameWrite(const v1::TensorFrame* frame) { StartWrite(frame); }

void ExchangeClientReactor::OnReadDone(bool ok) {
  if (!ok) {
    link_->Shutdown(absl::UnavailableError("downstream stage closed the stream"));
    return;  // OnDone follows once the call is over.
  }
  link_->Deliver(std::move(incoming_));
  incoming_.Clear();
  StartRead(&incoming_);
}

void ExchangeClientReactor::OnWriteDone(bool ok) { link_->OnWriteDone(ok); }

void ExchangeClientReactor::OnDone(const grpc::Status& status) {
  link_->Close(
      absl::UnavailableError(absl::StrCat("downstream stream ended: ", status.error_message())));
  delete this;
}

}  // namespace resbm
