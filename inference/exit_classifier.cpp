#include "inference/exit_classifier.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/parameters.h"

namespace rrt::inference {

namespace {

constexpr const char* kFormat = "rrt-exit-classifier";
constexpr const char* kVersion = "1";
constexpr const char* kFeatures = "final_norm_state,saturation_cosine";

// log(1 + e^z) without overflow.
template <typename T>
T softplus(T z) {
  return std::max(z, T(0)) + std::log1p(std::exp(-std::abs(z)));
}

template <typename T>
T sigmoid(T z) {
  return z >= 0 ? T(1) / (T(1) + std::exp(-z)) : std::exp(z) / (T(1) + std::exp(z));
}

std::string hex32(uint32_t x) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", x);
  return buf;
}

const std::string& meta(const std::map<std::string, std::string>& m, const std::string& key,
                        const std::string& path) {
  const auto it = m.find(key);
  RRT_CHECK(it != m.end(), "exit-classifier", path, " lacks the metadata key '", key,
            "': not a file of rrt exit-classifier train");
  return it->second;
}

int64_t meta_int(const std::map<std::string, std::string>& m, const std::string& key,
                 const std::string& path) {
  const std::string& s = meta(m, key, path);
  try {
    return std::stoll(s, nullptr, 0);
  } catch (const std::logic_error&) {
    throw Error("exit-classifier", path + ": metadata '" + key + "' is not an integer: " + s);
  }
}

}  // namespace

std::string ModelIdentity::describe() const {
  return std::to_string(loops) + " loops x " + std::to_string(block_layers) + " layers, d " +
         std::to_string(d_model) + ", vocab " + std::to_string(vocab) + ", " +
         std::to_string(parameters) + " parameters, weights crc32 " + hex32(weights_crc32);
}

ModelIdentity model_identity(const ModelSpec& spec, const ParameterSet& params) {
  ModelIdentity id;
  id.loops = spec.recursion.loops;
  id.block_layers = spec.recursion.block_layers;
  id.d_model = spec.model.d_model;
  id.vocab = spec.model.vocab;
  uLong crc = crc32(0L, Z_NULL, 0);
  const ParamRegistry& reg = params.registry();
  for (int i = 0; i < reg.size(); ++i) {
    const int64_t n = params.numel(i);
    id.parameters += n;
    const auto* bytes = reinterpret_cast<const Bytef*>(params.value(i));
    // zlib's length is 32-bit: feed large tensors in pieces.
    for (int64_t at = 0, total = n * 4; at < total;) {
      const int64_t chunk = std::min<int64_t>(total - at, int64_t{1} << 30);
      crc = crc32(crc, bytes + at, static_cast<uInt>(chunk));
      at += chunk;
    }
  }
  id.weights_crc32 = static_cast<uint32_t>(crc);
  return id;
}

template <typename T>
void ProbeParams<T>::resize(int64_t f, int64_t h) {
  features = f;
  hidden = h;
  const int64_t rows = std::max<int64_t>(h, 1);
  w1.assign(static_cast<size_t>(rows * f), T(0));
  b1.assign(static_cast<size_t>(rows), T(0));
  w2.assign(static_cast<size_t>(h), T(0));
  b2 = T(0);
}

template <typename T>
T probe_logit(const ProbeParams<T>& p, const T* x) {
  const int64_t F = p.features;
  if (p.hidden == 0) {
    T z = p.b1[0];
    for (int64_t f = 0; f < F; ++f) z += p.w1[static_cast<size_t>(f)] * x[f];
    return z;
  }
  T z = p.b2;
  for (int64_t h = 0; h < p.hidden; ++h) {
    const T* w = p.w1.data() + h * F;
    T a = p.b1[static_cast<size_t>(h)];
    for (int64_t f = 0; f < F; ++f) a += w[f] * x[f];
    z += p.w2[static_cast<size_t>(h)] * std::tanh(a);
  }
  return z;
}

