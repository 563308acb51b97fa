// The inner loop of meta-learning (Algorithm 1) for a one-hidden-layer network whose
// hidden units use spline-tabulated activations, with its exact adjoint.
//
// Forward: from θ0, K RMSprop steps on mini-batches (square average starting at 1), the
// gradient by explicit backpropagation. Backward: given dJ/dL_k for every inner loss L_k,
// the gradient of J with respect to the spline coefficients, through every inner update
// (the unrolled meta-gradient), by reverse-mode differentiation of the whole trajectory
// written out by hand: each step is a Hessian-vector product and a mixed second
// derivative of the loss, so no autograd graph is built. Hamiltonian networks
// (HAMILTONIAN): the first-order meta-gradient only (its backward assumes a one-step run).
//
// Replicates (a leading axis R) are independent and spread over PyTorch's threads; each
// runs on one thread with the same operations whatever R is, so a replicate's numbers do
// not depend on the others.
//
// Parameters are one flat vector per replicate: W1 (H, D), b1 (H), W2 (O, H), b2 (O).
// Spline table of replicate r: coef[r] (T, I, 4), cubic c0 + c1 t + c2 t² + c3 t³ on the
// cell [j h, (j + 1) h) of the absolute grid, j = first[r] + row; t = x/h − j.
#include "dense.h"

#include <limits>

namespace {

constexpr int64_t CHUNKS = 2;  // fixed chunks of every mini-batch (parallel within a replicate)

// Replicate r's spline table.
template <typename scalar_t>
struct Table {
  const scalar_t* coef;
  int64_t first, intervals, stride;
  double inverse_spacing;

  // Whether x lies in a cell.
  inline bool inside(scalar_t x) const {
    const double p = static_cast<double>(x) * inverse_spacing - first;
    return (p >= 0) & (p < intervals);
  }
};

template <typename scalar_t>
Table<scalar_t> table_of(const Tensor& coef, const Tensor& first, const Tensor& intervals,
                         double spacing, int64_t r) {
  return {coef[r].data_ptr<scalar_t>(), first[r].item<int64_t>(), intervals[r].item<int64_t>(),
          coef.size(2), 1.0 / spacing};
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

// The activations of n rows of pre-activations z (n, H), hidden units in T equal blocks
// of types: a = σ(z) + noise ν (H), slope = σ'(z) and, with `second`, curvature = σ''(z),
// each unit's row in coef (type, cell) and local coordinate t. z outside the table or NaN
// is evaluated on the nearest end cell; returns how many were outside. Written without
// branches so that the inner loop vectorises (cells are 32-bit: their conversion from
// double vectorises, and a table has < 2³¹ rows).
template <bool second, typename scalar_t>
int64_t evaluate_splines(const Table<scalar_t>& table, const Shape& s, int64_t n,
                         const scalar_t* z, const scalar_t* noise, scalar_t* a, scalar_t* slope,
                         scalar_t* curvature, int32_t* rows, scalar_t* ts) {
  const int64_t per_type = s.H / s.T;
  const double inverse = table.inverse_spacing, first = table.first;
  const double cells = table.intervals, last = table.intervals - 1;
  const scalar_t h1 = table.inverse_spacing, h2 = h1 * h1;
  int64_t outside = 0;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t type = 0; type < s.T; ++type) {
      const int64_t offset = b * s.H + type * per_type;
      const int32_t row0 = type * table.stride;
      const scalar_t* coef = table.coef + 4 * row0;
#pragma GCC ivdep
      for (int64_t j = 0; j < per_type; ++j) {
        const int64_t i = offset + j;
        const double p = z[i] * inverse - first;
        const int32_t cell = std::min(p >= 0 ? p : 0.0, last);
        const scalar_t t = p - cell;
        const scalar_t c0 = coef[4 * cell], c1 = coef[4 * cell + 1];
        const scalar_t c2 = coef[4 * cell + 2], c3 = coef[4 * cell + 3];
        outside += (p >= 0) & (p < cells) ? 0 : 1;
        a[i] = c0 + t * (c1 + t * (c2 + t * c3)) + noise[type * per_type + j];
        slope[i] = (c1 + t * (2 * c2 + 3 * t * c3)) * h1;
        if constexpr (second) {
          curvature[i] = (2 * c2 + 6 * t * c3) * h2;
          rows[i] = row0 + cell;
          ts[i] = t;
        }
      }
    }
  }
  return outside;
}

