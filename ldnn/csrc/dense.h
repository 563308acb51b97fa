// Dense building blocks of the compiled kernels (ldnn/csrc/*.cpp): BLAS matrix products
// on one thread per item, row gathering, the losses and their output gradients, and the
// flat parameter vector of a one-hidden-layer network.
#pragma once

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

// MKL's per-thread thread count, where PyTorch links MKL: a replicate's matrix products
// always run on one thread, so their rounding does not depend on how many run at once.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

// BLAS matrix products, where PyTorch exports them (called directly: the products here are
// small, so PyTorch's per-call dispatch would cost as much as the arithmetic).
extern "C" void sgemm_(const char*, const char*, const int*, const int*, const int*,
                       const float*, const float*, const int*, const float*, const int*,
                       const float*, float*, const int*) __attribute__((weak));
extern "C" void dgemm_(const char*, const char*, const int*, const int*, const int*,
                       const double*, const double*, const int*, const double*, const int*,
                       const double*, double*, const int*) __attribute__((weak));

namespace {

using at::Tensor;

// Runs f(i) for i in [0, n) on PyTorch's threads where none is busy (inside a parallel
// region, one after another), each with single-threaded matrix products.
template <typename F>
void parallel_items(int64_t n, const F& f) {
  auto body = [&](int64_t begin, int64_t end) {
    const int previous = MKL_Set_Num_Threads_Local ? MKL_Set_Num_Threads_Local(1) : 0;
    for (int64_t i = begin; i < end; ++i) f(i);
    if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(previous);
  };
  if (n == 1 || at::in_parallel_region()) body(0, n);
  else at::parallel_for(0, n, 1, body);
}

template <typename scalar_t>
auto blas_gemm();
template <>
auto blas_gemm<float>() { return sgemm_; }
template <>
auto blas_gemm<double>() { return dgemm_; }

// A row-major matrix or a transposed view of one, as BLAS (column-major) sees its
// transpose: operation and leading dimension; false if the strides are neither.
bool blas_layout(const Tensor& m, char& op, int& ld) {
  if (m.stride(1) == 1 && m.stride(0) >= std::max<int64_t>(1, m.size(1))) {
    op = 'N', ld = m.stride(0);
    return true;
  }
  if (m.stride(0) == 1 && m.stride(1) >= std::max<int64_t>(1, m.size(0))) {
    op = 'T', ld = m.stride(1);
    return true;
  }
  return false;
}

constexpr int64_t NARROW = 8;  // products with at most this many output columns skip BLAS

// out (m, n) = a (m, k) · b (k, n) (or +=) for n ≤ NARROW, where BLAS is slow (3 GFLOP/s at
// n = 4): with a's rows contiguous, dot products of a's rows and b's columns in NARROW
// interleaved partial sums (which vectorise); with a a transposed view (columns
// contiguous), outᵀ accumulated row by row over k.
template <typename scalar_t>
void narrow_matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const int64_t sa0 = a.stride(0), sa1 = a.stride(1), sb0 = b.stride(0), sb1 = b.stride(1);
  const auto *ap = a.data_ptr<scalar_t>(), *bp = b.data_ptr<scalar_t>();
  auto* op = out.data_ptr<scalar_t>();
  const int64_t so = out.stride(0);
  std::vector<scalar_t> buffer(n * std::max(k, m));
  if (sa1 == 1) {
    scalar_t* bt = buffer.data();  // bᵀ (n, k)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t j = 0; j < n; ++j) bt[j * k + p] = bp[p * sb0 + j * sb1];
    for (int64_t i = 0; i < m; ++i) {
      const scalar_t* row = ap + i * sa0;
      for (int64_t j = 0; j < n; ++j) {
        const scalar_t* column = bt + j * k;
        scalar_t partial[NARROW] = {};
        int64_t p = 0;
        for (; p + NARROW <= k; p += NARROW)
          for (int64_t l = 0; l < NARROW; ++l) partial[l] += row[p + l] * column[p + l];
        scalar_t total = 0;
        for (int64_t l = 0; l < NARROW; ++l) total += partial[l];
        for (; p < k; ++p) total += row[p] * column[p];
        op[i * so + j] = accumulate ? op[i * so + j] + total : total;
      }
    }
    return;
  }
  scalar_t* outt = buffer.data();  // outᵀ (n, m); a[i, p] = ap[p * sa1 + i] (sa0 = 1)
  std::fill(outt, outt + n * m, scalar_t(0));
  for (int64_t p = 0; p < k; ++p) {
    const scalar_t* column = ap + p * sa1;
    for (int64_t j = 0; j < n; ++j) {
      const scalar_t weight = bp[p * sb0 + j * sb1];
      scalar_t* target = outt + j * m;
#pragma GCC ivdep
      for (int64_t i = 0; i < m; ++i) target[i] += weight * column[i];
    }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      op[i * so + j] = accumulate ? op[i * so + j] + outt[j * m + i] : outt[j * m + i];
}

// out (m, n) = a (m, k) · b (k, n), or out += a · b with `accumulate`; out row-major.
template <typename scalar_t>
void matmul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate = false) {
  if (b.size(1) <= NARROW && out.stride(1) == 1 && (a.stride(1) == 1 || a.stride(0) == 1))
    return narrow_matmul<scalar_t>(a, b, out, accumulate);
  char op_a, op_b;
  int ld_a, ld_b;
  const auto gemm = blas_gemm<scalar_t>();
  if (!gemm || out.stride(1) != 1 || !blas_layout(a, op_a, ld_a) || !blas_layout(b, op_b, ld_b)) {
    if (accumulate) out.addmm_(a, b);
    else at::mm_out(const_cast<Tensor&>(out), a, b);
    return;
  }
  const int m = a.size(0), n = b.size(1), k = a.size(1), ld_out = std::max<int64_t>(1, out.stride(0));
  const scalar_t one = 1, beta = accumulate ? 1 : 0;
  // Row-major out = a b is column-major outᵀ = bᵀ aᵀ.
  gemm(&op_b, &op_a, &n, &m, &k, &one, b.data_ptr<scalar_t>(), &ld_b, a.data_ptr<scalar_t>(),
       &ld_a, &beta, out.data_ptr<scalar_t>(), &ld_out);
}

