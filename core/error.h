// Errors and checks. Every message reads "[where] what": the operation or file that failed,
// then what went wrong and, where we know it, what to do about it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace rrt {

class Error : public std::runtime_error {
 public:
  Error(const std::string& where, const std::string& what)
      : std::runtime_error("[" + where + "] " + what), where_(where) {}
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}
}  // namespace detail

}  // namespace rrt

// RRT_CHECK(cond, where, message parts...): throws rrt::Error when cond is false.
#define RRT_CHECK(cond, where, ...)                                                    \
  do {                                                                                 \
    if (!(cond)) [[unlikely]]                                                          \
      throw ::rrt::Error((where), ::rrt::detail::concat(__VA_ARGS__));                 \
  } while (0)

// RRT_FAIL(where, message parts...): throws unconditionally.
#define RRT_FAIL(where, ...) throw ::rrt::Error((where), ::rrt::detail::concat(__VA_ARGS__))
