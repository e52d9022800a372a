using System;
using NetDsl.Generator.Graph;

namespace NetDsl.Generator.Emit;

/// <summary>
/// The C# expression of each elementwise instruction, shared by the CPU loops and the ILGPU kernels so both
/// backends compute the same function the same way.
/// </summary>
internal static class ElementwiseMath
{
    /// <summary>The expression of a computing instruction over registers <paramref name="a"/> and <paramref name="b"/>; <paramref name="index"/> is the element's global index (for dropout).</summary>
    public static string Expression(EInstr instr, string a, string b, string t, string index)
    {
        string zero = Invariant.Literal(0, t), one = Invariant.Literal(1, t);
        return instr.Op switch
        {
            EOp.Const => Invariant.Literal(instr.Value, t),
            EOp.Add => $"{a} + {b}",
            EOp.Mul => $"{a} * {b}",
            EOp.Sub => $"{a} - {b}",
            EOp.Relu => $"global::System.Math.Max({a}, {zero})",
            EOp.LeakyRelu => $"{a} > {zero} ? {a} : {a} * {Invariant.Literal(instr.Value, t)}",
            EOp.Sigmoid => $"global::NetDsl.Runtime.Activations.Sigmoid({a})",
            EOp.Tanh => $"global::NetDsl.Runtime.Activations.Tanh({a})",
            EOp.Gelu => $"global::NetDsl.Runtime.Activations.Gelu({a})",
            EOp.GeluGrad => $"global::NetDsl.Runtime.Activations.GeluGrad({a})",
            EOp.PositiveMask => $"{a} > {zero} ? {b} : {zero}",
            EOp.LeakyMask => $"{a} > {zero} ? {b} : {b} * {Invariant.Literal(instr.Value, t)}",
            EOp.SigmoidGrad => $"{a} * ({one} - {a})",
            EOp.TanhGrad => $"{one} - {a} * {a}",
            EOp.DropoutScale => $"global::NetDsl.Runtime.CounterRandom.Keep(seed{Invariant.Format(instr.Seed)}, {index}, {DropoutThreshold(instr.Value)}) ? {Invariant.Literal(1.0 / (1.0 - instr.Value), t)} : {zero}",
            _ => throw new InvalidOperationException("No expression for " + instr.Op),
        };
    }

    /// <summary>
    /// The scalar expression of an instruction in a CPU loop: as <see cref="Expression"/>, except that sigmoid and tanh
    /// call the runtime's scalar lanes, which compute exactly what a <c>Vector&lt;T&gt;</c> lane computes. An element
    /// then gets the same bits whether it falls in a loop's vector body or its scalar tail, so a sample's outputs do
    /// not depend on the batch it runs in or on how a batch is split.
    /// </summary>
    public static string CpuScalarExpression(EInstr instr, string a, string b, string t, string index) => instr.Op switch
    {
        EOp.Sigmoid => $"global::NetDsl.Runtime.Cpu.Lanes.Sigmoid({a})",
        EOp.Tanh => $"global::NetDsl.Runtime.Cpu.Lanes.Tanh({a})",
        _ => Expression(instr, a, b, t, index),
    };

    /// <summary>The <c>Vector&lt;T&gt;</c> form of an instruction (dropout and GELU have none: their loops stay scalar).</summary>
    public static string VectorExpression(EInstr instr, string a, string b, string t)
    {
        const string lanes = "global::NetDsl.Runtime.Cpu.Lanes";
        return instr.Op switch
        {
            EOp.Const => $"new global::System.Numerics.Vector<{t}>({Invariant.Literal(instr.Value, t)})",
            EOp.Add => $"{a} + {b}",
            EOp.Mul => $"{a} * {b}",
            EOp.Sub => $"{a} - {b}",
            EOp.Relu => $"{lanes}.Relu({a})",
            EOp.LeakyRelu => $"{lanes}.LeakyRelu({a}, {Invariant.Literal(instr.Value, t)})",
            EOp.Sigmoid => $"{lanes}.Sigmoid({a})",
            EOp.Tanh => $"{lanes}.Tanh({a})",
            EOp.PositiveMask => $"{lanes}.PositiveMask({a}, {b})",
            EOp.LeakyMask => $"{lanes}.LeakyMask({a}, {b}, {Invariant.Literal(instr.Value, t)})",
            EOp.SigmoidGrad => $"{lanes}.SigmoidGrad({a})",
            EOp.TanhGrad => $"{lanes}.TanhGrad({a})",
            _ => throw new InvalidOperationException("No vector form for " + instr.Op),
        };
    }

    /// <summary><c>p · 2³²</c> as the uint a 32-bit hash is compared with.</summary>
    public static string DropoutThreshold(double p) => Invariant.Format((long)Math.Min(Math.Round(p * 4294967296.0), uint.MaxValue)) + "u";
}
