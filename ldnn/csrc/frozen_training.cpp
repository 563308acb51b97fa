// Frozen-activation training of one-hidden-layer networks, many seeds at once: one epoch
// of mini-batch steps (SGD with heavy-ball momentum or Adam) per call, the gradient by
// explicit backpropagation, no autograd graph. The same arithmetic as ldnn.training's
// autograd path, so that both agree to rounding.
//
// Seeds (a leading axis S) are independent and spread over PyTorch's threads, each on one
// thread with the same operations whatever S is; a seed that no longer runs is skipped.
// Parameters are one flat vector per seed: W1 (H, D), b1 (H), W2 (O, H), b2 (O).
//
// Activations: a standard function (ReLU, tanh, sin, zero) for every hidden unit, or T
// tabulated types in equal blocks of units. Type t's table is cubic per cell of the
// uniform grid origin + j·step: on cell j, σ = c0 + c1 τ + c2 τ² + c3 τ³ with τ = p − j,
// p = (z − origin)/step, j = ⌊p⌋ clamped to the cells. A linear table (c2 = c3 = 0)
// extrapolates its end cells; a cubic one clamps τ to [0, 1] and continues with its end
// slopes (per grid step) ends[t] = (left, right).
#include "dense.h"

#include <limits>

namespace {

constexpr int64_t TABLE = -1, RELU = 0, TANH = 1, SIN = 2, ZERO = 3;
constexpr int64_t SGD = 0, ADAM = 1;

template <typename scalar_t>
struct Activation {
  int64_t kind, types, cells;
  bool linear;
  const scalar_t *coef, *ends;
  scalar_t origin, step;

  // a = σ(z), slope = σ'(z) and, if curvature is given, σ''(z) of n rows z (n, H); the
  // buffers are tensors of z's shape. Standard functions through ATen's vectorised ones
  // (those autograd uses), tables in loops written to vectorise.
  void operator()(const Tensor& z, const Tensor& a, const Tensor& slope,
                  const Tensor& curvature) const {
    if (kind != TABLE) return standard(z, a, slope, curvature);
    const bool second = curvature.defined();
    const auto* zp = z.data_ptr<scalar_t>();
    auto *ap = a.data_ptr<scalar_t>(), *sp = slope.data_ptr<scalar_t>();
    auto* cp = second ? curvature.data_ptr<scalar_t>() : nullptr;
    if (linear && second) table<true, true>(zp, z.size(0), z.size(1), ap, sp, cp);
    else if (linear) table<true, false>(zp, z.size(0), z.size(1), ap, sp, cp);
    else if (second) table<false, true>(zp, z.size(0), z.size(1), ap, sp, cp);
    else table<false, false>(zp, z.size(0), z.size(1), ap, sp, cp);
  }

  template <bool is_linear, bool second>
  void table(const scalar_t* z, int64_t n, int64_t H, scalar_t* a, scalar_t* slope,
             scalar_t* curvature) const {
    const int64_t per_type = H / types;
    const scalar_t last = cells - 1, inverse_square = 1 / (step * step);
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t type = 0; type < types; ++type) {
        const scalar_t* c = coef + 4 * type * cells;
        const scalar_t left_end = ends[2 * type], right_end = ends[2 * type + 1];
        const int64_t offset = b * H + type * per_type;
#pragma GCC ivdep
        for (int64_t j = 0; j < per_type; ++j) {
          const int64_t i = offset + j;
          const scalar_t p = (z[i] - origin) / step;
          const int32_t cell = std::min(p >= 0 ? p : scalar_t(0), last);  // NaN: cell 0
          const scalar_t t = p - cell;
          const scalar_t c0 = c[4 * cell], c1 = c[4 * cell + 1];
          const scalar_t c2 = c[4 * cell + 2], c3 = c[4 * cell + 3];
          if constexpr (is_linear) {  // c2 = c3 = 0: the end cells extend
            a[i] = c0 + t * (c1 + t * (c2 + t * c3));
            slope[i] = c1 / step;
            if constexpr (second) curvature[i] = 0;
          } else {
            // Blends instead of branches, so that the loop vectorises; in = 1 on the table.
            const scalar_t low = t > 0 ? t : scalar_t(0), inside = low < 1 ? low : scalar_t(1);
            const scalar_t outside = t - inside, in = outside == 0 ? 1 : 0;
            const scalar_t end = t > 1 ? right_end : left_end;
            a[i] = c0 + inside * (c1 + inside * (c2 + inside * c3)) + outside * end;
            slope[i] = (in * (c1 + inside * (2 * c2 + 3 * inside * c3)) + (1 - in) * end) / step;
            if constexpr (second) curvature[i] = in * (2 * c2 + 6 * inside * c3) * inverse_square;
          }
        }
      }
    }
  }

  void standard(const Tensor& z, const Tensor& a, const Tensor& slope,
                const Tensor& curvature) const {
    const bool second = curvature.defined();
    const int64_t m = z.numel();
    auto *ap = a.data_ptr<scalar_t>(), *sp = slope.data_ptr<scalar_t>();
    auto* cp = second ? curvature.data_ptr<scalar_t>() : nullptr;
    const auto* zp = z.data_ptr<scalar_t>();
    if (kind == TANH) {
      at::tanh_out(const_cast<Tensor&>(a), z);
      for (int64_t i = 0; i < m; ++i) sp[i] = 1 - ap[i] * ap[i];
      if (second) for (int64_t i = 0; i < m; ++i) cp[i] = -2 * ap[i] * sp[i];
    } else if (kind == SIN) {
      at::sin_out(const_cast<Tensor&>(a), z);
      at::cos_out(const_cast<Tensor&>(slope), z);
      if (second) for (int64_t i = 0; i < m; ++i) cp[i] = -ap[i];
    } else {
      for (int64_t i = 0; i < m; ++i) {  // ReLU (NaN stays NaN, as torch.relu) or zero
        ap[i] = kind == RELU ? std::max(zp[i], scalar_t(0)) : scalar_t(0);
        sp[i] = kind == RELU && zp[i] > 0 ? scalar_t(1) : scalar_t(0);
      }
      if (second) std::fill(cp, cp + m, scalar_t(0));
    }
  }
};

