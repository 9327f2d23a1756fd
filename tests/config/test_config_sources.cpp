// data.sources (config/config_sources.h): the mixture's list of maps read from YAML and from an
// override, printed back by to_yaml, its errors at the line of the offending item, the conflict
// with data.path, and the resume comparison.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config_io.h"
#include "config/resume_check.h"
#include "config/run_config.h"
#include "core/error.h"
#include "tests/error_helpers.h"

namespace rrt {
namespace {

using testing::contains;

struct Caught {
  std::string where, what;
};

template <typename Fn>
Caught caught(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return {e.where(), e.what()};
  }
  ADD_FAILURE() << "expected rrt::Error";
  return {};
}

// A small valid model, lines 1..12; the data section is appended (line 13 on).
const std::string kSmall =
    "model:\n"              // 1
    "  n_layers: 4\n"       // 2
    "  vocab: 257\n"        // 3
    "  d_model: 64\n"       // 4
    "  n_heads: 4\n"        // 5
    "  n_kv_heads: 2\n"     // 6
    "  ffn: 128\n"          // 7
    "  max_seq_len: 128\n"  // 8
    "recursion:\n"          // 9
    "  loops: 2\n"          // 10
    "train:\n"              // 11
    "  seq_len: 64\n";      // 12

RunConfig with_data(const std::string& data, const std::vector<std::string>& overrides = {}) {
  return parse_run_config(kSmall + data, "mix.yaml", overrides);
}

TEST(ConfigSources, ReadMapsAndPathsAndPrintThemBack) {
  const RunConfig c = with_data(
      "data:\n"                                                            // 13
      "  sources:\n"                                                       // 14
      "    - path: shards/web\n"                                           // 15
      "      weight: 0.7\n"                                                // 16
      "    - {path: shards/code, weight: 0.2, epochs: 2.0, name: code}\n"  // 17
      "    - shards/extra, with a comma\n"                                 // 18
      "    - {path: \"odd: name\", weight: 3e-1, epochs: 0.5}\n");         // 19
  ASSERT_EQ(c.data.sources.size(), 4u);
  EXPECT_EQ(c.data.sources[0], (MixtureSource{.path = "shards/web", .weight = 0.7}));
  EXPECT_EQ(c.data.sources[1],
            (MixtureSource{.path = "shards/code", .weight = 0.2, .epochs = 2, .name = "code"}));
  EXPECT_EQ(c.data.sources[2], (MixtureSource{.path = "shards/extra, with a comma"}));
  EXPECT_EQ(c.data.sources[3], (MixtureSource{.path = "odd: name", .weight = 0.3, .epochs = 0.5}));
  EXPECT_TRUE(c.data.path.empty());
  const std::string yaml = to_yaml(c);
  EXPECT_TRUE(contains(yaml,
                       "  sources: [{path: shards/web, weight: 0.7}, {path: shards/code, weight: "
                       "0.2, epochs: 2.0, name: code}, {path: \"shards/extra, with a comma\", "
                       "weight: 1.0}, {path: \"odd: name\", weight: 0.3, epochs: 0.5}]\n"))
      << yaml;
  const RunConfig back = parse_run_config(yaml, "back.yaml");
  EXPECT_EQ(back.data.sources, c.data.sources);
  EXPECT_EQ(to_yaml(back), yaml);
  // Without sources the key prints as an empty list and reads back as none.
  const RunConfig plain = with_data("data:\n  path: shards\n");
  EXPECT_TRUE(contains(to_yaml(plain), "  sources: []\n"));
  EXPECT_TRUE(parse_run_config(to_yaml(plain), "plain.yaml").data.sources.empty());
}

TEST(ConfigSources, Overrides) {
  RunConfig c = with_data("", {"data.sources=[{path: a, weight: 2}, b]"});
  ASSERT_EQ(c.data.sources.size(), 2u);
  EXPECT_EQ(c.data.sources[0], (MixtureSource{.path = "a", .weight = 2}));
  EXPECT_EQ(c.data.sources[1], (MixtureSource{.path = "b"}));
  c = with_data("", {"data.sources=a,b"});
  EXPECT_EQ(c.data.sources.size(), 2u);
  const Caught e = caught([] { with_data("", {"data.sources=[{path: a, weight: -1}]"}); });
  EXPECT_EQ(e.where, "command line: data.sources=[{path: a, weight: -1}]");
  EXPECT_TRUE(contains(e.what, "item 0 (a): weight must be > 0, got -1.0")) << e.what;
}

// Each error names the key, the item and the line it is on.
TEST(ConfigSources, ErrorsNameTheLineAndTheItem) {
  const std::string head =
      "data:\n"                                                                  // 13
      "  sources:\n"                                                             // 14
      "    - {path: a, weight: 1}\n";                                            // 15
  Caught e = caught([&] { with_data(head + "    - {path: b, weight: 0}\n"); });  // 16
  EXPECT_EQ(e.where, "mix.yaml:16");
  EXPECT_TRUE(contains(e.what, "data.sources: item 1 (b): weight must be > 0, got 0")) << e.what;

  e = caught([&] {
    with_data(head +
              "    - path: b\n"      // 16
              "      wieght: 2\n");  // 17
  });
  EXPECT_EQ(e.where, "mix.yaml:17");
  EXPECT_TRUE(contains(e.what, "unknown key 'wieght'; did you mean 'weight'?")) << e.what;

  e = caught([&] { with_data(head + "    - {path: b, epochs: -2}\n"); });
  EXPECT_EQ(e.where, "mix.yaml:16");
  EXPECT_TRUE(contains(e.what, "epochs must be >= 0")) << e.what;

  e = caught([&] { with_data(head + "    - {path: b, weight: lots}\n"); });
  EXPECT_EQ(e.where, "mix.yaml:16");
  EXPECT_TRUE(contains(e.what, "weight must be a number, got 'lots'")) << e.what;

  e = caught([&] { with_data(head + "    - {weight: 2}\n"); });
  EXPECT_EQ(e.where, "mix.yaml:16");
  EXPECT_TRUE(contains(e.what, "path must not be empty")) << e.what;

  e = caught([&] { with_data(head + "    - {path: x/a, weight: 2}\n"); });  // both named "a"
  EXPECT_EQ(e.where, "mix.yaml:14");
  EXPECT_TRUE(contains(e.what, "its name 'a' is item 0's too")) << e.what;

  e = caught([&] { with_data("data:\n  sources:\n    path: a\n"); });
  EXPECT_EQ(e.where, "mix.yaml:15");
  EXPECT_TRUE(contains(e.what, "expected a list of sources")) << e.what;

  // data.path beside data.sources: refused at the line of data.sources.
  e = caught([&] {
    with_data(
        "data:\n"                // 13
        "  path: shards\n"       // 14
        "  sources: [a, b]\n");  // 15
  });
  EXPECT_EQ(e.where, "mix.yaml:15");
  EXPECT_TRUE(
      contains(e.what, "set data.path (one data set) or data.sources (a mixture), not both"))
      << e.what;
}

// Another mixture breaks a bit-exact resume: refused unless allowed.
TEST(ConfigSources, ResumeComparesTheSources) {
  const RunConfig stored = with_data("data:\n  sources: [{path: a, weight: 1}, b]\n");
  RunConfig now = with_data("data:\n  sources: [{path: a, weight: 2}, b]\n");
  const Caught e = caught([&] { check_resume_config(now, 1, to_yaml(stored), 1, "ck.h5"); });
  EXPECT_TRUE(contains(e.what,
                       "data.sources: [{path: a, weight: 1.0}, {path: b, weight: 1.0}] in "
                       "the checkpoint, [{path: a, weight: 2.0}, {path: b, weight: 1.0}] now"))
      << e.what;
  now.checkpoint.allow_config_change = {"data.sources"};
  check_resume_config(now, 1, to_yaml(stored), 1, "ck.h5");
  check_resume_config(stored, 1, to_yaml(stored), 1, "ck.h5");
}

}  // namespace
}  // namespace rrt
