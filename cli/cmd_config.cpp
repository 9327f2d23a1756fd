// rrt config show CONFIG [key=value ...] | rrt config keys
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "config/config_io.h"

namespace rrt::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Inspect run configs");
  cmd->require_subcommand(1);
  auto* show = cmd->add_subcommand(
      "show", "Print the resolved config (defaults filled in, overrides applied, validated)");
  auto config = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  show->add_option("config", *config, "YAML run config")->required()->check(CLI::ExistingFile);
  show->add_option("overrides", *overrides, "key=value overrides");
  show->callback([config, overrides] {
    const RunConfig c = load_run_config(*config, *overrides);
    validate_run_config(c);
    std::fputs(to_yaml(c).c_str(), stdout);
  });
  auto* keys = cmd->add_subcommand("keys", "List every config key");
  keys->callback([] {
    for (const auto& k : all_config_keys()) std::printf("%s\n", k.c_str());
  });
}

}  // namespace rrt::cli