// One seed's buffers for a mini-batch of B rows.
template <typename scalar_t>
struct Workspace {
  Tensor xb, yb, z, a, slope, curvature, o, e, p, field, u, grad;

  Workspace(const Tensor& x, const Tensor& y, const Shape& s, int64_t kind) {
    const auto opts = x.options();
    auto rows_of = [&](int64_t width) { return at::empty({s.B, width}, opts); };
    xb = rows_of(s.D), z = rows_of(s.H), a = rows_of(s.H), slope = rows_of(s.H);
    p = rows_of(s.H), grad = at::empty({s.P}, opts);
    yb = kind == CROSS_ENTROPY ? at::empty({s.B}, y.options()) : rows_of(y.size(1));
    if (kind == HAMILTONIAN)  // e: dL/d(field)
      curvature = rows_of(s.H), field = rows_of(s.D), e = rows_of(s.D), u = rows_of(s.D);
    else
      o = rows_of(s.O), e = rows_of(s.O);
  }
};

// The mean loss of batch `index` (B,) at parameters th, and its gradient in w.grad.
template <typename scalar_t>
double loss_and_gradient(const Tensor& x, const Tensor& y, const int64_t* index, int64_t kind,
                         const Activation<scalar_t>& act, const Shape& s, const Blocks& th,
                         Workspace<scalar_t>& w) {
  gather_rows<scalar_t>(x, index, s.B, w.xb);
  if (kind == CROSS_ENTROPY) gather_rows<int64_t>(y, index, s.B, w.yb);
  else gather_rows<scalar_t>(y, index, s.B, w.yb);
  affine<scalar_t>(th.b1, w.xb, th.W1.t(), w.z);
  auto* ap = w.a.template data_ptr<scalar_t>();
  auto* sp = w.slope.template data_ptr<scalar_t>();
  auto* pp = w.p.template data_ptr<scalar_t>();
  Blocks gb(w.grad, s);
  const int64_t n = s.B * s.H;
  if (kind != HAMILTONIAN) {
    act(w.z, w.a, w.slope, Tensor());
    affine<scalar_t>(th.b2, w.a, th.W2.t(), w.o);
    const int64_t* labels = kind == CROSS_ENTROPY ? w.yb.template data_ptr<int64_t>() : nullptr;
    const scalar_t* targets = kind == CROSS_ENTROPY ? nullptr : w.yb.template data_ptr<scalar_t>();
    const double loss = loss_and_delta<scalar_t>(kind, w.o.template data_ptr<scalar_t>(), targets,
                                                 labels, s.B, s.B, s.O,
                                                 w.e.template data_ptr<scalar_t>());
    matmul<scalar_t>(w.e.t(), w.a, gb.W2);
    column_sums<scalar_t>(w.e.template data_ptr<scalar_t>(), s.B, s.O, gb.b2.data_ptr<scalar_t>());
    matmul<scalar_t>(w.e, th.W2, w.p);
    for (int64_t i = 0; i < n; ++i) pp[i] *= sp[i];  // δz = (e W2) ⊙ σ'
    matmul<scalar_t>(w.p.t(), w.xb, gb.W1);
    column_sums<scalar_t>(pp, s.B, s.H, gb.b1.data_ptr<scalar_t>());
    return loss / (kind == CROSS_ENTROPY ? s.B : s.B * s.O);
  }
  // A Hamiltonian network H(q, p): with S = σ'(z) ⊙ w2, ∇H = S W1, field f = (∇_p H, −∇_q H),
  // e = dL/df, u = dL/d∇H, V = u W1ᵀ: ∂L/∂W1 = Sᵀu + Δᵀx with Δ = V ⊙ w2 ⊙ σ''(z),
  // ∂L/∂b1 = Σ Δ, ∂L/∂w2 = Σ V ⊙ σ'(z), ∂L/∂b2 = 0.
  auto* cp = w.curvature.template data_ptr<scalar_t>();
  act(w.z, w.a, w.slope, w.curvature);
  const auto* w2 = th.W2.data_ptr<scalar_t>();
  for (int64_t b = 0; b < s.B; ++b)  // a becomes S
    for (int64_t h = 0; h < s.H; ++h) ap[b * s.H + h] = sp[b * s.H + h] * w2[h];
  matmul<scalar_t>(w.a, th.W1, w.field);
  const int64_t d = s.D / 2;
  const scalar_t factor = scalar_t(2) / (s.B * s.D);
  const auto* g = w.field.template data_ptr<scalar_t>();
  const auto* target = w.yb.template data_ptr<scalar_t>();
  auto *ep = w.e.template data_ptr<scalar_t>(), *up = w.u.template data_ptr<scalar_t>();
  double loss = 0;
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t i = 0; i < s.D; ++i) {
      const scalar_t f = i < d ? g[b * s.D + d + i] : -g[b * s.D + i - d];
      const scalar_t diff = f - target[b * s.D + i];
      loss += static_cast<double>(diff) * diff;
      ep[b * s.D + i] = factor * diff;
    }
    for (int64_t i = 0; i < d; ++i) {
      up[b * s.D + i] = -ep[b * s.D + d + i];
      up[b * s.D + d + i] = ep[b * s.D + i];
    }
  }
  matmul<scalar_t>(w.u, th.W1.t(), w.p);  // V
  matmul<scalar_t>(w.a.t(), w.u, gb.W1);
  auto* qp = w.z.template data_ptr<scalar_t>();  // z is no longer needed
  for (int64_t i = 0; i < n; ++i) qp[i] = pp[i] * sp[i];
  column_sums<scalar_t>(qp, s.B, s.H, gb.W2.data_ptr<scalar_t>());
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) qp[b * s.H + h] = pp[b * s.H + h] * w2[h] * cp[b * s.H + h];
  matmul<scalar_t>(w.z.t(), w.xb, gb.W1, true);
  column_sums<scalar_t>(qp, s.B, s.H, gb.b1.data_ptr<scalar_t>());
  gb.b2.zero_();
  return loss / (s.B * s.D);
}

