// The inner loop of meta-learning (Algorithm 1) for a one-hidden-layer network whose
// hidden units use spline-tabulated activations, with its exact adjoint.
//
// Forward: from θ0, K RMSprop steps on mini-batches (square average starting at 1), the
// gradient by explicit backpropagation. Backward: given dJ/dL_k for every inner loss L_k,
// the gradient of J with respect to the spline coefficients, through every inner update
// (the unrolled meta-gradient), by reverse-mode differentiation of the whole trajectory
// written out by hand: each step is a Hessian-vector product and a mixed second
// derivative of the loss, so no autograd graph is built.
//
// Replicates (a leading axis R) are independent and spread over PyTorch's threads; each
// runs on one thread with the same operations whatever R is, so a replicate's numbers do
// not depend on the others.
//
// Parameters are one flat vector per replicate: W1 (H, D), b1 (H), W2 (O, H), b2 (O).
// Spline table of replicate r: coef[r] (T, I, 4), cubic c0 + c1 t + c2 t² + c3 t³ on the
// cell [j h, (j + 1) h) of the absolute grid, j = first[r] + row; t = x/h − j.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

// MKL's per-thread thread count, where PyTorch links MKL: a replicate's matrix products
// always run on one thread, so their rounding does not depend on how many run at once.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace {

using at::Tensor;

// Runs f(r) for every replicate r, replicates spread over PyTorch's threads, each with
// single-threaded matrix products.
template <typename F>
void for_each_replicate(int64_t R, const F& f) {
  at::parallel_for(0, R, 1, [&](int64_t begin, int64_t end) {
    const int previous = MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0;
    for (int64_t r = begin; r < end; ++r) f(r);
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous);
  });
}

constexpr int64_t CROSS_ENTROPY = 0, MSE = 1;

struct Shape {
  int64_t D, H, O, T, B, K, P, I;
};

// The four parameter blocks of a flat vector (P,) as matrices.
struct Blocks {
  Tensor W1, b1, W2, b2;
  Blocks(const Tensor& flat, const Shape& s)
      : W1(flat.narrow(0, 0, s.H * s.D).view({s.H, s.D})),
        b1(flat.narrow(0, s.H * s.D, s.H)),
        W2(flat.narrow(0, s.H * s.D + s.H, s.O * s.H).view({s.O, s.H})),
        b2(flat.narrow(0, s.H * s.D + s.H + s.O * s.H, s.O)) {}
};

// Replicate r's spline table; `locate` finds the row of x's cell in coef (type, cell)
// and its local coordinate t, on the end cells outside the table (NaN: the first cell).
template <typename scalar_t>
struct Table {
  const scalar_t* coef;
  int64_t first, intervals, stride;
  double inverse_spacing;

  inline const scalar_t* locate(scalar_t x, int64_t type, scalar_t& t) const {
    const double position = static_cast<double>(x) * inverse_spacing - first;
    int64_t cell = 0;
    if (position >= intervals) cell = intervals - 1;
    else if (position >= 0) cell = static_cast<int64_t>(position);
    t = static_cast<scalar_t>(position - cell);
    return coef + 4 * (type * stride + cell);
  }
};

template <typename scalar_t>
Table<scalar_t> table_of(const Tensor& coef, const Tensor& first, const Tensor& intervals,
                         double spacing, int64_t r) {
  return {coef[r].data_ptr<scalar_t>(), first[r].item<int64_t>(), intervals[r].item<int64_t>(),
          coef.size(2), 1.0 / spacing};
}

// Gather the batch rows of x (and labels or targets) into contiguous buffers.
template <typename scalar_t>
void gather_rows(const Tensor& src, const int64_t* index, int64_t B, Tensor& dst) {
  const int64_t width = src.numel() / src.size(0);
  auto* out = dst.data_ptr<scalar_t>();
  const auto* in = src.data_ptr<scalar_t>();
  for (int64_t b = 0; b < B; ++b)
    std::copy(in + index[b] * width, in + (index[b] + 1) * width, out + b * width);
}

