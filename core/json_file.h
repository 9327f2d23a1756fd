// Reading a JSON file that rrt or a user wrote (manifests, run state, HF configs, eval
// reports), with the errors every such read owes its user: the file's path, why it failed
// (cannot open and the system's reason, or where the JSON breaks), and what to do about it.
// Reads that tolerate a missing or torn file (a run's status.json while it is being replaced)
// parse with allow_exceptions = false themselves instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace rrt {

// The parsed file. Throws rrt::Error (where = path) when it cannot be opened ("cannot open:
// <reason>") or is not JSON ("is not valid JSON (<parser's message>)"); `what_to_do` ("; delete
// the directory and prepare again") is appended to either message, so say it with its leading
// separator, or give "" for none.
nlohmann::json read_json_file(const std::string& path, const std::string& what_to_do);
// The same, keeping the file's key order (for files rrt writes back or hashes).
nlohmann::ordered_json read_ordered_json_file(const std::string& path,
                                              const std::string& what_to_do);

}  // namespace rrt
