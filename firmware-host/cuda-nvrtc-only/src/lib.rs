//! edge-ad's stand-in for `cubecl-llvm` 0.11.3 (see `Cargo.toml` for why it exists).
//!
//! It has the items `cubecl-cuda` 0.11.3 names. With `cubecl-cuda`'s `cpp` feature on, its
//! runtime compiles every kernel through CUDA C++ and NVRTC and never constructs the LLVM
//! compiler below; if something does, compilation fails with an error that says so rather than
//! producing a kernel.

extern crate alloc;

#[cfg(feature = "nvptx")]
pub mod nvptx {
    //! The PTX version table, unchanged from cubecl-llvm 0.11.3.
    pub mod ptx_version;
}

pub mod shared {
    //! The device-feature narrowing, unchanged from cubecl-llvm 0.11.3.
    pub mod lowered_features;
}

use cubecl_core::ir::amd::GfxArch;
#[cfg(feature = "nvptx")]
use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::compiler::{CompilationError, Compiler};
use cubecl_runtime::config::compilation::F16Evaluation;
use cubecl_runtime::kernel::BufferIOAttr;

/// Where the LLVM backend would emit code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    /// A CPU JIT.
    #[default]
    Cpu,
    /// AMD GPUs.
    #[cfg(feature = "amdgpu")]
    AmdGpu,
    /// NVIDIA GPUs.
    #[cfg(feature = "nvptx")]
    Nvptx,
}

/// The LLVM compiler's options, with the fields of cubecl-llvm 0.11.3.
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// Minimum CPU buffer alignment.
    pub cpu_buffer_alignment: Option<u32>,
    /// AMDGPU architecture.
    pub arch: Option<GfxArch>,
    /// CPU f16 evaluation precision.
    pub f16_evaluation: F16Evaluation,
    /// NVPTX architecture.
    #[cfg(feature = "nvptx")]
    pub sm_arch: Option<SmArch>,
    /// PTX version to emit.
    #[cfg(feature = "nvptx")]
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    /// Scalars in the kernel parameter block.
    pub grid_constants: bool,
}

/// A compiled PTX module (never produced here).
#[cfg(feature = "nvptx")]
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX assembly.
    pub ptx: Vec<core::ffi::c_char>,
    /// Kernel entry point symbol.
    pub entrypoint: String,
    /// IR for logging and cache keys.
    pub ir: String,
    /// Shared memory required per launch, in bytes.
    pub shared_memory_size: usize,
    /// Buffer access modes in binding order.
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM compiler would produce (never produced here).
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    /// PTX for the CUDA driver.
    #[cfg(feature = "nvptx")]
    NvptxCode(NvptxModule),
    /// Nothing: keeps the enum inhabited-by-name without the nvptx feature.
    Unavailable,
}

impl core::fmt::Display for PlironArtifact {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("<no LLVM backend in this build>")
    }
}

/// The LLVM compiler's place; compiling with it is an error in this build.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    /// The target it was asked for.
    pub target: LlvmTarget,
}

impl Compiler for PlironCompiler {
    type Representation = PlironArtifact;
    type CompilationOptions = PlironOptions;

    fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &Self::CompilationOptions,
    ) -> Result<Self::Representation, CompilationError> {
        Err(CompilationError::Generic {
            reason: "this build has no LLVM kernel backend (edge-ad patches cubecl-llvm out so that \
                     it links without downloading LLVM); cubecl-cuda's `cpp` feature selects the \
                     NVRTC backend, which edge-ad-host's `cuda` feature turns on"
                .to_string(),
            backtrace: BackTrace::capture(),
        })
    }

    fn extension(&self) -> &'static str {
        "ll"
    }

    fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
