// core/trace (the span recorder behind rrt train --profile) and core/crc32c (TFRecord CRCs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/crc32c.h"
#include "core/trace.h"

namespace rrt {
namespace {

namespace fs = std::filesystem;

// Known vectors: the check value of the CRC-32C catalogue and the iSCSI test patterns of
// RFC 3720 appendix B.4.
TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  const std::string zeros(32, '\0'), ones(32, '\xFF');
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  std::string up(32, '\0'), down(32, '\0');
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<char>(i);
    down[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc32c(up), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down), 0x113FDB5Cu);
}

TEST(Crc32c, ContinuesAcrossPiecesAndMasksReversibly) {
  const std::string text = "the loop runs the block again";
  const uint32_t whole = crc32c(text);
  EXPECT_EQ(crc32c(text.data() + 10, text.size() - 10, crc32c(text.data(), 10)), whole);
  EXPECT_NE(mask_crc32c(whole), whole);
  EXPECT_EQ(unmask_crc32c(mask_crc32c(whole)), whole);
  // TFRecord's mask: rotate right 15, add 0xa282ead8 (crc 0 masks to the constant itself).
  EXPECT_EQ(mask_crc32c(0), 0xA282EAD8u);
  EXPECT_EQ(mask_crc32c(1), (1u << 17) + 0xA282EAD8u);
}

void busy_wait_us(int us) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < until) {
  }
}

TEST(Trace, OffRecordsNothing) {
  trace::start();
  trace::stop();
  for (int i = 0; i < 1000; ++i) RRT_TRACE_SPAN("off", i);
  EXPECT_TRUE(trace::events().empty());
  EXPECT_FALSE(trace::enabled());
}

// Spans nest by scope; the Chrome trace holds them as "X" events with ts/dur in microseconds,
// each inside its parent on the same thread.
TEST(Trace, NestedSpansBecomeChromeTraceEvents) {
  trace::start(/*pid=*/3);
  {
    RRT_TRACE_SPAN("step", "step", 7);
    for (int i = 0; i < 2; ++i) {
      RRT_TRACE_SPAN("micro_batch", i);
      {
        RRT_TRACE_SPAN("data");
        busy_wait_us(200);
      }
      RRT_TRACE_SPAN("forward_backward");
      busy_wait_us(300);
    }
    std::thread([] {
      RRT_TRACE_SPAN("worker");
      busy_wait_us(100);
    }).join();
  }
  trace::stop();
  { RRT_TRACE_SPAN("after stop"); }
  const fs::path path =
      fs::path(::testing::TempDir()) / ("rrt_trace_" + std::to_string(::getpid()) + ".json");
  trace::write_chrome_trace(path.string());
  std::ifstream in(path);
  const nlohmann::json doc = nlohmann::json::parse(in);  // throws if not JSON
  ASSERT_TRUE(doc.contains("traceEvents"));
  std::vector<nlohmann::json> spans;
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "X") spans.push_back(e);
  // step, 2 x (micro_batch, data, forward_backward), worker
  ASSERT_EQ(spans.size(), 8u);
  std::map<std::string, int> count;
  for (const auto& e : spans) {
    ++count[e["name"].get<std::string>()];
    EXPECT_EQ(e["pid"], 3);
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    EXPECT_GE(e["ts"].get<double>(), 0.0);
  }
  EXPECT_EQ(count["step"], 1);
  EXPECT_EQ(count["micro_batch"], 2);
  EXPECT_EQ(count["data"], 2);
  EXPECT_EQ(count["forward_backward"], 2);
  EXPECT_EQ(count["worker"], 1);
  EXPECT_EQ(count["after stop"], 0);

  auto find = [&](const std::string& name, int64_t index) {
    for (const auto& e : spans)
      if (e["name"] == name && (index < 0 || e["args"]["index"] == index)) return e;
    ADD_FAILURE() << "no span " << name;
    return nlohmann::json{};
  };
  auto inside = [](const nlohmann::json& child, const nlohmann::json& parent) {
    const double a = child["ts"], b = a + child["dur"].get<double>();
    const double pa = parent["ts"], pb = pa + parent["dur"].get<double>();
    return pa <= a && b <= pb;
  };
  const auto step = find("step", -1);
  EXPECT_EQ(step["args"]["step"], 7);
  EXPECT_GE(step["dur"].get<double>(), 2 * (200 + 300) + 100);
  for (int i = 0; i < 2; ++i) {
    const auto micro = find("micro_batch", i);
    EXPECT_TRUE(inside(micro, step));
    EXPECT_EQ(micro["tid"], step["tid"]);
    // data and forward_backward of micro-batch i lie inside it and not inside the other one
    for (const auto& e : spans) {
      if ((e["name"] == "data" || e["name"] == "forward_backward") && inside(e, micro)) {
        EXPECT_EQ(e["tid"], micro["tid"]);
      }
    }
  }
  const auto d0 = find("data", -1);
  EXPECT_GE(d0["dur"].get<double>(), 200.0);
  const auto worker = find("worker", -1);
  EXPECT_NE(worker["tid"], step["tid"]);
  EXPECT_TRUE(inside(worker, step));  // in time, on its own thread
  // Every pair of spans on one thread is nested or disjoint (a proper flame graph).
  for (const auto& a : spans)
    for (const auto& b : spans) {
      if (a["tid"] != b["tid"]) continue;
      const double a0 = a["ts"], a1 = a0 + a["dur"].get<double>();
      const double b0 = b["ts"], b1 = b0 + b["dur"].get<double>();
      const bool disjoint = a1 <= b0 || b1 <= a0;
      EXPECT_TRUE(disjoint || inside(a, b) || inside(b, a))
          << a["name"] << " and " << b["name"] << " overlap";
    }
  fs::remove(path);
}

TEST(Trace, KeepsAtMostMaxEvents) {
  trace::start(0, /*max_events=*/5);
  for (int i = 0; i < 8; ++i) RRT_TRACE_SPAN("tick", i);
  trace::stop();
  EXPECT_EQ(trace::events().size(), 5u);
  EXPECT_EQ(trace::dropped(), 3);
  const auto doc = nlohmann::json::parse(trace::chrome_trace_json());
  EXPECT_EQ(doc["otherData"]["dropped_events"], 3);
}

}  // namespace
}  // namespace rrt