struct Optimizer {
  int64_t kind, steps;  // steps taken before this epoch
  double momentum, beta1, beta2, epsilon;
};

// One update of θ (P,) from its gradient g at learning rate lr, the `step`-th (1-based).
template <typename scalar_t>
void update(const Optimizer& opt, int64_t step, double lr, int64_t P, const scalar_t* g,
            scalar_t* theta, scalar_t* first, scalar_t* second) {
  if (opt.kind == SGD) {
    const scalar_t mu = opt.momentum, rate = lr;
    for (int64_t i = 0; i < P; ++i) {
      first[i] = first[i] * mu + g[i];
      theta[i] -= rate * first[i];
    }
    return;
  }
  const scalar_t b1 = opt.beta1, b2 = opt.beta2, eps = opt.epsilon;
  const scalar_t one_minus_b1 = 1 - opt.beta1, one_minus_b2 = 1 - opt.beta2;
  const scalar_t correction2 = 1 - std::pow(opt.beta2, step);
  const scalar_t rate = -lr / (1 - std::pow(opt.beta1, step));
  for (int64_t i = 0; i < P; ++i) {
    first[i] = first[i] * b1 + one_minus_b1 * g[i];
    second[i] = second[i] * b2 + one_minus_b2 * g[i] * g[i];
    theta[i] += rate * (first[i] / (std::sqrt(second[i] / correction2) + eps));
  }
}