template <typename T>
T probe_loss(const ProbeParams<T>& p, const T* x, const T* y, int64_t n, double l2,
             ProbeParams<T>* g) {
  RRT_CHECK(n > 0, "exit-classifier", "probe_loss over no example");
  RRT_CHECK(!g || (g->features == p.features && g->hidden == p.hidden), "exit-classifier",
            "probe_loss: the gradient's shape differs from the probe's");
  const int64_t F = p.features, H = p.hidden;
  const T inv_n = T(1) / static_cast<T>(n);
  std::vector<T> hid(static_cast<size_t>(H));
  T loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * F;
    T z;
    if (H == 0) {
      z = probe_logit(p, xi);
    } else {
      z = p.b2;
      for (int64_t h = 0; h < H; ++h) {
        const T* w = p.w1.data() + h * F;
        T a = p.b1[static_cast<size_t>(h)];
        for (int64_t f = 0; f < F; ++f) a += w[f] * xi[f];
        hid[static_cast<size_t>(h)] = std::tanh(a);
        z += p.w2[static_cast<size_t>(h)] * hid[static_cast<size_t>(h)];
      }
    }
    loss += softplus(z) - y[i] * z;
    if (!g) continue;
    const T dz = (sigmoid(z) - y[i]) * inv_n;
    if (H == 0) {
      for (int64_t f = 0; f < F; ++f) g->w1[static_cast<size_t>(f)] += dz * xi[f];
      g->b1[0] += dz;
      continue;
    }
    g->b2 += dz;
    for (int64_t h = 0; h < H; ++h) {
      const T hh = hid[static_cast<size_t>(h)];
      g->w2[static_cast<size_t>(h)] += dz * hh;
      const T da = dz * p.w2[static_cast<size_t>(h)] * (T(1) - hh * hh);
      g->b1[static_cast<size_t>(h)] += da;
      T* gw = g->w1.data() + h * F;
      for (int64_t f = 0; f < F; ++f) gw[f] += da * xi[f];
    }
  }
  loss *= inv_n;
  T sq = 0;
  for (T w : p.w1) sq += w * w;
  for (T w : p.w2) sq += w * w;
  loss += static_cast<T>(0.5 * l2) * sq;
  if (g) {
    for (size_t i = 0; i < p.w1.size(); ++i) g->w1[i] += static_cast<T>(l2) * p.w1[i];
    for (size_t i = 0; i < p.w2.size(); ++i) g->w2[i] += static_cast<T>(l2) * p.w2[i];
  }
  return loss;
}

template struct ProbeParams<float>;
template struct ProbeParams<double>;
template float probe_logit(const ProbeParams<float>&, const float*);
template double probe_logit(const ProbeParams<double>&, const double*);
template float probe_loss(const ProbeParams<float>&, const float*, const float*, int64_t, double,
                          ProbeParams<float>*);
template double probe_loss(const ProbeParams<double>&, const double*, const double*, int64_t,
                           double, ProbeParams<double>*);

double ExitClassifier::probability(int64_t loop, const float* normed, double similarity) const {
  RRT_CHECK(loop >= 1 && loop < loops(), "exit-classifier", "loop ", loop,
            " has no probe: the classifier decides at loops 1..", loops() - 1);
  const ProbeParams<float>& p = probes[static_cast<size_t>(loop - 1)];
  const int64_t D = p.features - 1;
  // The probe over [normed, similarity] without building the feature vector.
  const auto pre = [&](const float* w, double bias) {
    double a = bias;
    for (int64_t d = 0; d < D; ++d) a += static_cast<double>(w[d]) * normed[d];
    return a + static_cast<double>(w[D]) * similarity;
  };
  double z;
  if (p.hidden == 0) {
    z = pre(p.w1.data(), p.b1[0]);
  } else {
    z = p.b2;
    for (int64_t h = 0; h < p.hidden; ++h)
      z += p.w2[static_cast<size_t>(h)] *
           std::tanh(pre(p.w1.data() + h * p.features, p.b1[static_cast<size_t>(h)]));
  }
  return sigmoid(z);
}

void ExitClassifier::check_model(const ModelIdentity& served, const std::string& file) const {
  RRT_CHECK(model == served, "exit-classifier", file, " was trained on another model (",
            model.describe(), "; trained from ", checkpoint.empty() ? std::string("?") : checkpoint,
            ") than the one served (", served.describe(),
            "): train one for this checkpoint with rrt exit-classifier train");
}