// Loss of outputs o (B, O) and its gradient e = dL/do, written into e.
template <typename scalar_t>
double loss_and_delta(int64_t kind, const scalar_t* o, const scalar_t* yf, const int64_t* yl,
                      int64_t B, int64_t O, scalar_t* e) {
  double loss = 0;
  if (kind == CROSS_ENTROPY) {
    for (int64_t b = 0; b < B; ++b) {
      const scalar_t* row = o + b * O;
      scalar_t peak = row[0];
      for (int64_t i = 1; i < O; ++i) peak = std::max(peak, row[i]);
      scalar_t total = 0;
      for (int64_t i = 0; i < O; ++i) {
        e[b * O + i] = std::exp(row[i] - peak);
        total += e[b * O + i];
      }
      loss += std::log(static_cast<double>(total)) + peak - row[yl[b]];
      for (int64_t i = 0; i < O; ++i) e[b * O + i] = e[b * O + i] / total / B;
      e[b * O + yl[b]] -= scalar_t(1) / B;
    }
    return loss / B;
  }
  const scalar_t factor = scalar_t(2) / (B * O);
  for (int64_t i = 0; i < B * O; ++i) {
    scalar_t diff = o[i] - yf[i];
    loss += static_cast<double>(diff) * diff;
    e[i] = factor * diff;
  }
  return loss / (B * O);
}

// Sums over the rows of m (B, n) into out (n,), or added to it.
template <typename scalar_t>
void column_sums(const scalar_t* m, int64_t B, int64_t n, scalar_t* out, bool add = false) {
  if (!add) std::fill(out, out + n, scalar_t(0));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i) out[i] += m[b * n + i];
}

// Softmax probabilities from e = (P − onehot)/B of a cross-entropy loss.
template <typename scalar_t>
inline scalar_t probability(const scalar_t* e, const int64_t* yl, int64_t b, int64_t i,
                            int64_t O, int64_t B) {
  return e[b * O + i] * B + (i == yl[b] ? scalar_t(1) : scalar_t(0));
}

struct Inputs {
  Tensor x, y, batches, noise, theta0, coef, first, intervals;
  double spacing, lr, decay;
  int64_t kind;
};

Shape shape_of(const Inputs& in) {
  Shape s;
  s.D = in.x.size(1);
  s.H = in.noise.size(2);
  s.K = in.batches.size(1);
  s.B = in.batches.size(2);
  s.T = in.coef.size(1);
  s.I = in.coef.size(2);
  s.P = in.theta0.size(1);
  s.O = (s.P - s.H * s.D - s.H) / (s.H + 1);
  return s;
}

