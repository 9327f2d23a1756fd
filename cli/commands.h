// Subcommands of the rrt command; each registers itself on the CLI11 app.
#pragma once

namespace CLI {
class App;
}

namespace rrt::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_prepare_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_demo_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_plot_command(CLI::App& app);
void add_plot_exits_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_serve_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_exit_classifier_command(CLI::App& app);

}  // namespace rrt::cli
