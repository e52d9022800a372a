[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("NetDsl.Runtime.Gpu")]