// One chunk of the batch: rows [begin, begin + n) of every mini-batch, with its buffers.
// Sums over the batch add the chunks' partial sums in chunk order, so the numbers do not
// depend on whether the chunks run one after another or on two threads.
template <typename scalar_t>
struct Chunk {
  int64_t begin, n;
  Tensor xb, yb, z, a, slope, curvature, o, e, p, dz_bar, p_bar, s_bar, e_bar, o_bar, a_bar;
  Tensor field, u;  // Hamiltonian networks
  Tensor partial;  // (P,): this chunk's share of g_k (forward) or of ∂F/∂θ (backward)
  Tensor grad_coef;  // (T·I, 4) double, backward only
  std::vector<int32_t> rows;
  std::vector<scalar_t> ts;
  double loss = 0, low = std::numeric_limits<double>::infinity(), high = -low;
  bool finite = true;

  Chunk(const Inputs& in, const Shape& s, int64_t c, bool backward)
      : begin(c * s.B / CHUNKS), n((c + 1) * s.B / CHUNKS - c * s.B / CHUNKS) {
    const auto opts = in.x.options();
    auto rows_of = [&](int64_t width) { return at::empty({n, width}, opts); };
    xb = rows_of(s.D), z = rows_of(s.H), a = rows_of(s.H), slope = rows_of(s.H);
    o = rows_of(s.O), e = rows_of(s.O), p = rows_of(s.H), partial = at::empty({s.P}, opts);
    yb = in.kind == CROSS_ENTROPY ? at::empty({n}, in.y.options()) : rows_of(in.y.size(1));
    if (in.kind == HAMILTONIAN) {  // e, u: dL/d(field) and dL/d(∇H); p: V = u W1
      curvature = rows_of(s.H), field = rows_of(s.D), e = rows_of(s.D), u = rows_of(s.D);
      s_bar = rows_of(s.H);
      rows.resize(n * s.H);
      ts.resize(n * s.H);
    }
    if (backward) {
      curvature = rows_of(s.H), dz_bar = rows_of(s.H), p_bar = rows_of(s.H);
      s_bar = rows_of(s.H), e_bar = rows_of(s.O), o_bar = rows_of(s.O), a_bar = rows_of(s.H);
      grad_coef = at::zeros({s.T * s.I, 4}, opts.dtype(at::kDouble));
      rows.resize(n * s.H);
      ts.resize(n * s.H);
    }
  }

  void gather(const Inputs& in, const int64_t* index) {
    gather_rows<scalar_t>(in.x, index + begin, n, xb);
    if (in.kind == CROSS_ENTROPY) gather_rows<int64_t>(in.y, index + begin, n, yb);
    else gather_rows<scalar_t>(in.y, index + begin, n, yb);
  }

  // Widens [low, high] to the values of z (m) outside the table; clears `finite` for NaN
  // or infinity.
  void note_outside(const Table<scalar_t>& table, const scalar_t* z, int64_t m) {
    for (int64_t i = 0; i < m; ++i) {
      if (table.inside(z[i])) continue;
      const double zi = z[i];
      finite = finite && std::isfinite(zi);
      low = std::min(low, zi);
      high = std::max(high, zi);
    }
  }

  const int64_t* labels(const Inputs& in) const {
    return in.kind == CROSS_ENTROPY ? yb.data_ptr<int64_t>() : nullptr;
  }

  const scalar_t* targets(const Inputs& in) const {
    return in.kind == CROSS_ENTROPY ? nullptr : yb.data_ptr<scalar_t>();
  }
};

template <typename scalar_t>
std::vector<Chunk<scalar_t>> chunks_of(const Inputs& in, const Shape& s, bool backward) {
  std::vector<Chunk<scalar_t>> chunks;
  for (int64_t c = 0; c < CHUNKS; ++c) chunks.emplace_back(in, s, c, backward);
  return chunks;
}

