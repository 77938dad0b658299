//! The float precision the backbone runs in, per board.
//!
//! On aarch64 CPUs with half-precision arithmetic (Armv8.2 FP16: Cortex-A55/A76/A78, Raspberry
//! Pi 5, Jetson Orin) tract has native f16 matrix kernels, so the backbone's ordinary convolutions
//! (the 1×1 ones and the stem, most of its time) can run in f16. Depthwise convolutions stay f32:
//! tract has no f16 depthwise kernel, and its scalar f16 loop is slower than the f32 one. Elsewhere
//! (x86 has no f16 arithmetic; older Arm cores) f32 is the only fast choice. [`PrecisionChoice::Auto`],
//! the default, picks f16 exactly where the CPU has the arithmetic.
//!
//! f16 is allowed on any CPU when asked for by name: tract then emulates it (slowly), which is how
//! the numerics can be checked on a development machine. The projector graphs and everything
//! after the backbone stay f32.

use std::fmt;
use std::str::FromStr;

/// The precision a backbone is compiled for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Ordinary convolutions (and the element-wise operations between them) in f16, depthwise
    /// convolutions in f32; input and outputs stay f32.
    F16,
}

/// What the flags and box.toml ask for: a precision, or the board's best.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrecisionChoice {
    /// f16 where the CPU has half-precision arithmetic, else f32.
    #[default]
    Auto,
    /// f32.
    F32,
    /// f16 (emulated, slowly, on a CPU without half-precision arithmetic).
    F16,
}

impl PrecisionChoice {
    /// The precision this choice means on this CPU.
    pub fn resolve(self) -> Precision {
        match self {
            Self::Auto if cpu_has_f16_arithmetic() => Precision::F16,
            Self::Auto | Self::F32 => Precision::F32,
            Self::F16 => Precision::F16,
        }
    }
}

/// Whether this CPU does f16 arithmetic in hardware (Armv8.2 FP16, `asimdhp`), the condition for
/// tract's f16 matrix kernels.
pub fn cpu_has_f16_arithmetic() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("fp16")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

impl fmt::Display for PrecisionChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

impl FromStr for PrecisionChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            _ => Err(format!("precision must be auto, f32 or f16, got {s:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_others_are_refused() {
        for c in [PrecisionChoice::Auto, PrecisionChoice::F32, PrecisionChoice::F16] {
            assert_eq!(c.to_string().parse::<PrecisionChoice>(), Ok(c));
        }
        let e = "F16".parse::<PrecisionChoice>().unwrap_err();
        assert!(e.contains("auto, f32 or f16") && e.contains("\"F16\""), "{e}");
        assert!("".parse::<PrecisionChoice>().is_err());
    }

    #[test]
    fn named_choices_are_kept_and_auto_follows_the_cpu() {
        assert_eq!(PrecisionChoice::F32.resolve(), Precision::F32);
        assert_eq!(PrecisionChoice::F16.resolve(), Precision::F16);
        let auto = PrecisionChoice::Auto.resolve();
        assert_eq!(auto == Precision::F16, cpu_has_f16_arithmetic());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(auto, Precision::F32);
    }
}
