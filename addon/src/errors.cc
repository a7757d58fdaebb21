#include "errors.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace apisix_profile {

std::string Format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) vsnprintf(out.data(), out.size() + 1, fmt, ap2);
  va_end(ap2);
  return out;
}

void ThrowErrno(Napi::Env env, int err, const std::string& context, const std::string& hint) {
  if (err < 0) err = -err;
  const char* name = err ? strerrorname_np(err) : nullptr;
  std::string code = name ? name : Format("E%d", err);
  Napi::Error error = Napi::Error::New(
      env, context + ": " + strerror(err) + (hint.empty() ? "" : " (" + hint + ")"));
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

}  // namespace apisix_profile