// Forward of replicate r. Writes losses (K,), the final θ (P,), the pre-activations'
// range; with `keep`, also θ_k, g_k (K, P), the square average after step k (K, P) and
// the pre-activations z_k (K, B, H) for the backward pass.
template <typename scalar_t>
void forward_replicate(const Inputs& in, const Shape& s, int64_t r, Tensor losses, Tensor theta,
                       Tensor range, bool keep, Tensor thetas, Tensor grads, Tensor squares,
                       Tensor zs) {
  const auto opts = in.x.options();
  Tensor xb = at::empty({s.B, s.D}, opts), z = at::empty({s.B, s.H}, opts);
  Tensor a = at::empty({s.B, s.H}, opts), slope = at::empty({s.B, s.H}, opts);
  Tensor o = at::empty({s.B, s.O}, opts), e = at::empty({s.B, s.O}, opts);
  Tensor p = at::empty({s.B, s.H}, opts), g = at::empty({s.P}, opts);
  Tensor yb = in.kind == CROSS_ENTROPY ? at::empty({s.B}, in.y.options())
                                       : at::empty({s.B, s.O}, opts);
  Tensor square = at::ones({s.P}, opts);
  theta.copy_(in.theta0[r]);
  Blocks th(theta, s), gb(g, s);
  const Table<scalar_t> table = table_of<scalar_t>(in.coef, in.first, in.intervals, in.spacing, r);
  const int64_t per_type = s.H / s.T;
  const scalar_t inverse_spacing = 1 / in.spacing;
  double low = std::numeric_limits<double>::infinity(), high = -low;
  bool finite = true;
  auto* loss_out = losses.data_ptr<double>();
  for (int64_t k = 0; k < s.K; ++k) {
    const int64_t* index = in.batches[r][k].data_ptr<int64_t>();
    gather_rows<scalar_t>(in.x, index, s.B, xb);
    if (in.kind == CROSS_ENTROPY) gather_rows<int64_t>(in.y, index, s.B, yb);
    else gather_rows<scalar_t>(in.y, index, s.B, yb);
    at::addmm_out(z, th.b1, xb, th.W1.t());
    const auto* nu = in.noise[r][k].data_ptr<scalar_t>();
    auto *zp = z.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>();
    auto* sp = slope.data_ptr<scalar_t>();
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t type = 0, h = 0; type < s.T; ++type)
        for (int64_t j = 0; j < per_type; ++j, ++h) {
          const int64_t i = b * s.H + h;
          const double zi = zp[i];
          finite = finite && std::isfinite(zi);
          low = std::min(low, zi);
          high = std::max(high, zi);
          scalar_t t;
          const scalar_t* c = table.locate(zp[i], type, t);
          ap[i] = c[0] + t * (c[1] + t * (c[2] + t * c[3])) + nu[h];
          sp[i] = (c[1] + t * (2 * c[2] + 3 * t * c[3])) * inverse_spacing;
        }
    at::addmm_out(o, th.b2, a, th.W2.t());
    loss_out[k] = loss_and_delta<scalar_t>(
        in.kind, o.data_ptr<scalar_t>(), in.kind == MSE ? yb.data_ptr<scalar_t>() : nullptr,
        in.kind == CROSS_ENTROPY ? yb.data_ptr<int64_t>() : nullptr, s.B, s.O,
        e.data_ptr<scalar_t>());
    at::mm_out(gb.W2, e.t(), a);
    at::mm_out(p, e, th.W2);
    column_sums<scalar_t>(e.data_ptr<scalar_t>(), s.B, s.O, gb.b2.data_ptr<scalar_t>());
    {
      auto* pp = p.data_ptr<scalar_t>();  // becomes δz = (e W2) ⊙ σ'
      for (int64_t i = 0; i < s.B * s.H; ++i) pp[i] *= sp[i];
    }
    at::mm_out(gb.W1, p.t(), xb);
    column_sums<scalar_t>(p.data_ptr<scalar_t>(), s.B, s.H, gb.b1.data_ptr<scalar_t>());
    if (keep) {
      thetas[k].copy_(theta);
      grads[k].copy_(g);
      zs[k].copy_(z);
    }
    auto *tp = theta.data_ptr<scalar_t>(), *gp = g.data_ptr<scalar_t>();
    auto* vp = square.data_ptr<scalar_t>();
    const scalar_t decay = in.decay, lr = in.lr;
    for (int64_t i = 0; i < s.P; ++i) {
      vp[i] = decay * vp[i] + (1 - decay) * gp[i] * gp[i];
      tp[i] -= lr * gp[i] / (std::sqrt(vp[i]) + scalar_t(1e-8));
    }
    if (keep) squares[k].copy_(square);
  }
  auto* rp = range.data_ptr<double>();
  rp[0] = finite ? low : std::numeric_limits<double>::quiet_NaN();
  rp[1] = finite ? high : std::numeric_limits<double>::quiet_NaN();
}

