#include "common/train/run_summary.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace resbm {

namespace {

double Compression(const std::vector<BoundarySummary>& boundaries, bool with_token_ids) {
  int64_t sent = 0, reference = 0;
  for (const auto& b : boundaries) {
    const BoundaryTraffic& t = b.traffic;
    sent += t.forward_bytes + t.backward_bytes + (with_token_ids ? t.token_id_bytes : 0);
    reference += 2 * b.bf16_reference_bytes;
  }
  return sent > 0 ? static_cast<double>(reference) / static_cast<double>(sent) : 0.0;
}

// One field's value, or a repeated field's element `index`, as a JSON value.
nlohmann::json FieldJson(const google::protobuf::Message& message,
                         const google::protobuf::FieldDescriptor* field, int index);

// The message's fields under their proto names, 64-bit integers as JSON numbers (proto
// JSON quotes them); singular fields always, `optional` ones only when set.
nlohmann::json PlainJson(const google::protobuf::Message& message) {
  nlohmann::json j = nlohmann::json::object();
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) {
      nlohmann::json values = nlohmann::json::array();
      for (int k = 0; k < reflection->FieldSize(message, field); ++k) {
        values.push_back(FieldJson(message, field, k));
      }
      j[field->name()] = values;
    } else if (!field->has_presence() || reflection->HasField(message, field)) {
      j[field->name()] = FieldJson(message, field, -1);
    }
  }
  return j;
}

nlohmann::json FieldJson(const google::protobuf::Message& message,
                         const google::protobuf::FieldDescriptor* field, int index) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_STRING:
      return repeated ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return PlainJson(repeated ? r->GetRepeatedMessage(message, field, index)
                                : r->GetMessage(message, field));
    default:  // The summary has no other kinds; a new one must be added here.
      return nullptr;
  }
}

}  // namespace

double RunSummary::EffectiveCompression() const {
  return Compression(boundaries, /*with_token_ids=*/false);
}

double RunSummary::EffectiveCompressionWithTokenIds() const {
  return Compression(boundaries, /*with_token_ids=*/true);
}

std::string RunSummary::Describe() const {
  return absl::StrFormat(
      "train loss %.4f | val loss %.4f (unigram entropy %.4f) | %d tokens in %.1f s "
      "(%.0f tok/s) | wire compression vs bf16 %.1fx%s",
      final_train_loss, final_val_loss, unigram_entropy_nats, tokens, wall_seconds,
      tokens_per_second, EffectiveCompression(),
      EffectiveCompressionWithTokenIds() == EffectiveCompression()
          ? ""
          : absl::StrFormat(" (%.1fx with the token ids)", EffectiveCompressionWithTokenIds()));
}

v1::RunSummary RunSummary::ToProto() const {
  v1::RunSummary p;
  p.set_job_name(job_name);
  p.set_outcome(outcome);
  p.set_error(error);
  p.set_compression(compression);
  p.set_ratio(static_cast<uint32_t>(ratio));
  p.set_wire_dtype(wire_dtype);
  p.set_num_stages(static_cast<uint32_t>(num_stages));
  p.set_steps(static_cast<uint64_t>(steps));
  p.set_recoveries(static_cast<uint64_t>(recoveries));
  p.set_tokens(static_cast<uint64_t>(tokens));
  p.set_final_train_loss(final_train_loss);
  p.set_final_val_loss(final_val_loss);
  p.set_unigram_entropy_nats(unigram_entropy_nats);
  p.set_wall_seconds(wall_seconds);
  p.set_tokens_per_second(tokens_per_second);
  if (initial_val_loss.has_value()) p.set_initial_val_loss(*initial_val_loss);
  if (final_checkpoint_step >= 0) {
    p.set_final_checkpoint_step(static_cast<uint64_t>(final_checkpoint_step));
  }
  p.set_final_checkpoint_manifest(final_checkpoint_manifest);
  for (const BoundarySummary& b : boundaries) {
    v1::BoundarySummary* out = p.add_boundaries();
    out->set_boundary(static_cast<uint32_t>(b.boundary));
    out->set_forward_bytes(static_cast<uint64_t>(b.traffic.forward_bytes));
    out->set_backward_bytes(static_cast<uint64_t>(b.traffic.backward_bytes));
    out->set_forward_tokens(static_cast<uint64_t>(b.traffic.forward_tokens));
    out->set_backward_tokens(static_cast<uint64_t>(b.traffic.backward_tokens));
    out->set_framing_overhead_bytes(static_cast<uint64_t>(b.traffic.framing_overhead_bytes));
    out->set_bf16_reference_bytes_per_direction(static_cast<uint64_t>(b.bf16_reference_bytes));
    out->set_token_id_bytes(static_cast<uint64_t>(b.traffic.token_id_bytes));
  }
  for (const StageSummary& s : stages) {
    v1::StageSummary* out = p.add_stages();
    out->set_stage(static_cast<uint32_t>(s.stage));
    out->set_steps(static_cast<uint64_t>(s.steps));
    out->set_forward_seconds_per_microbatch(s.forward_seconds);
    out->set_backward_seconds_per_microbatch(s.backward_seconds);
    out->set_wait_seconds_per_step(s.wait_seconds_per_step);
    out->set_replica_bytes_sent(static_cast<uint64_t>(s.replica_bytes_sent));
    out->set_all_reduce_seconds_per_step(s.all_reduce_seconds_per_step);
  }
  p.set_effective_compression_vs_bf16(EffectiveCompression());
  p.set_effective_compression_with_token_ids_vs_bf16(EffectiveCompressionWithTokenIds());
  return p;
}