// Forward of one chunk at inner step k from parameters th: the chunk's loss sum, its
// share of the gradient (in chunk.partial) and the pre-activations met outside the table.
template <typename scalar_t>
void forward_chunk(const Inputs& in, const Shape& s, const Table<scalar_t>& table, int64_t r,
                   int64_t k, const Blocks& th, Chunk<scalar_t>& ch, Tensor z) {
  ch.gather(in, in.batches[r][k].data_ptr<int64_t>());
  affine<scalar_t>(th.b1, ch.xb, th.W1.t(), z);
  const auto* nu = in.noise[r][k].data_ptr<scalar_t>();
  const auto* zp = z.data_ptr<scalar_t>();
  auto *ap = ch.a.template data_ptr<scalar_t>(), *sp = ch.slope.template data_ptr<scalar_t>();
  const int64_t outside = evaluate_splines<false, scalar_t>(table, s, ch.n, zp, nu, ap, sp, nullptr,
                                                           nullptr, nullptr);
  if (outside) ch.note_outside(table, zp, ch.n * s.H);
  affine<scalar_t>(th.b2, ch.a, th.W2.t(), ch.o);
  ch.loss += loss_and_delta<scalar_t>(in.kind, ch.o.template data_ptr<scalar_t>(),
                                      ch.targets(in), ch.labels(in), ch.n, s.B, s.O,
                                      ch.e.template data_ptr<scalar_t>());
  Blocks gb(ch.partial, s);
  matmul<scalar_t>(ch.e.t(), ch.a, gb.W2);
  matmul<scalar_t>(ch.e, th.W2, ch.p);
  column_sums<scalar_t>(ch.e.template data_ptr<scalar_t>(), ch.n, s.O, gb.b2.data_ptr<scalar_t>());
  auto* pp = ch.p.template data_ptr<scalar_t>();  // becomes δz = (e W2) ⊙ σ'
  for (int64_t i = 0; i < ch.n * s.H; ++i) pp[i] *= sp[i];
  matmul<scalar_t>(ch.p.t(), ch.xb, gb.W1);
  column_sums<scalar_t>(pp, ch.n, s.H, gb.b1.data_ptr<scalar_t>());
}

// The gradient of a Hamiltonian network's loss for one chunk (see forward_chunk): with
// S = σ'(z) ⊙ w2, ∇H = S W1, field f = (∇_p H, −∇_q H), e = dL/df, u = dL/d∇H and
// V = u W1ᵀ: ∂L/∂W1 = Sᵀu + Δᵀx with Δ = V ⊙ w2 ⊙ σ''(z), ∂L/∂b1 = Σ Δ, ∂L/∂w2 = Σ V ⊙ σ'(z);
// H's bias b2 has none. Leaves V in ch.p, and σ''(z), the cells and local coordinates.
template <typename scalar_t>
void hamiltonian_chunk(const Inputs& in, const Shape& s, const Table<scalar_t>& table,
                       int64_t r, int64_t k, const Blocks& th, Chunk<scalar_t>& ch, Tensor z) {
  ch.gather(in, in.batches[r][k].data_ptr<int64_t>());
  affine<scalar_t>(th.b1, ch.xb, th.W1.t(), z);
  const auto* zp = z.data_ptr<scalar_t>();
  auto *ap = ch.a.template data_ptr<scalar_t>(), *sp = ch.slope.template data_ptr<scalar_t>();
  auto* cp = ch.curvature.template data_ptr<scalar_t>();
  const int64_t outside = evaluate_splines<true, scalar_t>(
      table, s, ch.n, zp, in.noise[r][k].data_ptr<scalar_t>(), ap, sp, cp, ch.rows.data(),
      ch.ts.data());
  if (outside) ch.note_outside(table, zp, ch.n * s.H);
  const auto* w2 = th.W2.data_ptr<scalar_t>();
  for (int64_t b = 0; b < ch.n; ++b)  // a becomes S = σ'(z) ⊙ w2 (σ itself is not needed)
    for (int64_t h = 0; h < s.H; ++h) ap[b * s.H + h] = sp[b * s.H + h] * w2[h];
  matmul<scalar_t>(ch.a, th.W1, ch.field);  // ∇H (n, D)
  const int64_t d = s.D / 2;
  const scalar_t factor = scalar_t(2) / (s.B * s.D);
  const auto* g = ch.field.template data_ptr<scalar_t>();
  const auto* y = ch.yb.template data_ptr<scalar_t>();
  auto *ep = ch.e.template data_ptr<scalar_t>(), *up = ch.u.template data_ptr<scalar_t>();
  for (int64_t b = 0; b < ch.n; ++b) {
    for (int64_t i = 0; i < s.D; ++i) {
      const scalar_t f = i < d ? g[b * s.D + d + i] : -g[b * s.D + i - d];
      const scalar_t diff = f - y[b * s.D + i];
      ch.loss += static_cast<double>(diff) * diff;
      ep[b * s.D + i] = factor * diff;
    }
    for (int64_t i = 0; i < d; ++i) {  // u = Jᵀe: ∂L/∂(∇_q H) = −e_p, ∂L/∂(∇_p H) = e_q
      up[b * s.D + i] = -ep[b * s.D + d + i];
      up[b * s.D + d + i] = ep[b * s.D + i];
    }
  }
  matmul<scalar_t>(ch.u, th.W1.t(), ch.p);  // V (n, H)
  Blocks gb(ch.partial, s);
  matmul<scalar_t>(ch.a.t(), ch.u, gb.W1);
  auto *vp = ch.p.template data_ptr<scalar_t>(), *qp = ch.s_bar.template data_ptr<scalar_t>();
  for (int64_t i = 0; i < ch.n * s.H; ++i) qp[i] = vp[i] * sp[i];
  column_sums<scalar_t>(qp, ch.n, s.H, gb.W2.data_ptr<scalar_t>());
  for (int64_t b = 0; b < ch.n; ++b)  // Δ, in s_bar
    for (int64_t h = 0; h < s.H; ++h) qp[b * s.H + h] = vp[b * s.H + h] * w2[h] * cp[b * s.H + h];
  matmul<scalar_t>(ch.s_bar.t(), ch.xb, gb.W1, true);
  column_sums<scalar_t>(qp, ch.n, s.H, gb.b1.data_ptr<scalar_t>());
  gb.b2.zero_();
}