// Backward of replicate r: dJ/dcoef (T·I, 4) in double, given w_k = dJ/dL_k (K,).
template <typename scalar_t>
void backward_replicate(const Inputs& in, const Shape& s, int64_t r, const Tensor& weights,
                        const Tensor& thetas, const Tensor& grads, const Tensor& squares,
                        const Tensor& zs, Tensor grad_coef) {
  const auto opts = in.x.options();
  Tensor xb = at::empty({s.B, s.D}, opts), a = at::empty({s.B, s.H}, opts);
  Tensor slope = at::empty({s.B, s.H}, opts), curvature = at::empty({s.B, s.H}, opts);
  Tensor o = at::empty({s.B, s.O}, opts), e = at::empty({s.B, s.O}, opts);
  Tensor p = at::empty({s.B, s.H}, opts), dz_bar = at::empty({s.B, s.H}, opts);
  Tensor p_bar = at::empty({s.B, s.H}, opts), s_bar = at::empty({s.B, s.H}, opts);
  Tensor e_bar = at::empty({s.B, s.O}, opts), o_bar = at::empty({s.B, s.O}, opts);
  Tensor a_bar = at::empty({s.B, s.H}, opts);
  Tensor yb = in.kind == CROSS_ENTROPY ? at::empty({s.B}, in.y.options())
                                       : at::empty({s.B, s.O}, opts);
  Tensor theta_bar = at::zeros({s.P}, opts), square_bar = at::zeros({s.P}, opts);
  Tensor direction = at::empty({s.P}, opts);
  Blocks tb(theta_bar, s), dir(direction, s);
  const Table<scalar_t> table = table_of<scalar_t>(in.coef, in.first, in.intervals, in.spacing, r);
  auto* gc = grad_coef.data_ptr<double>();
  const int64_t per_type = s.H / s.T;
  const scalar_t decay = in.decay, lr = in.lr, inverse_spacing = 1 / in.spacing;
  const auto* w = weights.data_ptr<scalar_t>();
  std::vector<int64_t> rows(s.B * s.H);
  std::vector<scalar_t> ts(s.B * s.H);
  for (int64_t k = s.K - 1; k >= 0; --k) {
    // Adjoint of the RMSprop update θ_{k+1} = θ_k − lr g_k / (√v_{k+1} + ε): the direction
    // ḡ in which the gradient g_k is differentiated, and the square average's adjoint.
    {
      const auto* gp = grads[k].data_ptr<scalar_t>();
      const auto* vp = squares[k].data_ptr<scalar_t>();
      auto *tbp = theta_bar.data_ptr<scalar_t>(), *vbp = square_bar.data_ptr<scalar_t>();
      auto* dp = direction.data_ptr<scalar_t>();
      for (int64_t i = 0; i < s.P; ++i) {
        const scalar_t root = std::sqrt(vp[i]), denominator = root + scalar_t(1e-8);
        const scalar_t v_total =
            vbp[i] + tbp[i] * lr * gp[i] / (denominator * denominator * 2 * root);
        dp[i] = -lr * tbp[i] / denominator + v_total * 2 * (1 - decay) * gp[i];
        vbp[i] = decay * v_total;
      }
    }
    Blocks th(thetas[k], s);
    const int64_t* index = in.batches[r][k].data_ptr<int64_t>();
    gather_rows<scalar_t>(in.x, index, s.B, xb);
    if (in.kind == CROSS_ENTROPY) gather_rows<int64_t>(in.y, index, s.B, yb);
    else gather_rows<scalar_t>(in.y, index, s.B, yb);
    const auto* zp = zs[k].data_ptr<scalar_t>();
    const auto* nu = in.noise[r][k].data_ptr<scalar_t>();
    auto *ap = a.data_ptr<scalar_t>(), *sp = slope.data_ptr<scalar_t>();
    auto* cp = curvature.data_ptr<scalar_t>();
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t type = 0, h = 0; type < s.T; ++type)
        for (int64_t j = 0; j < per_type; ++j, ++h) {
          const int64_t i = b * s.H + h;
          scalar_t t;
          const scalar_t* c = table.locate(zp[i], type, t);
          rows[i] = (c - table.coef) / 4;
          ts[i] = t;
          ap[i] = c[0] + t * (c[1] + t * (c[2] + t * c[3])) + nu[h];
          sp[i] = (c[1] + t * (2 * c[2] + 3 * t * c[3])) * inverse_spacing;
          cp[i] = (2 * c[2] + 6 * t * c[3]) * (inverse_spacing * inverse_spacing);
        }
    at::addmm_out(o, th.b2, a, th.W2.t());
    const auto* yl = in.kind == CROSS_ENTROPY ? yb.data_ptr<int64_t>() : nullptr;
    loss_and_delta<scalar_t>(in.kind, o.data_ptr<scalar_t>(),
                             in.kind == MSE ? yb.data_ptr<scalar_t>() : nullptr, yl, s.B, s.O,
                             e.data_ptr<scalar_t>());
    at::mm_out(p, e, th.W2);
    // F = <g_k, ḡ> + w_k L_k, reversed through the explicit gradient computation.
    at::addmm_out(dz_bar, dir.b1, xb, dir.W1.t());
    {
      const auto *dp = dz_bar.data_ptr<scalar_t>(), *pp = p.data_ptr<scalar_t>();
      auto *pbp = p_bar.data_ptr<scalar_t>(), *sbp = s_bar.data_ptr<scalar_t>();
      for (int64_t i = 0; i < s.B * s.H; ++i) {
        pbp[i] = dp[i] * sp[i];
        sbp[i] = dp[i] * pp[i];
      }
    }
    at::mm_out(e_bar, p_bar, th.W2.t());
    e_bar.addmm_(a, dir.W2.t());
    tb.W2.addmm_(e.t(), p_bar);
    at::mm_out(a_bar, e, dir.W2);
    {
      // ē += ḡ_b2, then ō = ∇²L(o) ē + w_k e.
      const auto* ep = e.data_ptr<scalar_t>();
      auto* ebp = e_bar.data_ptr<scalar_t>();
      const auto* v2 = dir.b2.data_ptr<scalar_t>();
      auto* obp = o_bar.data_ptr<scalar_t>();
      const scalar_t wk = w[k];
      for (int64_t b = 0; b < s.B; ++b) {
        scalar_t* row = ebp + b * s.O;
        for (int64_t i = 0; i < s.O; ++i) row[i] += v2[i];
        if (in.kind == CROSS_ENTROPY) {
          scalar_t dot = 0;
          for (int64_t i = 0; i < s.O; ++i) dot += probability(ep, yl, b, i, s.O, s.B) * row[i];
          for (int64_t i = 0; i < s.O; ++i) {
            const int64_t j = b * s.O + i;
            obp[j] = probability(ep, yl, b, i, s.O, s.B) * (row[i] - dot) / s.B + wk * ep[j];
          }
        } else {
          const scalar_t factor = scalar_t(2) / (s.B * s.O);
          for (int64_t i = 0; i < s.O; ++i)
            obp[b * s.O + i] = factor * row[i] + wk * ep[b * s.O + i];
        }
      }
      column_sums<scalar_t>(obp, s.B, s.O, tb.b2.data_ptr<scalar_t>(), true);
    }
    a_bar.addmm_(o_bar, th.W2);
    tb.W2.addmm_(o_bar.t(), a);
    {
      auto* abp = a_bar.data_ptr<scalar_t>();  // becomes z̄
      const auto* sbp = s_bar.data_ptr<scalar_t>();
      for (int64_t i = 0; i < s.B * s.H; ++i) {
        const scalar_t t = ts[i], value_bar = abp[i], slope_bar = sbp[i];
        double* g = gc + 4 * rows[i];
        g[0] += value_bar;
        const scalar_t slope_term = slope_bar * inverse_spacing;
        g[1] += value_bar * t + slope_term;
        g[2] += (value_bar * t + 2 * slope_term) * t;
        g[3] += (value_bar * t + 3 * slope_term) * t * t;
        abp[i] = value_bar * sp[i] + slope_bar * cp[i];
      }
    }
    tb.W1.addmm_(a_bar.t(), xb);
    column_sums<scalar_t>(a_bar.data_ptr<scalar_t>(), s.B, s.H, tb.b1.data_ptr<scalar_t>(), true);
  }
}

