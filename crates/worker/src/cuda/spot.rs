//! The GEMM spot check: one small GEMM per dtype the device runs, through
//! the safe layer's matmul, against a host reference ([`SpotCheck`]).

use mfubench_core::config::Dtype;
use mfubench_core::plan::{GemmKind, GemmOp, Pass};

use super::backend::CudaBackend;
use super::buf::DeviceBuf;
use super::dtype::{decode, encode, random_values, rel_error, spot_tolerance, tf32_round};
use super::error::CudaError;
use super::fp8;
use super::gemm::{self, Matmul};
use super::launch::Operands;
use crate::backend::BackendError;

/// Result of one dtype's GEMM spot check.
#[derive(Debug, Clone, PartialEq)]
pub struct SpotCheck {
    /// The dtype.
    pub dtype: Dtype,
    /// ‖C − C_ref‖ / ‖C_ref‖.
    pub rel_error: f64,
    /// The limit.
    pub tolerance: f64,
    /// FP8: error of the quantised inputs' exact product vs the unquantised
    /// one, and the bound the scaling allows.
    pub quantization: Option<(f64, f64)>,
}

impl SpotCheck {
    /// Within tolerance (and, for FP8, within the scaling's bound).
    pub fn passed(&self) -> bool {
        self.rel_error <= self.tolerance && self.quantization.is_none_or(|(e, b)| e <= b)
    }

    /// "ok rel_err 1.2e-03 ≤ 1e-02" or "FAIL …".
    pub fn summary(&self) -> String {
        let q = self
            .quantization
            .map(|(e, b)| format!("; fp8 quantisation error {e:.2e} (bound {b:.2e})"))
            .unwrap_or_default();
        format!(
            "{} rel_err {:.2e} (limit {:.1e}){q}",
            if self.passed() { "ok" } else { "FAIL" },
            self.rel_error,
            self.tolerance
        )
    }
}

impl CudaBackend {
    /// One small GEMM per dtype the device runs, against a host reference.
    pub fn spot_check(&self) -> Vec<(Dtype, Result<SpotCheck, BackendError>)> {
        let mut dtypes = vec![Dtype::Bf16, Dtype::Fp16, Dtype::Tf32];
        if self.info.compute_capability >= (8, 9) {
            dtypes.push(Dtype::Fp8);
        }
        if !dtypes.contains(&self.dtype) {
            dtypes.push(self.dtype);
        }
        dtypes
            .into_iter()
            .map(|d| (d, self.spot_check_one(d)))
            .collect()
    }

    fn spot_check_one(&self, dtype: Dtype) -> Result<SpotCheck, BackendError> {
        let op = spot_op();
        let (ea, eb, _) = op.operand_elements();
        let a_exact = random_values(11, (ea * op.batch) as usize);
        let b_exact = random_values(13, (eb * op.batch) as usize);
        let run = self.spot_runs(dtype, &a_exact, &b_exact, 1)?;
        Ok(SpotCheck {
            dtype,
            rel_error: rel_error(&run.outputs[0], &run.reference),
            tolerance: spot_tolerance(dtype),
            quantization: run.quantization,
        })
    }

    /// The SDC probe of `mfubench soak` ([`crate::backend::Backend::sdc_probe`]):
    /// the spot GEMM `count` times in the run's dtype on inputs from `seed`.
    pub fn sdc_probe(
        &self,
        seed: u64,
        count: u32,
    ) -> Result<crate::backend::SdcProbe, BackendError> {
        let op = spot_op();
        let (ea, eb, _) = op.operand_elements();
        let a = mfubench_core::soak::sdc_inputs(seed, (ea * op.batch) as usize);
        let b = mfubench_core::soak::sdc_inputs(seed.wrapping_add(1), (eb * op.batch) as usize);
        let run = self.spot_runs(self.dtype, &a, &b, count)?;
        Ok(crate::backend::SdcProbe {
            outputs: run.outputs,
            reference: run.reference,
            tolerance: spot_tolerance(self.dtype),
        })
    }