template <typename scalar_t>
Activation<scalar_t> activation_of(int64_t kind, const Tensor& coef, const Tensor& ends,
                                   bool linear, double origin, double step) {
  if (kind != TABLE) return {kind, 1, 0, true, nullptr, nullptr, 0, 1};
  return {kind, coef.size(0), coef.size(1), linear, coef.data_ptr<scalar_t>(),
          ends.data_ptr<scalar_t>(), static_cast<scalar_t>(origin), static_cast<scalar_t>(step)};
}

Shape shape_of(const Tensor& x, const Tensor& theta, int64_t hidden, int64_t batch) {
  Shape s{};
  s.D = x.size(1), s.H = hidden, s.B = batch, s.P = theta.size(1);
  s.O = (s.P - s.H * s.D - s.H) / (s.H + 1);
  return s;
}

void check(const Tensor& x, const Tensor& y, const Tensor& theta, const Tensor& coef,
           const Tensor& ends, int64_t activation, int64_t kind) {
  TORCH_CHECK(kind == CROSS_ENTROPY || kind == MSE || kind == HAMILTONIAN, "unknown loss kind ",
              kind);
  TORCH_CHECK(activation >= TABLE && activation <= ZERO, "unknown activation kind ", activation);
  TORCH_CHECK(x.is_contiguous() && y.is_contiguous() && theta.is_contiguous() &&
                  coef.is_contiguous() && ends.is_contiguous(),
              "frozen training kernel: inputs must be contiguous");
  TORCH_CHECK(activation != TABLE || (coef.scalar_type() == x.scalar_type() &&
                                      ends.scalar_type() == x.scalar_type()),
              "frozen training kernel: tables must have the inputs' dtype");
}

// One epoch: for every running seed s, steps k = 0 … K−1 on rows order[s][k] (B,) at
// learning rates lrs[k], updating θ, first and second moments (S, P) in place. Returns the
// mean batch losses (S, K) before each step (NaN for seeds not running).
Tensor train_epoch(Tensor x, Tensor y, Tensor order, Tensor theta, Tensor first, Tensor second,
                   Tensor lrs, Tensor running, int64_t steps, int64_t optimizer, double momentum,
                   double beta1, double beta2, double epsilon, int64_t activation, Tensor coef,
                   Tensor ends, bool linear, double origin, double step, int64_t hidden,
                   int64_t kind) {
  check(x, y, theta, coef, ends, activation, kind);
  TORCH_CHECK(order.is_contiguous() && order.scalar_type() == at::kLong && first.is_contiguous() &&
                  second.is_contiguous(), "frozen training kernel: bad batch order or moments");
  const int64_t S = order.size(0), K = order.size(1);
  const Shape s = shape_of(x, theta, hidden, order.size(2));
  const Optimizer opt{optimizer, steps, momentum, beta1, beta2, epsilon};
  const Tensor rates = lrs.to(at::kDouble).contiguous();
  const auto* rate = rates.data_ptr<double>();
  const Tensor active = running.to(at::kBool).contiguous();
  const auto* is_running = active.data_ptr<bool>();
  Tensor losses = at::full({S, K}, std::numeric_limits<double>::quiet_NaN(),
                           x.options().dtype(at::kDouble));
  parallel_items(S, [&](int64_t seed) {
    if (!is_running[seed]) return;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "frozen_epoch", [&] {
      const auto act = activation_of<scalar_t>(activation, coef, ends, linear, origin, step);
      Workspace<scalar_t> w(x, y, s, kind);
      const Blocks th(theta[seed], s);
      auto* tp = theta[seed].data_ptr<scalar_t>();
      auto *fp = first[seed].data_ptr<scalar_t>(), *sp = second[seed].data_ptr<scalar_t>();
      const auto* gp = w.grad.template data_ptr<scalar_t>();
      auto* out = losses[seed].data_ptr<double>();
      for (int64_t k = 0; k < K; ++k) {
        const int64_t* index = order[seed][k].data_ptr<int64_t>();
        out[k] = static_cast<scalar_t>(loss_and_gradient<scalar_t>(x, y, index, kind, act, s, th, w));
        update<scalar_t>(opt, opt.steps + k + 1, rate[k], s.P, gp, tp, fp, sp);
      }
    });
  });
  return losses;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("train_epoch", &train_epoch, "one epoch of frozen training of every running seed");
}