Inputs inputs(Tensor x, Tensor y, Tensor batches, Tensor noise, Tensor theta0, Tensor coef,
              Tensor first, Tensor intervals, double spacing, double lr, double decay,
              int64_t kind) {
  TORCH_CHECK(kind == CROSS_ENTROPY || kind == MSE, "unknown loss kind ", kind);
  TORCH_CHECK(x.is_contiguous() && y.is_contiguous() && batches.is_contiguous() &&
                  noise.is_contiguous() && theta0.is_contiguous() && coef.is_contiguous(),
              "inner loop kernel: inputs must be contiguous");
  return {x, y, batches, noise, theta0, coef, first, intervals, spacing, lr, decay, kind};
}

// losses (R, K) double, final θ (R, P), range (R, 2) of the pre-activations (NaN if one
// was not finite; values outside the table were evaluated on its end cells), and the
// saved tensors (empty if not keep).
std::vector<Tensor> forward(Tensor x, Tensor y, Tensor batches, Tensor noise, Tensor theta0,
                            Tensor coef, Tensor first, Tensor intervals, double spacing,
                            double lr, double decay, int64_t kind, bool keep) {
  const Inputs in = inputs(x, y, batches, noise, theta0, coef, first, intervals, spacing, lr,
                           decay, kind);
  const Shape s = shape_of(in);
  const int64_t R = theta0.size(0);
  const auto dopts = x.options().dtype(at::kDouble);
  Tensor losses = at::empty({R, s.K}, dopts), theta = at::empty({R, s.P}, x.options());
  Tensor range = at::empty({R, 2}, dopts);
  Tensor thetas = keep ? at::empty({R, s.K, s.P}, x.options()) : at::empty({R, 0, 0}, x.options());
  Tensor grads = at::empty_like(thetas), squares = at::empty_like(thetas);
  Tensor zs = keep ? at::empty({R, s.K, s.B, s.H}, x.options()) : at::empty({R, 0}, x.options());
  for_each_replicate(R, [&](int64_t r) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "inner_forward", [&] {
      forward_replicate<scalar_t>(in, s, r, losses[r], theta[r], range[r], keep,
                                  keep ? thetas[r] : thetas, keep ? grads[r] : grads,
                                  keep ? squares[r] : squares, keep ? zs[r] : zs);
    });
  });
  return {losses, theta, range, thetas, grads, squares, zs};
}

Tensor backward(Tensor weights, Tensor x, Tensor y, Tensor batches, Tensor noise, Tensor theta0,
                Tensor coef, Tensor first, Tensor intervals, double spacing, double lr,
                double decay, int64_t kind, Tensor thetas, Tensor grads, Tensor squares,
                Tensor zs) {
  const Inputs in = inputs(x, y, batches, noise, theta0, coef, first, intervals, spacing, lr,
                           decay, kind);
  const Shape s = shape_of(in);
  const int64_t R = theta0.size(0);
  Tensor grad_coef = at::zeros({R, s.T * s.I, 4}, x.options().dtype(at::kDouble));
  Tensor w = weights.to(x.scalar_type()).contiguous();
  for_each_replicate(R, [&](int64_t r) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "inner_backward", [&] {
      backward_replicate<scalar_t>(in, s, r, w[r], thetas[r], grads[r], squares[r], zs[r],
                                   grad_coef[r]);
    });
  });
  return grad_coef;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "inner loop: losses, final parameters, range, saved tensors");
  m.def("backward", &backward, "unrolled meta-gradient with respect to the spline table");
}
