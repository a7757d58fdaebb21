// apisix_profile.node: exports the Session class (see session.h).
#include <napi.h>

#include "session.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  apisix_profile::InstallLibbpfPrint();
  exports.Set("Session", apisix_profile::Session::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(apisix_profile, Init)
