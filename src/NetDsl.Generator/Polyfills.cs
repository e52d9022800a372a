[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("NetDsl.Generator.Tests")]

// Language features used by this netstandard2.0 assembly that its framework does not declare.
namespace System.Runtime.CompilerServices
{
    internal static class IsExternalInit { }
}
