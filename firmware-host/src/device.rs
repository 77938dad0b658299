//! Where pretraining runs: the CPU (burn's Flex backend), or an NVIDIA GPU through burn's CUDA
//! backend when the tool is built with the `cuda` feature.
//!
//! The CUDA build compiles its kernels at run time with NVRTC (cubecl-cuda's C++ backend) and
//! loads the driver and NVRTC dynamically, so it links without a CUDA toolkit and starts on a
//! machine without a GPU; [`cuda`] then checks, before anything is trained, that the driver,
//! NVRTC and a device are there, and says which one is missing.

use anyhow::Result;
use burn::prelude::Device;

/// The CPU, with autodiff for training.
pub fn cpu() -> Device {
    Device::flex().autodiff()
}

/// The first CUDA device, with autodiff for training, or an error that names what is missing.
#[cfg(feature = "cuda")]
pub fn cuda() -> Result<Device> {
    cuda_present()?;
    Ok(Device::cuda(0).autodiff())
}

/// Without the `cuda` feature: an error that says how to build it.
#[cfg(not(feature = "cuda"))]
pub fn cuda() -> Result<Device> {
    anyhow::bail!("--device cuda: this edge-ad-host was built without CUDA; build it with `--features cuda`")
}

/// Checks that the CUDA driver library, NVRTC and at least one device are present. cubecl
/// panics deep inside its first kernel launch when they are not; this turns that into an error
/// before training starts.
#[cfg(feature = "cuda")]
pub fn cuda_present() -> Result<()> {
    use anyhow::{bail, Context};
    // SAFETY: these only try to dlopen the libraries by their usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        bail!(
            "--device cuda: no NVIDIA driver library (libcuda.so.1) on this machine; install the \
             NVIDIA driver, or train with --device cpu"
        );
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        bail!(
            "--device cuda: the NVIDIA driver is here but NVRTC (libnvrtc.so) is not; install the \
             CUDA runtime compiler (Debian: nvidia-cuda-toolkit or libnvrtc12; PyPI: \
             nvidia-cuda-nvrtc-cu12, with its lib folder on LD_LIBRARY_PATH)"
        );
    }
    cudarc::driver::result::init().context("--device cuda: the NVIDIA driver failed to initialise")?;
    let count = cudarc::driver::result::device::get_count().context("--device cuda: counting CUDA devices")?;
    if count < 1 {
        bail!("--device cuda: the NVIDIA driver reports no CUDA device");
    }
    Ok(())
}