// Forward of replicate r. Writes losses (K,), the final θ (P,), the range of the
// pre-activations met outside the table; with `keep`, also θ_k, g_k (K, P), the square
// average after step k (K, P) and the pre-activations z_k (K, B, H) for the backward pass.
template <typename scalar_t>
void forward_replicate(const Inputs& in, const Shape& s, int64_t r, Tensor losses, Tensor theta,
                       Tensor range, bool keep, Tensor thetas, Tensor grads, Tensor squares,
                       Tensor zs) {
  auto chunks = chunks_of<scalar_t>(in, s, false);
  Tensor g = at::empty({s.P}, in.x.options()), square = at::ones({s.P}, in.x.options());
  theta.copy_(in.theta0[r]);
  const Blocks th(theta, s);
  const Table<scalar_t> table = table_of<scalar_t>(in.coef, in.first, in.intervals, in.spacing, r);
  const double normaliser = in.kind == CROSS_ENTROPY ? s.B : s.B * in.y.size(1);
  auto* loss_out = losses.data_ptr<double>();
  for (int64_t k = 0; k < s.K; ++k) {
    for (auto& ch : chunks) ch.loss = 0;
    parallel_items(CHUNKS, [&](int64_t c) {
      auto& ch = chunks[c];
      const Tensor z = keep ? zs[k].narrow(0, ch.begin, ch.n) : ch.z;
      if (in.kind == HAMILTONIAN) hamiltonian_chunk<scalar_t>(in, s, table, r, k, th, ch, z);
      else forward_chunk<scalar_t>(in, s, table, r, k, th, ch, z);
    });
    g.copy_(chunks[0].partial);
    loss_out[k] = chunks[0].loss;
    for (int64_t c = 1; c < CHUNKS; ++c) {
      g.add_(chunks[c].partial);
      loss_out[k] += chunks[c].loss;
    }
    loss_out[k] /= normaliser;
    if (keep) {
      thetas[k].copy_(theta);
      grads[k].copy_(g);
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
  double low = chunks[0].low, high = chunks[0].high;
  bool finite = true;
  for (const auto& ch : chunks) {
    low = std::min(low, ch.low);
    high = std::max(high, ch.high);
    finite = finite && ch.finite;
  }
  auto* rp = range.data_ptr<double>();
  rp[0] = finite ? low : std::numeric_limits<double>::quiet_NaN();
  rp[1] = finite ? high : std::numeric_limits<double>::quiet_NaN();
}

// Backward of one chunk at inner step k: its share of ∂F/∂θ (in chunk.partial) and of
// ∂F/∂coef (added to chunk.grad_coef), F = <g_k, ḡ> + w_k L_k, ḡ = dir.
template <typename scalar_t>
void backward_chunk(const Inputs& in, const Shape& s, const Table<scalar_t>& table, int64_t r,
                    int64_t k, const Blocks& th, const Blocks& dir, scalar_t wk,
                    const Tensor& z, Chunk<scalar_t>& ch) {
  ch.gather(in, in.batches[r][k].data_ptr<int64_t>());
  const scalar_t inverse_spacing = 1 / in.spacing;
  const auto* zp = z.data_ptr<scalar_t>();
  const auto* nu = in.noise[r][k].data_ptr<scalar_t>();
  auto *ap = ch.a.template data_ptr<scalar_t>(), *sp = ch.slope.template data_ptr<scalar_t>();
  auto* cp = ch.curvature.template data_ptr<scalar_t>();
  evaluate_splines<true, scalar_t>(table, s, ch.n, zp, nu, ap, sp, cp, ch.rows.data(), ch.ts.data());
  affine<scalar_t>(th.b2, ch.a, th.W2.t(), ch.o);
  const auto* yl = ch.labels(in);
  loss_and_delta<scalar_t>(in.kind, ch.o.template data_ptr<scalar_t>(), ch.targets(in), yl,
                           ch.n, s.B, s.O, ch.e.template data_ptr<scalar_t>());
  matmul<scalar_t>(ch.e, th.W2, ch.p);
  affine<scalar_t>(dir.b1, ch.xb, dir.W1.t(), ch.dz_bar);
  {
    const auto* dp = ch.dz_bar.template data_ptr<scalar_t>();
    const auto* pp = ch.p.template data_ptr<scalar_t>();
    auto* pbp = ch.p_bar.template data_ptr<scalar_t>();
    auto* sbp = ch.s_bar.template data_ptr<scalar_t>();
    for (int64_t i = 0; i < ch.n * s.H; ++i) {
      pbp[i] = dp[i] * sp[i];
      sbp[i] = dp[i] * pp[i];
    }
  }
  Blocks tb(ch.partial, s);
  matmul<scalar_t>(ch.p_bar, th.W2.t(), ch.e_bar);
  matmul<scalar_t>(ch.a, dir.W2.t(), ch.e_bar, true);
  matmul<scalar_t>(ch.e.t(), ch.p_bar, tb.W2);
  matmul<scalar_t>(ch.e, dir.W2, ch.a_bar);
  {
    // ē += ḡ_b2, then ō = ∇²L(o) ē + w_k e.
    const auto* ep = ch.e.template data_ptr<scalar_t>();
    auto* ebp = ch.e_bar.template data_ptr<scalar_t>();
    const auto* v2 = dir.b2.data_ptr<scalar_t>();
    auto* obp = ch.o_bar.template data_ptr<scalar_t>();
    for (int64_t b = 0; b < ch.n; ++b) {
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
    column_sums<scalar_t>(obp, ch.n, s.O, tb.b2.data_ptr<scalar_t>());
  }
  matmul<scalar_t>(ch.o_bar, th.W2, ch.a_bar, true);
  matmul<scalar_t>(ch.o_bar.t(), ch.a, tb.W2, true);
  auto* abp = ch.a_bar.template data_ptr<scalar_t>();  // becomes z̄
  const auto* sbp = ch.s_bar.template data_ptr<scalar_t>();
  auto* gc = ch.grad_coef.template data_ptr<double>();
  for (int64_t i = 0; i < ch.n * s.H; ++i) {
    const scalar_t t = ch.ts[i], value_bar = abp[i], slope_bar = sbp[i];
    double* g = gc + 4 * ch.rows[i];
    g[0] += value_bar;
    const scalar_t slope_term = slope_bar * inverse_spacing;
    g[1] += value_bar * t + slope_term;
    g[2] += (value_bar * t + 2 * slope_term) * t;
    g[3] += (value_bar * t + 3 * slope_term) * t * t;
    abp[i] = value_bar * sp[i] + slope_bar * cp[i];
  }
  matmul<scalar_t>(ch.a_bar.t(), ch.xb, tb.W1);
  column_sums<scalar_t>(abp, ch.n, s.H, tb.b1.data_ptr<scalar_t>());
}

// Backward of a one-step run of a Hamiltonian network: dJ/dcoef = w_0 ∂L_0/∂coef at θ_0.
// L depends on the table only through σ'(z) in ∇H: ∂L/∂σ'(z) = V ⊙ w2.
template <typename scalar_t>
void hamiltonian_backward(const Inputs& in, const Shape& s, int64_t r, scalar_t weight,
                          const Tensor& theta, Tensor grad_coef) {
  TORCH_CHECK(s.K == 1, "Hamiltonian networks: only the first-order meta-gradient (a one-step "
              "run) is compiled, not ", s.K, " steps");
  auto chunks = chunks_of<scalar_t>(in, s, false);
  const Blocks th(theta, s);
  const Table<scalar_t> table = table_of<scalar_t>(in.coef, in.first, in.intervals, in.spacing, r);
  const scalar_t inverse_spacing = 1 / in.spacing;
  const auto* w2 = th.W2.data_ptr<scalar_t>();
  std::vector<Tensor> partial;
  for (int64_t c = 0; c < CHUNKS; ++c)
    partial.push_back(at::zeros({s.T * s.I, 4}, in.x.options().dtype(at::kDouble)));
  parallel_items(CHUNKS, [&](int64_t c) {
    auto& ch = chunks[c];
    hamiltonian_chunk<scalar_t>(in, s, table, r, 0, th, ch, ch.z);
    const auto* vp = ch.p.template data_ptr<scalar_t>();
    auto* gc = partial[c].data_ptr<double>();
    for (int64_t b = 0; b < ch.n; ++b) {
      for (int64_t h = 0; h < s.H; ++h) {
        const int64_t i = b * s.H + h;
        const scalar_t t = ch.ts[i], q = weight * vp[i] * w2[h] * inverse_spacing;
        double* g = gc + 4 * ch.rows[i];
        g[1] += q;
        g[2] += 2 * t * q;
        g[3] += 3 * t * t * q;
      }
    }
  });
  grad_coef.copy_(partial[0]);
  for (int64_t c = 1; c < CHUNKS; ++c) grad_coef.add_(partial[c]);
}

// Backward of replicate r: dJ/dcoef (T·I, 4) in double, given w_k = dJ/dL_k (K,).
template <typename scalar_t>
void backward_replicate(const Inputs& in, const Shape& s, int64_t r, const Tensor& weights,
                        const Tensor& thetas, const Tensor& grads, const Tensor& squares,
                        const Tensor& zs, Tensor grad_coef) {
  auto chunks = chunks_of<scalar_t>(in, s, true);
  const auto opts = in.x.options();
  Tensor theta_bar = at::zeros({s.P}, opts), square_bar = at::zeros({s.P}, opts);
  Tensor direction = at::empty({s.P}, opts);
  const Blocks dir(direction, s);
  const Table<scalar_t> table = table_of<scalar_t>(in.coef, in.first, in.intervals, in.spacing, r);
  const scalar_t decay = in.decay, lr = in.lr;
  const auto* w = weights.data_ptr<scalar_t>();
  for (int64_t k = s.K - 1; k >= 0; --k) {
    // Adjoint of the RMSprop update θ_{k+1} = θ_k − lr g_k / (√v_{k+1} + ε): the direction
    // ḡ in which the gradient g_k is differentiated, and the square average's adjoint.
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
    const Blocks th(thetas[k], s);
    parallel_items(CHUNKS, [&](int64_t c) {
      auto& ch = chunks[c];
      backward_chunk<scalar_t>(in, s, table, r, k, th, dir, w[k],
                               zs[k].narrow(0, ch.begin, ch.n), ch);
    });
    for (const auto& ch : chunks) theta_bar.add_(ch.partial);
  }
  grad_coef.copy_(chunks[0].grad_coef);
  for (int64_t c = 1; c < CHUNKS; ++c) grad_coef.add_(chunks[c].grad_coef);
}

Inputs inputs(Tensor x, Tensor y, Tensor batches, Tensor noise, Tensor theta0, Tensor coef,
              Tensor first, Tensor intervals, double spacing, double lr, double decay,
              int64_t kind) {
  TORCH_CHECK(kind == CROSS_ENTROPY || kind == MSE || kind == HAMILTONIAN, "unknown loss kind ",
              kind);
  TORCH_CHECK(x.is_contiguous() && y.is_contiguous() && batches.is_contiguous() &&
                  noise.is_contiguous() && theta0.is_contiguous() && coef.is_contiguous(),
              "inner loop kernel: inputs must be contiguous");
  return {x, y, batches, noise, theta0, coef, first, intervals, spacing, lr, decay, kind};
}

// losses (R, K) double, final θ (R, P), range (R, 2) of the pre-activations met outside
// the table (+inf, −inf if none; NaN if one was not finite; the results of a replicate
// that met any are not valid), and the
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
  parallel_items(R, [&](int64_t r) {
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
  parallel_items(R, [&](int64_t r) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "inner_backward", [&] {
      if (kind == HAMILTONIAN)
        hamiltonian_backward<scalar_t>(in, s, r, w[r][0].item<scalar_t>(), thetas[r][0],
                                       grad_coef[r]);
      else
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