// out (m, n) = bias (n) + a (m, k) · b (k, n).
template <typename scalar_t>
void affine(const Tensor& bias, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t m = out.size(0), n = out.size(1);
  const auto* bp = bias.data_ptr<scalar_t>();
  auto* op = out.data_ptr<scalar_t>();
  for (int64_t i = 0; i < m; ++i) std::copy(bp, bp + n, op + i * out.stride(0));
  matmul<scalar_t>(a, b, out, true);
}

// Losses: cross-entropy or mean squared error of the outputs; HAMILTONIAN: a network with
// one output H(q, p) whose field (∂H/∂p, −∂H/∂q) is fitted to the targets by mean squared
// error.
constexpr int64_t CROSS_ENTROPY = 0, MSE = 1, HAMILTONIAN = 2;

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

// Gather the batch rows of x (and labels or targets) into contiguous buffers.
template <typename scalar_t>
void gather_rows(const Tensor& src, const int64_t* index, int64_t B, Tensor& dst) {
  const int64_t width = src.numel() / src.size(0);
  auto* out = dst.data_ptr<scalar_t>();
  const auto* in = src.data_ptr<scalar_t>();
  for (int64_t b = 0; b < B; ++b)
    std::copy(in + index[b] * width, in + (index[b] + 1) * width, out + b * width);
}

// The loss of n rows of outputs o (n, O) of a batch of B, summed over the rows (not yet
// divided by B, or B·O for the MSE), and its gradient e = dL/do of the batch's mean loss.
template <typename scalar_t>
double loss_and_delta(int64_t kind, const scalar_t* o, const scalar_t* yf, const int64_t* yl,
                      int64_t n, int64_t B, int64_t O, scalar_t* e) {
  double loss = 0;
  if (kind == CROSS_ENTROPY) {
    for (int64_t b = 0; b < n; ++b) {
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
    return loss;
  }
  const scalar_t factor = scalar_t(2) / (B * O);
  for (int64_t i = 0; i < n * O; ++i) {
    scalar_t diff = o[i] - yf[i];
    loss += static_cast<double>(diff) * diff;
    e[i] = factor * diff;
  }
  return loss;
}

// Sums over the rows of m (B, n) into out (n,), or added to it.
template <typename scalar_t>
void column_sums(const scalar_t* m, int64_t B, int64_t n, scalar_t* out, bool add = false) {
  if (!add) std::fill(out, out + n, scalar_t(0));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < n; ++i) out[i] += m[b * n + i];
}

}  // namespace
