using System.Collections.Generic;
using System.Linq;
using NetDsl.Generator.Diagnostics;
using NetDsl.Generator.Model;

namespace NetDsl.Generator.Tests;

/// <summary>Builds a <see cref="NetworkSpec"/> directly, for testing the compiler phases without Roslyn.</summary>
internal sealed class SpecBuilder
{
    private readonly List<LayerSpec> _layers = new();
    private readonly List<StatementSpec> _body = new();
    private InputSpec? _input;
    private int _span = 1;

    public SpecBuilder Input(string name, params int[] shape)
    {
        _input = new InputSpec(name, new EquatableArray<int>(shape), _span++);
        return this;
    }

    public SpecBuilder Linear(string name, int inFeatures, int outFeatures, bool bias = true)
        => Layer(name, "Linear", ("inFeatures", inFeatures), ("outFeatures", outFeatures), ("bias", bias ? 1 : 0));

    public SpecBuilder Conv2d(string name, int inChannels, int outChannels, int kernel, int stride = 1, int padding = 0)
        => Layer(name, "Conv2d", ("inChannels", inChannels), ("outChannels", outChannels), ("kernel", kernel), ("stride", stride), ("padding", padding), ("bias", 1));

    private SpecBuilder Layer(string name, string kind, params (string Name, double Value)[] args)
    {
        _layers.Add(new LayerSpec(name, kind, args.Select(a => new ArgSpec(a.Name, a.Value, false, _span++)).ToEquatableArray(), _span++));
        return this;
    }

    public SpecBuilder Let(string target, ExprSpec value)
    {
        _body.Add(new StatementSpec(StatementKind.Assign, target, value, _span++));
        return this;
    }

    public NetworkSpec Return(ExprSpec value)
    {
        _body.Add(new StatementSpec(StatementKind.Return, "", value, _span++));
        return new NetworkSpec("Tests", "Net", "public", "float", _layers.ToEquatableArray(),
            new EquatableArray<InputSpec>(new[] { _input! }), _body.ToEquatableArray(), EquatableArray<DiagnosticInfo>.Empty, CanEmit: true);
    }

    public static ExprSpec Var(string name) => new(ExprKind.Variable, name, EquatableArray<ExprSpec>.Empty, EquatableArray<ArgSpec>.Empty, 0);

    public static ExprSpec Apply(string layer, ExprSpec x) => new(ExprKind.LayerApply, layer, new EquatableArray<ExprSpec>(new[] { x }), EquatableArray<ArgSpec>.Empty, 0);

    /// <summary>An operation; scalars not given take the defaults NetworkModule declares.</summary>
    public static ExprSpec Op(string name, ExprSpec[] tensors, params (string Name, double? Value)[] scalars)
    {
        OpCatalog.TryGet(name, out var signature);
        var args = new List<ArgSpec>();
        foreach (var p in signature.Params.Where(p => p.Kind is not (OpParamKind.Tensor or OpParamKind.TensorArray)))
        {
            foreach (var given in scalars.Where(s => s.Name == p.Name))
                args.Add(new ArgSpec(p.Name, given.Value ?? 0, given.Value is null, 0));
            if (!scalars.Any(s => s.Name == p.Name) && p.Kind != OpParamKind.IntParams)
                args.Add(new ArgSpec(p.Name, p.Default, p.DefaultIsNull, 0));
        }
        return new ExprSpec(ExprKind.Op, name, tensors.ToEquatableArray(), args.ToEquatableArray(), 0);
    }

    public static ExprSpec Op(string name, ExprSpec x, params (string Name, double? Value)[] scalars) => Op(name, new[] { x }, scalars);

    public static ExprSpec Array(params ExprSpec[] items) => new(ExprKind.Array, "", items.ToEquatableArray(), EquatableArray<ArgSpec>.Empty, 0);
}
