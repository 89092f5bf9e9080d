// The `lethe` command line: parses with CLI11, runs the chosen subcommand and maps failures to exit codes
// (0 ok, 1 other error, 2 bad usage, 3 bad input data or model file).
#include <cstdio>
#include <new>
#include <vector>

#include <CLI/CLI.hpp>

#include "engine/error.h"
#include "tools/common.h"

namespace {

int fail(lethe::ExitCode code, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "lethe: error: %s\n", message.c_str());
  return static_cast<int>(code);
}

std::string join_arguments(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) line += (i ? " " : "") + std::string(argv[i]);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lethe::cli;
  GlobalOptions g;
  g.command_line = join_arguments(argc, argv);

  CLI::App app{"Lethe: trains CNNs, makes them forget, and attacks what they remember.", "lethe"};
  app.set_version_flag("--version", std::string("lethe ") + LETHE_VERSION);
  app.require_subcommand(1);
  app.footer("Run 'lethe COMMAND --help' for a command's options.\n"
             "Exit codes: 0 ok, 1 error, 2 bad usage, 3 bad input data or model file.");
  add_global_options(app, g);
  const std::vector<Command> commands = {add_train_command(app, g), add_eval_command(app, g),
                                         add_info_command(app, g), add_predict_command(app, g),
                                         add_data_command(app, g), add_unlearn_command(app, g),
                                         add_attack_command(app, g), add_defend_command(app, g),
                                         add_audit_command(app, g),  add_report_command(app, g)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail(lethe::ExitCode::Usage, std::string(e.what()) + "\nRun 'lethe --help' for usage.");
  }

  try {
    for (const Command& c : commands)
      if (c.app->parsed()) return c.run();
    return fail(lethe::ExitCode::Usage, "no command given; run 'lethe --help' for usage");
  } catch (const lethe::Error& e) {
    return fail(e.code, e.what());
  } catch (const std::bad_alloc&) {
    return fail(lethe::ExitCode::Other, "out of memory");
  } catch (const std::exception& e) {
    return fail(lethe::ExitCode::Other, e.what());
  }
}