RunSummary RunSummary::FromProto(const v1::RunSummary& p) {
  RunSummary s;
  s.job_name = p.job_name();
  s.outcome = p.outcome();
  s.error = p.error();
  s.compression = p.compression();
  s.ratio = p.ratio();
  s.wire_dtype = p.wire_dtype();
  s.num_stages = p.num_stages();
  s.steps = static_cast<int64_t>(p.steps());
  s.recoveries = static_cast<int64_t>(p.recoveries());
  s.tokens = static_cast<int64_t>(p.tokens());
  s.final_train_loss = p.final_train_loss();
  s.final_val_loss = p.final_val_loss();
  s.unigram_entropy_nats = p.unigram_entropy_nats();
  s.wall_seconds = p.wall_seconds();
  s.tokens_per_second = p.tokens_per_second();
  if (p.has_initial_val_loss()) s.initial_val_loss = p.initial_val_loss();
  if (p.has_final_checkpoint_step()) {
    s.final_checkpoint_step = static_cast<int64_t>(p.final_checkpoint_step());
  }
  s.final_checkpoint_manifest = p.final_checkpoint_manifest();
  for (const v1::BoundarySummary& b : p.boundaries()) {
    BoundaryTraffic traffic{
        static_cast<int64_t>(b.forward_bytes()),          static_cast<int64_t>(b.backward_bytes()),
        static_cast<int64_t>(b.forward_tokens()),         static_cast<int64_t>(b.backward_tokens()),
        static_cast<int64_t>(b.framing_overhead_bytes()), static_cast<int64_t>(b.token_id_bytes())};
    s.boundaries.push_back(BoundarySummary{
        b.boundary(), traffic, static_cast<int64_t>(b.bf16_reference_bytes_per_direction())});
  }
  for (const v1::StageSummary& t : p.stages()) {
    s.stages.push_back(StageSummary{
        t.stage(), static_cast<int64_t>(t.steps()), t.forward_seconds_per_microbatch(),
        t.backward_seconds_per_microbatch(), t.wait_seconds_per_step(),
        static_cast<int64_t>(t.replica_bytes_sent()), t.all_reduce_seconds_per_step()});
  }
  return s;
}

std::string RunSummary::ToJson() const { return PlainJson(ToProto()).dump(2); }

absl::StatusOr<RunSummary> RunSummary::FromJson(const std::string& json) {
  v1::RunSummary proto;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &proto, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("summary: ", std::string(parsed.message()),
                                                   "; expected JSON of resbm.v1.RunSummary"));
  }
  return FromProto(proto);
}

absl::Status RunSummary::WriteJson(const std::string& path) const {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("summary ", path, ": cannot open"));
  out << ToJson() << "\n";
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("summary ", path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace resbm
