// ILGPU's CPU accelerator compiles kernels into a dynamic assembly named ILGPURuntime, which needs access to
// the internal argument structs of the optimizer kernels.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("ILGPURuntime")]