    /// `count` runs of the spot GEMM in `dtype` on `a_exact`·`b_exact`, one
    /// after the other on the compute stream, each output downloaded and
    /// decoded; the f64 reference of the values the device saw; for FP8 the
    /// quantisation error and its bound.
    fn spot_runs(
        &self,
        dtype: Dtype,
        a_exact: &[f64],
        b_exact: &[f64],
        count: u32,
    ) -> Result<SpotRuns, BackendError> {
        let types = gemm::gemm_types(dtype)
            .ok_or_else(|| BackendError::Failed(format!("no GEMM types for {dtype}")))?;
        let op = spot_op();
        let g = gemm::col_major(&op, op.batch, types.fp8);
        let (_, _, ec) = op.operand_elements();
        let (a_bytes, a_vals, sa) = quantize_for(dtype, a_exact);
        let (b_bytes, b_vals, sb) = quantize_for(dtype, b_exact);
        let ab = DeviceBuf::new(&self.ctx, a_bytes.len() as u64)?;
        let bb = DeviceBuf::new(&self.ctx, b_bytes.len() as u64)?;
        let cb = DeviceBuf::new(&self.ctx, ec * op.batch * types.out_bytes)?;
        let ws = DeviceBuf::new(&self.ctx, gemm::WORKSPACE_BYTES)?;
        let scales = DeviceBuf::new(&self.ctx, 8)?;
        ab.upload(0, &a_bytes)?;
        bb.upload(0, &b_bytes)?;
        let sc: Vec<u8> = [sb, sa].iter().flat_map(|s| s.to_le_bytes()).collect();
        scales.upload(0, &sc)?;
        let mm = Matmul::new(
            &self.handle,
            &g,
            &types,
            false,
            Some((scales.ptr(), scales.ptr() + 4)),
            1,
        )
        .map_err(CudaError::from)?;
        let operands = Operands {
            first: bb.all(),
            second: ab.all(),
            out: cb.all(),
            workspace: &ws,
            scales: Some(&scales),
        };
        let out_dtype = if types.fp8 { Dtype::Bf16 } else { dtype };
        let mut outputs = Vec::with_capacity(count as usize);
        for _ in 0..count.max(1) {
            // Synchronised before the output is read and the buffers dropped.
            mm.enqueue(&self.handle, 0, &operands, &self.compute)?;
            self.compute.synchronize()?;
            let mut out = vec![0u8; cb.len()];
            cb.download(0, &mut out)?;
            outputs.push(decode(out_dtype, &out));
        }
        let reference = gemm::reference_col_major(&g, &b_vals, &a_vals);
        let quantization = types.fp8.then(|| {
            let exact = gemm::reference_col_major(&g, b_exact, a_exact);
            let abs_a: Vec<f64> = a_exact.iter().map(|x| x.abs()).collect();
            let abs_b: Vec<f64> = b_exact.iter().map(|x| x.abs()).collect();
            let abs = gemm::reference_col_major(&g, &abs_b, &abs_a);
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let cancellation = norm(&abs) / norm(&exact).max(f64::MIN_POSITIVE);
            (
                rel_error(&reference, &exact),
                fp8::gemm_quantization_bound(cancellation),
            )
        });
        Ok(SpotRuns {
            outputs,
            reference,
            quantization,
        })
    }
}

/// What [`CudaBackend::spot_runs`] returns.
struct SpotRuns {
    outputs: Vec<Vec<f64>>,
    reference: Vec<f64>,
    quantization: Option<(f64, f64)>,
}

/// Host bytes of `vals` in `dtype`, the values the device will see, and the
/// dequantisation factor (1 except FP8).
fn quantize_for(dtype: Dtype, vals: &[f64]) -> (Vec<u8>, Vec<f64>, f32) {
    if dtype == Dtype::Fp8 {
        let q = fp8::quantize(vals);
        let deq = q.dequantized();
        let s = q.scale_inv();
        (q.codes, deq, s)
    } else {
        let bytes = encode(dtype, vals);
        let mut seen = decode(dtype, &bytes);
        if dtype == Dtype::Tf32 {
            // The device gets f32 and its tensor cores round to tf32: the
            // reference multiplies what they see (see `spot_tolerance`).
            for v in &mut seen {
                *v = f64::from(tf32_round(*v as f32));
            }
        }
        (bytes, seen, 1.0)
    }
}

/// The spot check's GEMM: a dgrad-shaped op (B transposed), batch 2.
fn spot_op() -> GemmOp {
    GemmOp {
        layer: Some(0),
        kind: GemmKind::FfnUp,
        pass: Pass::Dgrad,
        m: 96,
        n: 80,
        k: 160,
        batch: 2,
        trans_a: false,
        trans_b: true,
        bucket: None,
        expert: None,
        chunk: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_check_verdicts() {
        let ok = SpotCheck {
            dtype: Dtype::Bf16,
            rel_error: 3e-3,
            tolerance: spot_tolerance(Dtype::Bf16),
            quantization: None,
        };
        assert!(ok.passed() && ok.summary().starts_with("ok"));
        let bad = SpotCheck {
            rel_error: 3e-3,
            tolerance: spot_tolerance(Dtype::Tf32),
            ..ok.clone()
        };
        assert!(!bad.passed() && bad.summary().starts_with("FAIL"));
        let q = SpotCheck {
            dtype: Dtype::Fp8,
            rel_error: 1e-3,
            tolerance: 1e-2,
            quantization: Some((0.2, 0.13)),
        };
        assert!(!q.passed());
    }

    /// The spot check's data and tf32 reference against simulated devices:
    /// one that rounds like the reference, one that truncates the inputs,
    /// one that (wrongly) uses bf16 inputs.
    #[test]
    fn tf32_truncation_passes_and_bf16_does_not() {
        let op = super::spot_op();
        let g = gemm::col_major(&op, op.batch, false);
        let (ea, eb, _) = op.operand_elements();
        let a = random_values(11, (ea * op.batch) as usize);
        let b = random_values(13, (eb * op.batch) as usize);
        let (_, a_ref, _) = quantize_for(Dtype::Tf32, &a);
        let (_, b_ref, _) = quantize_for(Dtype::Tf32, &b);
        let want = gemm::reference_col_major(&g, &b_ref, &a_ref);
        let device = |f: &dyn Fn(f32) -> f64| {
            let fa: Vec<f64> = a.iter().map(|x| f(*x as f32)).collect();
            let fb: Vec<f64> = b.iter().map(|x| f(*x as f32)).collect();
            rel_error(&gemm::reference_col_major(&g, &fb, &fa), &want)
        };
        let tol = spot_tolerance(Dtype::Tf32);
        assert_eq!(device(&|x| f64::from(tf32_round(x))), 0.0);
        let truncated = device(&|x| f64::from(f32::from_bits(x.to_bits() & !0x1fff)));
        assert!(
            (7.5e-4..8.1e-4).contains(&truncated) && truncated * 1.5 < tol,
            "truncation {truncated}"
        );
        let bf16 = device(&|x| half::bf16::from_f32(x).to_f64());
        assert!(
            (2.1e-3..2.2e-3).contains(&bf16) && bf16 > tol * 1.4,
            "bf16 inputs {bf16}"
        );
    }
}