void save_exit_classifier(const std::string& path, const ExitClassifier& c) {
  RRT_CHECK(static_cast<int64_t>(c.probes.size()) == c.loops() - 1 && c.loops() >= 2,
            "exit-classifier", "a classifier of ", c.loops(), " loops needs ", c.loops() - 1,
            " probes, has ", c.probes.size());
  std::vector<SafetensorOut> out;
  std::vector<std::string> names;
  names.reserve(4 * c.probes.size());
  for (size_t k = 0; k < c.probes.size(); ++k) {
    const ProbeParams<float>& p = c.probes[k];
    const std::string pre = "loop." + std::to_string(k + 1) + ".";
    const int64_t rows = std::max<int64_t>(p.hidden, 1);
    out.push_back({pre + "w1", "F32", {rows, p.features}, p.w1.data()});
    out.push_back({pre + "b1", "F32", {rows}, p.b1.data()});
    if (p.hidden > 0) out.push_back({pre + "w2", "F32", {p.hidden}, p.w2.data()});
    out.push_back({pre + "b2", "F32", {1}, &p.b2});
  }
  const ModelIdentity& m = c.model;
  const std::map<std::string, std::string> metadata{
      {"format", kFormat},
      {"version", kVersion},
      {"features", kFeatures},
      {"hidden", std::to_string(c.hidden())},
      {"model.loops", std::to_string(m.loops)},
      {"model.block_layers", std::to_string(m.block_layers)},
      {"model.d_model", std::to_string(m.d_model)},
      {"model.vocab", std::to_string(m.vocab)},
      {"model.parameters", std::to_string(m.parameters)},
      {"model.weights_crc32", "0x" + hex32(m.weights_crc32)},
      {"checkpoint", c.checkpoint},
      {"report", c.report}};
  write_safetensors(path, out, metadata);
}

ExitClassifier load_exit_classifier(const std::string& path) {
  const SafetensorsFile f(path);
  const auto& md = f.metadata();
  RRT_CHECK(meta(md, "format", path) == kFormat, "exit-classifier", path, " is a '",
            meta(md, "format", path), "' file, not an rrt exit classifier");
  RRT_CHECK(meta(md, "version", path) == kVersion, "exit-classifier", path, " has version ",
            meta(md, "version", path), "; this rrt reads version ", kVersion);
  RRT_CHECK(meta(md, "features", path) == kFeatures, "exit-classifier", path,
            " reads the features '", meta(md, "features", path), "'; this rrt computes '",
            kFeatures, "'");
  ExitClassifier c;
  c.model.loops = meta_int(md, "model.loops", path);
  c.model.block_layers = meta_int(md, "model.block_layers", path);
  c.model.d_model = meta_int(md, "model.d_model", path);
  c.model.vocab = meta_int(md, "model.vocab", path);
  c.model.parameters = meta_int(md, "model.parameters", path);
  c.model.weights_crc32 = static_cast<uint32_t>(meta_int(md, "model.weights_crc32", path));
  c.checkpoint = meta(md, "checkpoint", path);
  c.report = meta(md, "report", path);
  const int64_t H = meta_int(md, "hidden", path), F = c.model.d_model + 1;
  RRT_CHECK(c.model.loops >= 2 && H >= 0 && c.model.d_model > 0, "exit-classifier", path,
            ": metadata of ", c.model.loops, " loops, hidden ", H, " is not a classifier's");
  const auto read = [&](const std::string& name, std::vector<int64_t> shape, float* into) {
    RRT_CHECK(f.has(name), "exit-classifier", path, " lacks the tensor ", name);
    RRT_CHECK(f.info(name).shape == shape, "exit-classifier", path, ": tensor ", name,
              " has the wrong shape for ", c.model.loops, " loops, d ", c.model.d_model,
              ", hidden ", H);
    f.read_f32_into(name, into, f.info(name).numel());
  };
  for (int64_t k = 1; k < c.model.loops; ++k) {
    ProbeParams<float> p;
    p.resize(F, H);
    const std::string pre = "loop." + std::to_string(k) + ".";
    const int64_t rows = std::max<int64_t>(H, 1);
    read(pre + "w1", {rows, F}, p.w1.data());
    read(pre + "b1", {rows}, p.b1.data());
    if (H > 0) read(pre + "w2", {H}, p.w2.data());
    read(pre + "b2", {1}, &p.b2);
    c.probes.push_back(std::move(p));
  }
  return c;
}

ExitClassifier load_exit_classifier(const std::string& path, const ModelIdentity& served) {
  ExitClassifier c = load_exit_classifier(path);
  c.check_model(served, path);
  return c;
}

}  // namespace rrt::inference
