#include "services/stage_worker/exchange_client_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace resbm {

void ExchangeClientReactor::Start(v1::StageWorker::Stub* stub, std::shared_ptr<FrameLink> link,
                                  std::shared_ptr<grpc::ClientContext> context) {
  std::shared_ptr<ExchangeClientReactor> reactor(
      new ExchangeClientReactor(std::move(link), std::move(context)));
  reactor->self_ = reactor;
  stub->async()->Exchange(reactor->context_.get(), reactor.get());
  std::weak_ptr<ExchangeClientReactor> weak = reactor;
  reactor->link_->inbox().SetOnRoom([weak] {
    if (auto alive = weak.lock()) alive->Resume();
  });
  reactor->link_->Attach(reactor.get());
  // Reads are started from outside reactions too (Resume): the hold is the read flow's,
  // removed when a read fails. Writes need none: they start only while the link is open, and
  // the link shuts before that hold goes.
  reactor->AddHold();
  reactor->StartRead(&reactor->incoming_);
  reactor->StartCall();
}

ExchangeClientReactor::ExchangeClientReactor(std::shared_ptr<FrameLink> link,
                                             std::shared_ptr<grpc::ClientContext> context)
    : context_(std::move(context)), link_(std::move(link)) {}

void ExchangeClientReactor::StartFrameWrite(const v1::TensorFrame* frame) { StartWrite(frame); }

void ExchangeClientReactor::StartFrameWritesDone() { StartWritesDone(); }

void ExchangeClientReactor::OnReadDone(bool ok) {
  if (!ok) {
    link_->Shutdown(absl::UnavailableError("downstream stage closed the stream"));
    RemoveHold();  // OnDone follows once the call is over.
    return;
  }
  // Moved out first: once Deliver pauses the stream, a resume may start the next read.
  v1::TensorFrame frame = std::move(incoming_);
  incoming_.Clear();
  if (link_->Deliver(std::move(frame))) StartRead(&incoming_);
}

void ExchangeClientReactor::Resume() { StartRead(&incoming_); }

void ExchangeClientReactor::OnWriteDone(bool ok) { link_->OnWriteDone(ok); }

void ExchangeClientReactor::OnDone(const grpc::Status& status) {
  link_->Close(
      absl::UnavailableError(absl::StrCat("downstream stream ended: ", status.error_message())));
  self_.reset();  // May free this reactor: the last statement.
}

}  // namespace resbm
