// SafetensorsFile: the byte layout the format specifies (checked by hand here, not through
// the reader), round trips, and a hostile file of every kind refused with a status that
// names the file and what was wrong.
#include "common/modelio/safetensors_file.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/base/file_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/scoped_temp_dir.h"

namespace resbm {
namespace {

using ::testing::HasSubstr;

RawTensor Floats(const std::string& name, std::vector<int64_t> shape, float start) {
  RawTensor t;
  t.name = name;
  t.dtype = TensorDtype::kFloat32;
  t.shape = std::move(shape);
  std::vector<float> values(t.numel());
  for (size_t i = 0; i < values.size(); ++i) values[i] = start + static_cast<float>(i);
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

std::vector<RawTensor> SomeTensors() {
  RawTensor ids;
  ids.name = "ids";
  ids.dtype = TensorDtype::kInt64;
  ids.shape = {3};
  const int64_t values[] = {7, -1, 1LL << 40};
  ids.data.assign(reinterpret_cast<const char*>(values), sizeof(values));
  RawTensor scalar = Floats("loss", {}, 2.5f);
  RawTensor empty = Floats("empty", {0, 4}, 0.0f);
  RawTensor half;
  half.name = "half";
  half.dtype = TensorDtype::kBFloat16;
  half.shape = {2};
  half.data = std::string("\x80\x3f\x00\x40", 4);  // bf16 1.0, 2.0
  return {Floats("model.embed_tokens.weight", {2, 3}, 0.5f), ids, scalar, empty, half};
}

// A file's bytes with the header replaced by `header` (padded to 8) and `data` after it.
std::string FileWith(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

TEST(SafetensorsFileTest, WritesTheSpecifiedLayout) {
  const auto bytes = SafetensorsFile::Serialize(SomeTensors(), {{"resbm.step", "12"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);  // Little-endian on every machine we build for.
  EXPECT_EQ(n % 8, 0u);
  ASSERT_LE(8 + n, bytes->size());
  const auto header = nlohmann::json::parse(bytes->substr(8, n));
  EXPECT_EQ(header["__metadata__"]["resbm.step"], "12");
  const auto& embed = header["model.embed_tokens.weight"];
  EXPECT_EQ(embed["dtype"], "F32");
  EXPECT_EQ(embed["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(embed["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(header["ids"]["data_offsets"], nlohmann::json({24, 48}));
  EXPECT_EQ(header["loss"]["shape"], nlohmann::json::array());
  EXPECT_EQ(header["half"]["dtype"], "BF16");
  // Data follows the header contiguously: 24 + 24 + 4 + 0 + 4 bytes.
  EXPECT_EQ(bytes->size(), 8 + n + 56);
  float first;
  std::memcpy(&first, bytes->data() + 8 + n, 4);
  EXPECT_EQ(first, 0.5f);
}

TEST(SafetensorsFileTest, RoundTripsThroughAFile) {
  ScopedTempDir dir;
  const auto tensors = SomeTensors();
  ASSERT_TRUE(SafetensorsFile::Write(dir.File("m.safetensors"), tensors, {{"k", "v"}}).ok());
  auto file = SafetensorsFile::Open(dir.File("m.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("k"), "v");
  ASSERT_EQ(file->entries().size(), tensors.size());
  for (const RawTensor& want : tensors) {
    auto got = file->Read(want.name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->dtype, want.dtype) << want.name;
    EXPECT_EQ(got->shape, want.shape) << want.name;
    EXPECT_EQ(got->data, want.data) << want.name;
  }
  EXPECT_EQ(file->Read("missing").status().code(), absl::StatusCode::kNotFound);
  auto all = SafetensorsFile::ParseAll(*ReadFileToString(dir.File("m.safetensors"), 1 << 20), "m");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), tensors.size());
}

TEST(SafetensorsFileTest, RefusesToWriteBadTensors) {
  auto tensors = SomeTensors();
  tensors.push_back(tensors[0]);  // Repeated name.
  EXPECT_THAT(SafetensorsFile::Serialize(tensors).status().message(), HasSubstr("unique"));
  RawTensor short_data = Floats("x", {4}, 0.0f);
  short_data.data.resize(8);
  EXPECT_THAT(SafetensorsFile::Serialize({short_data}).status().message(),
              HasSubstr("8 bytes; expected 16"));
}

TEST(SafetensorsFileTest, RefusesEveryTruncation) {
  const std::string bytes = *SafetensorsFile::Serialize(SomeTensors());
  for (size_t size = 0; size < bytes.size(); ++size) {
    auto parsed = SafetensorsFile::ParseAll(bytes.substr(0, size), "cut.safetensors");
    ASSERT_FALSE(parsed.ok()) << "a file cut to " << size << " bytes was accepted";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss) << size;
    EXPECT_THAT(parsed.status().message(), HasSubstr("cut.safetensors")) << size;
  }
}

struct HostileCase {
  const char* what;
  std::string file;
  const char* message;
};

std::vector<HostileCase> HostileFiles() {
  const std::string data16(16, '\0');
  std::string huge(8, '\0');
  const uint64_t n = 1ULL << 62;
  std::memcpy(huge.data(), &n, 8);
  return {
      {"header longer than the file", huge, "header length 4611686018427387904"},
      {"header not JSON", FileWith("{\"a\": ", data16), "not a JSON object"},
      {"header an array", FileWith("[1, 2]  ", data16), "not a JSON object"},
      {"entry not an object", FileWith(R"({"a": 3})", data16), "tensor 'a' is not a JSON object"},
      {"unknown dtype",
       FileWith(R"({"a": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}})", data16),
       "dtype \"Q7\""},
      {"negative dimension",
       FileWith(R"({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", data16),
       "shape [-4]"},
      {"dimension past the file",
       FileWith(R"({"a": {"dtype": "F32", "shape": [9999999999999], "data_offsets": [0, 16]}})",
                data16),
       "shape [9999999999999]"},
      {"overflowing shape",
       FileWith(R"({"a": {"dtype": "F32", "shape": [16, 16, 16, 16, 16, 16, 16, 16],)"
                R"( "data_offsets": [0, 16]}})",
                data16),
       "needs more than the 16 data bytes"},
      {"offsets that lie about the size",
       FileWith(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}})", data16),
       "data_offsets [0, 12] for 16 bytes"},
      {"offsets past the data",
       FileWith(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", data16),
       "data_offsets [8, 24]"},
      {"missing offsets", FileWith(R"({"a": {"dtype": "F32", "shape": [4]}})", data16),
       "data_offsets missing"},
      {"overlapping tensors",
       FileWith(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                data16),
       "starts at data byte 4; expected 8"},
      {"a hole",
       FileWith(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data16),
       "starts at data byte 8; expected 0"},
      {"trailing bytes",
       FileWith(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", data16),
       "tensors end at data byte 8 of 16"},
      {"metadata not strings", FileWith(R"({"__metadata__": {"x": 1}})", ""),
       "__metadata__.x is not a string"},
  };
}

TEST(SafetensorsFileTest, RefusesHostileHeadersNamingWhatIsWrong) {
  for (const HostileCase& c : HostileFiles()) {
    auto parsed = SafetensorsFile::ParseAll(c.file, "bad.safetensors");
    ASSERT_FALSE(parsed.ok()) << c.what << " was accepted";
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss) << c.what;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message)) << c.what;
    EXPECT_THAT(parsed.status().message(), HasSubstr("bad.safetensors")) << c.what;
  }
}

TEST(SafetensorsFileTest, OpenRefusesHostileFilesOnDisk) {
  ScopedTempDir dir;
  for (const HostileCase& c : HostileFiles()) {
    ASSERT_TRUE(WriteFileAtomically(dir.File("bad.safetensors"), c.file).ok());
    auto file = SafetensorsFile::Open(dir.File("bad.safetensors"));
    ASSERT_FALSE(file.ok()) << c.what;
    EXPECT_THAT(file.status().message(), HasSubstr(c.message)) << c.what;
  }
  EXPECT_EQ(SafetensorsFile::Open(dir.File("none")).status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsFileTest, ReadNoticesAFileThatChangedAfterOpen) {
  ScopedTempDir dir;
  ASSERT_TRUE(SafetensorsFile::Write(dir.File("m.safetensors"), SomeTensors()).ok());
  auto file = SafetensorsFile::Open(dir.File("m.safetensors"));
  ASSERT_TRUE(file.ok());
  std::ofstream(dir.File("m.safetensors"), std::ios::trunc) << "short";
  auto read = file->Read("ids");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr("changed size"));
}

}  // namespace
}  // namespace resbm
